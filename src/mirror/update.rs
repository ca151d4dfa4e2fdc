//! One mirror update: observe the mirror, plan, push with leases, and record the outcome in the
//! mirror's state. Shared by the worker and by `sync`; the caller holds the pair's push lock.

pub mod create;
pub mod default_branch;
mod deliver;
mod lfs;
mod side;
mod split;
mod steps;

pub use crate::mirror::report::{RefOutcome, RefResult, UpdateReport};

use crate::access::auth::remote_access;
use crate::config::{GlobalConfig, MirrorConfig, RetryPolicy};
use crate::git::{self, Failure, FailureClass, PushFlag, RemoteAccess};
use crate::mirror::configured::Presence;
use crate::mirror::learned_limit::LearnedLimits;
use crate::mirror::lfs::LfsStatus;
use crate::mirror::plan::{self, Decision, PendingHint, PlanInput, PlanWarning, Reach};
use crate::mirror::refs::LocalRepo;
use crate::mirror::state::{
    KnownRef, KnownRefs, MirrorState, PendingRef, PushProgress, StateStore, UpdateStatus, known_local_values,
    known_remote_values,
};
use crate::util::failpoint;
use crate::util::fsutil::{Durability, now_ms};
use crate::util::oid::Oid;
use crate::util::oid::RefChange;
use anyhow::Result;
use deliver::{Delivered, Lessons};
use lfs::LfsProgress;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// How many times a ref whose lease failed is re-planned within one update.
const LEASE_ATTEMPTS: usize = 3;

/// Updates one mirror of one repository and records the outcome. `full`
/// forces a full reconciliation (`sync`); otherwise the pending refs are
/// reconciled (fully when the state asks for it).
pub fn update_mirror(
    store: &StateStore,
    global: &GlobalConfig,
    repo: &Path,
    mirror: &MirrorConfig,
    full: bool,
) -> Result<UpdateReport> {
    update_mirror_showing(store, global, repo, mirror, full, &|_| {})
}

/// [`update_mirror`] that also tells `show` how an update pushed in steps progresses.
pub fn update_mirror_showing(
    store: &StateStore,
    global: &GlobalConfig,
    repo: &Path,
    mirror: &MirrorConfig,
    full: bool,
    show: &dyn Fn(&PushProgress),
) -> Result<UpdateReport> {
    let started = now_ms();
    let presence = || crate::mirror::configured::presence(repo, mirror, global);
    // `started` may be lost in a crash: the state before it is whole (its pending refs are
    // retried, under leases), and a dead worker's `started` is recovered anyway.
    let began = store.update_mirror_if(
        repo,
        &mirror.name,
        Durability::OldOrNew,
        || presence() == Presence::Same,
        |state| {
            let prior = state.update_status;
            state.update_status = UpdateStatus::Started;
            state.last_update_started_at_ms = Some(started);
            (prior, state.clone())
        },
    )?;
    let Some((prior_status, before)) = began else {
        // Removed, re-pointed or disabled since the update was scheduled: nothing is pushed.
        return Ok(stopped(UpdateReport::default(), repo, mirror, presence()));
    };
    failpoint::hit("update.after_started");
    // Known refs are tied to the mirror (URL and filters) they were learned for: another means
    // a full reconciliation.
    let identity = crate::mirror::verify::identity(mirror);
    let learned = store.load_known_refs(repo, &mirror.name);
    let same_mirror = learned.identity.as_ref() == Some(&identity);
    let reach = crate::mirror::verify::reach(full, &before, same_mirror);
    let known = learned.for_mirror(&identity);
    let mut lessons = Lessons {
        limits: before.learned_limits(),
        rejected: before.rejected_refs.keys().cloned().collect(),
        sizes: Default::default(),
    };
    let journal = StateJournal {
        store,
        repo,
        mirror,
        global,
        show,
    };
    let mut pushing = Pushing {
        lessons: &mut lessons,
        journal: &journal,
        observed_head: None,
    };
    let report = match remote_access(mirror, global) {
        Ok(mut access) => {
            access.repo = Some(repo.to_path_buf());
            access.push_options = mirror.side.push_options_for(side::first_sync(&before)).to_vec();
            let mut report = reconcile(repo, mirror, &access, &before, reach, &known, &mut pushing);
            side::after_push(repo, mirror, &access, &before, reach, &known, &mut report);
            report
        }
        // The mirror's settings cannot be used (a password file others can read, a transport not
        // allowed): a person must act.
        Err(e) => UpdateReport::failed(Failure::new(format!("{e:#}"), FailureClass::Permanent)),
    };
    failpoint::hit("update.after_push");
    for warning in &report.warnings {
        log::warn!("{}: mirror {}: {warning}", repo.display(), mirror.name);
    }
    let lost_refs = crate::mirror::verify::mirror_lost_refs(reach, &report, &known);
    // What the configuration says now decides what is written, asked under the state lock. Old or
    // new is enough: a crash that loses the outcome leaves `started`, which the next run recovers
    // as an interrupted update (a full reconciliation); nothing is lost.
    let looked = std::cell::RefCell::new(Presence::Same);
    store
        .update_mirror_if(
            repo,
            &mirror.name,
            Durability::OldOrNew,
            || {
                let now = presence();
                let configured = now != Presence::Gone;
                *looked.borrow_mut() = now;
                configured
            },
            |state| -> Result<()> {
                if *looked.borrow() == Presence::Same {
                    let fingerprint = record_known_refs(store, repo, mirror, reach, &report, known, same_mirror)?;
                    record_outcome(state, &before, reach, &report, &global.retry);
                    side::record(&mut state.side, &report.side, now_ms());
                    lessons.limits.after_update(lessons.sizes, now_ms());
                    state.set_learned_limits(lessons.limits);
                    state.steps = None;
                    if fingerprint.is_some() {
                        state.known_refs_fingerprint = fingerprint;
                    }
                    crate::mirror::verify::record_update(state, reach, &report, started, lost_refs);
                } else {
                    // Re-pointed or disabled: this update's outcome is about a mirror that is no
                    // longer configured; the one configured now is owed a full reconciliation.
                    if state.update_status == UpdateStatus::Started && state.last_update_started_at_ms == Some(started)
                    {
                        state.update_status = prior_status;
                    }
                    state.steps = None;
                    state.request_full_sync(now_ms());
                    state.retry_now();
                }
                Ok(())
            },
        )?
        .transpose()?;
    failpoint::hit("update.after_outcome");
    Ok(stopped(report, repo, mirror, looked.into_inner()))
}

