//! One dispatched pair's update, run on a thread of its own: under the pair's push lock, a
//! verification or an update of the mirror, logged, and what became of it for the drain loop.

use super::{Pair, looks_like_a_repository};
use crate::config::GlobalConfig;
use crate::mirror::state::{StateStore, UpdateStatus};
use crate::mirror::update::update_mirror;
use crate::mirror::verify::{self, Verification};
use crate::util::lease::LeasedLock;
use anyhow::Result;

/// What became of one dispatched pair.
pub(super) enum PairOutcome {
    Updated {
        success: bool,
    },
    /// Another process (`sync`) is updating this pair; try again shortly.
    Busy,
    /// Its `verify_interval` check found the mirror as it was left: nothing to do.
    Verified,
    /// The mirror was removed, re-pointed or disabled since the update was scheduled or while it
    /// ran: the update stopped (see [`crate::mirror::configured`]).
    Stopped,
}

/// Updates one pair unless another process is already updating it.
pub(super) fn update_pair(
    store: &StateStore,
    global: &GlobalConfig,
    pair: &Pair,
    mirror: &crate::config::MirrorConfig,
    verify_only: bool,
) -> Result<PairOutcome> {
    let (repo, name) = pair;
    let Some(_push_lock) = LeasedLock::try_acquire(&store.push_lock_path(repo, name)?, global.claim_timeout)? else {
        log::debug!("{}: mirror {name} is being updated by another process", repo.display());
        return Ok(PairOutcome::Busy);
    };
    if !looks_like_a_repository(repo) {
        // Deleted or moved: retrying cannot help. Its pending refs are dropped;
        // if it comes back, the drift scan finds what its mirrors lack.
        log::warn!(
            "{}: the repository no longer exists; mirror {name}'s pending refs were dropped",
            repo.display()
        );
        store.change_mirror_state(repo, name, |state| {
            state.pending.clear();
            state.full_sync_seq = None;
            state.pending_since_ms = None;
            state.update_status = UpdateStatus::Failed;
            state.failure_class = Some(crate::git::FailureClass::Permanent);
            state.last_error = Some("the repository no longer exists (deleted or moved)".to_string());
        })?;
        return Ok(PairOutcome::Updated { success: false });
    }
    if verify_only && verify::verify_mirror(store, global, repo, mirror)? == Verification::Unchanged {
        return Ok(PairOutcome::Verified);
    }
    let report = update_mirror(store, global, repo, mirror, false)?;
    if report.stopped.is_some() {
        return Ok(PairOutcome::Stopped); // logged by the update
    }
    let changed = report
        .refs
        .iter()
        .filter(|r| !matches!(r.outcome, crate::mirror::update::RefOutcome::UpToDate))
        .count();
    match report.error_summary() {
        None => log::info!("{}: mirror {name}: updated ({changed} ref(s) changed)", repo.display()),
        Some(error) => log::warn!("{}: mirror {name}: {error}", repo.display()),
    }
    if let Some(lfs) = &report.lfs {
        match lfs.error_summary() {
            None => log::info!(
                "{}: mirror {name}: LFS: {} object(s) on the mirror",
                repo.display(),
                lfs.objects
            ),
            Some(error) if report.error.is_none() => log::warn!("{}: mirror {name}: {error}", repo.display()),
            Some(_) => {} // already in the update's error
        }
    }
    // The update may have succeeded while the mirror stays failed (a ref still divergent).
    let still_failed = store
        .load_mirror(repo, name)
        .is_ok_and(|state| state.update_status == UpdateStatus::Failed);
    Ok(PairOutcome::Updated {
        success: !report.is_failure() && !still_failed,
    })
}
