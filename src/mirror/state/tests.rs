//! Unit tests of the state directory: records, mirror states, known refs, notices owed.

use super::known_refs::{decode_known_refs, encode_known_refs};
use super::*;
use crate::git::FailureClass;
use crate::util::oid::{Oid, RefUpdate};

fn oid(c: char) -> Oid {
    Oid::parse(&c.to_string().repeat(40)).unwrap()
}

#[test]
fn deletions_remember_the_last_local_value() {
    let mut record = RepoRecord::default();
    let update = |old, new| RefUpdate {
        name: "refs/heads/x".into(),
        old,
        new,
    };
    record.record(&[update(oid('0'), oid('a'))], 5);
    assert_eq!(record.pending["refs/heads/x"].last_local, None);
    record.record(&[update(oid('a'), oid('b')), update(oid('b'), oid('0'))], 9);
    assert_eq!(record.pending["refs/heads/x"].last_local, Some(oid('b')));
    assert_eq!(record.pending["refs/heads/x"].seq, 3);
    assert_eq!(record.pending_since_ms, Some(5));
}

#[test]
fn a_new_report_cancels_backoff() {
    let mut state = MirrorState::new(Path::new("/r"), "m");
    state.next_attempt_at_ms = Some(u64::MAX);
    state.add_pending("refs/heads/a", &PendingRef::default(), 7);
    assert_eq!(state.next_attempt_at_ms, None);
    assert_eq!(state.pending_since_ms, Some(7));
    assert!(state.has_work());
}

#[test]
fn a_new_report_does_not_cancel_the_wait_a_rate_limited_mirror_asked_for() {
    let mut state = MirrorState::new(Path::new("/r"), "m");
    state.failure_class = Some(FailureClass::RateLimited);
    state.next_attempt_at_ms = Some(1_000);
    state.add_pending("refs/heads/a", &PendingRef::default(), 7);
    state.request_full_sync(8);
    assert_eq!(state.next_attempt_at_ms, Some(1_000));
    state.failure_class = Some(FailureClass::Permanent);
    state.add_pending("refs/heads/a", &PendingRef::default(), 9);
    assert_eq!(
        state.next_attempt_at_ms, None,
        "a permanent failure is retried at every push"
    );
}

#[test]
fn states_round_trip_and_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path());
    let repo = Path::new("/srv/git/app.git");
    store.register(repo).unwrap();
    store
        .change_mirror_state(repo, "github", |s| s.request_full_sync(1))
        .unwrap();
    assert_eq!(store.known_repos().unwrap(), vec![repo.to_path_buf()]);
    assert_eq!(store.mirror_names(repo).unwrap(), vec!["github".to_string()]);
    assert!(store.load_mirror(repo, "github").unwrap().full_sync_seq.is_some());
    store.remove_mirror(repo, "github").unwrap();
    assert!(store.mirror_names(repo).unwrap().is_empty());
}

#[test]
fn known_refs_round_trip_and_corruption_is_detected() {
    let mut refs = KnownRefs::new();
    refs.insert(
        "refs/heads/a".into(),
        KnownRef {
            local: Some(oid('1')),
            remote: Some(oid('2')),
        },
    );
    refs.insert(
        "refs/heads/kept".into(),
        KnownRef {
            local: None,
            remote: Some(oid('3')),
        },
    );
    refs.insert(
        "refs/heads/new".into(),
        KnownRef {
            local: Some(oid('4')),
            remote: None,
        },
    );
    let identity = MirrorIdentity {
        url: "https://h/a.git".to_string(),
        scope: "0123456789abcdef".to_string(),
    };
    assert_eq!(
        decode_known_refs(&encode_known_refs(&identity, &refs)),
        Some((Some(identity.clone()), refs.clone()))
    );
    let text = encode_known_refs(&identity, &refs);
    let before_identities = text.splitn(3, '\n').nth(2).unwrap();
    assert_eq!(decode_known_refs(before_identities), Some((None, refs.clone())));
    assert_eq!(decode_known_refs("zzz - refs/heads/a\n"), None);
    let of = |identity: Option<MirrorIdentity>| KnownRefsOf {
        identity,
        refs: refs.clone(),
    };
    assert_eq!(of(Some(identity.clone())).for_mirror(&identity), refs);
    let elsewhere = MirrorIdentity {
        url: "https://h/other.git".into(),
        ..identity.clone()
    };
    assert!(of(Some(elsewhere)).for_mirror(&identity).is_empty());
    let refiltered = MirrorIdentity {
        scope: "fedcba9876543210".into(),
        ..identity.clone()
    };
    assert!(of(Some(refiltered)).for_mirror(&identity).is_empty());
    assert!(
        of(None).for_mirror(&identity).is_empty(),
        "refs of an unknown mirror are not assumed"
    );
    assert_eq!(known_local_values(&refs).len(), 2);
    assert_eq!(known_remote_values(&refs).len(), 2);
}

#[test]
fn a_save_queues_what_its_transition_owes_before_recording_it_as_told() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path()).telling(true);
    let repo = Path::new("/srv/git/app.git");
    let fail = |state: &mut MirrorState| {
        state.update_status = UpdateStatus::Failed;
        state.consecutive_failures += 1;
        state.last_error = Some("fatal: gone\nmore".into());
    };
    // The outbox cannot be written: nothing is marked as told, the pusher is still warned.
    std::fs::create_dir_all(dir.path().join("notify")).unwrap();
    std::fs::write(dir.path().join("notify/outbox"), "not a directory").unwrap();
    store.change_mirror_state(repo, "gh", fail).unwrap();
    assert_eq!(store.load_mirror(repo, "gh").unwrap().incident.told_failed_at_ms, None);
    let failing = store.failing_mirrors(repo);
    assert_eq!((failing.len(), failing[0].error.as_str()), (1, "fatal: gone"));
    // Once it can, the next save queues the notice and records it as told.
    std::fs::remove_file(dir.path().join("notify/outbox")).unwrap();
    store.change_mirror_state(repo, "gh", fail).unwrap();
    assert!(
        store
            .load_mirror(repo, "gh")
            .unwrap()
            .incident
            .told_failed_at_ms
            .is_some()
    );
    assert_eq!(store.outbox().list().unwrap().len(), 1);
    store.change_mirror_state(repo, "gh", fail).unwrap();
    assert_eq!(store.outbox().len(), 1, "once per incident");
    store
        .change_mirror_state(repo, "gh", |state| state.update_status = UpdateStatus::Finished)
        .unwrap();
    let queued = store.outbox().list().unwrap();
    assert_eq!(queued[1].notice.event, crate::config::notify::Event::Recovered);
    assert!(store.failing_mirrors(repo).is_empty());
    assert!(!store.repo_dir(repo).join(failing::FAILING_FILE).exists());
}

#[test]
fn a_store_that_tells_nobody_queues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path());
    let repo = Path::new("/srv/git/app.git");
    store
        .change_mirror_state(repo, "gh", |state| state.update_status = UpdateStatus::Failed)
        .unwrap();
    store.note_config_error(repo, Some("broken")).unwrap();
    assert!(store.outbox().is_empty());
    assert_eq!(store.failing_mirrors(repo).len(), 1);
    store.remove_mirror(repo, "gh").unwrap();
    assert!(store.failing_mirrors(repo).is_empty());
}

#[test]
fn repo_keys_differ_for_different_paths() {
    assert_ne!(repo_key(Path::new("/a/app.git")), repo_key(Path::new("/b/app.git")));
    assert!(repo_key(Path::new("/a/app.git")).starts_with("app.git-"));
}
