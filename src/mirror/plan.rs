//! The pure mirror planner: what one mirror update does to each ref (README: "Mirror semantics"), with no I/O.
//!
//! The worker gathers facts (local refs, the refs observed on the mirror, the
//! repository's default branch, spool hints) and asks [`plan`] for a
//! [`PushPlan`]. Everything about the rules lives here and is tested here.

use crate::config::rules::MirrorRules;
use crate::util::oid::{Oid, RefChange};
use std::collections::{BTreeMap, BTreeSet};

/// What the spool knows about a pending ref beyond its current local value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingHint {
    /// The value the ref had locally just before it was deleted (the hook's
    /// old oid of the newest deletion), when the spool saw the deletion.
    pub last_local: Option<Oid>,
}

/// Which refs to consider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Full reconciliation (`sync`, first push to a new mirror): every in-scope
    /// ref present locally or on the remote, plus the pending ones.
    Everything,
    /// Incremental: only the refs named in `pending`.
    PendingOnly,
}

/// Answers reachability questions from the local object database.
pub trait Ancestry {
    /// `Some(true)` when `ancestor` is reachable from `descendant` (both peeled
    /// to commits; an object is its own ancestor), `Some(false)` when it is not,
    /// `None` when either object is unknown locally or is not a commit-ish.
    fn is_ancestor(&self, ancestor: &Oid, descendant: &Oid) -> Option<bool>;
}

/// Everything the planner needs, gathered by the caller.
#[derive(Clone, Copy, Debug)]
pub struct PlanInput<'a> {
    /// Local direct (non-symbolic) refs, full names → object id (annotated tags by tag object id).
    pub local: &'a BTreeMap<String, Oid>,
    /// Local symbolic refs (never pushed).
    pub local_symbolic: &'a BTreeSet<String>,
    /// Direct refs observed on the mirror (`ls-remote`), full names → object id.
    pub remote: &'a BTreeMap<String, Oid>,
    /// Symbolic refs observed on the mirror (never updated or deleted).
    pub remote_symbolic: &'a BTreeSet<String>,
    /// The commit the local default branch (HEAD) points at, if any.
    pub default_branch: Option<&'a Oid>,
    /// Refs the spool reported since the last successful update, with hints.
    pub pending: &'a BTreeMap<String, PendingHint>,
    pub reach: Reach,
    pub rules: &'a MirrorRules,
}

/// Why a ref present on both sides is left alone in keep-divergent mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// The remote commit is not an ancestor of the local one (remote ahead, or both moved).
    NotFastForward,
    /// The remote object is unknown locally.
    RemoteUnknown,
    /// A tag points elsewhere on the remote; tags never move in keep-divergent mode.
    TagMoved,
}

/// Why a ref absent locally is not deleted on the remote (the last two: unless `prune_unmerged`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeptReason {
    /// `keep_divergent_refs = true` never deletes.
    KeepDivergentRefs,
    /// The repository has no default branch to judge reachability by.
    NoDefaultBranch,
    /// The remote's object is not reachable from the local default branch (or unknown locally).
    RemoteNotMerged,
    /// The ref's last local value (from the spool) is not reachable from the default branch.
    LastLocalNotMerged,
}

/// The planner's verdict for one in-scope ref.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Push this change.
    Push(RefChange),
    /// Both sides already agree.
    UpToDate,
    /// Neither side has the ref (created and deleted before it was ever mirrored).
    Absent,
    /// Keep-divergent mode: the remote ref differs and is left alone. A failure.
    Divergent { local: Oid, remote: Oid, why: Divergence },
    /// Deleted locally but kept on the remote. Information, not a failure.
    Kept { remote: Oid, why: KeptReason },
    /// Would be created, but a remote ref that stays (e.g. a kept `refs/heads/a/b`)
    /// occupies its directory/file path. A failure.
    Blocked { by: String },
}

impl Decision {
    /// Whether this verdict makes the mirror update fail.
    pub fn is_failure(&self) -> bool {
        matches!(self, Decision::Divergent { .. } | Decision::Blocked { .. })
    }
}

/// One ref's line in the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefPlan {
    pub name: String,
    pub decision: Decision,
}

/// Something worth telling the admin that is not about one ref.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanWarning {
    /// `only_protected_branches = true` with no `protected_branches`: no branch is mirrored.
    NoProtectedBranches,
}

/// The planner's answer: one entry per in-scope ref considered, sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushPlan {
    pub refs: Vec<RefPlan>,
    pub warnings: Vec<PlanWarning>,
}

