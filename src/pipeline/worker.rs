//! The worker (`run`): drains the spool under a lock, routes reported refs to each mirror's
//! pending state, and runs due mirror updates in parallel, one at a time per (repo, mirror).
//!
//! `Drain` (one worker's drain) holds the schedule every part of the worker reads and changes.
//! This file has the struct and its core `impl`: the loop, dispatching updates, scheduling what
//! they leave. Each other file that adds to `Drain` does so in one `impl` block for the one
//! concern its `//!` line names, with that concern's free functions and types: the work's
//! sources (`intake.rs`), recording a batch of entries (`coalesce.rs`), the scan's findings
//! (`scan.rs`), moving to other directories (`handover.rs`); `pair.rs` needs no `Drain`.

mod coalesce;
mod handover;
mod intake;
mod pair;
mod scan;
mod takeover;

use crate::config::live::{Change, GlobalWatch};
use crate::config::{self, GlobalConfig};
use crate::mirror::state::StateStore;
use crate::pipeline::slots::{Slots, host_of};
use crate::pipeline::spool::{Spool, WORKER_LOCK};
use crate::util::lease::{Heartbeat, LeasedLock};
use anyhow::{Context, Result};
use handover::Handover;
use pair::{PairOutcome, update_pair};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// How often a waiting worker looks for new spool entries.
const POLL: Duration = Duration::from_millis(25);
/// How long to wait before routing again for a repository whose configuration is broken.
const CONFIG_RETRY: Duration = Duration::from_secs(5);
/// How long to wait before trying a pair that another process is updating.
const BUSY_RETRY: Duration = Duration::from_millis(250);
/// How long to wait before retrying a pair whose update ended in an error the state could not record.
const ERROR_RETRY: Duration = Duration::from_secs(30);
/// How long a spool entry whose refs could not be recorded (full disk, broken state directory)
/// waits before the next try; it stays claimed meanwhile, and a later worker takes it over.
const RECORD_RETRY: Duration = Duration::from_secs(5);
/// Failed updates of one pair after which a worker leaves the pair to the next run (cron) or the
/// next push: a worker ends in bounded time whatever the retry settings (a backoff shorter than
/// `worker_linger` would otherwise keep it retrying a dead mirror for ever). A new push to the
/// pair's repository gives it this many attempts again.
pub const MAX_FAILED_ATTEMPTS_PER_RUN: u32 = 3;

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
    /// `--config`, so a change of the global configuration is found where the command found it.
    pub config_file: Option<PathBuf>,
}

/// How old a dead process's temporary directory must be before a worker removes it.
const ORPHANED_TEMP_DIR_AGE: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Drains the spool and runs due mirror updates until nothing is due within
/// `worker_linger`. Safe to run concurrently: one drains, the others leave. When the global
/// configuration names another spool or state directory meanwhile, the worker claims nothing
/// more from the old ones, finishes what runs, and goes on on the new ones with what it leaves
/// unfinished (see `worker/handover.rs`).
pub fn run(global: &GlobalConfig, options: &RunOptions) -> Result<RunSummary> {
    let mut summary = RunSummary::default();
    let mut global = Arc::new(global.clone());
    let mut handover = None;
    while let Some(next) = run_on(&global, options, handover.take(), &mut summary)? {
        log::warn!(
            "going on with the spool {} and the state directory {} (this worker keeps its log file)",
            next.global.spool_dir.display(),
            next.global.state_dir.display()
        );
        global = Arc::clone(&next.global);
        handover = Some(next);
    }
    Ok(summary)
}

