//! Durable file operations: atomic replace with fsync, directory fsync, advisory locks; and the
//! modes of what the program keeps in the spool and state (its own, or its group's when they are
//! shared).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Whether the spool and state are shared with a group (`shared_group`: several users push, and
/// each one's hook and worker write there).
static GROUP_SHARED: AtomicBool = AtomicBool::new(false);

/// Says whether the spool and state are shared with a group, once the configuration is read:
/// from then on what [`replace_file`], [`write_synced`], [`FileLock`] and [`create_kept_dirs`]
/// make is the group's to read and write too (the directories' setgid bit, which the admin
/// sets, gives it the group), whatever the umask. Temporary files stay private.
pub fn share_with_group(shared: bool) {
    GROUP_SHARED.store(shared, Ordering::Relaxed);
}

/// `mode` (the owner's bits, such as 0o600 or 0o700), with the owner's bits given to the group
/// too when the spool and state are shared with one.
pub fn kept_mode(mode: u32) -> u32 {
    if GROUP_SHARED.load(Ordering::Relaxed) {
        mode | ((mode & 0o700) >> 3)
    } else {
        mode
    }
}

/// Gives a file or directory this process just made its [`kept_mode`] when shared: the umask
/// (often 022) would otherwise keep the group from writing. A directory keeps the setgid bit it
/// inherited, which gives what is made in it the shared group.
pub fn apply_kept_mode(path: &Path, mode: u32) -> io::Result<()> {
    if GROUP_SHARED.load(Ordering::Relaxed) {
        let setgid = fs::metadata(path)?.mode() & 0o2000;
        fs::set_permissions(path, fs::Permissions::from_mode(kept_mode(mode) | setgid))?;
    }
    Ok(())
}

/// Creates `dir` and its missing parents for the spool or state: mode 700, or 770 when shared
/// with a group (see [`share_with_group`]).
pub fn create_kept_dirs(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    for made in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(kept_mode(0o700)).create(made) {
            Ok(()) => apply_kept_mode(made, 0o700)?,
            // Made meanwhile by another process: its mode is its maker's business.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether process `pid` exists (on this host).
pub fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && (unsafe { libc::kill(pid, 0) } == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// A running process's start time (clock ticks after boot), from `/proc/PID/stat`: with the
/// pid, it names a process for good, whatever pids are reused. `None` for a process that is
/// gone or a zombie (killed, not yet reaped: in a container whose init does not reap, for ever).
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: count from the last `)`.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    // Field 3 is the state; field 22 overall, the start time, is the 19th after it.
    if matches!(fields.next()?, "Z" | "X" | "x") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// This process, named for good: `<pid>.<start time>` (pids are reused, quickly on a busy host).
pub fn this_process_identity() -> &'static str {
    static IDENTITY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IDENTITY.get_or_init(|| {
        let pid = std::process::id();
        format!("{pid}.{}", start_time(pid).unwrap_or(0))
    })
}

/// Whether the process an identity names still runs on this host: `<pid>.<start time>` that
/// very process; a bare `<pid>` (names from older versions) any process with that pid.
pub fn identity_alive(identity: &str) -> bool {
    match identity.split_once('.') {
        None => identity.parse().is_ok_and(process_alive),
        Some((pid, start)) => match (pid.parse::<u32>(), start.parse::<u64>()) {
            (Ok(pid), Ok(start)) => start_time(pid) == Some(start),
            _ => false,
        },
    }
}

/// What every temporary directory of ours is called: `git-push-mirror-<what>.<pid>.<random>`.
const TEMP_DIR_PREFIX: &str = "git-push-mirror-";

/// A private (mode 700) temporary directory named after its purpose and this process, so that
/// [`remove_orphaned_temp_dirs`] can clean up after a process killed while using it. What goes
/// in it is private too: write files with [`write_private`], make directories with
/// [`create_private_dirs`].
pub fn private_temp_dir(what: &str) -> io::Result<tempfile::TempDir> {
    // Mode 700 from its creation on (the umask can only remove bits): no other user ever lists it.
    tempfile::Builder::new()
        .prefix(&format!("{TEMP_DIR_PREFIX}{what}.{}.", std::process::id()))
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir()
}

/// Creates `dir` and its missing parents, each mode 700.
pub fn create_private_dirs(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Writes `bytes` to `path` (created or truncated) with mode 600: a file of a private directory.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

/// Removes the temporary directories under `dir` that [`private_temp_dir`] made for processes
/// that no longer exist (a worker or `sync` killed mid-push) and that are older than `min_age`
/// (a process in another pid namespace sharing `/tmp` looks dead). Returns how many went.
pub fn remove_orphaned_temp_dirs(dir: &Path, min_age: std::time::Duration) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(TEMP_DIR_PREFIX))
            .and_then(|rest| rest.split('.').nth(1))
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let old_enough = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= min_age));
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && old_enough && !process_alive(pid) && fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Creates a named pipe (FIFO) at `path` with `mode`.
pub fn make_fifo(path: &Path, mode: u32) -> io::Result<()> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: mkfifo reads a NUL-terminated path.
    if unsafe { libc::mkfifo(c_path.as_ptr(), mode as libc::mode_t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Flushes a directory's entries (a rename or unlink in it) to disk.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A name no other process or thread uses at the same time.
pub fn unique_name(prefix: &str, suffix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{nanos:020}-{}-{n}{suffix}", std::process::id())
}

/// Writes `bytes` to a new file in `tmp_dir` and fsyncs it; returns its path.
pub fn write_synced(tmp_dir: &Path, name: &str, bytes: &[u8], mode: u32) -> io::Result<PathBuf> {
    write_new(tmp_dir, name, bytes, mode, true)
}

/// Writes `bytes` to a new file `dir/name` (fsynced if `sync`); a file left half-written by a
/// failure (a full disk) is removed.
fn write_new(dir: &Path, name: &str, bytes: &[u8], mode: u32, sync: bool) -> io::Result<PathBuf> {
    let path = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(kept_mode(mode))
        .open(&path)?;
    let written = apply_kept_mode(&path, mode)
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| if sync { file.sync_all() } else { Ok(()) });
    if let Err(e) = written {
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// How much of a file replacement must survive a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The new contents, under the name, once the call returns (fsync of file and directory).
    Durable,
    /// Whatever survives is whole, old or new (fsync of the file only): for records whose
    /// loss a later write repairs.
    OldOrNew,
    /// No fsync at all: for caches that are rebuilt when missing or unreadable.
    Cache,
}

/// Replaces `path` with `bytes` atomically and durably: temp file in the same
/// directory, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    replace_file(path, bytes, mode, Durability::Durable)
}

/// Replaces `path` with `bytes` atomically (temp file in the same directory, then rename), with
/// the fsyncs `durability` asks for.
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32, durability: Durability) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("path has no directory"))?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let name = unique_name(&format!(".{file_name}."), ".tmp");
    let tmp = write_new(dir, &name, bytes, mode, durability != Durability::Cache)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    match durability {
        Durability::Durable => fsync_dir(dir),
        Durability::OldOrNew | Durability::Cache => Ok(()),
    }
}

