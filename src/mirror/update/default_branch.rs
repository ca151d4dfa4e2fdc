//! The mirror's default branch follows the local one (docs/mirror-side.md): at the first
//! sync and whenever the local `HEAD` points at another branch, once that branch is on the mirror,
//! through the forge's API (a mirror whose `create` names a forge), `git symbolic-ref` over SSH
//! where the host's shell allows it (gitolite's does not: the refusal is kept and shown), or
//! directly for a local mirror. A mirror reached otherwise (HTTPS without a forge, git://) keeps
//! its own; `status` shows it when it differs. Failing to set it never fails an update: the refs
//! are there; it is shown in `status` and tried again at the next `sync` or change of `HEAD`.

use crate::access::repo_location::RepoLocation;
use crate::config::MirrorConfig;
use crate::mirror::forge::Forge;
use crate::mirror::report::{DefaultBranchOutcome, UpdateReport};
use crate::mirror::state::KnownRefs;
use crate::mirror::state::mirror_side::MirrorSideState;
use crate::util::remote_url::{Transport, transport_of};
use std::path::PathBuf;

/// How a mirror's default branch is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadSetter {
    /// The forge's API (`create` names a forge).
    Forge,
    /// `git symbolic-ref HEAD` through the SSH host's shell.
    Ssh,
    /// `git symbolic-ref HEAD` in the local mirror repository.
    Local(PathBuf),
}

/// How `mirror`'s default branch can be set, if it can.
pub fn setter(mirror: &MirrorConfig) -> Option<HeadSetter> {
    if mirror.side.create.is_some_and(|kind| kind.is_forge()) {
        return Some(HeadSetter::Forge);
    }
    match transport_of(&mirror.url) {
        Transport::Ssh => Some(HeadSetter::Ssh),
        Transport::File => {
            crate::config::mirror_path::local_path(&mirror.url).map(|path| HeadSetter::Local(path.into()))
        }
        _ => None,
    }
}

/// Whether the local `HEAD` (`head`) moved away from the branch the mirror's default was made to
/// follow, for a mirror whose default branch can be set: the drift scan then owes it an update,
/// since moving HEAD pushes nothing.
pub fn head_moved(mirror: &MirrorConfig, state: &MirrorSideState, head: Option<&str>) -> bool {
    match (&state.followed_head, head) {
        (Some(followed), Some(head)) => followed != head && setter(mirror).is_some(),
        _ => false,
    }
}

/// The facts one decision is made from.
pub struct HeadFacts<'a> {
    /// The local default branch (`refs/heads/X`).
    pub local_head: Option<&'a str>,
    pub state: &'a MirrorSideState,
    /// The mirror's HEAD, when this update saw it.
    pub observed: Option<&'a str>,
    /// The repository was created on the mirror in this update.
    pub created: bool,
    /// A full reconciliation (`sync`, a new mirror): the mirror's HEAD is checked again even when
    /// the local one has not changed.
    pub full: bool,
}

/// What to do about the mirror's default branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadAction {
    Nothing,
    /// The mirror's default is the local one already: remember it.
    Agrees(String),
    /// Make this branch the mirror's default.
    Set(String),
}

/// Decides (pure) whether the mirror's default branch must be made the local one.
pub fn decide(facts: &HeadFacts<'_>) -> HeadAction {
    let Some(local) = facts.local_head else {
        return HeadAction::Nothing;
    };
    if facts.observed == Some(local) {
        return if facts.state.followed_head.as_deref() == Some(local) && facts.state.default_branch_error.is_none() {
            HeadAction::Nothing
        } else {
            HeadAction::Agrees(local.to_string())
        };
    }
    let new_head = facts.state.followed_head.as_deref() != Some(local);
    // Known to differ (changed on the mirror, or an earlier attempt failed): a `sync` tries again.
    let recheck = facts.full && (facts.observed.is_some() || facts.state.default_branch_error.is_some());
    if new_head || facts.created || recheck {
        HeadAction::Set(local.to_string())
    } else {
        HeadAction::Nothing
    }
}

/// Whether `branch` is on the mirror after the update: landed or up to date in this report, or
/// known from earlier updates and not touched by this one.
fn on_mirror(branch: &str, report: &UpdateReport, known: &KnownRefs) -> bool {
    match report.refs.iter().find(|r| r.name == branch) {
        Some(result) => result.outcome.is_settled() && result.remote.is_some(),
        None => known.get(branch).is_some_and(|k| k.remote.is_some()),
    }
}

