//! Status reports: per mirror, what GitLab shows on its mirror page, as a table or as JSON.

use crate::config::rules::MirrorRules;
use crate::config::{self, GlobalConfig};
use crate::mirror::lfs::LfsStatus;
use crate::mirror::state::{MirrorState, PushProgress, RepoRecord, StateStore, UpdateStatus};
use crate::pipeline::health::{Spooled, spooled_refs};
use crate::util::remote_url::redact_url;
use crate::util::size::ByteSize;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
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
    /// Refs deleted locally but kept on the mirror (names only, as ever).
    pub kept_refs: Vec<String>,
    /// Why each of `kept_refs` is kept (those whose reason is known).
    pub kept_reasons: Vec<KeptRef>,
    pub pending_refs: Vec<String>,
    /// A full reconciliation is owed.
    pub full_sync_pending: bool,
    pub consecutive_failures: u32,
    /// What kind of failure the mirror is in while it fails: `permanent` (a person must act;
    /// retried every `permanent_retry` and at every push or `sync`), `transient` (retried with
    /// backoff) or `rate_limited` (retried when the mirror asked); `null` otherwise.
    pub failure_class: Option<&'static str>,
    pub next_attempt_at: Option<String>,
    /// `none` (no LFS objects sent yet), `ok`, or `failed` (see `lfs_error`).
    pub lfs_status: &'static str,
    /// Why the last LFS upload failed or which objects the repository lacks (redacted).
    pub lfs_error: Option<String>,
    /// Refs the mirror refused at the last update, with its reason (its own words when it gave any).
    pub rejected_refs: Vec<RejectedRef>,
    /// How far an update pushed in steps has got (while `update_status` is `started`).
    pub steps: Option<PushProgress>,
    /// The size pushes to the mirror are kept under, as learned from its refusals, dropped
    /// connections and timeouts (bytes); why (`refused`, `dropped`, `timed_out`, `unknown`: an
    /// older version's) and when.
    pub learned_max_push_size: Option<u64>,
    pub learned_max_push_size_source: Option<&'static str>,
    pub learned_max_push_size_at: Option<String>,
    /// Why nothing is being pushed, when that is the case (silent mode, disabled, broken config).
    pub note: Option<String>,
    /// When the mirror's refs were last checked against what it was given (a full
    /// reconciliation or a `verify_interval` check).
    pub last_verified_at: Option<String>,
    /// The repository's `push-mirror.toml` (or the global file) cannot be used: nothing of
    /// this repository is mirrored until it is fixed (`file:line:column: what is wrong`); or a
    /// file this mirror names cannot be used (a password file others can read): this mirror
    /// alone waits until it is fixed.
    pub config_error: Option<String>,
    /// The pair's state cannot be read (corrupt: the worker moves it aside and rebuilds it)
    /// or the repository's changes cannot be recorded (a full disk, an unwritable state directory).
    pub state_error: Option<String>,
    /// The hook could not record pushes (a full disk, an unwritable spool) since this time: the
    /// mirror may be behind until `run`'s drift scan has looked at the repository.
    pub unrecorded_pushes_since: Option<String>,
    /// The mirror's default branch, when it is not the local one (docs/mirror-side.md).
    pub mirror_default_branch: Option<String>,
    /// Why the mirror's default branch could not be made the local one.
    pub default_branch_error: Option<String>,
    /// The mirror turned `push_options` down: its pushes go without them.
    pub push_options_warning: Option<String>,
    /// When this program created the repository on the mirror.
    pub repository_created_at: Option<String>,
    /// The local repository is gone (deleted or renamed) since this time; the mirror is left as
    /// it is (docs/mirror-side.md: "Mirrors left behind").
    pub orphaned_since: Option<String>,
    /// When the oldest pending change arrived (for `metrics`).
    #[serde(skip)]
    pub pending_since_ms: Option<u64>,
}

/// A ref kept on the mirror although deleted locally, and why.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct KeptRef {
    #[serde(rename = "ref")]
    pub name: String,
    pub reason: String,
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
    /// mirrors with saved state are still listed, with `config_error`.
    pub config_errors: Vec<String>,
}

