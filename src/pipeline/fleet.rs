//! Fleet discovery: the bare repositories under a root, and those under `repos_root` that a fleet mirror
//! selects, registered so the worker, `status` and `metrics` see them without a push (docs/hosts.md: "A fleet").

use crate::config::fleet::{is_git_dir, patterns_match, repo_name};
use crate::config::{self, GlobalConfig};
use crate::mirror::state::StateStore;
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
/// Every git directory under `root`, sorted: directories with `HEAD` and
/// `objects/`, found by descending into directories that are not
/// repositories. Hidden directories and symbolic links are skipped.
pub fn discover(root: &Path) -> Result<Vec<PathBuf>> {
    let root = fs::canonicalize(root).with_context(|| format!("repos_root {}", root.display()))?;
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        if is_git_dir(&dir) {
            found.push(dir);
            continue;
        }
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                log::warn!("{}: not searched for repositories: {e}", dir.display());
                continue;
            }
        };
        for entry in entries.flatten() {
            let hidden = entry.file_name().to_str().is_none_or(|n| n.starts_with('.'));
            if !hidden && entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The repositories under `repos_root` that have mirrors: a `push-mirror.toml`
/// of their own, or a fleet mirror whose patterns select them. Empty without
/// `repos_root`.
pub fn mirrored_repos(global: &GlobalConfig) -> Result<Vec<PathBuf>> {
    let Some(root) = &global.repos_root else {
        return Ok(Vec::new());
    };
    Ok(discover(root)?
        .into_iter()
        .filter(|repo| is_mirrored(global, repo))
        .collect())
}

/// Whether `repo`, found under `repos_root`, has mirrors (see [`mirrored_repos`]).
fn is_mirrored(global: &GlobalConfig, repo: &Path) -> bool {
    repo.join(config::REPO_CONFIG_FILE).exists()
        || repo_name(repo, global).is_some_and(|name| {
            global
                .fleet_mirrors
                .iter()
                .any(|fleet| patterns_match(&fleet.repos, &name))
        })
}

/// Whether fleet discovery registers `repo`: a git directory under `repos_root` (not hidden)
/// that has mirrors.
pub fn discovers(global: &GlobalConfig, repo: &Path) -> bool {
    let hidden = |name: &str| name.starts_with('.');
    repo_name(repo, global).is_some_and(|name| !name.split('/').any(hidden))
        && is_git_dir(repo)
        && is_mirrored(global, repo)
}

/// Registers the mirrored repositories under `repos_root` that are not among `known` (the
/// registered ones), so `run`'s drift scan and `status` cover the whole fleet. Returns them.
pub fn register_mirrored(global: &GlobalConfig, store: &StateStore, known: &BTreeSet<PathBuf>) -> Result<Vec<PathBuf>> {
    let mut registered = Vec::new();
    for repo in mirrored_repos(global)? {
        if !known.contains(&repo) {
            store.register(&repo)?;
            registered.push(repo);
        }
    }
    Ok(registered)
}

/// The registered repositories and the mirrored ones under `repos_root`,
/// sorted, without duplicates: what `status`, `list` and `metrics` cover
/// when no repository is named.
pub fn all_repos(global: &GlobalConfig, store: &StateStore) -> Result<Vec<PathBuf>> {
    let mut repos: BTreeSet<PathBuf> = store.known_repos()?.into_iter().collect();
    repos.extend(mirrored_repos(global)?);
    Ok(repos.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_finds_repositories_without_entering_them_or_hidden_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        let make_repo = |rel: &str| {
            let repo = root.join(rel);
            fs::create_dir_all(repo.join("objects")).unwrap();
            fs::write(repo.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        };
        make_repo("top.git");
        make_repo("acme/app.git");
        make_repo("acme/deep/er/lib.git");
        make_repo("acme/app.git/nested.git"); // inside a repository: not a separate one
        make_repo(".trash/old.git");
        make_repo("acme/.hidden.git");
        fs::create_dir_all(root.join("empty/dir")).unwrap();
        std::os::unix::fs::symlink(root.join("acme"), root.join("link")).unwrap();
        assert_eq!(
            discover(&root).unwrap(),
            vec![
                root.join("acme/app.git"),
                root.join("acme/deep/er/lib.git"),
                root.join("top.git")
            ]
        );
    }
}
