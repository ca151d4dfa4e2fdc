//! The worker (`run`): drains the spool under a lock, routes reported refs to each mirror's
//! pending state, and runs due mirror updates in parallel, one at a time per (repo, mirror).

use crate::config::{self, GlobalConfig};
use crate::fsutil::{FileLock, now_ms};
use crate::hook::WORKER_LOCK;
use crate::spool::Spool;
use crate::state::{MirrorState, StateStore, UpdateStatus};
use crate::update::update_mirror;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// How often a waiting worker looks for new spool entries.
const POLL: Duration = Duration::from_millis(25);
/// How long to wait before routing again for a repository whose configuration is broken.
const CONFIG_RETRY: Duration = Duration::from_secs(5);
/// How long to wait before trying a pair that another process is updating.
const BUSY_RETRY: Duration = Duration::from_millis(250);
/// Spool entries ingested per pass of the drain loop.
const INGEST_SLICE: usize = 64;
/// How long to wait before retrying a pair whose update ended in an error the state could not record.
const ERROR_RETRY: Duration = Duration::from_secs(30);

/// A (repository, mirror) pair.
type Pair = (PathBuf, String);

/// What a `run` did, for its exit status and log.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub entries_ingested: usize,
    pub entries_quarantined: usize,
    pub updates: usize,
    pub failed_updates: usize,
    /// Another worker held the lock and will drain what we saw.
    pub deferred_to_other_worker: bool,
}

/// Options of `run`.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Only update these repositories (all entries are still ingested).
    pub repos: Vec<PathBuf>,
    /// Wait for a worker that is draining to finish, then drain, instead of leaving it the work.
    pub wait: bool,
    /// Also visit every registered repository: work left by earlier runs,
    /// interrupted updates, and the drift scan (cron and manual runs; a
    /// hook's worker only handles what the spool brings, to stay cheap).
    pub scan_registered: bool,
}

/// Drains the spool and runs due mirror updates until nothing is due within
/// `worker_linger`. Safe to run concurrently: one drains, the others leave.
/// How old a dead process's temporary directory must be before a worker removes it.
const ORPHANED_TEMP_DIR_AGE: std::time::Duration = std::time::Duration::from_secs(10 * 60);

pub fn run(global: &GlobalConfig, options: &RunOptions) -> Result<RunSummary> {
    let spool = Spool::new(&global.spool_dir);
    spool
        .ensure_dirs()
        .with_context(|| format!("creating the spool {}", global.spool_dir.display()))?;
    let store = StateStore::new(&global.state_dir);
    let mut summary = RunSummary::default();
    let orphans = crate::fsutil::remove_orphaned_temp_dirs(&std::env::temp_dir(), ORPHANED_TEMP_DIR_AGE);
    if orphans > 0 {
        log::info!("removed {orphans} temporary directories left by killed workers");
    }
    loop {
        let lock_path = global.spool_dir.join(WORKER_LOCK);
        let lock = if options.wait {
            Some(FileLock::acquire(&lock_path)?)
        } else {
            FileLock::try_acquire(&lock_path)?
        };
        let Some(lock) = lock else {
            log::debug!("another worker is draining {}", global.spool_dir.display());
            summary.deferred_to_other_worker = true;
            break;
        };
        Drain::new(global, options, &spool, &store).run(&mut summary)?;
        drop(lock);
        // A hook may have spooled after our last look but before we released
        // the lock, and its worker found the lock taken: look once more.
        if !spool.has_waiting() {
            break;
        }
    }
    Ok(summary)
}

struct Drain<'a> {
    global: &'a GlobalConfig,
    options: &'a RunOptions,
    spool: &'a Spool,
    store: &'a StateStore,
    /// Repositories with refs not yet routed to mirrors, and when to try routing them.
    unrouted: BTreeMap<PathBuf, u64>,
    /// Pairs with work, and when each is due.
    due: BTreeMap<Pair, u64>,
    running: BTreeSet<Pair>,
    /// Repositories whose configuration error was already logged (once each).
    config_errors: BTreeMap<PathBuf, String>,
}

