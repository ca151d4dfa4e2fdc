//! Splits a push that the mirror refuses as a whole (a `pre-receive` hook, a forge's protected
//! branch or push policy, `receive.fsckObjects`, a cap on refs per push) until each refused ref
//! stands alone, so that every acceptable ref still lands in the same update. When the mirror's
//! words name refs of the push (`GH006: Protected branch update failed for refs/heads/x`), those
//! are pushed apart from the rest first: one refused push then costs two more. Otherwise
//! bisection: k bad refs among n cost at most about 2·k·log₂ n pushes. A budget bounds the work
//! when a mirror refuses everything.

/// What the mirror did with one push of a group of refs.
pub enum Attempt<T> {
    /// It judged the refs (`T` per ref): some landed, or each was refused for a reason of its own.
    Judged(Vec<(String, T)>),
    /// It refused every ref it was sent (`refused`) for one reason that is not about one ref;
    /// `named` are those of them its words name; `others` are refs judged without reaching it
    /// (up to date, a failed lease).
    RefusedWhole {
        refused: Vec<String>,
        named: Vec<String>,
        reason: String,
        others: Vec<(String, T)>,
    },
}

/// What became of one ref.
#[derive(Debug, PartialEq, Eq)]
pub enum Split<T> {
    /// Judged by the mirror in a push it did not refuse as a whole.
    Judged(T),
    /// Refused when pushed alone: the refusal is about this ref.
    RefusedAlone(String),
    /// Still refused with others when the budget ran out; retried by a later update.
    Unsplit(String),
}

/// How many pushes a split of `refs` refs may cost: enough for the bisection to isolate
/// 8 refused refs, then 16 more.
pub fn budget_for(refs: usize) -> usize {
    let depth = usize::BITS - refs.max(1).leading_zeros();
    16 * (depth as usize + 1) + 16
}

/// Pushes one group of refs and says what the mirror did with it.
pub type GroupPush<'a, T, E> = dyn FnMut(&[String]) -> Result<Attempt<T>, E> + 'a;

