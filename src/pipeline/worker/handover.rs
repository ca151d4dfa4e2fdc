//! What a worker does when the global configuration names another spool or state directory
//! while it runs. It claims nothing more from the old spool and starts no update; the updates
//! running finish and are recorded in the old state. Then it hands over:
//!
//! - entries it claimed but could not record yet are released into the old spool's `new/`;
//! - when the spool moved, every entry waiting in the old spool is moved into the new one
//!   (written there durably, then deleted), so no push waits in a spool nobody drains;
//! - repositories with work recorded in the old state and not done (refs not yet routed, pairs
//!   waiting for their turn or a retry) are registered in the new state as owing every mirror a
//!   full reconciliation, which finds whatever the mirrors lack.
//!
//! The same process then drains the new directories (a worker already draining them is waited
//! for), so the handover needs no later push or `run` to converge.

use super::Drain;
use crate::config::GlobalConfig;
use crate::pipeline::spool::Spool;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// What a worker leaving moved directories hands to the worker on the new ones.
pub struct Handover {
    /// The configuration naming the new directories.
    pub global: Arc<GlobalConfig>,
    /// The spool the leaving worker drained.
    from_spool: PathBuf,
    /// Repositories with work recorded in the old state and not done.
    repos: BTreeSet<PathBuf>,
}

impl Drain<'_> {
    /// Gives the entries held back (claimed, their refs not yet recorded) back to the spool.
    pub(super) fn release_held(&mut self) {
        for (claimed, _) in std::mem::take(&mut self.held) {
            match self.spool.release(&claimed) {
                Ok(()) => log::info!(
                    "a push that could not be recorded ({}) was put back into the spool",
                    claimed.display()
                ),
                // Still claimed by this process: the next worker takes it back once it has ended.
                Err(e) => log::warn!("putting {} back into the spool: {e}", claimed.display()),
            }
        }
    }

    /// What this leaving worker hands to the configuration `to` (see the module documentation).
    pub(super) fn hand_over(&mut self, to: Arc<GlobalConfig>) -> Handover {
        let mut repos: BTreeSet<PathBuf> = self.unrouted.keys().cloned().collect();
        let pairs = self.due.keys().filter(|pair| !self.verifying.contains(*pair));
        repos.extend(pairs.chain(self.failed_attempts.keys()).map(|(repo, _)| repo.clone()));
        Handover {
            global: to,
            from_spool: self.spool.root().to_path_buf(),
            repos,
        }
    }

    /// Takes over what a worker on other directories left (see [`Self::hand_over`]).
    pub(super) fn take_over(&mut self, handover: Handover) {
        let old_spool = Spool::new(&handover.from_spool);
        if old_spool.root() != self.spool.root() && old_spool.has_waiting() {
            match self.spool.adopt(&old_spool) {
                Ok(n) => log::info!(
                    "moved {n} entries from the old spool {} into {}",
                    old_spool.root().display(),
                    self.spool.root().display()
                ),
                Err(e) => log::error!(
                    "moving the entries of the old spool {} into {}: {e}; they wait there",
                    old_spool.root().display(),
                    self.spool.root().display()
                ),
            }
        }
        for repo in handover.repos {
            let owed = (|| -> anyhow::Result<()> {
                let _lock = self.store.lock(&repo)?;
                let mut record = self.store.load_record_healing(&repo)?.unwrap_or_default();
                record.repo = repo.clone();
                record.rebuilt = true;
                self.store.save_record(&record)
            })();
            match owed {
                Ok(()) => {
                    log::info!(
                        "{}: taken over from the old state directory; its mirrors are reconciled in full",
                        repo.display()
                    );
                    self.unrouted.insert(repo, Instant::now());
                }
                Err(e) => self.fault(&repo, "could not be taken over from the old state directory", &e),
            }
        }
    }
}
