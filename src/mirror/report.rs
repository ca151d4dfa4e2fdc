//! What one mirror update did: the outcome of each ref, warnings, the LFS step, and whether the update failed. Written by the update, read by `sync`, the worker's bookkeeping and the known-refs checks.

use crate::git::{Failure, FailureClass, failure::refusal_class};
use crate::mirror::lfs::LfsReport;
use crate::mirror::plan::{Divergence, KeptReason};
use crate::util::oid::Oid;
/// What happened to one ref.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefOutcome {
    Created,
    Updated,
    Forced,
    Deleted,
    UpToDate,
    /// Neither side has it.
    Absent,
    Divergent {
        local: Oid,
        remote: Oid,
        why: Divergence,
    },
    Kept {
        why: KeptReason,
    },
    Blocked {
        by: String,
    },
    /// The mirror refused it, or it could not be pushed; retried later.
    Rejected {
        reason: String,
    },
    /// Not pushed because the mirror could not be given its LFS objects (`lfs_required`); retried later.
    Held {
        reason: String,
    },
    /// Not pushed in this update: it was refused together with others and the split of that
    /// push ran out of budget; retried later.
    Deferred {
        reason: String,
    },
}

impl RefOutcome {
    /// Settled outcomes take the ref off the pending list (retrying cannot change them).
    pub fn is_settled(&self) -> bool {
        !matches!(
            self,
            RefOutcome::Rejected { .. } | RefOutcome::Held { .. } | RefOutcome::Deferred { .. }
        )
    }

    /// Whether the ref makes the update fail.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            RefOutcome::Divergent { .. }
                | RefOutcome::Blocked { .. }
                | RefOutcome::Rejected { .. }
                | RefOutcome::Held { .. }
                | RefOutcome::Deferred { .. }
        )
    }

    /// One word for tables.
    pub fn label(&self) -> &'static str {
        match self {
            RefOutcome::Created => "created",
            RefOutcome::Updated => "updated",
            RefOutcome::Forced => "forced",
            RefOutcome::Deleted => "deleted",
            RefOutcome::UpToDate => "up-to-date",
            RefOutcome::Absent => "absent",
            RefOutcome::Divergent { .. } => "divergent",
            RefOutcome::Kept { .. } => "kept",
            RefOutcome::Blocked { .. } => "blocked",
            RefOutcome::Rejected { .. } => "rejected",
            RefOutcome::Held { .. } => "held",
            RefOutcome::Deferred { .. } => "deferred",
        }
    }

    /// What kind of failure this ref's outcome is, if it is one: the mirror's rules refusing it,
    /// a divergence or a blocked path need a person (permanent); a lost race, a held or deferred
    /// ref are retried soon (transient).
    pub fn failure_class(&self) -> Option<FailureClass> {
        match self {
            RefOutcome::Divergent { .. } | RefOutcome::Blocked { .. } => Some(FailureClass::Permanent),
            RefOutcome::Rejected { reason } => Some(refusal_class(reason)),
            RefOutcome::Held { .. } | RefOutcome::Deferred { .. } => Some(FailureClass::Transient),
            _ => None,
        }
    }

    /// Why, in words, when there is more to say than the label.
    pub fn detail(&self) -> String {
        match self {
            RefOutcome::Divergent { local, remote, why } => {
                let why = match why {
                    Divergence::NotFastForward => "the mirror has commits the local ref does not",
                    Divergence::RemoteUnknown => "the mirror's commit is unknown locally",
                    Divergence::TagMoved => "the tag points elsewhere on the mirror",
                };
                format!("{why} (local {}, mirror {})", local.short(), remote.short())
            }
            RefOutcome::Kept { why } => match why {
                KeptReason::KeepDivergentRefs => "deleted locally; keep_divergent_refs keeps it on the mirror",
                KeptReason::NoDefaultBranch => {
                    "deleted locally; kept because the repository has no default branch (HEAD) to check it is merged"
                }
                KeptReason::RemoteNotMerged => {
                    "deleted locally with work not merged into the default branch; prune_unmerged = true deletes it"
                }
                KeptReason::LastLocalNotMerged => {
                    "deleted locally after unmerged commits were pushed to it; prune_unmerged = true deletes it"
                }
            }
            .to_string(),
            RefOutcome::Blocked { by } => format!("{by} occupies its path on the mirror"),
            RefOutcome::Rejected { reason } | RefOutcome::Held { reason } | RefOutcome::Deferred { reason } => {
                reason.clone()
            }
            _ => String::new(),
        }
    }
}

/// One ref's line in a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefResult {
    pub name: String,
    pub outcome: RefOutcome,
    /// The local value the decision was made for (`None`: absent locally).
    pub local: Option<Oid>,
    /// The mirror's value after the update, as far as known (meaningful for settled outcomes).
    pub remote: Option<Oid>,
}