/// `report`, marked as stopped when the mirror is no longer the one configured (`presence`).
fn stopped(mut report: UpdateReport, repo: &Path, mirror: &MirrorConfig, presence: Presence) -> UpdateReport {
    if let Some(why) = presence.stop_reason(repo, &mirror.name) {
        log::warn!("{}: {why}", repo.display());
        report.error = Some(Failure::new(why.clone(), FailureClass::Transient));
        report.stopped = Some(why);
    }
    report
}

/// Folds the settled refs of a report into the known refs (local value
/// decided for, mirror's value after); returns the new fingerprint of their
/// local values, for the drift scan.
fn record_known_refs(
    store: &StateStore,
    repo: &Path,
    mirror: &MirrorConfig,
    reach: Reach,
    report: &UpdateReport,
    old: KnownRefs,
    same_mirror: bool,
) -> Result<Option<String>> {
    if report.error.is_some() {
        return Ok(None);
    }
    let mut known = if reach == Reach::Everything {
        KnownRefs::new()
    } else {
        old.clone()
    };
    for result in report.refs.iter().filter(|r| r.outcome.is_settled()) {
        let entry = KnownRef {
            local: result.local.clone(),
            remote: result.remote.clone(),
        };
        if entry.local.is_none() && entry.remote.is_none() {
            known.remove(&result.name);
        } else {
            known.insert(result.name.clone(), entry);
        }
    }
    if known != old || !same_mirror {
        store.save_known_refs(repo, &mirror.name, &crate::mirror::verify::identity(mirror), &known)?;
    }
    Ok(Some(crate::mirror::verify::fingerprint(&known_local_values(&known))))
}

