//! Mirrors left behind (docs/mirror-side.md): when a registered repository is found gone
//! (deleted, or renamed: fleet discovery then finds it under its new name, with new mirror URLs),
//! the mirrors it had pushed to are recorded here before its state is forgotten, and `status` and
//! `metrics` report them until `forget OLD_PATH` says the admin has dealt with them. Nothing is
//! ever deleted on a mirror. One small JSON file per repository in `<state_dir>/orphaned/`.

use crate::mirror::state::StateStore;
use crate::util::fsutil::{Durability, now_ms, replace_file};
use crate::util::remote_url::redact_url;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const DIR: &str = "orphaned";

/// A repository gone from its path, and the mirrors it leaves behind.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Orphan {
    pub repo: PathBuf,
    /// When it was found gone.
    pub since_ms: u64,
    pub mirrors: Vec<OrphanedMirror>,
}

/// A mirror that still holds what the gone repository pushed to it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrphanedMirror {
    pub name: String,
    /// Without credentials.
    pub url: String,
    pub last_successful_update_at_ms: Option<u64>,
}

fn file_of(store: &StateStore, repo: &Path) -> PathBuf {
    // The state's own directory name for the repository: readable and unique.
    let key = store
        .repo_dir(repo)
        .file_name()
        .map(|name| name.to_os_string())
        .unwrap_or_default();
    let mut name = key;
    name.push(".json");
    store.root().join(DIR).join(name)
}

/// Records the mirrors of `repo` (gone) that it pushed to, from its state, before that state is
/// forgotten. A repository that never pushed anywhere leaves nothing behind.
pub fn record(store: &StateStore, repo: &Path) -> Result<()> {
    let mut mirrors = Vec::new();
    for name in store.mirror_names(repo)? {
        let Some(identity) = store.known_refs_identity(repo, &name) else {
            continue;
        };
        let last_success = store
            .load_mirror(repo, &name)
            .ok()
            .and_then(|state| state.last_successful_update_at_ms);
        mirrors.push(OrphanedMirror {
            name,
            url: redact_url(&identity.url),
            last_successful_update_at_ms: last_success,
        });
    }
    if mirrors.is_empty() {
        return Ok(());
    }
    let orphan = Orphan {
        repo: repo.to_path_buf(),
        since_ms: now_ms(),
        mirrors,
    };
    let path = file_of(store, repo);
    let dir = store.root().join(DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    replace_file(&path, &serde_json::to_vec_pretty(&orphan)?, 0o600, Durability::Durable)
        .with_context(|| format!("writing {}", path.display()))
}

/// The repositories gone with mirrors left behind. One that is back at its path (moved back,
/// restored) is no orphan any more: its record is dropped.
pub fn list(store: &StateStore) -> Vec<Orphan> {
    let Ok(entries) = std::fs::read_dir(store.root().join(DIR)) else {
        return Vec::new();
    };
    let mut orphans: Vec<Orphan> = entries
        .flatten()
        .filter_map(|entry| {
            let bytes = std::fs::read(entry.path()).ok()?;
            let orphan: Orphan = serde_json::from_slice(&bytes).ok()?;
            if crate::config::fleet::is_git_dir(&orphan.repo) {
                let _ = std::fs::remove_file(entry.path());
                return None;
            }
            Some(orphan)
        })
        .collect();
    orphans.sort_by(|a, b| a.repo.cmp(&b.repo));
    orphans
}

/// Drops the record of `repo`'s mirrors left behind (`forget OLD_PATH`); whether there was one.
pub fn forget(store: &StateStore, repo: &Path) -> Result<bool> {
    let path = file_of(store, repo);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::state::{KnownRefs, MirrorIdentity};

    #[test]
    fn a_gone_repository_leaves_the_mirrors_it_pushed_to_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(&dir.path().join("state"));
        let repo = dir.path().join("gone.git");
        store.register(&repo).unwrap();
        store.change_mirror_state(&repo, "pushed", |_| ()).unwrap();
        store.change_mirror_state(&repo, "never", |_| ()).unwrap();
        let identity = MirrorIdentity {
            url: "https://h.example/acme/app.git".into(),
            scope: "0".into(),
        };
        store
            .save_known_refs(&repo, "pushed", &identity, &KnownRefs::new())
            .unwrap();
        record(&store, &repo).unwrap();
        let orphans = list(&store);
        assert_eq!(orphans.len(), 1);
        assert_eq!(orphans[0].repo, repo);
        let names: Vec<&str> = orphans[0].mirrors.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["pushed"], "a mirror never pushed to holds nothing");
        assert_eq!(orphans[0].mirrors[0].url, "https://h.example/acme/app.git");
        assert!(forget(&store, &repo).unwrap());
        assert!(list(&store).is_empty());
        assert!(!forget(&store, &repo).unwrap());
    }

    #[test]
    fn a_repository_back_at_its_path_is_no_orphan() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(&dir.path().join("state"));
        let repo = dir.path().join("back.git");
        store.change_mirror_state(&repo, "m", |_| ()).unwrap();
        let identity = MirrorIdentity {
            url: "/srv/m.git".into(),
            scope: "0".into(),
        };
        store.save_known_refs(&repo, "m", &identity, &KnownRefs::new()).unwrap();
        record(&store, &repo).unwrap();
        assert_eq!(list(&store).len(), 1);
        std::fs::create_dir_all(repo.join("objects")).unwrap();
        std::fs::write(repo.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        assert!(list(&store).is_empty());
    }
}
