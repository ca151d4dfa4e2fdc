//! Which refs a plan considers: its reach, the rules' filters, symbolic refs.

use super::*;

// ---- reach ---------------------------------------------------------------

#[test]
fn pending_only_reach_ignores_unrelated_differing_refs() {
    let c = case()
        .pending_only()
        .chain(&[1, 2, 3])
        .head(3)
        .local(MAIN, 3)
        .remote(MAIN, 2)
        .local(DEV, 2)
        .remote(DEV, 1)
        .remote("refs/heads/gone", 1)
        .local("refs/heads/unpushed", 1)
        .pending(DEV);
    assert_eq!(c.names(), vec![DEV]);
    assert_eq!(c.decision(DEV), update(1, 2, false));
}

#[test]
fn everything_reach_covers_both_sides_and_deletes_remote_only_merged_refs() {
    let c = case()
        .chain(&[1, 2, 3])
        .head(3)
        .local(MAIN, 3)
        .remote(MAIN, 2)
        .remote("refs/heads/gone", 1)
        .local("refs/heads/unpushed", 1);
    assert_eq!(c.decision(MAIN), update(2, 3, false));
    assert_eq!(c.decision("refs/heads/gone"), delete(1));
    assert_eq!(c.decision("refs/heads/unpushed"), create(1));
}

#[test]
fn everything_reach_includes_pending_names_and_their_hints() {
    let c = case()
        .chain(&[1, 2])
        .chain(&[1, 3])
        .head(2)
        .remote(DEV, 1)
        .pending_deleted(DEV, 3)
        .pending_deleted("refs/heads/short-lived", 3);
    assert_eq!(c.decision(DEV), kept(1, KeptReason::LastLocalNotMerged));
    assert_eq!(c.decision("refs/heads/short-lived"), Decision::Absent);
}

#[test]
fn plan_is_sorted_and_names_each_ref_once() {
    let c = case()
        .chain(&[1, 2])
        .head(2)
        .local("refs/tags/a", 1)
        .both("refs/heads/z", 2)
        .pending("refs/heads/z")
        .local("refs/heads/b", 1)
        .remote("refs/heads/a", 1)
        .pending("refs/heads/a");
    assert_eq!(
        c.names(),
        vec!["refs/heads/a", "refs/heads/b", "refs/heads/z", "refs/tags/a"]
    );
    assert_eq!(c.plan(), c.plan(), "same input, same plan");
}

// ---- scope in the plan -------------------------------------------------

#[test]
fn out_of_scope_refs_are_never_touched_even_when_differing_or_deletable() {
    let c = case()
        .branches(&["main"])
        .chain(&[1, 2, 3])
        .head(3)
        .local(MAIN, 3)
        .remote(MAIN, 2)
        .local(DEV, 3)
        .remote(DEV, 1)
        .remote("refs/heads/merged-elsewhere", 1)
        .local("refs/heads/local-only", 1)
        .remote("refs/merge-requests/1/head", 1)
        .remote("refs/pull/7/head", 2)
        .local("refs/notes/commits", 2)
        .remote("refs/notes/commits", 1)
        .pending(DEV)
        .pending("refs/notes/commits");
    assert_eq!(c.names(), vec![MAIN]);
    assert_eq!(c.pending_only().names(), Vec::<String>::new());
}

#[test]
fn protected_only_with_no_protected_branches_selects_nothing_and_warns() {
    // gitlab#221215: GitLab mirrors every branch in this case.
    let c = case()
        .protected_only(&[])
        .chain(&[1, 2])
        .head(2)
        .local(MAIN, 2)
        .remote(MAIN, 1)
        .remote(DEV, 1)
        .local(TAG, 1);
    let plan = c.plan();
    assert_eq!(c.names(), vec![TAG]);
    assert_eq!(plan.warnings, vec![PlanWarning::NoProtectedBranches]);

    let nothing_at_all = case().protected_only(&[]).pending_only();
    assert_eq!(
        nothing_at_all.plan().warnings,
        vec![PlanWarning::NoProtectedBranches],
        "warned once even with no candidate refs"
    );
}

#[test]
fn protected_only_with_protected_branches_mirrors_just_those_without_warning() {
    let c = case()
        .protected_only(&["main"])
        .chain(&[1])
        .local(MAIN, 1)
        .local(DEV, 1);
    let plan = c.plan();
    assert_eq!(c.names(), vec![MAIN]);
    assert!(plan.warnings.is_empty());
    assert!(case().plan().warnings.is_empty());
}

#[test]
fn tags_can_be_switched_off() {
    // gitlab#24873: GitLab cannot exclude tags from a mirror.
    let c = case()
        .tags(TagSelection::None)
        .chain(&[1, 2])
        .head(2)
        .both(MAIN, 2)
        .local("refs/tags/new", 1)
        .local("refs/tags/moved", 2)
        .remote("refs/tags/moved", 1)
        .remote("refs/tags/deletable", 1);
    assert_eq!(c.names(), vec![MAIN]);
}

#[test]
fn tag_patterns_select_which_tags_are_mirrored() {
    let c = case()
        .tags(TagSelection::Matching(strings(&["v*"])))
        .chain(&[1])
        .local("refs/tags/v1", 1)
        .local("refs/tags/nightly", 1);
    assert_eq!(c.names(), vec!["refs/tags/v1"]);
}

#[test]
fn extra_namespaces_are_mirrored_when_configured() {
    let c = case()
        .extra_refs(&["refs/notes/*"])
        .chain(&[1, 2])
        .head(2)
        .local("refs/notes/commits", 2)
        .remote("refs/notes/commits", 1)
        .remote("refs/notes/review", 1)
        .local("refs/merge-requests/1/head", 1);
    assert_eq!(c.decision("refs/notes/commits"), update(1, 2, false));
    assert_eq!(c.decision("refs/notes/review"), delete(1));
    assert_eq!(c.names(), vec!["refs/notes/commits", "refs/notes/review"]);
}

#[test]
fn head_is_never_in_the_plan() {
    let c = case()
        .extra_refs(&["*"])
        .chain(&[1, 2])
        .head(2)
        .local("HEAD", 2)
        .remote("HEAD", 1)
        .pending("HEAD");
    assert_eq!(c.names(), Vec::<String>::new());
}

// ---- symbolic refs -----------------------------------------------------

#[test]
fn local_symbolic_refs_are_never_pushed_and_their_remote_counterpart_never_deleted() {
    let c = case()
        .chain(&[1, 2])
        .head(2)
        .local_symref("refs/heads/alias")
        .remote("refs/heads/alias", 1)
        .pending("refs/heads/alias");
    assert_eq!(c.names(), Vec::<String>::new());
    assert_eq!(c.pending_only().names(), Vec::<String>::new());
}

#[test]
fn remote_symbolic_refs_are_never_updated_or_deleted() {
    let c = case()
        .chain(&[1, 2])
        .head(2)
        .local("refs/heads/alias", 2)
        .remote_symref("refs/heads/alias")
        .remote_symref("refs/heads/orphan-alias")
        .pending("refs/heads/orphan-alias")
        .local(MAIN, 2);
    assert_eq!(c.names(), vec![MAIN]);
}