/// Reconciles with leases, re-planning refs whose lease failed.
///
/// Fast path: an incremental update first assumes the mirror still has the
/// values it had after our last update (the known refs) instead of listing
/// its refs: every change carries `--force-with-lease` on the assumed value,
/// so a wrong assumption is rejected by the mirror, never acted on. Refs
/// rejected on that first attempt are re-planned from a real `ls-remote`.
fn reconcile(
    repo: &Path,
    mirror: &MirrorConfig,
    access: &RemoteAccess,
    before: &MirrorState,
    reach: Reach,
    known: &KnownRefs,
    pushing: &mut Pushing<'_>,
) -> UpdateReport {
    let local_repo = match LocalRepo::open(repo) {
        Ok(r) => r,
        Err(e) => return UpdateReport::failed(format!("{e:#}")),
    };
    let mut pending = pending_hints(before);
    let assumed = known_remote_values(known);
    let mut lfs = LfsProgress::new(repo, mirror, reach, before, &assumed);
    let can_assume = reach == Reach::PendingOnly && before.known_refs_fingerprint.is_some();
    let mut reach = reach;
    let mut results: BTreeMap<String, RefResult> = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut created: Option<String> = None;
    for attempt in 1..=LEASE_ATTEMPTS {
        if attempt > 1
            && let Err(why) = pushing.journal.still_configured()
        {
            let mut report = UpdateReport::failed(why);
            report.refs = into_results(results);
            report.lfs = lfs.report;
            return report;
        }
        let assuming = can_assume && attempt == 1;
        let view = if assuming {
            RemoteView::Assumed(&assumed)
        } else {
            RemoteView::Observed
        };
        let attempt_result = reconcile_once(
            &local_repo,
            repo,
            mirror,
            access,
            &pending,
            reach,
            view,
            &mut lfs,
            pushing,
        );
        let (outcomes, plan_warnings) = match attempt_result {
            Ok(done) => done,
            // The mirror says the repository does not exist and `create` says how: create it and
            // push everything to it at once (docs/mirror-side.md).
            Err(error) if created.is_none() && create::wanted(mirror, &error) => {
                match create::create_missing(repo, mirror) {
                    Ok(done) => {
                        log::info!("{}: mirror {}: {done}", repo.display(), mirror.name);
                        created = Some(done);
                        reach = Reach::Everything;
                        continue;
                    }
                    Err(failure) => {
                        let mut report = UpdateReport::failed(failure);
                        report.refs = into_results(results);
                        report.lfs = lfs.report;
                        return report;
                    }
                }
            }
            Err(error) => {
                let mut report = UpdateReport::failed(error);
                report.refs = into_results(results);
                report.lfs = lfs.report;
                report.side.created = created;
                return report;
            }
        };
        warnings.extend(plan_warnings);
        let mut replan = BTreeMap::new();
        for result in outcomes {
            let lease_failed =
                matches!(&result.outcome, RefOutcome::Rejected { reason } if git::means_remote_changed(reason));
            let rejected = matches!(result.outcome, RefOutcome::Rejected { .. });
            if (assuming && rejected) || (lease_failed && attempt < LEASE_ATTEMPTS) {
                // The mirror is not as we assumed or moved since we looked: look (again) and re-plan.
                let hint = pending.get(&result.name).cloned().unwrap_or_default();
                replan.insert(result.name, hint);
            } else {
                results.insert(result.name.clone(), result);
            }
        }
        if replan.is_empty() {
            break;
        }
        pending = replan;
        reach = Reach::PendingOnly;
    }
    warnings.dedup();
    UpdateReport {
        refs: into_results(results),
        warnings,
        error: None,
        lfs: lfs.report,
        stopped: None,
        side: crate::mirror::report::SideReport {
            created,
            observed_head: pushing.observed_head.take(),
            ..Default::default()
        },
    }
}

/// The planner's hints for the pair's pending refs (their last local value before a deletion).
pub fn pending_hints(state: &MirrorState) -> BTreeMap<String, PendingHint> {
    state
        .pending
        .iter()
        .map(|(name, p)| {
            (
                name.clone(),
                PendingHint {
                    last_local: p.last_local.clone(),
                },
            )
        })
        .collect()
}

fn into_results(results: BTreeMap<String, RefResult>) -> Vec<RefResult> {
    results.into_values().collect()
}

type Outcomes = (Vec<RefResult>, Vec<String>);

/// What pushing carries through the attempts of one update: what the mirror taught (kept in
/// its state), and where progress goes.
struct Pushing<'a> {
    lessons: &'a mut Lessons,
    journal: &'a dyn deliver::Journal,
    /// The mirror's HEAD, when an attempt listed its refs.
    observed_head: Option<String>,
}

/// Records what delivery reports in the mirror's state as it happens (a kill keeps it), while
/// the mirror is still the one configured.
struct StateJournal<'a> {
    store: &'a StateStore,
    repo: &'a Path,
    mirror: &'a MirrorConfig,
    global: &'a GlobalConfig,
    show: &'a dyn Fn(&PushProgress),
}

impl StateJournal<'_> {
    fn presence(&self) -> Presence {
        crate::mirror::configured::presence(self.repo, self.mirror, self.global)
    }

    fn record(&self, what: &str, change: impl FnOnce(&mut MirrorState)) {
        let configured = || self.presence() == Presence::Same;
        if let Err(e) =
            self.store
                .update_mirror_if(self.repo, &self.mirror.name, Durability::OldOrNew, configured, change)
        {
            log::warn!(
                "{}: mirror {}: recording {what}: {e:#}",
                self.repo.display(),
                self.mirror.name
            );
        }
    }
}

impl deliver::Journal for StateJournal<'_> {
    fn progress(&self, progress: &PushProgress) {
        (self.show)(progress);
        // Only `status` reads it: the steps themselves are on the mirror, whatever happens here.
        self.record("progress", |state| state.steps = Some(*progress));
    }

    fn learned(&self, limits: &LearnedLimits) {
        self.record("the mirror's push size limit", |state| {
            state.set_learned_limits(*limits)
        });
    }

    fn still_configured(&self) -> Result<(), Failure> {
        match self.presence().stop_reason(self.repo, &self.mirror.name) {
            None => Ok(()),
            Some(why) => Err(Failure::new(why, FailureClass::Transient)),
        }
    }
}

