//! `sync`: one repository's mirrors updated now, in the foreground, with a per-ref report.

use crate::commands::{EXIT_FAILED, EXIT_OK, Exit, MissingMirror, io, load_repo_config, no_such_mirror, repo_path};
use crate::config::{GlobalConfig, MirrorConfig};
use crate::mirror::state::StateStore;
use crate::mirror::update::{UpdateReport, update_mirror_showing};
use crate::util::lease::{Heartbeat, LeasedLock};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;

/// Update now: full reconciliation in the foreground, with a per-ref table.
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Update now: a full reconciliation of the repository's mirrors in the foreground, with a \
per-ref table; exit 1 on failure.\n\n\
With --dry-run, nothing is pushed, created or written: one ls-remote per mirror, then per ref what the \
update would do (create, update, force, delete, keep-divergent, kept, filtered-out; refs the mirror refused \
last time are marked), the repository it would create and the default branch it would set."
)]
pub struct SyncArgs {
    /// The bare repository (e.g. /srv/git/app.git).
    pub repo: PathBuf,
    /// Only this mirror.
    #[arg(long, value_name = "NAME")]
    pub mirror: Option<String>,
    /// Say what the sync would do; push nothing, write no state.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: one JSON array, an object per mirror.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
}

/// `sync REPO [--mirror NAME]`; with `--dry-run`, [`crate::commands::preview::cmd_dry_run`].
pub fn cmd_sync(global: &GlobalConfig, args: &SyncArgs, out: &mut dyn Write) -> Result<u8, Exit> {
    let (repo, only) = (&args.repo, args.mirror.as_deref());
    if args.dry_run {
        return crate::commands::preview::cmd_dry_run(global, repo, only, args.json, out);
    }
    let repo = repo_path(repo)?;
    let cfg = load_repo_config(global, &repo)?;
    let mirrors: Vec<&MirrorConfig> = match only {
        Some(name) => match cfg.mirrors.iter().find(|m| m.name == name) {
            Some(m) => vec![m],
            None => return Err(no_such_mirror(&repo, name, &cfg, MissingMirror::MustExist)),
        },
        None => cfg.mirrors.iter().filter(|m| m.enabled).collect(),
    };
    if mirrors.is_empty() {
        writeln!(out, "{}: no enabled mirrors", repo.display()).map_err(io)?;
        return Ok(EXIT_OK);
    }
    let store = StateStore::new(&global.state_dir).telling(global.notify.is_configured());
    store.register(&repo)?;
    // Renews the mirror's lock while it is pushed (another host takes over only a dead one's).
    let _heartbeat = Heartbeat::start(global.claim_timeout);
    let mut failed = false;
    for mirror in mirrors {
        let _push_lock = LeasedLock::acquire(&store.push_lock_path(&repo, &mirror.name)?, global.claim_timeout)
            .context("locking the mirror")?;
        let report = update_mirror_showing(&store, global, &repo, mirror, true, &|progress| {
            show_progress(&mirror.name, progress)
        })?;
        print_report(&mirror.name, &mirror.shown_url(), &report, out).map_err(io)?;
        failed |= report.is_failure();
    }
    // What the updates owe people is sent by a worker, so `sync` never waits on a notifier.
    if !store.outbox().is_empty()
        && let Err(e) = crate::pipeline::spool::Spool::new(&global.spool_dir)
            .ensure_dirs()
            .and_then(|()| crate::pipeline::hook::start_worker_if_idle(&global.spool_dir, global.source.as_deref()))
    {
        log::warn!("could not start a worker to send notices ({e}); the next `run` sends them");
    }
    Ok(if failed { EXIT_FAILED } else { EXIT_OK })
}

/// A line per landed step of an update pushed in steps, for a person watching `sync`.
fn show_progress(mirror: &str, progress: &crate::mirror::state::PushProgress) {
    use std::io::IsTerminal;
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = writeln!(
            err,
            "mirror {mirror}: step {}/{} pushed ({} sent)",
            progress.done,
            progress.total,
            crate::util::size::ByteSize(progress.bytes_sent)
        );
    }
}

/// The per-ref table of one update.
pub fn print_report(name: &str, url: &str, report: &UpdateReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "mirror {name} ({url})")?;
    for warning in &report.warnings {
        writeln!(out, "  warning: {warning}")?;
    }
    let width = report.refs.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in &report.refs {
        let detail = r.outcome.detail();
        let line = format!("  {:<width$}  {:<10}  {detail}", r.name, r.outcome.label());
        writeln!(out, "{}", line.trim_end())?;
    }
    if let Some(lfs) = &report.lfs {
        let scope = if lfs.full {
            "all mirrored refs"
        } else {
            "the new commits"
        };
        match lfs.error_summary() {
            None => writeln!(
                out,
                "  lfs: ok: {} object(s) referenced by {scope}, all on the mirror",
                lfs.objects
            )?,
            Some(error) => writeln!(out, "  lfs: failed: {error}")?,
        }
    }
    match report.error_summary() {
        Some(error) if report.is_failure() => writeln!(out, "  result: failed: {error}"),
        _ => writeln!(out, "  result: ok"),
    }
}
