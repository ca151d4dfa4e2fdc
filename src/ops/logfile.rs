//! The log file, robust to logrotate: stderr (where the logger and anything else writes) is
//! pointed at `log_file`, and before each log record the file is reopened if it was renamed or
//! removed since (its inode changed), so rotation needs no `copytruncate` and no signal.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The mode of a log file the program creates: the log names repositories, mirrors and refs, so
/// others do not read it (the group may, for the admins' log readers).
pub const LOG_FILE_MODE: u32 = 0o640;

/// Opens `path` for appending (creating it mode 640, and its directory mode 750; the group may
/// write both when the spool and state are shared with it) and makes `fd` refer to it.
pub fn point_fd_at(fd: RawFd, path: &Path) -> std::io::Result<()> {
    use crate::util::fsutil::kept_mode;
    if let Some(dir) = path.parent() {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(kept_mode(0o750))
            .create(dir);
    }
    let file: File = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(kept_mode(LOG_FILE_MODE))
        .open(path)?;
    if file
        .metadata()
        .is_ok_and(|meta| meta.uid() == crate::util::users::effective_uid())
    {
        let _ = crate::util::fsutil::apply_kept_mode(path, LOG_FILE_MODE);
    }
    // SAFETY: dup2 atomically replaces `fd` with a duplicate of an open descriptor.
    if unsafe { libc::dup2(file.as_raw_fd(), fd) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Why this user could not write `path` as a log file (the file, or else the nearest existing
/// directory it would be created in), or `None` when it could.
pub fn writable_problem(path: &Path) -> Option<String> {
    let mut target = path;
    let what = loop {
        match std::fs::symlink_metadata(target) {
            Ok(meta) if target == path && meta.is_dir() => return Some("it is a directory".to_string()),
            Ok(meta) if target != path && !meta.is_dir() => {
                return Some(format!("{} is not a directory", target.display()));
            }
            Ok(_) => break if target == path { "the file" } else { "its directory" },
            Err(_) => match target.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => target = parent,
                _ => return Some("no part of its path exists".to_string()),
            },
        }
    };
    let c_path = std::ffi::CString::new(target.as_os_str().as_encoded_bytes()).ok()?;
    let mode = if target == path {
        libc::W_OK
    } else {
        libc::W_OK | libc::X_OK
    };
    // SAFETY: access only reads the NUL-terminated path.
    if unsafe { libc::access(c_path.as_ptr(), mode) } == 0 {
        return None;
    }
    let error = std::io::Error::last_os_error();
    Some(format!(
        "{what} {} cannot be written by this user ({error}): workers started by hooks and cron would lose \
         their log; make it writable by the user the hooks run as, or set log_file elsewhere",
        target.display()
    ))
}

/// The (device, inode) `fd` refers to.
fn fd_identity(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: fstat only writes into the stat buffer we own.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstat(fd, &mut stat) } == 0).then_some((stat.st_dev as u64, stat.st_ino as u64))
}

/// Whether `fd` no longer writes to the file now at `path` (rotated or deleted).
pub fn rotated(fd: RawFd, path: &Path) -> bool {
    let at_path = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    at_path.is_none() || at_path != fd_identity(fd)
}

/// Reopens `path` onto `fd` if it was rotated away. Errors are ignored: logging never fails a run.
pub fn reopen_if_rotated(fd: RawFd, path: &Path) {
    if rotated(fd, path) {
        let _ = point_fd_at(fd, path);
    }
}

/// A logger that keeps stderr on the log file across rotations, then lets `inner` write.
struct Reopening<L> {
    inner: L,
    path: PathBuf,
    /// Serialises the check-and-reopen (records from worker threads).
    lock: Mutex<()>,
}

impl<L: log::Log> log::Log for Reopening<L> {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.inner.enabled(record.metadata()) {
            return;
        }
        {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            reopen_if_rotated(2, &self.path);
        }
        self.inner.log(record);
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Sends stderr and `logger`'s records to `path`, following rotations. When `path` cannot be
/// opened, stderr stays where it was and the error is returned (and said there).
pub fn init(path: &Path, logger: simple_logger::SimpleLogger) -> std::io::Result<()> {
    let opened = point_fd_at(2, path);
    if let Err(e) = &opened {
        eprintln!(
            "git-push-mirror: warning: cannot open log_file {}: {e}; logging here instead",
            path.display()
        );
    }
    log::set_max_level(logger.max_level());
    let _ = log::set_boxed_logger(Box::new(Reopening {
        inner: logger,
        path: path.to_path_buf(),
        lock: Mutex::new(()),
    }));
    opened
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_rotated_log_file_is_reopened_and_a_current_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/gpm.log");
        // A descriptor of our own stands in for stderr.
        let mut fd_file = File::open("/dev/null").unwrap();
        let fd = fd_file.as_raw_fd();
        point_fd_at(fd, &log).unwrap();
        fd_file.write_all(b"before\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !LOG_FILE_MODE, 0, "created mode 640 or stricter, not {mode:o}");
        assert!(!rotated(fd, &log));
        reopen_if_rotated(fd, &log);
        fd_file.write_all(b"still before\n").unwrap();

        // logrotate without copytruncate: rename, then the next record opens a new file.
        std::fs::rename(&log, dir.path().join("logs/gpm.log.1")).unwrap();
        assert!(rotated(fd, &log));
        reopen_if_rotated(fd, &log);
        fd_file.write_all(b"after\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("logs/gpm.log.1")).unwrap(),
            "before\nstill before\n"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "after\n");

        // Deleted outright: recreated.
        std::fs::remove_file(&log).unwrap();
        reopen_if_rotated(fd, &log);
        fd_file.write_all(b"again\n").unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "again\n");
    }
}
