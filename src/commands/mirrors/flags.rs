//! The mirror settings `add` and `set` take as flags, and how they become an edit of the
//! repository's `push-mirror.toml` ([`MirrorEdit`]); the flags only `set` has, which undo a setting.

use crate::config::edit::MirrorEdit;
use crate::config::lfs::LfsMode;
use crate::config::rules::TagSelection;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Mirror settings shared by `add` and `set`.
#[derive(clap::Args, Debug, Default)]
pub struct MirrorFlags {
    /// Mirror only the repository's protected_branches.
    #[arg(long)]
    only_protected_branches: Option<Option<bool>>,
    /// Never overwrite or delete refs that differ on the mirror.
    #[arg(long)]
    keep_divergent_refs: Option<Option<bool>>,
    /// Delete on the mirror a branch or tag deleted here even when its commits are not merged into
    /// the default branch (default false: such refs are kept, listed in kept_refs).
    #[arg(long, value_name = "BOOL")]
    prune_unmerged: Option<Option<bool>>,
    /// Mirror only branches matching PATTERN (`*` matches anything, `/` too); repeatable.
    #[arg(long = "branch", value_name = "PATTERN")]
    branches: Vec<String>,
    /// Don't mirror tags.
    #[arg(long)]
    no_tags: bool,
    /// Mirror only tags matching PATTERN; repeatable.
    #[arg(long = "tag", value_name = "PATTERN", conflicts_with = "no_tags")]
    tags: Vec<String>,
    /// User name for HTTPS (an SSH user goes in the URL: ssh://USER@host/… or USER@host:path).
    #[arg(long)]
    username: Option<String>,
    /// File holding the HTTPS password or token (must be mode 600).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Environment variable holding the HTTPS password or token.
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,
    /// SSH private key for this mirror.
    #[arg(long, value_name = "FILE")]
    ssh_key: Option<PathBuf>,
    /// known_hosts file for this mirror's SSH host.
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// CA certificates (PEM) to trust for HTTPS to this mirror's host, e.g. a company CA
    /// ("" to use the system's again).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<std::ffi::OsString>,
    /// Wait this long after the first change before pushing, to gather others (e.g. "5s"); "" for
    /// the default: a change is pushed at once unless a push of this mirror is running or has
    /// just ended.
    #[arg(long, value_name = "DURATION")]
    delay: Option<String>,
    /// At most one update per this interval (e.g. "5m").
    #[arg(long, value_name = "DURATION")]
    min_interval: Option<String>,
    /// Wall-clock limit for each git process (e.g. "10m"), LFS uploads included.
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// How often `run` checks the mirror still has what it was given (default "1d"; "0s": never).
    #[arg(long, value_name = "DURATION")]
    verify_interval: Option<String>,
    /// Upload Git LFS objects before pushing: auto (when the repository has LFS objects), on, off.
    #[arg(long, value_name = "MODE", value_parser = ["auto", "on", "off"])]
    lfs: Option<String>,
    /// Whether a failed LFS upload fails the update, so its refs wait (default true).
    #[arg(long, value_name = "BOOL")]
    lfs_required: Option<Option<bool>>,
    /// The mirror's LFS endpoint, when not <url>/info/lfs ("" to derive it again).
    #[arg(long, value_name = "URL")]
    lfs_url: Option<String>,
    /// Largest pack one push may carry (e.g. "1900MiB" for GitHub's 2 GiB limit; "" for no limit):
    /// bigger updates are pushed in steps.
    #[arg(long, value_name = "SIZE")]
    max_push_size: Option<String>,
    /// Most refs one push may update (0 for no limit): bigger updates are pushed in batches.
    #[arg(long, value_name = "N")]
    max_refs_per_push: Option<usize>,
    /// Create the repository when the mirror says it does not exist: ssh (git init --bare over the
    /// mirror's SSH key), github, gitlab, gitea (or forgejo) through the forge's API; false: never.
    #[arg(long, value_name = "KIND", value_parser = ["ssh", "github", "gitlab", "gitea", "forgejo", "false"])]
    create: Option<String>,
    /// Who may see a repository the forge creates: private (the default), public, internal (GitLab).
    #[arg(long, value_name = "VISIBILITY", value_parser = ["private", "public", "internal"])]
    visibility: Option<String>,
    /// The forge API's base URL, when not the one derived from the mirror's host ("" to derive it again).
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,
    /// File holding the forge API token (mode 600), when not the mirror's password ("" to use the
    /// password again); an SSH mirror needs one to create repositories on a forge.
    #[arg(long, value_name = "FILE")]
    api_token_file: Option<std::ffi::OsString>,
    /// Whether people are told when this mirror fails or recovers ([notify]; default true).
    #[arg(long, value_name = "BOOL")]
    notify: Option<bool>,
}

