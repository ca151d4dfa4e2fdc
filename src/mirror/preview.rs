//! Looking before pushing (docs/mirror-side.md): `sync --dry-run`, what a full
//! reconciliation of a mirror would do to each ref, the repository it would create and the default
//! branch it would set; and `status --refs`, each ref's local and mirror value. Each from one
//! `ls-remote` and the local refs, with the pure planner deciding: nothing is pushed, created or
//! written (the pair's state is only read, for the hints and refusals it remembers).

use crate::access::auth::remote_access;
use crate::config::{GlobalConfig, MirrorConfig};
use crate::git::{self, Failure};
use crate::mirror::plan::{self, Decision, PlanInput, Reach};
use crate::mirror::refs::{LocalRefs, LocalRepo};
use crate::mirror::state::MirrorState;
use crate::mirror::update::{create, default_branch};
use crate::util::oid::Oid;
use crate::util::oid::RefChange;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

/// What `sync --dry-run` says about one mirror. Field names are stable (`--json`).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct DryRun {
    pub mirror: String,
    /// Redacted.
    pub url: String,
    /// The repository would be created first (the mirror says it does not exist): how.
    pub would_create: Option<String>,
    /// Each ref the update would consider or leave out.
    pub refs: Vec<PlannedRef>,
    /// The branch the mirror's default would be set to, and what it is now.
    pub default_branch: Option<DefaultBranchPlan>,
    /// The push options the pushes would carry.
    pub push_options: Vec<String>,
    pub warnings: Vec<String>,
    /// The mirror could not be looked at (its words, redacted).
    pub error: Option<String>,
}

/// One ref in a dry run.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PlannedRef {
    #[serde(rename = "ref")]
    pub name: String,
    /// `create`, `update`, `force`, `delete`, `up-to-date`, `keep-divergent`, `kept`, `blocked`,
    /// `absent` or `filtered-out`.
    pub action: &'static str,
    pub local: Option<String>,
    pub mirror: Option<String>,
    /// Why, when there is more to say.
    pub detail: Option<String>,
    /// The mirror refused this ref at its last update, with its reason: it would be pushed
    /// alone first, and may be refused again.
    pub refused_last_time: Option<String>,
}

/// The default branch a dry run would set.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DefaultBranchPlan {
    /// The local default branch, which the mirror's would follow.
    pub set_to: String,
    /// The mirror's default branch now, when it says (none for a repository to be created).
    pub now: Option<String>,
    /// `false` when this kind of mirror offers no way to set it (HTTPS without a forge, git://).
    pub settable: bool,
}

impl DryRun {
    /// How many refs each action concerns, in a fixed order, for a summary line.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for action in ACTIONS {
            let n = self.refs.iter().filter(|r| r.action == action).count();
            if n > 0 {
                counts.push((action, n));
            }
        }
        counts
    }
}

const ACTIONS: [&str; 10] = [
    "create",
    "update",
    "force",
    "delete",
    "keep-divergent",
    "kept",
    "blocked",
    "up-to-date",
    "absent",
    "filtered-out",
];

/// The local refs and the mirror's, listed once.
struct Observed {
    local: LocalRefs,
    mirror: Option<git::RemoteRefs>,
    local_head: Option<String>,
}

/// Lists the local refs, and the mirror's with one `ls-remote` (`None` for the mirror when it
/// says the repository does not exist).
fn observe(repo: &Path, mirror: &MirrorConfig, global: &GlobalConfig) -> Result<Observed, Failure> {
    let local_repo = LocalRepo::open(repo).map_err(|e| Failure::from(format!("{e:#}")))?;
    let local = local_repo.all_refs().map_err(|e| Failure::from(format!("{e:#}")))?;
    let local_head = local_repo.head_branch().map_err(|e| Failure::from(format!("{e:#}")))?;
    let mut access =
        remote_access(mirror, global).map_err(|e| Failure::new(format!("{e:#}"), git::FailureClass::Permanent))?;
    access.repo = Some(repo.to_path_buf());
    let mirror_refs = match git::ls_remote(repo, &access, &[]) {
        Ok(refs) => Some(refs),
        Err(e) => {
            let failure = Failure::from(e);
            if !failure.repository_missing {
                return Err(failure);
            }
            None
        }
    };
    Ok(Observed {
        local,
        mirror: mirror_refs,
        local_head,
    })
}

