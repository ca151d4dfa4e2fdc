//! Live configuration: a worker that runs or lingers notices every change of the global
//! configuration file (silent mode, a fleet mirror disabled, re-pointed or removed, new
//! defaults) and applies it to the next update it starts. Before starting updates it looks at
//! the file, found the way the command found it: its inode, size and times first (one `stat`),
//! and its bytes when those changed or are too recent to trust (an edit within the same clock
//! tick as the last read may leave the times and size unchanged, as git's "racy" index entries).
//!
//! Per-repository files need no watching: the worker reads a repository's configuration afresh
//! before each update of it.

use crate::config::{self, GlobalConfig};
use crate::util::regular_file::{MAX_CONFIG_FILE_SIZE, read_regular};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What a look at the global configuration found.
#[derive(Debug)]
pub enum Change {
    /// Nothing changed (or it is still broken in the same way).
    None,
    /// The configuration changed; [`GlobalWatch::current`] is the new one.
    Reloaded,
    /// The file cannot be used now; updates must wait until it is fixed.
    Broken(String),
    /// The spool or state directory changed: this worker's directories are not the configured
    /// ones any more. It claims nothing more, finishes what runs and hands the rest to a worker
    /// on the new ones (this configuration).
    Moved(Arc<GlobalConfig>),
}

/// The global configuration a worker uses, kept equal to the file on disk.
pub struct GlobalWatch {
    /// `--config`, as the command got it (the environment variable is looked up again).
    explicit: Option<PathBuf>,
    /// The file the current configuration came from, and its bytes.
    seen: Option<(PathBuf, Vec<u8>)>,
    /// What `stat` said about that file when it was read, and when it was read.
    stamp: Option<(Stamp, SystemTime)>,
    current: Arc<GlobalConfig>,
    broken: Option<String>,
}

/// What identifies a version of a file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    size: u64,
    modified: Option<SystemTime>,
    changed: (i64, i64),
}

fn stamp_of(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        inode: meta.ino(),
        size: meta.len(),
        modified: meta.modified().ok(),
        changed: (meta.ctime(), meta.ctime_nsec()),
    })
}

/// How close to a read a modification must be for the file's times to be doubted.
const RACY: Duration = Duration::from_secs(2);

fn read_located(explicit: Option<&Path>) -> Result<Option<(PathBuf, Vec<u8>)>, String> {
    let located = config::locate_global(explicit, &|name| std::env::var_os(name)).map_err(|e| e.to_string())?;
    match located {
        None => Ok(None),
        // Never a blocking read: the file may have been replaced by a FIFO since it was loaded.
        Some(path) => read_regular(&path, MAX_CONFIG_FILE_SIZE)
            .map(|(bytes, _)| Some((path.clone(), bytes)))
            .map_err(|e| format!("{}: {e}", path.display())),
    }
}

impl GlobalWatch {
    /// Watches the file `global` was loaded from (found through `explicit`, as `--config`).
    pub fn new(explicit: Option<&Path>, global: &GlobalConfig) -> GlobalWatch {
        let seen = read_located(explicit).ok().flatten();
        let stamp = seen
            .as_ref()
            .and_then(|(path, _)| stamp_of(path))
            .map(|stamp| (stamp, SystemTime::now()));
        GlobalWatch {
            explicit: explicit.map(Path::to_path_buf),
            seen,
            stamp,
            current: Arc::new(global.clone()),
            broken: None,
        }
    }

    /// The configuration to start updates with.
    pub fn current(&self) -> Arc<GlobalConfig> {
        Arc::clone(&self.current)
    }

    /// Whether the file is certainly the one read last: same path, same `stat`, and modified
    /// long enough before that read for its times to be trusted.
    fn unchanged(&self) -> bool {
        let (Some((path, _)), Some((stamp, read_at))) = (&self.seen, &self.stamp) else {
            return false;
        };
        let trusted = stamp.modified.is_some_and(|modified| modified + RACY < *read_at);
        trusted
            && stamp_of(path).as_ref() == Some(stamp)
            && config::locate_global(self.explicit.as_deref(), &|name| std::env::var_os(name))
                .is_ok_and(|located| located.as_deref() == Some(path.as_path()))
    }

    /// Looks at the file again; reloads it if its bytes changed.
    pub fn check(&mut self) -> Change {
        if self.broken.is_none() && self.unchanged() {
            return Change::None;
        }
        let read_at = SystemTime::now();
        let now = match read_located(self.explicit.as_deref()) {
            Ok(now) => now,
            Err(message) => return self.broken(message),
        };
        self.stamp = now
            .as_ref()
            .and_then(|(path, _)| stamp_of(path))
            .map(|stamp| (stamp, read_at));
        if now == self.seen {
            return match &self.broken {
                Some(message) => Change::Broken(message.clone()),
                None => Change::None,
            };
        }
        self.seen = now;
        match config::load_global(self.explicit.as_deref()) {
            Ok(new) => {
                self.broken = None;
                if new.spool_dir != self.current.spool_dir || new.state_dir != self.current.state_dir {
                    return Change::Moved(Arc::new(new));
                }
                if new == *self.current {
                    return Change::None;
                }
                self.current = Arc::new(new);
                Change::Reloaded
            }
            Err(e) => self.broken(e.to_string()),
        }
    }

    fn broken(&mut self, message: String) -> Change {
        self.broken = Some(message.clone());
        Change::Broken(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_are_seen_and_a_broken_file_is_reported_until_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        let state = dir.path().join("state");
        let text = |extra: &str| format!("state_dir = \"{}\"\n{extra}", state.display());
        std::fs::write(&file, text("")).unwrap();
        let global = config::load_global(Some(&file)).unwrap();
        let mut watch = GlobalWatch::new(Some(&file), &global);
        assert!(matches!(watch.check(), Change::None));

        std::fs::write(&file, text("silent_mode = true\n")).unwrap();
        assert!(matches!(watch.check(), Change::Reloaded));
        assert!(watch.current().silent_mode);
        assert!(matches!(watch.check(), Change::None));

        std::fs::write(&file, text("silent_mode = tru\n")).unwrap();
        assert!(matches!(watch.check(), Change::Broken(m) if m.contains("config.toml:")));
        assert!(matches!(watch.check(), Change::Broken(_)), "still broken");
        assert!(watch.current().silent_mode, "the last good configuration is kept");

        std::fs::write(&file, text("silent_mode = false\n")).unwrap();
        assert!(matches!(watch.check(), Change::Reloaded));
        assert!(!watch.current().silent_mode);

        std::fs::write(&file, format!("state_dir = \"{}/elsewhere\"\n", dir.path().display())).unwrap();
        assert!(matches!(watch.check(), Change::Moved(new) if new.state_dir.ends_with("elsewhere")));
    }
}
