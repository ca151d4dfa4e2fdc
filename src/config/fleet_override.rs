//! Fleet mirrors seen from one repository: `set` on a fleet mirror gives the repository a
//! `[mirror.NAME]` of its own, a copy of the fleet mirror with the change (a per-repository mirror
//! replaces the fleet mirror of the same name entirely), and `remove` of a fleet mirror says which
//! `!pattern` excludes the repository instead.

use crate::config::{GlobalConfig, REPO_CONFIG_FILE};
use anyhow::{Context, Result, bail};
use std::path::Path;
use toml_edit::{DocumentMut, Item, Table, Value};

/// Keys holding paths, which the global file resolves against its own directory and a
/// repository's file against the repository: a copy gets them absolute.
const PATH_KEYS: [&str; 5] = ["password_file", "ssh_key", "known_hosts", "lfs_store", "ca_file"];

/// The fleet mirror `mirror` of the global file as a per-repository table for the repository
/// named `repo_name`: `repos` dropped, `{name}` substituted, relative paths made absolute.
/// Refused when it holds an inline `password`, which a copy would spread.
pub fn copy_for_repo(global: &GlobalConfig, mirror: &str, repo_name: &str) -> Result<Table> {
    let Some(file) = &global.source else {
        bail!("mirror `{mirror}` is not a fleet mirror (there is no global configuration file)");
    };
    let (text, _) = crate::util::regular_file::read_regular_text(file, crate::util::regular_file::MAX_CONFIG_FILE_SIZE)
        .with_context(|| format!("reading {}", file.display()))?;
    let doc: DocumentMut = text
        .parse()
        .with_context(|| format!("{}: not valid TOML", file.display()))?;
    let fleet = doc
        .get("mirror")
        .and_then(|mirrors| mirrors.get(mirror))
        .and_then(Item::as_table_like)
        .with_context(|| format!("{} has no [mirror.{mirror}] any more", file.display()))?;
    let dir = file.parent().unwrap_or(Path::new("/"));
    let mut copy = Table::new();
    for (key, item) in fleet.iter() {
        if key == "repos" {
            continue;
        }
        if key == "password" {
            bail!(
                "the fleet mirror [mirror.{mirror}] of {} has an inline `password`, which a per-repository \
                 copy would spread to another file: give it a `password_file` instead, or change it there for \
                 every repository",
                file.display()
            );
        }
        let Some(value) = item.as_value() else {
            bail!("{}: [mirror.{mirror}] `{key}` is not a value", file.display());
        };
        let value = match value.as_str() {
            Some(url) if key == "url" || key == "lfs_url" => {
                Value::from(crate::config::fleet::expand_url(url, repo_name))
            }
            Some(path) if PATH_KEYS.contains(&key) && !path.starts_with('/') => {
                Value::from(dir.join(path).display().to_string())
            }
            _ => {
                let mut value = value.clone();
                value.decor_mut().clear();
                value
            }
        };
        copy.insert(key, Item::Value(value));
    }
    Ok(copy)
}

/// What `set` says when it gave a repository its own copy of a fleet mirror.
pub fn copied_notice(global: &GlobalConfig, repo: &Path, mirror: &str) -> String {
    let global_file = global_file_name(global);
    format!(
        "mirror `{mirror}` of {repo} was the fleet mirror [mirror.{mirror}] of {global_file}; {file} now has a \
         [mirror.{mirror}] of its own (a copy of it, with this change), which replaces the fleet mirror for this \
         repository: later changes to [mirror.{mirror}] in {global_file} no longer reach it \
         (`git-push-mirror remove {repo} {mirror}` hands it back to the fleet mirror)",
        repo = repo.display(),
        file = repo.join(REPO_CONFIG_FILE).display(),
    )
}

/// Why `remove` leaves a fleet mirror alone, and the `!pattern` that excludes the repository.
pub fn remove_refusal(global: &GlobalConfig, repo: &Path, mirror: &str) -> String {
    let global_file = global_file_name(global);
    let name = crate::config::fleet::repo_name(repo, global).unwrap_or_else(|| "NAME".to_string());
    format!(
        "mirror `{mirror}` of {repo} is the fleet mirror [mirror.{mirror}] of {global_file} (its `repos` match \
         the repository name `{name}`), which commands do not edit: to stop mirroring this repository there, \
         add \"!{name}\" to `repos` in [mirror.{mirror}] of {global_file}",
        repo = repo.display(),
    )
}

/// What `remove` adds when the removed mirror was a copy that replaced a fleet mirror.
pub fn fleet_applies_again(global: &GlobalConfig, repo: &Path, mirror: &str) -> String {
    let global_file = global_file_name(global);
    let name = crate::config::fleet::repo_name(repo, global).unwrap_or_else(|| "NAME".to_string());
    format!(
        "the fleet mirror [mirror.{mirror}] of {global_file} applies to {repo} again (to exclude the repository, \
         add \"!{name}\" to its `repos`)",
        repo = repo.display(),
    )
}

/// Whether a fleet mirror named `mirror` selects the repository (whether or not the repository
/// replaces it with a mirror of its own).
pub fn fleet_selects(global: &GlobalConfig, repo: &Path, mirror: &str) -> bool {
    let Some(name) = crate::config::fleet::repo_name(repo, global) else {
        return false;
    };
    global
        .fleet_mirrors
        .iter()
        .any(|fleet| fleet.name == mirror && crate::config::fleet::patterns_match(&fleet.repos, &name))
}

fn global_file_name(global: &GlobalConfig) -> String {
    global
        .source
        .as_ref()
        .map_or_else(|| "the global configuration".to_string(), |f| f.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global_with(text: &str) -> (tempfile::TempDir, GlobalConfig) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let global = crate::config::load_global(Some(&file)).unwrap();
        (dir, global)
    }

    #[test]
    fn a_copy_has_the_name_substituted_paths_absolute_and_no_repos() {
        let (dir, global) = global_with(
            "repos_root = \"/srv/git\"\n[mirror.backup]\nrepos = [\"acme/*\"] # all of acme\n\
             url = \"ssh://b@backup/{name}.git\"\nssh_key = \"keys/backup\"\nknown_hosts = \"/etc/kh\"\n\
             branches = [\"main\"]\ndelay = \"3s\"\n",
        );
        let copy = copy_for_repo(&global, "backup", "acme/app").unwrap();
        let text = copy.to_string();
        assert!(!text.contains("repos"), "{text}");
        assert!(text.contains("url = \"ssh://b@backup/acme/app.git\""), "{text}");
        let key = dir.path().join("keys/backup");
        assert!(text.contains(&format!("ssh_key = \"{}\"", key.display())), "{text}");
        assert!(text.contains("known_hosts = \"/etc/kh\""), "{text}");
        assert!(text.contains("branches = [\"main\"]"), "{text}");
        assert!(text.contains("delay = \"3s\""), "{text}");
    }

    #[test]
    fn an_inline_password_is_not_copied() {
        let (_dir, global) = global_with(
            "repos_root = \"/srv/git\"\n[mirror.gh]\nrepos = [\"*\"]\nurl = \"https://h/{name}.git\"\n\
             username = \"u\"\npassword = \"hunter2\"\n",
        );
        let err = copy_for_repo(&global, "gh", "app").unwrap_err().to_string();
        assert!(err.contains("inline `password`") && !err.contains("hunter2"), "{err}");
    }
}
