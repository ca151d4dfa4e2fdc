//! Keeping the worker's picture of each mirror honest. Between updates the worker assumes the
//! mirror still has what it was last given (the known refs, see [`crate::mirror::state::KnownRefsOf`]).
//! That assumption is dropped when it cannot hold:
//!
//! - known refs learned for another URL (a mirror re-pointed by hand, a fleet URL template
//!   edited) or under other filters (branches, tags, ... edited by hand) are never assumed: the
//!   update reconciles in full ([`identity`], [`reach`]);
//! - an incremental update that had to create a ref the mirror was known to have shows a
//!   mirror deleted and recreated empty: a full reconciliation follows ([`mirror_lost_refs`]);
//! - every `verify_interval` (default one day), `run` lists the mirror's refs once and compares
//!   them with the known refs ([`verify_mirror`]), which catches what no local signal shows (a
//!   mirror rewound by someone's push); a difference means a full reconciliation.

use crate::access::auth::remote_access;
use crate::config::rules::MirrorRules;
use crate::config::{GlobalConfig, MirrorConfig};
use crate::git;
use crate::mirror::configured::Presence;
use crate::mirror::plan::Reach;
use crate::mirror::report::{RefOutcome, UpdateReport};
use crate::mirror::state::{KnownRefs, MirrorIdentity, MirrorState, StateStore};
use crate::util::fsutil::now_ms;
use crate::util::oid::Oid;
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// What a mirror's known refs must have been learned for to be trusted: its URL, and its
/// filters (a fingerprint of the rules; a change of `branches`, `tags`, `refs`,
/// `only_protected_branches` or `keep_divergent_refs` changes it).
pub fn identity(mirror: &MirrorConfig) -> MirrorIdentity {
    // FNV-1a over the rules' debug form: stable for a given version of this program; a new
    // version that words them differently costs one full reconciliation per mirror.
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in format!("{:?}", mirror.rules).bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    MirrorIdentity {
        url: mirror.url.clone(),
        scope: format!("{hash:016x}"),
    }
}

/// A stable fingerprint of a set of refs (FNV-1a over sorted `name oid` lines).
/// A collision would only delay drift detection until the next change.
pub fn fingerprint<'a>(refs: impl IntoIterator<Item = (&'a String, &'a Oid)>) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x100000001b3);
        }
    };
    for (name, oid) in refs {
        feed(name.as_bytes());
        feed(b" ");
        feed(oid.as_str().as_bytes());
        feed(b"\n");
    }
    format!("{hash:016x}")
}

/// Which refs an update considers: everything when asked (`sync`), when a full reconciliation
/// is owed, or when the known refs were learned for another mirror; the pending ones otherwise.
pub fn reach(full: bool, state: &MirrorState, same_mirror: bool) -> Reach {
    if full || state.full_sync_seq.is_some() || !same_mirror {
        Reach::Everything
    } else {
        Reach::PendingOnly
    }
}

/// Whether an incremental update found the mirror without refs it was known to have: it had to
/// create them. Someone deleted and recreated the mirror (or deleted refs on it); what else it
/// lacks only a full reconciliation finds.
pub fn mirror_lost_refs(reach: Reach, report: &UpdateReport, known: &KnownRefs) -> bool {
    reach == Reach::PendingOnly
        && report
            .refs
            .iter()
            .any(|r| r.outcome == RefOutcome::Created && known.get(&r.name).is_some_and(|k| k.remote.is_some()))
}

/// Records in the pair's state what an update established about the mirror: a successful full
/// reconciliation verified it; lost refs owe a full reconciliation.
pub fn record_update(state: &mut MirrorState, reach: Reach, report: &UpdateReport, started_ms: u64, lost_refs: bool) {
    if reach == Reach::Everything && report.error.is_none() {
        state.last_verified_at_ms = Some(started_ms);
    }
    if lost_refs {
        log::warn!(
            "{}: mirror {}: refs it was given are gone (recreated or emptied?); reconciling in full",
            state.repo.display(),
            state.mirror
        );
        state.request_full_sync(now_ms());
    }
}

/// Whether the pair's periodic check is due: enabled (`verify_interval` not zero), nothing else
/// owed (an update observes the mirror anyway), and the interval passed since the last check.
/// A last check recorded after now is no fact (it was written under a wrong clock, or the clock
/// was set back since): the mirror counts as never checked, so a clock jump never turns the
/// check off.
pub fn is_due(state: &MirrorState, interval: Duration, now_ms: u64) -> bool {
    if interval.is_zero() || state.has_work() {
        return false;
    }
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    state
        .last_verified_at_ms
        .filter(|last| *last <= now_ms)
        .is_none_or(|last| now_ms >= last.saturating_add(interval_ms))
}

