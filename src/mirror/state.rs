//! Durable state under `state_dir`: refs reported per repository, and per (repository, mirror)
//! pending refs, status and retry schedule. Every write is atomic; read-modify-write cycles
//! hold the repository's short state lock.
//!
//! One file of about 700 lines on purpose: the [`StateStore`] is one set of paths, file formats,
//! locking and healing rules, and its types and the methods that read, heal and write them change
//! together. What changes apart has its own file: the known refs' format (`state/known_refs.rs`),
//! what was told about a pair (`state/incident.rs`), the notices waiting to be sent
//! (`state/outbox.rs`) and the summary of failing mirrors the hook reads (`state/failing.rs`).

pub mod failing;
pub mod incident;
mod known_refs;
pub mod mirror_side;
pub mod outbox;

pub use incident::{Incident, Notice};
pub use known_refs::{KnownRef, KnownRefs, KnownRefsOf, MirrorIdentity, known_local_values, known_remote_values};
pub use outbox::Outbox;

use crate::git::FailureClass;
use crate::mirror::learned_limit::LearnedLimits;
use crate::mirror::lfs::LfsStatus;
use crate::util::fsutil::{Durability, FileLock, replace_file};
use crate::util::group_commit::GroupCommit;
use crate::util::oid::{Oid, RefUpdate};
use anyhow::{Context, Result};
use known_refs::{decode_identity, decode_known_refs, encode_known_refs};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// GitLab's `update_status` values.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "snake_case")]
pub enum UpdateStatus {
    #[default]
    None,
    Started,
    Finished,
    ToRetry,
    Failed,
}

impl UpdateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStatus::None => "none",
            UpdateStatus::Started => "started",
            UpdateStatus::Finished => "finished",
            UpdateStatus::ToRetry => "to_retry",
            UpdateStatus::Failed => "failed",
        }
    }
}

/// A ref that changed locally and is not yet known to be on the mirror.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingRef {
    /// The ref's value before its newest deletion, when the hook saw one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_local: Option<Oid>,
    /// Bumped on every report; an update clears the ref only if it is unchanged.
    pub seq: u64,
}

/// Refs reported by the hook for one repository, not yet handed to its mirrors
/// (routing needs the repository's configuration, which may be broken for a while).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct RepoRecord {
    pub repo: PathBuf,
    #[serde(default)]
    pub pending: BTreeMap<String, PendingRef>,
    #[serde(default)]
    pub seq: u64,
    /// When the oldest unrouted report arrived.
    #[serde(default)]
    pub pending_since_ms: Option<u64>,
    /// Every mirror of the repository owes a full reconciliation: the record was rebuilt after
    /// its file was found corrupt (the reports it held are lost), or the repository was taken
    /// over from another state directory (its reports are there).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebuilt: bool,
}

impl RepoRecord {
    /// Records one push's updates (state-based: only the newest facts matter).
    pub fn record(&mut self, updates: &[RefUpdate], received_at_ms: u64) {
        for update in updates {
            self.seq += 1;
            let pending = self.pending.entry(update.name.clone()).or_default();
            pending.seq = self.seq;
            if update.new.is_null() {
                pending.last_local = Some(update.old.clone());
            }
        }
        if !updates.is_empty() {
            self.pending_since_ms.get_or_insert(received_at_ms);
        }
    }
}

/// Everything known about one (repository, mirror) pair.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorState {
    pub repo: PathBuf,
    pub mirror: String,
    #[serde(default)]
    pub update_status: UpdateStatus,
    #[serde(default)]
    pub last_update_at_ms: Option<u64>,
    #[serde(default)]
    pub last_update_started_at_ms: Option<u64>,
    #[serde(default)]
    pub last_successful_update_at_ms: Option<u64>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub divergent_refs: BTreeSet<String>,
    #[serde(default)]
    pub kept_refs: BTreeSet<String>,
    /// Why each of `kept_refs` is kept, in words (refs kept by a version that did not record it
    /// have none until the next update that considers them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kept_reasons: BTreeMap<String, String>,
    /// Refs to reconcile at the next update.
    #[serde(default)]
    pub pending: BTreeMap<String, PendingRef>,
    /// A full reconciliation is owed (new mirror, `sync` requested); the seq it was requested at.
    #[serde(default)]
    pub full_sync_seq: Option<u64>,
    /// When the oldest pending change arrived (the debounce window starts here).
    #[serde(default)]
    pub pending_since_ms: Option<u64>,
    #[serde(default)]
    pub consecutive_failures: u32,
    /// What kind of failure the mirror is in (`None` while it is not failing): it decides when
    /// the next attempt is (see `record_outcome` in `mirror::update`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_class: Option<FailureClass>,
    /// Backoff: no attempt before this time.
    #[serde(default)]
    pub next_attempt_at_ms: Option<u64>,
    #[serde(default)]
    pub seq: u64,
    /// Fingerprint of the local values in the known-refs file: the drift
    /// scan compares it with the repository's refs.
    #[serde(default)]
    pub known_refs_fingerprint: Option<String>,
    #[serde(default)]
    pub lfs_status: LfsStatus,
    /// Why the last LFS step failed (redacted).
    #[serde(default)]
    pub lfs_error: Option<String>,
    /// Refs reached the mirror without all their LFS objects (`lfs_required = false`): the next
    /// update checks every object of the mirrored refs, not only the new commits'.
    #[serde(default)]
    pub lfs_incomplete: bool,
    /// Refs the mirror refused at the last update, with its reason (its own words when it gave
    /// any); cleared for a ref once it lands.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rejected_refs: BTreeMap<String, String>,
    /// The push size limit of versions that did not record why they learned it; read as a
    /// suspicion (see [`Self::learned_limits`]) and not written again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned_max_push_size: Option<u64>,
    /// What the mirror's refusals, dropped connections and timeouts taught about the largest
    /// push it takes: later updates push in steps under it.
    #[serde(default, skip_serializing_if = "LearnedLimits::is_empty")]
    pub learned_limits: LearnedLimits,
    /// How far the update in progress is, when it is pushed in steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<PushProgress>,
    /// When the mirror's refs were last compared with what it was given (a full reconciliation
    /// or a `verify_interval` check).
    #[serde(default)]
    pub last_verified_at_ms: Option<u64>,
    /// The current trouble and what was told about it (docs/notifications.md).
    #[serde(default, skip_serializing_if = "Incident::is_empty")]
    pub incident: Incident,
    /// The mirror's side: a repository created there, its default branch, push options turned down.
    #[serde(default, skip_serializing_if = "mirror_side::MirrorSideState::is_empty")]
    pub side: mirror_side::MirrorSideState,
}