/// An exclusive advisory lock on a file, released on drop.
pub struct FileLock {
    file: File,
}

impl FileLock {
    fn open(path: &Path) -> io::Result<File> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(kept_mode(0o600))
            .open(path)?;
        // Only the lock file's maker may change its mode; the others find it shared already.
        if file
            .metadata()
            .is_ok_and(|m| m.uid() == crate::util::users::effective_uid())
        {
            apply_kept_mode(path, 0o600)?;
        }
        Ok(file)
    }

    /// Takes the lock if it is free.
    pub fn try_acquire(path: &Path) -> io::Result<Option<FileLock>> {
        Ok(Self::try_acquire_file(path)?.map(|(lock, _)| lock))
    }

    /// [`Self::try_acquire`], with a second handle on the locked file (to read or write it).
    pub fn try_acquire_file(path: &Path) -> io::Result<Option<(FileLock, File)>> {
        let file = Self::open(path)?;
        match fs2::FileExt::try_lock_exclusive(&file) {
            Ok(()) => {
                let handle = file.try_clone()?;
                Ok(Some((FileLock { file }, handle)))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits for the lock.
    pub fn acquire(path: &Path) -> io::Result<FileLock> {
        let file = Self::open(path)?;
        fs2::FileExt::lock_exclusive(&file)?;
        Ok(FileLock { file })
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = fs2::FileExt::unlock(&self.file);
    }
}

/// How long ago `path` was last modified. A modification time after now is no fact (written
/// under a wrong clock, or the clock was set back since): it counts as now, and is reset to now
/// so the file ages from here; whatever waits on the file's age then waits no longer than it
/// would have without the jump.
pub fn age_of(path: &Path) -> io::Result<std::time::Duration> {
    let modified = fs::metadata(path)?.modified()?;
    let now = std::time::SystemTime::now();
    match now.duration_since(modified) {
        Ok(age) => Ok(age),
        Err(_) => {
            // Best effort: a file that cannot be touched stays young, as it was before.
            if let Err(e) = File::open(path).and_then(|file| file.set_modified(now)) {
                log::debug!("resetting the time of {}: {e}", path.display());
            }
            Ok(std::time::Duration::ZERO)
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_modification_time_in_the_future_counts_as_now_and_ages_from_then() {
        let dir = tempfile::tempdir().unwrap();
        let ahead = std::time::SystemTime::now() + std::time::Duration::from_secs(365 * 86_400);
        File::open(dir.path()).unwrap().set_modified(ahead).unwrap();
        assert_eq!(age_of(dir.path()).unwrap(), std::time::Duration::ZERO);
        let modified = fs::metadata(dir.path()).unwrap().modified().unwrap();
        assert!(modified <= std::time::SystemTime::now(), "reset to now");
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        File::open(dir.path()).unwrap().set_modified(past).unwrap();
        assert!(age_of(dir.path()).unwrap() >= std::time::Duration::from_secs(60));
    }

    use super::*;

    #[test]
    fn orphaned_temp_dirs_of_dead_processes_are_removed_and_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let mine = tmp
            .path()
            .join(format!("git-push-mirror-view.{}.abc", std::process::id()));
        // A pid far above any pid_max: no such process.
        let dead = tmp.path().join("git-push-mirror-view.2147483000.abc");
        let other = tmp.path().join("someone-else.2147483000.abc");
        for dir in [&mine, &dead, &other] {
            fs::create_dir_all(dir.join("refs")).unwrap();
        }
        assert_eq!(
            remove_orphaned_temp_dirs(tmp.path(), std::time::Duration::from_secs(3600)),
            0,
            "too young"
        );
        assert_eq!(remove_orphaned_temp_dirs(tmp.path(), std::time::Duration::ZERO), 1);
        assert!(mine.exists() && other.exists() && !dead.exists());
        let made = private_temp_dir("lfs").unwrap();
        let name = made.path().file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with(&format!("git-push-mirror-lfs.{}.", std::process::id())),
            "{name}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(made.path()), 0o700, "no other user may list a temporary directory");
        create_private_dirs(&made.path().join("a/b")).unwrap();
        write_private(&made.path().join("a/b/file"), b"x").unwrap();
        assert_eq!(
            [mode(&made.path().join("a")), mode(&made.path().join("a/b/file"))],
            [0o700, 0o600]
        );
    }
}
