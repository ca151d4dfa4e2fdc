//! `metrics`: the Prometheus text exposition format (version 0.0.4) for node_exporter's textfile
//! collector: per mirror the numbers of `status --json` (every mirror, or only those that need
//! attention: see `metrics/fleet.rs`), aggregates over all of them, plus the spool's depth and
//! the age of its oldest entry. Written atomically (temp file and rename) so the collector never reads half.

mod fleet;

use crate::config::MetricsMirrors;
use crate::git::FailureClass;
use crate::mirror::state::UpdateStatus;
use crate::ops::status::MirrorStatus;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::SystemTime;

const PREFIX: &str = "git_push_mirror";

/// Every `update_status` value, for the one-hot `update_status` gauge.
const STATUSES: [UpdateStatus; 5] = [
    UpdateStatus::None,
    UpdateStatus::Started,
    UpdateStatus::Finished,
    UpdateStatus::ToRetry,
    UpdateStatus::Failed,
];

/// Every `failure_class` value, for the one-hot `failure_class` gauge.
const FAILURE_CLASSES: [FailureClass; 3] = [
    FailureClass::Permanent,
    FailureClass::Transient,
    FailureClass::RateLimited,
];

/// What the spool holds.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SpoolStats {
    /// Entries waiting in `new/` or claimed by a worker.
    pub entries: usize,
    /// Age in seconds of the oldest of them (0 when there are none).
    pub oldest_entry_age_seconds: f64,
    /// Entries moved to `bad/` for the admin: unreadable, or naming an untrusted repository.
    pub bad_entries: usize,
    /// Those of `bad_entries` that named a repository the worker does not trust.
    pub untrusted_entries: usize,
}

/// Files directly in `dir` and in its subdirectories (one level: `claimed/<worker>/`).
fn entry_files(dir: &Path, files: &mut Vec<fs::Metadata>, depth: u8) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            if depth > 0 {
                entry_files(&entry.path(), files, depth - 1);
            }
        } else {
            files.push(meta);
        }
    }
}

/// Reads the spool's numbers (a missing spool is an empty one).
pub fn spool_stats(spool_dir: &Path, now: SystemTime) -> SpoolStats {
    let mut waiting = Vec::new();
    entry_files(&spool_dir.join("new"), &mut waiting, 0);
    entry_files(&spool_dir.join("claimed"), &mut waiting, 1);
    let mut bad = Vec::new();
    entry_files(&spool_dir.join("bad"), &mut bad, 0);
    let oldest = waiting
        .iter()
        .filter_map(|meta| meta.modified().ok())
        .filter_map(|modified| now.duration_since(modified).ok())
        .max()
        .unwrap_or_default();
    let untrusted = fs::read_dir(spool_dir.join("bad"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.ends_with(crate::pipeline::spool::UNTRUSTED_SUFFIX))
        })
        .count();
    SpoolStats {
        entries: waiting.len(),
        oldest_entry_age_seconds: oldest.as_secs_f64(),
        bad_entries: bad.len(),
        untrusted_entries: untrusted,
    }
}

/// Escapes a label value: backslash, double quote and line feed.
pub fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Unix seconds of a `status` time (RFC 3339); 0 for never.
fn seconds(time: &Option<String>) -> f64 {
    time.as_deref()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Formats a sample value: integers without a fraction, as Prometheus prints them.
fn value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// One metric family being written: HELP and TYPE first, then its samples.
struct Family<'a> {
    out: &'a mut String,
    name: String,
}

impl<'a> Family<'a> {
    fn gauge(out: &'a mut String, name: &str, help: &str) -> Family<'a> {
        let name = format!("{PREFIX}_{name}");
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        Family { out, name }
    }

    /// A counter: its name ends in `_total` and it only grows (kept in durable state).
    fn counter(out: &'a mut String, name: &str, help: &str) -> Family<'a> {
        let name = format!("{PREFIX}_{name}");
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], v: f64) {
        let _ = write!(self.out, "{}", self.name);
        if !labels.is_empty() {
            let rendered: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label_value(v)))
                .collect();
            let _ = write!(self.out, "{{{}}}", rendered.join(","));
        }
        let _ = writeln!(self.out, " {}", value(v));
    }
}

