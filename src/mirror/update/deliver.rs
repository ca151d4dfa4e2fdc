//! Delivers the planned changes of one update to the mirror and says what became of each ref.
//! One push when the mirror takes it; otherwise: refs the mirror refused last time are pushed
//! alone first, a push refused as a whole is split ([`split`]), an update over the mirror's
//! size limit goes in steps ([`steps`]) — and a push refused as too large, dropped mid-pack or
//! cut off by the time limit makes the steps smaller, a lesson kept for the next updates (see
//! [`crate::mirror::learned_limit`]) —, and what landed is
//! checked by looking at the mirror (one `ls-remote`) when the mirror's word is not enough:
//! after a full reconciliation, for refs it did not confirm (no `report-status`), and for refs
//! it refused or lost before. A mirror may answer `ok` for a ref it does not keep.

mod attempt;

use super::split::{self, Attempt, Split};
use super::steps::{self, History, Limits, Step};
use crate::config::PushLimits;
use crate::git::{self, Failure, PushFlag, RemoteAccess};
use crate::mirror::learned_limit::{LearnedLimits, LimitSource, UpdateSizes};
use crate::mirror::state::PushProgress;
use crate::util::oid::Oid;
use crate::util::oid::RefChange;
use attempt::{Halt, Verdict, push_once};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// Pushes cut off by the time limit in a row after which an update gives up: a hung mirror
/// costs that many timeouts, a slow one gets smaller steps for as long as they land.
const MAX_TIMEOUTS_IN_A_ROW: u32 = 2;

/// What became of one ref.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// On the mirror; the flag of its (first) push.
    Landed(PushFlag),
    /// The mirror refused it, or git did not send it (a failed lease): the reason, with the
    /// mirror's words.
    Refused(String),
    /// Not pushed in this update: refused together with others when the split budget ran out.
    NotPushed(String),
}

/// What the mirror's past updates taught, carried from one update to the next in its state.
#[derive(Clone, Debug, Default)]
pub struct Lessons {
    /// What its refusals, dropped connections and timeouts taught about its push size.
    pub limits: LearnedLimits,
    /// Refs it refused at the last update: pushed alone, so they do not sink the others' push.
    pub rejected: BTreeSet<String>,
    /// What this update's pushes showed about their sizes (for [`LearnedLimits::after_update`]).
    pub sizes: UpdateSizes,
}

/// Where delivery reports as it goes, so that a kill loses nothing learned: the progress of a
/// stepped update (to the state, and to `sync`'s terminal), and each lowered push size limit;
/// and whom it asks, between two pushes, whether the mirror is still the one configured.
pub trait Journal {
    fn progress(&self, progress: &PushProgress);
    fn learned(&self, limits: &LearnedLimits);
    /// An error (why, in words) when the mirror was removed, re-pointed or disabled since the
    /// update began: no more pushes go to it.
    fn still_configured(&self) -> Result<(), Failure>;
}

/// The mirror a delivery pushes to, and what is known of it before the first push.
pub struct Destination<'a> {
    /// The repository pushed from.
    pub git_dir: &'a Path,
    pub access: &'a RemoteAccess,
    /// The configured push limits (the learned ones are in [`Lessons`]).
    pub limits: PushLimits,
    /// The mirror's values: what the planned changes were planned against.
    pub haves: &'a [Oid],
    /// A full reconciliation: every ref that landed is looked for on the mirror afterwards.
    pub confirm_all: bool,
}

