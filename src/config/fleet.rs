//! Fleets: the repositories under `repos_root`, their names, and the fleet mirrors (`[mirror.NAME]`
//! with `repos` patterns in the global file) that apply to them (README: "A fleet").
//!
//! A repository's name is its path under `repos_root` without `.git`
//! (`/srv/git/acme/app.git` under `/srv/git` is `acme/app`), as gitolite and
//! Gitea name them. Patterns match the whole name with `*` matching any run of
//! characters, `/` included, like branch patterns; a pattern starting with `!`
//! excludes what it matches.

use crate::config::{self, GlobalConfig};
use crate::mirror::plan::pattern_matches;
use crate::mirror::state::StateStore;
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The placeholder a fleet mirror's URL must contain.
pub const NAME_PLACEHOLDER: &str = "{name}";

/// Whether `path` is a bare repository (or any git directory): a `HEAD` file
/// and an `objects/` directory.
pub fn is_git_dir(path: &Path) -> bool {
    path.join("HEAD").is_file() && path.join("objects").is_dir()
}

/// The name of `repo` under `root`: its relative path with a final `.git`
/// removed. `None` when `repo` is not below `root`.
pub fn name_under(repo: &Path, root: &Path) -> Option<String> {
    let relative = repo.strip_prefix(root).ok()?;
    let relative = relative.to_str()?;
    let name = relative.strip_suffix(".git").unwrap_or(relative).trim_end_matches('/');
    (!name.is_empty()).then(|| name.to_string())
}

/// The repository's fleet name under the configured `repos_root` (tried as
/// written and canonicalized, since hooks report canonical paths).
pub fn repo_name(repo: &Path, global: &GlobalConfig) -> Option<String> {
    let root = global.repos_root.as_deref()?;
    name_under(repo, root).or_else(|| name_under(repo, &fs::canonicalize(root).ok()?))
}

/// Whether the repository `name` is selected by `patterns`: at least one
/// pattern matches and no `!pattern` does.
pub fn patterns_match(patterns: &[String], name: &str) -> bool {
    let mut selected = false;
    for pattern in patterns {
        match pattern.strip_prefix('!') {
            Some(excluded) if pattern_matches(excluded, name) => return false,
            Some(_) => {}
            None => selected |= pattern_matches(pattern, name),
        }
    }
    selected
}

/// Checks `repos` patterns (a trailing `.git` is dropped: names have none).
pub fn normalize_patterns(patterns: Vec<String>) -> Result<Vec<String>, String> {
    if patterns.iter().all(|p| p.starts_with('!')) {
        return Err("`repos` needs at least one pattern that is not an exclusion (`!…`)".to_string());
    }
    patterns
        .into_iter()
        .map(|pattern| {
            let body = pattern.strip_prefix('!').unwrap_or(&pattern);
            if body.is_empty() || body.starts_with('/') {
                return Err(format!(
                    "`repos` pattern \"{pattern}\" must be a repository name relative to repos_root, such as \"acme/*\""
                ));
            }
            Ok(pattern.strip_suffix(".git").map(str::to_string).unwrap_or(pattern))
        })
        .collect()
}

/// A fleet mirror's URL must name each repository: `{name}`, and no other placeholder.
pub fn check_url_template(url: &str) -> Result<(), String> {
    if !url.contains(NAME_PLACEHOLDER) {
        return Err(format!(
            "`url` must contain {NAME_PLACEHOLDER} (the repository's name), or every matching repository \
             would be pushed to the same place"
        ));
    }
    if url.replace(NAME_PLACEHOLDER, "").contains(['{', '}']) {
        return Err(format!("`url` may only use the placeholder {NAME_PLACEHOLDER}"));
    }
    Ok(())
}

/// The URL of a fleet mirror for repository `name`.
pub fn expand_url(template: &str, name: &str) -> String {
    template.replace(NAME_PLACEHOLDER, name)
}

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
        .filter(|repo| {
            repo.join(config::REPO_CONFIG_FILE).exists()
                || repo_name(repo, global).is_some_and(|name| {
                    global
                        .fleet_mirrors
                        .iter()
                        .any(|fleet| patterns_match(&fleet.repos, &name))
                })
        })
        .collect())
}

/// Registers the mirrored repositories under `repos_root` that are not yet
/// registered, so `run`'s drift scan and `status` cover the whole fleet.
/// Returns how many were new.
pub fn register_mirrored(global: &GlobalConfig, store: &StateStore) -> Result<usize> {
    let known: BTreeSet<PathBuf> = store.known_repos()?.into_iter().collect();
    let mut registered = 0;
    for repo in mirrored_repos(global)? {
        if !known.contains(&repo) {
            store.register(&repo)?;
            registered += 1;
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

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_are_relative_paths_without_dot_git() {
        let root = Path::new("/srv/git");
        assert_eq!(
            name_under(Path::new("/srv/git/acme/app.git"), root).as_deref(),
            Some("acme/app")
        );
        assert_eq!(name_under(Path::new("/srv/git/plain"), root).as_deref(), Some("plain"));
        assert_eq!(
            name_under(Path::new("/srv/gitx/app.git"), root),
            None,
            "not a prefix by components"
        );
        assert_eq!(name_under(Path::new("/srv/git"), root), None);
        assert_eq!(name_under(Path::new("/elsewhere/app.git"), root), None);
    }

    #[test]
    fn patterns_select_and_exclude() {
        let patterns = strings(&["acme/*", "tools", "!acme/secret-*", "!*.wiki"]);
        assert!(patterns_match(&patterns, "acme/app"));
        assert!(patterns_match(&patterns, "acme/team/app"), "`*` crosses `/`");
        assert!(patterns_match(&patterns, "tools"));
        assert!(!patterns_match(&patterns, "tools2"), "a pattern matches the whole name");
        assert!(!patterns_match(&patterns, "acme/secret-plans"));
        assert!(!patterns_match(&patterns, "acme/app.wiki"));
        assert!(!patterns_match(&patterns, "other/app"));
        assert!(!patterns_match(&[], "acme/app"));
    }

    #[test]
    fn patterns_are_checked_and_lose_dot_git() {
        assert_eq!(
            normalize_patterns(strings(&["acme/*.git", "!x.git"])).unwrap(),
            strings(&["acme/*", "!x"])
        );
        assert!(normalize_patterns(strings(&["!only-exclusions"])).is_err());
        assert!(normalize_patterns(strings(&["/srv/git/*"])).is_err());
        assert!(normalize_patterns(strings(&["*", ""])).is_err());
    }

    #[test]
    fn url_templates_need_the_name_and_nothing_else() {
        assert!(check_url_template("git@github.com:acme/{name}.git").is_ok());
        assert!(
            check_url_template("https://h/acme/app.git")
                .unwrap_err()
                .contains("{name}")
        );
        assert!(
            check_url_template("https://h/{owner}/{name}.git")
                .unwrap_err()
                .contains("only")
        );
        assert_eq!(
            expand_url("file:///m/{name}.git?{name}", "acme/app"),
            "file:///m/acme/app.git?acme/app"
        );
    }

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
