//! `status`: each mirror's state, as a table or as JSON.

use crate::commands::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, Exit, empty_state_hint, io, reported_repos};
use crate::config::GlobalConfig;
use crate::ops::status;
use anyhow::Result;
use std::io::Write;
use std::path::PathBuf;

/// Show each mirror's status; exits 1 if any mirror is failed.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Only these repositories (default: every registered one and every mirrored one under repos_root).
    pub repos: Vec<PathBuf>,
    /// One JSON array of objects with stable field names.
    #[arg(long)]
    pub json: bool,
    /// Each ref's local and mirror value, from one ls-remote per mirror.
    #[arg(long)]
    pub refs: bool,
}

/// `status [REPO]… [--json]`; with `--refs`, [`crate::commands::preview::cmd_status_refs`].
pub fn cmd_status(
    global: &GlobalConfig,
    args: &StatusArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    let (repos, json) = (&args.repos[..], args.json);
    if args.refs {
        return crate::commands::preview::cmd_status_refs(global, repos, json, out, err);
    }
    let repos_given = repos;
    let (repos, problems) = reported_repos(global, repos, err)?;
    // Run as another user than the pushers, this may be another spool and state than the hook's.
    for line in crate::ops::deployment::other_users(&repos, "status") {
        writeln!(err, "git-push-mirror: note: {line}").map_err(io)?;
    }
    let mut collected = status::collect(global, &repos);
    if repos_given.is_empty() {
        collected.statuses.extend(status::orphans(global));
    }
    let statuses = &collected.statuses;
    if json {
        status::print_json(statuses, out)
    } else if statuses.is_empty() && collected.config_errors.is_empty() {
        writeln!(out, "{}", empty_state_hint(global))
    } else {
        status::print_human(statuses, out)
    }
    .map_err(io)?;
    if json && statuses.is_empty() && collected.config_errors.is_empty() {
        writeln!(err, "{}", empty_state_hint(global)).map_err(io)?;
    }
    for error in problems.iter().chain(&collected.config_errors) {
        writeln!(err, "git-push-mirror: {error}").map_err(io)?;
    }
    Ok(if !collected.config_errors.is_empty() || !problems.is_empty() {
        EXIT_USAGE
    } else if status::any_failed(statuses) {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}