/// Delivers `changes` (ref name → change planned against the destination's `haves`). An
/// error means the mirror cannot be pushed to now (retried later); what landed before it is
/// on the mirror and found there by the next attempt.
pub fn deliver(
    to: &Destination<'_>,
    lessons: &mut Lessons,
    mut changes: Vec<(String, RefChange)>,
    journal: &dyn Journal,
) -> Result<BTreeMap<String, Delivered>, Failure> {
    let Destination {
        git_dir,
        access,
        limits,
        haves,
        confirm_all,
    } = *to;
    // Refs refused at the last update go first, one per push, so they cannot sink the others'
    // push again; the sort is stable, so each part keeps the plan's order.
    let alone = if changes.len() > 1 {
        changes.sort_by_key(|(name, _)| !lessons.rejected.contains(name));
        changes
            .iter()
            .take_while(|(name, _)| lessons.rejected.contains(name))
            .count()
    } else {
        0
    };
    let (first, rest) = changes.split_at(alone);
    let mut delivery = Delivery {
        git_dir,
        access,
        configured: limits,
        planned_under: lessons.limits.plan_bytes(),
        lessons,
        journal,
        budget: split::budget_for(changes.len()),
        finals: changes.iter().map(|(name, change)| (name.as_str(), change)).collect(),
        first_flags: BTreeMap::new(),
        on_mirror: BTreeMap::new(),
        haves: haves.iter().cloned().collect(),
        unconfirmed: BTreeSet::new(),
        confirm_all,
        results: BTreeMap::new(),
        counts: PushProgress::default(),
        timeouts_in_a_row: 0,
        pushed: false,
    };
    delivery.run(first, true)?;
    delivery.run(rest, false)?;
    delivery.confirm_landed()?;
    Ok(delivery.results)
}

struct Delivery<'a> {
    git_dir: &'a Path,
    access: &'a RemoteAccess,
    configured: PushLimits,
    /// The size this update plans its pushes under (lowered as pushes fail for their size).
    planned_under: Option<u64>,
    lessons: &'a mut Lessons,
    journal: &'a dyn Journal,
    /// Pushes that splitting refused pushes may still cost.
    budget: usize,
    /// The change each ref must end with (borrowed from the changes being delivered).
    finals: BTreeMap<&'a str, &'a RefChange>,
    /// The flag of each ref's first landed push (a created branch stays "created" through its
    /// steps), for refs part of the way to their final value.
    first_flags: BTreeMap<String, PushFlag>,
    /// The value on the mirror (`None`: absent) of refs part of the way to their final value.
    /// Any other ref not yet landed has the value its final change expects. A ref that lands
    /// at its final value leaves both maps, so a first sync of many refs keeps no copy of every
    /// name in each.
    on_mirror: BTreeMap<String, Option<Oid>>,
    /// What the mirror has, for size estimates: its values and everything pushed since.
    haves: BTreeSet<Oid>,
    /// Refs git reported as pushed to a mirror that did not confirm it.
    unconfirmed: BTreeSet<String>,
    /// Look for every ref that landed on the mirror afterwards, not only the doubtful ones.
    confirm_all: bool,
    results: BTreeMap<String, Delivered>,
    counts: PushProgress,
    /// Pushes cut off by the time limit since the last one that was not.
    timeouts_in_a_row: u32,
    /// Whether a push was made: before each later one, the mirror must still be configured.
    pushed: bool,
}

