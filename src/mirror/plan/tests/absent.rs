//! Refs absent locally: deleted on the mirror, or kept and why.

use super::*;

// ---- absent locally ----------------------------------------------------

#[test]
fn deleted_branch_merged_into_default_is_deleted() {
    let c = case().chain(&[1, 2]).head(2).both(MAIN, 2).remote(DEV, 1);
    assert_eq!(c.decision(DEV), delete(1));
}

#[test]
fn deleted_branch_with_unmerged_remote_value_is_kept() {
    let c = case()
        .chain(&[1, 2])
        .chain(&[1, 3])
        .head(2)
        .both(MAIN, 2)
        .remote(DEV, 3);
    assert_eq!(c.decision(DEV), kept(3, KeptReason::RemoteNotMerged));
    assert!(!c.plan().has_failures(), "kept is information, not a failure");
}

#[test]
fn deleted_branch_with_remote_value_unknown_locally_is_kept() {
    let c = case().chain(&[1]).head(1).both(MAIN, 1).remote(DEV, 9);
    assert_eq!(c.decision(DEV), kept(9, KeptReason::RemoteNotMerged));
}

#[test]
fn deleted_branch_with_unmerged_last_local_value_is_kept() {
    // GitLab work item 592713: work pushed to dev (1 → 3) and dev deleted
    // within one window; the remote still has the merged 1, but 3 was never
    // merged and would be lost.
    let c = case()
        .chain(&[1, 2])
        .chain(&[1, 3])
        .head(2)
        .both(MAIN, 2)
        .remote(DEV, 1)
        .pending_deleted(DEV, 3);
    assert_eq!(c.decision(DEV), kept(1, KeptReason::LastLocalNotMerged));
    assert_eq!(c.pending_only().decision(DEV), kept(1, KeptReason::LastLocalNotMerged));
}

#[test]
fn deleted_branch_with_last_local_value_unknown_is_kept() {
    let c = case().chain(&[1, 2]).head(2).remote(DEV, 1).pending_deleted(DEV, 9);
    assert_eq!(c.decision(DEV), kept(1, KeptReason::LastLocalNotMerged));
}

#[test]
fn deleted_branch_with_merged_last_local_value_is_deleted() {
    let c = case().chain(&[1, 2, 3]).head(3).remote(DEV, 1).pending_deleted(DEV, 2);
    assert_eq!(c.decision(DEV), delete(1));
}

#[test]
fn deleted_branch_whose_last_local_value_is_the_remote_value_is_deleted() {
    let c = case().chain(&[1, 2]).head(2).remote(DEV, 1).pending_deleted(DEV, 1);
    assert_eq!(c.pending_only().decision(DEV), delete(1));
}

#[test]
fn keep_divergent_refs_never_deletes() {
    let c = case()
        .keep_divergent()
        .chain(&[1, 2])
        .head(2)
        .remote(DEV, 1)
        .remote(TAG, 1);
    assert_eq!(c.decision(DEV), kept(1, KeptReason::KeepDivergentRefs));
    assert_eq!(c.decision(TAG), kept(1, KeptReason::KeepDivergentRefs));
}

#[test]
fn no_default_branch_means_no_deletions() {
    let c = case().chain(&[1]).remote(DEV, 1);
    assert_eq!(c.decision(DEV), kept(1, KeptReason::NoDefaultBranch));
}

#[test]
fn deleted_tags_follow_the_branch_rule() {
    let c = case()
        .chain(&[1, 2])
        .chain(&[1, 3])
        .head(2)
        .remote("refs/tags/merged", 1)
        .remote("refs/tags/unmerged", 3)
        .annotated_tag(10, 1)
        .remote("refs/tags/annotated", 10);
    assert_eq!(c.decision("refs/tags/merged"), delete(1));
    assert_eq!(c.decision("refs/tags/unmerged"), kept(3, KeptReason::RemoteNotMerged));
    assert_eq!(c.decision("refs/tags/annotated"), delete(10));
}

