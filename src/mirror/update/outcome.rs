//! After an update: the retry schedule of a failed one (backoff, rate limits, permanent
//! failures), and the update's report folded into the mirror's state.

use crate::config::RetryPolicy;
use crate::git::FailureClass;
use crate::mirror::lfs::LfsStatus;
use crate::mirror::plan::Reach;
use crate::mirror::report::{RefOutcome, UpdateReport};
use crate::mirror::state::{MirrorState, PendingRef, UpdateStatus};
use crate::util::fsutil::now_ms;
use std::collections::BTreeSet;

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