impl PushPlan {
    /// The changes to push, in ref-name order.
    pub fn changes(&self) -> impl Iterator<Item = (&str, &RefChange)> {
        self.refs.iter().filter_map(|r| match &r.decision {
            Decision::Push(change) => Some((r.name.as_str(), change)),
            _ => None,
        })
    }

    /// Whether any ref's verdict is a failure (divergent or blocked).
    pub fn has_failures(&self) -> bool {
        self.refs.iter().any(|r| r.decision.is_failure())
    }
}

/// Plans one mirror update. Pure: same input, same plan.
pub fn plan(input: &PlanInput<'_>, ancestry: &dyn Ancestry) -> PushPlan {
    let mut warnings = Vec::new();
    if input.rules.protected_only.as_ref().is_some_and(Vec::is_empty) {
        warnings.push(PlanWarning::NoProtectedBranches);
    }

    let candidates: BTreeSet<&str> = match input.reach {
        Reach::Everything => input
            .local
            .keys()
            .chain(input.remote.keys())
            .chain(input.pending.keys())
            .map(String::as_str)
            .collect(),
        Reach::PendingOnly => input.pending.keys().map(String::as_str).collect(),
    };

    let mut refs: Vec<RefPlan> = candidates
        .into_iter()
        .filter(|name| {
            input.rules.in_scope(name)
                && !input.local_symbolic.contains(*name)
                && !input.remote_symbolic.contains(*name)
        })
        .map(|name| RefPlan {
            name: name.to_owned(),
            decision: decide(input, ancestry, name),
        })
        .collect();

    block_directory_file_conflicts(input, &mut refs);
    PushPlan { refs, warnings }
}

fn decide(input: &PlanInput<'_>, ancestry: &dyn Ancestry, name: &str) -> Decision {
    match (input.local.get(name), input.remote.get(name)) {
        (Some(local), None) => Decision::Push(RefChange::Create { new: local.clone() }),
        (Some(local), Some(remote)) if local == remote => Decision::UpToDate,
        (Some(local), Some(remote)) => decide_update(input.rules, ancestry, name, local, remote),
        (None, Some(remote)) => decide_deletion(input, ancestry, name, remote),
        (None, None) => Decision::Absent,
    }
}

/// Present on both sides with different values (README: "Mirror semantics").
fn decide_update(rules: &MirrorRules, ancestry: &dyn Ancestry, name: &str, local: &Oid, remote: &Oid) -> Decision {
    let update = |forced| {
        Decision::Push(RefChange::Update {
            old: remote.clone(),
            new: local.clone(),
            forced,
        })
    };
    if !rules.keep_divergent_refs {
        return update(ancestry.is_ancestor(remote, local) != Some(true));
    }
    let why = if name.starts_with("refs/tags/") {
        Divergence::TagMoved
    } else {
        match ancestry.is_ancestor(remote, local) {
            Some(true) => return update(false),
            Some(false) => Divergence::NotFastForward,
            None => Divergence::RemoteUnknown,
        }
    };
    Decision::Divergent {
        local: local.clone(),
        remote: remote.clone(),
        why,
    }
}

/// Absent locally, present on the remote: deleted upstream (README: "Mirror semantics").
fn decide_deletion(input: &PlanInput<'_>, ancestry: &dyn Ancestry, name: &str, remote: &Oid) -> Decision {
    let kept = |why| Decision::Kept {
        remote: remote.clone(),
        why,
    };
    if input.rules.keep_divergent_refs {
        return kept(KeptReason::KeepDivergentRefs);
    }
    let Some(head) = input.default_branch else {
        return kept(KeptReason::NoDefaultBranch);
    };
    if input.rules.prune_unmerged {
        // The admin asked for an exact mirror: merged or not, it goes (with a lease).
        return Decision::Push(RefChange::Delete { old: remote.clone() });
    }
    if ancestry.is_ancestor(remote, head) != Some(true) {
        return kept(KeptReason::RemoteNotMerged);
    }
    // The remote may lag behind: work pushed and deleted locally inside one
    // window never reached it, and must be merged too (gitlab work item 592713).
    let last_local_unmerged = input
        .pending
        .get(name)
        .and_then(|hint| hint.last_local.as_ref())
        .is_some_and(|last| last != remote && ancestry.is_ancestor(last, head) != Some(true));
    if last_local_unmerged {
        return kept(KeptReason::LastLocalNotMerged);
    }
    Decision::Push(RefChange::Delete { old: remote.clone() })
}

