//! What a mirror's failed pushes taught about the largest push it takes, kept in its state so
//! later updates go in steps under it. Pure: the rules, tested here; delivery reports the facts.
//!
//! Only the mirror's own word is a lasting fact: a refusal that says the push is too large (`pack
//! exceeds maximum allowed size`, HTTP 413) teaches a [`Refused`] limit, which is probed upward
//! after [`PROBE_AFTER`] clean updates that used it, never to the size the mirror refused (or
//! the limit it named). A connection dropped mid-pack or a push cut off at `timeout` may be the
//! network as well as a limit: it teaches a [`Suspected`] limit, a hypothesis that spares the
//! retry (and a worker killed mid-update) the same failure, and that every clean update doubles
//! until it reaches the size that failed, when it is forgotten.

use serde::{Deserialize, Serialize};

/// Clean updates that used a refused limit after which the next one probes above it.
pub const PROBE_AFTER: u32 = 3;

/// Why a push was taken for too large.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LimitSource {
    /// The mirror said so: its pack size limit, or an HTTP 413.
    Refused,
    /// The connection dropped while the pack was sent.
    Dropped,
    /// The push did not finish within `timeout`.
    TimedOut,
    /// Learned by a version that did not record why.
    Unknown,
}

impl LimitSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitSource::Refused => "refused",
            LimitSource::Dropped => "dropped",
            LimitSource::TimedOut => "timed_out",
            LimitSource::Unknown => "unknown",
        }
    }

    /// What happened, for people: "a push of about 20 MB {what}".
    pub fn what(self) -> &'static str {
        match self {
            LimitSource::Refused => "was too large for the mirror",
            LimitSource::Dropped => "lost its connection",
            LimitSource::TimedOut => "did not finish within the time limit",
            LimitSource::Unknown => "failed",
        }
    }
}

/// A limit the mirror named or showed by refusing bigger pushes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Pushes are planned under this many bytes.
    pub bytes: u64,
    /// The smallest push the mirror refused as too large, or the limit it named: no probe
    /// reaches it.
    pub refused_at: u64,
    /// When it was learned or last changed.
    pub at_ms: u64,
    /// Clean updates that used it since then.
    #[serde(default)]
    pub clean_updates: u32,
}

/// A limit suspected from a dropped connection or a timeout.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suspected {
    pub bytes: u64,
    pub source: LimitSource,
    /// The largest push that failed so: raised back to it, the suspicion is dropped.
    pub failed_at: u64,
    pub at_ms: u64,
}

/// Everything learned about a mirror's push size; the smaller limit applies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LearnedLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refused>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspected: Option<Suspected>,
}

/// The limit in effect, with where it came from and since when (for `status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InEffect {
    pub bytes: u64,
    pub source: LimitSource,
    pub at_ms: Option<u64>,
}

/// What one update showed about its pushes' sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpdateSizes {
    /// A push failed for its size (refused as too large, dropped mid-pack, timed out).
    pub failed: bool,
    /// The largest push that landed (estimated bytes), if any landed.
    pub largest_landed: Option<u64>,
}

impl LearnedLimits {
    pub fn is_empty(&self) -> bool {
        self.refused.is_none() && self.suspected.is_none()
    }

    /// The limits kept in a state; `legacy` is the `learned_max_push_size` of a version that did
    /// not record why: a suspicion, dropped at the first clean update (a real limit is learned
    /// again, and then kept, at the next refusal).
    pub fn with_legacy(self, legacy: Option<u64>) -> LearnedLimits {
        match legacy {
            Some(bytes) if self.is_empty() => LearnedLimits {
                refused: None,
                suspected: Some(Suspected {
                    bytes,
                    source: LimitSource::Unknown,
                    failed_at: bytes.saturating_mul(2),
                    at_ms: 0,
                }),
            },
            _ => self,
        }
    }

    /// The limit in effect, if any.
    pub fn in_effect(&self) -> Option<InEffect> {
        let refused = self.refused.map(|r| InEffect {
            bytes: r.bytes,
            source: LimitSource::Refused,
            at_ms: Some(r.at_ms),
        });
        let suspected = self.suspected.map(|s| InEffect {
            bytes: s.bytes,
            source: s.source,
            at_ms: Some(s.at_ms).filter(|at| *at > 0),
        });
        match (refused, suspected) {
            (Some(r), Some(s)) if s.bytes < r.bytes => Some(s),
            (Some(r), _) => Some(r),
            (None, s) => s,
        }
    }

    /// The size the next update plans its pushes under: the limit in effect, a refused limit
    /// probed upward when it is due.
    pub fn plan_bytes(&self) -> Option<u64> {
        let refused = self.refused.map(|r| {
            if r.clean_updates >= PROBE_AFTER {
                probe(r.bytes, r.refused_at)
            } else {
                r.bytes
            }
        });
        let suspected = self.suspected.map(|s| s.bytes);
        match (refused, suspected) {
            (Some(r), Some(s)) => Some(r.min(s)),
            (r, s) => r.or(s),
        }
    }

