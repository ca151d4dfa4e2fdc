//! The spool: a durable directory queue between the hook and the worker.
//!
//! `tmp/` → (fsync) → rename into `new/` → the worker claims by rename into
//! `claimed/` → records what the entry asked for elsewhere → deletes it.
//! Unreadable entries go to `bad/`. Every step is a rename, so an entry is in
//! exactly one place at any instant, whatever kills whom.

use crate::mirror::refs::is_valid_ref_name;
use crate::util::fsutil::{fsync_dir, unique_name, write_synced};
pub use crate::util::oid::RefUpdate;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What one hook run recorded: a repository and the refs a push changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolEntry {
    /// Format version, for readers of old spools.
    pub version: u32,
    /// Absolute path of the repository.
    pub repo: PathBuf,
    /// When the hook ran (ms since the epoch).
    pub received_at_ms: u64,
    pub updates: Vec<RefUpdate>,
}

pub const SPOOL_FORMAT_VERSION: u32 = 1;

/// The name of the worker lock inside the spool directory: the one worker draining the spool
/// holds it; the hook tries it to know whether to start one.
pub const WORKER_LOCK: &str = "worker.lock";

/// The suffix of entries in `bad/` that named a repository the worker does not trust.
pub const UNTRUSTED_SUFFIX: &str = ".untrusted";

/// Why a spool file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BadEntry {
    #[error("unreadable: {0}")]
    Io(#[from] io::Error),
    #[error("not a spool entry: {0}")]
    Format(String),
}

/// Parses and checks a spool file's bytes; nothing in a spool file is trusted.
pub fn parse_entry(bytes: &[u8]) -> Result<SpoolEntry, BadEntry> {
    let entry: SpoolEntry = serde_json::from_slice(bytes).map_err(|e| BadEntry::Format(e.to_string()))?;
    if entry.version != SPOOL_FORMAT_VERSION {
        return Err(BadEntry::Format(format!("unsupported version {}", entry.version)));
    }
    if !entry.repo.is_absolute() {
        return Err(BadEntry::Format(format!(
            "repository path {} is not absolute",
            entry.repo.display()
        )));
    }
    if let Some(bad) = entry.updates.iter().find(|u| !is_valid_ref_name(&u.name)) {
        return Err(BadEntry::Format(format!("invalid ref name {:?}", bad.name)));
    }
    Ok(entry)
}

/// The bytes of a spool file: a regular file only (a FIFO or a device put in the spool is
/// never read, it would hang or flood the worker). Entries have no size limit: a push of many
/// refs makes a large one.
pub fn read_entry_file(path: &Path) -> io::Result<Vec<u8>> {
    crate::util::regular_file::read_regular(path, u64::MAX).map(|(bytes, _)| bytes)
}

/// Entries waiting in `new/`, as [`Spool::oldest_waiting`] listed them.
#[derive(Debug, Default)]
pub struct Waiting {
    /// The oldest names, oldest first.
    pub names: Vec<String>,
    /// The newest name listed.
    pub newest: Option<String>,
    /// Whether `names` holds every name listed.
    pub all: bool,
}

/// The spool directory.
#[derive(Clone, Debug)]
pub struct Spool {
    root: PathBuf,
    /// This process's claim directory name under `claimed/`: `<host>.<pid>.<start time>`.
    owner: String,
    /// How long another host's claim stays its own without being renewed (`claim_timeout`).
    claim_timeout: std::time::Duration,
}

/// A temp file untouched this long belongs to a hook that died before publishing it.
const STALE_TEMP_FILE: std::time::Duration = std::time::Duration::from_secs(600);

impl Spool {
    pub fn new(root: &Path) -> Spool {
        Spool {
            root: root.to_path_buf(),
            // `<host>.<pid>.<start time>`: a claim of a dead worker is found even once its pid is reused.
            owner: crate::util::lease::this_holder(),
            claim_timeout: crate::config::DEFAULT_CLAIM_TIMEOUT,
        }
    }