/// Turns creations that collide with a ref staying on the remote (`a` vs `a/b`)
/// into [`Decision::Blocked`] (README: "Mirror semantics"). Deletions in the same plan do not
/// block: git applies them first within one push.
fn block_directory_file_conflicts(input: &PlanInput<'_>, refs: &mut [RefPlan]) {
    let is_create = |r: &RefPlan| matches!(r.decision, Decision::Push(RefChange::Create { .. }));
    if !refs.iter().any(is_create) {
        return;
    }
    let deleted: BTreeSet<&str> = refs
        .iter()
        .filter(|r| matches!(r.decision, Decision::Push(RefChange::Delete { .. })))
        .map(|r| r.name.as_str())
        .collect();
    let after_push: BTreeSet<&str> = input
        .remote
        .keys()
        .chain(input.remote_symbolic)
        .map(String::as_str)
        .filter(|name| !deleted.contains(name))
        .chain(refs.iter().filter(|r| is_create(r)).map(|r| r.name.as_str()))
        .collect();
    let blocked: Vec<(usize, String)> = refs
        .iter()
        .enumerate()
        .filter(|(_, r)| is_create(r))
        .filter_map(|(i, r)| path_conflict(&after_push, &r.name).map(|by| (i, by)))
        .collect();
    for (i, by) in blocked {
        refs[i].decision = Decision::Blocked { by };
    }
}

