//! Where the worker's work comes from: spool entries recorded in their repositories' records
//! (held and retried when the state cannot be written), reported refs routed to each mirror's
//! pending state, and work left by earlier runs (failures to retry, interrupted updates, drift,
//! due `verify_interval` checks), each put on the schedule.

use super::{CONFIG_RETRY, Drain, RECORD_RETRY, RunSummary, looks_like_a_repository, register_fleet};
use crate::config;
use crate::mirror::state::{MirrorState, UpdateStatus};
use crate::mirror::verify;
use crate::pipeline::schedule;
use crate::pipeline::slots::host_of;
use crate::pipeline::spool::{Spool, SpoolEntry};
use crate::util::fsutil::{FileLock, now_ms};
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

    /// Pairs and repositories left with work by earlier runs (failures to
    /// retry, broken configs, interrupted updates), and drifted refs.
    pub(super) fn find_existing_work(&mut self) -> Result<()> {
        if !self.options.scan_registered {
            return Ok(());
        }
        register_fleet(&self.global, self.store);
        match crate::pipeline::registrations::forget_gone(self.store) {
            Ok(gone) => gone
                .iter()
                .for_each(|repo| log::warn!("{}", crate::pipeline::registrations::gone_notice(repo))),
            Err(e) => log::warn!("forgetting deleted repositories: {e:#}"),
        }
        let scan_started = std::time::SystemTime::now();
        let mut scanned_all = self.options.repos.is_empty();
        for repo in self.store.known_repos()? {
            if !self.wanted(&repo) {
                continue;
            }
            // One repository's broken state never keeps the others from their work.
            match self.find_work_of(&repo) {
                Ok(true) => {
                    self.faults.remove(&repo);
                }
                Ok(false) => scanned_all = false,
                Err(e) => {
                    scanned_all = false;
                    self.fault(&repo, "skipped by this run", &e);
                }
            }
        }
        if scanned_all {
            crate::pipeline::unrecorded::mark_spool_scanned(self.spool.root(), scan_started);
        }
        Ok(())
    }

    /// [`Self::find_existing_work`] for one repository: its unrouted refs, the drift scan,
    /// interrupted and owed updates, and due `verify_interval` checks. Returns whether its drift
    /// scan ran (a broken configuration or an unreadable repository skip it).
    fn find_work_of(&mut self, repo: &Path) -> Result<bool> {
        // The lock only to heal a corrupt record: the scan reads thousands of healthy ones.
        let record = match self.store.load_record(repo) {
            Err(e) if crate::mirror::state::corruption(&e).is_some() => {
                let _lock = self.store.lock(repo)?;
                self.store.load_record_healing(repo)?
            }
            other => other?,
        };
        if record.is_some_and(|r| !r.pending.is_empty() || r.rebuilt) {
            self.unrouted.insert(repo.to_path_buf(), Instant::now());
        }
        // A broken configuration is reported when routing or updating; its mirrors' state still counts.
        let repo_config = config::load_repo(repo, &self.global);
        // Told once per incident; fixed since (by this run or an earlier one), a new breakage is told again.
        let error = repo_config.as_ref().err().map(ToString::to_string);
        if let Err(e) = self.store.note_config_error(repo, error.as_deref()) {
            log::warn!("{}: notice of its configuration: {e:#}", repo.display());
        }
        let repo_config = repo_config.ok();
        let mut scanned = false;
        if let Some(cfg) = &repo_config
            && repo.exists()
        {
            let scan_started = std::time::SystemTime::now();
            match crate::pipeline::drift::scan_repository(self.store, repo, cfg) {
                Ok(_) => {
                    // Pushes the hook could not record are found by now.
                    crate::pipeline::unrecorded::clear_repo(repo, scan_started);
                    scanned = true;
                }
                Err(e) => log::warn!("{}: drift scan skipped: {e:#}", repo.display()),
            }
        }
        let now = now_ms();
        for mirror in self.store.mirror_names(repo)? {
            let state = self.recover_interrupted(repo, &mirror)?;
            if let Some(every) = self.global.notify.remind_every
                && state.incident.told_failed_at_ms.is_some()
                && let Err(e) = self.store.remind(repo, &mirror, every)
            {
                log::warn!("{}: mirror {mirror}: queueing a reminder: {e:#}", repo.display());
            }
            if state.has_work() {
                self.schedule(repo, &mirror, &state);
                continue;
            }
            let Some(config) = repo_config.as_ref().and_then(|cfg| cfg.mirror(&mirror)) else {
                continue;
            };
            if config.enabled && verify::is_due(&state, config.verify_interval, now) {
                let pair = (repo.to_path_buf(), mirror);
                self.hosts.insert(pair.clone(), host_of(&config.url));
                self.verifying.insert(pair.clone());
                self.due.insert(pair, Instant::now());
            }
        }
        Ok(scanned)
    }

    /// A state left `started` by a worker that died mid-update (nobody holds
    /// its push lock) becomes `to_retry` with a full reconciliation owed:
    /// nobody knows how far the update got.
    fn recover_interrupted(&self, repo: &Path, mirror: &str) -> Result<MirrorState> {
        let state = self.store.load_mirror_or_heal(repo, mirror)?;
        if state.update_status != UpdateStatus::Started {
            return Ok(state);
        }
        let Some(_push_lock) = FileLock::try_acquire(&self.store.push_lock_path(repo, mirror)?)? else {
            return Ok(state); // still being updated
        };
        log::warn!(
            "{}: mirror {mirror}: the previous update was interrupted; reconciling again",
            repo.display()
        );
        self.store.update_mirror(repo, mirror, |state| {
            if state.update_status == UpdateStatus::Started {
                state.update_status = UpdateStatus::ToRetry;
                state.last_error = Some("the previous update was interrupted before it finished".to_string());
                state.request_full_sync(now_ms());
            }
            state.clone()
        })
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

    /// Moves spool entries into their repositories' records, then deletes them.
    pub(super) fn ingest(&mut self, summary: &mut RunSummary, max_entries: usize) -> Result<()> {
        for name in self.spool.waiting()?.into_iter().take(max_entries) {
            let Some(claimed) = self.spool.claim(&name)? else {
                continue;
            };
            crate::util::failpoint::hit("ingest.after_claim");
            let entry = match self.spool.read(&claimed) {
                Ok(entry) => entry,
                Err(e) => {
                    // Told before the move: a crash in between tells of a move the next run makes again.
                    let mut notice = crate::mirror::state::Notice::new(
                        crate::config::notify::Event::Quarantined,
                        self.spool.root(),
                        None,
                        now_ms(),
                    );
                    notice.error = Some(format!(
                        "spool entry {name} is unusable ({e}); moved to {}",
                        self.spool.bad_dir().join(&name).display()
                    ));
                    if let Err(e) = self.store.tell(&notice) {
                        log::warn!("queueing a notice of spool entry {name}: {e:#}");
                    }
                    let moved = self.spool.quarantine(&claimed)?;
                    log::error!("spool entry {name} is unusable ({e}); moved to {}", moved.display());
                    summary.entries_quarantined += 1;
                    continue;
                }
            };
            if !looks_like_a_repository(&entry.repo) {
                // A repository that is gone is forgotten here, in the same one line.
                let forgotten = crate::pipeline::registrations::is_gone(&entry.repo)
                    && self.store.forget(&entry.repo).unwrap_or(false);
                log::error!(
                    "spool entry {name} names {}, which is not a git repository (deleted or moved?); dropped{}",
                    entry.repo.display(),
                    if forgotten {
                        ", and the repository forgotten with its mirrors' state"
                    } else {
                        ""
                    }
                );
                self.spool.retire(&claimed)?;
                continue;
            }
            if let Some(why) = crate::pipeline::trust::distrusted_repository(&self.global, self.store, &entry.repo) {
                let moved = self.spool.quarantine_untrusted(&claimed)?;
                log::error!(
                    "spool entry {name} names {repo}, which this worker does not mirror: {why}; moved to {}; if it \
                     should be mirrored, register it (git-push-mirror install {repo}) and run `git-push-mirror run`",
                    moved.display(),
                    repo = entry.repo.display()
                );
                summary.entries_quarantined += 1;
                continue;
            }
            self.record_entry(claimed, entry, summary)?;
        }
        Ok(())
    }

    /// Records a claimed entry's refs in its repository's record, then deletes the entry. When
    /// the record cannot be written (a full disk, a broken state directory), the entry stays
    /// claimed and is tried again; nothing else waits for it.
    fn record_entry(&mut self, claimed: PathBuf, entry: SpoolEntry, summary: &mut RunSummary) -> Result<()> {
        let recorded = (|| -> Result<()> {
            let _lock = self.store.lock(&entry.repo)?;
            let mut record = self.store.load_record_healing(&entry.repo)?.unwrap_or_default();
            record.repo = entry.repo.clone();
            record.record(&entry.updates, entry.received_at_ms);
            self.store.save_record(&record)
        })();
        if let Err(e) = recorded {
            self.fault(&entry.repo, "a push could not be recorded; it waits in the spool", &e);
            self.held.push((claimed, entry, Instant::now() + RECORD_RETRY));
            return Ok(());
        }
        self.faults.remove(&entry.repo);
        crate::util::failpoint::hit("ingest.after_record");
        self.spool.retire(&claimed)?;
        summary.entries_ingested += 1;
        self.unrouted.insert(entry.repo, Instant::now());
        Ok(())
    }

    /// Tries again to record the entries held back by [`Self::record_entry`].
    pub(super) fn retry_held(&mut self, summary: &mut RunSummary) {
        let now = Instant::now();
        if self.held.iter().all(|(_, _, at)| *at > now) {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(_, _, at)| *at <= now);
        self.held = later;
        for (claimed, entry, _) in due {
            if let Err(e) = self.record_entry(claimed, entry, summary) {
                log::error!("{e:#}");
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
}