/// What a full reconciliation of `mirror` would do now (see the module documentation); `state`
/// is the pair's, as saved.
pub fn dry_run(repo: &Path, mirror: &MirrorConfig, global: &GlobalConfig, state: &MirrorState) -> DryRun {
    let mut run = DryRun {
        mirror: mirror.name.clone(),
        url: mirror.shown_url(),
        push_options: mirror
            .side
            .push_options_for(state.last_successful_update_at_ms.is_none())
            .to_vec(),
        ..Default::default()
    };
    let observed = match observe(repo, mirror, global) {
        Ok(observed) => observed,
        Err(failure) => {
            run.error = Some(failure.message);
            return run;
        }
    };
    let empty = git::RemoteRefs::default();
    let remote = match &observed.mirror {
        Some(remote) => remote,
        None => match create::plan(mirror) {
            Some(how) => {
                run.would_create = Some(how);
                &empty
            }
            None => {
                run.error = Some(
                    "the mirror says the repository does not exist, and `create` is not set: a sync would fail"
                        .to_string(),
                );
                return run;
            }
        },
    };
    let local_repo = match LocalRepo::open(repo) {
        Ok(local_repo) => local_repo,
        Err(e) => {
            run.error = Some(format!("{e:#}"));
            return run;
        }
    };
    let head = local_repo.default_branch_commit().ok().flatten();
    let pending = crate::mirror::update::pending_hints(state);
    let input = PlanInput {
        local: &observed.local.direct,
        local_symbolic: &observed.local.symbolic,
        remote: &remote.direct,
        remote_symbolic: &remote.symbolic,
        default_branch: head.as_ref(),
        pending: &pending,
        reach: Reach::Everything,
        rules: &mirror.rules,
    };
    let push_plan = plan::plan(&input, &local_repo);
    let shown = |oid: Option<&Oid>| oid.map(|oid| oid.as_str().to_string());
    let mut planned: Vec<PlannedRef> = push_plan
        .refs
        .iter()
        .map(|r| {
            let (action, detail) = action_of(&r.decision);
            PlannedRef {
                name: r.name.clone(),
                action,
                local: shown(observed.local.direct.get(&r.name)),
                mirror: shown(remote.direct.get(&r.name)),
                detail,
                refused_last_time: state.rejected_refs.get(&r.name).cloned(),
            }
        })
        .collect();
    // Refs on either side the filters leave out: never touched.
    let considered: BTreeSet<&str> = push_plan.refs.iter().map(|r| r.name.as_str()).collect();
    let out_of_scope: BTreeSet<&String> = observed
        .local
        .direct
        .keys()
        .chain(remote.direct.keys())
        .filter(|name| name.starts_with("refs/") && !considered.contains(name.as_str()) && !mirror.rules.in_scope(name))
        .collect();
    planned.extend(out_of_scope.into_iter().map(|name| PlannedRef {
        name: name.clone(),
        action: "filtered-out",
        local: shown(observed.local.direct.get(name)),
        mirror: shown(remote.direct.get(name)),
        detail: None,
        refused_last_time: None,
    }));
    planned.sort_by(|a, b| a.name.cmp(&b.name));
    run.refs = planned;
    run.warnings = push_plan
        .warnings
        .iter()
        .map(|_| {
            "only_protected_branches is set but the repository has no protected_branches: no branch is mirrored"
                .to_string()
        })
        .collect();
    if let Some(local) = &observed.local_head {
        let now = remote.head.clone();
        let differs = now.as_deref() != Some(local.as_str());
        if differs && observed.local.direct.contains_key(local) && mirror.rules.in_scope(local) {
            run.default_branch = Some(DefaultBranchPlan {
                set_to: short(local),
                now: now.as_deref().map(short),
                settable: default_branch::setter(mirror).is_some(),
            });
        }
    }
    run
}

