//! The scan of registered repositories (cron and manual runs): work left by earlier runs
//! (failures to retry, broken configurations, interrupted updates), drifted refs and due
//! `verify_interval` checks. It runs on a thread of its own while updates run, and hands what it
//! finds to the drain loop in chunks, which schedules it: the first updates never wait for a
//! scan of the whole fleet.

use super::{Drain, Event};
use crate::config::{self, GlobalConfig, RepoConfig};
use crate::mirror::state::{MirrorState, RepoRecord, StateStore, UpdateStatus};
use crate::mirror::verify;
use crate::pipeline::slots::host_of;
use crate::util::fsutil::now_ms;
use crate::util::lease::LeasedLock;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Instant;

/// Repositories whose findings are sent to the drain loop together.
const CHUNK: usize = 64;

/// What the scan found about one repository.
pub(super) struct Findings {
    repo: PathBuf,
    found: Result<RepoWork>,
    /// When its mirrors' states were read.
    read_at: Instant,
}

/// One repository's work.
struct RepoWork {
    /// Its drift scan ran (a broken configuration or an unreadable repository skip it).
    scanned: bool,
    /// Its record holds refs not yet routed to its mirrors.
    unrouted: bool,
    /// Its mirrors' states, and those with a `verify_interval` check due (their URL's host).
    mirrors: Vec<(String, MirrorState)>,
    verify_due: BTreeMap<String, String>,
}

/// Scans every registered repository the run wants (`wanted` empty: all), sending findings on
/// `events`, then [`Event::ScanEnded`] (or [`Event::ScanFailed`] when the registered
/// repositories cannot even be listed).
pub(super) fn scan_registered(
    store: &StateStore,
    global: &GlobalConfig,
    wanted: &[PathBuf],
    spool_root: &Path,
    events: &Sender<Event>,
) {
    let scan_started = std::time::SystemTime::now();
    let mut known = match store.known_records() {
        Ok(known) => known,
        Err(e) => {
            let _ = events.send(Event::ScanFailed(e));
            return;
        }
    };
    known.extend(register_fleet(global, store, &known));
    known.sort_by(|a, b| a.0.cmp(&b.0));
    let mut kept = Vec::with_capacity(known.len());
    for (repo, record) in known {
        if crate::pipeline::registrations::is_gone(&repo) {
            match crate::pipeline::registrations::forget_gone_repo(store, &repo) {
                Ok(true) => log::warn!("{}", crate::pipeline::registrations::gone_notice(&repo)),
                Ok(false) => {}
                Err(e) => log::warn!("forgetting {}: {e:#}", repo.display()),
            }
            continue;
        }
        kept.push((repo, record));
    }
    let mut scanned_all = wanted.is_empty();
    let mut chunk = Vec::with_capacity(CHUNK);
    for (repo, record) in kept {
        if !wanted.is_empty() && !wanted.contains(&repo) {
            continue;
        }
        // One repository's broken state never keeps the others from their work.
        let read_at = Instant::now();
        let found = find_work_of(store, global, &repo, record);
        scanned_all &= found.as_ref().is_ok_and(|work| work.scanned);
        chunk.push(Findings { repo, found, read_at });
        if chunk.len() == CHUNK && events.send(Event::Found(std::mem::take(&mut chunk))).is_err() {
            return;
        }
    }
    if !chunk.is_empty() {
        let _ = events.send(Event::Found(chunk));
    }
    if scanned_all {
        crate::pipeline::unrecorded::mark_spool_scanned(spool_root, scan_started);
    }
    let _ = events.send(Event::ScanEnded);
}

/// Registers the repositories under `repos_root` that have mirrors (their own
/// `push-mirror.toml` or a matching fleet mirror) and are not among `known`, so the drift scan
/// and `status` cover the whole fleet, hooked or not; returns them. A problem is logged, not fatal.
fn register_fleet(
    global: &GlobalConfig,
    store: &StateStore,
    known: &[(PathBuf, Result<Option<RepoRecord>>)],
) -> Vec<(PathBuf, Result<Option<RepoRecord>>)> {
    if global.repos_root.is_none() {
        return Vec::new();
    }
    let known: std::collections::BTreeSet<PathBuf> = known.iter().map(|(repo, _)| repo.clone()).collect();
    match crate::pipeline::fleet::register_mirrored(global, store, &known) {
        Ok(new) => {
            if !new.is_empty() {
                log::info!("registered {} new repositories under repos_root", new.len());
            }
            new.into_iter().map(|repo| (repo, Ok(None))).collect()
        }
        Err(e) => {
            log::warn!("looking for repositories under repos_root: {e:#}");
            Vec::new()
        }
    }
}

