//! What each command does, one file per command or family, with the flags it takes (its `Args`,
//! which `cli` parses and hands it).
//! Each command writes to the `out`/`err` it is given and returns its exit code; this file holds
//! the exit-code policy (0 ok, 1 a mirror or check failed, 2 usage or configuration error) and the
//! helpers several commands share: resolving `REPO` arguments, naming a missing mirror.

pub mod check;
pub mod config_page;
pub mod docs;
pub mod hook;
pub mod install;
pub mod keys;
pub mod metrics;
pub mod mirrors;
pub mod notify_test;
pub mod preview;
pub mod protected;
pub mod repo_arg;
pub mod run;
pub mod status;
pub mod sync;

use crate::config::{self, GlobalConfig};
use crate::mirror::state::StateStore;

use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Everything went as asked.
pub const EXIT_OK: u8 = 0;

/// A mirror update failed or a check found a problem.
pub const EXIT_FAILED: u8 = 1;

/// Bad usage or broken configuration.
pub const EXIT_USAGE: u8 = 2;

/// A failure with the exit code it deserves.
#[derive(Debug)]
pub struct Exit(pub u8, pub anyhow::Error);

pub(crate) trait ExitContext<T> {
    fn usage(self) -> Result<T, Exit>;
}

impl<T, E: Into<anyhow::Error>> ExitContext<T> for Result<T, E> {
    fn usage(self) -> Result<T, Exit> {
        self.map_err(|e| Exit(EXIT_USAGE, e.into()))
    }
}

impl From<anyhow::Error> for Exit {
    fn from(e: anyhow::Error) -> Exit {
        Exit(EXIT_FAILED, e)
    }
}

/// A repository argument, as the absolute path the hook will report.
pub(crate) fn repo_path(repo: &Path) -> Result<PathBuf, Exit> {
    let path = std::fs::canonicalize(repo)
        .with_context(|| format!("{}: no such repository", repo.display()))
        .usage()?;
    crate::commands::repo_arg::check(&path).usage()?;
    crate::mirror::refs::LocalRepo::open(&path).usage()?;
    Ok(path)
}

/// What a command about a missing mirror may suggest besides the names the repository has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MissingMirror {
    /// The command configures the mirror (`set`, `keygen`, `known-hosts --accept`): adding it first
    /// is a way on.
    MayBeAdded,
    /// The command acts on an existing mirror only (`remove`, `sync`).
    MustExist,
}

/// The refusal of a mirror name the repository does not have: the closest name it has, or the
/// names it has, and (for a command that configures a mirror) how to add it.
pub(crate) fn no_such_mirror(repo: &Path, name: &str, cfg: &config::RepoConfig, then: MissingMirror) -> Exit {
    let names: Vec<&str> = cfg.mirrors.iter().map(|m| m.name.as_str()).collect();
    let mut message = format!("{}: there is no mirror named `{name}`", repo.display());
    match crate::util::suggest::closest(name, names.iter().copied()) {
        Some(close) => message.push_str(&format!("; did you mean `{close}`?")),
        None if names.is_empty() => message.push_str(" (it has no mirrors)"),
        None => {
            let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            message.push_str(&format!(" (its mirrors: {})", names.join(", ")));
        }
    }
    if then == MissingMirror::MayBeAdded {
        message.push_str(&format!(
            "; to add it first: git-push-mirror add {} {name} URL",
            repo.display()
        ));
    }
    Exit(EXIT_USAGE, anyhow::anyhow!(message))
}

/// After a change that may fix a failing mirror (its settings by `set`, its host keys by
/// `known-hosts --accept`): its retry is made due at once, so the next `run` (cron) or push does
/// not wait out the backoff, and the admin is told how to retry it now. `also` is done to the
/// state in the same write (`set` asks for a full reconciliation).
pub(crate) fn retry_after_fix(
    global: &GlobalConfig,
    repo: &Path,
    name: &str,
    also: impl FnOnce(&mut crate::mirror::state::MirrorState),
    err: &mut dyn Write,
) -> Result<(), Exit> {
    let was_failing = StateStore::new(&global.state_dir).change_mirror_state(repo, name, |state| {
        also(state);
        state.retry_now();
        state.is_failing()
    })?;
    if was_failing {
        let _ = writeln!(
            err,
            "mirror {name} was failing: it is retried at the next `run` (cron) or push instead of after its \
             backoff; to retry it now: git-push-mirror sync {} --mirror {name}",
            repo.display()
        );
    }
    Ok(())
}

