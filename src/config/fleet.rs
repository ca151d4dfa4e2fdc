//! Fleets, as the configuration states them: a repository's name under `repos_root`, and the
//! `repos` patterns and URL templates of fleet mirrors (`[mirror.NAME]` in the global file) that
//! say which apply to it (docs/hosts.md: "A fleet"). Finding the repositories is in `pipeline/fleet.rs`.
//!
//! A repository's name is its path under `repos_root` without `.git`
//! (`/srv/git/acme/app.git` under `/srv/git` is `acme/app`), as gitolite and
//! Gitea name them. Patterns match the whole name with `*` matching any run of
//! characters, `/` included, like branch patterns; a pattern starting with `!`
//! excludes what it matches.

use crate::config::GlobalConfig;
use crate::config::rules::pattern_matches;
use anyhow::Result;
use std::fs;
use std::path::Path;

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
}