impl Delivery<'_> {
    fn limits(&self, one_ref_per_push: bool) -> Limits {
        let max_bytes = match (self.configured.max_bytes, self.planned_under) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Limits {
            max_bytes,
            max_refs: if one_ref_per_push {
                Some(1)
            } else {
                self.configured.max_refs
            },
        }
    }

    fn plan(&self, changes: &[(String, RefChange)], one_ref_per_push: bool) -> Result<Vec<Step>, String> {
        let haves: Vec<Oid> = self.haves.iter().cloned().collect();
        steps::plan_steps(changes, self.limits(one_ref_per_push), &haves, &GitHistory(self))
    }

    /// Pushes `changes` step by step, re-planning with smaller steps when a push is too large or
    /// does not finish within the time limit.
    fn run(&mut self, changes: &[(String, RefChange)], one_ref_per_push: bool) -> Result<(), Failure> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut queue: VecDeque<Step> = self.plan(changes, one_ref_per_push)?.into();
        self.counts.total += queue.len();
        if queue.len() > 1 {
            log::info!(
                "mirror {}: pushing {} ref(s) in {} steps",
                self.access.mirror,
                changes.len(),
                queue.len()
            );
        }
        while let Some(step) = queue.pop_front() {
            let todo: Vec<(String, RefChange)> = step
                .changes
                .into_iter()
                .filter(|(name, _)| !self.results.contains_key(name))
                .collect();
            if todo.is_empty() {
                self.counts.total = self.counts.total.saturating_sub(1);
                continue;
            }
            if self.pushed {
                // Between two steps: a mirror removed, re-pointed or disabled meanwhile gets no more.
                self.journal.still_configured()?;
            }
            self.pushed = true;
            let verdicts = match self.push_group(&todo) {
                Ok(verdicts) => verdicts,
                Err(Halt::Failed(error)) => return Err(error),
                Err(Halt::TimedOut(error)) => {
                    // A slow link, or a hung mirror: smaller steps, while they keep landing.
                    let bytes = self.size_of(&todo, step.bytes)?;
                    self.timeouts_in_a_row += 1;
                    self.learn_smaller(bytes, None, one_ref_per_push, LimitSource::TimedOut);
                    match self.replan_smaller(&todo, bytes, &queue, one_ref_per_push)? {
                        Some(replanned) if self.timeouts_in_a_row < MAX_TIMEOUTS_IN_A_ROW => {
                            queue = replanned;
                            continue;
                        }
                        _ => return Err(error.into()),
                    }
                }
            };
            self.timeouts_in_a_row = 0;
            let mut too_large = Vec::new();
            let pushed: BTreeMap<&str, &RefChange> = todo.iter().map(|(n, c)| (n.as_str(), c)).collect();
            for (name, verdict) in verdicts {
                match verdict {
                    Verdict::Landed { flag, confirmed } => {
                        if let Some(change) = pushed.get(name.as_str()) {
                            self.landed(&name, change, flag, confirmed);
                        }
                    }
                    Verdict::Refused(reason) => {
                        self.results.insert(name, Delivered::Refused(reason));
                    }
                    Verdict::TooLarge { message, certain } => too_large.push((name, message, certain)),
                }
            }
            if too_large.is_empty() {
                self.counts.done += 1;
                self.counts.bytes_sent += step.bytes.unwrap_or(0);
                let landed = self.lessons.sizes.largest_landed.unwrap_or(0);
                self.lessons.sizes.largest_landed = Some(landed.max(step.bytes.unwrap_or(0)));
                if self.counts.total > 1 {
                    self.journal.progress(&self.counts);
                }
                continue;
            }
            let refused: Vec<(String, RefChange)> = todo
                .iter()
                .filter(|(name, _)| too_large.iter().any(|(n, _, _)| n == name))
                .cloned()
                .collect();
            let bytes = self.size_of(&todo, step.bytes)?;
            let said = too_large.iter().find_map(|(_, m, _)| git::size_limit_in(m));
            // Only the mirror's word is a fact; a connection that dropped may be the network.
            let source = if too_large.iter().any(|(_, _, certain)| *certain) {
                LimitSource::Refused
            } else {
                LimitSource::Dropped
            };
            self.learn_smaller(bytes, said, one_ref_per_push, source);
            match self.replan_smaller(&refused, bytes, &queue, one_ref_per_push)? {
                Some(replanned) => queue = replanned,
                None => {
                    // One ref that cannot be cut smaller than what was refused.
                    let (name, message, certain) = &too_large[0];
                    if !certain {
                        return Err(message.clone().into());
                    }
                    self.results.insert(name.clone(), Delivered::Refused(message.clone()));
                }
            }
        }
        Ok(())
    }

    /// The estimated size of a push: the step's own estimate, or one asked of git.
    fn size_of(&self, pushed: &[(String, RefChange)], estimated: Option<u64>) -> Result<u64, String> {
        match estimated {
            Some(bytes) => Ok(bytes),
            None => self.estimate(pushed),
        }
    }

    /// Lowers the push size limit after a push of `bytes` failed for its size (`source`; `said`:
    /// the limit the mirror named): the lesson is kept (see [`LearnedLimits::after_failure`]),
    /// and the rest of this update goes under it, always smaller than before, so that
    /// shrinking ends.
    fn learn_smaller(&mut self, bytes: u64, said: Option<u64>, one_ref_per_push: bool, source: LimitSource) {
        self.lessons.sizes.failed = true;
        self.lessons
            .limits
            .after_failure(source, bytes, said, crate::util::fsutil::now_ms());
        self.journal.learned(&self.lessons.limits);
        let before = self.limits(one_ref_per_push).max_bytes.unwrap_or(u64::MAX);
        let lesson = self.lessons.limits.plan_bytes().unwrap_or(u64::MAX);
        let under = lesson.min(before.saturating_sub(1)).max(1);
        self.planned_under = Some(under);
        let lasting = if source == LimitSource::Refused {
            ""
        } else {
            " (a hypothesis: clean updates raise it again)"
        };
        log::warn!(
            "mirror {}: a push of about {} {}; pushing in steps of at most {}{lasting}",
            self.access.mirror,
            crate::util::size::ByteSize(bytes),
            source.what(),
            crate::util::size::ByteSize(under)
        );
    }

    /// New steps, under the lowered limit, for the refs of a failed push and the rest of the
    /// queue; `None` when the failed push was one ref that cannot be cut smaller.
    fn replan_smaller(
        &mut self,
        failed: &[(String, RefChange)],
        failed_bytes: u64,
        queue: &VecDeque<Step>,
        one_ref_per_push: bool,
    ) -> Result<Option<VecDeque<Step>>, String> {
        let remaining = self.remaining(failed.iter().map(|(n, _)| n.as_str()), queue);
        let replanned = self.plan(&remaining, one_ref_per_push)?;
        let cannot_shrink = failed.len() == 1
            && replanned
                .iter()
                .filter(|s| s.changes.iter().any(|(n, _)| *n == failed[0].0))
                .all(|s| s.changes.len() == 1 && s.bytes.is_some_and(|b| b >= failed_bytes));
        if cannot_shrink {
            return Ok(None);
        }
        self.counts.total = self.counts.done + replanned.len();
        Ok(Some(replanned.into()))
    }

    /// Each ref's change from its value on the mirror now to its final value: the refs
    /// named first, then those of the queue, once each, without those already decided.
    fn remaining<'n>(&self, first: impl Iterator<Item = &'n str>, queue: &VecDeque<Step>) -> Vec<(String, RefChange)> {
        let mut seen = BTreeSet::new();
        let names = first
            .map(str::to_string)
            .chain(queue.iter().flat_map(|s| s.changes.iter().map(|(n, _)| n.clone())));
        let mut out = Vec::new();
        for name in names {
            if self.results.contains_key(&name) || !seen.insert(name.clone()) {
                continue;
            }
            let Some(&last) = self.finals.get(name.as_str()) else {
                continue;
            };
            let now = match self.on_mirror.get(&name) {
                Some(value) => value.clone(),
                None => last.expected_remote().cloned(),
            };
            let change = match (now, last) {
                (Some(now), RefChange::Create { new } | RefChange::Update { new, .. })
                    if Some(&now) != last.expected_remote() =>
                {
                    RefChange::Update {
                        old: now,
                        new: new.clone(),
                        forced: false,
                    }
                }
                _ => last.clone(),
            };
            out.push((name, change));
        }
        out
    }

    fn landed(&mut self, name: &str, change: &RefChange, flag: PushFlag, confirmed: bool) {
        let value = change.new_value().cloned();
        if let Some(oid) = &value {
            self.haves.insert(oid.clone());
        }
        if !confirmed {
            self.unconfirmed.insert(name.to_string());
        }
        let first = self.first_flags.remove(name).unwrap_or(flag);
        if self.finals.get(name).map(|last| last.new_value()) == Some(value.as_ref()) {
            self.on_mirror.remove(name);
            self.results.insert(name.to_string(), Delivered::Landed(first));
        } else {
            self.first_flags.insert(name.to_string(), first);
            self.on_mirror.insert(name.to_string(), value);
        }
    }

    fn estimate(&self, changes: &[(String, RefChange)]) -> Result<u64, String> {
        let tips: Vec<&Oid> = changes.iter().filter_map(|(_, c)| c.new_value()).collect();
        let haves: Vec<&Oid> = self.haves.iter().collect();
        GitHistory(self).size(&tips, &haves)
    }

    /// One step's push, split while the mirror refuses it as a whole.
    fn push_group(&mut self, changes: &[(String, RefChange)]) -> Result<Vec<(String, Verdict)>, Halt> {
        let by_name: BTreeMap<&str, &RefChange> = changes.iter().map(|(n, c)| (n.as_str(), c)).collect();
        let mut budget = self.budget;
        let (git_dir, access) = (self.git_dir, self.access);
        let mut push = |group: &[String]| -> Result<Attempt<Verdict>, Halt> {
            let group: Vec<(&str, &RefChange)> = group.iter().map(|n| (n.as_str(), by_name[n.as_str()])).collect();
            push_once(git_dir, access, &group)
        };
        let mut verdicts = Vec::new();
        for group in git::split_by_argument_size(&changes.iter().map(|(n, c)| (n.as_str(), c)).collect::<Vec<_>>()) {
            let group: Vec<String> = group.iter().map(|(n, _)| n.to_string()).collect();
            for (name, split) in split::push_splitting(&group, &mut budget, &mut push)? {
                let verdict = match split {
                    Split::Judged(verdict) => verdict,
                    Split::RefusedAlone(reason) => Verdict::Refused(reason),
                    Split::Unsplit(reason) => {
                        self.results.insert(name, Delivered::NotPushed(reason));
                        continue;
                    }
                };
                verdicts.push((name, verdict));
            }
        }
        self.budget = budget;
        Ok(verdicts)
    }

    /// Looks at the mirror for the refs whose landing its word does not establish (see the
    /// module documentation): what it shows is what landed; the others are refused, in words
    /// that say what happened, and stay pending.
    fn confirm_landed(&mut self) -> Result<(), Failure> {
        let doubtful: Vec<String> = self
            .results
            .iter()
            .filter(|(name, delivered)| {
                matches!(delivered, Delivered::Landed(_))
                    && (self.confirm_all || self.unconfirmed.contains(*name) || self.lessons.rejected.contains(*name))
            })
            .map(|(name, _)| name.clone())
            .collect();
        if doubtful.is_empty() {
            return Ok(());
        }
        let observed = git::ls_remote(self.git_dir, self.access, &[])?;
        for name in doubtful {
            let expected = self.finals.get(name.as_str()).and_then(|last| last.new_value());
            let found = observed.direct.get(&name);
            if found != expected {
                let said = !self.unconfirmed.contains(&name);
                let reason = not_landed(&name, said, expected.is_some(), found);
                log::warn!("mirror {}: {reason}", self.access.mirror);
                self.results.insert(name, Delivered::Refused(reason));
            }
        }
        Ok(())
    }
}

