//! Another host's work: the spool entries claimed by a worker on another host sharing the spool
//! and state, put back into `new/` once that worker stopped renewing them for `claim_timeout`
//! (dead, hung, or cut off from the shared filesystem; see `util/lease.rs` and
//! docs/operations.md, "Scale-out").

use super::Drain;
use std::time::Instant;

impl Drain<'_> {
    /// Puts back into `new/` the claims of workers on other hosts that stopped renewing them
    /// (dead, or cut off from the shared spool), looked at every quarter of `claim_timeout`.
    pub(super) fn take_over_stale_claims(&mut self) {
        if self.claims_checked_at.elapsed() < self.global.claim_timeout / 4 {
            return;
        }
        self.claims_checked_at = Instant::now();
        match self.spool.requeue_claimed() {
            Ok(0) => {}
            Ok(n) => log::warn!(
                "took over {n} spool entries claimed by a worker that stopped renewing its claims (claim_timeout {}s)",
                self.global.claim_timeout.as_secs()
            ),
            Err(e) => log::warn!("looking at the spool's claims: {e}"),
        }
    }

    /// Whether another host's claims become this worker's to take within `worker_linger`: work
    /// due soon, worth lingering for.
    pub(super) fn takeover_due_soon(&self) -> bool {
        self.may_claim()
            && self
                .spool
                .next_takeover()
                .is_ok_and(|next| next.is_some_and(|next| next <= self.global.worker_linger))
    }
}
