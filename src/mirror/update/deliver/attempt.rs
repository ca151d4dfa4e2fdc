//! One `git push` of a group of refs, and the verdict on each ref: landed, refused (with the
//! mirror's words), or too large for the push it was in; or why the push could not be made.

use super::super::split::Attempt;
use crate::git::Failure;
use crate::git::remote_words::{Attribution, names_ref, with_words};
use crate::git::{self, GitError, PushFlag, PushedRef, RemoteAccess};
use crate::util::oid::RefChange;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What the mirror did with one ref of one push.
pub(super) enum Verdict {
    Landed {
        flag: PushFlag,
        confirmed: bool,
    },
    Refused(String),
    /// Refused (or cut off) for the size of the push it was in; `certain` when the mirror said so.
    TooLarge {
        message: String,
        certain: bool,
    },
}

/// A push that could not be made at all.
pub(super) enum Halt {
    TimedOut(String),
    Failed(Failure),
}

/// Reasons for refusing a ref that are about the push as a whole, not about the ref: when every
/// ref sent is refused so, the push is split.
fn refuses_the_whole_push(reason: &str) -> bool {
    matches!(
        reason,
        "pre-receive hook declined" | "unpacker error" | "n/a (unpacker error)" | "failed" | "failure"
    )
}

/// One `git push` of `group`, reduced to what splitting and stepping need.
pub(super) fn push_once(
    git_dir: &Path,
    access: &RemoteAccess,
    group: &[(&str, &RefChange)],
) -> Result<Attempt<Verdict>, Halt> {
    let outcome = match git::push(git_dir, access, group) {
        Ok(outcome) => outcome,
        Err(GitError::TimedOut(limit)) => return Err(Halt::TimedOut(GitError::TimedOut(limit).to_string())),
        Err(GitError::TooLarge(message)) => return Ok(all_too_large(group, &message, true)),
        Err(GitError::Dropped(message)) => return Ok(all_too_large(group, &message, false)),
        Err(other) => return Err(Halt::Failed(other.into())),
    };
    let reported: BTreeMap<&str, &PushedRef> = outcome.refs.iter().map(|r| (r.name.as_str(), r)).collect();
    // Refused by the mirror itself (`[remote rejected]`), as opposed to refused by git before
    // anything was sent (a failed lease) or up to date.
    let sent_and_refused: Vec<&PushedRef> = outcome
        .refs
        .iter()
        .filter(|r| r.flag == PushFlag::Rejected && r.summary.starts_with("[remote rejected]"))
        .collect();
    let any_sent_landed = outcome
        .refs
        .iter()
        .any(|r| !matches!(r.flag, PushFlag::Rejected | PushFlag::UpToDate));
    let words = &outcome.remote_lines;
    let whole = !any_sent_landed
        && !sent_and_refused.is_empty()
        && sent_and_refused
            .iter()
            .all(|r| r.reason.as_deref().is_some_and(refuses_the_whole_push));
    let refused_names: Vec<&str> = sent_and_refused.iter().map(|r| r.name.as_str()).collect();
    let attribution = Attribution::new(words, &refused_names);
    let changes: BTreeMap<&str, &RefChange> = group.iter().copied().collect();
    let judge = |name: &str| -> Verdict {
        let Some(pushed) = reported.get(name) else {
            return Verdict::Refused("git reported no result for this ref".to_string());
        };
        if pushed.landed() {
            return Verdict::Landed {
                flag: pushed.flag,
                confirmed: outcome.confirmed,
            };
        }
        let reason = pushed.reason.clone().unwrap_or_else(|| pushed.summary.clone());
        if pushed.summary.starts_with("[remote failure]") {
            // The mirror took the push but did not say how it went: look at it afterwards.
            return Verdict::Landed {
                flag: changes.get(name).map_or(PushFlag::FastForward, |c| flag_of(c)),
                confirmed: false,
            };
        }
        if !pushed.summary.starts_with("[remote") {
            return Verdict::Refused(reason);
        }
        Verdict::Refused(with_words(&reason, &attribution.lines_about(name)))
    };
    let all_words: Vec<&str> = words.iter().map(String::as_str).collect();
    if whole && git::says_too_large(&all_words.join("\n")) {
        let message = with_words(sent_and_refused[0].reason.as_deref().unwrap_or("refused"), &all_words);
        let refused: BTreeSet<&str> = sent_and_refused.iter().map(|r| r.name.as_str()).collect();
        return Ok(Attempt::Judged(
            group
                .iter()
                .map(|(name, _)| {
                    let verdict = if refused.contains(name) {
                        Verdict::TooLarge {
                            message: message.clone(),
                            certain: true,
                        }
                    } else {
                        judge(name)
                    };
                    (name.to_string(), verdict)
                })
                .collect(),
        ));
    }
    if whole {
        let refused: BTreeSet<&str> = sent_and_refused.iter().map(|r| r.name.as_str()).collect();
        let reason = sent_and_refused[0].reason.clone().unwrap_or_default();
        let named = refused
            .iter()
            .filter(|name| words.iter().any(|line| names_ref(line, name)))
            .map(|n| n.to_string())
            .collect();
        return Ok(Attempt::RefusedWhole {
            refused: refused.iter().map(|n| n.to_string()).collect(),
            named,
            reason: with_words(&reason, &all_words),
            others: group
                .iter()
                .filter(|(name, _)| !refused.contains(name))
                .map(|(name, _)| (name.to_string(), judge(name)))
                .collect(),
        });
    }
    Ok(Attempt::Judged(
        group.iter().map(|(name, _)| (name.to_string(), judge(name))).collect(),
    ))
}

/// The flag git shows for a change that landed.
fn flag_of(change: &RefChange) -> PushFlag {
    match change {
        RefChange::Create { .. } => PushFlag::New,
        RefChange::Update { forced: true, .. } => PushFlag::Forced,
        RefChange::Update { .. } => PushFlag::FastForward,
        RefChange::Delete { .. } => PushFlag::Deleted,
    }
}

fn all_too_large(group: &[(&str, &RefChange)], message: &str, certain: bool) -> Attempt<Verdict> {
    Attempt::Judged(
        group
            .iter()
            .map(|(name, _)| {
                let verdict = Verdict::TooLarge {
                    message: message.to_string(),
                    certain,
                };
                (name.to_string(), verdict)
            })
            .collect(),
    )
}