/// Collects the status of every mirror of `repos`. Nothing about one repository keeps the
/// others from being reported: a broken configuration, a corrupt or unreadable state file, or
/// changes that cannot be recorded show as that repository's (or pair's) `config_error` or
/// `state_error`, with `update_status: failed`.
pub fn collect(global: &GlobalConfig, repos: &[PathBuf]) -> Collected {
    let store = StateStore::new(&global.state_dir);
    let spooled = spooled_refs(&global.spool_dir);
    let mut collected = Collected::default();
    for repo in repos {
        collect_repo(&store, global, repo, spooled.get(repo), &mut collected);
    }
    collected
}

/// Mirrors whose local repository is gone (deleted or renamed), one status each: nothing is
/// pushed to them any more, and nothing was deleted on them (see [`crate::pipeline::orphaned`]).
pub fn orphans(global: &GlobalConfig) -> Vec<MirrorStatus> {
    let store = StateStore::new(&global.state_dir);
    let mut statuses = Vec::new();
    for orphan in crate::pipeline::orphaned::list(&store) {
        for mirror in &orphan.mirrors {
            let mut state = MirrorState::new(&orphan.repo, &mirror.name);
            state.last_successful_update_at_ms = mirror.last_successful_update_at_ms;
            let mut status = mirror_status(global, &state, &mirror.name, &mirror.url, false);
            status.orphaned_since = Some(format_time(orphan.since_ms));
            status.note = Some(format!(
                "the local repository is gone (deleted or renamed): nothing is pushed to this mirror any more, and \
                 nothing was deleted on it; archive or delete it on its host if it is no longer wanted, then: \
                 git-push-mirror forget {}",
                orphan.repo.display()
            ));
            statuses.push(status);
        }
    }
    statuses
}

/// Every repository `status` and `metrics` cover without arguments (see
/// [`crate::pipeline::fleet::all_repos`]); what cannot be searched is reported, and the rest still counts.
pub fn all_repos(global: &GlobalConfig) -> (Vec<PathBuf>, Vec<String>) {
    let store = StateStore::new(&global.state_dir);
    match crate::pipeline::fleet::all_repos(global, &store) {
        Ok(repos) => (repos, Vec::new()),
        Err(e) => {
            let problem = format!("{e:#}");
            let known = store.known_repos().unwrap_or_default();
            (known, vec![problem])
        }
    }
}

/// One configured (or, with a broken configuration, remembered) mirror of a repository.
struct Listed {
    name: String,
    url: String,
    enabled: bool,
    rules: Option<MirrorRules>,
    /// Why this mirror alone cannot be updated (see [`crate::config::MirrorConfig::fault`]).
    fault: Option<String>,
}