impl MirrorFlags {
    pub fn to_edit(&self) -> Result<MirrorEdit> {
        let flag = |v: Option<Option<bool>>| v.map(|inner| inner.unwrap_or(true));
        let absolute = |p: &Option<PathBuf>| -> Result<Option<PathBuf>> {
            p.as_ref()
                .map(|p| std::path::absolute(p).context("resolving a path"))
                .transpose()
        };
        let tags = if self.no_tags {
            Some(TagSelection::None)
        } else if !self.tags.is_empty() {
            Some(TagSelection::Matching(self.tags.clone()))
        } else {
            None
        };
        // "" removes the key: the setting goes back to its default.
        let durations = [&self.delay, &self.min_interval, &self.timeout, &self.verify_interval];
        for duration in durations.into_iter().flatten().filter(|d| !d.is_empty()) {
            humantime::parse_duration(duration)
                .with_context(|| format!("invalid duration {duration:?} (try \"2s\", \"5m\", \"1h\")"))?;
        }
        Ok(MirrorEdit {
            only_protected_branches: flag(self.only_protected_branches),
            keep_divergent_refs: flag(self.keep_divergent_refs),
            prune_unmerged: flag(self.prune_unmerged),
            branches: (!self.branches.is_empty()).then(|| self.branches.clone()),
            tags,
            username: self.username.clone(),
            password_file: absolute(&self.password_file)?,
            password_env: self.password_env.clone(),
            ssh_key: absolute(&self.ssh_key)?,
            known_hosts: absolute(&self.known_hosts)?,
            // An empty path removes the setting.
            ca_file: match &self.ca_file {
                Some(path) if path.is_empty() => Some(PathBuf::new()),
                other => absolute(&other.as_ref().map(PathBuf::from))?,
            },
            delay: self.delay.clone(),
            min_interval: self.min_interval.clone(),
            timeout: self.timeout.clone(),
            verify_interval: self.verify_interval.clone(),
            lfs: self.lfs.as_deref().and_then(LfsMode::parse),
            lfs_required: flag(self.lfs_required),
            lfs_url: self.lfs_url.clone(),
            max_push_size: self.max_push_size.clone(),
            max_refs_per_push: self.max_refs_per_push,
            notify: self.notify,
            create: self
                .create
                .as_deref()
                .and_then(crate::config::mirror_side::CreateKind::parse)
                .map(crate::config::mirror_side::CreateSetting),
            visibility: self
                .visibility
                .as_deref()
                .and_then(crate::config::mirror_side::Visibility::parse),
            api_url: self.api_url.clone(),
            api_token_file: match &self.api_token_file {
                Some(path) if path.is_empty() => Some(PathBuf::new()),
                other => absolute(&other.as_ref().map(PathBuf::from))?,
            },
            ..Default::default()
        })
    }
}

/// Flags of `set` that undo a setting, so they mean nothing to `add`.
#[derive(clap::Args, Debug, Default)]
pub struct SetOnlyFlags {
    /// Mirror all branches again (clears --branch patterns).
    #[arg(long, conflicts_with = "branches")]
    all_branches: bool,
    /// Mirror all tags again (clears --tag patterns and --no-tags).
    #[arg(long, conflicts_with_all = ["no_tags", "tags"])]
    all_tags: bool,
    /// Forget the push size limit learned from the mirror's refusals, dropped connections and
    /// timeouts (`learned_max_push_size` in status): the next update pushes as if none was learned.
    #[arg(long)]
    reset_learned_limit: bool,
}

impl SetOnlyFlags {
    /// Whether the learned push size limit is to be forgotten (a change of state, not of the file).
    pub fn resets_learned_limit(&self) -> bool {
        self.reset_learned_limit
    }

    pub fn apply(&self, edit: &mut MirrorEdit) {
        if self.all_branches {
            edit.branches = Some(Vec::new());
        }
        if self.all_tags {
            edit.tags = Some(TagSelection::All);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_durations_are_refused_before_editing() {
        let flags = MirrorFlags {
            delay: Some("soon".into()),
            ..Default::default()
        };
        assert!(flags.to_edit().unwrap_err().to_string().contains("invalid duration"));
    }
}
