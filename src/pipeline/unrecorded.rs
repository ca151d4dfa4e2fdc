//! Traces of pushes the hook could not record (a full disk, an unwritable spool): until a drift
//! scan has looked at the repository, its mirrors may be behind, and `status` and `metrics` say
//! so instead of showing nothing pending.
//!
//! The trace must survive the trouble that caused it, so it costs no data blocks:
//!
//! - in the repository (whose disk just took the push): an empty file
//!   [`REPO_MARKER`], created, or only its time changed when it exists;
//! - when even that fails, in the spool: the empty file [`SPOOL_MARKER`], made by every worker
//!   (time set to 1970), whose time the hook sets to now. Changing a time needs no free space,
//!   so this works on a full disk. Which repository it was is then unknown: every mirror may
//!   be behind until a drift scan of every repository ([`SPOOL_SCANNED`]'s time) is newer.
//!
//! The drift scan of a repository removes its marker when the marker is older than the scan.

use std::fs::{self, FileTimes, OpenOptions};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The marker in a repository whose push could not be recorded.
pub const REPO_MARKER: &str = "push-mirror.unrecorded";
/// The marker in the spool, for when the repository's could not be written either.
pub const SPOOL_MARKER: &str = "unrecorded";
/// In the spool: its time is when the last drift scan of every registered repository started.
pub const SPOOL_SCANNED: &str = "drift-scanned";

/// Leaves the trace of a push the hook could not record (see the module documentation).
pub fn record(spool_dir: &Path, repo: Option<&Path>) -> io::Result<()> {
    let now = SystemTime::now();
    if let Some(repo) = repo
        && touch(&repo.join(REPO_MARKER), now).is_ok()
    {
        return Ok(());
    }
    touch(&spool_dir.join(SPOOL_MARKER), now)
}

/// Sets `path`'s modification time to `at`, creating it empty first if needed.
fn touch(path: &Path, at: SystemTime) -> io::Result<()> {
    let file = match OpenOptions::new().write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(crate::util::fsutil::kept_mode(0o600))
                .open(path)
                .inspect(|_| {
                    let _ = crate::util::fsutil::apply_kept_mode(path, 0o600);
                })?
        }
        Err(e) => return Err(e),
    };
    file.set_times(FileTimes::new().set_modified(at))
}

/// Makes the spool's marker, dated 1970 (nothing unrecorded), so that a hook on a full disk
/// finds a file whose time it can change. Called by every worker.
pub fn prepare_spool(spool_dir: &Path) -> io::Result<()> {
    let path = spool_dir.join(SPOOL_MARKER);
    if path.exists() {
        return Ok(());
    }
    touch(&path, UNIX_EPOCH)
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Since when pushes to `repo` may be missing from its mirrors: its own marker's time, or the
/// spool marker's when it is newer than the last drift scan of every repository. `None` when
/// nothing is known to be unrecorded.
pub fn unrecorded_since(spool_dir: &Path, repo: &Path) -> Option<SystemTime> {
    let own = modified(&repo.join(REPO_MARKER));
    let spool = modified(&spool_dir.join(SPOOL_MARKER))
        .filter(|at| *at > UNIX_EPOCH)
        .filter(|at| modified(&spool_dir.join(SPOOL_SCANNED)).is_none_or(|scanned| *at >= scanned));
    own.into_iter().chain(spool).min()
}

/// After a drift scan of `repo` that started at `scan_started`: its marker goes, unless a hook
/// left it after the scan started (that push may have been missed).
pub fn clear_repo(repo: &Path, scan_started: SystemTime) {
    let marker = repo.join(REPO_MARKER);
    if modified(&marker).is_some_and(|at| at < scan_started) {
        let _ = fs::remove_file(marker);
    }
}

/// After a drift scan of every registered repository that started at `scan_started`: pushes the
/// spool's marker recorded before it are covered.
pub fn mark_spool_scanned(spool_dir: &Path, scan_started: SystemTime) {
    // Older than the start by a little: a marker set in the same instant stays visible.
    let at = scan_started.checked_sub(Duration::from_millis(1)).unwrap_or(UNIX_EPOCH);
    if let Err(e) = touch(&spool_dir.join(SPOOL_SCANNED), at) {
        log::warn!("recording the drift scan in {}: {e}", spool_dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repositorys_marker_lasts_until_a_scan_that_started_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, repo) = (dir.path().join("spool"), dir.path().join("app.git"));
        fs::create_dir_all(&spool).unwrap();
        fs::create_dir_all(&repo).unwrap();
        prepare_spool(&spool).unwrap();
        assert_eq!(
            unrecorded_since(&spool, &repo),
            None,
            "a fresh spool marker means nothing"
        );
        let before = SystemTime::now() - Duration::from_secs(10);
        record(&spool, Some(&repo)).unwrap();
        let since = unrecorded_since(&spool, &repo).expect("the push is known to be unrecorded");
        clear_repo(&repo, before);
        assert_eq!(
            unrecorded_since(&spool, &repo),
            Some(since),
            "a scan older than the push clears nothing"
        );
        clear_repo(&repo, SystemTime::now() + Duration::from_secs(1));
        assert_eq!(unrecorded_since(&spool, &repo), None);
    }

    #[test]
    fn without_the_repository_the_spool_marker_counts_for_every_repository_until_a_full_scan() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        fs::create_dir_all(&spool).unwrap();
        prepare_spool(&spool).unwrap();
        let unwritable = dir.path().join("gone/app.git");
        record(&spool, Some(&unwritable)).unwrap();
        let other = dir.path().join("other.git");
        assert!(unrecorded_since(&spool, &other).is_some());
        mark_spool_scanned(&spool, SystemTime::now() + Duration::from_secs(1));
        assert_eq!(unrecorded_since(&spool, &other), None);
    }
}
