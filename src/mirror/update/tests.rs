//! Unit tests of one mirror update: the retry schedule and how an outcome is recorded.

use super::*;
use crate::config::RetryPolicy;
use crate::mirror::plan::Divergence;
use crate::mirror::state::PendingRef;
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