fn short(branch: &str) -> String {
    branch.strip_prefix("refs/heads/").unwrap_or(branch).to_string()
}

/// A planner's verdict as a dry run's action, and its detail.
fn action_of(decision: &Decision) -> (&'static str, Option<String>) {
    match decision {
        Decision::Push(RefChange::Create { .. }) => ("create", None),
        Decision::Push(RefChange::Update { forced: false, .. }) => ("update", None),
        Decision::Push(RefChange::Update { forced: true, .. }) => (
            "force",
            Some("the mirror's commit is not in the local history: it is overwritten".to_string()),
        ),
        Decision::Push(RefChange::Delete { .. }) => ("delete", Some("deleted locally".to_string())),
        Decision::UpToDate => ("up-to-date", None),
        Decision::Absent => ("absent", None),
        Decision::Divergent { local, remote, why } => {
            let outcome = crate::mirror::report::RefOutcome::Divergent {
                local: local.clone(),
                remote: remote.clone(),
                why: *why,
            };
            ("keep-divergent", Some(outcome.detail()))
        }
        Decision::Kept { why, .. } => (
            "kept",
            Some(crate::mirror::report::RefOutcome::Kept { why: *why }.detail()),
        ),
        Decision::Blocked { by } => ("blocked", Some(format!("{by} occupies its path on the mirror"))),
    }
}

/// One ref's two values, for `status --refs`. Field names are stable (`--json`).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RefValues {
    #[serde(rename = "ref")]
    pub name: String,
    pub local: Option<String>,
    pub mirror: Option<String>,
    /// `same`, `differs`, `local-only` or `mirror-only`.
    pub state: &'static str,
    /// Whether the mirror's filters carry this ref.
    pub in_scope: bool,
}

/// Each ref of the repository and of the mirror, with both values (one `ls-remote`); a mirror
/// without its repository has none.
pub fn ref_values(repo: &Path, mirror: &MirrorConfig, global: &GlobalConfig) -> Result<Vec<RefValues>, Failure> {
    let observed = observe(repo, mirror, global)?;
    let remote = observed.mirror.map(|m| m.direct).unwrap_or_default();
    let names: BTreeSet<&String> = observed
        .local
        .direct
        .keys()
        .chain(remote.keys())
        .filter(|name| name.starts_with("refs/"))
        .collect();
    Ok(names
        .into_iter()
        .map(|name| {
            let local = observed.local.direct.get(name);
            let there = remote.get(name);
            RefValues {
                name: name.clone(),
                local: local.map(|o| o.as_str().to_string()),
                mirror: there.map(|o| o.as_str().to_string()),
                state: match (local, there) {
                    (Some(a), Some(b)) if a == b => "same",
                    (Some(_), Some(_)) => "differs",
                    (Some(_), None) => "local-only",
                    _ => "mirror-only",
                },
                in_scope: mirror.rules.in_scope(name),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(c: char) -> Oid {
        Oid::parse(&c.to_string().repeat(40)).unwrap()
    }

    #[test]
    fn every_verdict_has_an_action() {
        let update = |forced| {
            Decision::Push(RefChange::Update {
                old: oid('1'),
                new: oid('2'),
                forced,
            })
        };
        assert_eq!(action_of(&update(false)).0, "update");
        assert_eq!(action_of(&update(true)).0, "force");
        assert_eq!(
            action_of(&Decision::Push(RefChange::Delete { old: oid('1') })).0,
            "delete"
        );
        assert_eq!(
            action_of(&Decision::Push(RefChange::Create { new: oid('1') })).0,
            "create"
        );
        let divergent = Decision::Divergent {
            local: oid('1'),
            remote: oid('2'),
            why: plan::Divergence::NotFastForward,
        };
        let (action, detail) = action_of(&divergent);
        assert_eq!(action, "keep-divergent");
        assert!(detail.unwrap().contains("the mirror has commits"));
        for action in [
            action_of(&Decision::UpToDate).0,
            action_of(&Decision::Absent).0,
            action_of(&Decision::Blocked { by: "x".into() }).0,
        ] {
            assert!(ACTIONS.contains(&action), "{action}");
        }
    }
}
