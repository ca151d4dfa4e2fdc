//! When a (repository, mirror) pair with pending changes may be pushed: the worker's timing
//! policy, as a pure function of the pair's state, its settings and the clock.
//!
//! By default a change that finds its mirror quiet is pushed at once (leading edge). A change
//! that arrives while a push of the pair is running, or within [`COALESCE_WINDOW`] after one
//! ended, waits for the window's end and then goes out with everything else that arrived
//! meanwhile, in one push (trailing edge). The worker runs one update per pair at a time, so a
//! burst costs one mirror push per push duration plus window, and a lone push costs one push.
//!
//! An explicit `delay` replaces the window with a fixed wait after the first pending change
//! (the debounce of earlier versions, kept as it was: `"0s"` pushes as soon as the previous
//! push ends). `min_interval` (between the starts of two updates) and the retry backoff apply
//! on top of either.
//!
//! Recorded times are facts about the past, never promises about the future: a moment recorded
//! after now (the clock was set back since, or it was wrong when the moment was written) counts
//! as now, and a next attempt further ahead than the retry policy can ask counts as due. So a
//! clock jump in either direction delays nothing by more than the configured interval.

use crate::config::RetryPolicy;
use crate::mirror::state::MirrorState;
use std::time::Duration;

/// How long after a push of a pair ends its mirror counts as busy: changes arriving before
/// then are gathered into one push at its end. Long enough for a burst of pushes (a CI bot,
/// `git push --all` split by a server, a migration script) to coalesce, short enough that the
/// last change of a burst still reaches the mirror within about a second.
pub const COALESCE_WINDOW: Duration = Duration::from_secs(1);

/// The longest wait [`wait_until`] returns: further than any worker lingers, and small enough
/// to add to any `Instant`.
const FOREVER: Duration = Duration::from_secs(366 * 24 * 3600);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// When (ms since the epoch) the pair may next be updated, given its `delay` (`None`: not set,
/// the default policy), `min_interval` and the retry policy. A result at or before `now_ms`
/// means now.
pub fn due_at(
    state: &MirrorState,
    delay: Option<Duration>,
    min_interval: Duration,
    retry: &RetryPolicy,
    now_ms: u64,
) -> u64 {
    // A moment recorded after now counts as now: no wait grows by the size of a jump.
    let since = |moment: u64, wait: Duration| moment.min(now_ms).saturating_add(ms(wait));
    let gathered = match delay {
        Some(delay) => since(state.pending_since_ms.unwrap_or(0), delay),
        None => state.last_update_at_ms.map_or(0, |ended| since(ended, COALESCE_WINDOW)),
    };
    let rate_limited = state
        .last_update_started_at_ms
        .map_or(0, |started| since(started, min_interval));
    let backed_off = retry_due_at(state, retry, now_ms).unwrap_or(0);
    gathered.max(rate_limited).max(backed_off)
}

/// When the pair's retry backoff ends: the recorded next attempt, unless it lies further ahead
/// than the policy can ask for a failure of the pair's class (`retry.max`, `permanent_retry`,
/// a Retry-After bounded by `retry.max`), which no failure under the present clock recorded:
/// then now. `None`: no backoff.
pub fn retry_due_at(state: &MirrorState, retry: &RetryPolicy, now_ms: u64) -> Option<u64> {
    let at = state.next_attempt_at_ms?;
    let longest = crate::mirror::update::longest_retry_wait_ms(retry, state.failure_class);
    Some(if at > now_ms.saturating_add(longest) {
        now_ms
    } else {
        at
    })
}

