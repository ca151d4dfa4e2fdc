//! Where the worker's work comes from: the spool, read whole in batches before updates start
//! (how a batch is recorded is in `worker/coalesce.rs`), the default spool's entries adopted,
//! refs that waited in a repository's record routed to its mirrors once its configuration can
//! be read, and pairs with work put on the schedule. Work left by earlier runs is found by the
//! scan (`worker/scan.rs`).

use super::{CONFIG_RETRY, Drain, RunSummary};
use crate::config;
use crate::mirror::state::MirrorState;
use crate::pipeline::schedule;
use crate::pipeline::slots::host_of;
use crate::pipeline::spool::Spool;
use crate::util::fsutil::now_ms;
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::time::Instant;

impl Drain<'_> {
    /// Takes over entries hooks wrote to the default spool while the global
    /// configuration (which names this spool) could not be read.
    pub(super) fn adopt_fallback_spool(&self) {
        let fallback = Spool::new(&config::default_spool_dir());
        if fallback.root() == self.spool.root() || !fallback.has_waiting() {
            return;
        }
        let trusted = crate::pipeline::trust::trusted_users(&self.global);
        if let Err(e) = crate::pipeline::trust::check_spool_dir(fallback.root(), &trusted) {
            log::error!("not taking the entries of the fallback spool: {e}");
            return;
        }
        match self.spool.adopt(&fallback) {
            Ok(n) => log::info!("took {n} entries from the fallback spool {}", fallback.root().display()),
            Err(e) => log::error!("reading the fallback spool {}: {e}", fallback.root().display()),
        }
    }

    /// Puts a pair with work on the schedule. Pairs whose configuration is
    /// broken, removed or disabled are left for a later run.
    pub(super) fn schedule(&mut self, repo: &Path, mirror: &str, state: &MirrorState) {
        let pair = (repo.to_path_buf(), mirror.to_string());
        self.due.remove(&pair);
        if self.slots.is_running(&pair) {
            return; // `finish` schedules it from the state its update leaves
        }
        let Some(mirror_config) = self.mirror_config(&pair) else {
            return;
        };
        // Work owed makes a separate check pointless: the update observes the mirror.
        self.verifying.remove(&pair);
        self.hosts.insert(pair.clone(), host_of(&mirror_config.url));
        let now = now_ms();
        let due = schedule::due_at(
            state,
            mirror_config.delay,
            mirror_config.min_interval,
            &self.global.retry,
            now,
        );
        self.due.insert(pair, Instant::now() + schedule::wait_until(due, now));
    }

    /// Reads every entry waiting in the spool, in batches of bounded size, and records what they
    /// ask for in the pairs' states (see `worker/coalesce.rs`) before the caller starts any update:
    /// one update per pair then carries everything the backlog asked for. Entries that arrive
    /// meanwhile are left for the next pass, so a stream of pushes never starves the updates.
    pub(super) fn ingest(&mut self, summary: &mut RunSummary) -> Result<()> {
        // What waits now is this pass's; entries written after this first listing wait for the next.
        let mut up_to: Option<String> = None;
        loop {
            let waiting = self
                .spool
                .oldest_waiting(super::coalesce::BATCH_ENTRIES, up_to.as_deref())?;
            if waiting.names.is_empty() {
                return Ok(());
            }
            up_to = up_to.or(waiting.newest);
            let started = std::time::Instant::now();
            let batch = self.claim_batch(&waiting.names, summary)?;
            let read_all = waiting.all && !batch.full;
            let read = started.elapsed();
            let (entries, repos) = (batch.entries(), batch.repos());
            self.record_batch(batch, summary)?;
            log::debug!(
                "spool: {entries} entries of {repos} repositories read in {read:?}, recorded in {:?}",
                started.elapsed() - read
            );
            if read_all {
                return Ok(());
            }
        }
    }

    /// Hands each repository's reported refs to its mirrors' pending state.
    pub(super) fn route_due_repos(&mut self) {
        let now = Instant::now();
        let due: Vec<PathBuf> = self
            .unrouted
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(r, _)| r.clone())
            .collect();
        for repo in due {
            match self.route(&repo) {
                Ok(()) => {
                    self.unrouted.remove(&repo);
                    self.config_fixed(&repo);
                }
                Err(e) => {
                    let message = format!("{e:#}");
                    if self.config_errors.get(&repo) != Some(&message) {
                        log::error!("{}: reported refs wait until this is fixed: {message}", repo.display());
                        if e.downcast_ref::<config::ConfigError>().is_some() {
                            self.config_broken(&repo, &message);
                        } else {
                            self.config_errors.insert(repo.clone(), message);
                        }
                    }
                    self.unrouted.insert(repo, now + CONFIG_RETRY);
                }
            }
        }
    }

    fn route(&mut self, repo: &Path) -> Result<()> {
        // The configuration is read under the state lock: a mirror `remove`d meanwhile (its state
        // deleted under that lock) gets none written back.
        let _lock = self.store.lock(repo)?;
        let repo_config = config::load_repo(repo, &self.global)?;
        let Some(mut record) = self.store.load_record_healing(repo)? else {
            return Ok(());
        };
        if record.pending.is_empty() && !record.rebuilt {
            return Ok(());
        }
        let now = now_ms();
        let mut routed = Vec::new();
        for mirror in &repo_config.mirrors {
            let mut state = self.store.load_mirror_healing(repo, &mirror.name)?;
            let is_new = state.last_update_at_ms.is_none() && !state.has_work();
            for (name, reported) in &record.pending {
                state.add_pending(name, reported, now);
            }
            let never_updated = is_new
                && state.full_sync_seq.is_none()
                && state.update_status == crate::mirror::state::UpdateStatus::None;
            // A mirror never updated before gets everything, not just this push; so does every
            // mirror of a repository whose record was lost (what it reported is unknown).
            if never_updated || record.rebuilt {
                state.request_full_sync(now);
            }
            self.store.save_mirror(&state)?;
            crate::util::failpoint::hit("route.after_mirror_saved");
            routed.push((mirror.name.clone(), state));
        }
        record.pending.clear();
        record.pending_since_ms = None;
        record.rebuilt = false;
        self.store.save_record(&record)?;
        drop(_lock);
        if self.wanted(repo) {
            for (mirror, state) in routed {
                // A new push earns a pair its attempts again.
                self.failed_attempts.remove(&(repo.to_path_buf(), mirror.clone()));
                self.schedule(repo, &mirror, &state);
            }
        }
        Ok(())
    }

    /// Records that a repository's configuration cannot be read, and tells it once per incident.
    pub(super) fn config_broken(&mut self, repo: &Path, message: &str) {
        if let Err(e) = self.store.note_config_error(repo, Some(message)) {
            log::warn!(
                "{}: queueing a notice of its configuration error: {e:#}",
                repo.display()
            );
        }
        self.config_errors.insert(repo.to_path_buf(), message.to_string());
    }

    /// Records that a repository's configuration can be read again.
    pub(super) fn config_fixed(&mut self, repo: &Path) {
        if self.config_errors.remove(repo).is_some()
            && let Err(e) = self.store.note_config_error(repo, None)
        {
            log::warn!("{}: {e:#}", repo.display());
        }
    }
}
