//! Mirrors on a local path (`/srv/backup/app.git`, `file:///…`): `add` and `set` store the path
//! absolute, and a configuration that holds a relative one is refused, because the worker a hook
//! starts does not run in the directory the admin typed the path in.

use std::path::{Component, Path, PathBuf};

/// Why a local mirror path cannot be stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocalPathError {
    #[error(
        "`{0}`: `~user` paths are not expanded; give the absolute path of the mirror repository (e.g. /home/USER/…)"
    )]
    OtherUsersHome(String),
    #[error("`{0}`: `~` cannot be expanded because HOME is not set; give the absolute path of the mirror repository")]
    NoHome(String),
}

/// The path part of a URL that names a local repository (`file://PATH`, or a plain path), or
/// `None` for a network URL.
pub fn local_path(url: &str) -> Option<&str> {
    if crate::util::remote_url::transport_of(url) != crate::util::remote_url::Transport::File {
        return None;
    }
    Some(
        url.get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("file://"))
            .map_or(url, |_| &url[7..]),
    )
}

/// Why a URL in a configuration file cannot be used as it is: a local path that is relative or
/// starts with `~`. `None` when it is fine.
pub fn relative_path_problem(url: &str) -> Option<String> {
    let path = local_path(url)?;
    if path.starts_with('/') {
        return None;
    }
    Some(format!(
        "`url` \"{url}\" is a relative path, which git would resolve against whatever directory the worker \
         runs in: write it as an absolute path (`git-push-mirror add` and `set` do that for you)"
    ))
}

/// A note for a local mirror path where there is no repository (yet): pushes would fail.
pub fn missing_repository_note(url: &str) -> Option<String> {
    let path = local_path(url)?;
    if crate::config::fleet::is_git_dir(Path::new(path)) {
        return None;
    }
    Some(format!(
        "note: {path} is not a git repository (yet): pushes to it fail until it is one; create it with: \
         git init --bare {path}"
    ))
}

/// `url` with a relative or `~` local path made absolute: relative paths against `cwd` (as every
/// command line tool does), `~` and `~/…` against `home`. Network URLs and absolute paths are
/// returned unchanged; a `file://` URL stays one.
pub fn absolute_url(url: &str, cwd: &Path, home: Option<&Path>) -> Result<String, LocalPathError> {
    let Some(path) = local_path(url) else {
        return Ok(url.to_string());
    };
    if path.starts_with('/') {
        return Ok(url.to_string());
    }
    let absolute = if path == "~" || path.starts_with("~/") {
        let home = home.ok_or_else(|| LocalPathError::NoHome(url.to_string()))?;
        home.join(path.trim_start_matches('~').trim_start_matches('/'))
    } else if path.starts_with('~') {
        return Err(LocalPathError::OtherUsersHome(url.to_string()));
    } else {
        cwd.join(path)
    };
    let absolute = normalize(&absolute).display().to_string();
    let prefix = &url[..url.len() - path.len()];
    Ok(format!("{prefix}{absolute}"))
}

/// The path with `.` and `..` resolved, as the shell the admin typed it in would: through
/// symbolic links when the path exists, by its text otherwise (the mirror may not exist yet).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_home_paths_become_absolute_and_network_urls_do_not_change() {
        let cwd = Path::new("/nonexistent-cwd/srv");
        let home = Some(Path::new("/nonexistent-home/git"));
        let abs = |url: &str| absolute_url(url, cwd, home).unwrap();
        assert_eq!(abs("./backup.git"), "/nonexistent-cwd/srv/backup.git");
        assert_eq!(abs("../mirrors/x.git"), "/nonexistent-cwd/mirrors/x.git");
        assert_eq!(abs("backup.git"), "/nonexistent-cwd/srv/backup.git");
        assert_eq!(abs("file://backup.git"), "file:///nonexistent-cwd/srv/backup.git");
        assert_eq!(abs("FILE://./b.git"), "FILE:///nonexistent-cwd/srv/b.git");
        assert_eq!(abs("~/backup.git"), "/nonexistent-home/git/backup.git");
        assert_eq!(abs("file://~/backup.git"), "file:///nonexistent-home/git/backup.git");
        assert_eq!(abs("~"), "/nonexistent-home/git");
        for unchanged in [
            "/srv/backup.git",
            "file:///srv/backup.git",
            "https://host/a.git",
            "ssh://git@host/~/a.git",
            "git@host:a.git",
            "git://host/a.git",
        ] {
            assert_eq!(abs(unchanged), unchanged);
        }
        assert_eq!(
            absolute_url("~bob/x.git", cwd, home),
            Err(LocalPathError::OtherUsersHome("~bob/x.git".into()))
        );
        assert_eq!(
            absolute_url("~/x.git", cwd, None),
            Err(LocalPathError::NoHome("~/x.git".into()))
        );
    }

    #[test]
    fn configuration_files_may_not_hold_relative_local_paths() {
        assert!(relative_path_problem("./backup.git").unwrap().contains("absolute path"));
        assert!(relative_path_problem("file://backup.git").is_some());
        assert!(relative_path_problem("~/backup.git").is_some());
        assert!(relative_path_problem("/srv/backup.git").is_none());
        assert!(relative_path_problem("file:///srv/backup.git").is_none());
        assert!(relative_path_problem("git@host:backup.git").is_none());
        assert!(relative_path_problem("https://host/backup.git").is_none());
    }
}
