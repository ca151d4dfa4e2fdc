//! What notifying has done, kept in `<state_dir>/notify/ledger.json` so it outlives the worker:
//! deliveries and failures per channel (for `metrics`), the times of the notices sent in the
//! last hour (`max_per_hour`), and when a channel that failed is tried again.

use crate::util::fsutil::{Durability, replace_file};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const HOUR_MS: u64 = 3_600_000;

/// How long a channel that failed waits before its notices are tried again, unless a new
/// notice comes first (it is tried with the new one).
pub const RETRY_MS: u64 = 60_000;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Notices each channel took.
    #[serde(default)]
    pub sent: BTreeMap<String, u64>,
    /// Deliveries each channel failed.
    #[serde(default)]
    pub failures: BTreeMap<String, u64>,
    /// When notices went out, within the last hour.
    #[serde(default)]
    pub recent_ms: Vec<u64>,
    /// When each channel last failed.
    #[serde(default)]
    pub failed_at_ms: BTreeMap<String, u64>,
}

/// The ledger's file in a state directory.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("notify").join("ledger.json")
}

impl Ledger {
    /// The ledger of a state directory (empty when there is none or it cannot be read: it holds
    /// counts, and losing them loses nothing of the notices).
    pub fn load(state_dir: &Path) -> Ledger {
        std::fs::read(path(state_dir))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, state_dir: &Path) -> Result<()> {
        let file = path(state_dir);
        let bytes = serde_json::to_vec_pretty(self)?;
        replace_file(&file, &bytes, 0o600, Durability::OldOrNew).with_context(|| format!("writing {}", file.display()))
    }

    /// Notices that may still go out this hour.
    pub fn allowance(&mut self, max_per_hour: u32, now_ms: u64) -> u32 {
        self.recent_ms
            .retain(|t| t.saturating_add(HOUR_MS) > now_ms && *t <= now_ms);
        max_per_hour.saturating_sub(self.recent_ms.len() as u32)
    }

    /// Whether `channel` may be tried now for notices queued at or before `newest_ms`: after a
    /// failure it waits [`RETRY_MS`], unless a notice newer than the failure is among them.
    pub fn may_try(&self, channel: &str, newest_ms: u64, now_ms: u64) -> bool {
        match self.failed_at_ms.get(channel) {
            None => true,
            Some(failed) => newest_ms > *failed || now_ms >= failed.saturating_add(RETRY_MS) || now_ms < *failed,
        }
    }

    pub fn delivered(&mut self, channel: &str) {
        *self.sent.entry(channel.to_string()).or_default() += 1;
        self.failed_at_ms.remove(channel);
    }

    pub fn failed(&mut self, channel: &str, now_ms: u64) {
        *self.failures.entry(channel.to_string()).or_default() += 1;
        self.failed_at_ms.insert(channel.to_string(), now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hourly_allowance_frees_up_as_the_hour_passes() {
        let mut ledger = Ledger::default();
        assert_eq!(ledger.allowance(2, 0), 2);
        ledger.recent_ms.extend([1_000, 2_000]);
        assert_eq!(ledger.allowance(2, 3_000), 0);
        assert_eq!(ledger.allowance(2, HOUR_MS + 1_500), 1);
        assert_eq!(ledger.allowance(2, 2 * HOUR_MS), 2);
    }

    #[test]
    fn a_failed_channel_waits_unless_a_new_notice_comes() {
        let mut ledger = Ledger::default();
        ledger.failed("webhook", 10_000);
        assert!(!ledger.may_try("webhook", 9_000, 20_000));
        assert!(ledger.may_try("webhook", 15_000, 20_000), "a newer notice");
        assert!(ledger.may_try("webhook", 9_000, 10_000 + RETRY_MS));
        assert!(ledger.may_try("email", 9_000, 20_000));
        ledger.delivered("webhook");
        assert!(ledger.may_try("webhook", 0, 0));
        assert_eq!((ledger.sent["webhook"], ledger.failures["webhook"]), (1, 1));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("notify")).unwrap();
        ledger.save(dir.path()).unwrap();
        assert_eq!(Ledger::load(dir.path()), ledger);
    }
}
