//! What the state files hold: a repository's record (the refs its pushes reported) and a
//! mirror's state (pending refs, status, retry schedule), with the transitions on them that need
//! no file.

use super::{Incident, mirror_side};
use crate::git::FailureClass;
use crate::mirror::learned_limit::LearnedLimits;
use crate::mirror::lfs::LfsStatus;
use crate::util::oid::{Oid, RefUpdate};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
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
    /// The current trouble and what was told about it (README: "Notifications").
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
