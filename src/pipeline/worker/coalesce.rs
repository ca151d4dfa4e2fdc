//! Coalescing intake: a batch of spool entries is claimed and read at once, merged per
//! repository, recorded in each (repository, mirror) pair's state with one group commit, and only
//! then retired, together. However many pushes a backlog holds for a pair, its state gets their
//! refs in one write, and the pair one update.

use super::{Drain, RunSummary, looks_like_a_repository};
use crate::config;
use crate::mirror::state::{Notice, RepoRecord};
use crate::pipeline::spool::SpoolEntry;
use crate::util::fsutil::{FileLock, now_ms};
use crate::util::group_commit::GroupCommit;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Spool entries claimed and read per batch, at most.
pub(super) const BATCH_ENTRIES: usize = 4096;
/// Bytes of spool entries read per batch, at most (an entry of a push of many refs is large).
const BATCH_BYTES: usize = 32 << 20;
/// Repositories recorded per group commit: their state locks are held until it commits.
const REPOS_PER_COMMIT: usize = 64;

/// Claimed entries, by repository, oldest first.
#[derive(Default)]
pub(super) struct Batch {
    by_repo: BTreeMap<PathBuf, Vec<(PathBuf, SpoolEntry)>>,
    /// Whether reading stopped at [`BATCH_BYTES`] before the names listed ran out.
    pub(super) full: bool,
}

/// What recording one repository's part of a batch staged.
struct Staged {
    /// Claimed entries it carries.
    claimed: Vec<PathBuf>,
    /// Its mirrors' states as staged (scheduled once committed); `None` when the refs wait in
    /// the repository's record (its configuration cannot be read).
    mirrors: Option<Vec<crate::mirror::state::MirrorState>>,
}

impl Batch {
    /// How many entries it holds.
    pub(super) fn entries(&self) -> usize {
        self.by_repo.values().map(Vec::len).sum()
    }

    /// How many repositories they name.
    pub(super) fn repos(&self) -> usize {
        self.by_repo.len()
    }
}