fn collect_repo(
    store: &StateStore,
    global: &GlobalConfig,
    repo: &Path,
    spooled: Option<&Spooled>,
    collected: &mut Collected,
) {
    // Refs reported but not yet handed to the mirrors, in the record or still in the spool.
    let (record, record_error) = match store.load_record(repo) {
        Ok(record) => (record.unwrap_or_default(), None),
        Err(e) => (
            RepoRecord::default(),
            Some(format!(
                "{e:#}; changes it held may be lost: the worker moves it aside and reconciles every mirror in full"
            )),
        ),
    };
    // Pushes still in the spool are normal for a moment; when the state cannot take them, say so.
    let unwritable = spooled
        .and_then(|_| store.check_writable(repo).err())
        .map(|e| format!("changes of this repository cannot be recorded, so they wait in the spool: {e:#}"));
    let repo_state_error = record_error.or(unwritable);
    let unrecorded = crate::pipeline::unrecorded::unrecorded_since(&global.spool_dir, repo)
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .map(|since| format_time(u64::try_from(since.as_millis()).unwrap_or(u64::MAX)));
    // Read only for a mirror whose HEAD is known (a reftable's costs a git).
    let local_head = std::cell::OnceCell::new();
    let (listed, config_error): (Vec<Listed>, Option<String>) = match config::load_repo(repo, global) {
        Ok(cfg) => {
            let listed = cfg
                .mirrors
                .iter()
                .map(|m| Listed {
                    name: m.name.clone(),
                    url: m.shown_url(),
                    enabled: m.enabled,
                    rules: Some(m.rules.clone()),
                    fault: m.fault.clone(),
                })
                .collect();
            (listed, None)
        }
        Err(e) => {
            collected.config_errors.push(e.to_string());
            let mut names = store.mirror_names(repo).unwrap_or_default();
            if names.is_empty() {
                // No mirror known by name: one line for the repository, so the error is seen.
                names.push(String::new());
            }
            let listed = names
                .into_iter()
                .map(|name| Listed {
                    name,
                    url: String::new(),
                    enabled: true,
                    rules: None,
                    fault: None,
                })
                .collect();
            (listed, Some(e.to_string()))
        }
    };
    for mirror in listed {
        let loaded = if mirror.name.is_empty() {
            Ok(MirrorState::new(repo, ""))
        } else {
            store.load_mirror(repo, &mirror.name)
        };
        let (state, state_error) = match loaded {
            Ok(state) => (state, None),
            Err(e) => (MirrorState::new(repo, &mirror.name), Some(format!("{e:#}"))),
        };
        let mut status = mirror_status(global, &state, &mirror.name, &mirror.url, mirror.enabled);
        if let Some(mirror_head) = state.side.mirror_head.as_deref() {
            let local_head = local_head.get_or_init(|| {
                crate::mirror::refs::LocalRepo::open(repo)
                    .and_then(|local| local.head_branch())
                    .ok()
                    .flatten()
            });
            status.mirror_default_branch = local_head
                .as_deref()
                .filter(|local| *local != mirror_head)
                .map(|local| {
                    format!(
                        "{} (the local default branch is {})",
                        short_branch(mirror_head),
                        short_branch(local)
                    )
                });
        }
        let in_scope = |name: &String| mirror.rules.as_ref().is_none_or(|rules| rules.in_scope(name));
        let unrouted: BTreeSet<&String> = record.pending.keys().filter(|n| in_scope(n)).collect();
        let spooled_refs: BTreeSet<&String> = spooled
            .map(|s| s.refs.iter().filter(|n| in_scope(n)).collect())
            .unwrap_or_default();
        if !unrouted.is_empty() || !spooled_refs.is_empty() {
            let mut pending: BTreeSet<String> = status.pending_refs.drain(..).collect();
            pending.extend(unrouted.into_iter().cloned());
            pending.extend(spooled_refs.iter().map(|n| (*n).clone()));
            status.pending_refs = pending.into_iter().collect();
            let since = [
                status.pending_since_ms,
                record.pending_since_ms,
                spooled.map(|s| s.oldest_ms),
            ];
            status.pending_since_ms = since.into_iter().flatten().min();
        }
        status.state_error = state_error.or_else(|| repo_state_error.clone());
        status.unrecorded_pushes_since = unrecorded.clone();
        if let Some(error) = config_error.as_ref().or(mirror.fault.as_ref()) {
            status.note = Some(format!("configuration error: {error}"));
            status.config_error = Some(error.clone());
        }
        if status.config_error.is_some() || status.state_error.is_some() {
            // Nothing of this pair is being mirrored until a person (or the worker's rebuild) acts.
            status.update_status = UpdateStatus::Failed.as_str();
        }
        collected.statuses.push(status);
    }
}

fn mirror_status(global: &GlobalConfig, state: &MirrorState, name: &str, url: &str, enabled: bool) -> MirrorStatus {
    let learned = state.learned_limits().in_effect();
    let note = if global.silent_mode {
        Some("silent_mode is on: changes are recorded but nothing is pushed".to_string())
    } else if !enabled {
        Some("disabled: changes are recorded but not pushed".to_string())
    } else {
        None
    };
    MirrorStatus {
        repo: state.repo.clone(),
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
        kept_reasons: state
            .kept_refs
            .iter()
            .filter_map(|name| {
                let reason = state.kept_reasons.get(name)?;
                Some(KeptRef {
                    name: name.clone(),
                    reason: reason.clone(),
                })
            })
            .collect(),
        pending_refs: state.pending.keys().cloned().collect(),
        full_sync_pending: state.full_sync_seq.is_some(),
        consecutive_failures: state.consecutive_failures,
        failure_class: state
            .failure_class
            .filter(|_| state.update_status != UpdateStatus::Finished)
            .map(|class| class.as_str()),
        // As the worker schedules it: a wait beyond what the retry policy allows counts as now.
        next_attempt_at: crate::pipeline::schedule::retry_due_at(state, &global.retry, crate::util::fsutil::now_ms())
            .filter(|_| state.has_work())
            .map(format_time),
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
        learned_max_push_size: learned.map(|l| l.bytes),
        learned_max_push_size_source: learned.map(|l| l.source.as_str()),
        learned_max_push_size_at: learned.and_then(|l| l.at_ms).map(format_time),
        note,
        last_verified_at: state.last_verified_at_ms.map(format_time),
        config_error: None,
        state_error: None,
        unrecorded_pushes_since: None,
        mirror_default_branch: None,
        default_branch_error: state.side.default_branch_error.clone(),
        push_options_warning: state.side.push_options_refused.then(|| {
            "the mirror does not accept push options (it does not advertise them): its pushes go without them"
                .to_string()
        }),
        repository_created_at: state.side.created_at_ms.map(format_time),
        orphaned_since: None,
        pending_since_ms: state.pending_since_ms.filter(|_| state.has_work()),
    }
}