    /// A push of `bytes` failed for its size (`source`; `named`: the limit the mirror named, if
    /// it did) at `now_ms`. A limit below the push is kept (it was not what failed: the push
    /// was a probe above it); otherwise the limit goes under the mirror's named limit, or to half
    /// the push.
    pub fn after_failure(&mut self, source: LimitSource, bytes: u64, named: Option<u64>, now_ms: u64) {
        let named = named.filter(|limit| *limit < bytes);
        let lowered = |kept: Option<u64>| match kept {
            Some(kept) if kept < bytes => kept,
            kept => {
                let wanted = named.map_or(bytes / 2, |limit| limit / 10 * 9);
                wanted.min(kept.map_or(u64::MAX, |k| k.saturating_sub(1))).max(1)
            }
        };
        if source == LimitSource::Refused {
            let refused_at = named.unwrap_or(bytes);
            let previous = self.refused;
            let refused_at = previous.map_or(refused_at, |r| r.refused_at.min(refused_at));
            let bytes = lowered(previous.map(|r| r.bytes)).min(refused_at.saturating_sub(1).max(1));
            self.refused = Some(Refused {
                bytes,
                refused_at,
                at_ms: now_ms,
                clean_updates: 0,
            });
        } else {
            let previous = self.suspected;
            self.suspected = Some(Suspected {
                bytes: lowered(previous.map(|s| s.bytes)),
                source,
                failed_at: previous.map_or(bytes, |s| s.failed_at.max(bytes)),
                at_ms: now_ms,
            });
        }
    }

    /// Folds in what a whole update showed. An update is clean when no push failed for its size
    /// and one landed: a suspicion doubles (and is dropped once it reaches the size that
    /// failed); a refused limit is raised to the largest push that landed above it (a probe
    /// that worked), or counts the update when it used the limit (a push of half of it or more).
    pub fn after_update(&mut self, sizes: UpdateSizes, now_ms: u64) {
        let Some(largest) = sizes.largest_landed.filter(|_| !sizes.failed) else {
            return;
        };
        if let Some(suspected) = &mut self.suspected {
            suspected.bytes = suspected.bytes.saturating_mul(2);
            suspected.at_ms = now_ms;
            if suspected.bytes >= suspected.failed_at {
                self.suspected = None;
            }
        }
        if let Some(refused) = &mut self.refused {
            if largest > refused.bytes {
                refused.bytes = largest.min(refused.refused_at.saturating_sub(1));
                refused.at_ms = now_ms;
                refused.clean_updates = 0;
            } else if largest >= refused.bytes / 2 {
                refused.clean_updates = refused.clean_updates.saturating_add(1);
            }
        }
    }
}

