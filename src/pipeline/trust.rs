//! What the worker trusts (docs/security.md): its spool and state directories, which only it
//! (or root, or the `shared_group`) may write, and the repositories a spool entry names. Anyone
//! who can write a spool entry could otherwise make the worker push any repository with the
//! configuration and credentials its `push-mirror.toml` names; so an entry is acted on only for
//! a repository the admin registered (`add`, `install`, fleet discovery) or one the worker's
//! user (or the shared group) owns.

use crate::config::GlobalConfig;
use crate::mirror::state::StateStore;
use crate::util::trust::{Trusted, Untrusted, check_dir};
use crate::util::users;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The users whose writing the worker accepts, as `global` says (`shared_group`).
pub fn trusted_users(global: &GlobalConfig) -> Trusted {
    Trusted::worker(global.shared_group.clone())
}

/// Refuses a spool directory others could write (see [`check_dir`]).
pub fn check_spool_dir(dir: &Path, trusted: &Trusted) -> Result<(), Untrusted> {
    check_dir(dir, "the spool directory", trusted)
}

/// Refuses a state directory others could write (see [`check_dir`]).
pub fn check_state_dir(dir: &Path, trusted: &Trusted) -> Result<(), Untrusted> {
    check_dir(dir, "the state directory", trusted)
}

/// Refuses the spool and state directories of `global` when others could write them.
pub fn check_dirs(global: &GlobalConfig) -> Result<(), Untrusted> {
    let trusted = trusted_users(global);
    check_spool_dir(&global.spool_dir, &trusted)?;
    check_state_dir(&global.state_dir, &trusted)
}

/// Why the worker must not act on a spool entry naming `repo`, if it must not: the repository
/// is not registered, not one fleet discovery registers, and not owned by a trusted user (or by
/// the shared group).
pub fn distrusted_repository(global: &GlobalConfig, store: &StateStore, repo: &Path) -> Option<String> {
    if store.is_registered(repo) || crate::pipeline::fleet::discovers(global, repo) {
        return None;
    }
    let meta = match std::fs::metadata(repo) {
        Ok(meta) => meta,
        Err(e) => return Some(format!("it is not registered and its owner cannot be read ({e})")),
    };
    let trusted = trusted_users(global);
    let shared = trusted.shared.as_ref().is_some_and(|group| group.gid == meta.gid());
    if trusted.as_worker(meta.uid()) || shared {
        return None;
    }
    Some(format!(
        "it is not registered and belongs to {} (group {}), not to this user ({}){}",
        users::user_label(meta.uid()),
        users::group_label(meta.gid()),
        users::user_label(trusted.me),
        match &trusted.shared {
            Some(group) => format!(" nor to the shared group {}", group.name),
            None => String::new(),
        }
    ))
}
