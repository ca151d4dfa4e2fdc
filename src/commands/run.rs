//! `run`: the worker, as cron or the hook starts it.

use crate::commands::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, Exit, repo_paths};
use crate::config::GlobalConfig;
use crate::pipeline::worker;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// Drain the spool and update due mirrors, then exit (for cron and the hook).
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Only update mirrors of these repositories.
    #[arg(long = "repo", value_name = "REPO")]
    pub repos: Vec<PathBuf>,
    /// If another worker is draining, wait for it and then drain (default: leave it the work).
    #[arg(long)]
    pub wait: bool,
    /// Started by the hook: log to the log file only.
    #[arg(long, hide = true)]
    pub detached: bool,
}

pub fn cmd_run(global: &GlobalConfig, config_file: Option<&Path>, args: &RunArgs) -> Result<u8, Exit> {
    let options = worker::RunOptions {
        repos: repo_paths(&args.repos)?,
        wait: args.wait,
        scan_registered: !args.detached,
        config_file: config_file.map(Path::to_path_buf),
    };
    let summary = worker::run(global, &options).map_err(|e| {
        // An untrusted spool or state directory is the deployment's problem, as a broken configuration.
        let code = if e.downcast_ref::<crate::util::trust::Untrusted>().is_some() {
            EXIT_USAGE
        } else {
            EXIT_FAILED
        };
        Exit(code, e)
    })?;
    log::debug!("run finished: {summary:?}");
    Ok(if summary.failed_updates > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}
