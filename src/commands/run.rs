//! `run`: the worker, as cron or the hook starts it.

use crate::commands::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, Exit, repo_paths};
use crate::config::GlobalConfig;
use crate::pipeline::worker;
use anyhow::Result;
use std::path::{Path, PathBuf};

pub fn cmd_run(
    global: &GlobalConfig,
    config_file: Option<&Path>,
    repos: &[PathBuf],
    wait: bool,
    detached: bool,
) -> Result<u8, Exit> {
    let options = worker::RunOptions {
        repos: repo_paths(repos)?,
        wait,
        scan_registered: !detached,
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