/// One repository's unrouted refs, drift scan, interrupted and owed updates, and due
/// `verify_interval` checks. `record` is its record as listed (an error: unreadable or corrupt).
fn find_work_of(
    store: &StateStore,
    global: &GlobalConfig,
    repo: &Path,
    record: Result<Option<RepoRecord>>,
) -> Result<RepoWork> {
    // The lock only to heal a corrupt record: the scan reads thousands of healthy ones.
    let record = match record {
        Err(e) if crate::mirror::state::corruption(&e).is_some() => {
            let _lock = store.lock(repo)?;
            store.load_record_healing(repo)?
        }
        other => other?,
    };
    let unrouted = record.is_some_and(|r| !r.pending.is_empty() || r.rebuilt);
    // A broken configuration is reported when routing or updating; its mirrors' state still counts.
    let repo_config = config::load_repo(repo, global);
    // Told once per incident; fixed since (by this run or an earlier one), a new breakage is told again.
    let error = repo_config.as_ref().err().map(ToString::to_string);
    if let Err(e) = store.note_config_error(repo, error.as_deref()) {
        log::warn!("{}: notice of its configuration: {e:#}", repo.display());
    }
    let repo_config = repo_config.ok();
    let mut scanned = false;
    let mut states: BTreeMap<String, MirrorState> = BTreeMap::new();
    if let Some(cfg) = &repo_config
        && repo.exists()
    {
        let scan_started = std::time::SystemTime::now();
        match crate::pipeline::drift::scan_repository(store, repo, cfg) {
            Ok(seen) => {
                // Pushes the hook could not record are found by now.
                crate::pipeline::unrecorded::clear_repo(repo, scan_started);
                scanned = true;
                states.extend(seen.into_iter().map(|state| (state.mirror.clone(), state)));
            }
            Err(e) => log::warn!("{}: drift scan skipped: {e:#}", repo.display()),
        }
    }
    let now = now_ms();
    let mut work = RepoWork {
        scanned,
        unrouted,
        mirrors: Vec::new(),
        verify_due: BTreeMap::new(),
    };
    for mirror in store.mirror_names(repo)? {
        let state = match states.remove(&mirror) {
            Some(state) => state,
            None => store.load_mirror_or_lock_and_heal(repo, &mirror)?,
        };
        let state = recover_interrupted(store, repo, &mirror, state, global.claim_timeout)?;
        if let Some(every) = global.notify.remind_every
            && state.incident.told_failed_at_ms.is_some()
            && let Err(e) = store.remind(repo, &mirror, every)
        {
            log::warn!("{}: mirror {mirror}: queueing a reminder: {e:#}", repo.display());
        }
        if !state.has_work()
            && let Some(config) = repo_config.as_ref().and_then(|cfg: &RepoConfig| cfg.mirror(&mirror))
            && config.enabled
            && verify::is_due(&state, config.verify_interval, now)
        {
            work.verify_due.insert(mirror.clone(), host_of(&config.url));
        }
        work.mirrors.push((mirror, state));
    }
    Ok(work)
}

/// A state left `started` by a worker that died mid-update (nobody holds its push lock, or its
/// host stopped renewing it: see `util/lease.rs`) becomes `to_retry` with a full reconciliation
/// owed: nobody knows how far the update got.
fn recover_interrupted(
    store: &StateStore,
    repo: &Path,
    mirror: &str,
    state: MirrorState,
    claim_timeout: std::time::Duration,
) -> Result<MirrorState> {
    if state.update_status != UpdateStatus::Started {
        return Ok(state);
    }
    let Some(_push_lock) = LeasedLock::try_acquire(&store.push_lock_path(repo, mirror)?, claim_timeout)? else {
        return Ok(state); // still being updated
    };
    // Read again under the lock: an update that ended between the first read and the lock (the
    // scan runs while updates do) left its outcome, and was not interrupted.
    let mut recovered = false;
    let state = store.change_mirror_state(repo, mirror, |state| {
        if state.update_status == UpdateStatus::Started {
            state.update_status = UpdateStatus::ToRetry;
            state.last_error = Some("the previous update was interrupted before it finished".to_string());
            state.request_full_sync(now_ms());
            recovered = true;
        }
        state.clone()
    })?;
    if recovered {
        log::warn!(
            "{}: mirror {mirror}: the previous update was interrupted; reconciling again",
            repo.display()
        );
    }
    Ok(state)
}

impl Drain<'_> {
    /// Schedules what the scan found.
    pub(super) fn found(&mut self, findings: Vec<Findings>) {
        let now = Instant::now();
        for Findings { repo, found, read_at } in findings {
            let work = match found {
                Ok(work) => work,
                Err(e) => {
                    self.fault(&repo, "skipped by this run", &e);
                    continue;
                }
            };
            if work.scanned {
                self.faults.remove(&repo);
            }
            if work.unrouted {
                self.unrouted.insert(repo.clone(), Instant::now());
            }
            for (mirror, state) in work.mirrors {
                let pair = (repo.clone(), mirror.clone());
                if self.finished_at.get(&pair).is_some_and(|ended| *ended >= read_at) {
                    continue; // updated since: what it left is scheduled already
                }
                if state.has_work() {
                    self.schedule(&repo, &mirror, &state);
                } else if let Some(host) = work.verify_due.get(&mirror) {
                    self.hosts.insert(pair.clone(), host.clone());
                    self.verifying.insert(pair.clone());
                    self.due.insert(pair, now);
                }
            }
        }
    }
}
