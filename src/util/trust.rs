//! Who may write what decides where the worker pushes and where credentials go
//! (docs/security.md: "Who may write what"): the spool and state directories, a repository's `push-mirror.toml` and the
//! secret files it names. The rule is the one ssh applies to `~/.ssh`: owned by a trusted user
//! (root, the worker's user, or whom the caller adds) and writable by nobody else. A group may
//! write only when it is the `shared_group` the admin named. For the directories above a
//! checked one, the sticky bit (`/tmp`) is enough: it keeps other writers from renaming or
//! replacing what they do not own.
//!
//! [`exposure`] is the rule, a pure function over owner, group and mode; [`check_dir`] and
//! [`check_file`] apply it on disk and say what is wrong and how to fix it.

use crate::util::users::{self, Group};
use std::fmt;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Owner, group and mode of a file or directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl Ownership {
    pub fn of(meta: &Metadata) -> Ownership {
        Ownership {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode(),
        }
    }
}

/// Why users the worker does not trust could write a file or directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// Its owner is not trusted (an owner can always change the mode).
    Owner,
    /// Its group may write it, and that group is not the shared group.
    Group,
    /// Every user may write it.
    Others,
}

/// Whether a file or directory can be written by someone untrusted. `owner_trusted` says
/// whether its owner is; `shared_gid` is the group allowed to write, if any. `above` is for a
/// directory above the one that matters: its sticky bit keeps other writers from touching
/// entries they do not own, so it may be writable by all (as `/tmp` is).
pub fn exposure(of: Ownership, owner_trusted: bool, shared_gid: Option<u32>, above: bool) -> Option<Exposure> {
    if !owner_trusted {
        return Some(Exposure::Owner);
    }
    if above && of.mode & 0o1000 != 0 {
        return None;
    }
    if of.mode & 0o002 != 0 {
        return Some(Exposure::Others);
    }
    if of.mode & 0o020 != 0 && shared_gid != Some(of.gid) {
        return Some(Exposure::Group);
    }
    None
}

/// The users whose writing the worker accepts: root, itself, the users added (a repository's
/// owner, for that repository's files) and the members of the shared group.
#[derive(Clone, Debug)]
pub struct Trusted {
    pub me: u32,
    pub also: Vec<u32>,
    pub shared: Option<Group>,
}

impl Trusted {
    /// Root, this process's user and, when the admin named one, the shared group.
    pub fn worker(shared: Option<Group>) -> Trusted {
        Trusted {
            me: users::effective_uid(),
            also: Vec::new(),
            shared,
        }
    }

    /// These users and `uid`.
    pub fn and_user(&self, uid: u32) -> Trusted {
        let mut trusted = self.clone();
        if !trusted.also.contains(&uid) {
            trusted.also.push(uid);
        }
        trusted
    }

    /// Whether `uid` is trusted as much as the worker itself (root, itself, a shared group member).
    pub fn as_worker(&self, uid: u32) -> bool {
        uid == 0 || uid == self.me || self.shared.as_ref().is_some_and(|group| group.has_member(uid))
    }

    /// Whether `uid` is trusted.
    pub fn user(&self, uid: u32) -> bool {
        self.also.contains(&uid) || self.as_worker(uid)
    }

    fn shared_gid(&self) -> Option<u32> {
        self.shared.as_ref().map(|group| group.gid)
    }

    /// The rule applied to `of`.
    pub fn exposure(&self, of: Ownership, above: bool) -> Option<Exposure> {
        exposure(of, self.user(of.uid), self.shared_gid(), above)
    }
}

/// A directory or file that users the worker does not trust could write, with what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Untrusted {
    /// What it is, such as "the spool directory".
    pub what: String,
    /// For a directory above the one that matters: that one (`path` is the directory above).
    pub below: Option<PathBuf>,
    pub path: PathBuf,
    pub ownership: Ownership,
    pub exposure: Exposure,
    /// The command (or step) that fixes it.
    pub fix: String,
}

