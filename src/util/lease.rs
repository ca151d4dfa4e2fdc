//! Locks and claims that another host can take over: each names its holder (host and process)
//! and is renewed while held; one whose holder is on another host and has not renewed it within
//! `claim_timeout` belongs to a dead or cut-off host, and is taken over.
//!
//! The lock itself is `flock`, which the kernel releases when its process dies, and which NFSv4
//! releases when the client's lease expires; the lease here covers what neither does (a hung
//! host that still holds its locks, a shared filesystem whose locks outlive their holder). A
//! holder renews by setting the lock file's modification time ([`Heartbeat`]); a takeover renames
//! the stale lock file away and locks a new one, so a holder that wakes up finds the path no
//! longer names its file ([`renew_held`] says so in the log).
//!
//! The hosts' clocks must agree to well within `claim_timeout` (NTP): the age of a lease is the
//! reader's clock minus the modification time its holder's host (or the file server) wrote.

use crate::util::fsutil::{FileLock, age_of};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

/// This machine's name as `gethostname` gives it ("localhost" when it gives none); notices say it.
pub fn machine_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match String::from_utf8_lossy(&buf[..end]) {
        name if ok && !name.is_empty() => name.into_owned(),
        _ => "localhost".to_string(),
    }
}

/// This host's name, as it appears in claim directories and lock files (`/` and `.` replaced).
pub fn host_name() -> String {
    machine_name().replace(['/', '.'], "_")
}

/// This process as a holder: `<host>.<pid>.<start time>`.
pub fn this_holder() -> String {
    format!("{}.{}", host_name(), crate::util::fsutil::this_process_identity())
}

/// The host part of a holder name.
pub fn holder_host(holder: &str) -> &str {
    holder.split('.').next().unwrap_or("")
}

/// A held path: the device and inode it had when taken (a path that names another file since
/// was taken over), and how many times it is held.
type Held = (u64, u64, usize);

/// Paths this process holds and renews (lock files and claim directories).
fn held() -> &'static Mutex<BTreeMap<PathBuf, Held>> {
    static HELD: std::sync::OnceLock<Mutex<BTreeMap<PathBuf, Held>>> = std::sync::OnceLock::new();
    HELD.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// Starts renewing `path` (a lock file or a claim directory) until [`release`]d; held paths are
/// counted, so one path may be held twice (two claims of one directory).
pub fn hold(path: &Path) -> io::Result<()> {
    let meta = fs::metadata(path)?;
    let mut held = held().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    held.entry(path.to_path_buf())
        .and_modify(|(_, _, count)| *count += 1)
        .or_insert((meta.dev(), meta.ino(), 1));
    Ok(())
}

/// Stops renewing `path` (once for each [`hold`]).
pub fn release(path: &Path) {
    let mut held = held().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, _, count)) = held.get_mut(path) {
        *count -= 1;
        if *count == 0 {
            held.remove(path);
        }
    }
}

/// Whether a held path was taken over by another host (see [`renew_held`]).
static TAKEN_OVER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether another host took over something this process held: it must stop, since what it
/// guarded is that host's now.
pub fn taken_over() -> bool {
    TAKEN_OVER.load(std::sync::atomic::Ordering::SeqCst)
}

/// Renews every held path; a path taken over by another host (it names another file now) is
/// logged, no longer renewed, and marks this process [`taken_over`]. A path gone (a claim
/// directory its worker removed, a repository's state forgotten) is no longer renewed either.
/// Returns how many were renewed.
pub fn renew_held() -> usize {
    let mut held = held().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (renewed, lost) = renew_all(&mut held);
    if !lost.is_empty() {
        TAKEN_OVER.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    for path in lost {
        log::error!(
            "{} was taken over by another host (this process did not renew it within claim_timeout: was it \
             stopped, or cut off from the shared filesystem?); what it guarded is that host's now",
            path.display()
        );
    }
    renewed
}

/// Renews every path of `held`, dropping those gone or taken over; returns how many were
/// renewed, and those taken over.
fn renew_all(held: &mut BTreeMap<PathBuf, Held>) -> (usize, Vec<PathBuf>) {
    let (mut renewed, mut lost) = (0, Vec::new());
    held.retain(|path, (dev, ino, _)| match renew(path, *dev, *ino) {
        Ok(true) => {
            renewed += 1;
            true
        }
        Ok(false) => {
            lost.push(path.clone());
            false
        }
        // Gone with its work (a claim directory removed), or unreadable for a moment: tried again.
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(_) => true,
    });
    (renewed, lost)
}

/// Sets `path`'s modification time to now if it still is the file (`dev`, `ino`) taken.
fn renew(path: &Path, dev: u64, ino: u64) -> io::Result<bool> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if (meta.dev(), meta.ino()) != (dev, ino) {
        return Ok(false);
    }
    touch(&file)?;
    Ok(true)
}

