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

use crate::mirror::state::MirrorState;
use std::time::Duration;

/// How long after a push of a pair ends its mirror counts as busy: changes arriving before
/// then are gathered into one push at its end. Long enough for a burst of pushes (a CI bot,
/// `git push --all` split by a server, a migration script) to coalesce, short enough that the
/// last change of a burst still reaches the mirror within about a second.
pub const COALESCE_WINDOW: Duration = Duration::from_secs(1);

/// When (ms since the epoch) the pair may next be updated, given its `delay` (`None`: not set,
/// the default policy) and `min_interval`. A result at or before `now_ms` means now.
pub fn due_at(state: &MirrorState, delay: Option<Duration>, min_interval: Duration, now_ms: u64) -> u64 {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    // A moment recorded before the clock was set back lies in the future: count from now
    // instead, so that no wait grows by the size of the jump.
    let since = |moment: u64, wait: Duration| moment.min(now_ms).saturating_add(ms(wait));
    let gathered = match delay {
        Some(delay) => since(state.pending_since_ms.unwrap_or(0), delay),
        None => state.last_update_at_ms.map_or(0, |ended| since(ended, COALESCE_WINDOW)),
    };
    let rate_limited = state
        .last_update_started_at_ms
        .map_or(0, |started| since(started, min_interval));
    let backed_off = state.next_attempt_at_ms.unwrap_or(0);
    gathered.max(rate_limited).max(backed_off)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;
    const WINDOW: u64 = COALESCE_WINDOW.as_millis() as u64;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
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
        assert!(due_at(&pair(0, None), None, Duration::ZERO, NOW) <= NOW);
    }

    #[test]
    fn a_change_after_a_quiet_period_goes_at_once() {
        // The last push ended a minute ago; a change has just arrived.
        assert!(due_at(&pair(0, Some((60_005, 60_000))), None, Duration::ZERO, NOW) <= NOW);
        // Just past the window is quiet too.
        assert!(due_at(&pair(0, Some((WINDOW + 50, WINDOW))), None, Duration::ZERO, NOW) <= NOW);
    }

    #[test]
    fn changes_during_or_just_after_a_push_wait_for_the_end_of_the_window() {
        // The push ended just now (it ran for 3 s; the change arrived while it ran): the
        // following push waits one window after that end, whatever the push's length.
        assert_eq!(
            due_at(&pair(2_000, Some((3_000, 0))), None, Duration::ZERO, NOW),
            NOW + WINDOW
        );
        // A change 200 ms after a push ended joins the push at the same moment.
        assert_eq!(
            due_at(&pair(0, Some((250, 200))), None, Duration::ZERO, NOW),
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
                due_at(&state, None, Duration::ZERO, NOW)
            })
            .collect();
        assert_eq!(due, [ended + WINDOW; 3]);
    }

    #[test]
    fn an_explicit_delay_waits_after_the_first_change_even_when_quiet() {
        let quiet = pair(0, Some((60_005, 60_000)));
        assert_eq!(due_at(&quiet, Some(secs(5)), Duration::ZERO, NOW), NOW + 5_000);
        // Counted from the first pending change, not the newest.
        assert_eq!(
            due_at(&pair(4_000, None), Some(secs(5)), Duration::ZERO, NOW),
            NOW + 1_000
        );
    }

    #[test]
    fn an_explicit_delay_of_zero_pushes_as_soon_as_the_previous_push_ends() {
        // As before the default changed: no window after a push.
        assert!(due_at(&pair(500, Some((1_000, 0))), Some(Duration::ZERO), Duration::ZERO, NOW) <= NOW);
    }

    #[test]
    fn min_interval_spaces_the_starts_of_two_updates() {
        // Started 10 s ago, ended 5 s ago: quiet, but one update per minute at most.
        let state = pair(0, Some((10_000, 5_000)));
        assert_eq!(due_at(&state, None, secs(60), NOW), NOW + 50_000);
        assert_eq!(due_at(&state, Some(secs(1)), secs(60), NOW), NOW + 50_000);
        // A minimum interval already past holds nothing back.
        assert!(due_at(&state, None, secs(5), NOW) <= NOW);
    }

    #[test]
    fn a_backoff_holds_the_next_attempt_back() {
        let state = MirrorState {
            next_attempt_at_ms: Some(NOW + 30_000),
            ..pair(0, Some((60_005, 60_000)))
        };
        assert_eq!(due_at(&state, None, Duration::ZERO, NOW), NOW + 30_000);
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
        assert_eq!(due_at(&state, None, Duration::ZERO, NOW), NOW + WINDOW);
        assert_eq!(due_at(&state, Some(secs(2)), Duration::ZERO, NOW), NOW + 2_000);
        assert_eq!(due_at(&state, None, secs(10), NOW), NOW + 10_000);
    }

    #[test]
    fn absurd_durations_saturate() {
        let forever = Duration::from_secs(u64::MAX / 1000);
        let state = pair(0, Some((10, 5)));
        assert_eq!(due_at(&state, Some(forever), Duration::ZERO, NOW), u64::MAX);
        assert_eq!(due_at(&state, None, forever, NOW), u64::MAX);
        assert_eq!(due_at(&state, Some(Duration::MAX), Duration::MAX, NOW), u64::MAX);
    }
}
