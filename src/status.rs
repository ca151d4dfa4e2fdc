//! Status reports: per mirror, what GitLab shows on its mirror page, as a table or as JSON.

use crate::config::{self, GlobalConfig};
use crate::lfs::LfsStatus;
use crate::remote_url::{display_url, redact_url};
use crate::size::ByteSize;
use crate::state::{PushProgress, StateStore, UpdateStatus};
use anyhow::Result;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// One mirror's status. Field names are stable: `status --json` prints these.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct MirrorStatus {
    pub repo: PathBuf,
    pub mirror: String,
    /// Redacted.
    pub url: String,
    pub enabled: bool,
    pub update_status: &'static str,
    pub last_update_at: Option<String>,
    pub last_update_started_at: Option<String>,
    pub last_successful_update_at: Option<String>,
    pub last_error: Option<String>,
    pub divergent_refs: Vec<String>,
    pub kept_refs: Vec<String>,
    pub pending_refs: Vec<String>,
    /// A full reconciliation is owed.
    pub full_sync_pending: bool,
    pub consecutive_failures: u32,
    pub next_attempt_at: Option<String>,
    /// `none` (no LFS objects sent yet), `ok`, or `failed` (see `lfs_error`).
    pub lfs_status: &'static str,
    /// Why the last LFS upload failed or which objects the repository lacks (redacted).
    pub lfs_error: Option<String>,
    /// Refs the mirror refused at the last update, with its reason (its own words when it gave any).
    pub rejected_refs: Vec<RejectedRef>,
    /// How far an update pushed in steps has got (while `update_status` is `started`).
    pub steps: Option<PushProgress>,
    /// The largest push the mirror takes, as learned from its refusals and timeouts (bytes).
    pub learned_max_push_size: Option<u64>,
    /// Why nothing is being pushed, when that is the case (silent mode, disabled, broken config).
    pub note: Option<String>,
}

/// A ref the mirror refused, and why.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct RejectedRef {
    #[serde(rename = "ref")]
    pub name: String,
    pub reason: String,
}

/// RFC 3339 UTC time of a millisecond timestamp; times past what RFC 3339
/// can write (a backoff configured for ever) show as its last second.
pub fn format_time(ms: u64) -> String {
    const LAST_RFC3339_MS: u64 = 253_402_300_799_000; // 9999-12-31T23:59:59Z
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms.min(LAST_RFC3339_MS))).to_string()
}

/// The statuses of a set of repositories, and the configuration errors met.
#[derive(Debug, Default)]
pub struct Collected {
    pub statuses: Vec<MirrorStatus>,
    /// One message per repository whose configuration cannot be read; its
    /// mirrors with saved state are still listed, with a note.
    pub config_errors: Vec<String>,
}

/// Collects the status of every mirror of `repos` (all registered
/// repositories when empty).
pub fn collect(global: &GlobalConfig, repos: &[PathBuf]) -> Result<Collected> {
    let store = StateStore::new(&global.state_dir);
    let repos = if repos.is_empty() {
        store.known_repos()?
    } else {
        repos.to_vec()
    };
    let mut statuses = Vec::new();
    let mut config_errors = Vec::new();
    for repo in repos {
        match config::load_repo(&repo, global) {
            Ok(cfg) => {
                for mirror in &cfg.mirrors {
                    statuses.push(mirror_status(
                        &store,
                        global,
                        &repo,
                        &mirror.name,
                        &display_url(&mirror.url, mirror.password.is_some()),
                        mirror.enabled,
                    )?);
                }
            }
            Err(e) => {
                config_errors.push(e.to_string());
                for name in store.mirror_names(&repo)? {
                    let mut status = mirror_status(&store, global, &repo, &name, "", true)?;
                    status.note = Some(format!("configuration error: {e}"));
                    statuses.push(status);
                }
            }
        }
    }
    Ok(Collected {
        statuses,
        config_errors,
    })
}