/// Per-mirror numbers that `status` does not show.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MirrorExtra {
    /// Seconds since the oldest pending change arrived (0 when nothing is pending).
    pub oldest_pending_age_seconds: f64,
}

/// [`MirrorExtra`] for each status.
pub fn extras(statuses: &[MirrorStatus], now_ms: u64) -> Vec<MirrorExtra> {
    statuses
        .iter()
        .map(|s| MirrorExtra {
            oldest_pending_age_seconds: s
                .pending_since_ms
                .map_or(0.0, |t| now_ms.saturating_sub(t) as f64 / 1000.0),
        })
        .collect()
}

/// What notifying has done (docs/notifications.md), from the state directory.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NotifyStats {
    /// Per channel (configured ones, and any with counts): notices delivered and deliveries failed.
    pub channels: Vec<(String, u64, u64)>,
    /// Notices queued and not yet sent (digest window, hourly limit, a failing channel).
    pub waiting: usize,
}

impl NotifyStats {
    /// The numbers of `state_dir` for the channels `configured`.
    pub fn read(state_dir: &Path, configured: &[&str]) -> NotifyStats {
        let ledger = crate::notify::ledger::Ledger::load(state_dir);
        let mut names: Vec<String> = configured.iter().map(|c| c.to_string()).collect();
        for name in ledger.sent.keys().chain(ledger.failures.keys()) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        NotifyStats {
            channels: names
                .into_iter()
                .map(|name| {
                    let sent = ledger.sent.get(&name).copied().unwrap_or(0);
                    let failed = ledger.failures.get(&name).copied().unwrap_or(0);
                    (name, sent, failed)
                })
                .collect(),
            waiting: crate::mirror::state::Outbox::new(state_dir).len(),
        }
    }
}

/// Everything one `metrics` run reports.
pub struct Snapshot<'a> {
    pub statuses: &'a [MirrorStatus],
    /// One per status, same order.
    pub extras: &'a [MirrorExtra],
    pub spool: SpoolStats,
    pub repositories: usize,
    pub config_errors: usize,
    pub silent_mode: bool,
    /// Corrupt state files moved aside to `<state_dir>/bad/`.
    pub state_files_quarantined: usize,
    /// Problems that kept repositories from being found (an unreadable `repos_root`).
    pub discovery_errors: usize,
    pub notify: NotifyStats,
    /// When this snapshot was taken (Unix seconds), so a stale file is seen even without
    /// node_exporter's `node_textfile_mtime_seconds`.
    pub written_at_seconds: f64,
    /// Which mirrors get series of their own (`metrics_mirrors`).
    pub mirrors: MetricsMirrors,
}