#[test]
fn prune_unmerged_deletes_what_would_be_kept_as_unmerged() {
    // Unmerged on the mirror, unknown locally, or unmerged work pushed and deleted in one
    // window: each kept by default, each deleted (with the observed value as lease) when asked.
    let unmerged = case()
        .chain(&[1, 2])
        .chain(&[1, 3])
        .head(2)
        .both(MAIN, 2)
        .remote(DEV, 3)
        .remote("refs/heads/unknown", 9)
        .remote("refs/heads/window", 1)
        .pending_deleted("refs/heads/window", 3)
        .remote("refs/tags/unmerged", 3);
    assert_eq!(unmerged.decision(DEV), kept(3, KeptReason::RemoteNotMerged));
    let pruned = unmerged.prune_unmerged();
    for (name, old) in [
        (DEV, 3),
        ("refs/heads/unknown", 9),
        ("refs/heads/window", 1),
        ("refs/tags/unmerged", 3),
    ] {
        assert_eq!(pruned.decision(name), delete(old), "{name}");
        assert_eq!(
            pruned.decision(name),
            Decision::Push(RefChange::Delete { old: id(old) }),
            "the lease is the observed value"
        );
    }
    assert_eq!(pruned.decision(MAIN), Decision::UpToDate, "present refs are untouched");
    assert_eq!(pruned.pending_only().decision("refs/heads/window"), delete(1));
}

#[test]
fn prune_unmerged_changes_exactly_the_unmerged_kept_refs_into_deletions() {
    // Every combination of: the mirror's value merged (1), unmerged (3) or unknown (9); no
    // hint, or the ref's last local value merged (2), unmerged (3) or unknown (9); a default
    // branch or none; keep-divergent or not; both reaches.
    for remote in [1, 3, 9] {
        for last_local in [None, Some(2), Some(3), Some(9)] {
            for head in [Some(2), None] {
                for keep_divergent in [false, true] {
                    for pending_only in [false, true] {
                        let mut c = case().chain(&[1, 2]).chain(&[1, 3]).remote(DEV, remote);
                        c = match last_local {
                            Some(last) => c.pending_deleted(DEV, last),
                            None => c.pending(DEV),
                        };
                        if let Some(head) = head {
                            c = c.head(head);
                        }
                        if keep_divergent {
                            c = c.keep_divergent();
                        }
                        if pending_only {
                            c = c.pending_only();
                        }
                        let without = c.decision(DEV);
                        let with = c.prune_unmerged().decision(DEV);
                        let what = format!("remote {remote} last {last_local:?} head {head:?} keep {keep_divergent}");
                        match without {
                            Decision::Kept {
                                why: KeptReason::RemoteNotMerged | KeptReason::LastLocalNotMerged,
                                ..
                            } => assert_eq!(with, delete(remote), "{what}"),
                            other => assert_eq!(with, other, "{what}"),
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn prune_unmerged_never_deletes_in_keep_divergent_mode_or_without_a_default_branch() {
    let c = case()
        .chain(&[1, 2])
        .chain(&[1, 3])
        .head(2)
        .remote(DEV, 3)
        .prune_unmerged();
    assert_eq!(c.keep_divergent().decision(DEV), kept(3, KeptReason::KeepDivergentRefs));
    let headless = case().chain(&[1, 3]).remote(DEV, 3).prune_unmerged();
    assert_eq!(headless.decision(DEV), kept(3, KeptReason::NoDefaultBranch));
}

#[test]
fn prune_unmerged_respects_the_filters() {
    let c = case()
        .chain(&[1, 2])
        .chain(&[1, 3])
        .head(2)
        .remote("refs/heads/other", 3)
        .branches(&["main", "dev"])
        .prune_unmerged();
    assert!(
        c.names().is_empty(),
        "a ref outside the filters is never touched: {:?}",
        c.names()
    );
}

#[test]
fn ref_absent_on_both_sides_is_absent() {
    // Created and deleted locally before it was ever mirrored.
    let c = case().chain(&[1]).head(1).pending_deleted(DEV, 1).pending_only();
    assert_eq!(c.decision(DEV), Decision::Absent);
    assert_eq!(c.plan().changes().count(), 0);
    assert!(!c.plan().has_failures());
}