/// Refuses `command` on `repo` when the caller is not among the users its pushes run as: the
/// files it would create (configuration, secrets, keys, state) would be the caller's, which the
/// hook and its worker, running as the repository's owner, could not use.
pub(crate) fn refuse_other_user(repo: &Path, command: &str) -> Result<(), Exit> {
    match crate::ops::deployment::other_user(repo, &format!("{command} …")) {
        Some(line) => Err(Exit(EXIT_USAGE, anyhow::anyhow!(line))),
        None => Ok(()),
    }
}

pub(crate) fn repo_paths(repos: &[PathBuf]) -> Result<Vec<PathBuf>, Exit> {
    repos.iter().map(|r| repo_path(r)).collect()
}

pub(crate) fn io(e: std::io::Error) -> Exit {
    Exit(EXIT_FAILED, e.into())
}

pub(crate) fn load_repo_config(global: &GlobalConfig, repo: &Path) -> Result<config::RepoConfig, Exit> {
    config::load_repo(repo, global).usage()
}

pub(crate) fn known_or_given(
    global: &GlobalConfig,
    repos: &[PathBuf],
    err: &mut dyn Write,
) -> Result<Vec<PathBuf>, Exit> {
    if repos.is_empty() {
        forget_gone_repos(global, err);
        // Registered repositories, and the mirrored ones under repos_root (the fleet).
        crate::pipeline::fleet::all_repos(global, &StateStore::new(&global.state_dir)).usage()
    } else {
        repo_paths(repos)
    }
}

/// Registered repositories that were deleted are reported this once, then forgotten.
pub(crate) fn forget_gone_repos(global: &GlobalConfig, err: &mut dyn Write) {
    match crate::pipeline::registrations::forget_gone(&StateStore::new(&global.state_dir)) {
        Ok(gone) => {
            for repo in gone {
                let _ = writeln!(
                    err,
                    "git-push-mirror: {}",
                    crate::pipeline::registrations::gone_notice(&repo)
                );
            }
        }
        Err(e) => {
            let _ = writeln!(err, "git-push-mirror: warning: forgetting deleted repositories: {e:#}");
        }
    }
}

/// The repositories `status` and `metrics` report: those named, or all of them, with what kept
/// some from being found (reported; the others still are).
pub(crate) fn reported_repos(
    global: &GlobalConfig,
    repos: &[PathBuf],
    err: &mut dyn Write,
) -> Result<(Vec<PathBuf>, Vec<String>), Exit> {
    if repos.is_empty() {
        forget_gone_repos(global, err);
        Ok(crate::ops::status::all_repos(global))
    } else {
        Ok((repo_paths(repos)?, Vec::new()))
    }
}

/// Refuses to write into a spool or state directory that users the worker does not trust could
/// write (docs/security.md): what is in them decides what is pushed where. `run` checks them
/// itself, once it has created them.
pub(crate) fn refuse_untrusted_dirs(global: &GlobalConfig) -> Result<(), Exit> {
    crate::pipeline::trust::check_dirs(global).usage()
}

/// Which global configuration, state and spool a command used: run as another user (or with
/// another HOME), it finds other ones.
pub(crate) fn where_used(global: &GlobalConfig) -> String {
    let config = match &global.source {
        Some(file) => file.display().to_string(),
        None => "none found, embedded defaults".to_string(),
    };
    format!(
        "global configuration: {config}; state: {}; spool: {}",
        global.state_dir.display(),
        global.spool_dir.display()
    )
}

/// What a command over "every repository" says when there is none: where it looked, and the next step.
pub(crate) fn empty_state_hint(global: &GlobalConfig) -> String {
    format!(
        "no mirrors configured ({})\nto start, add one: git-push-mirror add REPO NAME URL \
         (or, for many repositories, a fleet mirror in the global configuration)",
        where_used(global)
    )
}

/// A fleet mirror's settings live in the global file, which commands never rewrite.
pub(crate) fn fleet_mirror_setting(name: &str, key: &str) -> Exit {
    Exit(
        EXIT_USAGE,
        anyhow::anyhow!(
            "mirror {name} is a fleet mirror of the global configuration: set `{key}` in its [mirror.{name}] \
             table there (one file for all its repositories), then run this again"
        ),
    )
}