/// Pushes `refs` with `push`, bisecting every group the mirror refuses as a whole. Each
/// bisection spends two pushes of `budget`. An error of `push` stops everything.
pub fn push_splitting<T, E>(
    refs: &[String],
    budget: &mut usize,
    push: &mut GroupPush<'_, T, E>,
) -> Result<Vec<(String, Split<T>)>, E> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    match push(refs)? {
        Attempt::Judged(judged) => Ok(judged.into_iter().map(|(r, t)| (r, Split::Judged(t))).collect()),
        Attempt::RefusedWhole {
            refused,
            named,
            reason,
            others,
        } => {
            let mut results: Vec<(String, Split<T>)> = others.into_iter().map(|(r, t)| (r, Split::Judged(t))).collect();
            if refused.len() == 1 {
                results.extend(refused.into_iter().map(|r| (r, Split::RefusedAlone(reason.clone()))));
            } else if *budget < 2 {
                let why = format!("refused with {} other refs ({reason})", refused.len() - 1);
                results.extend(refused.into_iter().map(|r| (r, Split::Unsplit(why.clone()))));
            } else {
                *budget -= 2;
                let suspects: Vec<String> = refused.iter().filter(|r| named.contains(r)).cloned().collect();
                let (left, right) = if suspects.is_empty() || suspects.len() == refused.len() {
                    let (left, right) = refused.split_at(refused.len() / 2);
                    (left.to_vec(), right.to_vec())
                } else {
                    let rest = refused.iter().filter(|r| !named.contains(r)).cloned().collect();
                    (rest, suspects)
                };
                results.extend(push_splitting(&left, budget, push)?);
                results.extend(push_splitting(&right, budget, push)?);
            }
            Ok(results)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A mirror whose pre-receive hook refuses any push that contains a bad ref.
    fn hook(bad: &BTreeSet<String>, pushes: &mut usize) -> impl FnMut(&[String]) -> Result<Attempt<bool>, ()> {
        move |refs: &[String]| {
            *pushes += 1;
            if refs.iter().any(|r| bad.contains(r)) {
                Ok(Attempt::RefusedWhole {
                    refused: refs.to_vec(),
                    named: Vec::new(),
                    reason: "pre-receive hook declined".into(),
                    others: Vec::new(),
                })
            } else {
                Ok(Attempt::Judged(refs.iter().map(|r| (r.clone(), true)).collect()))
            }
        }
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("refs/heads/b{i:04}")).collect()
    }

    #[test]
    fn one_bad_ref_among_forty_is_isolated_and_the_rest_land() {
        let refs = names(40);
        let bad: BTreeSet<String> = [refs[17].clone()].into();
        let mut pushes = 0;
        let mut budget = budget_for(refs.len());
        let results = push_splitting(&refs, &mut budget, &mut hook(&bad, &mut pushes)).unwrap();
        assert_eq!(results.len(), 40);
        for (name, split) in &results {
            if bad.contains(name) {
                assert_eq!(*split, Split::RefusedAlone("pre-receive hook declined".into()));
            } else {
                assert_eq!(*split, Split::Judged(true), "{name}");
            }
        }
        assert!(pushes <= 1 + 2 * 6, "{pushes} pushes");
    }

    #[test]
    fn refs_the_mirror_names_are_pushed_apart_at_once() {
        let refs = names(1000);
        let bad = refs[500].clone();
        let mut pushes = 0;
        let mut push = |group: &[String]| -> Result<Attempt<bool>, ()> {
            pushes += 1;
            Ok(if group.contains(&bad) {
                Attempt::RefusedWhole {
                    refused: group.to_vec(),
                    named: vec![bad.clone()],
                    reason: format!("pre-receive hook declined: GH006: Protected branch update failed for {bad}"),
                    others: Vec::new(),
                }
            } else {
                Attempt::Judged(group.iter().map(|r| (r.clone(), true)).collect())
            })
        };
        let results = push_splitting(&refs, &mut budget_for(1000), &mut push).unwrap();
        assert_eq!(pushes, 3, "the refused push, the 999 others, the named ref alone");
        assert_eq!(results.iter().filter(|(_, s)| *s == Split::Judged(true)).count(), 999);
    }

    #[test]
    fn refs_judged_without_reaching_the_mirror_are_kept() {
        let mut push = |refs: &[String]| -> Result<Attempt<&str>, ()> {
            Ok(match refs.len() {
                3 => Attempt::RefusedWhole {
                    refused: refs[1..].to_vec(),
                    named: Vec::new(),
                    reason: "unpacker error".into(),
                    others: vec![(refs[0].clone(), "stale info")],
                },
                _ => Attempt::Judged(refs.iter().map(|r| (r.clone(), "ok")).collect()),
            })
        };
        let results = push_splitting(&names(3), &mut 10, &mut push).unwrap();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].1, Split::Judged("stale info"));
        assert_eq!(results[1].1, Split::Judged("ok"));
    }

    #[test]
    fn a_mirror_that_refuses_everything_costs_at_most_the_budget() {
        let refs = names(1000);
        let bad: BTreeSet<String> = refs.iter().cloned().collect();
        let mut pushes = 0;
        let mut budget = budget_for(refs.len());
        let initial = budget;
        let results = push_splitting(&refs, &mut budget, &mut hook(&bad, &mut pushes)).unwrap();
        assert_eq!(results.len(), 1000);
        assert!(pushes <= initial + 1, "{pushes} pushes for a budget of {initial}");
        assert!(results.iter().any(|(_, s)| matches!(s, Split::Unsplit(_))));
    }

    #[test]
    fn an_error_stops_the_split() {
        let mut calls = 0;
        let mut push = |_: &[String]| -> Result<Attempt<()>, &str> {
            calls += 1;
            if calls == 1 {
                Ok(Attempt::RefusedWhole {
                    refused: names(4),
                    named: Vec::new(),
                    reason: "pre-receive hook declined".into(),
                    others: Vec::new(),
                })
            } else {
                Err("the remote end hung up")
            }
        };
        assert_eq!(
            push_splitting(&names(4), &mut 10, &mut push).unwrap_err(),
            "the remote end hung up"
        );
    }

    proptest! {
        /// k bad refs among n: every good ref lands, every bad one is refused alone, and the
        /// pushes stay within 1 + 2·k·⌈log₂ n⌉ while the budget lasts.
        #[test]
        fn bisection_costs_k_log_n(n in 1usize..300, bad_picks in proptest::collection::vec(0usize..300, 0..6)) {
            let refs = names(n);
            let bad: BTreeSet<String> = bad_picks.iter().filter(|i| **i < n).map(|i| refs[*i].clone()).collect();
            let mut pushes = 0;
            let mut budget = budget_for(n);
            let results = push_splitting(&refs, &mut budget, &mut hook(&bad, &mut pushes)).unwrap();
            prop_assert_eq!(results.len(), n);
            for (name, split) in &results {
                if bad.contains(name) {
                    prop_assert!(matches!(split, Split::RefusedAlone(_)));
                } else {
                    prop_assert_eq!(split, &Split::Judged(true));
                }
            }
            let log = (usize::BITS - n.leading_zeros()) as usize;
            prop_assert!(pushes <= 1 + 2 * bad.len() * log, "{} pushes, n={}, k={}", pushes, n, bad.len());
        }
    }
}