/// A size above `bytes` worth trying: double, at most halfway to `refused_at`; `bytes` itself
/// when that is less than a tenth more (close enough to the mirror's limit).
fn probe(bytes: u64, refused_at: u64) -> u64 {
    let halfway = bytes.saturating_add(refused_at.saturating_sub(bytes) / 2);
    let tried = bytes.saturating_mul(2).min(halfway);
    if tried > bytes.saturating_add(bytes / 10) {
        tried
    } else {
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    fn clean(largest: u64) -> UpdateSizes {
        UpdateSizes {
            failed: false,
            largest_landed: Some(largest),
        }
    }

    #[test]
    fn three_dropped_connections_teach_a_suspicion_that_clean_updates_lift() {
        let mut limits = LearnedLimits::default();
        // A 23 MB push drops, then its halves (as delivery re-plans under the lowered limit).
        for failed in [23 * MB, 23 * MB / 2, 23 * MB / 4] {
            limits.after_failure(LimitSource::Dropped, failed, None, 1);
        }
        assert_eq!(limits.plan_bytes(), Some(23 * MB / 8));
        let shown = limits.in_effect().unwrap();
        assert_eq!((shown.source, shown.at_ms), (LimitSource::Dropped, Some(1)));
        // The update that dropped is not clean, whatever landed after.
        limits.after_update(
            UpdateSizes {
                failed: true,
                largest_landed: Some(2 * MB),
            },
            2,
        );
        assert_eq!(limits.plan_bytes(), Some(23 * MB / 8));
        // Clean updates, however small: 5.75, 11.5, then 23 MB, the size that failed: gone.
        for expected in [Some(23 * MB / 4), Some(23 * MB / 2), None] {
            limits.after_update(clean(1_000), 3);
            assert_eq!(limits.plan_bytes(), expected);
        }
        assert!(limits.is_empty());
    }

    #[test]
    fn an_update_that_lands_nothing_proves_nothing() {
        let mut limits = LearnedLimits::default();
        limits.after_failure(LimitSource::TimedOut, 8 * MB, None, 1);
        limits.after_update(UpdateSizes::default(), 2);
        assert_eq!(limits.plan_bytes(), Some(4 * MB));
    }

    #[test]
    fn a_refusal_is_kept_and_probed_upward_never_to_what_was_refused() {
        let mut limits = LearnedLimits::default();
        limits.after_failure(LimitSource::Refused, 100 * MB, None, 1);
        limits.after_failure(LimitSource::Refused, 50 * MB, None, 1);
        limits.after_failure(LimitSource::Refused, 25 * MB, None, 1);
        let refused = limits.refused.unwrap();
        assert_eq!((refused.bytes, refused.refused_at), (25 * MB / 2, 25 * MB));
        // Small clean updates do not use the limit: they neither count nor raise it.
        for _ in 0..10 {
            limits.after_update(clean(MB), 2);
        }
        assert_eq!(limits.plan_bytes(), Some(25 * MB / 2));
        // Three updates that used it: the next one may push up to halfway to what was refused.
        for _ in 0..PROBE_AFTER {
            limits.after_update(clean(12 * MB), 3);
        }
        let probe = limits.plan_bytes().unwrap();
        assert_eq!(probe, 25 * MB / 2 + 25 * MB / 4);
        // The probe landed a push of 17 MB: the limit is raised to it.
        limits.after_update(clean(17 * MB), 4);
        let refused = limits.refused.unwrap();
        assert_eq!((refused.bytes, refused.clean_updates, refused.at_ms), (17 * MB, 0, 4));
        // The next probe is refused at 20 MB: the 17 MB that landed are kept, the ceiling drops.
        for _ in 0..PROBE_AFTER {
            limits.after_update(clean(17 * MB), 5);
        }
        assert!(limits.plan_bytes().unwrap() > 17 * MB);
        limits.after_failure(LimitSource::Refused, 20 * MB, None, 6);
        let refused = limits.refused.unwrap();
        assert_eq!((refused.bytes, refused.refused_at), (17 * MB, 20 * MB));
        // Close to the ceiling, probing stops.
        limits.refused = Some(Refused {
            bytes: 19 * MB,
            clean_updates: PROBE_AFTER,
            ..refused
        });
        assert_eq!(limits.plan_bytes(), Some(19 * MB));
    }

    #[test]
    fn a_named_limit_is_the_ceiling() {
        let mut limits = LearnedLimits::default();
        limits.after_failure(LimitSource::Refused, 3_000 * MB, Some(2_000 * MB), 1);
        let refused = limits.refused.unwrap();
        assert_eq!((refused.bytes, refused.refused_at), (1_800 * MB, 2_000 * MB));
        for _ in 0..PROBE_AFTER {
            limits.after_update(clean(1_800 * MB), 2);
        }
        assert!(limits.plan_bytes().unwrap() < 2_000 * MB, "never to the named limit");
        // A named limit above the push refused says nothing more than the push.
        let mut odd = LearnedLimits::default();
        odd.after_failure(LimitSource::Refused, 10 * MB, Some(20 * MB), 1);
        assert_eq!(odd.refused.unwrap().bytes, 5 * MB);
    }

    #[test]
    fn the_smaller_limit_applies_and_a_suspicion_never_lowers_a_refusal() {
        let mut limits = LearnedLimits::default();
        limits.after_failure(LimitSource::Refused, 20 * MB, None, 1);
        limits.after_failure(LimitSource::Dropped, 8 * MB, None, 2);
        assert_eq!(limits.plan_bytes(), Some(4 * MB));
        assert_eq!(limits.in_effect().unwrap().source, LimitSource::Dropped);
        assert_eq!(limits.refused.unwrap().bytes, 10 * MB);
        // Doubled to the 8 MB that dropped: the suspicion is dropped.
        limits.after_update(clean(4 * MB), 3);
        assert!(limits.suspected.is_none());
        assert_eq!(limits.in_effect().unwrap().source, LimitSource::Refused);
        assert_eq!(limits.plan_bytes(), Some(10 * MB), "back to what the refusal taught");
    }

    #[test]
    fn a_limit_from_an_older_version_is_a_suspicion() {
        let limits = LearnedLimits::default().with_legacy(Some(3 * MB));
        assert_eq!(limits.in_effect().unwrap().source, LimitSource::Unknown);
        assert_eq!(limits.in_effect().unwrap().at_ms, None);
        let mut lifted = limits;
        lifted.after_update(clean(10), 1);
        assert!(lifted.is_empty(), "one clean update lifts it");
        let mut refused = LearnedLimits::default();
        refused.after_failure(LimitSource::Refused, 10 * MB, None, 1);
        assert_eq!(refused.with_legacy(Some(MB)), refused, "recorded limits win");
    }

    #[test]
    fn limits_never_reach_zero() {
        let mut limits = LearnedLimits::default();
        for _ in 0..10 {
            limits.after_failure(LimitSource::Dropped, 1, None, 1);
            limits.after_failure(LimitSource::Refused, 1, None, 1);
        }
        assert_eq!(limits.plan_bytes(), Some(1));
    }
}
