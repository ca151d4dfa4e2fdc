//! The drift scan: finds refs that changed locally without a hook report (server-side updates,
//! a hook that could not spool, a restore from backup) by comparing each mirror's in-scope local
//! refs with the local values its last decisions were made for (the known refs). No network; a
//! fingerprint makes "no change" cheap.

use crate::config::RepoConfig;
use crate::mirror::plan::MirrorRules;
use crate::mirror::refs::LocalRepo;
use crate::mirror::state::{PendingRef, StateStore, known_local_values};
use crate::util::fsutil::now_ms;
use crate::util::oid::Oid;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;

/// The in-scope subset of a repository's refs for one mirror.
pub fn in_scope(refs: &BTreeMap<String, Oid>, rules: &MirrorRules) -> BTreeMap<String, Oid> {
    refs.iter()
        .filter(|(name, _)| rules.in_scope(name))
        .map(|(n, o)| (n.clone(), o.clone()))
        .collect()
}

/// Refs whose local value differs from the known one. A ref gone locally
/// carries its known value as the last local value (for the deletion rule).
pub fn drifted(local: &BTreeMap<String, Oid>, known: &BTreeMap<String, Oid>) -> BTreeMap<String, PendingRef> {
    let mut drifted = BTreeMap::new();
    for (name, oid) in local {
        if known.get(name) != Some(oid) {
            drifted.insert(name.clone(), PendingRef::default());
        }
    }
    for (name, oid) in known {
        if !local.contains_key(name) {
            drifted.insert(
                name.clone(),
                PendingRef {
                    last_local: Some(oid.clone()),
                    seq: 0,
                },
            );
        }
    }
    drifted
}

/// Scans one repository (with its configuration `repo_config`); queues drifted refs in its
/// mirrors' state, and a full reconciliation for a mirror whose URL or filters changed since its
/// last update (its known refs describe another mirror, or leave out refs now in scope). Returns the names of the mirrors that got work.
pub fn scan_repository(store: &StateStore, repo: &Path, repo_config: &RepoConfig) -> Result<Vec<String>> {
    if repo_config.mirrors.is_empty() {
        return Ok(Vec::new());
    }
    let local_repo = LocalRepo::open(repo)?;
    let local = local_repo.all_refs()?;
    // A HEAD moved with `git symbolic-ref` (or a forge's settings) pushes nothing: looked at here,
    // when a mirror's default branch follows it (read once, and only then: a reftable costs a git).
    let local_head = std::cell::OnceCell::new();
    let mut queued = Vec::new();
    for mirror in &repo_config.mirrors {
        let scoped = in_scope(&local.direct, &mirror.rules);
        let current = crate::mirror::verify::fingerprint(&scoped);
        let _lock = store.lock(repo)?;
        let mut state = store.load_mirror_healing(repo, &mirror.name)?;
        if state.full_sync_seq.is_some() {
            continue;
        }
        let now = now_ms();
        let re_pointed = state.known_refs_fingerprint.is_some()
            && store.known_refs_identity(repo, &mirror.name) != Some(crate::mirror::verify::identity(mirror));
        if state.known_refs_fingerprint.is_none() || re_pointed {
            if re_pointed {
                log::info!(
                    "{}: mirror {}: its URL or filters changed since its last update; reconciling in full",
                    repo.display(),
                    mirror.name
                );
            }
            // Never reconciled, or another mirror: only a full reconciliation knows what it lacks.
            state.request_full_sync(now);
        } else if state.known_refs_fingerprint.as_deref() == Some(current.as_str()) {
            let head = match state.side.followed_head {
                Some(_) => local_head
                    .get_or_init(|| local_repo.head_branch().ok().flatten())
                    .as_deref(),
                None => None,
            };
            if !crate::mirror::update::default_branch::head_moved(mirror, &state.side, head) {
                continue;
            }
            log::info!(
                "{}: mirror {}: HEAD points at another branch; its default branch follows",
                repo.display(),
                mirror.name
            );
            state.request_full_sync(now);
        } else {
            let known = known_local_values(&store.load_known_refs(repo, &mirror.name).refs);
            let changes = drifted(&scoped, &known);
            let new: Vec<_> = changes
                .iter()
                .filter(|(name, _)| !state.pending.contains_key(*name))
                .collect();
            if new.is_empty() {
                continue;
            }
            log::info!(
                "{}: mirror {}: {} ref(s) changed without a hook report",
                repo.display(),
                mirror.name,
                new.len()
            );
            for (name, change) in new {
                state.add_pending(name, change, now);
            }
        }
        store.save_mirror(&state)?;
        queued.push(mirror.name.clone());
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(c: char) -> Oid {
        Oid::parse(&c.to_string().repeat(40)).unwrap()
    }

    fn refs(pairs: &[(&str, char)]) -> BTreeMap<String, Oid> {
        pairs.iter().map(|(n, c)| (n.to_string(), oid(*c))).collect()
    }

    #[test]
    fn drift_finds_created_moved_and_deleted_refs() {
        let known = refs(&[
            ("refs/heads/same", '1'),
            ("refs/heads/moved", '2'),
            ("refs/heads/gone", '3'),
        ]);
        let local = refs(&[
            ("refs/heads/same", '1'),
            ("refs/heads/moved", '4'),
            ("refs/heads/new", '5'),
        ]);
        let drift = drifted(&local, &known);
        assert_eq!(
            drift.keys().collect::<Vec<_>>(),
            vec!["refs/heads/gone", "refs/heads/moved", "refs/heads/new"]
        );
        assert_eq!(
            drift["refs/heads/gone"].last_local,
            Some(oid('3')),
            "a deletion keeps its last local value"
        );
        assert_eq!(drift["refs/heads/moved"].last_local, None);
    }

    #[test]
    fn only_in_scope_refs_count() {
        let rules = MirrorRules {
            branch_patterns: Some(vec!["main".into()]),
            ..Default::default()
        };
        let local = refs(&[("refs/heads/main", '1'), ("refs/heads/other", '2')]);
        assert_eq!(
            in_scope(&local, &rules).keys().collect::<Vec<_>>(),
            vec!["refs/heads/main"]
        );
    }
}
