//! The planner's cases, each a scenario of facts about both sides and the verdict it must give.

mod absent;
mod conflicts;
mod present;
mod scope;

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