/// Where an attempt gets the mirror's refs from.
#[derive(Clone, Copy)]
enum RemoteView<'a> {
    /// `git ls-remote`.
    Observed,
    /// The values known from our last update, verified by the leases.
    Assumed(&'a BTreeMap<String, Oid>),
}

#[allow(clippy::too_many_arguments)]
fn reconcile_once(
    local_repo: &LocalRepo,
    repo: &Path,
    mirror: &MirrorConfig,
    access: &RemoteAccess,
    pending: &BTreeMap<String, PendingHint>,
    reach: Reach,
    view: RemoteView<'_>,
    lfs: &mut LfsProgress,
    pushing: &mut Pushing<'_>,
) -> Result<Outcomes, Failure> {
    let no_symbolic = BTreeSet::new();
    let observed;
    let (remote, remote_symbolic) = match view {
        RemoteView::Assumed(assumed) => (assumed, &no_symbolic),
        RemoteView::Observed => {
            observed = git::ls_remote(repo, access, &[])?;
            pushing.observed_head = observed.head.clone();
            (&observed.direct, &observed.symbolic)
        }
    };
    let local = match reach {
        Reach::Everything => local_repo.all_refs(),
        Reach::PendingOnly => local_repo.refs_named(pending.keys()),
    }
    .map_err(|e| format!("{e:#}"))?;
    // The default branch decides deletions only (a ref the mirror has and the repository has
    // not): read it when there is one to decide (for reftable it costs a git process).
    let deletes = match reach {
        Reach::Everything => remote.keys().any(|name| !local.direct.contains_key(name)),
        Reach::PendingOnly => pending
            .keys()
            .any(|name| !local.direct.contains_key(name) && remote.contains_key(name)),
    };
    let head = if deletes {
        local_repo.default_branch_commit().map_err(|e| format!("{e:#}"))?
    } else {
        None
    };
    let input = PlanInput {
        local: &local.direct,
        local_symbolic: &local.symbolic,
        remote,
        remote_symbolic,
        default_branch: head.as_ref(),
        pending,
        reach,
        rules: &mirror.rules,
    };
    let push_plan = plan::plan(&input, local_repo);
    let warnings = push_plan
        .warnings
        .iter()
        .map(|w| match w {
            PlanWarning::NoProtectedBranches => format!(
                "only_protected_branches is set but the repository has no protected_branches: no branch is \
                 mirrored; add them with: git-push-mirror protect {} PATTERN…",
                repo.display()
            ),
        })
        .collect();
    let held = lfs.before_push(repo, mirror, access, &push_plan, &local.direct, remote)?;
    let changes: Vec<(String, RefChange)> = push_plan
        .changes()
        .filter(|(name, _)| !held.contains_key(*name))
        .map(|(name, change)| (name.to_string(), change.clone()))
        .collect();
    let delivered = if changes.is_empty() {
        BTreeMap::new()
    } else {
        let haves: Vec<Oid> = remote.values().cloned().collect();
        deliver::deliver(
            repo,
            access,
            mirror.push_limits,
            pushing.lessons,
            changes,
            &haves,
            reach == Reach::Everything,
            pushing.journal,
        )?
    };
    let outcomes = push_plan
        .refs
        .into_iter()
        .map(|r| {
            let local = local.direct.get(&r.name).cloned();
            let (outcome, remote) = match r.decision {
                Decision::Push(change) => {
                    let outcome = match held.get(&r.name) {
                        Some(reason) => RefOutcome::Held { reason: reason.clone() },
                        None => push_outcome(&change, delivered.get(&r.name)),
                    };
                    (outcome, change.new_value().cloned())
                }
                Decision::UpToDate => (RefOutcome::UpToDate, local.clone()),
                Decision::Absent => (RefOutcome::Absent, None),
                Decision::Divergent { local, remote, why } => {
                    let after = Some(remote.clone());
                    (RefOutcome::Divergent { local, remote, why }, after)
                }
                Decision::Kept { why, remote } => (RefOutcome::Kept { why }, Some(remote)),
                Decision::Blocked { by } => (RefOutcome::Blocked { by }, None),
            };
            RefResult {
                name: r.name,
                outcome,
                local,
                remote,
            }
        })
        .collect();
    Ok((outcomes, warnings))
}