    /// This spool, judging other hosts' claims by `claim_timeout`.
    pub fn with_claim_timeout(mut self, claim_timeout: std::time::Duration) -> Spool {
        self.claim_timeout = claim_timeout;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Where unreadable entries are kept for the admin.
    pub fn bad_dir(&self) -> PathBuf {
        self.dir("bad")
    }

    /// Creates the spool's directories (mode 0700: entries name repositories; 0770 when shared
    /// with a group, see [`crate::util::fsutil::share_with_group`]).
    pub fn ensure_dirs(&self) -> io::Result<()> {
        for sub in ["tmp", "new", "claimed", "bad"] {
            crate::util::fsutil::create_kept_dirs(&self.dir(sub))?;
        }
        Ok(())
    }

    /// Writes an entry durably: temp file, fsync, rename into `new/`, fsync of `new/`.
    pub fn write(&self, entry: &SpoolEntry) -> io::Result<PathBuf> {
        let bytes = serde_json::to_vec(entry).map_err(io::Error::other)?;
        let write = || -> io::Result<PathBuf> {
            let name = unique_name("", ".json");
            let tmp = write_synced(&self.dir("tmp"), &name, &bytes, 0o600)?;
            crate::util::failpoint::hit("spool.before_publish");
            let dest = self.dir("new").join(&name);
            fs::rename(&tmp, &dest).inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })?;
            fsync_dir(&self.dir("new"))?;
            Ok(dest)
        };
        write().or_else(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                self.ensure_dirs()?;
                write()
            } else {
                Err(e)
            }
        })
    }

    /// Names of entries waiting in `new/`, oldest first.
    pub fn waiting(&self) -> io::Result<Vec<String>> {
        list_sorted(&self.dir("new"))
    }

    /// The names of the oldest entries waiting in `new/` (none newer than `up_to`), at most
    /// `max`, oldest first: one pass over the directory that keeps only those, so a backlog of
    /// any size is read in batches of bounded memory. Names start with the time the hook wrote
    /// them, so `up_to` set to the `newest` of a first listing leaves out what came after it.
    pub fn oldest_waiting(&self, max: usize, up_to: Option<&str>) -> io::Result<Waiting> {
        let mut oldest = std::collections::BinaryHeap::with_capacity(max.saturating_add(1));
        let mut newest: Option<String> = None;
        let entries = match fs::read_dir(self.dir("new")) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Waiting::default()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let Ok(name) = entry?.file_name().into_string() else {
                continue;
            };
            if up_to.is_some_and(|up_to| name.as_str() > up_to) {
                continue;
            }
            if newest.as_ref().is_none_or(|newest| name > *newest) {
                newest = Some(name.clone());
            }
            if oldest.len() < max {
                oldest.push(name);
            } else if oldest.peek().is_some_and(|kept: &String| name < *kept) {
                oldest.pop();
                oldest.push(name);
            }
        }
        let names = oldest.into_sorted_vec();
        Ok(Waiting {
            all: names.len() < max,
            names,
            newest,
        })
    }

    /// Whether anything waits in `new/`.
    pub fn has_waiting(&self) -> bool {
        fs::read_dir(self.dir("new")).is_ok_and(|mut d| d.next().is_some())
    }

    fn claim_dir(&self) -> PathBuf {
        self.dir("claimed").join(&self.owner)
    }

    /// Claims an entry by renaming it into this process's `claimed/<host>.<pid>/`:
    /// atomic, so of several workers (even on hosts sharing the spool) exactly
    /// one gets it. `None` when another worker claimed it first.
    pub fn claim(&self, name: &str) -> io::Result<Option<PathBuf>> {
        let dest = self.claim_dir().join(name);
        let claim = || fs::rename(self.dir("new").join(name), &dest);
        let claimed = match claim() {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.claim_dir().exists() => {
                crate::util::fsutil::create_kept_dirs(&self.claim_dir())?;
                // Renewed while this process lives (its heartbeat): another host takes the
                // claims over only once that stops.
                crate::util::lease::hold(&self.claim_dir())?;
                claim()
            }
            other => other,
        };
        match claimed {
            Ok(()) => Ok(Some(dest)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a claimed entry.
    pub fn read(&self, claimed: &Path) -> Result<SpoolEntry, BadEntry> {
        parse_entry(&read_entry_file(claimed)?)
    }

    /// Deletes a claimed entry whose request is recorded elsewhere.
    pub fn retire(&self, claimed: &Path) -> io::Result<()> {
        fs::remove_file(claimed)?;
        fsync_dir(claimed.parent().unwrap_or(&self.claim_dir()))
    }

    /// Deletes claimed entries whose requests are recorded elsewhere, with one fsync per
    /// directory they were in (a batch's entries are all in this process's claim directory).
    pub fn retire_all(&self, claimed: &[PathBuf]) -> io::Result<()> {
        let mut dirs = std::collections::BTreeSet::new();
        for path in claimed {
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            dirs.insert(path.parent().unwrap_or(&self.root).to_path_buf());
        }
        dirs.iter().try_for_each(|dir| fsync_dir(dir))
    }

    /// Gives a claimed entry back: into `new/`, for whichever worker claims it next.
    pub fn release(&self, claimed: &Path) -> io::Result<()> {
        let name = claimed
            .file_name()
            .ok_or_else(|| io::Error::other("entry without a name"))?;
        fs::rename(claimed, self.dir("new").join(name))?;
        fsync_dir(&self.dir("new"))
    }

    /// Moves a claimed entry to `bad/` for the admin to inspect.
    pub fn quarantine(&self, claimed: &Path) -> io::Result<PathBuf> {
        self.quarantine_as(claimed, "")
    }

    /// Moves a claimed entry naming a repository the worker does not trust to
    /// `bad/<name>.untrusted` (counted apart by `metrics`).
    pub fn quarantine_untrusted(&self, claimed: &Path) -> io::Result<PathBuf> {
        self.quarantine_as(claimed, UNTRUSTED_SUFFIX)
    }

    fn quarantine_as(&self, claimed: &Path, suffix: &str) -> io::Result<PathBuf> {
        let mut name = claimed
            .file_name()
            .ok_or_else(|| io::Error::other("entry without a name"))?
            .to_os_string();
        name.push(suffix);
        let dest = self.bad_dir().join(name);
        fs::rename(claimed, &dest)?;
        Ok(dest)
    }

    /// Puts entries claimed by workers that are gone back into `new/`: this host's dead
    /// processes, and other hosts' claims not renewed within `claim_timeout` (see
    /// [`crate::util::lease`]).
    pub fn requeue_claimed(&self) -> io::Result<usize> {
        let host_prefix = format!("{}.", crate::util::lease::host_name());
        let mut requeued = 0;
        for owner in list_sorted(&self.dir("claimed"))? {
            let dir = self.dir("claimed").join(&owner);
            if !dir.is_dir() {
                // A claim from before per-worker claim directories.
                fs::rename(&dir, self.dir("new").join(&owner))?;
                requeued += 1;
                continue;
            }
            let dead = match owner.strip_prefix(&host_prefix) {
                Some(process) => !crate::util::fsutil::identity_alive(process),
                // A time after now counts as now (and ages from now): a clock set back never
                // keeps a dead host's claims for longer than `claim_timeout`.
                None => crate::util::fsutil::age_of(&dir)? > self.claim_timeout,
            };
            if !dead || owner == self.owner {
                continue;
            }
            for name in list_sorted(&dir)? {
                fs::rename(dir.join(&name), self.dir("new").join(&name))?;
                requeued += 1;
            }
            let _ = fs::remove_dir(&dir);
        }
        Ok(requeued)
    }

    /// How long until the oldest claim of another host is taken over, if it is not renewed
    /// meanwhile (`None`: no other host holds a claim).
    pub fn next_takeover(&self) -> io::Result<Option<std::time::Duration>> {
        let host_prefix = format!("{}.", crate::util::lease::host_name());
        let mut next: Option<std::time::Duration> = None;
        for owner in list_sorted(&self.dir("claimed"))? {
            let dir = self.dir("claimed").join(&owner);
            if owner.starts_with(&host_prefix) || !dir.is_dir() {
                continue;
            }
            let remaining = self.claim_timeout.saturating_sub(crate::util::fsutil::age_of(&dir)?);
            next = Some(next.map_or(remaining, |n| n.min(remaining)));
        }
        Ok(next)
    }

    /// Moves every waiting entry of `other` into this spool, durably (hooks
    /// fall back to the default spool while the global configuration is
    /// broken). Unreadable entries stay in `other` for `other`'s own worker.
    pub fn adopt(&self, other: &Spool) -> io::Result<usize> {
        let mut adopted = 0;
        for name in other.waiting()? {
            let Some(claimed) = other.claim(&name)? else { continue };
            match other.read(&claimed) {
                Ok(entry) => {
                    self.write(&entry)?;
                    other.retire(&claimed)?;
                    adopted += 1;
                }
                Err(_) => {
                    other.quarantine(&claimed)?;
                }
            }
        }
        other.release_claims();
        Ok(adopted)
    }

    /// Deletes temp files of hooks that died before publishing them (their
    /// push is caught by the drift scan); only old ones, never a live write.
    pub fn remove_stale_temp_files(&self) -> io::Result<usize> {
        let mut removed = 0;
        for name in list_sorted(&self.dir("tmp"))? {
            let path = self.dir("tmp").join(&name);
            if fs::metadata(&path)?
                .modified()?
                .elapsed()
                .is_ok_and(|age| age > STALE_TEMP_FILE)
            {
                fs::remove_file(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes this process's claim directory if it is empty (at exit).
    pub fn release_claims(&self) {
        let dir = self.claim_dir();
        if !dir.exists() {
            return;
        }
        // Released before it is removed: a renewal in between would take its absence for a takeover.
        crate::util::lease::release(&dir);
        if fs::remove_dir(&dir).is_err() {
            // Entries still claimed (held back): renewed as before.
            let _ = crate::util::lease::hold(&dir);
        }
    }

    /// Entries waiting or claimed, for monitoring.
    pub fn depth(&self) -> io::Result<usize> {
        let mut depth = self.waiting()?.len();
        for owner in list_sorted(&self.dir("claimed"))? {
            let dir = self.dir("claimed").join(&owner);
            depth += if dir.is_dir() { list_sorted(&dir)?.len() } else { 1 };
        }
        Ok(depth)
    }
}

fn list_sorted(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                if let Some(name) = entry?.file_name().to_str() {
                    names.push(name.to_string());
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::oid::Oid;

    fn entry() -> SpoolEntry {
        SpoolEntry {
            version: SPOOL_FORMAT_VERSION,
            repo: PathBuf::from("/srv/git/app.git"),
            received_at_ms: 1,
            updates: vec![RefUpdate {
                name: "refs/heads/main".into(),
                old: Oid::parse(&"0".repeat(40)).unwrap(),
                new: Oid::parse(&"a".repeat(40)).unwrap(),
            }],
        }
    }

    #[test]
    fn entries_round_trip_through_new_and_claimed() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        spool.write(&entry()).unwrap();
        let names = spool.waiting().unwrap();
        assert_eq!(names.len(), 1);
        let claimed = spool.claim(&names[0]).unwrap().unwrap();
        assert!(spool.claim(&names[0]).unwrap().is_none(), "an entry is claimed once");
        assert_eq!(spool.read(&claimed).unwrap(), entry());
        spool.retire(&claimed).unwrap();
        assert!(!spool.has_waiting());
        assert_eq!(spool.depth().unwrap(), 0);
    }

    #[test]
    fn the_oldest_entries_come_first_in_bounded_batches_and_retire_together() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        for _ in 0..7 {
            spool.write(&entry()).unwrap();
        }
        let all = spool.waiting().unwrap();
        let first = spool.oldest_waiting(3, None).unwrap();
        assert_eq!((first.names.as_slice(), first.all), (&all[..3], false));
        assert_eq!(first.newest.as_ref(), all.last());
        let every = spool.oldest_waiting(100, None).unwrap();
        assert_eq!((every.names, every.all), (all.clone(), true));
        let claimed: Vec<PathBuf> = first.names.iter().map(|n| spool.claim(n).unwrap().unwrap()).collect();
        assert_eq!(spool.oldest_waiting(3, None).unwrap().names, all[3..6].to_vec());
        let up_to = spool.oldest_waiting(3, Some(&all[4])).unwrap();
        assert_eq!(
            (up_to.names.as_slice(), up_to.all),
            (&all[3..5], true),
            "none newer than up_to"
        );
        spool.retire_all(&claimed).unwrap();
        assert_eq!(spool.depth().unwrap(), 4);
        assert!(
            Spool::new(&dir.path().join("none"))
                .oldest_waiting(3, None)
                .unwrap()
                .names
                .is_empty()
        );
    }

    #[test]
    fn a_released_entry_waits_again() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        spool.write(&entry()).unwrap();
        let name = spool.waiting().unwrap().remove(0);
        let claimed = spool.claim(&name).unwrap().unwrap();
        assert!(!spool.has_waiting());
        spool.release(&claimed).unwrap();
        assert_eq!(spool.waiting().unwrap(), vec![name]);
        assert_eq!(spool.depth().unwrap(), 1);
    }

    #[test]
    fn corrupt_entries_are_rejected() {
        assert!(parse_entry(b"").is_err());
        assert!(parse_entry(b"{\"version\":1").is_err());
        let mut e = entry();
        e.updates[0].name = "refs/heads/a..b".into();
        assert!(parse_entry(&serde_json::to_vec(&e).unwrap()).is_err());
        let mut e = entry();
        e.repo = PathBuf::from("relative.git");
        assert!(parse_entry(&serde_json::to_vec(&e).unwrap()).is_err());
        let mut e = entry();
        e.version = 99;
        assert!(parse_entry(&serde_json::to_vec(&e).unwrap()).is_err());
    }

    #[test]
    fn claimed_entries_of_a_dead_worker_are_requeued() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        spool.write(&entry()).unwrap();
        let name = spool.waiting().unwrap().remove(0);
        let claimed = spool.claim(&name).unwrap().unwrap();
        assert_eq!(spool.requeue_claimed().unwrap(), 0, "a live worker's claims stay");
        // Move the claim under a process of this host that cannot exist.
        let dead = dir
            .path()
            .join("claimed")
            .join(format!("{}.{}", crate::util::lease::host_name(), i32::MAX));
        fs::create_dir_all(&dead).unwrap();
        fs::rename(&claimed, dead.join(&name)).unwrap();
        assert!(!spool.has_waiting());
        assert_eq!(spool.depth().unwrap(), 1);
        assert_eq!(spool.requeue_claimed().unwrap(), 1);
        assert_eq!(spool.waiting().unwrap(), vec![name]);
        assert!(!dead.exists());
    }

    #[test]
    fn claims_of_a_dead_worker_whose_pid_was_reused_are_requeued() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        spool.write(&entry()).unwrap();
        let name = spool.waiting().unwrap().remove(0);
        let claimed = spool.claim(&name).unwrap().unwrap();
        // The pid runs (it is ours), but it is another process: its start time differs.
        let reused =
            dir.path()
                .join("claimed")
                .join(format!("{}.{}.1", crate::util::lease::host_name(), std::process::id()));
        fs::create_dir_all(&reused).unwrap();
        fs::rename(&claimed, reused.join(&name)).unwrap();
        assert_eq!(spool.requeue_claimed().unwrap(), 1);
        assert_eq!(spool.waiting().unwrap(), vec![name]);
    }

    #[test]
    fn claims_of_other_hosts_are_requeued_only_when_stale() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        spool.ensure_dirs().unwrap();
        let other = dir.path().join("claimed").join("otherhost.42");
        fs::create_dir_all(&other).unwrap();
        fs::write(other.join("e.json"), b"{}").unwrap();
        assert_eq!(
            spool.requeue_claimed().unwrap(),
            0,
            "another host's fresh claim is in flight"
        );
        let old =
            std::time::SystemTime::now() - crate::config::DEFAULT_CLAIM_TIMEOUT - std::time::Duration::from_secs(1);
        fs::File::open(&other).unwrap().set_modified(old).unwrap();
        assert_eq!(spool.requeue_claimed().unwrap(), 1);
        // A claim touched "a year from now" (its host's clock was wrong) is as young as a new
        // one, and ages from now: it is taken over once `claim_timeout` has passed, not in a year.
        fs::create_dir_all(&other).unwrap();
        fs::write(other.join("f.json"), b"{}").unwrap();
        let ahead = std::time::SystemTime::now() + std::time::Duration::from_secs(365 * 86_400);
        fs::File::open(&other).unwrap().set_modified(ahead).unwrap();
        assert_eq!(spool.requeue_claimed().unwrap(), 0);
        let touched = fs::metadata(&other).unwrap().modified().unwrap();
        assert!(touched <= std::time::SystemTime::now(), "its time counts as now");
    }

    #[test]
    fn another_hosts_claim_is_taken_over_once_claim_timeout_passes_unrenewed() {
        let dir = tempfile::tempdir().unwrap();
        let timeout = std::time::Duration::from_secs(30);
        let spool = Spool::new(dir.path()).with_claim_timeout(timeout);
        spool.ensure_dirs().unwrap();
        assert_eq!(spool.next_takeover().unwrap(), None);
        let other = dir.path().join("claimed").join("otherhost.42.7");
        fs::create_dir_all(&other).unwrap();
        fs::write(other.join("e.json"), b"{}").unwrap();
        let next = spool.next_takeover().unwrap().unwrap();
        assert!(next > std::time::Duration::from_secs(25) && next <= timeout, "{next:?}");
        assert_eq!(spool.requeue_claimed().unwrap(), 0);
        let old = std::time::SystemTime::now() - timeout - std::time::Duration::from_secs(1);
        fs::File::open(&other).unwrap().set_modified(old).unwrap();
        assert_eq!(spool.next_takeover().unwrap(), Some(std::time::Duration::ZERO));
        assert_eq!(spool.requeue_claimed().unwrap(), 1);
        assert_eq!(spool.waiting().unwrap(), vec!["e.json".to_string()]);
        assert_eq!(spool.next_takeover().unwrap(), None);
    }
}