/// Why a ref git reported as pushed is not on the mirror: `said` when the mirror acknowledged it
/// itself (report-status), `created` for a create or update (not a deletion), `found` the value
/// the mirror shows.
fn not_landed(name: &str, said: bool, created: bool, found: Option<&Oid>) -> String {
    let subject = if created {
        name.to_string()
    } else {
        format!("the deletion of {name}")
    };
    let outcome = match (created, found) {
        (true, None) => "does not have it".to_string(),
        (true, Some(other)) => format!("shows another value ({})", other.short()),
        (false, _) => "still has it".to_string(),
    };
    if said {
        format!("the mirror acknowledged {subject} but {outcome}")
    } else {
        format!("the mirror did not confirm {subject} (it offers no report-status) and {outcome}")
    }
}

/// The planner's view of the repository, through git.
struct GitHistory<'d, 'a>(&'d Delivery<'a>);

impl History for GitHistory<'_, '_> {
    fn size(&self, tips: &[&Oid], haves: &[&Oid]) -> Result<u64, String> {
        git::history::disk_usage(self.0.git_dir, tips, haves, self.0.access.timeout)
            .map_err(|e| format!("estimating the size of a push: {e}"))
    }

    fn states(&self, to: &Oid, from: Option<&Oid>, haves: &[&Oid]) -> Result<Vec<Oid>, String> {
        git::history::first_parent_states(self.0.git_dir, to, from, haves, self.0.access.timeout)
            .map_err(|e| format!("listing the history of a push: {e}"))
    }
}
