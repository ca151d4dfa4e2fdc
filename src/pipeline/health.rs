//! What the state directory alone does not show, for `status` and `metrics`: pushes the hook
//! recorded in the spool that no worker has recorded in the state yet (a worker not run yet,
//! or a state directory that cannot be written: a full disk). Their refs are pending too.

use crate::pipeline::spool::parse_entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Refs of one repository waiting in the spool.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Spooled {
    pub refs: BTreeSet<String>,
    /// When the oldest of those pushes arrived (ms since the epoch).
    pub oldest_ms: u64,
}

/// The spool's waiting and claimed entries, by repository. Unreadable entries are left out
/// (a worker moves them to `spool/bad/`, which `metrics` counts).
pub fn spooled_refs(spool_dir: &Path) -> BTreeMap<PathBuf, Spooled> {
    let mut files = Vec::new();
    let listed = |dir: &Path| fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path());
    files.extend(listed(&spool_dir.join("new")));
    for owner in listed(&spool_dir.join("claimed")) {
        if owner.is_dir() {
            files.extend(listed(&owner));
        } else {
            files.push(owner);
        }
    }
    let mut by_repo: BTreeMap<PathBuf, Spooled> = BTreeMap::new();
    for file in files {
        let Ok(entry) = crate::pipeline::spool::read_entry_file(&file)
            .map_err(|_| ())
            .and_then(|bytes| parse_entry(&bytes).map_err(|_| ()))
        else {
            continue;
        };
        let spooled = by_repo.entry(entry.repo).or_insert_with(|| Spooled {
            refs: BTreeSet::new(),
            oldest_ms: u64::MAX,
        });
        spooled.refs.extend(entry.updates.into_iter().map(|u| u.name));
        spooled.oldest_ms = spooled.oldest_ms.min(entry.received_at_ms);
    }
    by_repo
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::spool::{RefUpdate, SPOOL_FORMAT_VERSION, Spool, SpoolEntry};
    use crate::util::oid::Oid;

    #[test]
    fn waiting_and_claimed_entries_count_per_repository() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        spool.ensure_dirs().unwrap();
        let entry = |repo: &str, name: &str, at: u64| SpoolEntry {
            version: SPOOL_FORMAT_VERSION,
            repo: PathBuf::from(repo),
            received_at_ms: at,
            updates: vec![RefUpdate {
                name: name.to_string(),
                old: Oid::parse(&"0".repeat(40)).unwrap(),
                new: Oid::parse(&"1".repeat(40)).unwrap(),
            }],
        };
        spool.write(&entry("/r/a.git", "refs/heads/main", 20)).unwrap();
        spool.write(&entry("/r/a.git", "refs/tags/v1", 10)).unwrap();
        let claimed = spool.write(&entry("/r/b.git", "refs/heads/x", 5)).unwrap();
        spool.claim(claimed.file_name().unwrap().to_str().unwrap()).unwrap();
        fs::write(dir.path().join("new/junk.json"), "not json").unwrap();

        let found = spooled_refs(dir.path());
        assert_eq!(found.len(), 2);
        let a = &found[Path::new("/r/a.git")];
        assert_eq!(a.refs.iter().collect::<Vec<_>>(), ["refs/heads/main", "refs/tags/v1"]);
        assert_eq!(a.oldest_ms, 10);
        assert_eq!(found[Path::new("/r/b.git")].oldest_ms, 5, "claimed entries count too");
        assert!(spooled_refs(&dir.path().join("missing")).is_empty());
    }
}