/// How long from `now_ms` until `due_ms` (both ms since the epoch): what a worker waits on its
/// monotonic clock, so that the wall clock jumping while it waits changes nothing.
pub fn wait_until(due_ms: u64, now_ms: u64) -> Duration {
    Duration::from_millis(due_ms.saturating_sub(now_ms)).min(FOREVER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::FailureClass;

    const NOW: u64 = 1_800_000_000_000;
    const WINDOW: u64 = COALESCE_WINDOW.as_millis() as u64;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// The default policy without jitter: 5 s doubling to 10 min, permanent failures hourly.
    fn retry() -> RetryPolicy {
        RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        }
    }

    /// A pair with a change pending since `pending_since`, whose last update ran from
    /// `started` to `ended` (ms before `NOW`, when given).
    fn pair(pending_since: u64, last_update: Option<(u64, u64)>) -> MirrorState {
        MirrorState {
            pending_since_ms: Some(NOW - pending_since),
            last_update_started_at_ms: last_update.map(|(started, _)| NOW - started),
            last_update_at_ms: last_update.map(|(_, ended)| NOW - ended),
            ..MirrorState::default()
        }
    }

    #[test]
    fn a_change_to_a_mirror_never_pushed_goes_at_once() {
        assert!(due_at(&pair(0, None), None, Duration::ZERO, &retry(), NOW) <= NOW);
    }

    #[test]
    fn a_change_after_a_quiet_period_goes_at_once() {
        // The last push ended a minute ago; a change has just arrived.
        assert!(due_at(&pair(0, Some((60_005, 60_000))), None, Duration::ZERO, &retry(), NOW) <= NOW);
        // Just past the window is quiet too.
        assert!(
            due_at(
                &pair(0, Some((WINDOW + 50, WINDOW))),
                None,
                Duration::ZERO,
                &retry(),
                NOW
            ) <= NOW
        );
    }

    #[test]
    fn changes_during_or_just_after_a_push_wait_for_the_end_of_the_window() {
        // The push ended just now (it ran for 3 s; the change arrived while it ran): the
        // following push waits one window after that end, whatever the push's length.
        assert_eq!(
            due_at(&pair(2_000, Some((3_000, 0))), None, Duration::ZERO, &retry(), NOW),
            NOW + WINDOW
        );
        // A change 200 ms after a push ended joins the push at the same moment.
        assert_eq!(
            due_at(&pair(0, Some((250, 200))), None, Duration::ZERO, &retry(), NOW),
            NOW - 200 + WINDOW
        );
    }

    #[test]
    fn everything_gathered_in_a_window_is_due_at_one_moment() {
        // Whatever arrives between the end of a push and the end of its window gets the same
        // due time: one push carries it all.
        let ended = NOW - 100;
        let due: Vec<u64> = [0, 30, 90]
            .into_iter()
            .map(|arrived_ago| {
                let state = MirrorState {
                    pending_since_ms: Some(NOW - arrived_ago),
                    last_update_started_at_ms: Some(ended - 20),
                    last_update_at_ms: Some(ended),
                    ..MirrorState::default()
                };
                due_at(&state, None, Duration::ZERO, &retry(), NOW)
            })
            .collect();
        assert_eq!(due, [ended + WINDOW; 3]);
    }

    #[test]
    fn an_explicit_delay_waits_after_the_first_change_even_when_quiet() {
        let quiet = pair(0, Some((60_005, 60_000)));
        assert_eq!(
            due_at(&quiet, Some(secs(5)), Duration::ZERO, &retry(), NOW),
            NOW + 5_000
        );
        // Counted from the first pending change, not the newest.
        assert_eq!(
            due_at(&pair(4_000, None), Some(secs(5)), Duration::ZERO, &retry(), NOW),
            NOW + 1_000
        );
    }

    #[test]
    fn an_explicit_delay_of_zero_pushes_as_soon_as_the_previous_push_ends() {
        // As before the default changed: no window after a push.
        assert!(
            due_at(
                &pair(500, Some((1_000, 0))),
                Some(Duration::ZERO),
                Duration::ZERO,
                &retry(),
                NOW
            ) <= NOW
        );
    }

    #[test]
    fn min_interval_spaces_the_starts_of_two_updates() {
        // Started 10 s ago, ended 5 s ago: quiet, but one update per minute at most.
        let state = pair(0, Some((10_000, 5_000)));
        assert_eq!(due_at(&state, None, secs(60), &retry(), NOW), NOW + 50_000);
        assert_eq!(due_at(&state, Some(secs(1)), secs(60), &retry(), NOW), NOW + 50_000);
        // A minimum interval already past holds nothing back.
        assert!(due_at(&state, None, secs(5), &retry(), NOW) <= NOW);
    }

    #[test]
    fn a_backoff_holds_the_next_attempt_back() {
        let state = MirrorState {
            next_attempt_at_ms: Some(NOW + 30_000),
            ..pair(0, Some((60_005, 60_000)))
        };
        assert_eq!(due_at(&state, None, Duration::ZERO, &retry(), NOW), NOW + 30_000);
    }

    #[test]
    fn a_clock_set_back_adds_no_wait() {
        // The last update "ended" an hour from now: the clock was set back by an hour since.
        let hour = 3_600_000;
        let state = MirrorState {
            pending_since_ms: Some(NOW + hour),
            last_update_started_at_ms: Some(NOW + hour),
            last_update_at_ms: Some(NOW + hour),
            ..MirrorState::default()
        };
        assert_eq!(due_at(&state, None, Duration::ZERO, &retry(), NOW), NOW + WINDOW);
        assert_eq!(
            due_at(&state, Some(secs(2)), Duration::ZERO, &retry(), NOW),
            NOW + 2_000
        );
        assert_eq!(due_at(&state, None, secs(10), &retry(), NOW), NOW + 10_000);
    }

    #[test]
    fn absurd_durations_saturate() {
        let forever = Duration::from_secs(u64::MAX / 1000);
        let state = pair(0, Some((10, 5)));
        assert_eq!(due_at(&state, Some(forever), Duration::ZERO, &retry(), NOW), u64::MAX);
        assert_eq!(due_at(&state, None, forever, &retry(), NOW), u64::MAX);
        assert_eq!(
            due_at(&state, Some(Duration::MAX), Duration::MAX, &retry(), NOW),
            u64::MAX
        );
    }

    const YEAR: u64 = 365 * 24 * 3_600_000;
    const DAY: u64 = 24 * 3_600_000;

    #[test]
    fn a_backoff_within_the_policy_is_kept_whatever_the_clock() {
        for class in [None, Some(FailureClass::Transient), Some(FailureClass::RateLimited)] {
            let state = MirrorState {
                next_attempt_at_ms: Some(NOW + 600_000),
                failure_class: class,
                ..MirrorState::default()
            };
            assert_eq!(
                due_at(&state, None, Duration::ZERO, &retry(), NOW),
                NOW + 600_000,
                "{class:?}"
            );
        }
        let permanent = MirrorState {
            next_attempt_at_ms: Some(NOW + 3_600_000),
            failure_class: Some(FailureClass::Permanent),
            ..MirrorState::default()
        };
        assert_eq!(due_at(&permanent, None, Duration::ZERO, &retry(), NOW), NOW + 3_600_000);
    }

    #[test]
    fn a_backoff_beyond_what_the_policy_allows_counts_as_now() {
        // Recorded a year ahead (a run under a wrong clock), or a day ahead (the clock was set
        // back a day after the failure): no policy asks for that wait, so the retry is due.
        for ahead in [YEAR, DAY, 3 * 3_600_000] {
            for class in [
                None,
                Some(FailureClass::Transient),
                Some(FailureClass::RateLimited),
                Some(FailureClass::Permanent),
            ] {
                let state = MirrorState {
                    next_attempt_at_ms: Some(NOW + ahead),
                    last_update_at_ms: Some(NOW + ahead - 5_000),
                    failure_class: class,
                    ..MirrorState::default()
                };
                // The failure's end also lies ahead: it counts as now, so only the window waits.
                assert_eq!(
                    due_at(&state, None, Duration::ZERO, &retry(), NOW),
                    NOW + WINDOW,
                    "{ahead} ahead, {class:?}"
                );
                assert_eq!(retry_due_at(&state, &retry(), NOW), Some(NOW));
            }
        }
        // A rate limit's wait is bounded by `max`: 11 minutes ahead is more than it may ask.
        let rate_limited = MirrorState {
            next_attempt_at_ms: Some(NOW + 13 * 60_000),
            failure_class: Some(FailureClass::RateLimited),
            ..MirrorState::default()
        };
        assert_eq!(retry_due_at(&rate_limited, &retry(), NOW), Some(NOW));
        // A policy shortened since the failure applies at once.
        let shorter = RetryPolicy {
            max: secs(60),
            ..retry()
        };
        let transient = MirrorState {
            next_attempt_at_ms: Some(NOW + 600_000),
            failure_class: Some(FailureClass::Transient),
            ..MirrorState::default()
        };
        assert_eq!(retry_due_at(&transient, &shorter, NOW), Some(NOW));
    }

    #[test]
    fn a_clock_set_forward_makes_every_wait_past() {
        // Everything was recorded a year before now (the clock jumped forward, or a run long ago).
        let state = MirrorState {
            pending_since_ms: Some(NOW - YEAR),
            last_update_started_at_ms: Some(NOW - YEAR),
            last_update_at_ms: Some(NOW - YEAR),
            next_attempt_at_ms: Some(NOW - YEAR + 600_000),
            failure_class: Some(FailureClass::Transient),
            ..MirrorState::default()
        };
        for delay in [None, Some(secs(5))] {
            assert!(due_at(&state, delay, secs(300), &retry(), NOW) <= NOW);
        }
    }

    /// Every recorded time of a pair, each at every offset from now (far and just behind, now,
    /// just and far ahead), under every setting: no pair waits longer than the longest interval
    /// its settings allow, and a pair whose times are all facts (not ahead) waits exactly what
    /// it would have without any jump.
    #[test]
    fn no_recorded_time_delays_anything_by_more_than_its_interval() {
        let offsets: [i64; 6] = [-(YEAR as i64), -10_000, 0, 10_000, DAY as i64, YEAR as i64];
        let at = |offset: i64| Some(NOW.checked_add_signed(offset).unwrap());
        let classes = [
            None,
            Some(FailureClass::Transient),
            Some(FailureClass::RateLimited),
            Some(FailureClass::Permanent),
        ];
        let policy = retry();
        let mut cases = 0;
        for pending in offsets {
            for started in offsets {
                for ended in offsets {
                    for next in offsets {
                        for class in classes {
                            for delay in [None, Some(Duration::ZERO), Some(secs(30))] {
                                for min_interval in [Duration::ZERO, secs(300)] {
                                    let state = MirrorState {
                                        pending_since_ms: at(pending),
                                        last_update_started_at_ms: at(started),
                                        last_update_at_ms: at(ended),
                                        next_attempt_at_ms: at(next),
                                        failure_class: class,
                                        ..MirrorState::default()
                                    };
                                    let due = due_at(&state, delay, min_interval, &policy, NOW);
                                    let gather = delay.unwrap_or(COALESCE_WINDOW);
                                    let longest = ms(gather)
                                        .max(ms(min_interval))
                                        .max(crate::mirror::update::longest_retry_wait_ms(&policy, class));
                                    assert!(due <= NOW + longest, "{state:?} {delay:?} {min_interval:?}");
                                    let facts = [pending, started, ended].iter().all(|o| *o <= 0);
                                    let longest_retry = crate::mirror::update::longest_retry_wait_ms(&policy, class);
                                    if facts && next <= longest_retry as i64 {
                                        let since = |t: i64, wait: Duration| (NOW as i64 + t) as u64 + ms(wait);
                                        let gathered = match delay {
                                            Some(d) => since(pending, d),
                                            None => since(ended, COALESCE_WINDOW),
                                        };
                                        let expected =
                                            gathered.max(since(started, min_interval)).max(at(next).unwrap());
                                        assert_eq!(due, expected, "{state:?} {delay:?} {min_interval:?}");
                                    }
                                    cases += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 6 * 6 * 6 * 6 * 4 * 3 * 2);
    }

    #[test]
    fn waits_are_capped_so_an_instant_can_hold_them() {
        assert_eq!(wait_until(NOW - 5, NOW), Duration::ZERO);
        assert_eq!(wait_until(NOW + 1_500, NOW), Duration::from_millis(1_500));
        assert_eq!(wait_until(u64::MAX, NOW), FOREVER);
        let _ = std::time::Instant::now() + wait_until(u64::MAX, 0);
    }
}
