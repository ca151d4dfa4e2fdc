//! The per-repository summary of failing mirrors that the hook reads to warn pushers
//! (`<state_dir>/repos/<repo>/failing.json`): kept by the state store whenever a pair is saved,
//! absent while every mirror of the repository is healthy, so the hook of a healthy repository
//! costs one failed `open`.

use crate::mirror::state::{MirrorState, UpdateStatus};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The summary's file name in the repository's state directory.
pub const FAILING_FILE: &str = "failing.json";

/// How much of a mirror's error the pusher sees.
const MAX_ERROR_CHARS: usize = 200;

/// One failing mirror, as the pusher is told about it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FailingMirror {
    pub mirror: String,
    /// When its failures began.
    #[serde(default)]
    pub since_ms: Option<u64>,
    /// The first line of its (redacted) error, bounded.
    #[serde(default)]
    pub error: String,
}

/// What the summary says of `state`'s pair: `Some` while it is `failed` (an update of a failed
/// pair in progress keeps it), `None` otherwise. `keep` is the pair's current entry.
pub fn entry_for(state: &MirrorState, keep: Option<&FailingMirror>) -> Option<FailingMirror> {
    match state.update_status {
        UpdateStatus::Failed => Some(FailingMirror {
            mirror: state.mirror.clone(),
            since_ms: state.incident.since_ms.or(state.last_update_at_ms),
            error: first_line(state.last_error.as_deref().unwrap_or("")),
        }),
        UpdateStatus::Started => keep.cloned(),
        _ => None,
    }
}

/// The first non-empty line of `text`, control characters removed, at most [`MAX_ERROR_CHARS`].
pub fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let mut out: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_CHARS)
        .collect();
    if line.chars().count() > MAX_ERROR_CHARS {
        out.push('…');
    }
    out
}

/// Reads a summary; anything unreadable counts as nobody failing (the hook must never fail a push).
pub fn read(file: &Path) -> Vec<FailingMirror> {
    std::fs::read(file)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failed_pairs_are_listed_and_an_update_in_progress_keeps_them() {
        let mut state = MirrorState::new(Path::new("/r.git"), "gh");
        state.update_status = UpdateStatus::Failed;
        state.incident.since_ms = Some(5);
        state.last_error = Some("\n  fatal: no\tway\nsecond line".into());
        let entry = entry_for(&state, None).unwrap();
        assert_eq!((entry.since_ms, entry.error.as_str()), (Some(5), "fatal: no way"));
        state.update_status = UpdateStatus::Started;
        assert_eq!(entry_for(&state, Some(&entry)), Some(entry.clone()));
        assert_eq!(entry_for(&state, None), None);
        for status in [UpdateStatus::Finished, UpdateStatus::ToRetry, UpdateStatus::None] {
            state.update_status = status;
            assert_eq!(entry_for(&state, Some(&entry)), None);
        }
    }

    #[test]
    fn long_errors_are_cut() {
        let long = "x".repeat(500);
        assert_eq!(first_line(&long).chars().count(), MAX_ERROR_CHARS + 1);
        assert_eq!(read(Path::new("/nonexistent/failing.json")), Vec::new());
    }
}