/// Renders the text exposition format.
pub fn render(snapshot: &Snapshot<'_>) -> String {
    let mut out = String::new();
    let listed = fleet::listed(snapshot);
    let listed_statuses = || listed.iter().map(|i| &snapshot.statuses[*i]);
    let per_mirror = |out: &mut String, name: &str, help: &str, v: &dyn Fn(usize, &MirrorStatus) -> f64| {
        let mut family = Family::gauge(out, name, help);
        for (i, s) in listed.iter().map(|i| (*i, &snapshot.statuses[*i])) {
            let repo = s.repo.to_string_lossy();
            family.sample(&[("repo", &repo), ("mirror", &s.mirror)], v(i, s));
        }
    };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    per_mirror(
        &mut out,
        "mirror_enabled",
        "Whether the mirror is enabled (1) or disabled (0).",
        &|_, s| flag(s.enabled),
    );
    {
        let mut family = Family::gauge(
            &mut out,
            "mirror_update_status",
            "The mirror's update_status as in `status`: 1 for the current value, 0 for the others.",
        );
        for s in listed_statuses() {
            let repo = s.repo.to_string_lossy();
            for status in STATUSES {
                let name = status.as_str();
                family.sample(
                    &[("repo", &repo), ("mirror", &s.mirror), ("status", name)],
                    flag(s.update_status == name),
                );
            }
        }
    }
    per_mirror(
        &mut out,
        "mirror_last_success_timestamp_seconds",
        "Unix time of the mirror's last successful update (0: never).",
        &|_, s| seconds(&s.last_successful_update_at),
    );
    per_mirror(
        &mut out,
        "mirror_last_update_timestamp_seconds",
        "Unix time the mirror's last update ended, successful or not (0: never).",
        &|_, s| seconds(&s.last_update_at),
    );
    per_mirror(
        &mut out,
        "mirror_consecutive_failures",
        "Failed updates of the mirror since its last success.",
        &|_, s| s.consecutive_failures as f64,
    );
    per_mirror(
        &mut out,
        "mirror_pending_refs",
        "Refs changed locally and not yet known to be on the mirror.",
        &|_, s| s.pending_refs.len() as f64,
    );
    per_mirror(
        &mut out,
        "mirror_faulted",
        "Whether nothing of the mirror can be pushed until a person acts (1): its repository's configuration \
         is broken or a file it names cannot be used (config_error), or its state cannot be read or written \
         (state_error).",
        &|_, s| flag(s.config_error.is_some() || s.state_error.is_some()),
    );
    per_mirror(
        &mut out,
        "mirror_unrecorded_pushes",
        "Whether the hook could not record pushes to the mirror's repository (a full disk, an unwritable spool) \
         and no drift scan has looked since (1): the mirror may be behind.",
        &|_, s| flag(s.unrecorded_pushes_since.is_some()),
    );
    {
        let mut family = Family::gauge(
            &mut out,
            "mirror_failure_class",
            "The kind of failure the mirror is in, as failure_class in `status`: 1 for the current value, 0 for \
             the others (all 0 while it is not failing).",
        );
        for s in listed_statuses() {
            let repo = s.repo.to_string_lossy();
            for class in FAILURE_CLASSES {
                let name = class.as_str();
                family.sample(
                    &[("repo", &repo), ("mirror", &s.mirror), ("class", name)],
                    flag(s.failure_class == Some(name)),
                );
            }
        }
    }
    per_mirror(
        &mut out,
        "mirror_last_verified_timestamp_seconds",
        "Unix time the mirror's refs were last checked against what it was given (0: never).",
        &|_, s| seconds(&s.last_verified_at),
    );
    per_mirror(
        &mut out,
        "mirror_lfs_failed",
        "Whether the mirror's last LFS upload failed or the repository lacked LFS objects (1) or not (0).",
        &|_, s| flag(s.lfs_status == crate::mirror::lfs::LfsStatus::Failed.as_str()),
    );
    per_mirror(
        &mut out,
        "mirror_full_sync_pending",
        "Whether a full reconciliation of the mirror is owed (1) or not (0).",
        &|_, s| flag(s.full_sync_pending),
    );
    per_mirror(
        &mut out,
        "mirror_oldest_pending_age_seconds",
        "Seconds since the oldest change the mirror has not got yet arrived (0: nothing pending).",
        &|i, _| snapshot.extras.get(i).map_or(0.0, |e| e.oldest_pending_age_seconds),
    );
    per_mirror(
        &mut out,
        "mirror_divergent_refs",
        "Refs left alone because they diverged on the mirror (keep_divergent_refs).",
        &|_, s| s.divergent_refs.len() as f64,
    );
    per_mirror(
        &mut out,
        "mirror_kept_refs",
        "Refs deleted locally but kept on the mirror because they hold unmerged work.",
        &|_, s| s.kept_refs.len() as f64,
    );
    per_mirror(
        &mut out,
        "mirror_rejected_refs",
        "Refs the mirror refused at the last update (see status: rejected_refs).",
        &|_, s| s.rejected_refs.len() as f64,
    );
    per_mirror(
        &mut out,
        "mirror_orphaned",
        "Whether the mirror's local repository is gone, deleted or renamed (1): nothing is pushed to it any more \
         and nothing was deleted on it (`git-push-mirror forget OLD_PATH` once it is dealt with).",
        &|_, s| flag(s.orphaned_since.is_some()),
    );
    fleet::render(&mut out, snapshot);
    Family::gauge(
        &mut out,
        "orphaned_mirrors",
        "Mirrors left behind by local repositories that are gone (deleted or renamed).",
    )
    .sample(
        &[],
        snapshot.statuses.iter().filter(|s| s.orphaned_since.is_some()).count() as f64,
    );
    let spool = &snapshot.spool;
    Family::gauge(
        &mut out,
        "spool_entries",
        "Pushes recorded by the hook and not yet taken over by a worker.",
    )
    .sample(&[], spool.entries as f64);
    Family::gauge(
        &mut out,
        "spool_oldest_entry_age_seconds",
        "Age of the oldest spool entry (0: the spool is empty).",
    )
    .sample(&[], spool.oldest_entry_age_seconds);
    Family::gauge(
        &mut out,
        "spool_bad_entries",
        "Spool entries moved to spool/bad/ for the admin: unreadable, or naming a repository the worker does not \
         trust.",
    )
    .sample(&[], spool.bad_entries as f64);
    Family::gauge(
        &mut out,
        "spool_untrusted_entries",
        "Spool entries moved to spool/bad/*.untrusted because they named a repository the worker does not trust \
         (neither registered nor owned by its user): someone else wrote into the spool, or a hook was installed \
         by hand.",
    )
    .sample(&[], spool.untrusted_entries as f64);
    Family::gauge(&mut out, "repositories", "Repositories covered.").sample(&[], snapshot.repositories as f64);
    Family::gauge(
        &mut out,
        "config_errors",
        "Repositories whose configuration cannot be read.",
    )
    .sample(&[], snapshot.config_errors as f64);
    Family::gauge(
        &mut out,
        "silent_mode",
        "Whether silent_mode is on (1): changes are recorded, nothing is pushed.",
    )
    .sample(&[], flag(snapshot.silent_mode));
    Family::gauge(
        &mut out,
        "state_files_quarantined",
        "Corrupt state files moved aside to <state_dir>/bad/ (their pairs were rebuilt).",
    )
    .sample(&[], snapshot.state_files_quarantined as f64);
    Family::gauge(
        &mut out,
        "discovery_errors",
        "Problems that kept repositories from being found (repos_root unreadable).",
    )
    .sample(&[], snapshot.discovery_errors as f64);
    {
        let mut family = Family::counter(
            &mut out,
            "notify_sent_total",
            "Notices delivered, per channel (command, webhook, email).",
        );
        for (channel, sent, _) in &snapshot.notify.channels {
            family.sample(&[("channel", channel)], *sent as f64);
        }
    }
    {
        let mut family = Family::counter(
            &mut out,
            "notify_failures_total",
            "Deliveries of notices that failed, per channel; the notices are sent again with the next one.",
        );
        for (channel, _, failed) in &snapshot.notify.channels {
            family.sample(&[("channel", channel)], *failed as f64);
        }
    }
    Family::gauge(
        &mut out,
        "notify_waiting",
        "Notices queued and not yet sent (digest window, hourly limit, a failing channel).",
    )
    .sample(&[], snapshot.notify.waiting as f64);
    Family::gauge(
        &mut out,
        "metrics_timestamp_seconds",
        "Unix time this file was written: an old value means `metrics` no longer runs.",
    )
    .sample(&[], snapshot.written_at_seconds);
    out
}

/// Writes `text` to `file` atomically, readable by the collector (mode 644).
pub fn write_file(file: &Path, text: &str) -> std::io::Result<()> {
    crate::util::fsutil::write_atomic(file, text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests;
