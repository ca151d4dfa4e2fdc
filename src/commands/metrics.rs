//! `metrics`: the Prometheus text format, to stdout or atomically to a file.

use crate::commands::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, Exit, ExitContext, io, reported_repos};
use crate::config::GlobalConfig;
use crate::mirror::state::StateStore;
use crate::ops::status;
use crate::util::fsutil::now_ms;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;

/// Write per-mirror and spool metrics in the Prometheus text format (node_exporter textfile
/// collector); exits 1 if any mirror is failed, like `status`, and 2 if the file cannot be written.
#[derive(clap::Args, Debug)]
pub struct MetricsArgs {
    /// Only these repositories (default: every registered one and every mirrored one under repos_root).
    pub repos: Vec<PathBuf>,
    /// Write to FILE atomically (temp file and rename), e.g.
    /// /var/lib/prometheus/node-exporter/git-push-mirror.prom; default: stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `metrics`: the Prometheus text format, to stdout or atomically to a file.
/// Exit status as `status`: 1 if a mirror is failed, 2 if a configuration is broken.
pub fn cmd_metrics(
    global: &GlobalConfig,
    args: &MetricsArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    let (repos, output) = (&args.repos[..], args.output.as_deref());
    let repos_given = repos;
    let (repos, problems) = reported_repos(global, repos, err)?;
    let mut collected = status::collect(global, &repos);
    if repos_given.is_empty() {
        collected.statuses.extend(status::orphans(global));
    }
    let now = now_ms();
    let extras = crate::ops::metrics::extras(&collected.statuses, now);
    let text = crate::ops::metrics::render(&crate::ops::metrics::Snapshot {
        statuses: &collected.statuses,
        extras: &extras,
        spool: crate::ops::metrics::spool_stats(&global.spool_dir, std::time::SystemTime::now()),
        repositories: crate::pipeline::registrations::count_mirrored(global, &repos),
        config_errors: collected.config_errors.len(),
        silent_mode: global.silent_mode,
        state_files_quarantined: StateStore::new(&global.state_dir).bad_files(),
        discovery_errors: problems.len(),
        notify: crate::ops::metrics::NotifyStats::read(
            &global.state_dir,
            &crate::notify::channels(&global.notify)
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>(),
        ),
        written_at_seconds: now as f64 / 1000.0,
        mirrors: global.metrics_mirrors,
    });
    match output {
        // Exit 2, not 1 ("a mirror failed"): a file that is not written leaves the collector
        // serving stale numbers, which must not pass for a mirror problem monitoring tolerates.
        Some(file) => crate::ops::metrics::write_file(file, &text)
            .with_context(|| {
                format!(
                    "writing {} (the user metrics runs as must be able to create files in its directory)",
                    file.display()
                )
            })
            .usage()?,
        None => out.write_all(text.as_bytes()).map_err(io)?,
    }
    for error in problems.iter().chain(&collected.config_errors) {
        writeln!(err, "git-push-mirror: {error}").map_err(io)?;
    }
    Ok(if !collected.config_errors.is_empty() || !problems.is_empty() {
        EXIT_USAGE
    } else if status::any_failed(&collected.statuses) {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}