/// The result of one mirror update.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateReport {
    pub refs: Vec<RefResult>,
    pub warnings: Vec<String>,
    /// The mirror could not be reached or updated at all (redacted), and the kind of failure.
    pub error: Option<Failure>,
    /// What the LFS step did, when the update had LFS objects to send.
    pub lfs: Option<LfsReport>,
    /// The update stopped because the mirror was removed, re-pointed or disabled meanwhile
    /// (why, in words; also the error): what it did was not recorded as the mirror's outcome.
    pub stopped: Option<String>,
    /// What the update did and saw on the mirror's side (docs/mirror-side.md).
    pub side: SideReport,
}

/// What making the mirror's default branch follow the local one came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultBranchOutcome {
    /// The local default branch (`refs/heads/X`).
    pub branch: String,
    /// Why the mirror's could not be made this one (`None`: it is now).
    pub error: Option<String>,
}

/// The mirror's side of one update.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SideReport {
    /// The repository was missing and was created (or found created meanwhile): what was done.
    pub created: Option<String>,
    /// The mirror's `HEAD` as this update's `ls-remote` showed it (`None`: not observed, or no
    /// symbolic HEAD).
    pub observed_head: Option<String>,
    /// The mirror's default branch was made to follow the local one, or could not be.
    pub default_branch: Option<DefaultBranchOutcome>,
    /// Whether the mirror turned the push options down (`Some(false)`: it took them, or there
    /// are none to send; `None`: nothing was pushed with them, so nothing was learned).
    pub push_options_refused: Option<bool>,
}

impl UpdateReport {
    pub(crate) fn failed(error: impl Into<Failure>) -> UpdateReport {
        UpdateReport {
            error: Some(error.into()),
            ..Default::default()
        }
    }

    /// What kind of failure the update is, if it failed: the error's class, else transient when
    /// any ref is to be retried soon, else permanent (every failing ref needs a person).
    pub fn failure_class(&self) -> Option<FailureClass> {
        if let Some(error) = &self.error {
            return Some(error.class);
        }
        let classes: Vec<FailureClass> = self.refs.iter().filter_map(|r| r.outcome.failure_class()).collect();
        if classes.contains(&FailureClass::Transient) {
            Some(FailureClass::Transient)
        } else {
            classes.first().copied()
        }
    }

    pub fn is_failure(&self) -> bool {
        self.error.is_some() || self.refs.iter().any(|r| r.outcome.is_failure())
    }

    fn names_with(&self, pred: impl Fn(&RefOutcome) -> bool) -> Vec<&str> {
        self.refs
            .iter()
            .filter(|r| pred(&r.outcome))
            .map(|r| r.name.as_str())
            .collect()
    }

    /// The `last_error` this report leaves, if any.
    pub fn error_summary(&self) -> Option<String> {
        let divergent = self.names_with(|o| matches!(o, RefOutcome::Divergent { .. }));
        self.summary_with_divergent(&divergent)
    }

    /// [`Self::error_summary`] naming `divergent` as the divergent refs: those the mirror still
    /// diverges on, this update's and earlier ones' (a divergence fails the mirror until it ends).
    pub fn summary_with_divergent(&self, divergent: &[&str]) -> Option<String> {
        if let Some(error) = &self.error {
            return Some(error.message.clone());
        }
        let rejected: Vec<String> = self
            .refs
            .iter()
            .filter_map(|r| match &r.outcome {
                RefOutcome::Rejected { reason } => Some(format!("{} ({reason})", r.name)),
                _ => None,
            })
            .collect();
        let blocked = self.names_with(|o| matches!(o, RefOutcome::Blocked { .. }));
        let held = self.names_with(|o| matches!(o, RefOutcome::Held { .. }));
        let deferred = self.names_with(|o| matches!(o, RefOutcome::Deferred { .. }));
        let mut parts = Vec::new();
        if !held.is_empty() {
            let why = self.lfs.as_ref().and_then(LfsReport::error_summary).unwrap_or_default();
            parts.push(format!(
                "not pushed for want of LFS objects: {} ({why})",
                held.join(", ")
            ));
        }
        if !rejected.is_empty() {
            parts.push(format!("rejected by the mirror: {}", rejected.join(", ")));
        }
        if !divergent.is_empty() {
            parts.push(format!(
                "{} divergent ref(s) left alone: {}",
                divergent.len(),
                divergent.join(", ")
            ));
        }
        if !blocked.is_empty() {
            parts.push(format!("blocked by a kept ref: {}", blocked.join(", ")));
        }
        if !deferred.is_empty() {
            parts.push(format!(
                "{} ref(s) refused with others, to be split further at the next attempt",
                deferred.len()
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}
