//! The drift scan: finds refs that changed locally without a hook report (server-side updates,
//! a hook that could not spool, a restore from backup) by comparing each mirror's in-scope local
//! refs with the local values its last decisions were made for (the known refs). No network; a
//! fingerprint makes "no change" cheap.

use crate::config::rules::MirrorRules;
use crate::config::{MirrorConfig, RepoConfig};
use crate::mirror::refs::{LocalRefs, LocalRepo};
use crate::mirror::state::{MirrorState, PendingRef, StateStore, known_local_values};
use crate::pipeline::scan_cache::{ScanCache, Stamp};
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
/// last update (its known refs describe another mirror, or leave out refs now in scope). Returns
/// the configured mirrors' states as the scan left them. A mirror with nothing new is only read:
/// the repository's lock is taken to write. The refs themselves are read only when the scan
/// cache cannot tell their fingerprints (see [`crate::pipeline::scan_cache`]).
pub fn scan_repository(store: &StateStore, repo: &Path, repo_config: &RepoConfig) -> Result<Vec<MirrorState>> {
    if repo_config.mirrors.is_empty() {
        return Ok(Vec::new());
    }
    let mut refs = Refs::new(store, repo);
    let mut states = Vec::with_capacity(repo_config.mirrors.len());
    for mirror in &repo_config.mirrors {
        let seen = store.load_mirror(repo, &mirror.name);
        if let Ok(state) = &seen
            && drift_of(store, &mut refs, mirror, state)?.is_none()
        {
            states.push(seen?);
            continue;
        }
        // Something to queue (or a state to heal): again under the lock, which writes.
        let _lock = store.lock(repo)?;
        let mut state = store.load_mirror_healing(repo, &mirror.name)?;
        if let Some(drift) = drift_of(store, &mut refs, mirror, &state)? {
            let now = now_ms();
            match drift {
                Drift::Unknown { re_pointed } => {
                    if re_pointed {
                        log::info!(
                            "{}: mirror {}: its URL or filters changed since its last update; reconciling in full",
                            repo.display(),
                            mirror.name
                        );
                    }
                    // Never reconciled, or another mirror: only a full reconciliation knows what it lacks.
                    state.request_full_sync(now);
                }
                Drift::HeadMoved => {
                    log::info!(
                        "{}: mirror {}: HEAD points at another branch; its default branch follows",
                        repo.display(),
                        mirror.name
                    );
                    state.request_full_sync(now);
                }
                Drift::Refs(new) => {
                    log::info!(
                        "{}: mirror {}: {} ref(s) changed without a hook report",
                        repo.display(),
                        mirror.name,
                        new.len()
                    );
                    for (name, change) in &new {
                        state.add_pending(name, change, now);
                    }
                }
            }
            store.save_mirror(&state)?;
        }
        states.push(state);
    }
    refs.remember(repo_config);
    Ok(states)
}

/// What a mirror lacks that nobody reported.
enum Drift {
    /// Its known refs are of another mirror (or there are none): everything, by a full reconciliation.
    Unknown { re_pointed: bool },
    /// Refs whose local value differs from the one last decided for, not yet pending.
    Refs(BTreeMap<String, PendingRef>),
    /// The local HEAD points at another branch than the one the mirror's default follows.
    HeadMoved,
}

/// The drift of one mirror (`None`: nothing to queue).
fn drift_of(
    store: &StateStore,
    refs: &mut Refs<'_>,
    mirror: &MirrorConfig,
    state: &MirrorState,
) -> Result<Option<Drift>> {
    if state.full_sync_seq.is_some() {
        return Ok(None);
    }
    let Some(fingerprint) = state.known_refs_fingerprint.as_deref() else {
        return Ok(Some(Drift::Unknown { re_pointed: false }));
    };
    if store.known_refs_identity(refs.repo, &mirror.name) != Some(crate::mirror::verify::identity(mirror)) {
        return Ok(Some(Drift::Unknown { re_pointed: true }));
    }
    if refs.fingerprint(mirror)? == fingerprint {
        // A HEAD moved with `git symbolic-ref` (or a forge's settings) pushes nothing: looked at
        // here, when the mirror's default branch follows it.
        if state.side.followed_head.is_some()
            && crate::mirror::update::default_branch::head_moved(mirror, &state.side, refs.head()?)
        {
            return Ok(Some(Drift::HeadMoved));
        }
        return Ok(None);
    }
    let scoped = in_scope(&refs.local()?.direct, &mirror.rules);
    let known = known_local_values(&store.load_known_refs(refs.repo, &mirror.name).refs);
    let new: BTreeMap<String, PendingRef> = drifted(&scoped, &known)
        .into_iter()
        .filter(|(name, _)| !state.pending.contains_key(name))
        .collect();
    Ok((!new.is_empty()).then_some(Drift::Refs(new)))
}

/// A repository's refs as the scan needs them: the fingerprint of each mirror's in-scope refs,
/// from the scan cache while the refs are unchanged, and the refs themselves, read once, only
/// when needed.
struct Refs<'a> {
    store: &'a StateStore,
    repo: &'a Path,
    /// The scan cache, when it holds for the refs as they are now.
    cached: Option<ScanCache>,
    /// Fingerprints by mirror scope: the cache's, while it holds, then those computed here.
    fingerprints: BTreeMap<String, String>,
    /// The stamp taken before the refs were read, and the refs.
    read: Option<(Option<Stamp>, LocalRefs)>,
    /// The branch HEAD points at, read once, only when a mirror's default branch follows it.
    head: Option<Option<String>>,
    /// How HEAD was known: from the cache, or read from the repository (after the refs' stamp
    /// was taken, or before).
    head_from: HeadFrom,
}

