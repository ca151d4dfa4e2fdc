//! Which repositories and mirrors the state directory knows (read from its files, not from any
//! configuration), and forgetting a repository.

use super::{REPO_RECORD, RepoRecord, StateStore, read_json};
use anyhow::{Context, Result};
use serde::Deserialize;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

impl StateStore {
    /// Forgets a repository: its registration and every mirror's state, secrets and keys stored
    /// for it. Returns whether there was anything to forget.
    pub fn forget(&self, repo: &Path) -> Result<bool> {
        let dir = self.repo_dir(repo);
        if self.load_record(repo)?.is_none() && !dir.join("mirrors").exists() {
            return Ok(false);
        }
        let _lock = self.lock(repo)?;
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        self.made_dirs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|made| !made.starts_with(&dir));
        Ok(true)
    }

    /// Names of the mirrors with saved state for a repository.
    pub fn mirror_names(&self, repo: &Path) -> Result<Vec<String>> {
        let dir = self.repo_dir(repo).join("mirrors");
        let mut names = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        for entry in entries {
            let name = entry?.file_name();
            if let Some(mirror) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
                names.push(mirror.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Every registered repository.
    pub fn known_repos(&self) -> Result<Vec<PathBuf>> {
        Ok(self.known_records()?.into_iter().map(|(repo, _)| repo).collect())
    }

    /// The registered repositories, sorted, each with its record as read (one read of each:
    /// `None` when it has mirrors' states but no record, an error when the record cannot be read).
    pub fn known_records(&self) -> Result<Vec<(PathBuf, Result<Option<RepoRecord>>)>> {
        let mut repos = Vec::new();
        let entries = match fs::read_dir(self.repos_dir()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(repos),
            Err(e) => return Err(e).context("reading the state directory"),
        };
        for entry in entries {
            let dir = entry?.path();
            match read_json::<RepoRecord>(&dir.join(REPO_RECORD)) {
                Ok(Some(record)) => repos.push((record.repo.clone(), Ok(Some(record)))),
                // A record lost or corrupt: the repository is still known by its mirrors' state,
                // and stays covered (the worker rebuilds the record, `status` reports it).
                Ok(None) => repos.extend(repo_named_by_mirror_states(&dir).map(|repo| (repo, Ok(None)))),
                Err(e) => match repo_named_by_mirror_states(&dir) {
                    Some(repo) => repos.push((repo, Err(e))),
                    None => log::warn!("{e:#}"),
                },
            }
        }
        repos.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(repos)
    }
}

/// The repository path recorded in any readable mirror state of a repository's state directory.
pub(super) fn repo_named_by_mirror_states(dir: &Path) -> Option<PathBuf> {
    #[derive(Deserialize)]
    struct RepoOnly {
        repo: PathBuf,
    }
    fs::read_dir(dir.join("mirrors"))
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".json")))
        .find_map(|e| read_json::<RepoOnly>(&e.path()).ok().flatten())
        .map(|state| state.repo)
}