/// The smallest name in `names` that is a directory of `name` or lies inside
/// `name/`. Directories of `name` are its prefixes, so they sort before it and
/// the shortest comes first; names inside `name/` sort after it.
fn path_conflict(names: &BTreeSet<&str>, name: &str) -> Option<String> {
    let directory = name
        .match_indices('/')
        .map(|(end, _)| &name[..end])
        .find(|dir| names.contains(dir));
    if let Some(dir) = directory {
        return Some(dir.to_owned());
    }
    let inside = format!("{name}/");
    names
        .range::<str, _>((std::ops::Bound::Included(inside.as_str()), std::ops::Bound::Unbounded))
        .next()
        .filter(|found| found.starts_with(&inside))
        .map(|found| (*found).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rules::TagSelection;

    // ---- test double and builders ----------------------------------------

    /// Object id number `n` (never 0: that is git's null id).
    fn id(n: u32) -> Oid {
        assert_ne!(n, 0, "0 is the null id");
        Oid::parse(&format!("{n:040x}")).expect("valid hex")
    }

    /// A table of ancestry facts: the pure [`Ancestry`] interface, filled by hand.
    /// An object is its own ancestor; annotated tags peel to their commit.
    #[derive(Default)]
    struct History {
        known: BTreeSet<Oid>,
        /// (ancestor, descendant), commits only.
        pairs: BTreeSet<(Oid, Oid)>,
        /// Tag object → the commit it peels to.
        peel: BTreeMap<Oid, Oid>,
    }

    impl Ancestry for History {
        fn is_ancestor(&self, ancestor: &Oid, descendant: &Oid) -> Option<bool> {
            let peel = |oid: &Oid| self.peel.get(oid).unwrap_or(oid).clone();
            let (a, d) = (peel(ancestor), peel(descendant));
            if !self.known.contains(&a) || !self.known.contains(&d) {
                return None;
            }
            Some(a == d || self.pairs.contains(&(a, d)))
        }
    }

    /// One planner scenario, written as facts about both sides.
    struct Case {
        local: BTreeMap<String, Oid>,
        local_symbolic: BTreeSet<String>,
        remote: BTreeMap<String, Oid>,
        remote_symbolic: BTreeSet<String>,
        head: Option<Oid>,
        pending: BTreeMap<String, PendingHint>,
        reach: Reach,
        rules: MirrorRules,
        history: History,
    }

    fn case() -> Case {
        Case {
            local: BTreeMap::new(),
            local_symbolic: BTreeSet::new(),
            remote: BTreeMap::new(),
            remote_symbolic: BTreeSet::new(),
            head: None,
            pending: BTreeMap::new(),
            reach: Reach::Everything,
            rules: MirrorRules::default(),
            history: History::default(),
        }
    }

    impl Case {
        fn local(mut self, name: &str, n: u32) -> Self {
            self.local.insert(name.to_owned(), id(n));
            self
        }
        fn remote(mut self, name: &str, n: u32) -> Self {
            self.remote.insert(name.to_owned(), id(n));
            self
        }
        fn both(self, name: &str, n: u32) -> Self {
            self.local(name, n).remote(name, n)
        }
        fn local_symref(mut self, name: &str) -> Self {
            self.local_symbolic.insert(name.to_owned());
            self
        }
        fn remote_symref(mut self, name: &str) -> Self {
            self.remote_symbolic.insert(name.to_owned());
            self
        }
        /// The local default branch points at commit `n`.
        fn head(mut self, n: u32) -> Self {
            self.head = Some(id(n));
            self
        }
        /// The spool reported `name` (an update or creation).
        fn pending(mut self, name: &str) -> Self {
            self.pending.insert(name.to_owned(), PendingHint::default());
            self
        }
        /// The spool saw `name` deleted locally while it held `last_local`.
        fn pending_deleted(mut self, name: &str, last_local: u32) -> Self {
            let hint = PendingHint {
                last_local: Some(id(last_local)),
            };
            self.pending.insert(name.to_owned(), hint);
            self
        }
        fn pending_only(mut self) -> Self {
            self.reach = Reach::PendingOnly;
            self
        }
        fn keep_divergent(mut self) -> Self {
            self.rules.keep_divergent_refs = true;
            self
        }
        fn prune_unmerged(mut self) -> Self {
            self.rules.prune_unmerged = true;
            self
        }
        fn branches(mut self, patterns: &[&str]) -> Self {
            self.rules.branch_patterns = Some(strings(patterns));
            self
        }
        fn protected_only(mut self, patterns: &[&str]) -> Self {
            self.rules.protected_only = Some(strings(patterns));
            self
        }
        fn tags(mut self, tags: TagSelection) -> Self {
            self.rules.tags = tags;
            self
        }
        fn extra_refs(mut self, patterns: &[&str]) -> Self {
            self.rules.extra_refs = strings(patterns);
            self
        }
        /// Commits known locally, each an ancestor of every later one.
        fn chain(mut self, commits: &[u32]) -> Self {
            for (i, &older) in commits.iter().enumerate() {
                self.history.known.insert(id(older));
                for &newer in &commits[i + 1..] {
                    self.history.pairs.insert((id(older), id(newer)));
                }
            }
            self
        }
        /// Annotated tag object `tag` pointing at commit `commit`.
        fn annotated_tag(mut self, tag: u32, commit: u32) -> Self {
            self.history.peel.insert(id(tag), id(commit));
            self
        }

        fn plan(&self) -> PushPlan {
            let input = PlanInput {
                local: &self.local,
                local_symbolic: &self.local_symbolic,
                remote: &self.remote,
                remote_symbolic: &self.remote_symbolic,
                default_branch: self.head.as_ref(),
                pending: &self.pending,
                reach: self.reach,
                rules: &self.rules,
            };
            plan(&input, &self.history)
        }

        /// The decision for `name`; panics if the plan does not mention it.
        fn decision(&self, name: &str) -> Decision {
            let plan = self.plan();
            match plan.refs.iter().find(|r| r.name == name) {
                Some(r) => r.decision.clone(),
                None => panic!("{name} is not in the plan: {plan:#?}"),
            }
        }

        /// The names the plan mentions, in order.
        fn names(&self) -> Vec<String> {
            self.plan().refs.into_iter().map(|r| r.name).collect()
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn create(new: u32) -> Decision {
        Decision::Push(RefChange::Create { new: id(new) })
    }
    fn update(old: u32, new: u32, forced: bool) -> Decision {
        Decision::Push(RefChange::Update {
            old: id(old),
            new: id(new),
            forced,
        })
    }
    fn delete(old: u32) -> Decision {
        Decision::Push(RefChange::Delete { old: id(old) })
    }
    fn divergent(local: u32, remote: u32, why: Divergence) -> Decision {
        Decision::Divergent {
            local: id(local),
            remote: id(remote),
            why,
        }
    }
    fn kept(remote: u32, why: KeptReason) -> Decision {
        Decision::Kept {
            remote: id(remote),
            why,
        }
    }
    fn blocked(by: &str) -> Decision {
        Decision::Blocked { by: by.to_owned() }
    }

    const MAIN: &str = "refs/heads/main";
    const DEV: &str = "refs/heads/dev";
    const TAG: &str = "refs/tags/v1.0";

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
                            let what =
                                format!("remote {remote} last {last_local:?} head {head:?} keep {keep_divergent}");
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

    // ---- small API helpers ---------------------------------------------------

    #[test]
    fn only_divergent_and_blocked_are_failures() {
        assert!(divergent(1, 2, Divergence::NotFastForward).is_failure());
        assert!(blocked("refs/heads/a").is_failure());
        for ok in [
            create(1),
            update(1, 2, true),
            delete(1),
            Decision::UpToDate,
            Decision::Absent,
            kept(1, KeptReason::RemoteNotMerged),
        ] {
            assert!(!ok.is_failure(), "{ok:?}");
        }
    }
}
