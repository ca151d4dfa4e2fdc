//! The mirror's side of an update, around the push (docs/mirror-side.md): which push
//! options it sends, whether the mirror took them, its default branch made to follow the local
//! one, and what the pair's state keeps of it all.

use super::default_branch::{self, HeadFacts};
use crate::config::MirrorConfig;
use crate::git::RemoteAccess;
use crate::mirror::plan::Reach;
use crate::mirror::refs::LocalRepo;
use crate::mirror::report::{RefOutcome, SideReport, UpdateReport};
use crate::mirror::state::mirror_side::MirrorSideState;
use crate::mirror::state::{KnownRefs, MirrorState};
use std::path::Path;

/// Whether an update is the mirror's first sync (`first_sync_push_options`): no update of it has
/// succeeded yet.
pub(super) fn first_sync(before: &MirrorState) -> bool {
    before.last_successful_update_at_ms.is_none()
}

/// After the push: whether the mirror took the push options, and its default branch.
pub(super) fn after_push(
    repo: &Path,
    mirror: &MirrorConfig,
    access: &RemoteAccess,
    before: &MirrorState,
    reach: Reach,
    known: &KnownRefs,
    report: &mut UpdateReport,
) {
    let pushed = report.refs.iter().any(|r| {
        matches!(
            r.outcome,
            RefOutcome::Created | RefOutcome::Updated | RefOutcome::Forced | RefOutcome::Deleted
        )
    });
    if access.push_options.is_empty() {
        // Nothing to send, nothing to warn about (options removed from the configuration).
        report.side.push_options_refused = Some(false);
    } else if pushed || access.push_options_refused() {
        report.side.push_options_refused = Some(access.push_options_refused());
    }
    if access.push_options_refused() {
        report.warnings.push(format!(
            "the mirror does not accept push options (it does not advertise them): pushed without {}",
            access.push_options.join(", ")
        ));
    }
    let local_head = match LocalRepo::open(repo).and_then(|local| local.head_branch()) {
        Ok(head) => head,
        Err(e) => {
            log::warn!("{}: reading HEAD: {e:#}", repo.display());
            return;
        }
    };
    let facts = HeadFacts {
        local_head: local_head.as_deref(),
        state: &before.side,
        observed: report.side.observed_head.as_deref(),
        created: report.side.created.is_some(),
        full: reach == Reach::Everything,
    };
    let outcome = default_branch::follow(mirror, &facts, report, known);
    if let Some(error) = outcome.as_ref().and_then(|o| o.error.as_ref()) {
        report.warnings.push(error.clone());
    }
    report.side.default_branch = outcome;
}

/// What the pair's state keeps of the update's mirror side.
pub(super) fn record(state: &mut MirrorSideState, report: &SideReport, now_ms: u64) {
    if report.created.is_some() {
        state.created_at_ms = Some(now_ms);
    }
    if let Some(head) = &report.observed_head {
        state.mirror_head = Some(head.clone());
    }
    if let Some(outcome) = &report.default_branch {
        // Remembered even when it failed: it is tried again at a `sync` or a new HEAD, not at
        // every push.
        state.followed_head = Some(outcome.branch.clone());
        state.default_branch_error = outcome.error.clone();
        if outcome.error.is_none() {
            state.mirror_head = Some(outcome.branch.clone());
        }
    }
    if let Some(refused) = report.push_options_refused {
        state.push_options_refused = refused;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::report::DefaultBranchOutcome;

    #[test]
    fn the_state_keeps_the_default_branch_followed_and_why_it_could_not_be() {
        let mut state = MirrorSideState::default();
        let report = SideReport {
            created: Some("created".into()),
            observed_head: Some("refs/heads/main".into()),
            default_branch: Some(DefaultBranchOutcome {
                branch: "refs/heads/develop".into(),
                error: None,
            }),
            push_options_refused: Some(true),
        };
        record(&mut state, &report, 7);
        assert_eq!(state.created_at_ms, Some(7));
        assert_eq!(state.mirror_head.as_deref(), Some("refs/heads/develop"));
        assert_eq!(state.followed_head.as_deref(), Some("refs/heads/develop"));
        assert!(state.push_options_refused);
        let refused = SideReport {
            default_branch: Some(DefaultBranchOutcome {
                branch: "refs/heads/trunk".into(),
                error: Some("FATAL: unknown command".into()),
            }),
            push_options_refused: Some(false),
            ..Default::default()
        };
        record(&mut state, &refused, 8);
        assert_eq!(state.followed_head.as_deref(), Some("refs/heads/trunk"));
        assert_eq!(state.mirror_head.as_deref(), Some("refs/heads/develop"), "unchanged");
        assert!(state.default_branch_error.is_some() && !state.push_options_refused);
        record(&mut state, &SideReport::default(), 9);
        assert!(state.default_branch_error.is_some(), "nothing new: kept");
    }
}
