//! The pure mirror planner: what one mirror update does to each ref, with no I/O
//! (docs/mirroring.md: "Mirror semantics").
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

/// Present on both sides with different values (docs/mirroring.md: "Mirror semantics").
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

/// Absent locally, present on the remote: deleted upstream (docs/mirroring.md: "Mirror semantics").
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
/// into [`Decision::Blocked`] (docs/mirroring.md: "Mirror semantics"). Deletions in the same plan do not
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
mod tests;
