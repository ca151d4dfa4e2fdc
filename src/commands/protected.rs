//! `protect` and `unprotect`: the repository's `protected_branches`, the branches its mirrors with
//! `only_protected_branches` carry; and the warning when such a mirror has none to carry.

use crate::commands::{EXIT_OK, EXIT_USAGE, Exit, ExitContext, io, repo_path};
use crate::config::edit::{self as config_edit};
use crate::config::{self, GlobalConfig, MirrorConfig};
use crate::mirror::state::StateStore;
use crate::util::fsutil::now_ms;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Add branch patterns to the repository's protected_branches (what --only-protected-branches mirrors).
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Add branch name patterns to protected_branches in REPO/push-mirror.toml (kept at the \
top of the file, above the first [mirror.…] table, with the file's comments). A mirror with \
only_protected_branches = true (`set REPO NAME --only-protected-branches`) carries just the branches \
that match one; with none, it carries no branch at all. Patterns already there are kept once."
)]
pub struct ProtectArgs {
    /// The bare repository (e.g. /srv/git/app.git).
    pub repo: PathBuf,
    /// Branch names or patterns, without refs/heads/ (`*` matches anything, `/` too; e.g. main 'release/*').
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,
}

/// Remove branch patterns from the repository's protected_branches.
#[derive(clap::Args, Debug)]
pub struct UnprotectArgs {
    /// The bare repository (e.g. /srv/git/app.git).
    pub repo: PathBuf,
    /// Patterns exactly as `protect` was given them.
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,
}

/// The warning for a mirror that mirrors only protected branches of a repository that has none:
/// it carries no branch at all.
pub(crate) fn no_protected_branches(repo: &Path, mirror: &MirrorConfig) -> Option<String> {
    mirror.rules.protected_only.as_ref().filter(|p| p.is_empty()).map(|_| {
        format!(
            "warning: mirror {} mirrors only protected branches, and {} has none: no branch is mirrored until \
             you add them: git-push-mirror protect {} PATTERN…",
            mirror.name,
            repo.display(),
            repo.display()
        )
    })
}

/// Which change of the patterns a command makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protection {
    Protect,
    Unprotect,
}

pub fn cmd_protect(
    global: &GlobalConfig,
    args: &ProtectArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    change_protection(global, &args.repo, &args.patterns, Protection::Protect, out, err)
}

pub fn cmd_unprotect(
    global: &GlobalConfig,
    args: &UnprotectArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    change_protection(global, &args.repo, &args.patterns, Protection::Unprotect, out, err)
}

fn change_protection(
    global: &GlobalConfig,
    repo: &Path,
    patterns: &[String],
    change: Protection,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    let repo = repo_path(repo)?;
    for pattern in patterns {
        check_pattern(pattern)?;
    }
    let mut list = Vec::new();
    config_edit::edit_repo_file(&repo, global, |text| {
        let (new, now) = match change {
            Protection::Protect => config_edit::protect(text, patterns)?,
            Protection::Unprotect => config_edit::unprotect(text, patterns)?,
        };
        list = now;
        Ok(new)
    })
    .usage()?;
    let shown = if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    };
    writeln!(out, "protected branches of {}: {shown}", repo.display()).map_err(io)?;

    let Ok(cfg) = config::load_repo(&repo, global) else {
        return Ok(EXIT_OK);
    };
    let selective: Vec<&MirrorConfig> = cfg
        .mirrors
        .iter()
        .filter(|m| m.rules.protected_only.is_some())
        .collect();
    // What these mirrors carry changed: reconcile them in full at their next update.
    let store = StateStore::new(&global.state_dir);
    for mirror in &selective {
        store.change_mirror_state(&repo, &mirror.name, |state| state.request_full_sync(now_ms()))?;
    }
    if selective.is_empty() && !cfg.mirrors.is_empty() {
        let _ = writeln!(
            err,
            "note: no mirror of {0} has only_protected_branches, so every branch is still mirrored; to mirror \
             only these: git-push-mirror set {0} NAME --only-protected-branches",
            repo.display()
        );
    }
    for warning in selective.iter().filter_map(|m| no_protected_branches(&repo, m)) {
        let _ = writeln!(err, "{warning}");
    }
    Ok(EXIT_OK)
}

/// A pattern is a branch name (`main`, `release/*`), not a full ref name.
fn check_pattern(pattern: &str) -> Result<(), Exit> {
    let refuse = |message: String| Err(Exit(EXIT_USAGE, anyhow::anyhow!(message)));
    if pattern.trim().is_empty() {
        return refuse("a pattern must not be empty".to_string());
    }
    if let Some(branch) = pattern.strip_prefix("refs/heads/") {
        return refuse(format!(
            "patterns match branch names without refs/heads/: give `{branch}` instead of `{pattern}`"
        ));
    }
    Ok(())
}
