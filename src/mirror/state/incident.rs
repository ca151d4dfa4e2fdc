//! Telling people once per incident (docs/notifications.md): what a pair's state says was told
//! (its [`Incident`]), and the notices owed when the state differs from it. Pure: the state
//! store calls [`observe`] on every save of a pair, whatever changed the state (the worker,
//! `sync`, a rebuilt file), and queues what it returns before the state records it as told.

use crate::config::notify::Event;
use crate::mirror::state::{MirrorState, UpdateStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The pair's current trouble and what was told about it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Incident {
    /// When the current run of failed updates began (the end of its first failed update);
    /// `None` while the pair is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// Failed updates in the current run (kept for the `recovered` notice, when the state's own
    /// count is back to 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u32,
    /// When the `failed` notice of this incident (or its latest reminder) was queued; `None`:
    /// the pair has not been told failed, so its recovery is not told either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub told_failed_at_ms: Option<u64>,
    /// Divergent refs already told (forgotten once they stop diverging, so a new divergence is told).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub told_divergent: BTreeSet<String>,
    /// Refused refs already told (forgotten once they land).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub told_refused: BTreeSet<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Incident {
    pub fn is_empty(&self) -> bool {
        *self == Incident::default()
    }
}

/// One thing to tell, as queued in the outbox; the channels add the mirror's URL, the host name
/// and a summary when they send it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub event: Event,
    pub repo: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// The refs it is about (refused, divergent, or those of a failure that refused refs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<String>,
    /// The mirror's words (or the configuration error), redacted as stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the incident began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// Failed updates in a row.
    #[serde(default)]
    pub failures: u32,
    /// When it happened.
    pub at_ms: u64,
    /// A `failed` notice repeated by `remind_every`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reminder: bool,
    /// `permanent`, `transient` or `rate_limited`, when the state classes its failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_class: Option<String>,
}

impl Notice {
    /// A notice about `repo` (and `mirror`, when it is about one) with nothing else filled in.
    pub fn new(event: Event, repo: &Path, mirror: Option<&str>, at_ms: u64) -> Notice {
        Notice {
            event,
            repo: repo.to_path_buf(),
            mirror: mirror.map(str::to_string),
            refs: Vec::new(),
            error: None,
            since_ms: None,
            failures: 0,
            at_ms,
            reminder: false,
            failure_class: None,
        }
    }

    fn about(event: Event, state: &MirrorState, at_ms: u64) -> Notice {
        Notice {
            error: state.last_error.clone(),
            since_ms: state.incident.since_ms,
            failures: state.consecutive_failures.max(state.incident.failures),
            failure_class: failure_class(state),
            ..Notice::new(event, &state.repo, Some(&state.mirror), at_ms)
        }
    }
}

/// The class of the pair's failure (`permanent`, `transient`, `rate_limited`), for the notices'
/// `failure_class`.
fn failure_class(state: &MirrorState) -> Option<String> {
    state.failure_class.map(|class| class.as_str().to_string())
}