impl Untrusted {
    /// What is wrong and the fix, without the leading "what path": for a message that names the
    /// file already (`FILE: …`).
    pub fn problem(&self) -> String {
        let Ownership { uid, gid, mode } = self.ownership;
        let (user, group) = (users::user_label(uid), users::group_label(gid));
        let problem = match self.exposure {
            Exposure::Owner => format!(
                "belongs to {user}, whom this user ({}) does not trust",
                users::user_label(users::effective_uid())
            ),
            Exposure::Group => format!("can be written by the group {group}"),
            Exposure::Others => "can be written by every user".to_string(),
        };
        format!(
            "{problem} (owner {user}, group {group}, mode {:o}): whoever can write it decides what is pushed \
             where, with which credentials, so it is refused; {}",
            mode & 0o7777,
            self.fix
        )
    }
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.below {
            None => write!(f, "{} {} {}", self.what, self.path.display(), self.problem()),
            Some(below) => write!(
                f,
                "{} {} lies in {}, which {}",
                self.what,
                below.display(),
                self.path.display(),
                self.problem()
            ),
        }
    }
}

impl std::error::Error for Untrusted {}

/// How to fix a directory the worker keeps its own files in.
fn dir_fix(path: &Path, exposure: Exposure, trusted: &Trusted) -> String {
    let shown = path.display();
    let me = users::user_label(trusted.me);
    let shared = match (&trusted.shared, exposure) {
        (None, Exposure::Group) => {
            " (or, if a group of users shares it on purpose, name that group in the global configuration: \
             shared_group = \"GROUP\")"
        }
        _ => "",
    };
    match exposure {
        Exposure::Owner => format!(
            "run this as its owner, or give it to this user: chown -R {me} {shown} && chmod 700 {shown}{shared}"
        ),
        Exposure::Group | Exposure::Others => match &trusted.shared {
            Some(group) => format!("fix: chgrp {} {shown} && chmod 2770 {shown}", group.name),
            None => format!("fix: chmod 700 {shown}{shared}"),
        },
    }
}

/// How to fix a directory above one the worker keeps its files in.
fn above_fix(path: &Path, exposure: Exposure) -> String {
    let shown = path.display();
    match exposure {
        Exposure::Owner => format!(
            "its owner could replace what is in it: choose a directory whose parents belong to root or to this \
             user, or give {shown} to root (chown root {shown})"
        ),
        Exposure::Group | Exposure::Others => format!(
            "other users could replace what is in it: fix: chmod go-w {shown} (or chmod +t {shown}, as for /tmp), \
             or choose another directory"
        ),
    }
}

/// Checks a directory the worker keeps its own files in (`what`: "the spool directory") and
/// every directory above it, symbolic links followed. One that does not exist yet is fine
/// (the program creates it mode 700) when the directories above it are. A path that cannot be
/// examined is left for the operation on it to report.
pub fn check_dir(path: &Path, what: &str, trusted: &Trusted) -> Result<(), Untrusted> {
    let mut existing = path;
    let exists = loop {
        match std::fs::metadata(existing) {
            Ok(_) => break existing == path,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match existing.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => existing = parent,
                _ => return Ok(()),
            },
            Err(_) => return Ok(()),
        }
    };
    let Ok(real) = std::fs::canonicalize(existing) else {
        return Ok(());
    };
    for (index, dir) in real.ancestors().enumerate() {
        let Ok(meta) = std::fs::metadata(dir) else {
            return Ok(());
        };
        let above = index > 0 || !exists;
        let ownership = Ownership::of(&meta);
        if let Some(exposure) = trusted.exposure(ownership, above) {
            return Err(Untrusted {
                what: what.to_string(),
                below: above.then(|| path.to_path_buf()),
                path: dir.to_path_buf(),
                ownership,
                exposure,
                fix: if above {
                    above_fix(dir, exposure)
                } else {
                    dir_fix(dir, exposure, trusted)
                },
            });
        }
    }
    Ok(())
}

