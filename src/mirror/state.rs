//! Durable state under `state_dir`: refs reported per repository, and per (repository, mirror)
//! pending refs, status and retry schedule. Every write is atomic; read-modify-write cycles
//! hold the repository's short state lock.
//!
//! This file holds the [`StateStore`]: its paths, locking, and the rules by which records and
//! mirror states are read, healed and written. Each other file is one concern: what the records
//! and mirror states hold (`state/records.rs`), which repositories the directory knows and
//! forgetting one (`state/repos.rs`), the known refs and their format (`state/known_refs.rs`),
//! what was told about a pair (`state/incident.rs`), the notices waiting to be sent
//! (`state/outbox.rs`) and the summary of failing mirrors the hook reads (`state/failing.rs`).
//! A file that adds methods to [`StateStore`] does so in one `impl` block for its concern.
pub mod failing;
pub mod incident;
mod known_refs;
pub mod mirror_side;
pub mod outbox;
mod records;
mod repos;

pub use incident::{Incident, Notice};
pub use known_refs::{KnownRef, KnownRefs, KnownRefsOf, MirrorIdentity, known_local_values, known_remote_values};
pub use outbox::Outbox;
pub use records::{MirrorState, PendingRef, PushProgress, RepoRecord, UpdateStatus};
use repos::repo_named_by_mirror_states;

use crate::util::fsutil::{Durability, FileLock, replace_file};
use crate::util::group_commit::GroupCommit;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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

    /// Where a reftable repository's listing of its refs is cached between runs (see
    /// [`crate::git::ref_cache`]).
    pub fn ref_cache_file(&self, repo: &Path) -> PathBuf {
        self.repo_dir(repo).join(REF_CACHE)
    }

    /// Where the drift scan keeps what it learned about a repository's refs, between runs.
    pub fn scan_cache_file(&self, repo: &Path) -> PathBuf {
        self.repo_dir(repo).join(SCAN_CACHE)
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

    /// [`Self::load_mirror`] for a caller that does not hold the repository's state lock: read
    /// without it, and only a corrupt file takes the lock and is healed (as in
    /// [`Self::load_mirror_healing`]).
    pub fn load_mirror_or_lock_and_heal(&self, repo: &Path, mirror: &str) -> Result<MirrorState> {
        match self.load_mirror(repo, mirror) {
            Err(e) if corruption(&e).is_some() => self.change_mirror_state(repo, mirror, |state| state.clone()),
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

    /// Changes a mirror's state: `change` applied to it under the repository's state lock, and
    /// the result saved durably. (Not an update of the mirror: that is
    /// `update::update_mirror`, which pushes.)
    pub fn change_mirror_state<T>(
        &self,
        repo: &Path,
        mirror: &str,
        change: impl FnOnce(&mut MirrorState) -> T,
    ) -> Result<T> {
        self.change_mirror_state_with(repo, mirror, Durability::Durable, change)
    }

    /// [`Self::change_mirror_state`] with the durability the change needs: a change that a crash may
    /// lose (the state before it is whole and a later write repairs it) can spare the fsyncs.
    pub fn change_mirror_state_with<T>(
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

    /// [`Self::change_mirror_state_with`] only when `still_configured()`, asked under the repository's
    /// state lock, says so; `None` when nothing was written. `remove` edits the configuration
    /// before it deletes a pair's state under that lock, so a write asked this way never brings
    /// a removed pair's state back.
    pub fn change_mirror_state_if<T>(
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
mod tests;