/// Brings the state's [`Incident`] up to date and returns the notices it owes. With `telling`
/// off (no channel configured) nothing new is marked as told, so a mirror already failing when
/// notifications are set up is told at its next update; what stopped being true is forgotten
/// either way (a recovery, a ref that lands).
pub fn observe(state: &mut MirrorState, now_ms: u64, telling: bool) -> Vec<Notice> {
    let mut notices = Vec::new();
    match state.update_status {
        UpdateStatus::ToRetry | UpdateStatus::Failed => {
            let began = state.last_update_at_ms.unwrap_or(now_ms);
            state.incident.since_ms.get_or_insert(began);
            state.incident.failures = state.incident.failures.max(state.consecutive_failures);
        }
        UpdateStatus::Finished => {
            if state.incident.told_failed_at_ms.is_some() && telling {
                let mut recovered = Notice::about(Event::Recovered, state, now_ms);
                recovered.error = None;
                notices.push(recovered);
            }
            state.incident.since_ms = None;
            state.incident.failures = 0;
            state.incident.told_failed_at_ms = None;
        }
        // An update in progress, or none yet: nothing to conclude.
        UpdateStatus::Started | UpdateStatus::None => {}
    }
    let divergent = &state.divergent_refs;
    let refused: BTreeSet<String> = state.rejected_refs.keys().cloned().collect();
    state.incident.told_divergent.retain(|name| divergent.contains(name));
    state.incident.told_refused.retain(|name| refused.contains(name));
    if !telling {
        return notices;
    }
    let new_divergent: Vec<String> = divergent.difference(&state.incident.told_divergent).cloned().collect();
    let new_refused: Vec<String> = refused.difference(&state.incident.told_refused).cloned().collect();
    if state.update_status == UpdateStatus::Failed && state.incident.told_failed_at_ms.is_none() {
        // One notice for the incident: the refs it refused or found divergent go with it.
        let mut failed = Notice::about(Event::Failed, state, now_ms);
        failed.refs = new_refused.iter().chain(&new_divergent).cloned().collect();
        notices.push(failed);
        state.incident.told_failed_at_ms = Some(now_ms);
    } else {
        for (event, refs) in [(Event::Refused, &new_refused), (Event::Divergent, &new_divergent)] {
            if !refs.is_empty() {
                let mut notice = Notice::about(event, state, now_ms);
                notice.refs = refs.clone();
                notices.push(notice);
            }
        }
    }
    state.incident.told_divergent.extend(new_divergent);
    state.incident.told_refused.extend(new_refused);
    notices
}

