//! Plans the pushes of one update so that each stays under the mirror's limits
//! (`max_push_size`, `max_refs_per_push`, or a size learned from its refusals): refs in batches,
//! and a branch whose own new history is too big along the states its first-parent history
//! went through, oldest first. Each step that lands is progress the mirror keeps, so a killed
//! or timed-out update resumes from what the mirror has. Pure: what it knows of the repository
//! comes through [`History`].

use crate::util::oid::Oid;
use crate::util::oid::RefChange;
use std::collections::BTreeSet;

/// What the planner asks of the repository.
pub trait History {
    /// Bytes of the objects reachable from `tips` and not from `haves` (a push's pack, about).
    fn size(&self, tips: &[&Oid], haves: &[&Oid]) -> Result<u64, String>;
    /// The first-parent states of a branch on its way to `to`, oldest first, ending with `to`;
    /// with `from`, only states that descend from it (fast-forwards). Empty when it cannot say.
    fn states(&self, to: &Oid, from: Option<&Oid>, haves: &[&Oid]) -> Result<Vec<Oid>, String>;
}

/// What one push may carry; `None`: unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: Option<u64>,
    pub max_refs: Option<usize>,
}

/// One push: changes of several refs, or one ref moved to a state on its way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub changes: Vec<(String, RefChange)>,
    /// The estimated size of its pack, when sizes were estimated.
    pub bytes: Option<u64>,
}

/// Plans `changes` as steps within `limits`, given the mirror's values `haves`. Without a size
/// limit nothing is estimated: only `max_refs` batches. Deletions go first (they free the paths
/// that creations may need); branches go before tags, whose commits they usually carry.
pub fn plan_steps(
    changes: &[(String, RefChange)],
    limits: Limits,
    haves: &[Oid],
    history: &dyn History,
) -> Result<Vec<Step>, String> {
    let max_refs = limits.max_refs.unwrap_or(usize::MAX).max(1);
    let (deletions, mut others): (Vec<_>, Vec<_>) = changes
        .iter()
        .cloned()
        .partition(|(_, change)| matches!(change, RefChange::Delete { .. }));
    others.sort_by_key(|(name, _)| (!name.starts_with("refs/heads/"), name.starts_with("refs/tags/")));
    let Some(max_bytes) = limits.max_bytes else {
        let ordered: Vec<_> = deletions.into_iter().chain(others).collect();
        return Ok(ordered
            .chunks(max_refs)
            .map(|chunk| Step {
                changes: chunk.to_vec(),
                bytes: None,
            })
            .collect());
    };
    let mut planner = Planner {
        history,
        base: haves.iter().cloned().collect(),
        max_bytes,
        max_refs,
        steps: Vec::new(),
    };
    let tips: Vec<&Oid> = others.iter().filter_map(|(_, c)| c.new_value()).collect();
    let total = planner.size(&tips)?;
    if total <= max_bytes && changes.len() <= max_refs {
        return Ok(vec![Step {
            changes: deletions.into_iter().chain(others).collect(),
            bytes: Some(total),
        }]);
    }
    for chunk in deletions.chunks(max_refs) {
        planner.steps.push(Step {
            changes: chunk.to_vec(),
            bytes: Some(0),
        });
    }
    planner.batches(&others)?;
    Ok(planner.steps)
}

struct Planner<'a> {
    history: &'a dyn History,
    /// What the mirror has, or will have once the steps planned so far have landed.
    base: BTreeSet<Oid>,
    max_bytes: u64,
    max_refs: usize,
    steps: Vec<Step>,
}

