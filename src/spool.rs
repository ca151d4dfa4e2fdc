//! The spool: a durable directory queue between the hook and the worker.
//!
//! `tmp/` → (fsync) → rename into `new/` → the worker claims by rename into
//! `claimed/` → records what the entry asked for elsewhere → deletes it.
//! Unreadable entries go to `bad/`. Every step is a rename, so an entry is in
//! exactly one place at any instant, whatever kills whom.

use crate::fsutil::{fsync_dir, unique_name, write_synced};
use crate::oid::Oid;
use crate::refs::is_valid_ref_name;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One ref update as git reports it to `post-receive`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefUpdate {
    #[serde(rename = "ref")]
    pub name: String,
    pub old: Oid,
    pub new: Oid,
}

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

/// The spool directory.
#[derive(Clone, Debug)]
pub struct Spool {
    root: PathBuf,
}

impl Spool {
    pub fn new(root: &Path) -> Spool {
        Spool {
            root: root.to_path_buf(),
        }
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

    /// Creates the spool's directories (mode 0700: entries name repositories).
    pub fn ensure_dirs(&self) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        for sub in ["tmp", "new", "claimed", "bad"] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(self.dir(sub))?;
        }
        Ok(())
    }

    /// Writes an entry durably: temp file, fsync, rename into `new/`, fsync of `new/`.
    pub fn write(&self, entry: &SpoolEntry) -> io::Result<PathBuf> {
        let bytes = serde_json::to_vec(entry).map_err(io::Error::other)?;
        let write = || -> io::Result<PathBuf> {
            let name = unique_name("", ".json");
            let tmp = write_synced(&self.dir("tmp"), &name, &bytes, 0o600)?;
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

    /// Whether anything waits in `new/`.
    pub fn has_waiting(&self) -> bool {
        fs::read_dir(self.dir("new")).is_ok_and(|mut d| d.next().is_some())
    }

    /// Claims an entry by renaming it into `claimed/`. `None` when another
    /// worker claimed it first.
    pub fn claim(&self, name: &str) -> io::Result<Option<PathBuf>> {
        let dest = self.dir("claimed").join(name);
        match fs::rename(self.dir("new").join(name), &dest) {
            Ok(()) => Ok(Some(dest)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a claimed entry.
    pub fn read(&self, claimed: &Path) -> Result<SpoolEntry, BadEntry> {
        parse_entry(&fs::read(claimed)?)
    }

    /// Deletes a claimed entry whose request is recorded elsewhere.
    pub fn retire(&self, claimed: &Path) -> io::Result<()> {
        fs::remove_file(claimed)?;
        fsync_dir(&self.dir("claimed"))
    }

    /// Moves a claimed entry to `bad/` for the admin to inspect.
    pub fn quarantine(&self, claimed: &Path) -> io::Result<PathBuf> {
        let name = claimed
            .file_name()
            .ok_or_else(|| io::Error::other("entry without a name"))?;
        let dest = self.bad_dir().join(name);
        fs::rename(claimed, &dest)?;
        Ok(dest)
    }

    /// Puts entries a killed worker had claimed back into `new/`. Only called
    /// by the holder of the worker lock, when no other worker can hold claims.
    pub fn requeue_claimed(&self) -> io::Result<usize> {
        let names = list_sorted(&self.dir("claimed"))?;
        for name in &names {
            fs::rename(self.dir("claimed").join(name), self.dir("new").join(name))?;
        }
        Ok(names.len())
    }

    /// Number of entries waiting and the age of the oldest, for monitoring.
    pub fn depth(&self) -> io::Result<usize> {
        Ok(self.waiting()?.len() + list_sorted(&self.dir("claimed"))?.len())
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
        spool.claim(&name).unwrap().unwrap();
        assert!(!spool.has_waiting());
        assert_eq!(spool.requeue_claimed().unwrap(), 1);
        assert_eq!(spool.waiting().unwrap(), vec![name]);
    }
}
