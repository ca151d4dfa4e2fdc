//! Registered repositories that went away: a repository deleted or moved is reported once by
//! the first command that finds it gone and then forgotten, and `forget REPO` does the same on
//! request, so `run`, `status`, `check` and `metrics` stop carrying it for ever.

use crate::config::{self, GlobalConfig};
use crate::mirror::state::StateStore;
use anyhow::Result;
use std::io;
use std::path::{Path, PathBuf};

/// Whether a registered repository is gone: nothing is at its path any more, while the
/// directory that held it is still there. A path that exists but cannot be read is not gone
/// (it is reported where it is used), and neither is one whose whole tree is missing: an
/// unmounted disk, or a command run where the repositories are not (another container), must
/// not make every repository forgotten; `forget` does that on request.
pub fn is_gone(repo: &Path) -> bool {
    let missing =
        |path: &Path| matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == io::ErrorKind::NotFound);
    missing(repo) && repo.parent().is_some_and(|parent| parent.is_dir())
}

/// Forgets every registered repository that is gone, and returns them, to be reported once.
pub fn forget_gone(store: &StateStore) -> Result<Vec<PathBuf>> {
    let mut forgotten = Vec::new();
    for repo in store.known_repos()? {
        if is_gone(&repo) && forget_gone_repo(store, &repo)? {
            forgotten.push(repo);
        }
    }
    Ok(forgotten)
}

/// Forgets one repository that is gone, keeping its mirrors in the orphans' list: they still
/// hold what it pushed, reported until `forget` says they were dealt with. Returns whether it had
/// anything to forget.
pub fn forget_gone_repo(store: &StateStore, repo: &Path) -> Result<bool> {
    crate::pipeline::orphaned::record(store, repo)?;
    store.forget(repo)
}

/// The one report of a repository forgotten because it is gone.
pub fn gone_notice(repo: &Path) -> String {
    format!(
        "{}: the repository no longer exists (deleted or moved), so it was forgotten with its mirrors' state; \
         `add` or `install` registers it again at its new path; any mirror it pushed to keeps what it has and is \
         listed by `status` as orphaned until `git-push-mirror forget {}`",
        repo.display(),
        repo.display()
    )
}

/// How many of `repos` have mirrors (or a configuration that cannot be read, which may hide
/// some): a repository whose last mirror was removed is not counted.
pub fn count_mirrored(global: &GlobalConfig, repos: &[PathBuf]) -> usize {
    repos
        .iter()
        .filter(|repo| config::load_repo(repo, global).map_or(true, |cfg| !cfg.mirrors.is_empty()))
        .count()
}

/// Why `forget` did not forget.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error("{repo} is not registered{hint}")]
    NotRegistered { repo: String, hint: String },
    #[error(
        "{repo} still has mirrors ({mirrors}): its next push would register it again; remove them first \
         (`git-push-mirror remove {repo} NAME`), then forget it"
    )]
    StillMirrored { repo: String, mirrors: String },
    #[error("{repo}: {source:#}")]
    Failed { repo: String, source: anyhow::Error },
}

/// `forget REPO`: removes a repository's registration and state. The path may no longer exist;
/// a repository that still has mirrors is refused.
pub fn forget(global: &GlobalConfig, repo: &Path) -> Result<PathBuf, ForgetError> {
    let repo = std::fs::canonicalize(repo).unwrap_or_else(|_| {
        crate::config::mirror_path::normalize(&std::path::absolute(repo).unwrap_or_else(|_| repo.to_path_buf()))
    });
    let shown = repo.display().to_string();
    if repo.exists()
        && let Ok(cfg) = config::load_repo(&repo, global)
        && !cfg.mirrors.is_empty()
    {
        let mirrors = cfg.mirrors.iter().map(|m| format!("`{}`", m.name)).collect::<Vec<_>>();
        return Err(ForgetError::StillMirrored {
            repo: shown,
            mirrors: mirrors.join(", "),
        });
    }
    let store = StateStore::new(&global.state_dir);
    let failed = |source: anyhow::Error| ForgetError::Failed {
        repo: repo.display().to_string(),
        source,
    };
    let left_behind = crate::pipeline::orphaned::forget(&store, &repo).map_err(failed)?;
    if store.forget(&repo).map_err(failed)? || left_behind {
        return Ok(repo);
    }
    let known = store.known_repos().map_err(failed)?;
    let names: Vec<String> = known.iter().map(|r| r.display().to_string()).collect();
    let hint = match crate::util::suggest::closest(&shown, names.iter().map(String::as_str)) {
        Some(close) => format!("; did you mean {close}?"),
        None if names.is_empty() => " (no repository is registered)".to_string(),
        None => " (`git-push-mirror status` lists the registered repositories)".to_string(),
    };
    Err(ForgetError::NotRegistered { repo: shown, hint })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_repositories_are_forgotten_once_and_present_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(&dir.path().join("state"));
        let kept = dir.path().join("kept.git");
        let gone = dir.path().join("gone.git");
        std::fs::create_dir(&kept).unwrap();
        store.register(&kept).unwrap();
        store.register(&gone).unwrap();
        assert_eq!(forget_gone(&store).unwrap(), vec![gone.clone()]);
        assert_eq!(store.known_repos().unwrap(), vec![kept]);
        assert!(forget_gone(&store).unwrap().is_empty(), "reported once");
        assert!(gone_notice(&gone).contains("no longer exists"));
    }

    #[test]
    fn a_repository_whose_whole_tree_is_missing_is_not_gone() {
        let dir = tempfile::tempdir().unwrap();
        assert!(is_gone(&dir.path().join("deleted.git")));
        assert!(!is_gone(&dir.path().join("unmounted/acme/app.git")));
        assert!(!is_gone(dir.path()));
    }
}