/// Where [`Refs::head`] found HEAD.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HeadFrom {
    Cache,
    RepoBeforeStamp,
    RepoAfterStamp,
}

/// The cache's key for the branch HEAD points at ("" for none), kept only with a reftable stamp:
/// a reftable stores HEAD in its tables, so the stamp covers it, and reading it costs a git. A
/// files stamp does not cover HEAD (a file of its own, read cheaply each time).
const HEAD_KEY: &str = ":HEAD";

impl<'a> Refs<'a> {
    fn new(store: &'a StateStore, repo: &'a Path) -> Refs<'a> {
        let cached =
            ScanCache::read(&store.scan_cache_file(repo)).filter(|c| c.fingerprints_if_unchanged(repo).is_some());
        let fingerprints = cached.as_ref().map(|c| c.fingerprints().clone()).unwrap_or_default();
        Refs {
            store,
            repo,
            cached,
            fingerprints,
            read: None,
            head: None,
            head_from: HeadFrom::Cache,
        }
    }

    fn local(&mut self) -> Result<&LocalRefs> {
        if self.read.is_none() {
            // The stamp first: refs read after it are at least as new as what it describes.
            let stamp = crate::pipeline::scan_cache::stamp(self.repo);
            let local = LocalRepo::open(self.repo)?
                .with_ref_cache(self.store.ref_cache_file(self.repo))
                .all_refs()?;
            self.read = Some((stamp, local));
        }
        Ok(&self.read.as_ref().expect("read above").1)
    }

    fn head(&mut self) -> Result<Option<&str>> {
        if self.head.is_none() {
            if let Some(head) = self.fingerprints.get(HEAD_KEY) {
                self.head = Some((!head.is_empty()).then(|| head.clone()));
                self.head_from = HeadFrom::Cache;
            } else {
                self.head = Some(LocalRepo::open(self.repo)?.head_branch().ok().flatten());
                self.head_from = match self.read {
                    Some(_) => HeadFrom::RepoAfterStamp,
                    None => HeadFrom::RepoBeforeStamp,
                };
            }
        }
        Ok(self.head.as_ref().and_then(|head| head.as_deref()))
    }

    fn fingerprint(&mut self, mirror: &MirrorConfig) -> Result<String> {
        let scope = crate::mirror::verify::identity(mirror).scope;
        if let Some(known) = self.fingerprints.get(&scope) {
            return Ok(known.clone());
        }
        let fingerprint = crate::mirror::verify::fingerprint(&in_scope(&self.local()?.direct, &mirror.rules));
        self.fingerprints.insert(scope, fingerprint.clone());
        Ok(fingerprint)
    }

    /// Keeps what the refs read here told (every configured mirror's fingerprint, and HEAD in a
    /// reftable) for the next scan, when they were read; or adds HEAD, read now, to a cache that
    /// holds.
    fn remember(mut self, repo_config: &RepoConfig) {
        let head = self.head.clone().map(Option::unwrap_or_default);
        let file = self.store.scan_cache_file(self.repo);
        let cache = match &self.read {
            Some((Some(stamp), _)) => {
                let stamp = stamp.clone();
                // Fingerprints from an older stamp may not hold for this one: all from these refs.
                let mut fingerprints = BTreeMap::new();
                for mirror in &repo_config.mirrors {
                    if let Ok(fingerprint) = self.computed(mirror) {
                        fingerprints.insert(crate::mirror::verify::identity(mirror).scope, fingerprint);
                    }
                }
                // A reftable's HEAD is kept with its stamp, so the next idle scan starts no git. One
                // read before the stamp may be older than what the stamp describes: read it again
                // (the refs changed, so this scan's run is not idle anyway).
                if let Stamp::Reftable { .. } = &stamp {
                    let head = match (head, self.head_from) {
                        (Some(head), HeadFrom::RepoAfterStamp) => Some(head),
                        _ => LocalRepo::open(self.repo)
                            .ok()
                            .and_then(|repo| repo.head_branch().ok())
                            .map(Option::unwrap_or_default),
                    };
                    if let Some(head) = head {
                        fingerprints.insert(HEAD_KEY.to_string(), head);
                    }
                }
                ScanCache::new(self.repo, stamp, fingerprints)
            }
            Some((None, _)) => return,
            None => match (self.cached.take(), head, self.head_from) {
                // Read after the cache was found to hold: a HEAD moved since writes a new table,
                // so the stamp stops holding and nothing stale is ever kept.
                (Some(cache), Some(head), HeadFrom::RepoBeforeStamp)
                    if matches!(cache.stamp(), Stamp::Reftable { .. }) =>
                {
                    let mut fingerprints = cache.fingerprints().clone();
                    fingerprints.insert(HEAD_KEY.to_string(), head);
                    ScanCache::new(self.repo, cache.stamp().clone(), fingerprints)
                }
                _ => return,
            },
        };
        if let Err(e) = cache.write(&file) {
            log::debug!("{}: not cached: {e}", file.display());
        }
    }

    /// The fingerprint of `mirror`'s in-scope refs as read here (not from the cache).
    fn computed(&mut self, mirror: &MirrorConfig) -> Result<String> {
        Ok(crate::mirror::verify::fingerprint(&in_scope(
            &self.local()?.direct,
            &mirror.rules,
        )))
    }
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
