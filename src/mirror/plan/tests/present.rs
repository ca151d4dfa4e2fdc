//! Refs present locally: created, up to date, fast-forwarded, overwritten or divergent.

use super::*;

// ---- present locally ---------------------------------------------------

#[test]
fn ref_missing_on_remote_is_created() {
    let c = case().local(MAIN, 1).chain(&[1]);
    assert_eq!(c.decision(MAIN), create(1));
}

#[test]
fn same_object_on_both_sides_is_up_to_date() {
    let c = case().both(MAIN, 1).both(TAG, 2);
    assert_eq!(c.decision(MAIN), Decision::UpToDate);
    assert_eq!(c.decision(TAG), Decision::UpToDate);
    assert_eq!(c.plan().changes().count(), 0);
}

#[test]
fn fast_forward_is_an_unforced_update() {
    let c = case().local(MAIN, 2).remote(MAIN, 1).chain(&[1, 2]);
    assert_eq!(c.decision(MAIN), update(1, 2, false));
}

#[test]
fn by_default_a_remote_ahead_is_overwritten_forced() {
    let c = case().local(MAIN, 1).remote(MAIN, 2).chain(&[1, 2]);
    assert_eq!(c.decision(MAIN), update(2, 1, true));
}

#[test]
fn by_default_diverged_history_is_overwritten_forced() {
    let c = case().local(MAIN, 2).remote(MAIN, 3).chain(&[1, 2]).chain(&[1, 3]);
    assert_eq!(c.decision(MAIN), update(3, 2, true));
}

#[test]
fn by_default_a_remote_object_unknown_locally_is_overwritten_forced() {
    let c = case().local(MAIN, 1).remote(MAIN, 9).chain(&[1]);
    assert_eq!(c.decision(MAIN), update(9, 1, true));
}

#[test]
fn by_default_moved_tags_are_overwritten() {
    let c = case().local(TAG, 1).remote(TAG, 2).chain(&[1]).chain(&[2]);
    assert_eq!(c.decision(TAG), update(2, 1, true));
}

#[test]
fn keep_divergent_fast_forward_is_updated() {
    let c = case().keep_divergent().local(MAIN, 2).remote(MAIN, 1).chain(&[1, 2]);
    assert_eq!(c.decision(MAIN), update(1, 2, false));
}

#[test]
fn keep_divergent_remote_ahead_is_divergent() {
    let c = case().keep_divergent().local(MAIN, 1).remote(MAIN, 2).chain(&[1, 2]);
    assert_eq!(c.decision(MAIN), divergent(1, 2, Divergence::NotFastForward));
    assert!(c.plan().has_failures());
}

#[test]
fn keep_divergent_diverged_history_is_divergent() {
    let c = case()
        .keep_divergent()
        .local(MAIN, 2)
        .remote(MAIN, 3)
        .chain(&[1, 2])
        .chain(&[1, 3]);
    assert_eq!(c.decision(MAIN), divergent(2, 3, Divergence::NotFastForward));
}

#[test]
fn keep_divergent_remote_object_unknown_locally_is_divergent() {
    let c = case().keep_divergent().local(MAIN, 1).remote(MAIN, 9).chain(&[1]);
    assert_eq!(c.decision(MAIN), divergent(1, 9, Divergence::RemoteUnknown));
}

#[test]
fn keep_divergent_moved_tag_is_divergent_even_when_fast_forward() {
    let c = case().keep_divergent().local(TAG, 2).remote(TAG, 1).chain(&[1, 2]);
    assert_eq!(c.decision(TAG), divergent(2, 1, Divergence::TagMoved));
}

#[test]
fn annotated_tags_are_compared_by_tag_object_id() {
    // Two different tag objects (10, 11) for the same commit 1.
    let same_commit = || case().chain(&[1]).annotated_tag(10, 1).annotated_tag(11, 1);

    let same_object = same_commit().both(TAG, 10);
    assert_eq!(same_object.decision(TAG), Decision::UpToDate);

    let overwrite = same_commit().local(TAG, 11).remote(TAG, 10);
    assert_eq!(overwrite.decision(TAG), update(10, 11, false));

    let keep = same_commit().keep_divergent().local(TAG, 11).remote(TAG, 10);
    assert_eq!(keep.decision(TAG), divergent(11, 10, Divergence::TagMoved));
}

#[test]
fn one_divergent_ref_does_not_block_others() {
    // gitaly#2451: one bad ref used to fail the whole mirror push.
    let c = case()
        .keep_divergent()
        .chain(&[1, 2, 3])
        .local(MAIN, 1)
        .remote(MAIN, 2)
        .local(DEV, 3)
        .remote(DEV, 1)
        .local("refs/heads/new", 2)
        .local(TAG, 3);
    let plan = c.plan();
    assert!(plan.has_failures());
    assert_eq!(
        plan.changes().collect::<Vec<_>>(),
        vec![
            (
                DEV,
                &RefChange::Update {
                    old: id(1),
                    new: id(3),
                    forced: false
                }
            ),
            ("refs/heads/new", &RefChange::Create { new: id(2) }),
            (TAG, &RefChange::Create { new: id(3) }),
        ]
    );
}

#[test]
fn changes_carry_the_observed_remote_value() {
    // gitaly#3505: every change is pushed with a lease on what was observed.
    let c = case()
        .chain(&[1, 2, 3])
        .head(3)
        .local(MAIN, 3)
        .remote(MAIN, 2)
        .remote(DEV, 1)
        .local("refs/heads/new", 3);
    let plan = c.plan();
    let leases: Vec<_> = plan
        .changes()
        .map(|(name, change)| (name, change.expected_remote().cloned(), change.new_value().cloned()))
        .collect();
    assert_eq!(
        leases,
        vec![
            (DEV, Some(id(1)), None),
            (MAIN, Some(id(2)), Some(id(3))),
            ("refs/heads/new", None, Some(id(3))),
        ]
    );
}
