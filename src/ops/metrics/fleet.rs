//! `metrics` at fleet scale: which mirrors get series of their own under
//! `metrics_mirrors = "attention"` (those a person should look at), and the aggregates every
//! mirror counts in whatever is chosen, so a fleet's healthy mirrors are counted, not listed.

use super::{FAILURE_CLASSES, Family, STATUSES, Snapshot, seconds};
use crate::config::MetricsMirrors;
use crate::ops::status::MirrorStatus;

/// How long since its last verification makes an enabled mirror need attention (`verify_interval`
/// is a day by default: two missed checks).
const UNVERIFIED_FOR: f64 = 2.0 * 86_400.0;

/// Whether a mirror needs a person's attention: not mirrored up to date (failing, retrying,
/// interrupted, pending refs or a reconciliation owed, pushes the hook could not record), faulted,
/// orphaned, with refused, divergent or kept refs, a failed LFS upload, or (enabled) not verified
/// for two days.
pub fn needs_attention(s: &MirrorStatus, now_seconds: f64) -> bool {
    let behind = s.update_status != "finished" && s.update_status != "none"
        || !s.pending_refs.is_empty()
        || s.full_sync_pending
        || s.unrecorded_pushes_since.is_some();
    let faulted = s.config_error.is_some() || s.state_error.is_some() || s.orphaned_since.is_some();
    let refs = !s.rejected_refs.is_empty() || !s.divergent_refs.is_empty() || !s.kept_refs.is_empty();
    let unverified = s.enabled && now_seconds - seconds(&s.last_verified_at) > UNVERIFIED_FOR;
    behind
        || faulted
        || refs
        || s.failure_class.is_some()
        || s.lfs_status == crate::mirror::lfs::LfsStatus::Failed.as_str()
        || unverified
}

/// The indices of the mirrors given series of their own.
pub fn listed(snapshot: &Snapshot<'_>) -> Vec<usize> {
    let statuses = snapshot.statuses.iter().enumerate();
    match snapshot.mirrors {
        MetricsMirrors::All => statuses.map(|(i, _)| i).collect(),
        MetricsMirrors::Attention => statuses
            .filter(|(_, s)| needs_attention(s, snapshot.written_at_seconds))
            .map(|(i, _)| i)
            .collect(),
    }
}

/// The aggregates over every mirror.
pub fn render(out: &mut String, snapshot: &Snapshot<'_>) {
    let statuses = snapshot.statuses;
    {
        let mut family = Family::gauge(
            out,
            "mirrors",
            "Mirrors by update_status (every mirror, whatever metrics_mirrors lists).",
        );
        for status in STATUSES {
            let name = status.as_str();
            let count = statuses.iter().filter(|s| s.update_status == name).count();
            family.sample(&[("status", name)], count as f64);
        }
    }
    {
        let mut family = Family::gauge(out, "mirrors_failing", "Mirrors failing, by failure_class.");
        for class in FAILURE_CLASSES {
            let name = class.as_str();
            let count = statuses.iter().filter(|s| s.failure_class == Some(name)).count();
            family.sample(&[("class", name)], count as f64);
        }
    }
    let count = |f: &dyn Fn(&MirrorStatus) -> bool| statuses.iter().filter(|s| f(s)).count() as f64;
    Family::gauge(
        out,
        "mirrors_needing_attention",
        "Mirrors a person should look at: failing, retrying or behind, faulted, orphaned, with refused, divergent \
         or kept refs, a failed LFS upload, or not verified for two days (those metrics_mirrors = \"attention\" \
         lists).",
    )
    .sample(&[], count(&|s| needs_attention(s, snapshot.written_at_seconds)));
    Family::gauge(
        out,
        "mirrors_faulted",
        "Mirrors nothing can be pushed to until a person acts (config_error or state_error).",
    )
    .sample(&[], count(&|s| s.config_error.is_some() || s.state_error.is_some()));
    Family::gauge(out, "mirrors_divergent", "Mirrors with divergent refs.")
        .sample(&[], count(&|s| !s.divergent_refs.is_empty()));
    Family::gauge(
        out,
        "mirrors_with_rejected_refs",
        "Mirrors that refused refs at their last update.",
    )
    .sample(&[], count(&|s| !s.rejected_refs.is_empty()));
    Family::gauge(
        out,
        "mirrors_pending_refs",
        "Refs changed locally and not yet known to be on their mirror, over every mirror.",
    )
    .sample(&[], statuses.iter().map(|s| s.pending_refs.len() as f64).sum());
    Family::gauge(
        out,
        "mirrors_oldest_pending_age_seconds",
        "Seconds since the oldest change any mirror has not got yet arrived (0: nothing pending).",
    )
    .sample(
        &[],
        snapshot
            .extras
            .iter()
            .map(|e| e.oldest_pending_age_seconds)
            .fold(0.0, f64::max),
    );
    Family::gauge(
        out,
        "mirrors_oldest_verified_timestamp_seconds",
        "The least recent last_verified time over the enabled mirrors (0: one was never verified).",
    )
    .sample(
        &[],
        statuses
            .iter()
            .filter(|s| s.enabled)
            .map(|s| seconds(&s.last_verified_at))
            .reduce(f64::min)
            .unwrap_or(0.0),
    );
}
