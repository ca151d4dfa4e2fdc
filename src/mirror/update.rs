//! One mirror update: observe the mirror, plan, push with leases, and record the outcome in the
//! mirror's state. Shared by the worker and by `sync`; the caller holds the pair's push lock.

pub mod create;
pub mod default_branch;
mod deliver;
mod lfs;
mod outcome;
mod side;
mod split;
mod steps;

pub use crate::mirror::report::{RefOutcome, RefResult, UpdateReport};
pub use outcome::{backoff_ms, longest_retry_wait_ms, record_outcome, retry_delay_ms};

use crate::access::auth::remote_access;
use crate::config::{GlobalConfig, MirrorConfig};
use crate::git::{self, Failure, FailureClass, PushFlag, RemoteAccess};
use crate::mirror::configured::Presence;
use crate::mirror::learned_limit::LearnedLimits;
use crate::mirror::plan::{self, Decision, PendingHint, PlanInput, PlanWarning, Reach};
use crate::mirror::refs::LocalRepo;
use crate::mirror::state::{
    KnownRef, KnownRefs, MirrorState, PushProgress, StateStore, UpdateStatus, known_local_values, known_remote_values,
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
    let began = store.change_mirror_state_if(
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
        .change_mirror_state_if(
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
        let target = Target {
            local_repo: &local_repo,
            repo,
            mirror,
            access,
        };
        let attempt_result = reconcile_once(target, &pending, reach, view, &mut lfs, pushing);
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
                .change_mirror_state_if(self.repo, &self.mirror.name, Durability::OldOrNew, configured, change)
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

/// What every attempt of one update works on: the repository (path and opened), the mirror's
/// configuration, and how the mirror is reached.
#[derive(Clone, Copy)]
struct Target<'a> {
    local_repo: &'a LocalRepo,
    repo: &'a Path,
    mirror: &'a MirrorConfig,
    access: &'a RemoteAccess,
}

/// One attempt: look at the mirror (or assume it), plan, upload LFS objects, deliver.
fn reconcile_once(
    target: Target<'_>,
    pending: &BTreeMap<String, PendingHint>,
    reach: Reach,
    view: RemoteView<'_>,
    lfs: &mut LfsProgress,
    pushing: &mut Pushing<'_>,
) -> Result<Outcomes, Failure> {
    let Target {
        local_repo,
        repo,
        mirror,
        access,
    } = target;
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
        let to = deliver::Destination {
            git_dir: repo,
            access,
            limits: mirror.push_limits,
            haves: &haves,
            confirm_all: reach == Reach::Everything,
        };
        deliver::deliver(&to, pushing.lessons, changes, pushing.journal)?
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

#[cfg(test)]
mod tests;