fn push_outcome(change: &RefChange, delivered: Option<&Delivered>) -> RefOutcome {
    match delivered {
        None => RefOutcome::Rejected {
            reason: "git reported no result for this ref".to_string(),
        },
        Some(Delivered::Refused(reason)) => RefOutcome::Rejected { reason: reason.clone() },
        Some(Delivered::NotPushed(reason)) => RefOutcome::Deferred { reason: reason.clone() },
        Some(Delivered::Landed(flag)) => match flag {
            PushFlag::Rejected => RefOutcome::Rejected {
                reason: "rejected".to_string(),
            },
            PushFlag::UpToDate => RefOutcome::UpToDate,
            PushFlag::Deleted => RefOutcome::Deleted,
            PushFlag::New => RefOutcome::Created,
            PushFlag::Forced => RefOutcome::Forced,
            PushFlag::FastForward => match change {
                RefChange::Update { forced: true, .. } => RefOutcome::Forced,
                _ => RefOutcome::Updated,
            },
        },
    }
}

/// Backoff before attempt number `failures + 1`: exponential from `initial`,
/// capped at `max`, with ±20 % jitter when enabled.
pub fn backoff_ms(policy: &RetryPolicy, failures: u32) -> u64 {
    let initial = u64::try_from(policy.initial.as_millis()).unwrap_or(u64::MAX);
    let max = u64::try_from(policy.max.as_millis()).unwrap_or(u64::MAX);
    let exponent = failures.saturating_sub(1).min(32);
    let base = initial.saturating_mul(1u64 << exponent).min(max);
    if !policy.jitter || base == 0 {
        return base;
    }
    let noise = now_ms().wrapping_mul(0x9e3779b97f4a7c15) % 41; // 0..=40
    (base / 100).saturating_mul(80 + noise)
}

/// How long to wait after a failure of `class`, the `failures`-th in a row: the backoff for a
/// transient one; `permanent_retry` for a permanent one; for a rate limit what the mirror asked
/// (`Retry-After`, at least `initial`, at most `max`), else the backoff two steps further.
pub fn retry_delay_ms(
    policy: &RetryPolicy,
    class: FailureClass,
    failures: u32,
    retry_after: Option<std::time::Duration>,
) -> u64 {
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    match (class, retry_after) {
        (FailureClass::Transient, _) => backoff_ms(policy, failures),
        (FailureClass::Permanent, _) => ms(policy.permanent_retry),
        (FailureClass::RateLimited, Some(asked)) => ms(asked).clamp(ms(policy.initial), ms(policy.max)),
        (FailureClass::RateLimited, None) => backoff_ms(policy, failures.saturating_add(2)),
    }
}

/// The longest wait the policy can ask after a failure of `class` (`None`: not known, as in a
/// state written by an older version): a recorded next attempt further ahead than this was not
/// decided under the present clock (see `pipeline::schedule`).
pub fn longest_retry_wait_ms(policy: &RetryPolicy, class: Option<FailureClass>) -> u64 {
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    // The backoff's jitter adds at most a fifth.
    let backoff = ms(policy.max)
        .max(ms(policy.initial))
        .saturating_add(ms(policy.max) / 5);
    match class {
        Some(FailureClass::Transient | FailureClass::RateLimited) => backoff,
        Some(FailureClass::Permanent) => ms(policy.permanent_retry),
        None => backoff.max(ms(policy.permanent_retry)),
    }
}