impl<'a> Drain<'a> {
    fn new(global: &'a GlobalConfig, options: &'a RunOptions, spool: &'a Spool, store: &'a StateStore) -> Drain<'a> {
        Drain {
            global,
            options,
            spool,
            store,
            unrouted: BTreeMap::new(),
            due: BTreeMap::new(),
            running: BTreeSet::new(),
            config_errors: BTreeMap::new(),
        }
    }

    fn wanted(&self, repo: &Path) -> bool {
        self.options.repos.is_empty() || self.options.repos.iter().any(|r| r == repo)
    }

    fn run(mut self, summary: &mut RunSummary) -> Result<()> {
        let requeued = self.spool.requeue_claimed()?;
        if requeued > 0 {
            log::info!("requeued {requeued} spool entries claimed by a worker that stopped");
        }
        match self.spool.remove_stale_temp_files() {
            Ok(0) => {}
            Ok(n) => {
                log::warn!("removed {n} unpublished spool files of hooks that died; the drift scan covers their pushes")
            }
            Err(e) => log::warn!("cleaning the spool's tmp/: {e}"),
        }
        self.adopt_fallback_spool();
        let result = self.drain(summary);
        self.spool.release_claims();
        result
    }

    /// Takes over entries hooks wrote to the default spool while the global
    /// configuration (which names this spool) could not be read.
    fn adopt_fallback_spool(&self) {
        let fallback = Spool::new(&config::default_spool_dir());
        if fallback.root() == self.spool.root() || !fallback.has_waiting() {
            return;
        }
        match self.spool.adopt(&fallback) {
            Ok(n) => log::info!("took {n} entries from the fallback spool {}", fallback.root().display()),
            Err(e) => log::error!("reading the fallback spool {}: {e}", fallback.root().display()),
        }
    }

    fn drain(&mut self, summary: &mut RunSummary) -> Result<()> {
        let mut scanned = false;
        let (done_tx, done_rx) = mpsc::channel::<(Pair, Result<PairOutcome>)>();
        std::thread::scope(|scope| -> Result<()> {
            loop {
                // A bounded slice per pass: updates start while a large spool is still being read.
                self.ingest(summary, INGEST_SLICE)?;
                self.route_due_repos();
                // Once the spool is read, so the drift scan does not mistake spooled refs for unreported ones.
                if !scanned && !self.spool.has_waiting() {
                    self.find_existing_work()?;
                    scanned = true;
                }
                while let Ok((pair, outcome)) = done_rx.try_recv() {
                    self.finish(pair, outcome, summary);
                }
                let now = now_ms();
                if !self.global.silent_mode {
                    let ready: Vec<Pair> = self
                        .due
                        .iter()
                        .filter(|(pair, due)| **due <= now && !self.running.contains(*pair))
                        .map(|(pair, _)| pair.clone())
                        .collect();
                    for pair in ready {
                        if self.running.len() >= self.global.max_parallel {
                            break;
                        }
                        self.due.remove(&pair);
                        // Read afresh: the admin may have changed it since it was scheduled.
                        let Some(mirror_config) = self.mirror_config(&pair) else {
                            continue;
                        };
                        self.running.insert(pair.clone());
                        let tx = done_tx.clone();
                        let (global, store) = (self.global, self.store);
                        scope.spawn(move || {
                            // A bug in one update must not leave the pair "running" for ever.
                            let update = || update_pair(store, global, &pair, &mirror_config);
                            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(update))
                                .unwrap_or_else(|_| {
                                    Err(anyhow::anyhow!("the update panicked (a bug; please report it)"))
                                });
                            let _ = tx.send((pair, outcome));
                        });
                    }
                }
                let spool_waiting = self.spool.has_waiting();
                if self.running.is_empty() && !spool_waiting && self.idle_long_enough(now) {
                    return Ok(());
                }
                let next_due = self.due.values().min().copied().unwrap_or(u64::MAX);
                let wait = if spool_waiting {
                    Duration::ZERO // more entries to read: don't sleep
                } else {
                    POLL.min(Duration::from_millis(next_due.saturating_sub(now)))
                        .max(Duration::from_millis(1))
                };
                if let Ok((pair, outcome)) = done_rx.recv_timeout(wait) {
                    self.finish(pair, outcome, summary);
                }
            }
        })
    }

    /// Whether nothing is due soon enough to be worth waiting for.
    fn idle_long_enough(&self, now: u64) -> bool {
        if self.global.silent_mode {
            return true;
        }
        let linger = u64::try_from(self.global.worker_linger.as_millis()).unwrap_or(u64::MAX);
        // Repositories with a broken configuration wait for a person, not for us.
        let soon = |t: &u64| *t <= now.saturating_add(linger);
        let routable_soon = self
            .unrouted
            .iter()
            .any(|(repo, t)| soon(t) && !self.config_errors.contains_key(repo));
        !self.due.values().any(soon) && !routable_soon
    }

    /// Pairs and repositories left with work by earlier runs (failures to
    /// retry, broken configs, interrupted updates), and drifted refs.
    fn find_existing_work(&mut self) -> Result<()> {
        if !self.options.scan_registered {
            return Ok(());
        }
        register_fleet(self.global, self.store);
        match crate::registrations::forget_gone(self.store) {
            Ok(gone) => gone
                .iter()
                .for_each(|repo| log::warn!("{}", crate::registrations::gone_notice(repo))),
            Err(e) => log::warn!("forgetting deleted repositories: {e:#}"),
        }
        for repo in self.store.known_repos()? {
            if !self.wanted(&repo) {
                continue;
            }
            if self.store.load_record(&repo)?.is_some_and(|r| !r.pending.is_empty()) {
                self.unrouted.insert(repo.clone(), 0);
            }
            if repo.exists()
                && let Err(e) = crate::drift::scan_repository(self.store, self.global, &repo)
            {
                log::warn!("{}: drift scan skipped: {e:#}", repo.display());
            }
            for mirror in self.store.mirror_names(&repo)? {
                let state = self.recover_interrupted(&repo, &mirror)?;
                if state.has_work() {
                    self.schedule(&repo, &mirror, &state);
                }
            }
        }
        Ok(())
    }

    /// A state left `started` by a worker that died mid-update (nobody holds
    /// its push lock) becomes `to_retry` with a full reconciliation owed:
    /// nobody knows how far the update got.
    fn recover_interrupted(&self, repo: &Path, mirror: &str) -> Result<MirrorState> {
        let state = self.store.load_mirror(repo, mirror)?;
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
    fn schedule(&mut self, repo: &Path, mirror: &str, state: &MirrorState) {
        let pair = (repo.to_path_buf(), mirror.to_string());
        self.due.remove(&pair);
        if self.running.contains(&pair) {
            return; // `finish` schedules it from the state its update leaves
        }
        let Some(mirror_config) = self.mirror_config(&pair) else {
            return;
        };
        let due = crate::schedule::due_at(state, mirror_config.delay, mirror_config.min_interval, now_ms());
        self.due.insert(pair, due);
    }

    /// Moves spool entries into their repositories' records, then deletes them.
    fn ingest(&mut self, summary: &mut RunSummary, max_entries: usize) -> Result<()> {
        for name in self.spool.waiting()?.into_iter().take(max_entries) {
            let Some(claimed) = self.spool.claim(&name)? else {
                continue;
            };
            crate::failpoint::hit("ingest.after_claim");
            let entry = match self.spool.read(&claimed) {
                Ok(entry) => entry,
                Err(e) => {
                    let moved = self.spool.quarantine(&claimed)?;
                    log::error!("spool entry {name} is unusable ({e}); moved to {}", moved.display());
                    summary.entries_quarantined += 1;
                    continue;
                }
            };
            if !looks_like_a_repository(&entry.repo) {
                // A repository that is gone is forgotten here, in the same one line.
                let forgotten =
                    crate::registrations::is_gone(&entry.repo) && self.store.forget(&entry.repo).unwrap_or(false);
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
            {
                let _lock = self.store.lock(&entry.repo)?;
                let mut record = self.store.load_record(&entry.repo)?.unwrap_or_default();
                record.repo = entry.repo.clone();
                record.record(&entry.updates, entry.received_at_ms);
                self.store.save_record(&record)?;
            }
            crate::failpoint::hit("ingest.after_record");
            self.spool.retire(&claimed)?;
            summary.entries_ingested += 1;
            self.unrouted.insert(entry.repo, 0);
        }
        Ok(())
    }

    /// Hands each repository's reported refs to its mirrors' pending state.
    fn route_due_repos(&mut self) {
        let now = now_ms();
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
                    self.config_errors.remove(&repo);
                }
                Err(e) => {
                    let message = format!("{e:#}");
                    if self.config_errors.get(&repo) != Some(&message) {
                        log::error!("{}: reported refs wait until this is fixed: {message}", repo.display());
                        self.config_errors.insert(repo.clone(), message);
                    }
                    self.unrouted.insert(repo, now + CONFIG_RETRY.as_millis() as u64);
                }
            }
        }
    }

    fn route(&mut self, repo: &Path) -> Result<()> {
        let repo_config = config::load_repo(repo, self.global)?;
        let _lock = self.store.lock(repo)?;
        let Some(mut record) = self.store.load_record(repo)? else {
            return Ok(());
        };
        if record.pending.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut routed = Vec::new();
        for mirror in &repo_config.mirrors {
            let mut state = self.store.load_mirror(repo, &mirror.name)?;
            let is_new = state.last_update_at_ms.is_none() && !state.has_work();
            for (name, reported) in &record.pending {
                state.add_pending(name, reported, now);
            }
            if is_new && state.full_sync_seq.is_none() && state.update_status == crate::state::UpdateStatus::None {
                // A mirror never updated before gets everything, not just this push.
                state.request_full_sync(now);
            }
            self.store.save_mirror(&state)?;
            crate::failpoint::hit("route.after_mirror_saved");
            routed.push((mirror.name.clone(), state));
        }
        record.pending.clear();
        record.pending_since_ms = None;
        self.store.save_record(&record)?;
        drop(_lock);
        if self.wanted(repo) {
            for (mirror, state) in routed {
                self.schedule(repo, &mirror, &state);
            }
        }
        Ok(())
    }

    /// The pair's current, enabled configuration; `None` (logged once) otherwise.
    fn mirror_config(&mut self, pair: &Pair) -> Option<crate::config::MirrorConfig> {
        match config::load_repo(&pair.0, self.global) {
            Ok(cfg) => {
                self.config_errors.remove(&pair.0);
                cfg.mirrors.into_iter().find(|m| m.name == pair.1 && m.enabled)
            }
            Err(e) => {
                let message = e.to_string();
                if self.config_errors.get(&pair.0) != Some(&message) {
                    log::error!("{}: updates wait until this is fixed: {message}", pair.0.display());
                    self.config_errors.insert(pair.0.clone(), message);
                }
                None
            }
        }
    }

    fn finish(&mut self, pair: Pair, outcome: Result<PairOutcome>, summary: &mut RunSummary) {
        self.running.remove(&pair);
        match outcome {
            Ok(PairOutcome::Busy) => {
                self.due.insert(pair, now_ms() + BUSY_RETRY.as_millis() as u64);
                return;
            }
            Ok(PairOutcome::Updated { success: true }) => summary.updates += 1,
            Ok(PairOutcome::Updated { success: false }) => {
                summary.updates += 1;
                summary.failed_updates += 1;
            }
            Err(e) => {
                // The state could not record it (disk trouble, a bug): back off, don't spin.
                summary.failed_updates += 1;
                log::error!("{}: mirror {}: {e:#}", pair.0.display(), pair.1);
                self.due
                    .insert(pair, now_ms().saturating_add(ERROR_RETRY.as_millis() as u64));
                return;
            }
        }
        match self.store.load_mirror(&pair.0, &pair.1) {
            Ok(state) if state.has_work() => self.schedule(&pair.0, &pair.1, &state),
            Ok(_) => {}
            Err(e) => log::error!("{e:#}"),
        }
    }
}