/// Sets a file's times to now. `UTIME_NOW` rather than an explicit time: setting an explicit time
/// needs the file's owner, setting it to now only write permission, which is what a member of a
/// `shared_group` has on a lock file another member created.
fn touch(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let now = libc::timespec {
        tv_sec: 0,
        tv_nsec: libc::UTIME_NOW,
    };
    let times = [now, now];
    // SAFETY: the descriptor is open for the call's duration and `times` holds two timespecs.
    if unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A thread renewing every held path every quarter of `claim_timeout`, until dropped. When it
/// finds something taken over, the process exits at once, as if killed: it was stopped or cut
/// off for longer than `claim_timeout`, and the host that took over recovers whatever it was
/// doing (as it does a dead host's). Its git children finish the push they are in, whose
/// leases keep the mirror consistent.
pub struct Heartbeat {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    pub fn start(claim_timeout: Duration) -> Heartbeat {
        let every = (claim_timeout / 4).max(Duration::from_millis(100));
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("lease-heartbeat".to_string())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    renew_held();
                    if taken_over() {
                        log::logger().flush();
                        std::process::exit(EXIT_TAKEN_OVER);
                    }
                }
            })
            .ok();
        Heartbeat {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The exit status of a process whose claims or locks another host took over.
pub const EXIT_TAKEN_OVER: i32 = 3;

/// An exclusive lock that names its holder and is renewed while held (see the module
/// documentation); released on drop.
pub struct LeasedLock {
    path: PathBuf,
    _lock: FileLock,
}

/// The holder a lock file names, and whether it may be taken over.
#[derive(Debug, PartialEq, Eq)]
pub enum Holder {
    /// No holder named (being written, or a version that did not name one): never taken over.
    Unknown,
    /// A holder on this host: alive (its lock is held, and the kernel releases a dead one's).
    ThisHost(String),
    /// A holder on another host that renewed it within the timeout.
    Renewed(String),
    /// A holder on another host that did not: dead or cut off.
    Stale(String, Duration),
}

impl LeasedLock {
    /// Takes the lock if it is free, or if its holder is on another host and has not renewed it
    /// within `timeout` (taken over, with a warning). `None` when a live holder has it.
    pub fn try_acquire(path: &Path, timeout: Duration) -> io::Result<Option<LeasedLock>> {
        // A few rounds: the lock taken may be on a file a takeover renamed away meanwhile.
        for _ in 0..4 {
            let Some((lock, file)) = FileLock::try_acquire_file(path)? else {
                match holder_of(path, timeout) {
                    Holder::Stale(holder, age) => {
                        take_over(path, &holder, age, timeout)?;
                        continue;
                    }
                    _ => return Ok(None),
                }
            };
            if !names_file(path, &file)? {
                continue;
            }
            name_holder(&file)?;
            hold(path)?;
            return Ok(Some(LeasedLock {
                path: path.to_path_buf(),
                _lock: lock,
            }));
        }
        Ok(None)
    }

    /// Waits for the lock (taking it over from a holder that stops renewing it).
    pub fn acquire(path: &Path, timeout: Duration) -> io::Result<LeasedLock> {
        let mut wait = Duration::from_millis(5);
        loop {
            if let Some(lock) = Self::try_acquire(path, timeout)? {
                return Ok(lock);
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_millis(250));
        }
    }
}

impl Drop for LeasedLock {
    fn drop(&mut self) {
        release(&self.path);
    }
}

/// Who holds the lock at `path`, as its file says, judged against `timeout`.
pub fn holder_of(path: &Path, timeout: Duration) -> Holder {
    let mut text = String::new();
    if File::open(path)
        .and_then(|f| f.take(512).read_to_string(&mut text))
        .is_err()
    {
        return Holder::Unknown;
    }
    let holder = text.lines().next().unwrap_or("").trim().to_string();
    if holder.is_empty() {
        return Holder::Unknown;
    }
    if holder_host(&holder) == host_name() {
        return Holder::ThisHost(holder);
    }
    // A time after now counts as now (see `age_of`): a clock set back never makes a lease stale.
    match age_of(path) {
        Ok(age) if age > timeout => Holder::Stale(holder, age),
        _ => Holder::Renewed(holder),
    }
}

/// Whether `path` still names the file `file` is open on.
fn names_file(path: &Path, file: &File) -> io::Result<bool> {
    let (at_path, ours) = (fs::metadata(path), file.metadata()?);
    Ok(match at_path {
        Ok(meta) => (meta.dev(), meta.ino()) == (ours.dev(), ours.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    })
}

/// Writes this process's holder line into a lock file it just locked, and renews it.
fn name_holder(file: &File) -> io::Result<()> {
    let mut file = file;
    file.set_len(0)?;
    file.write_all(format!("{}\n", this_holder()).as_bytes())?;
    touch(file)
}

/// Renames a stale lock file away so the next lock is taken on a new file; the holder, if it
/// ever wakes up, finds the path no longer names its file.
fn take_over(path: &Path, holder: &str, age: Duration, timeout: Duration) -> io::Result<()> {
    let mut away = path.as_os_str().to_os_string();
    away.push(format!(".taken-over.{}", crate::util::fsutil::this_process_identity()));
    let away = PathBuf::from(away);
    match fs::rename(path, &away) {
        Ok(()) => {
            log::warn!(
                "taking over {} from {holder}, which has not renewed it for {}s (claim_timeout is {}s)",
                path.display(),
                age.as_secs(),
                timeout.as_secs()
            );
            let _ = fs::remove_file(&away);
            Ok(())
        }
        // Another host took it over first.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn make_old(path: &Path, by: Duration) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - by)
            .unwrap();
    }

    #[test]
    fn a_free_lock_names_its_holder_and_a_second_taker_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pair.lock");
        let lock = LeasedLock::try_acquire(&path, Duration::from_secs(600))
            .unwrap()
            .unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{}\n", this_holder()));
        assert_eq!(
            holder_of(&path, Duration::from_secs(600)),
            Holder::ThisHost(this_holder())
        );
        assert!(
            LeasedLock::try_acquire(&path, Duration::from_secs(600))
                .unwrap()
                .is_none()
        );
        drop(lock);
        assert!(
            LeasedLock::try_acquire(&path, Duration::from_secs(600))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_lock_held_by_another_host_is_taken_over_only_once_it_was_not_renewed_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pair.lock");
        // Another host's worker holds the lock (its flock is alive: a hung host).
        let (held, file) = FileLock::try_acquire_file(&path).unwrap().unwrap();
        (&file).write_all(b"otherhost.42.7\n").unwrap();
        let timeout = Duration::from_secs(600);
        assert_eq!(holder_of(&path, timeout), Holder::Renewed("otherhost.42.7".to_string()));
        assert!(
            LeasedLock::try_acquire(&path, timeout).unwrap().is_none(),
            "renewed: still its own"
        );
        make_old(&path, Duration::from_secs(601));
        assert!(matches!(holder_of(&path, timeout), Holder::Stale(..)));
        let taken = LeasedLock::try_acquire(&path, timeout).unwrap().expect("taken over");
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{}\n", this_holder()));
        assert!(
            !names_file(&path, &file).unwrap(),
            "the old holder's file is no longer the lock"
        );
        // A third taker waits for the new holder, not for the old file.
        assert!(LeasedLock::try_acquire(&path, timeout).unwrap().is_none());
        drop((taken, held));
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "the stale file is removed");
    }

    #[test]
    fn a_holder_on_this_host_or_unnamed_is_never_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pair.lock");
        let (_held, file) = FileLock::try_acquire_file(&path).unwrap().unwrap();
        make_old(&path, Duration::from_secs(3600));
        assert_eq!(holder_of(&path, Duration::from_secs(1)), Holder::Unknown);
        (&file).write_all(format!("{}.1.1\n", host_name()).as_bytes()).unwrap();
        make_old(&path, Duration::from_secs(3600));
        assert!(matches!(holder_of(&path, Duration::from_secs(1)), Holder::ThisHost(_)));
        assert!(
            LeasedLock::try_acquire(&path, Duration::from_secs(1))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn renewal_moves_the_time_of_held_paths_and_notices_a_takeover() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claim");
        fs::create_dir(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        let mut held = BTreeMap::from([(path.clone(), (meta.dev(), meta.ino(), 1))]);
        make_old_dir(&path);
        assert_eq!(renew_all(&mut held), (1, vec![]));
        assert!(age_of(&path).unwrap() < Duration::from_secs(60), "renewed");
        // Taken over: the path names another directory now; it is no longer renewed.
        fs::rename(&path, dir.path().join("away")).unwrap();
        fs::create_dir(&path).unwrap();
        make_old_dir(&path);
        assert_eq!(renew_all(&mut held), (0, vec![path.clone()]));
        assert!(
            age_of(&path).unwrap() > Duration::from_secs(60),
            "another's is left alone"
        );
        assert!(held.is_empty());
        // Gone (its worker removed it): dropped, and no takeover.
        let gone = dir.path().join("gone");
        fs::create_dir(&gone).unwrap();
        let meta = fs::metadata(&gone).unwrap();
        held.insert(gone.clone(), (meta.dev(), meta.ino(), 1));
        fs::remove_dir(&gone).unwrap();
        assert_eq!(renew_all(&mut held), (0, vec![]));
        assert!(held.is_empty());
    }

    fn make_old_dir(path: &Path) {
        File::open(path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
    }
}