/// The in-scope refs whose value on the mirror differs from the known one (missing, extra or
/// moved). Refs outside the mirror's filters are not its business.
pub fn differences(observed: &BTreeMap<String, Oid>, known: &KnownRefs, rules: &MirrorRules) -> Vec<String> {
    let names: BTreeSet<&String> = observed
        .keys()
        .filter(|name| rules.in_scope(name))
        .chain(known.keys())
        .collect();
    names
        .into_iter()
        .filter(|name| observed.get(*name) != known.get(*name).and_then(|k| k.remote.as_ref()))
        .cloned()
        .collect()
}

/// What a check found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    /// The mirror has exactly what it was given.
    Unchanged,
    /// It does not (or could not be listed): a full reconciliation is now owed.
    ReconcileOwed(String),
}

/// Checks one pair (the caller holds its push lock): one `ls-remote`, compared with the known
/// refs. A match is recorded as `last_verified_at`; anything else asks for a full
/// reconciliation, which the caller runs (an unreachable mirror then fails and retries as any
/// update does, so the status tells).
pub fn verify_mirror(
    store: &StateStore,
    global: &GlobalConfig,
    repo: &Path,
    mirror: &MirrorConfig,
) -> Result<Verification> {
    let learned = store.load_known_refs(repo, &mirror.name);
    let found = if learned.identity != Some(identity(mirror)) {
        Err("its known refs were learned for another URL or other filters".to_string())
    } else {
        remote_access(mirror, global)
            .map_err(|e| format!("{e:#}"))
            .and_then(|mut access| {
                access.repo = Some(repo.to_path_buf());
                git::ls_remote(repo, &access, &[]).map_err(|e| e.to_string())
            })
            .and_then(|observed| {
                let differ = differences(&observed.direct, &learned.refs, &mirror.rules);
                match differ.as_slice() {
                    [] => Ok(()),
                    [first, ..] => Err(format!(
                        "{} ref(s) differ from what it was given (first: {first})",
                        differ.len()
                    )),
                }
            })
    };
    let now = now_ms();
    // Written only for the mirror still configured as it was checked; another is left to the
    // update that follows (which finds it removed or changed, and says so).
    let configured = || crate::mirror::configured::presence(repo, mirror, global) == Presence::Same;
    let durable = crate::util::fsutil::Durability::Durable;
    match found {
        Ok(()) => {
            let recorded = store.change_mirror_state_if(repo, &mirror.name, durable, configured, |state| {
                state.last_verified_at_ms = Some(now)
            })?;
            Ok(match recorded {
                Some(()) => Verification::Unchanged,
                None => Verification::ReconcileOwed("the mirror's configuration changed".to_string()),
            })
        }
        Err(why) => {
            log::warn!(
                "{}: mirror {}: verification: {why}; reconciling in full",
                repo.display(),
                mirror.name
            );
            store.change_mirror_state_if(repo, &mirror.name, durable, configured, |state| {
                state.request_full_sync(now)
            })?;
            Ok(Verification::ReconcileOwed(why))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rules::TagSelection;
    use crate::mirror::report::RefResult;
    use crate::mirror::state::KnownRef;

    fn oid(c: char) -> Oid {
        Oid::parse(&c.to_string().repeat(40)).unwrap()
    }

    fn known(entries: &[(&str, Option<char>)]) -> KnownRefs {
        entries
            .iter()
            .map(|(name, remote)| {
                (
                    name.to_string(),
                    KnownRef {
                        local: Some(oid('f')),
                        remote: remote.map(oid),
                    },
                )
            })
            .collect()
    }

    fn observed(entries: &[(&str, char)]) -> BTreeMap<String, Oid> {
        entries.iter().map(|(n, c)| (n.to_string(), oid(*c))).collect()
    }

    fn refs(pairs: &[(&str, char)]) -> BTreeMap<String, Oid> {
        pairs.iter().map(|(n, c)| (n.to_string(), oid(*c))).collect()
    }

    #[test]
    fn identities_change_with_the_url_and_the_filters_only() {
        let global = crate::config::GlobalConfig::embedded(Path::new("/nonexistent"));
        let repo = |text: &str| {
            crate::config::parse_repo(text, Path::new("/r/push-mirror.toml"), 0o600, &global)
                .unwrap()
                .mirrors
                .remove(0)
        };
        let base = identity(&repo("[mirror.m]\nurl = \"https://h/a.git\"\n"));
        let same = identity(&repo("[mirror.m]\nurl = \"https://h/a.git\"\ndelay = \"5s\"\n"));
        assert_eq!(base, same, "timings are not filters");
        let moved = identity(&repo("[mirror.m]\nurl = \"https://h/b.git\"\n"));
        assert_ne!(base.url, moved.url);
        assert_eq!(base.scope, moved.scope);
        for filtered in [
            "branches = [\"main\"]",
            "tags = false",
            "refs = [\"refs/notes/*\"]",
            "keep_divergent_refs = true",
        ] {
            let other = identity(&repo(&format!("[mirror.m]\nurl = \"https://h/a.git\"\n{filtered}\n")));
            assert_ne!(base.scope, other.scope, "{filtered}");
        }
    }

    #[test]
    fn re_pointed_mirrors_and_owed_reconciliations_reach_everything() {
        let mut state = MirrorState::new(Path::new("/r"), "m");
        assert_eq!(reach(false, &state, true), Reach::PendingOnly);
        assert_eq!(reach(false, &state, false), Reach::Everything, "another URL");
        assert_eq!(reach(true, &state, true), Reach::Everything, "sync");
        state.request_full_sync(1);
        assert_eq!(reach(false, &state, true), Reach::Everything);
    }

    #[test]
    fn differences_are_moved_missing_and_extra_in_scope_refs() {
        let rules = MirrorRules {
            tags: TagSelection::None,
            ..Default::default()
        };
        let known = known(&[
            ("refs/heads/same", Some('1')),
            ("refs/heads/moved", Some('2')),
            ("refs/heads/gone", Some('3')),
            ("refs/heads/blocked", None),
        ]);
        let remote = observed(&[
            ("refs/heads/same", '1'),
            ("refs/heads/moved", '9'),
            ("refs/heads/extra", '4'),
            ("refs/tags/out-of-scope", '5'),
        ]);
        assert_eq!(
            differences(&remote, &known, &rules),
            vec!["refs/heads/extra", "refs/heads/gone", "refs/heads/moved"]
        );
        let matching = observed(&[
            ("refs/heads/same", '1'),
            ("refs/heads/moved", '2'),
            ("refs/heads/gone", '3'),
        ]);
        assert!(differences(&matching, &known, &rules).is_empty());
    }

    #[test]
    fn checks_are_due_after_the_interval_unless_work_is_owed_or_they_are_off() {
        let day = Duration::from_secs(86_400);
        let mut state = MirrorState::new(Path::new("/r"), "m");
        assert!(is_due(&state, day, 5), "never verified");
        state.last_verified_at_ms = Some(1_000);
        assert!(!is_due(&state, day, 2_000));
        assert!(is_due(&state, day, 1_000 + 86_400_000));
        assert!(!is_due(&state, Duration::ZERO, u64::MAX), "0s turns it off");
        // Checked "a year from now" (a run under a wrong clock), or a minute from now (the clock
        // was set back since): no fact, so the check is due at once.
        state.last_verified_at_ms = Some(2_000 + 365 * 86_400_000);
        assert!(is_due(&state, day, 2_000));
        state.last_verified_at_ms = Some(2_000 + 60_000);
        assert!(is_due(&state, day, 2_000));
        state.last_verified_at_ms = Some(2_000);
        assert!(!is_due(&state, day, 2_000), "checked just now");
        state.request_full_sync(3);
        assert!(!is_due(&state, day, u64::MAX), "an update is owed anyway");
    }

    #[test]
    fn creating_a_ref_the_mirror_had_means_it_lost_refs() {
        let known = known(&[("refs/heads/main", Some('1'))]);
        let report = |name: &str, outcome| UpdateReport {
            refs: vec![RefResult {
                name: name.into(),
                outcome,
                local: Some(oid('2')),
                remote: Some(oid('2')),
            }],
            ..Default::default()
        };
        assert!(mirror_lost_refs(
            Reach::PendingOnly,
            &report("refs/heads/main", RefOutcome::Created),
            &known
        ));
        assert!(!mirror_lost_refs(
            Reach::PendingOnly,
            &report("refs/heads/new", RefOutcome::Created),
            &known
        ));
        assert!(!mirror_lost_refs(
            Reach::PendingOnly,
            &report("refs/heads/main", RefOutcome::Updated),
            &known
        ));
        assert!(!mirror_lost_refs(
            Reach::Everything,
            &report("refs/heads/main", RefOutcome::Created),
            &known
        ));
    }

    #[test]
    fn fingerprints_change_with_any_ref() {
        let a = refs(&[("refs/heads/a", '1'), ("refs/heads/b", '2')]);
        let moved = refs(&[("refs/heads/a", '1'), ("refs/heads/b", '3')]);
        let renamed = refs(&[("refs/heads/a", '1'), ("refs/heads/c", '2')]);
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(fingerprint(&a), fingerprint(&moved));
        assert_ne!(fingerprint(&a), fingerprint(&renamed));
        assert_ne!(fingerprint(&a), fingerprint(&BTreeMap::new()));
    }
}