/// Makes the mirror's default branch follow `local_head` when [`decide`] says so and the branch
/// is on the mirror; returns what came of it for the report (`None`: nothing was due).
pub fn follow(
    mirror: &MirrorConfig,
    facts: &HeadFacts<'_>,
    report: &UpdateReport,
    known: &KnownRefs,
) -> Option<DefaultBranchOutcome> {
    let branch = match decide(facts) {
        HeadAction::Nothing => return None,
        HeadAction::Agrees(branch) => return Some(DefaultBranchOutcome { branch, error: None }),
        HeadAction::Set(branch) => branch,
    };
    if report.error.is_some() || !on_mirror(&branch, report, known) {
        // The branch is pushed before it is made the default: next time.
        return None;
    }
    let short = branch.trim_start_matches("refs/heads/");
    let done = match setter(mirror)? {
        HeadSetter::Forge => Forge::for_mirror(mirror).and_then(|forge| forge.set_default_branch(short)),
        HeadSetter::Ssh => RepoLocation::parse(&mirror.url)
            .map_err(|e| crate::git::Failure::new(e, crate::git::FailureClass::Permanent))
            .and_then(|location| crate::access::ssh::remote_shell::set_head(mirror, &location, &branch)),
        HeadSetter::Local(path) => {
            crate::git::head::set_head(&path, &branch).map_err(|e| crate::git::Failure::from(e.to_string()))
        }
    };
    let error = done.err().map(|failure| {
        format!(
            "could not make {short} the mirror's default branch: {}",
            failure.message
        )
    });
    Some(DefaultBranchOutcome { branch, error })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(local: Option<&'a str>, state: &'a MirrorSideState, observed: Option<&'a str>) -> HeadFacts<'a> {
        HeadFacts {
            local_head: local,
            state,
            observed,
            created: false,
            full: false,
        }
    }

    const DEVELOP: &str = "refs/heads/develop";
    const TRUNK: &str = "refs/heads/trunk";

    #[test]
    fn the_first_sync_and_every_change_of_head_set_the_default_branch() {
        let fresh = MirrorSideState::default();
        assert_eq!(
            decide(&facts(Some(DEVELOP), &fresh, None)),
            HeadAction::Set(DEVELOP.into())
        );
        assert_eq!(
            decide(&facts(Some(DEVELOP), &fresh, Some("refs/heads/main"))),
            HeadAction::Set(DEVELOP.into())
        );
        assert_eq!(
            decide(&facts(Some(DEVELOP), &fresh, Some(DEVELOP))),
            HeadAction::Agrees(DEVELOP.into())
        );
        assert_eq!(decide(&facts(None, &fresh, None)), HeadAction::Nothing);
        let followed = MirrorSideState {
            followed_head: Some(DEVELOP.into()),
            ..Default::default()
        };
        assert_eq!(decide(&facts(Some(DEVELOP), &followed, None)), HeadAction::Nothing);
        assert_eq!(
            decide(&facts(Some(DEVELOP), &followed, Some(DEVELOP))),
            HeadAction::Nothing
        );
        assert_eq!(
            decide(&facts(Some(TRUNK), &followed, None)),
            HeadAction::Set(TRUNK.into())
        );
    }

    #[test]
    fn a_mirror_that_differs_or_refused_is_tried_again_by_a_full_reconciliation_only() {
        let refused = MirrorSideState {
            followed_head: Some(DEVELOP.into()),
            default_branch_error: Some("gitolite refused".into()),
            ..Default::default()
        };
        assert_eq!(decide(&facts(Some(DEVELOP), &refused, None)), HeadAction::Nothing);
        let full = HeadFacts {
            full: true,
            ..facts(Some(DEVELOP), &refused, None)
        };
        assert_eq!(decide(&full), HeadAction::Set(DEVELOP.into()));
        let changed_there = MirrorSideState {
            followed_head: Some(DEVELOP.into()),
            ..Default::default()
        };
        assert_eq!(
            decide(&facts(Some(DEVELOP), &changed_there, Some(TRUNK))),
            HeadAction::Nothing
        );
        let full = HeadFacts {
            full: true,
            ..facts(Some(DEVELOP), &changed_there, Some(TRUNK))
        };
        assert_eq!(decide(&full), HeadAction::Set(DEVELOP.into()));
        let created = HeadFacts {
            created: true,
            ..facts(Some(DEVELOP), &changed_there, None)
        };
        assert_eq!(decide(&created), HeadAction::Set(DEVELOP.into()));
    }

    #[test]
    fn each_kind_of_mirror_has_its_setter() {
        let mut mirror = MirrorConfig::example("ssh://git@h/srv/a.git");
        assert_eq!(setter(&mirror), Some(HeadSetter::Ssh));
        mirror.url = "/srv/m/a.git".into();
        assert_eq!(setter(&mirror), Some(HeadSetter::Local("/srv/m/a.git".into())));
        mirror.url = "https://h/a.git".into();
        assert_eq!(setter(&mirror), None);
        mirror.side.create = Some(crate::config::mirror_side::CreateKind::Gitlab);
        assert_eq!(setter(&mirror), Some(HeadSetter::Forge));
    }
}