/// [`run`] on the directories `global` names, taking over `handover` (what a worker on other
/// directories left); returns what it leaves to the directories the configuration names now,
/// when they changed.
fn run_on(
    global: &Arc<GlobalConfig>,
    options: &RunOptions,
    mut handover: Option<Handover>,
    summary: &mut RunSummary,
) -> Result<Option<Handover>> {
    let spool = Spool::new(&global.spool_dir).with_claim_timeout(global.claim_timeout);
    spool
        .ensure_dirs()
        .with_context(|| format!("creating the spool {}", global.spool_dir.display()))?;
    // Checked once they exist (whoever made them): what is in them decides what is pushed where.
    crate::pipeline::trust::check_dirs(global)?;
    if let Err(e) = crate::pipeline::unrecorded::prepare_spool(&global.spool_dir) {
        log::warn!("preparing {}: {e}", global.spool_dir.display());
    }
    let store = StateStore::new(&global.state_dir).telling(global.notify.is_configured());
    // Notices go out from a thread of their own: a notifier that hangs never delays a mirror.
    let notifier = crate::notify::Notifier::start(Arc::clone(global), store.clone());
    let orphans = crate::util::fsutil::remove_orphaned_temp_dirs(&std::env::temp_dir(), ORPHANED_TEMP_DIR_AGE);
    if orphans > 0 {
        log::info!("removed {orphans} temporary directories left by killed workers");
    }
    let leftovers = crate::git::orphans::kill_leftovers();
    if leftovers > 0 {
        log::warn!("killed {leftovers} git processes left running by a worker that died");
    }
    // Renews this process's claims and locks while it runs: another host sharing the spool and
    // state takes them over only once they stop being renewed (see `util/lease.rs`).
    let _heartbeat = Heartbeat::start(global.claim_timeout);
    let mut current = Arc::clone(global);
    let ended = loop {
        let lock_path = global.spool_dir.join(WORKER_LOCK);
        // Work handed over is not left to a worker that may not know of it: wait for it.
        let lock = if options.wait || handover.is_some() {
            Some(LeasedLock::acquire(&lock_path, global.claim_timeout)?)
        } else {
            LeasedLock::try_acquire(&lock_path, global.claim_timeout)?
        };
        let Some(lock) = lock else {
            log::debug!("another worker is draining {}", global.spool_dir.display());
            summary.deferred_to_other_worker = true;
            break Ok(None);
        };
        let drained = Drain::new(&current, options, &spool, &store, notifier.as_ref()).run(handover.take(), summary);
        drop(lock);
        match drained {
            Err(e) => break Err(e),
            Ok(DrainEnd::Moved(next)) => break Ok(Some(next)),
            // Nothing more starts until the file is fixed: left to the next worker.
            Ok(DrainEnd::Paused) => break Ok(None),
            Ok(DrainEnd::Idle(ended_with)) => {
                current = ended_with;
                // A hook may have spooled after our last look but before we released
                // the lock, and its worker found the lock taken: look once more.
                if !spool.has_waiting() {
                    break Ok(None);
                }
            }
        }
    };
    if let Some(notifier) = notifier {
        notifier.finish();
    }
    ended
}

/// How a drain ended.
enum DrainEnd {
    /// Nothing is due within `worker_linger`; the configuration it ended with.
    Idle(Arc<GlobalConfig>),
    /// The global configuration cannot be used: nothing starts until it is fixed.
    Paused,
    /// The configuration names other directories: what the drain leaves to them.
    Moved(Handover),
}

struct Drain<'a> {
    /// The global configuration as it is on disk now (see [`GlobalWatch`]).
    global: Arc<GlobalConfig>,
    watch: GlobalWatch,
    /// Why no update may start: the global configuration cannot be read now.
    paused: Option<String>,
    /// The spool or state directory was changed: claim and start nothing more, leave once
    /// idle, handing what is left to the configuration it names (`moved_to`).
    stopping: bool,
    moved_to: Option<Arc<GlobalConfig>>,
    options: &'a RunOptions,
    spool: &'a Spool,
    store: &'a StateStore,
    /// Repositories with refs not yet routed to mirrors, and when to try routing them. Times
    /// inside the worker are on the monotonic clock: a jump of the wall clock moves no wait.
    unrouted: BTreeMap<PathBuf, Instant>,
    /// Pairs with work, and when each is due.
    due: BTreeMap<Pair, Instant>,
    /// Pairs being updated, and which may start next (see [`crate::pipeline::slots`]).
    slots: Slots<Pair>,
    /// The host each scheduled pair's mirror is on.
    hosts: BTreeMap<Pair, String>,
    /// Scheduled pairs whose `verify_interval` check is due (and nothing else).
    verifying: BTreeSet<Pair>,
    /// Claimed spool entries whose refs could not be recorded yet, and when to try again.
    held: Vec<(PathBuf, Instant)>,
    /// Repositories whose configuration error was already logged (once each).
    config_errors: BTreeMap<PathBuf, String>,
    /// Other per-repository faults already logged (state that cannot be read or written).
    faults: BTreeMap<PathBuf, String>,
    /// Failed updates of each pair in this run since its last new push (see
    /// [`MAX_FAILED_ATTEMPTS_PER_RUN`]).
    failed_attempts: BTreeMap<Pair, u32>,
    /// When each pair's last update in this run ended: the scan's findings about a pair read
    /// before that are stale (its update's end scheduled what it left).
    finished_at: BTreeMap<Pair, Instant>,
    /// Sends the notices the state queues (told of configuration changes).
    notifier: Option<&'a crate::notify::Notifier>,
    /// When the claims of other hosts were last looked at (see [`Self::take_over_stale_claims`]).
    claims_checked_at: Instant,
}