/// `main` for `refs/heads/main`.
pub fn short_branch(name: &str) -> &str {
    name.strip_prefix("refs/heads/").unwrap_or(name)
}

/// Repositories (or pairs) whose configuration or state is faulted, by repository.
pub fn faulted(statuses: &[MirrorStatus]) -> BTreeMap<&Path, usize> {
    let mut faulted = BTreeMap::new();
    for s in statuses
        .iter()
        .filter(|s| s.config_error.is_some() || s.state_error.is_some())
    {
        *faulted.entry(s.repo.as_path()).or_insert(0) += 1;
    }
    faulted
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
        let enabled = if s.orphaned_since.is_some() {
            " (orphaned: the local repository is gone)"
        } else if s.enabled {
            ""
        } else {
            " (disabled)"
        };
        let name = if s.mirror.is_empty() {
            "(mirrors unknown)"
        } else {
            &s.mirror
        };
        writeln!(out, "  {name} {}{enabled}", s.url)?;
        writeln!(out, "    update_status: {}", s.update_status)?;
        if let Some(class) = s.failure_class {
            writeln!(out, "    failure_class: {class}")?;
        }
        let times = [
            ("orphaned_since", &s.orphaned_since),
            ("last_update_at", &s.last_update_at),
            ("last_update_started_at", &s.last_update_started_at),
            ("last_successful_update_at", &s.last_successful_update_at),
            ("next_attempt_at", &s.next_attempt_at),
            ("last_verified_at", &s.last_verified_at),
        ];
        for (label, value) in times {
            if let Some(value) = value {
                writeln!(out, "    {label}: {value}")?;
            }
        }
        if let Some(error) = &s.config_error {
            writeln!(out, "    config_error: {error}")?;
        }
        if let Some(error) = &s.state_error {
            writeln!(out, "    state_error: {error}")?;
        }
        if let Some(error) = &s.last_error {
            writeln!(out, "    last_error: {error}")?;
        }
        if let Some(since) = &s.unrecorded_pushes_since {
            writeln!(
                out,
                "    unrecorded_pushes_since: {since} (the hook could not record pushes: this mirror may be behind \
                 until `git-push-mirror run` scans the repository)"
            )?;
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
        for (label, value) in [
            ("repository_created_at", &s.repository_created_at),
            ("mirror_default_branch", &s.mirror_default_branch),
            ("default_branch_error", &s.default_branch_error),
            ("push_options_warning", &s.push_options_warning),
        ] {
            if let Some(value) = value {
                writeln!(out, "    {label}: {value}")?;
            }
        }
        if let Some(limit) = s.learned_max_push_size {
            let why = match s.learned_max_push_size_source {
                Some("refused") => "the mirror refused bigger pushes as too large",
                Some("dropped") => "a bigger push lost its connection; clean updates raise it again",
                Some("timed_out") => "a bigger push did not finish within the time limit; clean updates raise it again",
                _ => "learned by an older version; a clean update lifts it",
            };
            let since = s
                .learned_max_push_size_at
                .as_deref()
                .map_or(String::new(), |at| format!(", since {at}"));
            writeln!(out, "    learned_max_push_size: {} ({why}{since})", ByteSize(limit))?;
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
                    match s.kept_reasons.iter().find(|k| &k.name == name && label == "kept_refs") {
                        Some(kept) => writeln!(out, "      {name}: {}", kept.reason)?,
                        None => writeln!(out, "      {name}")?,
                    }
                }
            }
        }
        if s.full_sync_pending {
            writeln!(out, "    a full reconciliation is pending")?;
        }
        // The note repeats a configuration error, already shown above.
        if let Some(note) = s.note.as_ref().filter(|_| s.config_error.is_none()) {
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
