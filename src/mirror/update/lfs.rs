//! The LFS step of a mirror update: before the refs are pushed, upload the LFS objects their new
//! commits reference, and hold back the refs whose objects the repository lacks.

use crate::config::MirrorConfig;
use crate::config::lfs::LfsMode;
use crate::git::lfs_pointer::LocalStore;
use crate::git::{self, RemoteAccess};
use crate::mirror::lfs::LfsReport;
use crate::mirror::plan::{self, Decision, Reach};
use crate::mirror::state::MirrorState;
use crate::util::oid::Oid;
use crate::util::remote_url::transport_of;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The LFS side of one update, carried across its attempts: whether it sends LFS objects, how
/// much history it checks, and what it did so far.
pub(super) struct LfsProgress {
    /// Send LFS objects (`lfs` setting; for `auto`, whether the repository has any).
    enabled: bool,
    /// Why objects cannot be sent to this mirror at all (git:// without `lfs_url`).
    setup_error: Option<String>,
    required: bool,
    /// Check every object of the refs (a full sync, or objects owed since an incomplete update),
    /// not only those of commits the mirror does not have.
    full: bool,
    /// With `full`: the values the mirror was last given, whose objects may be owed.
    mirrored: Vec<Oid>,
    /// Tips whose objects this update has handled.
    covered: BTreeSet<Oid>,
    pub(super) report: Option<LfsReport>,
}

impl LfsProgress {
    pub(super) fn new(
        repo: &Path,
        mirror: &MirrorConfig,
        reach: Reach,
        before: &MirrorState,
        mirrored: &BTreeMap<String, Oid>,
    ) -> LfsProgress {
        let support = crate::mirror::lfs::transport_support(&transport_of(&mirror.url), mirror.lfs.url.as_deref());
        let enabled = match mirror.lfs.mode {
            LfsMode::Off => false,
            LfsMode::Auto => LocalStore::for_repo(repo, &mirror.lfs).may_have_objects(),
            LfsMode::On => true,
        };
        let setup_error = support.err();
        LfsProgress {
            enabled,
            setup_error,
            required: mirror.lfs.required,
            full: reach == Reach::Everything || before.lfs_incomplete,
            mirrored: if before.lfs_incomplete {
                mirrored.values().cloned().collect()
            } else {
                Vec::new()
            },
            covered: BTreeSet::new(),
            report: None,
        }
    }

    /// Uploads the LFS objects the plan's new values need, before their refs are pushed.
    /// Returns the refs to hold back (with `lfs_required`, those needing objects the local
    /// store lacks); an error fails the whole update (`lfs_required` and the upload failed).
    pub(super) fn before_push(
        &mut self,
        repo: &Path,
        mirror: &MirrorConfig,
        access: &RemoteAccess,
        plan: &plan::PushPlan,
        local: &BTreeMap<String, Oid>,
        remote: &BTreeMap<String, Oid>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut held = BTreeMap::new();
        if !self.enabled {
            return Ok(held);
        }
        let mut tips: Vec<Oid> = plan.changes().filter_map(|(_, c)| c.new_value().cloned()).collect();
        if self.full {
            let up_to_date = plan
                .refs
                .iter()
                .filter(|r| matches!(r.decision, Decision::UpToDate))
                .filter_map(|r| local.get(&r.name).cloned());
            tips.extend(up_to_date.chain(self.mirrored.iter().cloned()));
        }
        tips.sort();
        tips.dedup();
        tips.retain(|tip| !self.covered.contains(tip));
        if tips.is_empty() {
            return Ok(held);
        }
        // Like git-lfs's pre-push: what the mirror's refs reach, it has (unless checking everything).
        let exclude: Vec<Oid> = if self.full {
            Vec::new()
        } else {
            remote.values().cloned().collect()
        };
        let report = self.report.get_or_insert_with(|| LfsReport {
            full: self.full,
            ..Default::default()
        });
        let sent = match self.setup_error.clone() {
            Some(error) => Err(error),
            None => send_objects(repo, access, mirror, &tips, &exclude, report),
        };
        match sent {
            Err(error) => {
                report.error = Some(error.clone());
                if self.required {
                    return Err(format!("LFS upload failed: {error}"));
                }
                report.pushed_without_objects = true;
            }
            Ok(()) if report.missing.is_empty() => {}
            Ok(()) if !self.required => report.pushed_without_objects = true,
            Ok(()) => {
                // Hold back exactly the refs whose new commits need a missing object.
                for (name, change) in plan.changes() {
                    let Some(new) = change.new_value() else { continue };
                    let needed = git::lfs::pointers(repo, std::slice::from_ref(new), &exclude, mirror.timeout)
                        .map_err(|e| format!("LFS: {e}"))?;
                    let lacking: BTreeSet<String> = needed
                        .into_iter()
                        .map(|p| p.oid)
                        .filter(|oid| report.missing.contains(oid))
                        .collect();
                    if !lacking.is_empty() {
                        tips.retain(|tip| tip != new);
                        held.insert(name.to_string(), crate::mirror::lfs::missing_objects_message(&lacking));
                    }
                }
            }
        }
        // Done for this update, even when failed: a retry within it would fail the same way.
        self.covered.extend(tips);
        Ok(held)
    }
}

/// Finds the LFS objects `tips` need beyond what `exclude` reaches, and uploads those the local
/// store has; the others are recorded as missing in `report`.
fn send_objects(
    repo: &Path,
    access: &RemoteAccess,
    mirror: &MirrorConfig,
    tips: &[Oid],
    exclude: &[Oid],
    report: &mut LfsReport,
) -> Result<(), String> {
    let pointers = git::lfs::pointers(repo, tips, exclude, mirror.timeout).map_err(|e| e.to_string())?;
    let store = LocalStore::for_repo(repo, &mirror.lfs);
    let (present, missing): (Vec<_>, Vec<_>) = pointers.into_iter().partition(|p| store.has(p));
    report.objects += present.len() + missing.len();
    report.missing.extend(missing.into_iter().map(|p| p.oid));
    git::lfs::upload(repo, &store, access, &present).map_err(|e| e.to_string())?;
    report.sent += present.len();
    Ok(())
}