/// The progress of an update pushed in steps.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushProgress {
    /// Steps landed on the mirror.
    pub done: usize,
    /// Steps planned in all (it grows when the mirror refuses a step as too large).
    pub total: usize,
    /// Estimated bytes of the steps that landed.
    pub bytes_sent: u64,
}

impl MirrorState {
    pub fn new(repo: &Path, mirror: &str) -> MirrorState {
        MirrorState {
            repo: repo.to_path_buf(),
            mirror: mirror.to_string(),
            ..Default::default()
        }
    }

    /// Adds a reported ref. A new report also cancels any backoff: the next push always tries
    /// again (except while the mirror asked us to wait, see [`Self::cancel_backoff`]).
    pub fn add_pending(&mut self, name: &str, reported: &PendingRef, now_ms: u64) {
        self.seq += 1;
        let pending = self.pending.entry(name.to_string()).or_default();
        pending.seq = self.seq;
        if reported.last_local.is_some() {
            pending.last_local = reported.last_local.clone();
        }
        self.pending_since_ms.get_or_insert(now_ms);
        self.cancel_backoff();
    }

    /// Asks for a full reconciliation at the next update.
    pub fn request_full_sync(&mut self, now_ms: u64) {
        self.seq += 1;
        self.full_sync_seq = Some(self.seq);
        self.pending_since_ms.get_or_insert(now_ms);
        self.cancel_backoff();
    }

    /// New work is tried at once, after any failure but a rate limit: a mirror that asked us to
    /// wait (HTTP 429, 503) is left alone until then, however many pushes arrive.
    fn cancel_backoff(&mut self) {
        if self.failure_class != Some(FailureClass::RateLimited) {
            self.next_attempt_at_ms = None;
        }
    }

    /// Makes a waiting retry due now: after a change that may fix what failed (the mirror's
    /// settings, its host keys), waiting out the backoff only delays the fix.
    pub fn retry_now(&mut self) {
        self.next_attempt_at_ms = None;
    }

    /// What was learned about the mirror's push size (an older version's limit as a suspicion).
    pub fn learned_limits(&self) -> LearnedLimits {
        self.learned_limits.with_legacy(self.learned_max_push_size)
    }

    /// Keeps `limits` as what was learned about the mirror's push size.
    pub fn set_learned_limits(&mut self, limits: LearnedLimits) {
        self.learned_limits = limits;
        self.learned_max_push_size = None;
    }

    /// Whether the last update failed (`to_retry` or `failed`, or `started` again after a failure).
    pub fn is_failing(&self) -> bool {
        self.consecutive_failures > 0 || matches!(self.update_status, UpdateStatus::ToRetry | UpdateStatus::Failed)
    }

    /// Whether an update is owed.
    pub fn has_work(&self) -> bool {
        !self.pending.is_empty() || self.full_sync_seq.is_some()
    }
}

/// The state directory.
#[derive(Clone, Debug)]
pub struct StateStore {
    root: PathBuf,
    /// Directories this process made or found, so each is created once, not on every save.
    /// (State directories are never removed while a worker runs.)
    made_dirs: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>,
    /// Whether notices are queued (a channel is configured): see [`incident::observe`].
    telling: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

const REPO_RECORD: &str = "repo.json";
const STATE_LOCK: &str = "state.lock";
/// Marks a repository whose broken configuration was told (see [`StateStore::note_config_error`]).
const CONFIG_ERROR_TOLD: &str = "config_error.told";
const REF_CACHE: &str = "refs.reftable";
const SCAN_CACHE: &str = "refs.scanned";

/// A directory name for a repository path: readable, unique, short.
fn repo_key(repo: &Path) -> String {
    // FNV-1a: a stable hash with no dependency; collisions are harmless
    // because each record stores and is checked against its full path.
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in repo.as_os_str().as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    let base: String = repo
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
                .take(40)
                .collect()
        })
        .unwrap_or_default();
    format!("{base}-{hash:016x}")
}