/// Checks a file that decides what is pushed where (`what`: "the configuration file"):
/// `meta` is the file's, as opened. `None` when only trusted users can write it.
pub fn check_file(path: &Path, what: &str, meta: &Metadata, trusted: &Trusted) -> Option<Untrusted> {
    let ownership = Ownership::of(meta);
    let exposure = trusted.exposure(ownership, false)?;
    let shown = path.display();
    let fix = match exposure {
        Exposure::Owner => format!(
            "give it to a trusted user, such as the one the worker runs as (as root: chown {} {shown})",
            users::user_label(trusted.me)
        ),
        Exposure::Group | Exposure::Others => format!("fix: chmod go-w {shown}"),
    };
    Some(Untrusted {
        what: what.to_string(),
        below: None,
        path: path.to_path_buf(),
        ownership,
        exposure,
        fix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(uid: u32, gid: u32, mode: u32) -> Ownership {
        Ownership { uid, gid, mode }
    }

    #[test]
    fn a_directory_must_belong_to_a_trusted_user_and_be_writable_by_nobody_else() {
        let trusted = |uid: u32| uid == 1000 || uid == 0;
        let rule = |o: Ownership| exposure(o, trusted(o.uid), None, false);
        assert_eq!(rule(of(1000, 1000, 0o40700)), None);
        assert_eq!(
            rule(of(1000, 1000, 0o40755)),
            None,
            "readable by others is not writable"
        );
        assert_eq!(rule(of(0, 0, 0o40755)), None, "root is trusted");
        assert_eq!(rule(of(1001, 1000, 0o40700)), Some(Exposure::Owner));
        assert_eq!(rule(of(1000, 1000, 0o40770)), Some(Exposure::Group));
        assert_eq!(rule(of(1000, 1000, 0o40707)), Some(Exposure::Others));
        assert_eq!(
            rule(of(1000, 1000, 0o41777)),
            Some(Exposure::Others),
            "sticky does not help the directory itself"
        );
        assert_eq!(
            rule(of(1001, 1001, 0o40777)),
            Some(Exposure::Owner),
            "the owner is named first"
        );
    }

    #[test]
    fn a_shared_group_may_write_but_others_never() {
        let shared = Some(50);
        let rule = |o: Ownership| exposure(o, true, shared, false);
        assert_eq!(rule(of(1000, 50, 0o42770)), None);
        assert_eq!(rule(of(1000, 51, 0o42770)), Some(Exposure::Group), "another group");
        assert_eq!(rule(of(1000, 50, 0o42777)), Some(Exposure::Others));
    }

    #[test]
    fn above_a_directory_the_sticky_bit_is_enough_but_an_untrusted_owner_is_not() {
        let rule = |o: Ownership, owner_trusted: bool| exposure(o, owner_trusted, None, true);
        assert_eq!(rule(of(0, 0, 0o41777), true), None, "/tmp");
        assert_eq!(rule(of(0, 0, 0o40777), true), Some(Exposure::Others));
        assert_eq!(rule(of(0, 100, 0o42775), true), Some(Exposure::Group));
        assert_eq!(rule(of(1001, 1001, 0o41777), false), Some(Exposure::Owner));
    }

    #[test]
    fn trusted_users_are_root_the_worker_and_those_added() {
        let trusted = Trusted {
            me: 1000,
            also: Vec::new(),
            shared: None,
        };
        assert!(trusted.user(0) && trusted.user(1000) && !trusted.user(1001));
        let with_owner = trusted.and_user(1001);
        assert!(with_owner.user(1001) && !with_owner.as_worker(1001));
        let shared = Trusted {
            shared: Group::by_name("root"),
            ..trusted
        };
        assert!(shared.as_worker(0));
        assert_eq!(
            shared.exposure(of(1000, 0, 0o40770), false),
            None,
            "root is the shared group here"
        );
    }

    #[test]
    fn a_directory_on_disk_is_checked_with_those_above_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let trusted = Trusted::worker(None);
        let spool = dir.path().join("spool");
        assert_eq!(
            check_dir(&spool.join("not/yet"), "the spool directory", &trusted),
            Ok(())
        );
        std::fs::create_dir(&spool).unwrap();
        std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_dir(&spool, "the spool directory", &trusted).unwrap_err();
        assert_eq!((err.exposure, err.path.as_path()), (Exposure::Others, spool.as_path()));
        let text = err.to_string();
        assert!(
            text.contains("mode 777") && text.contains(&format!("chmod 700 {}", spool.display())),
            "{text}"
        );
        // A directory below a world-writable one without the sticky bit: its writers could replace it.
        let inner = spool.join("state");
        std::fs::create_dir(&inner).unwrap();
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = check_dir(&inner.join("missing"), "the state directory", &trusted).unwrap_err();
        assert_eq!(err.path, spool);
        assert!(err.to_string().contains("chmod +t"), "{err}");
        std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(check_dir(&inner, "the state directory", &trusted), Ok(()));
    }
}