fn mirror_status(
    store: &StateStore,
    global: &GlobalConfig,
    repo: &Path,
    name: &str,
    url: &str,
    enabled: bool,
) -> Result<MirrorStatus> {
    let state = store.load_mirror(repo, name)?;
    let note = if global.silent_mode {
        Some("silent_mode is on: changes are recorded but nothing is pushed".to_string())
    } else if !enabled {
        Some("disabled: changes are recorded but not pushed".to_string())
    } else {
        None
    };
    Ok(MirrorStatus {
        repo: repo.to_path_buf(),
        mirror: name.to_string(),
        url: redact_url(url),
        enabled,
        update_status: state.update_status.as_str(),
        last_update_at: state.last_update_at_ms.map(format_time),
        last_update_started_at: state.last_update_started_at_ms.map(format_time),
        last_successful_update_at: state.last_successful_update_at_ms.map(format_time),
        last_error: state.last_error.clone(),
        divergent_refs: state.divergent_refs.iter().cloned().collect(),
        kept_refs: state.kept_refs.iter().cloned().collect(),
        pending_refs: state.pending.keys().cloned().collect(),
        full_sync_pending: state.full_sync_seq.is_some(),
        consecutive_failures: state.consecutive_failures,
        next_attempt_at: state.next_attempt_at_ms.filter(|_| state.has_work()).map(format_time),
        lfs_status: state.lfs_status.as_str(),
        lfs_error: state.lfs_error.clone(),
        rejected_refs: state
            .rejected_refs
            .iter()
            .map(|(name, reason)| RejectedRef {
                name: name.clone(),
                reason: reason.clone(),
            })
            .collect(),
        steps: state.steps.filter(|_| state.update_status == UpdateStatus::Started),
        learned_max_push_size: state.learned_max_push_size,
        note,
    })
}

/// Whether any mirror is in the `failed` state (the exit status of `status`).
pub fn any_failed(statuses: &[MirrorStatus]) -> bool {
    statuses
        .iter()
        .any(|s| s.update_status == UpdateStatus::Failed.as_str())
}

/// Prints statuses for people.
pub fn print_human(statuses: &[MirrorStatus], out: &mut dyn Write) -> std::io::Result<()> {
    if statuses.is_empty() {
        writeln!(out, "no mirrors configured")?;
    }
    let mut current_repo: Option<&Path> = None;
    for s in statuses {
        if current_repo != Some(s.repo.as_path()) {
            writeln!(out, "{}", s.repo.display())?;
            current_repo = Some(&s.repo);
        }
        let enabled = if s.enabled { "" } else { " (disabled)" };
        writeln!(out, "  {} {}{enabled}", s.mirror, s.url)?;
        writeln!(out, "    update_status: {}", s.update_status)?;
        let times = [
            ("last_update_at", &s.last_update_at),
            ("last_update_started_at", &s.last_update_started_at),
            ("last_successful_update_at", &s.last_successful_update_at),
            ("next_attempt_at", &s.next_attempt_at),
        ];
        for (label, value) in times {
            if let Some(value) = value {
                writeln!(out, "    {label}: {value}")?;
            }
        }
        if let Some(error) = &s.last_error {
            writeln!(out, "    last_error: {error}")?;
        }
        if let Some(steps) = &s.steps {
            writeln!(
                out,
                "    steps: {}/{} ({} sent)",
                steps.done,
                steps.total,
                ByteSize(steps.bytes_sent)
            )?;
        }
        if let Some(limit) = s.learned_max_push_size {
            writeln!(
                out,
                "    learned_max_push_size: {} (the mirror refused or timed out bigger pushes)",
                ByteSize(limit)
            )?;
        }
        if !s.rejected_refs.is_empty() {
            writeln!(out, "    rejected_refs ({}):", s.rejected_refs.len())?;
            for rejected in &s.rejected_refs {
                writeln!(out, "      {}: {}", rejected.name, rejected.reason)?;
            }
        }
        if s.lfs_status != LfsStatus::None.as_str() {
            writeln!(out, "    lfs_status: {}", s.lfs_status)?;
        }
        if let Some(error) = &s.lfs_error {
            writeln!(out, "    lfs_error: {error}")?;
        }
        for (label, refs) in [
            ("divergent_refs", &s.divergent_refs),
            ("kept_refs", &s.kept_refs),
            ("pending_refs", &s.pending_refs),
        ] {
            if !refs.is_empty() {
                writeln!(out, "    {label} ({}):", refs.len())?;
                for name in refs {
                    writeln!(out, "      {name}")?;
                }
            }
        }
        if s.full_sync_pending {
            writeln!(out, "    a full reconciliation is pending")?;
        }
        if let Some(note) = &s.note {
            writeln!(out, "    note: {note}")?;
        }
    }
    Ok(())
}

/// Prints statuses as one JSON array.
pub fn print_json(statuses: &[MirrorStatus], out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, statuses)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(format_time(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_time(u64::MAX), "9999-12-31T23:59:59Z");
    }
}