/// A state file that exists but cannot be parsed (truncated, overwritten, a bad disk block).
/// Callers that write state move it aside and rebuild (see [`StateStore::quarantine`]); readers
/// report it for its own repository or pair only.
#[derive(Debug, thiserror::Error)]
#[error("{} is corrupt: {detail}", path.display())]
pub struct CorruptState {
    pub path: PathBuf,
    pub detail: String,
}

/// The [`CorruptState`] behind an error, if that is what it is.
pub fn corruption(error: &anyhow::Error) -> Option<&CorruptState> {
    error.downcast_ref::<CorruptState>()
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            anyhow::Error::new(CorruptState {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T, durability: Durability) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value)?;
    replace_file(path, &bytes, 0o600, durability).with_context(|| format!("writing {}", path.display()))
}

impl StateStore {
    pub fn new(root: &Path) -> StateStore {
        StateStore {
            root: root.to_path_buf(),
            made_dirs: Default::default(),
            telling: Default::default(),
        }
    }

    /// A store that queues notices in the outbox when `telling` (someone is to be told: a
    /// `[notify]` channel is configured). Only the worker and `sync` need one.
    pub fn telling(self, telling: bool) -> StateStore {
        self.set_telling(telling);
        self
    }

    /// Turns the queueing of notices on or off (the global configuration changed).
    pub fn set_telling(&self, telling: bool) {
        self.telling.store(telling, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_telling(&self) -> bool {
        self.telling.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The notices waiting to be sent.
    pub fn outbox(&self) -> Outbox {
        Outbox::new(&self.root)
    }

    /// Queues a notice that no pair's state tracks (a quarantined file, a configuration error),
    /// durably, when someone is to be told.
    pub fn tell(&self, notice: &Notice) -> Result<()> {
        if self.is_telling() {
            self.outbox().put(notice)?;
        }
        Ok(())
    }

    fn repos_dir(&self) -> PathBuf {
        self.root.join("repos")
    }

    /// The directory holding one repository's state.
    pub fn repo_dir(&self, repo: &Path) -> PathBuf {
        self.repos_dir().join(repo_key(repo))
    }

    fn mirror_file(&self, repo: &Path, mirror: &str) -> PathBuf {
        self.repo_dir(repo).join("mirrors").join(format!("{mirror}.json"))
    }

    fn known_refs_file(&self, repo: &Path, mirror: &str) -> PathBuf {
        self.repo_dir(repo).join("mirrors").join(format!("{mirror}.known"))
    }

    /// What the mirror's last decisions were made for (see [`KnownRef`]), and the mirror they
    /// were made for; empty when the file is missing or unreadable (its loss costs a
    /// re-observation, never correctness).
    /// Where a reftable repository's listing of its refs is cached between runs (see
    /// [`crate::git::ref_cache`]).
    pub fn ref_cache_file(&self, repo: &Path) -> PathBuf {
        self.repo_dir(repo).join(REF_CACHE)
    }

    /// Where the drift scan keeps what it learned about a repository's refs, between runs.
    pub fn scan_cache_file(&self, repo: &Path) -> PathBuf {
        self.repo_dir(repo).join(SCAN_CACHE)
    }

    pub fn load_known_refs(&self, repo: &Path, mirror: &str) -> KnownRefsOf {
        let path = self.known_refs_file(repo, mirror);
        match fs::read_to_string(&path) {
            Ok(text) => match decode_known_refs(&text) {
                Some((identity, refs)) => KnownRefsOf { identity, refs },
                None => {
                    log::warn!("{} is corrupt; it will be rebuilt", path.display());
                    KnownRefsOf::default()
                }
            },
            Err(_) => KnownRefsOf::default(),
        }
    }

    /// The mirror the known refs describe, reading only the file's first lines (the drift scan
    /// asks this of every pair).
    pub fn known_refs_identity(&self, repo: &Path, mirror: &str) -> Option<MirrorIdentity> {
        use std::io::Read;
        let file = fs::File::open(self.known_refs_file(repo, mirror)).ok()?;
        let mut head = Vec::with_capacity(8192);
        file.take(8192).read_to_end(&mut head).ok()?;
        let head = String::from_utf8_lossy(&head);
        decode_identity(&mut head.lines().peekable())
    }

    /// Saves the known refs learned from the mirror `identity`, without fsync: they are a
    /// cache (see [`Self::load_known_refs`]).
    pub fn save_known_refs(
        &self,
        repo: &Path,
        mirror: &str,
        identity: &MirrorIdentity,
        refs: &KnownRefs,
    ) -> Result<()> {
        let path = self.known_refs_file(repo, mirror);
        replace_file(
            &path,
            encode_known_refs(identity, refs).as_bytes(),
            0o600,
            Durability::Cache,
        )
        .with_context(|| format!("writing {}", path.display()))
    }

    /// The lock held for the whole of one update of a (repository, mirror) pair.
    pub fn push_lock_path(&self, repo: &Path, mirror: &str) -> Result<PathBuf> {
        let dir = self.repo_dir(repo).join("mirrors");
        self.ensure_dir(&dir)?;
        Ok(dir.join(format!("{mirror}.lock")))
    }

    /// Takes the short lock guarding read-modify-write of a repository's state.
    pub fn lock(&self, repo: &Path) -> Result<FileLock> {
        let dir = self.repo_dir(repo);
        self.ensure_dir(&dir.join("mirrors"))?;
        FileLock::acquire(&dir.join(STATE_LOCK)).with_context(|| format!("locking {}", dir.display()))
    }

    /// Registers a repository (idempotent) so `run` and `status` know it.
    pub fn register(&self, repo: &Path) -> Result<()> {
        let _lock = self.lock(repo)?;
        if self.load_record_healing(repo)?.is_none() {
            self.save_record(&RepoRecord {
                repo: repo.to_path_buf(),
                ..Default::default()
            })?;
        }
        Ok(())
    }

    /// Whether `repo` is registered (by `add`, `install`, fleet discovery or a push the worker
    /// took): its record, or a mirror's state, names it. A record that cannot be read counts:
    /// it is there.
    pub fn is_registered(&self, repo: &Path) -> bool {
        match self.load_record(repo) {
            Ok(Some(_)) | Err(_) => true,
            Ok(None) => repo_named_by_mirror_states(&self.repo_dir(repo)).as_deref() == Some(repo),
        }
    }

    /// The repository's record, if it was ever registered.
    pub fn load_record(&self, repo: &Path) -> Result<Option<RepoRecord>> {
        let record: Option<RepoRecord> = read_json(&self.repo_dir(repo).join(REPO_RECORD))?;
        Ok(record.filter(|r| r.repo == repo))
    }

    /// [`Self::load_record`] for a caller holding the repository's state lock that will write
    /// the record: a corrupt one is moved aside and replaced by an empty record marked
    /// [`RepoRecord::rebuilt`] (saved), so the repository heals instead of stopping the worker.
    pub fn load_record_healing(&self, repo: &Path) -> Result<Option<RepoRecord>> {
        match self.load_record(repo) {
            Err(e) if corruption(&e).is_some() => {
                let moved = self.quarantine(repo, &self.repo_dir(repo).join(REPO_RECORD))?;
                log::error!(
                    "{}: {e:#}; moved to {}; its mirrors will be reconciled in full",
                    repo.display(),
                    moved.display()
                );
                let record = RepoRecord {
                    repo: repo.to_path_buf(),
                    rebuilt: true,
                    ..Default::default()
                };
                self.save_record(&record)?;
                Ok(Some(record))
            }
            other => other,
        }
    }

    /// Moves a corrupt state file of `repo` to `<state_dir>/bad/` for the admin (like the spool's
    /// `bad/`); returns where it went.
    pub fn quarantine(&self, repo: &Path, file: &Path) -> Result<PathBuf> {
        let bad = self.bad_dir();
        self.ensure_dir(&bad)?;
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("state");
        let dest = bad.join(crate::util::fsutil::unique_name(
            &format!("{}.{name}.", repo_key(repo)),
            "",
        ));
        // Told before the move: a crash in between tells of a move the next run makes again.
        let mut notice = Notice::new(
            crate::config::notify::Event::Quarantined,
            repo,
            None,
            crate::util::fsutil::now_ms(),
        );
        notice.mirror = name
            .strip_suffix(".json")
            .filter(|_| name != REPO_RECORD)
            .map(str::to_string);
        notice.error = Some(format!(
            "{} was corrupt and was moved to {}; it is rebuilt",
            file.display(),
            dest.display()
        ));
        if let Err(e) = self.tell(&notice) {
            log::warn!("queueing a notice of {}: {e:#}", dest.display());
        }
        fs::rename(file, &dest).with_context(|| format!("moving {} to {}", file.display(), dest.display()))?;
        Ok(dest)
    }

    /// The state directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where corrupt state files are kept for the admin.
    pub fn bad_dir(&self) -> PathBuf {
        self.root.join("bad")
    }

    /// How many corrupt state files were moved aside (for `metrics`).
    pub fn bad_files(&self) -> usize {
        fs::read_dir(self.bad_dir()).map_or(0, |dir| dir.count())
    }

    /// Checks that the repository's state can be written now (a full disk, a read-only or
    /// broken state directory): writes and removes a small file, as a save would.
    pub fn check_writable(&self, repo: &Path) -> Result<()> {
        let dir = self.repo_dir(repo).join("mirrors");
        create_private_dir(&dir)?;
        let probe = crate::util::fsutil::write_synced(
            &dir,
            &crate::util::fsutil::unique_name(".probe.", ".tmp"),
            &[0; 4096],
            0o600,
        )
        .with_context(|| format!("writing in {}", dir.display()))?;
        let _ = fs::remove_file(probe);
        Ok(())
    }

    pub fn save_record(&self, record: &RepoRecord) -> Result<()> {
        self.ensure_dir(&self.repo_dir(&record.repo).join("mirrors"))?;
        write_json(
            &self.repo_dir(&record.repo).join(REPO_RECORD),
            record,
            Durability::Durable,
        )
    }

    /// A mirror's state; a fresh one if none was saved.
    /// [`Self::save_record`] into a group commit (see [`Self::stage_mirror`]).
    pub fn stage_record(&self, record: &RepoRecord, commit: &mut GroupCommit) -> Result<()> {
        self.ensure_dir(&self.repo_dir(&record.repo).join("mirrors"))?;
        let path = self.repo_dir(&record.repo).join(REPO_RECORD);
        commit
            .stage(&path, &serde_json::to_vec_pretty(record)?, 0o600)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Whether the repository has a record (is registered), without reading it.
    pub fn has_record(&self, repo: &Path) -> bool {
        self.repo_dir(repo).join(REPO_RECORD).exists()
    }

    pub fn load_mirror(&self, repo: &Path, mirror: &str) -> Result<MirrorState> {
        let state: Option<MirrorState> = read_json(&self.mirror_file(repo, mirror))?;
        Ok(state
            .filter(|s| s.repo == repo)
            .unwrap_or_else(|| MirrorState::new(repo, mirror)))
    }

    /// [`Self::load_mirror`] for a caller holding the repository's state lock: a corrupt file is
    /// moved aside and the pair starts afresh (saved), owing a full reconciliation, so it heals
    /// by itself at its next update.
    pub fn load_mirror_healing(&self, repo: &Path, mirror: &str) -> Result<MirrorState> {
        match self.load_mirror(repo, mirror) {
            Err(e) if corruption(&e).is_some() => {
                let moved = self.quarantine(repo, &self.mirror_file(repo, mirror))?;
                log::error!(
                    "{}: mirror {mirror}: {e:#}; moved to {}; rebuilding it by a full reconciliation",
                    repo.display(),
                    moved.display()
                );
                let now = crate::util::fsutil::now_ms();
                let mut state = MirrorState::new(repo, mirror);
                state.request_full_sync(now);
                state.update_status = UpdateStatus::ToRetry;
                state.last_error = Some(format!(
                    "the mirror's state file was corrupt and was moved to {}; a full reconciliation rebuilds it",
                    moved.display()
                ));
                // Saved at once: the pair must stay known even if the caller saves nothing.
                self.save_mirror(&state)?;
                Ok(state)
            }
            other => other,
        }
    }

    /// [`Self::load_mirror`], healing a corrupt file (see [`Self::load_mirror_healing`]) under
    /// the repository's state lock.
    pub fn load_mirror_or_heal(&self, repo: &Path, mirror: &str) -> Result<MirrorState> {
        match self.load_mirror(repo, mirror) {
            Err(e) if corruption(&e).is_some() => self.update_mirror(repo, mirror, |state| state.clone()),
            other => other,
        }
    }

    pub fn save_mirror(&self, state: &MirrorState) -> Result<()> {
        self.save_mirror_with(state, Durability::Durable)
    }

    /// Saves a pair's state (under the repository's state lock), with what it owes: notices of
    /// its transitions are queued durably first (see [`incident::observe`]), so whatever the state
    /// records as told is in the outbox; the repository's summary of failing mirrors follows.
    fn save_mirror_with(&self, state: &MirrorState, durability: Durability) -> Result<()> {
        self.ensure_dir(&self.repo_dir(&state.repo).join("mirrors"))?;
        let state = self.observed(state);
        write_json(&self.mirror_file(&state.repo, &state.mirror), &state, durability)?;
        self.note_failing(&state);
        Ok(())
    }

    /// [`Self::save_mirror`] into a group commit: the state is written when `commit` commits
    /// (the caller holds the repository's lock until then).
    pub fn stage_mirror(&self, state: &MirrorState, commit: &mut GroupCommit) -> Result<()> {
        self.ensure_dir(&self.repo_dir(&state.repo).join("mirrors"))?;
        let state = self.observed(state);
        let path = self.mirror_file(&state.repo, &state.mirror);
        commit
            .stage(&path, &serde_json::to_vec_pretty(&state)?, 0o600)
            .with_context(|| format!("writing {}", path.display()))?;
        self.note_failing(&state);
        Ok(())
    }

    /// The state to save: what its transition owes people is queued in the outbox first, and
    /// recorded as told only once it is there.
    fn observed(&self, state: &MirrorState) -> MirrorState {
        let mut state = state.clone();
        let before = state.incident.clone();
        let notices = incident::observe(&mut state, crate::util::fsutil::now_ms(), self.is_telling());
        if !notices.is_empty() {
            let outbox = self.outbox();
            if let Err(e) = notices.iter().try_for_each(|notice| outbox.put(notice)) {
                log::warn!(
                    "{}: mirror {}: queueing a notice: {e:#}",
                    state.repo.display(),
                    state.mirror
                );
                let since_ms = state.incident.since_ms;
                state.incident = Incident { since_ms, ..before };
            }
        }
        state
    }

    /// Keeps the summary of failing mirrors the hook reads equal to a saved state.
    fn note_failing(&self, state: &MirrorState) {
        if let Err(e) = self.update_failing(&state.repo, &state.mirror, Some(state)) {
            log::warn!(
                "{}: updating the summary of failing mirrors: {e:#}",
                state.repo.display()
            );
        }
    }

    fn update_failing(&self, repo: &Path, mirror: &str, state: Option<&MirrorState>) -> Result<()> {
        let file = self.repo_dir(repo).join(failing::FAILING_FILE);
        let mut listed = failing::read(&file);
        let current = listed.iter().position(|m| m.mirror == mirror);
        let wanted = state.and_then(|s| failing::entry_for(s, current.map(|i| &listed[i])));
        match (current, wanted) {
            (None, None) => return Ok(()),
            (Some(i), Some(entry)) if listed[i] == entry => return Ok(()),
            (Some(i), Some(entry)) => listed[i] = entry,
            (None, Some(entry)) => listed.push(entry),
            (Some(i), None) => {
                listed.remove(i);
            }
        }
        if listed.is_empty() {
            return remove_if_present(&file);
        }
        write_json(&file, &listed, Durability::OldOrNew)
    }

    /// The mirrors of `repo` that are `failed`, as the hook tells pushers about them.
    pub fn failing_mirrors(&self, repo: &Path) -> Vec<failing::FailingMirror> {
        failing::read(&self.repo_dir(repo).join(failing::FAILING_FILE))
    }

    /// Queues a reminder for a pair still `failed` `every` after it was last told (`remind_every`).
    pub fn remind(&self, repo: &Path, mirror: &str, every: std::time::Duration) -> Result<()> {
        if !self.is_telling() {
            return Ok(());
        }
        let now = crate::util::fsutil::now_ms();
        let _lock = self.lock(repo)?;
        let mut state = self.load_mirror_healing(repo, mirror)?;
        if let Some(reminder) = incident::remind(&mut state, now, every) {
            self.outbox().put(&reminder)?;
            self.save_mirror(&state)?;
        }
        Ok(())
    }

    /// Tells once per incident that a repository's configuration cannot be read (`error`), or
    /// forgets the incident once it can (`None`). The fact is a marker file in the repository's
    /// state directory, written after the notice is queued.
    pub fn note_config_error(&self, repo: &Path, error: Option<&str>) -> Result<()> {
        let marker = self.repo_dir(repo).join(CONFIG_ERROR_TOLD);
        let Some(error) = error else {
            return remove_if_present(&marker);
        };
        if !self.is_telling() || marker.exists() {
            return Ok(());
        }
        let mut notice = Notice::new(
            crate::config::notify::Event::ConfigError,
            repo,
            None,
            crate::util::fsutil::now_ms(),
        );
        notice.error = Some(error.to_string());
        self.outbox().put(&notice)?;
        self.ensure_dir(&self.repo_dir(repo))?;
        crate::util::fsutil::replace_file(&marker, error.as_bytes(), 0o600, Durability::Durable)
            .with_context(|| format!("writing {}", marker.display()))
    }

    /// Applies `change` to a mirror's state under the repository's state lock, durably.
    pub fn update_mirror<T>(&self, repo: &Path, mirror: &str, change: impl FnOnce(&mut MirrorState) -> T) -> Result<T> {
        self.update_mirror_with(repo, mirror, Durability::Durable, change)
    }

    /// [`Self::update_mirror`] with the durability the change needs: a change that a crash may
    /// lose (the state before it is whole and a later write repairs it) can spare the fsyncs.
    pub fn update_mirror_with<T>(
        &self,
        repo: &Path,
        mirror: &str,
        durability: Durability,
        change: impl FnOnce(&mut MirrorState) -> T,
    ) -> Result<T> {
        let _lock = self.lock(repo)?;
        let mut state = self.load_mirror_healing(repo, mirror)?;
        let result = change(&mut state);
        self.save_mirror_with(&state, durability)?;
        Ok(result)
    }

    /// [`Self::update_mirror_with`] only when `still_configured()`, asked under the repository's
    /// state lock, says so; `None` when nothing was written. `remove` edits the configuration
    /// before it deletes a pair's state under that lock, so a write asked this way never brings
    /// a removed pair's state back.
    pub fn update_mirror_if<T>(
        &self,
        repo: &Path,
        mirror: &str,
        durability: Durability,
        still_configured: impl FnOnce() -> bool,
        change: impl FnOnce(&mut MirrorState) -> T,
    ) -> Result<Option<T>> {
        let _lock = self.lock(repo)?;
        if !still_configured() {
            return Ok(None);
        }
        let mut state = self.load_mirror_healing(repo, mirror)?;
        let result = change(&mut state);
        self.save_mirror_with(&state, durability)?;
        Ok(Some(result))
    }

    pub fn remove_mirror(&self, repo: &Path, mirror: &str) -> Result<()> {
        let _lock = self.lock(repo)?;
        self.update_failing(repo, mirror, None)?;
        for path in [
            self.mirror_file(repo, mirror),
            self.known_refs_file(repo, mirror),
            self.repo_dir(repo).join("mirrors").join(format!("{mirror}.lock")),
        ] {
            remove_if_present(&path)?;
        }
        Ok(())
    }

    /// Forgets a repository: its registration and every mirror's state, secrets and keys stored
    /// for it. Returns whether there was anything to forget.
    pub fn forget(&self, repo: &Path) -> Result<bool> {
        let dir = self.repo_dir(repo);
        if self.load_record(repo)?.is_none() && !dir.join("mirrors").exists() {
            return Ok(false);
        }
        let _lock = self.lock(repo)?;
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        self.made_dirs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|made| !made.starts_with(&dir));
        Ok(true)
    }

    /// Names of the mirrors with saved state for a repository.
    pub fn mirror_names(&self, repo: &Path) -> Result<Vec<String>> {
        let dir = self.repo_dir(repo).join("mirrors");
        let mut names = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        for entry in entries {
            let name = entry?.file_name();
            if let Some(mirror) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
                names.push(mirror.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Every registered repository.
    pub fn known_repos(&self) -> Result<Vec<PathBuf>> {
        Ok(self.known_records()?.into_iter().map(|(repo, _)| repo).collect())
    }

    /// The registered repositories, sorted, each with its record as read (one read of each:
    /// `None` when it has mirrors' states but no record, an error when the record cannot be read).
    pub fn known_records(&self) -> Result<Vec<(PathBuf, Result<Option<RepoRecord>>)>> {
        let mut repos = Vec::new();
        let entries = match fs::read_dir(self.repos_dir()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(repos),
            Err(e) => return Err(e).context("reading the state directory"),
        };
        for entry in entries {
            let dir = entry?.path();
            match read_json::<RepoRecord>(&dir.join(REPO_RECORD)) {
                Ok(Some(record)) => repos.push((record.repo.clone(), Ok(Some(record)))),
                // A record lost or corrupt: the repository is still known by its mirrors' state,
                // and stays covered (the worker rebuilds the record, `status` reports it).
                Ok(None) => repos.extend(repo_named_by_mirror_states(&dir).map(|repo| (repo, Ok(None)))),
                Err(e) => match repo_named_by_mirror_states(&dir) {
                    Some(repo) => repos.push((repo, Err(e))),
                    None => log::warn!("{e:#}"),
                },
            }
        }
        repos.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(repos)
    }
}

/// The repository path recorded in any readable mirror state of a repository's state directory.
fn repo_named_by_mirror_states(dir: &Path) -> Option<PathBuf> {
    #[derive(Deserialize)]
    struct RepoOnly {
        repo: PathBuf,
    }
    fs::read_dir(dir.join("mirrors"))
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".json")))
        .find_map(|e| read_json::<RepoOnly>(&e.path()).ok().flatten())
        .map(|state| state.repo)
}

impl StateStore {
    /// Creates `dir` (mode 700) unless this process already did.
    fn ensure_dir(&self, dir: &Path) -> Result<()> {
        let mut made = self.made_dirs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !made.contains(dir) {
            create_private_dir(dir)?;
            made.insert(dir.to_path_buf());
        }
        Ok(())
    }
}

/// Removes a file; one that is not there is no error.
fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).with_context(|| format!("removing {}", path.display())),
        _ => Ok(()),
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    crate::util::fsutil::create_kept_dirs(dir).with_context(|| format!("creating {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(c: char) -> Oid {
        Oid::parse(&c.to_string().repeat(40)).unwrap()
    }

    #[test]
    fn deletions_remember_the_last_local_value() {
        let mut record = RepoRecord::default();
        let update = |old, new| RefUpdate {
            name: "refs/heads/x".into(),
            old,
            new,
        };
        record.record(&[update(oid('0'), oid('a'))], 5);
        assert_eq!(record.pending["refs/heads/x"].last_local, None);
        record.record(&[update(oid('a'), oid('b')), update(oid('b'), oid('0'))], 9);
        assert_eq!(record.pending["refs/heads/x"].last_local, Some(oid('b')));
        assert_eq!(record.pending["refs/heads/x"].seq, 3);
        assert_eq!(record.pending_since_ms, Some(5));
    }

    #[test]
    fn a_new_report_cancels_backoff() {
        let mut state = MirrorState::new(Path::new("/r"), "m");
        state.next_attempt_at_ms = Some(u64::MAX);
        state.add_pending("refs/heads/a", &PendingRef::default(), 7);
        assert_eq!(state.next_attempt_at_ms, None);
        assert_eq!(state.pending_since_ms, Some(7));
        assert!(state.has_work());
    }

    #[test]
    fn a_new_report_does_not_cancel_the_wait_a_rate_limited_mirror_asked_for() {
        let mut state = MirrorState::new(Path::new("/r"), "m");
        state.failure_class = Some(FailureClass::RateLimited);
        state.next_attempt_at_ms = Some(1_000);
        state.add_pending("refs/heads/a", &PendingRef::default(), 7);
        state.request_full_sync(8);
        assert_eq!(state.next_attempt_at_ms, Some(1_000));
        state.failure_class = Some(FailureClass::Permanent);
        state.add_pending("refs/heads/a", &PendingRef::default(), 9);
        assert_eq!(
            state.next_attempt_at_ms, None,
            "a permanent failure is retried at every push"
        );
    }

    #[test]
    fn states_round_trip_and_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        let repo = Path::new("/srv/git/app.git");
        store.register(repo).unwrap();
        store.update_mirror(repo, "github", |s| s.request_full_sync(1)).unwrap();
        assert_eq!(store.known_repos().unwrap(), vec![repo.to_path_buf()]);
        assert_eq!(store.mirror_names(repo).unwrap(), vec!["github".to_string()]);
        assert!(store.load_mirror(repo, "github").unwrap().full_sync_seq.is_some());
        store.remove_mirror(repo, "github").unwrap();
        assert!(store.mirror_names(repo).unwrap().is_empty());
    }

    #[test]
    fn known_refs_round_trip_and_corruption_is_detected() {
        let mut refs = KnownRefs::new();
        refs.insert(
            "refs/heads/a".into(),
            KnownRef {
                local: Some(oid('1')),
                remote: Some(oid('2')),
            },
        );
        refs.insert(
            "refs/heads/kept".into(),
            KnownRef {
                local: None,
                remote: Some(oid('3')),
            },
        );
        refs.insert(
            "refs/heads/new".into(),
            KnownRef {
                local: Some(oid('4')),
                remote: None,
            },
        );
        let identity = MirrorIdentity {
            url: "https://h/a.git".to_string(),
            scope: "0123456789abcdef".to_string(),
        };
        assert_eq!(
            decode_known_refs(&encode_known_refs(&identity, &refs)),
            Some((Some(identity.clone()), refs.clone()))
        );
        let text = encode_known_refs(&identity, &refs);
        let before_identities = text.splitn(3, '\n').nth(2).unwrap();
        assert_eq!(decode_known_refs(before_identities), Some((None, refs.clone())));
        assert_eq!(decode_known_refs("zzz - refs/heads/a\n"), None);
        let of = |identity: Option<MirrorIdentity>| KnownRefsOf {
            identity,
            refs: refs.clone(),
        };
        assert_eq!(of(Some(identity.clone())).for_mirror(&identity), refs);
        let elsewhere = MirrorIdentity {
            url: "https://h/other.git".into(),
            ..identity.clone()
        };
        assert!(of(Some(elsewhere)).for_mirror(&identity).is_empty());
        let refiltered = MirrorIdentity {
            scope: "fedcba9876543210".into(),
            ..identity.clone()
        };
        assert!(of(Some(refiltered)).for_mirror(&identity).is_empty());
        assert!(
            of(None).for_mirror(&identity).is_empty(),
            "refs of an unknown mirror are not assumed"
        );
        assert_eq!(known_local_values(&refs).len(), 2);
        assert_eq!(known_remote_values(&refs).len(), 2);
    }

    #[test]
    fn a_save_queues_what_its_transition_owes_before_recording_it_as_told() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path()).telling(true);
        let repo = Path::new("/srv/git/app.git");
        let fail = |state: &mut MirrorState| {
            state.update_status = UpdateStatus::Failed;
            state.consecutive_failures += 1;
            state.last_error = Some("fatal: gone\nmore".into());
        };
        // The outbox cannot be written: nothing is marked as told, the pusher is still warned.
        std::fs::create_dir_all(dir.path().join("notify")).unwrap();
        std::fs::write(dir.path().join("notify/outbox"), "not a directory").unwrap();
        store.update_mirror(repo, "gh", fail).unwrap();
        assert_eq!(store.load_mirror(repo, "gh").unwrap().incident.told_failed_at_ms, None);
        let failing = store.failing_mirrors(repo);
        assert_eq!((failing.len(), failing[0].error.as_str()), (1, "fatal: gone"));
        // Once it can, the next save queues the notice and records it as told.
        std::fs::remove_file(dir.path().join("notify/outbox")).unwrap();
        store.update_mirror(repo, "gh", fail).unwrap();
        assert!(
            store
                .load_mirror(repo, "gh")
                .unwrap()
                .incident
                .told_failed_at_ms
                .is_some()
        );
        assert_eq!(store.outbox().list().unwrap().len(), 1);
        store.update_mirror(repo, "gh", fail).unwrap();
        assert_eq!(store.outbox().len(), 1, "once per incident");
        store
            .update_mirror(repo, "gh", |state| state.update_status = UpdateStatus::Finished)
            .unwrap();
        let queued = store.outbox().list().unwrap();
        assert_eq!(queued[1].notice.event, crate::config::notify::Event::Recovered);
        assert!(store.failing_mirrors(repo).is_empty());
        assert!(!store.repo_dir(repo).join(failing::FAILING_FILE).exists());
    }

    #[test]
    fn a_store_that_tells_nobody_queues_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        let repo = Path::new("/srv/git/app.git");
        store
            .update_mirror(repo, "gh", |state| state.update_status = UpdateStatus::Failed)
            .unwrap();
        store.note_config_error(repo, Some("broken")).unwrap();
        assert!(store.outbox().is_empty());
        assert_eq!(store.failing_mirrors(repo).len(), 1);
        store.remove_mirror(repo, "gh").unwrap();
        assert!(store.failing_mirrors(repo).is_empty());
    }

    #[test]
    fn repo_keys_differ_for_different_paths() {
        assert_ne!(repo_key(Path::new("/a/app.git")), repo_key(Path::new("/b/app.git")));
        assert!(repo_key(Path::new("/a/app.git")).starts_with("app.git-"));
    }
}