impl Drain<'_> {
    /// Claims and reads the entries `names` (oldest first), up to [`BATCH_BYTES`]. Unusable
    /// entries go to `spool/bad/`, entries of repositories that are gone are dropped, those of
    /// repositories the worker does not trust are quarantined: none of them reach the batch.
    pub(super) fn claim_batch(&mut self, names: &[String], summary: &mut RunSummary) -> Result<Batch> {
        let mut batch = Batch::default();
        let mut bytes = 0;
        // Per repository, once per batch: whether it may be recorded (None) or why not.
        let mut verdicts: BTreeMap<PathBuf, Option<Refusal>> = BTreeMap::new();
        for name in names {
            if bytes >= BATCH_BYTES {
                batch.full = true;
                break;
            }
            let Some(claimed) = self.spool.claim(name)? else {
                continue;
            };
            crate::util::failpoint::hit("ingest.after_claim");
            let entry = match crate::pipeline::spool::read_entry_file(&claimed)
                .map_err(Into::into)
                .and_then(|read| {
                    bytes += read.len();
                    crate::pipeline::spool::parse_entry(&read)
                }) {
                Ok(entry) => entry,
                Err(e) => {
                    self.quarantine_unusable(name, &claimed, &e.to_string())?;
                    summary.entries_quarantined += 1;
                    continue;
                }
            };
            let verdict = verdicts
                .entry(entry.repo.clone())
                .or_insert_with(|| self.refusal(&entry.repo));
            match verdict {
                None => batch
                    .by_repo
                    .entry(entry.repo.clone())
                    .or_default()
                    .push((claimed, entry)),
                Some(Refusal::Gone { forgotten }) => {
                    log::error!(
                        "spool entry {name} names {}, which is not a git repository (deleted or moved?); dropped{}",
                        entry.repo.display(),
                        if *forgotten {
                            ", and the repository forgotten with its mirrors' state"
                        } else {
                            ""
                        }
                    );
                    self.spool.retire(&claimed)?;
                }
                Some(Refusal::Untrusted(why)) => {
                    let moved = self.spool.quarantine_untrusted(&claimed)?;
                    log::error!(
                        "spool entry {name} names {repo}, which this worker does not mirror: {why}; moved to {}; if \
                         it should be mirrored, register it (git-push-mirror install {repo}) and run \
                         `git-push-mirror run`",
                        moved.display(),
                        repo = entry.repo.display()
                    );
                    summary.entries_quarantined += 1;
                }
            }
        }
        Ok(batch)
    }

    /// Moves an unusable claimed entry to `spool/bad/`, telling of it first (a crash in between
    /// tells of a move the next run makes again).
    fn quarantine_unusable(&self, name: &str, claimed: &Path, why: &str) -> Result<()> {
        let mut notice = Notice::new(
            crate::config::notify::Event::Quarantined,
            self.spool.root(),
            None,
            now_ms(),
        );
        notice.error = Some(format!(
            "spool entry {name} is unusable ({why}); moved to {}",
            self.spool.bad_dir().join(name).display()
        ));
        if let Err(e) = self.store.tell(&notice) {
            log::warn!("queueing a notice of spool entry {name}: {e:#}");
        }
        let moved = self.spool.quarantine(claimed)?;
        log::error!("spool entry {name} is unusable ({why}); moved to {}", moved.display());
        Ok(())
    }

    /// Why entries naming `repo` are not recorded, if they are not.
    fn refusal(&self, repo: &Path) -> Option<Refusal> {
        if !looks_like_a_repository(repo) {
            // A repository that is gone is forgotten here, in the same one line.
            let forgotten = crate::pipeline::registrations::is_gone(repo) && self.store.forget(repo).unwrap_or(false);
            return Some(Refusal::Gone { forgotten });
        }
        crate::pipeline::trust::distrusted_repository(&self.global, self.store, repo).map(Refusal::Untrusted)
    }

    /// Records a batch: per group of repositories, their states merged and staged under their
    /// locks, one group commit, then their entries retired with one directory fsync. Entries of a
    /// repository whose state cannot be written stay claimed and are tried again later
    /// ([`Self::retry_held`]); nothing else waits for them.
    pub(super) fn record_batch(&mut self, batch: Batch, summary: &mut RunSummary) -> Result<()> {
        let mut repos = batch.by_repo.into_iter().peekable();
        while repos.peek().is_some() {
            let group: Vec<_> = repos.by_ref().take(REPOS_PER_COMMIT).collect();
            let mut commit = GroupCommit::new();
            let mut locks: Vec<FileLock> = Vec::with_capacity(group.len());
            let mut staged: Vec<(PathBuf, Staged)> = Vec::with_capacity(group.len());
            for (repo, entries) in group {
                match self.stage_repo(&repo, &entries, &mut commit, &mut locks) {
                    Ok(mirrors) => {
                        let claimed = entries.into_iter().map(|(path, _)| path).collect();
                        staged.push((repo, Staged { claimed, mirrors }));
                    }
                    Err(e) => self.hold(&repo, entries.into_iter().map(|(path, _)| path), &e),
                }
            }
            if let Err(e) = commit.commit() {
                drop(locks);
                let e = anyhow::Error::new(e).context("recording pushes in the state directory");
                for (repo, part) in staged {
                    self.hold(&repo, part.claimed, &e);
                }
                continue;
            }
            drop(locks);
            crate::util::failpoint::hit("ingest.after_record");
            let claimed: Vec<PathBuf> = staged
                .iter()
                .flat_map(|(_, part)| part.claimed.iter().cloned())
                .collect();
            self.spool.retire_all(&claimed)?;
            summary.entries_ingested += claimed.len();
            for (repo, part) in staged {
                self.faults.remove(&repo);
                match part.mirrors {
                    Some(states) => self.recorded(&repo, states),
                    // Routed when its configuration can be read (route_due_repos logs why not).
                    None => {
                        self.unrouted.insert(repo, Instant::now());
                    }
                }
            }
        }
        Ok(())
    }

    /// Merges one repository's entries into its mirrors' states (a mirror never updated gets a
    /// full reconciliation), staged in `commit` under the repository's lock (kept in `locks`).
    /// When its configuration cannot be read, into its record instead, to be routed once it
    /// can. Returns the mirrors' states as staged.
    fn stage_repo(
        &mut self,
        repo: &Path,
        entries: &[(PathBuf, SpoolEntry)],
        commit: &mut GroupCommit,
        locks: &mut Vec<FileLock>,
    ) -> Result<Option<Vec<crate::mirror::state::MirrorState>>> {
        // The refs the entries reported, merged (only the newest facts matter).
        let mut reported = RepoRecord {
            repo: repo.to_path_buf(),
            ..Default::default()
        };
        for (_, entry) in entries {
            reported.record(&entry.updates, entry.received_at_ms);
        }
        let repo_config = config::load_repo(repo, &self.global);
        locks.push(self.store.lock(repo)?);
        let Ok(repo_config) = repo_config else {
            let mut record = self.store.load_record_healing(repo)?.unwrap_or_default();
            record.repo = repo.to_path_buf();
            for (_, entry) in entries {
                record.record(&entry.updates, entry.received_at_ms);
            }
            self.store.stage_record(&record, commit)?;
            return Ok(None);
        };
        if !self.store.has_record(repo) {
            // Registered with its first push, as `install` does.
            let record = RepoRecord {
                repo: repo.to_path_buf(),
                ..Default::default()
            };
            self.store.stage_record(&record, commit)?;
        }
        let now = now_ms();
        let mut states = Vec::with_capacity(repo_config.mirrors.len());
        for mirror in &repo_config.mirrors {
            let mut state = self.store.load_mirror_healing(repo, &mirror.name)?;
            let never_updated = state.last_update_at_ms.is_none()
                && !state.has_work()
                && state.update_status == crate::mirror::state::UpdateStatus::None;
            for (name, pending) in &reported.pending {
                state.add_pending(name, pending, now);
            }
            // A mirror never updated before gets everything, not just these pushes.
            if never_updated {
                state.request_full_sync(now);
            }
            self.store.stage_mirror(&state, commit)?;
            crate::util::failpoint::hit("route.after_mirror_saved");
            states.push(state);
        }
        Ok(Some(states))
    }

    /// Puts the pairs of a repository whose pushes were just recorded on the schedule.
    fn recorded(&mut self, repo: &Path, states: Vec<crate::mirror::state::MirrorState>) {
        self.config_fixed(repo);
        if !self.wanted(repo) {
            return;
        }
        for state in states {
            let pair = (repo.to_path_buf(), state.mirror.clone());
            // A new push earns a pair its attempts again.
            self.failed_attempts.remove(&pair);
            self.schedule(repo, &state.mirror, &state);
        }
    }

    /// Keeps claimed entries whose refs could not be recorded, to try again later.
    fn hold(&mut self, repo: &Path, claimed: impl IntoIterator<Item = PathBuf>, error: &anyhow::Error) {
        self.fault(repo, "a push could not be recorded; it waits in the spool", error);
        let at = Instant::now() + super::RECORD_RETRY;
        self.held.extend(claimed.into_iter().map(|path| (path, at)));
    }

    /// Tries again to record the entries held back by [`Self::record_batch`], read again from
    /// their claimed files (only their paths are kept meanwhile).
    pub(super) fn retry_held(&mut self, summary: &mut RunSummary) {
        let now = Instant::now();
        if self.held.iter().all(|(_, at)| *at > now) {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(_, at)| *at <= now);
        self.held = later;
        let mut batch = Batch::default();
        for (claimed, _) in due {
            let name = claimed.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
            match self.spool.read(&claimed) {
                Ok(entry) => batch
                    .by_repo
                    .entry(entry.repo.clone())
                    .or_default()
                    .push((claimed, entry)),
                Err(e) => {
                    if let Err(e) = self.quarantine_unusable(&name, &claimed, &e.to_string()) {
                        log::error!("{e:#}");
                    }
                }
            }
        }
        if let Err(e) = self.record_batch(batch, summary) {
            log::error!("{e:#}");
        }
    }
}

/// Why a spool entry's repository is not recorded.
enum Refusal {
    /// Not a git repository (any more); whether its state was forgotten.
    Gone { forgotten: bool },
    /// Not registered and owned by someone the worker does not trust: why.
    Untrusted(String),
}