impl<'a> Drain<'a> {
    fn new(
        global: &GlobalConfig,
        options: &'a RunOptions,
        spool: &'a Spool,
        store: &'a StateStore,
        notifier: Option<&'a crate::notify::Notifier>,
    ) -> Drain<'a> {
        Drain {
            global: Arc::new(global.clone()),
            watch: GlobalWatch::new(options.config_file.as_deref(), global),
            paused: None,
            stopping: false,
            moved_to: None,
            options,
            spool,
            store,
            unrouted: BTreeMap::new(),
            due: BTreeMap::new(),
            slots: Slots::default(),
            hosts: BTreeMap::new(),
            verifying: BTreeSet::new(),
            held: Vec::new(),
            config_errors: BTreeMap::new(),
            faults: BTreeMap::new(),
            failed_attempts: BTreeMap::new(),
            finished_at: BTreeMap::new(),
            notifier,
            claims_checked_at: Instant::now(),
        }
    }

    /// Applies a change of the global configuration file before anything new starts.
    fn refresh_global(&mut self) {
        match self.watch.check() {
            Change::None => {}
            Change::Reloaded => {
                log::info!("the global configuration changed; the next updates use it");
                self.global = self.watch.current();
                self.paused = None;
                self.store.set_telling(self.global.notify.is_configured());
                if let Some(notifier) = self.notifier {
                    notifier.reconfigure(Arc::clone(&self.global));
                }
                // Routing that failed on the old configuration may work now.
                let now = Instant::now();
                for repo in self.config_errors.keys() {
                    self.unrouted.entry(repo.clone()).and_modify(|t| *t = now);
                }
            }
            Change::Broken(message) => {
                if self.paused.as_ref() != Some(&message) {
                    log::error!(
                        "the global configuration cannot be used, so no update starts until it is fixed: {message}"
                    );
                    self.paused = Some(message);
                }
            }
            Change::Moved(to) => {
                if !self.stopping {
                    log::warn!(
                        "the global configuration now names another spool or state directory; this worker \
                         claims nothing more, finishes what runs and hands the rest to the new ones"
                    );
                    self.stopping = true;
                }
                self.moved_to = Some(to);
            }
        }
    }

    /// Whether new updates may start (silent mode, a broken or moved configuration: no).
    fn may_start_updates(&self) -> bool {
        !self.global.silent_mode && self.paused.is_none() && !self.stopping
    }

    /// Whether spool entries may be claimed: not by a worker that is leaving (its directories
    /// were moved) or that cannot tell where they belong (the global configuration is broken).
    fn may_claim(&self) -> bool {
        self.paused.is_none() && !self.stopping
    }

    /// Logs a per-repository fault once (until it changes); the repository is skipped meanwhile.
    fn fault(&mut self, repo: &Path, what: &str, error: &anyhow::Error) {
        let message = format!("{what}: {error:#}");
        if self.faults.get(repo) != Some(&message) {
            log::error!("{}: {message}", repo.display());
            self.faults.insert(repo.to_path_buf(), message);
        }
    }

    fn wanted(&self, repo: &Path) -> bool {
        self.options.repos.is_empty() || self.options.repos.iter().any(|r| r == repo)
    }

    fn run(mut self, handover: Option<Handover>, summary: &mut RunSummary) -> Result<DrainEnd> {
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
        if let Some(handover) = handover {
            self.take_over(handover);
        }
        let result = self.drain(summary);
        if !self.may_claim() {
            // Entries held back (their refs could not be recorded) go back to the spool, for the
            // worker the configuration names now.
            self.release_held();
        }
        self.spool.release_claims();
        result?;
        Ok(if let Some(to) = self.moved_to.take() {
            DrainEnd::Moved(self.hand_over(to))
        } else if self.paused.is_some() {
            DrainEnd::Paused
        } else {
            DrainEnd::Idle(self.global)
        })
    }

    fn drain(&mut self, summary: &mut RunSummary) -> Result<()> {
        let mut scan = ScanProgress::NotStarted;
        let (events_tx, events_rx) = mpsc::channel::<Event>();
        std::thread::scope(|scope| -> Result<()> {
            loop {
                self.refresh_global();
                if self.may_claim() {
                    self.take_over_stale_claims();
                    // Everything waiting is recorded before updates start: one update per pair carries it.
                    self.ingest(summary)?;
                    self.retry_held(summary);
                }
                if !self.stopping {
                    self.route_due_repos();
                }
                // Once the spool is read, so the drift scan does not mistake spooled refs for unreported ones.
                if scan == ScanProgress::NotStarted && !self.stopping && !self.spool.has_waiting() {
                    scan = ScanProgress::Done;
                    if self.options.scan_registered {
                        scan = ScanProgress::Running;
                        let (global, store, tx) = (Arc::clone(&self.global), self.store, events_tx.clone());
                        let (wanted, spool_root) = (self.options.repos.clone(), self.spool.root().to_path_buf());
                        scope.spawn(move || scan::scan_registered(store, &global, &wanted, &spool_root, &tx));
                    }
                }
                while let Ok(event) = events_rx.try_recv() {
                    self.handle(event, &mut scan, summary)?;
                }
                let now = Instant::now();
                if self.may_start_updates() {
                    while let Some((pair, mirror_config)) = self.next_to_start(now) {
                        let verify_only = self.verifying.remove(&pair);
                        let tx = events_tx.clone();
                        let (global, store) = (Arc::clone(&self.global), self.store);
                        scope.spawn(move || {
                            // A bug in one update must not leave the pair "running" for ever.
                            let update = || update_pair(store, &global, &pair, &mirror_config, verify_only);
                            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(update))
                                .unwrap_or_else(|_| {
                                    Err(anyhow::anyhow!("the update panicked (a bug; please report it)"))
                                });
                            let _ = tx.send(Event::Finished(pair, outcome));
                        });
                    }
                }
                // Entries this worker may not claim are left to the next one.
                let spool_waiting = self.may_claim() && self.spool.has_waiting();
                let scanning = scan == ScanProgress::Running;
                if self.slots.is_empty() && !spool_waiting && !scanning && self.idle_long_enough(now) {
                    return Ok(());
                }
                let wait = if spool_waiting {
                    Duration::ZERO // more entries to read: don't sleep
                } else {
                    self.wait_for_work(now)
                };
                if let Ok(event) = events_rx.recv_timeout(wait) {
                    self.handle(event, &mut scan, summary)?;
                }
            }
        })
    }

    /// The next due pair that may start now, taken off the schedule and given its slot, with its
    /// configuration read afresh (the admin may have changed it since it was scheduled). `None`
    /// when every slot is taken or nothing due may start.
    fn next_to_start(&mut self, now: Instant) -> Option<(Pair, crate::config::MirrorConfig)> {
        let max_parallel = self.global.max_parallel;
        loop {
            let instant = Instant::now();
            if !self.slots.any_free(max_parallel, instant) {
                return None;
            }
            // A mirror host with a slow or hung update gets no slot kept for the others.
            let pair = self
                .due
                .iter()
                .filter(|(pair, due)| **due <= now && !self.slots.is_running(pair))
                .map(|(pair, _)| pair)
                .find(|pair| {
                    let host = self.hosts.get(*pair).map_or("", String::as_str);
                    self.slots.may_start(host, max_parallel, instant)
                })?
                .clone();
            self.due.remove(&pair);
            let Some(mirror_config) = self.mirror_config(&pair) else {
                self.verifying.remove(&pair);
                continue;
            };
            let host = host_of(&mirror_config.url);
            self.hosts.insert(pair.clone(), host.clone());
            self.slots.start(pair.clone(), host, instant);
            return Some((pair, mirror_config));
        }
    }

    /// How long the drain loop may sleep when the spool is empty: until the next pair is due,
    /// at most [`POLL`]. Pairs already due that could not start (every slot taken, or their host
    /// is slow) wait for an update to finish, which wakes the loop at once: they are no reason
    /// to poll faster.
    fn wait_for_work(&self, now: Instant) -> Duration {
        let until_due = self
            .due
            .values()
            .filter(|due| **due > now)
            .min()
            .map_or(POLL, |due| due.saturating_duration_since(now));
        POLL.min(until_due).max(Duration::from_millis(1))
    }

    /// Takes in what an update or the scan reports.
    fn handle(&mut self, event: Event, scan: &mut ScanProgress, summary: &mut RunSummary) -> Result<()> {
        match event {
            Event::Finished(pair, outcome) => self.finish(pair, outcome, summary),
            Event::Found(findings) => self.found(findings),
            Event::ScanEnded => *scan = ScanProgress::Done,
            Event::ScanFailed(e) => return Err(e),
        }
        Ok(())
    }

    /// Whether nothing is due soon enough to be worth waiting for.
    fn idle_long_enough(&self, now: Instant) -> bool {
        if !self.may_start_updates() {
            return true;
        }
        if self.takeover_due_soon() {
            return false;
        }
        let linger = self.global.worker_linger;
        // Repositories with a broken configuration wait for a person, not for us.
        let soon = |t: &Instant| t.saturating_duration_since(now) <= linger;
        let routable_soon = self
            .unrouted
            .iter()
            .any(|(repo, t)| soon(t) && !self.config_errors.contains_key(repo));
        !self.due.values().any(soon) && !routable_soon
    }

    /// The pair's current, enabled configuration; `None` (logged once) otherwise.
    fn mirror_config(&mut self, pair: &Pair) -> Option<crate::config::MirrorConfig> {
        match config::load_repo(&pair.0, &self.global) {
            Ok(cfg) => {
                self.config_fixed(&pair.0);
                cfg.mirrors.into_iter().find(|m| m.name == pair.1 && m.enabled)
            }
            Err(e) => {
                let message = e.to_string();
                if self.config_errors.get(&pair.0) != Some(&message) {
                    log::error!("{}: updates wait until this is fixed: {message}", pair.0.display());
                    self.config_broken(&pair.0, &message);
                }
                None
            }
        }
    }

    fn finish(&mut self, pair: Pair, outcome: Result<PairOutcome>, summary: &mut RunSummary) {
        let now = Instant::now();
        self.slots.finish(&pair, now);
        self.finished_at.insert(pair.clone(), now);
        match outcome {
            Ok(PairOutcome::Busy) => {
                self.due.insert(pair, Instant::now() + BUSY_RETRY);
                return;
            }
            Ok(PairOutcome::Verified) => return,
            // Removed, re-pointed or disabled meanwhile: whatever is configured now is scheduled
            // from its state below (a removed mirror has none).
            Ok(PairOutcome::Stopped) => {}
            Ok(PairOutcome::Updated { success: true }) => {
                summary.updates += 1;
                self.failed_attempts.remove(&pair);
            }
            Ok(PairOutcome::Updated { success: false }) => {
                summary.updates += 1;
                summary.failed_updates += 1;
                if self.gives_up_on(&pair) {
                    return;
                }
            }
            Err(e) => {
                // The state could not record it (disk trouble, a bug): back off, don't spin.
                summary.failed_updates += 1;
                log::error!("{}: mirror {}: {e:#}", pair.0.display(), pair.1);
                if !self.gives_up_on(&pair) {
                    self.due.insert(pair, Instant::now() + ERROR_RETRY);
                }
                return;
            }
        }
        match self.store.load_mirror(&pair.0, &pair.1) {
            Ok(state) if state.has_work() => self.schedule(&pair.0, &pair.1, &state),
            Ok(_) => {}
            Err(e) => log::error!("{e:#}"),
        }
    }

    /// Counts a failed update of `pair`; whether that was its last attempt in this run (see
    /// [`MAX_FAILED_ATTEMPTS_PER_RUN`]). Its state keeps the next attempt's time for `run`.
    fn gives_up_on(&mut self, pair: &Pair) -> bool {
        let failed = self.failed_attempts.entry(pair.clone()).or_insert(0);
        *failed += 1;
        if *failed < MAX_FAILED_ATTEMPTS_PER_RUN {
            return false;
        }
        log::info!(
            "{}: mirror {}: {} failed attempts in this run; the next `git-push-mirror run` or push tries again",
            pair.0.display(),
            pair.1,
            *failed
        );
        self.due.remove(pair);
        true
    }
}

/// Whether a path is plausibly a git directory (cheap: the hook's entries are
/// checked again when the repository is opened).
fn looks_like_a_repository(path: &Path) -> bool {
    path.join("HEAD").is_file() && path.join("objects").is_dir()
}

/// What the drain loop hears from the threads it started.
enum Event {
    /// An update ended.
    Finished(Pair, Result<PairOutcome>),
    /// The scan of registered repositories found this (see `worker/scan.rs`).
    Found(Vec<scan::Findings>),
    ScanEnded,
    /// The registered repositories could not be listed.
    ScanFailed(anyhow::Error),
}

/// Where the scan of registered repositories is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ScanProgress {
    NotStarted,
    Running,
    Done,
}