/// The reminder owed by a pair still `failed` `every` after it was last told, if any (and the
/// state marked as reminded).
pub fn remind(state: &mut MirrorState, now_ms: u64, every: std::time::Duration) -> Option<Notice> {
    let told = state.incident.told_failed_at_ms?;
    let every = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
    if state.update_status != UpdateStatus::Failed || now_ms < told.saturating_add(every) {
        return None;
    }
    state.incident.told_failed_at_ms = Some(now_ms);
    let mut notice = Notice::about(Event::Failed, state, now_ms);
    notice.reminder = true;
    Some(notice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pair() -> MirrorState {
        MirrorState::new(Path::new("/srv/git/app.git"), "github")
    }

    fn fail(state: &mut MirrorState, at: u64, status: UpdateStatus) {
        state.update_status = status;
        state.consecutive_failures += 1;
        state.last_update_at_ms = Some(at);
        state.last_error = Some("fatal: could not read from remote repository".into());
    }

    fn succeed(state: &mut MirrorState, at: u64) {
        state.update_status = UpdateStatus::Finished;
        state.consecutive_failures = 0;
        state.last_update_at_ms = Some(at);
        state.last_error = None;
    }

    fn events(notices: &[Notice]) -> Vec<Event> {
        notices.iter().map(|n| n.event).collect()
    }

    #[test]
    fn a_long_incident_is_told_once_failed_and_once_recovered() {
        let mut state = pair();
        fail(&mut state, 10, UpdateStatus::ToRetry);
        assert!(observe(&mut state, 10, true).is_empty(), "to_retry is not failed yet");
        assert_eq!(state.incident.since_ms, Some(10));
        fail(&mut state, 20, UpdateStatus::Failed);
        let told = observe(&mut state, 20, true);
        assert_eq!(events(&told), [Event::Failed]);
        assert_eq!((told[0].since_ms, told[0].failures), (Some(10), 2));
        assert!(told[0].error.as_deref().unwrap().contains("could not read"));
        for at in 30..50 {
            state.update_status = UpdateStatus::Started;
            assert!(observe(&mut state, at, true).is_empty());
            fail(&mut state, at, UpdateStatus::Failed);
            assert!(observe(&mut state, at, true).is_empty(), "told already");
        }
        succeed(&mut state, 60);
        let told = observe(&mut state, 60, true);
        assert_eq!(events(&told), [Event::Recovered]);
        assert_eq!(
            (told[0].since_ms, told[0].failures, told[0].error.as_deref()),
            (Some(10), 22, None)
        );
        assert!(state.incident.is_empty());
        assert!(observe(&mut state, 70, true).is_empty());
    }

    #[test]
    fn a_failure_that_never_reached_failed_recovers_silently() {
        let mut state = pair();
        fail(&mut state, 10, UpdateStatus::ToRetry);
        observe(&mut state, 10, true);
        succeed(&mut state, 20);
        assert!(observe(&mut state, 20, true).is_empty());
        assert!(state.incident.is_empty());
    }

    #[test]
    fn with_nobody_to_tell_nothing_is_marked_told_and_a_later_setup_tells() {
        let mut state = pair();
        fail(&mut state, 10, UpdateStatus::Failed);
        assert!(observe(&mut state, 10, false).is_empty());
        assert_eq!(state.incident.told_failed_at_ms, None);
        fail(&mut state, 20, UpdateStatus::Failed);
        assert_eq!(events(&observe(&mut state, 20, true)), [Event::Failed]);
        succeed(&mut state, 30);
        assert!(observe(&mut state, 30, false).is_empty());
        assert!(
            state.incident.is_empty(),
            "a recovery is forgotten even when nobody is told"
        );
    }

    #[test]
    fn refs_are_told_when_they_newly_diverge_or_are_refused() {
        let mut state = pair();
        state.update_status = UpdateStatus::ToRetry;
        state.rejected_refs.insert("refs/heads/a".into(), "GH006".into());
        let told = observe(&mut state, 10, true);
        assert_eq!(events(&told), [Event::Refused]);
        assert_eq!(told[0].refs, ["refs/heads/a"]);
        assert!(observe(&mut state, 11, true).is_empty());
        state.rejected_refs.insert("refs/heads/b".into(), "GH006".into());
        state.divergent_refs.insert("refs/heads/d".into());
        let told = observe(&mut state, 12, true);
        assert_eq!(events(&told), [Event::Refused, Event::Divergent]);
        assert_eq!(
            (told[0].refs.clone(), told[1].refs.clone()),
            (vec!["refs/heads/b".to_string()], vec!["refs/heads/d".to_string()])
        );
        // a lands, then is refused again: a new refusal.
        state.rejected_refs.remove("refs/heads/a");
        assert!(observe(&mut state, 13, true).is_empty());
        state.rejected_refs.insert("refs/heads/a".into(), "GH006".into());
        assert_eq!(observe(&mut state, 14, true)[0].refs, ["refs/heads/a"]);
    }

    #[test]
    fn refs_of_a_failure_go_with_its_failed_notice() {
        let mut state = pair();
        state.update_status = UpdateStatus::Failed;
        state.divergent_refs.insert("refs/heads/main".into());
        let told = observe(&mut state, 10, true);
        assert_eq!(events(&told), [Event::Failed]);
        assert_eq!(told[0].refs, ["refs/heads/main"]);
        assert!(observe(&mut state, 11, true).is_empty());
    }

    #[test]
    fn reminders_repeat_failed_after_the_interval() {
        let mut state = pair();
        fail(&mut state, 0, UpdateStatus::Failed);
        observe(&mut state, 0, true);
        let hour = Duration::from_secs(3600);
        assert!(remind(&mut state, 1000, hour).is_none());
        let reminder = remind(&mut state, 3_600_000, hour).unwrap();
        assert!(reminder.reminder && reminder.event == Event::Failed);
        assert!(
            remind(&mut state, 3_600_001, hour).is_none(),
            "the interval starts again"
        );
        succeed(&mut state, 4_000_000);
        observe(&mut state, 4_000_000, true);
        assert!(remind(&mut state, 99_000_000, hour).is_none());
    }
}
