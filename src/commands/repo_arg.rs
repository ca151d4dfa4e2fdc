//! A `REPO` argument must be the bare repository pushes go to (a git directory), not a work tree:
//! a clone with files checked out is refused with the path to give instead.

use std::path::{Path, PathBuf};

/// Why a path is not a repository git-push-mirror can serve.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotARepository {
    #[error(
        "{path} is a work tree (a clone with files checked out), not a bare repository: git-push-mirror \
         works on the repository pushes go to{instead}"
    )]
    WorkTree { path: String, instead: String },
    #[error("{0} is not a git repository (a bare repository has a HEAD file and an objects directory)")]
    NotGit(String),
}

/// Checks that `path` (absolute) is a git directory; a work tree is refused with what to give instead.
pub fn check(path: &Path) -> Result<(), NotARepository> {
    if crate::config::fleet::is_git_dir(path) {
        return Ok(());
    }
    let shown = path.display().to_string();
    let git_dir = path.join(".git");
    if !git_dir.exists() {
        return Err(NotARepository::NotGit(shown));
    }
    let origin = crate::mirror::refs::LocalRepo::open(path)
        .ok()
        .and_then(|repo| repo.origin_url())
        .and_then(|url| local_bare_repository(&url, path));
    let instead = match origin {
        Some(origin) => format!(
            ": give the bare repository it was cloned from, {} (or, if people push to this clone itself, \
             its git directory {})",
            origin.display(),
            git_dir.display()
        ),
        None => format!(
            ": give that bare repository (on the server: the path of the URL you push to), or, if people \
             push to this clone itself, its git directory {}",
            git_dir.display()
        ),
    };
    Err(NotARepository::WorkTree { path: shown, instead })
}

/// The bare repository a clone's `origin` URL names, when it is a local one.
fn local_bare_repository(url: &str, clone: &Path) -> Option<PathBuf> {
    let path = Path::new(crate::config::mirror_path::local_path(url)?);
    let path = clone.join(path); // relative origins are relative to the clone
    let path = std::fs::canonicalize(path).ok()?;
    crate::config::fleet::is_git_dir(&path).then_some(path)
}