/// Registers the repositories under `repos_root` that have mirrors (their own
/// `push-mirror.toml` or a matching fleet mirror) so the drift scan and
/// `status` cover the whole fleet, hooked or not. A problem is logged, not fatal.
fn register_fleet(global: &GlobalConfig, store: &StateStore) {
    match crate::fleet::register_mirrored(global, store) {
        Ok(0) => {}
        Ok(n) => log::info!("registered {n} new repositories under repos_root"),
        Err(e) => log::warn!("looking for repositories under repos_root: {e:#}"),
    }
}

/// Whether a path is plausibly a git directory (cheap: the hook's entries are
/// checked again when the repository is opened).
fn looks_like_a_repository(path: &Path) -> bool {
    path.join("HEAD").is_file() && path.join("objects").is_dir()
}

/// What became of one dispatched pair.
enum PairOutcome {
    Updated {
        success: bool,
    },
    /// Another process (`sync`) is updating this pair; try again shortly.
    Busy,
}

/// Updates one pair unless another process is already updating it.
fn update_pair(
    store: &StateStore,
    global: &GlobalConfig,
    pair: &Pair,
    mirror: &crate::config::MirrorConfig,
) -> Result<PairOutcome> {
    let (repo, name) = pair;
    let Some(_push_lock) = FileLock::try_acquire(&store.push_lock_path(repo, name)?)? else {
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
        store.update_mirror(repo, name, |state| {
            state.pending.clear();
            state.full_sync_seq = None;
            state.pending_since_ms = None;
            state.update_status = UpdateStatus::Failed;
            state.last_error = Some("the repository no longer exists (deleted or moved)".to_string());
        })?;
        return Ok(PairOutcome::Updated { success: false });
    }
    let report = update_mirror(store, global, repo, mirror, false)?;
    let changed = report
        .refs
        .iter()
        .filter(|r| !matches!(r.outcome, crate::update::RefOutcome::UpToDate))
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
    Ok(PairOutcome::Updated {
        success: !report.is_failure(),
    })
}
