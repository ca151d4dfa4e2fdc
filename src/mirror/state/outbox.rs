//! The notices waiting to be sent: one durable file per notice in `<state_dir>/notify/outbox/`,
//! written (and fsynced) before the state records the notice as told, and removed only once
//! every channel took it, so a kill at any moment repeats a notice at most, never loses one.

use crate::mirror::state::create_private_dir;
use crate::mirror::state::incident::Notice;
use crate::util::fsutil::{Durability, replace_file, unique_name};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The outbox directory of a state directory.
#[derive(Clone, Debug)]
pub struct Outbox {
    dir: PathBuf,
}

/// A queued notice and the channels that already took it.
#[derive(Clone, Debug)]
pub struct Queued {
    pub path: PathBuf,
    pub notice: Notice,
    pub delivered: BTreeSet<String>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    notice: Notice,
    #[serde(default)]
    delivered: BTreeSet<String>,
}

impl Outbox {
    pub fn new(state_dir: &Path) -> Outbox {
        Outbox {
            dir: state_dir.join("notify").join("outbox"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where unreadable entries are moved for the admin.
    fn bad_dir(&self) -> PathBuf {
        self.dir.with_file_name("bad")
    }

    /// Queues a notice durably (its file and the directory entry are on disk when this returns).
    pub fn put(&self, notice: &Notice) -> Result<()> {
        create_private_dir(&self.dir)?;
        let entry = Entry {
            notice: notice.clone(),
            delivered: BTreeSet::new(),
        };
        let path = self.dir.join(unique_name("", ".json"));
        let bytes = serde_json::to_vec(&entry)?;
        replace_file(&path, &bytes, 0o600, Durability::Durable).with_context(|| format!("writing {}", path.display()))
    }

    /// Names of the waiting notices, oldest first (temporary files of a write in progress excluded).
    fn names(&self) -> io::Result<Vec<String>> {
        let mut names = match fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|name| !name.starts_with('.') && name.ends_with(".json"))
                .collect::<Vec<_>>(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        names.sort();
        Ok(names)
    }

    /// How many notices wait (for `metrics`).
    pub fn len(&self) -> usize {
        self.names().map_or(0, |names| names.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The waiting notices, oldest first. An unreadable entry is moved to `notify/bad/` and logged.
    pub fn list(&self) -> Result<Vec<Queued>> {
        let mut queued = Vec::new();
        for name in self
            .names()
            .with_context(|| format!("reading {}", self.dir.display()))?
        {
            let path = self.dir.join(&name);
            let bytes = match fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            match serde_json::from_slice::<Entry>(&bytes) {
                Ok(entry) => queued.push(Queued {
                    path,
                    notice: entry.notice,
                    delivered: entry.delivered,
                }),
                Err(e) => {
                    let bad = self.bad_dir();
                    create_private_dir(&bad)?;
                    fs::rename(&path, bad.join(&name)).with_context(|| format!("moving {} aside", path.display()))?;
                    log::error!(
                        "notice {} is unreadable ({e}); moved to {}",
                        path.display(),
                        bad.display()
                    );
                }
            }
        }
        Ok(queued)
    }

    /// Records which channels took the notice (`queued.delivered`); removes it once none is left
    /// to take it (`remaining` false).
    pub fn record(&self, queued: &Queued, remaining: bool) -> Result<()> {
        if !remaining {
            return self.remove(queued);
        }
        let entry = Entry {
            notice: queued.notice.clone(),
            delivered: queued.delivered.clone(),
        };
        let bytes = serde_json::to_vec(&entry)?;
        replace_file(&queued.path, &bytes, 0o600, Durability::Durable)
            .with_context(|| format!("writing {}", queued.path.display()))
    }

    /// Removes a notice (sent, or not wanted).
    pub fn remove(&self, queued: &Queued) -> Result<()> {
        super::remove_if_present(&queued.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::notify::Event;

    #[test]
    fn notices_wait_in_order_until_every_channel_took_them() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path());
        assert!(outbox.is_empty());
        for at in [1, 2] {
            outbox
                .put(&Notice::new(Event::Failed, Path::new("/r.git"), Some("m"), at))
                .unwrap();
        }
        let mut queued = outbox.list().unwrap();
        assert_eq!(queued.iter().map(|q| q.notice.at_ms).collect::<Vec<_>>(), [1, 2]);
        queued[0].delivered.insert("webhook".into());
        outbox.record(&queued[0], true).unwrap();
        let again = outbox.list().unwrap();
        assert_eq!(again[0].delivered.iter().collect::<Vec<_>>(), ["webhook"]);
        outbox.record(&queued[0], false).unwrap();
        assert_eq!(outbox.len(), 1);
        std::fs::write(outbox.dir().join("0-junk.json"), "{").unwrap();
        assert_eq!(outbox.list().unwrap().len(), 1, "an unreadable entry is moved aside");
        assert!(dir.path().join("notify/bad/0-junk.json").exists());
    }
}
