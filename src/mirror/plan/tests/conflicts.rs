//! Directory/file conflicts between the refs a push creates and those that stay.

use super::*;

// ---- directory/file conflicts ------------------------------------------

#[test]
fn deleting_a_b_and_creating_a_lands_in_one_push() {
    let c = case()
        .chain(&[1, 2])
        .head(2)
        .remote("refs/heads/a/b", 1)
        .local("refs/heads/a", 2);
    assert_eq!(c.decision("refs/heads/a/b"), delete(1));
    assert_eq!(c.decision("refs/heads/a"), create(2));
    assert!(!c.plan().has_failures());
}

#[test]
fn deleting_a_and_creating_a_b_lands_in_one_push() {
    let c = case()
        .chain(&[1, 2])
        .head(2)
        .remote("refs/heads/a", 1)
        .local("refs/heads/a/b", 2);
    assert_eq!(c.decision("refs/heads/a"), delete(1));
    assert_eq!(c.decision("refs/heads/a/b"), create(2));
}

#[test]
fn creating_a_is_blocked_by_a_kept_a_b_and_fails_alone() {
    let c = case()
        .chain(&[1, 2])
        .chain(&[1, 3])
        .head(2)
        .both(MAIN, 2)
        .remote("refs/heads/a/b", 3)
        .local("refs/heads/a", 2)
        .local("refs/heads/other", 1);
    assert_eq!(c.decision("refs/heads/a/b"), kept(3, KeptReason::RemoteNotMerged));
    assert_eq!(c.decision("refs/heads/a"), blocked("refs/heads/a/b"));
    assert_eq!(c.decision("refs/heads/other"), create(1));
    assert!(c.plan().has_failures());
}

#[test]
fn creating_a_b_is_blocked_by_a_kept_a() {
    let c = case()
        .keep_divergent()
        .chain(&[1, 2])
        .head(2)
        .remote("refs/heads/a", 1)
        .local("refs/heads/a/b", 2);
    assert_eq!(c.decision("refs/heads/a"), kept(1, KeptReason::KeepDivergentRefs));
    assert_eq!(c.decision("refs/heads/a/b"), blocked("refs/heads/a"));
}

#[test]
fn creation_is_blocked_by_an_out_of_scope_remote_ref() {
    let c = case()
        .branches(&["a"])
        .chain(&[1, 2])
        .head(2)
        .remote("refs/heads/a/b", 1)
        .local("refs/heads/a", 2);
    assert_eq!(c.names(), vec!["refs/heads/a"]);
    assert_eq!(c.decision("refs/heads/a"), blocked("refs/heads/a/b"));
}

#[test]
fn creation_is_blocked_by_a_remote_symbolic_ref() {
    let c = case()
        .chain(&[1])
        .remote_symref("refs/heads/a")
        .local("refs/heads/a/b", 1);
    assert_eq!(c.decision("refs/heads/a/b"), blocked("refs/heads/a"));
}

#[test]
fn pending_only_creation_is_blocked_by_a_remote_ref_outside_the_pending_set() {
    let c = case()
        .pending_only()
        .chain(&[1, 2])
        .head(2)
        .remote("refs/heads/a/b", 1)
        .local("refs/heads/a", 2)
        .pending("refs/heads/a");
    assert_eq!(c.names(), vec!["refs/heads/a"]);
    assert_eq!(c.decision("refs/heads/a"), blocked("refs/heads/a/b"));
}

#[test]
fn blocker_reported_is_the_smallest_conflicting_name() {
    let inside = case()
        .keep_divergent()
        .chain(&[1])
        .remote("refs/heads/a/x", 1)
        .remote("refs/heads/a/b/c", 1)
        .local("refs/heads/a", 1);
    assert_eq!(inside.decision("refs/heads/a"), blocked("refs/heads/a/b/c"));

    let both_ways = case()
        .keep_divergent()
        .chain(&[1])
        .remote("refs/heads/x", 1)
        .remote("refs/heads/x/y/z/w", 1)
        .remote("refs/heads/x/y", 1)
        .local("refs/heads/x/y/z", 1);
    assert_eq!(both_ways.decision("refs/heads/x/y/z"), blocked("refs/heads/x"));
}

#[test]
fn names_sharing_a_prefix_without_a_slash_do_not_conflict() {
    let c = case()
        .keep_divergent()
        .chain(&[1])
        .remote("refs/heads/ab", 1)
        .remote("refs/heads/a-b", 1)
        .remote("refs/heads/a.b/c", 1)
        .remote("refs/heads/a0", 1)
        .local("refs/heads/a", 1);
    assert_eq!(c.decision("refs/heads/a"), create(1));
}

#[test]
fn two_conflicting_creations_block_each_other() {
    // Cannot happen in one git repository, but the plan must not push both.
    let c = case().chain(&[1]).local("refs/heads/a", 1).local("refs/heads/a/b", 1);
    assert_eq!(c.decision("refs/heads/a"), blocked("refs/heads/a/b"));
    assert_eq!(c.decision("refs/heads/a/b"), blocked("refs/heads/a"));
}

#[test]
fn updates_are_never_blocked() {
    let c = case()
        .keep_divergent()
        .chain(&[1, 2])
        .local("refs/heads/a", 2)
        .remote("refs/heads/a", 1)
        .remote("refs/heads/a/b", 1);
    assert_eq!(c.decision("refs/heads/a"), update(1, 2, false));
}