/// Folds a report into the mirror's state: settled refs leave the pending
/// list (unless re-reported meanwhile), divergent/kept sets and status follow.
pub fn record_outcome(
    state: &mut MirrorState,
    snapshot: &MirrorState,
    reach: Reach,
    report: &UpdateReport,
    retry: &RetryPolicy,
) {
    let now = now_ms();
    let settled: BTreeSet<&str> = report
        .refs
        .iter()
        .filter(|r| r.outcome.is_settled())
        .map(|r| r.name.as_str())
        .collect();
    let full = reach == Reach::Everything && report.error.is_none();
    for name in snapshot.pending.keys() {
        // A ref planned and settled, or dropped by the planner (out of scope), is done.
        let considered = report.refs.iter().any(|r| &r.name == name);
        let done = report.error.is_none() && (settled.contains(name.as_str()) || !considered);
        let unchanged = state.pending.get(name).map(|p| p.seq) == snapshot.pending.get(name).map(|p| p.seq);
        if done && unchanged {
            state.pending.remove(name);
        }
    }
    // Refs a full reconciliation could not settle stay pending, though nobody reported them: a
    // refused or unconfirmed ref is retried, and `status` lists it.
    for result in report.refs.iter().filter(|r| !r.outcome.is_settled()) {
        if !state.pending.contains_key(&result.name) {
            state.seq += 1;
            let seq = state.seq;
            state
                .pending
                .insert(result.name.clone(), PendingRef { last_local: None, seq });
        }
    }
    if full && state.full_sync_seq == snapshot.full_sync_seq {
        state.full_sync_seq = None;
        state.divergent_refs.clear();
        state.kept_refs.clear();
        state.kept_reasons.clear();
    }
    for result in &report.refs {
        match &result.outcome {
            RefOutcome::Divergent { .. } => {
                state.divergent_refs.insert(result.name.clone());
            }
            RefOutcome::Kept { .. } => {
                state.kept_refs.insert(result.name.clone());
                state.kept_reasons.insert(result.name.clone(), result.outcome.detail());
            }
            RefOutcome::Rejected { .. } | RefOutcome::Blocked { .. } => {}
            _ => {
                state.divergent_refs.remove(&result.name);
                state.kept_refs.remove(&result.name);
                state.kept_reasons.remove(&result.name);
            }
        }
        match &result.outcome {
            RefOutcome::Rejected { reason } => {
                state.rejected_refs.insert(result.name.clone(), reason.clone());
            }
            RefOutcome::Held { .. } | RefOutcome::Deferred { .. } => {}
            _ => {
                state.rejected_refs.remove(&result.name);
            }
        }
    }
    if let Some(lfs) = &report.lfs {
        state.lfs_status = if lfs.is_complete() {
            LfsStatus::Ok
        } else {
            LfsStatus::Failed
        };
        state.lfs_error = lfs.error_summary();
        if lfs.pushed_without_objects {
            state.lfs_incomplete = true;
        } else if lfs.full && lfs.is_complete() && report.error.is_none() {
            state.lfs_incomplete = false;
        }
    }
    state.last_update_at_ms = Some(now);
    let divergent: Vec<&str> = state.divergent_refs.iter().map(String::as_str).collect();
    state.last_error = report.summary_with_divergent(&divergent);
    let must_retry = report.error.is_some() || report.refs.iter().any(|r| !r.outcome.is_settled());
    let class = report.failure_class();
    if must_retry {
        let class = class.unwrap_or(FailureClass::Transient);
        state.consecutive_failures += 1;
        // A permanent failure needs a person: failed at once, then tried on the slow schedule
        // (and at every push or `sync`), not in the backoff's quick steps.
        state.update_status = if class == FailureClass::Permanent || state.consecutive_failures >= retry.fail_after {
            UpdateStatus::Failed
        } else {
            UpdateStatus::ToRetry
        };
        let retry_after = report.error.as_ref().and_then(|e| e.retry_after);
        let delay = retry_delay_ms(retry, class, state.consecutive_failures, retry_after);
        state.next_attempt_at_ms = Some(now.saturating_add(delay));
        state.failure_class = Some(class);
    } else {
        state.consecutive_failures = 0;
        state.next_attempt_at_ms = None;
        if report.is_failure() {
            // Divergent or blocked refs: retrying cannot help; the next push re-evaluates them.
            state.update_status = UpdateStatus::Failed;
            state.failure_class = class;
        } else if !state.divergent_refs.is_empty() {
            // Refs diverging since an earlier update: the mirror stays failed until someone
            // resolves them, whatever this update pushed.
            state.update_status = UpdateStatus::Failed;
            state.failure_class = Some(FailureClass::Permanent);
        } else {
            state.update_status = UpdateStatus::Finished;
            state.failure_class = None;
            state.last_successful_update_at_ms = Some(now);
        }
    }
    if !state.divergent_refs.is_empty() {
        // Also after a failure of another kind, which is retried on its own schedule.
        state.update_status = UpdateStatus::Failed;
    }
    state.pending_since_ms = state.has_work().then_some(now);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::plan::Divergence;
    use std::path::PathBuf;
    use std::time::Duration;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(60),
            fail_after: 3,
            jitter: false,
            permanent_retry: Duration::from_secs(3600),
        }
    }

    fn state_with_pending(names: &[&str]) -> MirrorState {
        let mut state = MirrorState::new(&PathBuf::from("/r"), "m");
        for name in names {
            state.add_pending(name, &PendingRef::default(), 1);
        }
        state
    }

    fn result(name: &str, outcome: RefOutcome) -> RefResult {
        RefResult {
            local: None,
            remote: None,
            name: name.to_string(),
            outcome,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = policy();
        assert_eq!(backoff_ms(&p, 1), 5_000);
        assert_eq!(backoff_ms(&p, 2), 10_000);
        assert_eq!(backoff_ms(&p, 4), 40_000);
        assert_eq!(backoff_ms(&p, 5), 60_000);
        assert_eq!(backoff_ms(&p, 500), 60_000);
        let jittered = backoff_ms(&RetryPolicy { jitter: true, ..p }, 2);
        assert!((8_000..=12_000).contains(&jittered), "{jittered}");
    }

    #[test]
    fn no_wait_the_policy_asks_for_is_longer_than_its_longest() {
        let p = RetryPolicy {
            jitter: true,
            ..policy()
        };
        for class in [
            FailureClass::Transient,
            FailureClass::Permanent,
            FailureClass::RateLimited,
        ] {
            let longest = longest_retry_wait_ms(&p, Some(class));
            assert!(longest <= longest_retry_wait_ms(&p, None));
            for failures in [1, 2, 5, 40, u32::MAX] {
                for asked in [None, Some(0), Some(30), Some(86_400 * 365)] {
                    let wait = retry_delay_ms(&p, class, failures, asked.map(Duration::from_secs));
                    assert!(wait <= longest, "{class:?} {failures} {asked:?}: {wait} > {longest}");
                }
            }
        }
    }

    #[test]
    fn transport_failures_keep_everything_pending_then_fail() {
        let mut state = state_with_pending(&["refs/heads/a"]);
        let snapshot = state.clone();
        let report = UpdateReport::failed("fatal: could not read from remote".to_string());
        for expected in [UpdateStatus::ToRetry, UpdateStatus::ToRetry, UpdateStatus::Failed] {
            record_outcome(&mut state, &snapshot, Reach::PendingOnly, &report, &policy());
            assert_eq!(state.update_status, expected);
        }
        assert!(state.pending.contains_key("refs/heads/a"));
        assert!(state.next_attempt_at_ms.is_some());
        assert_eq!(state.last_error.as_deref(), Some("fatal: could not read from remote"));
    }

    #[test]
    fn divergent_refs_fail_the_update_without_a_retry_loop() {
        let mut state = state_with_pending(&["refs/heads/a", "refs/heads/b"]);
        let snapshot = state.clone();
        let oid = |c: char| Oid::parse(&c.to_string().repeat(40)).unwrap();
        let report = UpdateReport {
            refs: vec![
                result(
                    "refs/heads/a",
                    RefOutcome::Divergent {
                        local: oid('1'),
                        remote: oid('2'),
                        why: Divergence::NotFastForward,
                    },
                ),
                result("refs/heads/b", RefOutcome::Updated),
            ],
            ..Default::default()
        };
        record_outcome(&mut state, &snapshot, Reach::PendingOnly, &report, &policy());
        assert_eq!(state.update_status, UpdateStatus::Failed);
        assert!(state.pending.is_empty(), "divergent refs are not retried in a loop");
        assert_eq!(state.next_attempt_at_ms, None);
        assert!(state.divergent_refs.contains("refs/heads/a"));
        assert!(state.last_error.as_deref().unwrap().contains("refs/heads/a"));
    }

    #[test]
    fn refs_reported_again_during_an_update_stay_pending() {
        let mut state = state_with_pending(&["refs/heads/a"]);
        let snapshot = state.clone();
        state.add_pending("refs/heads/a", &PendingRef::default(), 2);
        let report = UpdateReport {
            refs: vec![result("refs/heads/a", RefOutcome::Updated)],
            ..Default::default()
        };
        record_outcome(&mut state, &snapshot, Reach::PendingOnly, &report, &policy());
        assert!(state.pending.contains_key("refs/heads/a"));
        assert_eq!(state.update_status, UpdateStatus::Finished);
        assert!(state.pending_since_ms.is_some());
    }

    #[test]
    fn rejected_refs_are_retried_and_the_rest_settle() {
        let mut state = state_with_pending(&["refs/heads/a", "refs/heads/b"]);
        let snapshot = state.clone();
        let report = UpdateReport {
            refs: vec![
                result(
                    "refs/heads/a",
                    RefOutcome::Rejected {
                        reason: "pre-receive hook declined".into(),
                    },
                ),
                result("refs/heads/b", RefOutcome::Created),
            ],
            ..Default::default()
        };
        record_outcome(&mut state, &snapshot, Reach::PendingOnly, &report, &policy());
        // Refused by the mirror's rules: a person must act, so failed at once, retried slowly.
        assert_eq!(state.update_status, UpdateStatus::Failed);
        assert_eq!(state.failure_class, Some(FailureClass::Permanent));
        assert_eq!(state.pending.keys().collect::<Vec<_>>(), vec!["refs/heads/a"]);
        assert!(state.last_error.unwrap().contains("pre-receive hook declined"));
        let wait = state.next_attempt_at_ms.unwrap() - state.last_update_at_ms.unwrap();
        assert_eq!(wait, 3_600_000, "permanent_retry");
    }

    #[test]
    fn failures_are_retried_on_the_schedule_of_their_class() {
        let p = policy();
        let at = |class, retry_after: Option<u64>| {
            let mut state = state_with_pending(&["refs/heads/a"]);
            let snapshot = state.clone();
            let mut failure = Failure::new("x", class);
            failure.retry_after = retry_after.map(Duration::from_secs);
            record_outcome(
                &mut state,
                &snapshot,
                Reach::PendingOnly,
                &UpdateReport::failed(failure),
                &p,
            );
            assert_eq!(state.failure_class, Some(class));
            (
                state.update_status,
                state.next_attempt_at_ms.unwrap() - state.last_update_at_ms.unwrap(),
            )
        };
        assert_eq!(at(FailureClass::Transient, None), (UpdateStatus::ToRetry, 5_000));
        assert_eq!(at(FailureClass::Permanent, None), (UpdateStatus::Failed, 3_600_000));
        assert_eq!(at(FailureClass::RateLimited, Some(30)), (UpdateStatus::ToRetry, 30_000));
        assert_eq!(
            at(FailureClass::RateLimited, Some(3600)),
            (UpdateStatus::ToRetry, 60_000),
            "bounded by max"
        );
        assert_eq!(
            at(FailureClass::RateLimited, Some(0)),
            (UpdateStatus::ToRetry, 5_000),
            "at least initial"
        );
        assert_eq!(
            at(FailureClass::RateLimited, None),
            (UpdateStatus::ToRetry, 20_000),
            "a longer backoff"
        );
    }

    #[test]
    fn a_divergence_keeps_the_mirror_failed_until_it_ends() {
        let oid = |c: char| Oid::parse(&c.to_string().repeat(40)).unwrap();
        let mut state = state_with_pending(&["refs/heads/main"]);
        let divergent = UpdateReport {
            refs: vec![result(
                "refs/heads/main",
                RefOutcome::Divergent {
                    local: oid('1'),
                    remote: oid('2'),
                    why: Divergence::NotFastForward,
                },
            )],
            ..Default::default()
        };
        let snapshot = state.clone();
        record_outcome(&mut state, &snapshot, Reach::PendingOnly, &divergent, &policy());
        assert_eq!(state.update_status, UpdateStatus::Failed);
        // The next update pushes only another ref: main still diverges.
        state.add_pending("refs/heads/other", &PendingRef::default(), 5);
        let snapshot = state.clone();
        let unrelated = UpdateReport {
            refs: vec![result("refs/heads/other", RefOutcome::Created)],
            ..Default::default()
        };
        record_outcome(&mut state, &snapshot, Reach::PendingOnly, &unrelated, &policy());
        assert_eq!(state.update_status, UpdateStatus::Failed);
        assert_eq!(state.failure_class, Some(FailureClass::Permanent));
        assert_eq!(
            state.last_successful_update_at_ms, None,
            "not a success while main diverges"
        );
        let error = state.last_error.clone().unwrap();
        assert!(
            error.contains("divergent") && error.contains("refs/heads/main"),
            "{error}"
        );
        // Resolved (the local branch now contains the mirror's commits): finished.
        state.add_pending("refs/heads/main", &PendingRef::default(), 6);
        let snapshot = state.clone();
        let resolved = UpdateReport {
            refs: vec![result("refs/heads/main", RefOutcome::Updated)],
            ..Default::default()
        };
        record_outcome(&mut state, &snapshot, Reach::PendingOnly, &resolved, &policy());
        assert_eq!(state.update_status, UpdateStatus::Finished);
        assert!(state.last_successful_update_at_ms.is_some());
        assert_eq!((state.failure_class, state.last_error), (None, None));
    }

    #[test]
    fn refs_a_full_reconciliation_could_not_settle_become_pending() {
        let mut state = MirrorState::new(&PathBuf::from("/r"), "m");
        state.request_full_sync(1);
        let snapshot = state.clone();
        let report = UpdateReport {
            refs: vec![
                result(
                    "refs/heads/a",
                    RefOutcome::Rejected {
                        reason: "the mirror acknowledged refs/heads/a but does not have it".into(),
                    },
                ),
                result("refs/heads/b", RefOutcome::Created),
            ],
            ..Default::default()
        };
        record_outcome(&mut state, &snapshot, Reach::Everything, &report, &policy());
        assert_eq!(state.pending.keys().collect::<Vec<_>>(), vec!["refs/heads/a"]);
        assert_eq!(state.full_sync_seq, None);
        assert_eq!(state.update_status, UpdateStatus::Failed);
        assert!(state.has_work());
    }

    #[test]
    fn success_clears_errors_and_records_the_time() {
        let mut state = state_with_pending(&["refs/heads/a"]);
        state.last_error = Some("old".into());
        state.consecutive_failures = 2;
        let snapshot = state.clone();
        let report = UpdateReport {
            refs: vec![result("refs/heads/a", RefOutcome::Created)],
            ..Default::default()
        };
        record_outcome(&mut state, &snapshot, Reach::PendingOnly, &report, &policy());
        assert_eq!(state.update_status, UpdateStatus::Finished);
        assert_eq!(state.last_error, None);
        assert_eq!(state.consecutive_failures, 0);
        assert!(state.last_successful_update_at_ms.is_some());
        assert_eq!(state.pending_since_ms, None);
    }
}