impl Planner<'_> {
    fn size(&self, tips: &[&Oid]) -> Result<u64, String> {
        let haves: Vec<&Oid> = self.base.iter().collect();
        self.history.size(tips, &haves)
    }

    /// Greedy batches in order; the group tried at once doubles while groups fit, so that many
    /// small refs cost few size estimates, and halves when one does not.
    fn batches(&mut self, refs: &[(String, RefChange)]) -> Result<(), String> {
        let mut batch: Vec<(String, RefChange)> = Vec::new();
        let mut batch_bytes = 0u64;
        let mut next = 0;
        let mut group_len = 1;
        while next < refs.len() {
            let room = self.max_refs - batch.len();
            let group = &refs[next..refs.len().min(next + group_len.min(room))];
            let tips: Vec<&Oid> = group.iter().filter_map(|(_, c)| c.new_value()).collect();
            let bytes = self.size(&tips)?;
            if batch_bytes.saturating_add(bytes) <= self.max_bytes {
                self.base.extend(tips.into_iter().cloned());
                batch.extend(group.iter().cloned());
                batch_bytes += bytes;
                next += group.len();
                group_len = group.len().saturating_mul(2);
                if batch.len() == self.max_refs {
                    self.flush(&mut batch, &mut batch_bytes);
                }
            } else if group.len() > 1 {
                group_len = group.len() / 2;
            } else if !batch.is_empty() {
                self.flush(&mut batch, &mut batch_bytes);
            } else {
                let (name, change) = &group[0];
                self.walk_history(name, change, bytes)?;
                next += 1;
                group_len = 1;
            }
        }
        self.flush(&mut batch, &mut batch_bytes);
        Ok(())
    }

    fn flush(&mut self, batch: &mut Vec<(String, RefChange)>, bytes: &mut u64) {
        if !batch.is_empty() {
            self.steps.push(Step {
                changes: std::mem::take(batch),
                bytes: Some(*bytes),
            });
            *bytes = 0;
        }
    }

    /// Steps for one ref too big to push at once: the farthest state within the limit each
    /// time ([`Self::farthest_within`]), or the next state alone when even that is over it. A
    /// ref with no such history goes whole.
    fn walk_history(&mut self, name: &str, change: &RefChange, whole_bytes: u64) -> Result<(), String> {
        let Some(new) = change.new_value() else { return Ok(()) };
        let fast_forward = match change {
            RefChange::Update { old, forced: false, .. } => Some(old),
            _ => None,
        };
        let haves: Vec<&Oid> = self.base.iter().collect();
        let states = self.history.states(new, fast_forward, &haves)?;
        if states.len() < 2 || states.last() != Some(new) {
            self.base.insert(new.clone());
            self.steps.push(Step {
                changes: vec![(name.to_string(), change.clone())],
                bytes: Some(whole_bytes),
            });
            return Ok(());
        }
        let mut mirror_value = change.expected_remote().cloned();
        let mut start = 0;
        // The whole history is over the limit: the first search knows where it stops fitting.
        let mut known_miss = Some((states.len() - 1, whole_bytes));
        let mut per_state = whole_bytes as f64 / states.len() as f64;
        while start < states.len() {
            let (reached, bytes) = self.farthest_within(&states, start, known_miss.take(), per_state)?;
            per_state = (bytes as f64 / (reached + 1 - start) as f64).max(1.0);
            let state = states[reached].clone();
            let step_change = match &mirror_value {
                None => RefChange::Create { new: state.clone() },
                Some(old) => RefChange::Update {
                    old: old.clone(),
                    new: state.clone(),
                    // Only the first step can be the forced one; the others follow first parents.
                    forced: start == 0 && matches!(change, RefChange::Update { forced: true, .. }),
                },
            };
            self.steps.push(Step {
                changes: vec![(name.to_string(), step_change)],
                bytes: Some(bytes),
            });
            self.base.insert(state.clone());
            mirror_value = Some(state);
            start = reached + 1;
        }
        Ok(())
    }

    /// The farthest of `states` from `start` whose push fits the limit, with its size; `start`
    /// itself when none does. Sizes only grow along a first-parent history, so this searches a
    /// sorted sequence: by interpolation from the sizes seen (`per_state` bytes a state, to begin
    /// with), which takes a probe or two when commits are alike, every other probe a bisection,
    /// so that the worst case stays logarithmic. `miss` is a state known not to fit.
    fn farthest_within(
        &self,
        states: &[Oid],
        start: usize,
        mut miss: Option<(usize, u64)>,
        per_state: f64,
    ) -> Result<(usize, u64), String> {
        let limit = self.max_bytes as f64;
        let mut fit: Option<(usize, u64)> = None;
        for probe in 0.. {
            let undecided = fit.map_or(start, |(i, _)| i + 1)..miss.map_or(states.len(), |(i, _)| i);
            if undecided.is_empty() {
                break;
            }
            let guess = if probe % 2 == 1 {
                undecided.start + undecided.len() / 2
            } else {
                // Bytes grow about linearly from the last state that fits to the first that does not.
                let (from_index, from_bytes) = fit.map_or((start as f64 - 1.0, 0.0), |(i, b)| (i as f64, b as f64));
                let slope = match miss {
                    Some((i, b)) => (b as f64 - from_bytes) / (i as f64 - from_index),
                    None => per_state,
                };
                let at = from_index + ((limit - from_bytes) / slope.max(1.0)).floor();
                (at.max(0.0) as usize).clamp(undecided.start, undecided.end - 1)
            };
            let bytes = self.size(&[&states[guess]])?;
            if bytes <= self.max_bytes {
                fit = Some((guess, bytes));
            } else {
                miss = Some((guess, bytes));
            }
        }
        match (fit, miss) {
            (Some(found), _) => Ok(found),
            (None, Some((index, bytes))) if index == start => Ok((start, bytes)),
            (None, _) => Ok((start, self.size(&[&states[start]])?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::collections::BTreeMap;

    fn oid(n: u32) -> Oid {
        Oid::parse(&format!("{n:040x}")).unwrap()
    }

    /// Linear histories: commit `n` of a branch adds `weight[n]` bytes; branches are
    /// independent unless they share commits (numbers).
    struct Fake {
        /// branch tip -> its commits, oldest first (first-parent history).
        histories: BTreeMap<Oid, Vec<u32>>,
        weight: BTreeMap<u32, u64>,
        calls: Cell<usize>,
    }

    impl Fake {
        fn new(branches: &[&[u32]], weight: impl Fn(u32) -> u64) -> Fake {
            let mut histories = BTreeMap::new();
            let mut weights = BTreeMap::new();
            for commits in branches {
                for (i, c) in commits.iter().enumerate() {
                    histories.insert(oid(*c), commits[..=i].to_vec());
                    weights.insert(*c, weight(*c));
                }
            }
            Fake {
                histories,
                weight: weights,
                calls: Cell::new(0),
            }
        }

        fn reach(&self, tips: &[&Oid]) -> BTreeSet<u32> {
            tips.iter()
                .flat_map(|t| self.histories.get(*t).cloned().unwrap_or_default())
                .collect()
        }
    }

    impl History for Fake {
        fn size(&self, tips: &[&Oid], haves: &[&Oid]) -> Result<u64, String> {
            self.calls.set(self.calls.get() + 1);
            let have = self.reach(haves);
            Ok(self.reach(tips).difference(&have).map(|c| self.weight[c]).sum())
        }

        fn states(&self, to: &Oid, from: Option<&Oid>, haves: &[&Oid]) -> Result<Vec<Oid>, String> {
            let have = self.reach(haves);
            let mut states: Vec<u32> = self.histories[to]
                .iter()
                .copied()
                .filter(|c| !have.contains(c))
                .collect();
            if let Some(from) = from {
                let skip = self.histories[from].len();
                states = self.histories[to][skip..].to_vec();
            }
            Ok(states.into_iter().map(oid).collect())
        }
    }

    fn under(max_bytes: u64) -> Limits {
        Limits {
            max_bytes: Some(max_bytes),
            max_refs: None,
        }
    }

    fn create(name: &str, tip: u32) -> (String, RefChange) {
        (name.to_string(), RefChange::Create { new: oid(tip) })
    }

    /// Replays the steps on a fake mirror: each step must fit, every ref must end at its new
    /// value, and every intermediate value must be a state of the ref's own history.
    fn replay(fake: &Fake, steps: &[Step], changes: &[(String, RefChange)], max_bytes: u64) {
        let mut mirror: BTreeMap<String, Oid> = BTreeMap::new();
        for (name, change) in changes {
            if let Some(old) = change.expected_remote() {
                mirror.insert(name.clone(), old.clone());
            }
        }
        for step in steps {
            let haves: Vec<&Oid> = mirror.values().collect();
            let tips: Vec<&Oid> = step.changes.iter().filter_map(|(_, c)| c.new_value()).collect();
            let bytes = fake.size(&tips, &haves).unwrap();
            let alone_too_big = step.changes.len() == 1 && bytes > max_bytes;
            assert!(bytes <= max_bytes || alone_too_big, "step over the limit: {step:?}");
            for (name, change) in &step.changes {
                assert_eq!(mirror.get(name), change.expected_remote(), "lease of {name}");
                match change.new_value() {
                    Some(new) => {
                        let final_new = changes.iter().find(|(n, _)| n == name).unwrap().1.new_value().unwrap();
                        assert!(
                            fake.histories[final_new].contains(&u32::from_str_radix(&new.to_string(), 16).unwrap())
                        );
                        mirror.insert(name.clone(), new.clone())
                    }
                    None => mirror.remove(name),
                };
            }
        }
        for (name, change) in changes {
            assert_eq!(mirror.get(name), change.new_value(), "{name} did not arrive");
        }
    }

    #[test]
    fn without_a_size_limit_nothing_is_estimated() {
        let fake = Fake::new(&[&[1, 2, 3]], |_| 100);
        let changes = vec![create("refs/tags/v1", 2), create("refs/heads/main", 3)];
        let steps = plan_steps(&changes, Limits::default(), &[], &fake).unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].changes[0].0, "refs/heads/main", "branches go first");
        assert_eq!(fake.calls.get(), 0);
        let capped = plan_steps(
            &changes,
            Limits {
                max_bytes: None,
                max_refs: Some(1),
            },
            &[],
            &fake,
        )
        .unwrap();
        assert_eq!(capped.len(), 2);
    }

    #[test]
    fn an_update_under_the_limit_is_one_push() {
        let fake = Fake::new(&[&[1, 2, 3]], |_| 10);
        let changes = vec![create("refs/heads/main", 3)];
        let limits = under(100);
        let steps = plan_steps(&changes, limits, &[], &fake).unwrap();
        assert_eq!(
            steps,
            vec![Step {
                changes,
                bytes: Some(30)
            }]
        );
        assert_eq!(fake.calls.get(), 1);
    }

    #[test]
    fn a_big_branch_goes_through_its_own_states_oldest_first() {
        let commits: Vec<u32> = (1..=100).collect();
        let fake = Fake::new(&[&commits], |_| 10);
        let changes = vec![create("refs/heads/main", 100)];
        let steps = plan_steps(&changes, under(95), &[], &fake).unwrap();
        assert_eq!(steps.len(), 12, "9 commits (90 bytes) per step");
        assert!(
            fake.calls.get() <= 1 + 3 * 12,
            "{} estimates for 12 steps",
            fake.calls.get()
        );
        assert_eq!(steps[0].changes[0].1, RefChange::Create { new: oid(9) });
        assert_eq!(
            steps[1].changes[0].1,
            RefChange::Update {
                old: oid(9),
                new: oid(18),
                forced: false
            }
        );
        replay(&fake, &steps, &changes, 95);
    }

    #[test]
    fn a_fast_forward_steps_from_the_mirror_value() {
        let commits: Vec<u32> = (1..=50).collect();
        let fake = Fake::new(&[&commits], |_| 10);
        let changes = vec![(
            "refs/heads/main".to_string(),
            RefChange::Update {
                old: oid(20),
                new: oid(50),
                forced: false,
            },
        )];
        let steps = plan_steps(&changes, under(100), &[oid(20)], &fake).unwrap();
        assert_eq!(steps.len(), 3);
        replay(&fake, &steps, &changes, 100);
    }

    #[test]
    fn a_commit_bigger_than_the_limit_goes_alone() {
        let fake = Fake::new(&[&[1, 2, 3, 4]], |c| if c == 3 { 500 } else { 10 });
        let changes = vec![create("refs/heads/main", 4)];
        let steps = plan_steps(&changes, under(100), &[], &fake).unwrap();
        let news: Vec<&Oid> = steps.iter().map(|s| s.changes[0].1.new_value().unwrap()).collect();
        assert_eq!(news, [&oid(2), &oid(3), &oid(4)]);
        replay(&fake, &steps, &changes, 100);
    }

    #[test]
    fn many_small_refs_are_batched_with_few_estimates() {
        // 200 tags on 200 commits of one branch: the branch is stepped, the tags then cost nothing.
        let commits: Vec<u32> = (1..=200).collect();
        let fake = Fake::new(&[&commits], |_| 5);
        let mut changes = vec![create("refs/heads/main", 200)];
        changes.extend((1..=200).map(|c| create(&format!("refs/tags/t{c:03}"), c)));
        let steps = plan_steps(&changes, under(100), &[], &fake).unwrap();
        replay(&fake, &steps, &changes, 100);
        assert_eq!(steps.len(), 11, "10 steps of the branch and one batch of tags");
        assert!(fake.calls.get() < 50, "{} estimates", fake.calls.get());
    }

    #[test]
    fn unrelated_branches_are_packed_into_batches_under_the_limit() {
        let branches: Vec<Vec<u32>> = (0..10).map(|b| vec![b * 10 + 1, b * 10 + 2, b * 10 + 3]).collect();
        let refs: Vec<&[u32]> = branches.iter().map(Vec::as_slice).collect();
        let fake = Fake::new(&refs, |_| 10);
        let changes: Vec<_> = (0..10)
            .map(|b| create(&format!("refs/heads/b{b}"), b * 10 + 3))
            .collect();
        let limits = Limits {
            max_bytes: Some(100),
            max_refs: Some(2),
        };
        let steps = plan_steps(&changes, limits, &[], &fake).unwrap();
        assert_eq!(steps.len(), 5, "two refs (60 bytes) per push");
        replay(&fake, &steps, &changes, 100);
        let limits = under(100);
        let steps = plan_steps(&changes, limits, &[], &fake).unwrap();
        assert_eq!(steps.len(), 4, "three refs (90 bytes) per push");
        replay(&fake, &steps, &changes, 100);
    }

    #[test]
    fn uneven_histories_are_searched_in_logarithmic_time() {
        // One huge commit late in a long history: interpolation guesses wrong, bisection saves it.
        let commits: Vec<u32> = (1..=1000).collect();
        let fake = Fake::new(&[&commits], |c| if c == 900 { 10_000 } else { 1 });
        let changes = vec![create("refs/heads/main", 1000)];
        let steps = plan_steps(&changes, under(500), &[], &fake).unwrap();
        replay(&fake, &steps, &changes, 500);
        assert!(fake.calls.get() < 80, "{} estimates", fake.calls.get());
    }

    #[test]
    fn deletions_come_first() {
        let fake = Fake::new(&[&[1, 2]], |_| 80);
        let changes = vec![
            create("refs/heads/a", 2),
            ("refs/heads/a/b".to_string(), RefChange::Delete { old: oid(1) }),
        ];
        let steps = plan_steps(&changes, under(100), &[], &fake).unwrap();
        assert!(matches!(steps[0].changes[0].1, RefChange::Delete { .. }));
    }
}
