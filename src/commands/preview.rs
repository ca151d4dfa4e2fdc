//! `sync --dry-run [--json]` and `status --refs [--json]`: what a sync would do, and each ref's
//! local and mirror value, from one `ls-remote` per mirror (see [`crate::mirror::preview`]).
//! Nothing is pushed, created or written: no state, no registration.

use crate::commands::{
    EXIT_FAILED, EXIT_OK, Exit, MissingMirror, io, load_repo_config, no_such_mirror, repo_path, reported_repos,
};
use crate::config::{GlobalConfig, MirrorConfig};
use crate::mirror::preview::{DryRun, RefValues, dry_run, ref_values};
use crate::mirror::state::{MirrorState, StateStore};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `sync REPO [--mirror NAME] --dry-run [--json]`.
pub fn cmd_dry_run(
    global: &GlobalConfig,
    repo: &Path,
    only: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, Exit> {
    let repo = repo_path(repo)?;
    let cfg = load_repo_config(global, &repo)?;
    let mirrors: Vec<&MirrorConfig> = match only {
        Some(name) => match cfg.mirror(name) {
            Some(m) => vec![m],
            None => return Err(no_such_mirror(&repo, name, &cfg, MissingMirror::MustExist)),
        },
        None => cfg.mirrors.iter().filter(|m| m.enabled).collect(),
    };
    // Read only: a pair never updated has a fresh state, which is not saved.
    let store = StateStore::new(&global.state_dir);
    let runs: Vec<DryRun> = mirrors
        .iter()
        .map(|mirror| {
            let state = store
                .load_mirror(&repo, &mirror.name)
                .unwrap_or_else(|_| MirrorState::new(&repo, &mirror.name));
            dry_run(&repo, mirror, global, &state)
        })
        .collect();
    if json {
        serde_json::to_writer_pretty(&mut *out, &runs).map_err(|e| io(e.into()))?;
        writeln!(out).map_err(io)?;
    } else if runs.is_empty() {
        writeln!(out, "{}: no enabled mirrors", repo.display()).map_err(io)?;
    } else {
        for run in &runs {
            print_dry_run(run, out).map_err(io)?;
        }
    }
    Ok(if runs.iter().any(|r| r.error.is_some()) {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

/// One mirror's dry run, for people.
fn print_dry_run(run: &DryRun, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "mirror {} ({}): dry run, nothing is pushed", run.mirror, run.url)?;
    if let Some(error) = &run.error {
        return writeln!(out, "  cannot tell: {error}");
    }
    if let Some(how) = &run.would_create {
        writeln!(
            out,
            "  would create the repository (the mirror says it does not exist): {how}"
        )?;
    }
    for warning in &run.warnings {
        writeln!(out, "  warning: {warning}")?;
    }
    let width = run.refs.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in run.refs.iter().filter(|r| r.action != "up-to-date") {
        let values = match (&r.local, &r.mirror) {
            (Some(local), Some(mirror)) => format!("{}..{}", &mirror[..7], &local[..7]),
            (Some(local), None) => format!("new {}", &local[..7]),
            (None, Some(mirror)) => format!("mirror has {}", &mirror[..7]),
            (None, None) => String::new(),
        };
        let mut line = format!("  {:<width$}  {:<14}  {values}", r.name, r.action);
        if let Some(detail) = &r.detail {
            line.push_str(&format!(" ({detail})"));
        }
        if let Some(reason) = &r.refused_last_time {
            line.push_str(&format!("; refused last time: {reason}"));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    if let Some(plan) = &run.default_branch {
        let now = plan.now.as_deref().unwrap_or("none");
        if plan.settable {
            writeln!(out, "  default branch: would be set to {} (now {now})", plan.set_to)?;
        } else {
            writeln!(
                out,
                "  default branch: {now} on the mirror, {} here; not changed for this kind of mirror",
                plan.set_to
            )?;
        }
    }
    if !run.push_options.is_empty() {
        writeln!(out, "  push options: {}", run.push_options.join(", "))?;
    }
    let counts: Vec<String> = run.counts().iter().map(|(a, n)| format!("{n} {a}")).collect();
    writeln!(
        out,
        "  would: {}",
        if counts.is_empty() {
            "nothing (no refs)".to_string()
        } else {
            counts.join(", ")
        }
    )
}

/// One mirror's refs for `status --refs --json`.
#[derive(Serialize)]
struct MirrorRefs {
    repo: PathBuf,
    mirror: String,
    url: String,
    refs: Vec<RefValues>,
    error: Option<String>,
}

/// `status [REPO]… --refs [--json]`.
pub fn cmd_status_refs(
    global: &GlobalConfig,
    repos: &[PathBuf],
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    let (repos, problems) = reported_repos(global, repos, err)?;
    let mut all = Vec::new();
    for repo in &repos {
        let cfg = match crate::config::load_repo(repo, global) {
            Ok(cfg) => cfg,
            Err(e) => {
                writeln!(err, "git-push-mirror: {e}").map_err(io)?;
                continue;
            }
        };
        for mirror in &cfg.mirrors {
            let (refs, error) = match ref_values(repo, mirror, global) {
                Ok(refs) => (refs, None),
                Err(failure) => (Vec::new(), Some(failure.message)),
            };
            all.push(MirrorRefs {
                repo: repo.clone(),
                mirror: mirror.name.clone(),
                url: mirror.shown_url(),
                refs,
                error,
            });
        }
    }
    if json {
        serde_json::to_writer_pretty(&mut *out, &all).map_err(|e| io(e.into()))?;
        writeln!(out).map_err(io)?;
    } else {
        for mirror in &all {
            writeln!(
                out,
                "{} mirror {} ({})",
                mirror.repo.display(),
                mirror.mirror,
                mirror.url
            )
            .map_err(io)?;
            if let Some(error) = &mirror.error {
                writeln!(out, "  cannot list the mirror's refs: {error}").map_err(io)?;
                continue;
            }
            let width = mirror.refs.iter().map(|r| r.name.len()).max().unwrap_or(0);
            for r in &mirror.refs {
                let value = |v: &Option<String>| {
                    v.as_deref()
                        .map_or("-".to_string(), |v| v[..v.len().min(12)].to_string())
                };
                let scope = if r.in_scope { "" } else { "  (filtered out)" };
                writeln!(
                    out,
                    "  {:<width$}  {:<12}  {:<12}  {}{scope}",
                    r.name,
                    value(&r.local),
                    value(&r.mirror),
                    r.state
                )
                .map_err(io)?;
            }
        }
    }
    for problem in &problems {
        writeln!(err, "git-push-mirror: {problem}").map_err(io)?;
    }
    Ok(if all.iter().any(|m| m.error.is_some()) {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}
