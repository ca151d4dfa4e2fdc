//! Whether a user, or every member of a group, can use a directory tree (the spool, the state
//! directory) or a file (the log) the way the hook and the worker do: read and write every file,
//! create and remove entries in every directory, reach it through its parents. `check` asks this
//! about the user pushes run as, who is often not the user running `check`.
//!
//! For the calling user the kernel answers (`faccessat`, ACLs included). For another user the
//! permission bits decide, as the kernel applies them: the owner's bits to the owner, the group's
//! to its members, the others' to everyone else. A path with a POSIX ACL is not judged by its
//! bits (the ACL may grant what they deny), so it is never reported.

use crate::util::users;
use std::ffi::CString;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Who must be able to use the files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Writer {
    /// One user, with the groups it belongs to.
    User { uid: u32, groups: Vec<u32> },
    /// Every member of a group (a shared repository's pushers), whoever owns the files.
    GroupMembers(u32),
}

impl Writer {
    /// The user `uid` with its groups from the group database.
    pub fn user(uid: u32) -> Writer {
        Writer::User {
            uid,
            groups: users::groups_of(uid),
        }
    }
}

/// The first path that stands in the way, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    pub path: PathBuf,
    pub kind: DeniedKind,
    /// What the path lacks, with its owner and mode: "cannot create files in it (owner root, …)".
    pub why: String,
}

/// Where a path stands in the way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeniedKind {
    /// A parent of a missing directory or file, in which it cannot be created.
    CannotCreate,
    /// A parent that cannot be passed through.
    CannotPass,
    /// The directory or file itself, or something in the tree.
    CannotUse,
}

const READ: u32 = 4;
const WRITE: u32 = 2;
const SEARCH: u32 = 1;

/// How many entries of a tree are looked at before the answer is given (a large fleet's state).
const MAX_ENTRIES: usize = 100_000;

fn has_acl(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: both strings are NUL-terminated; a null buffer of size 0 only asks for the size.
    let size = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c"system.posix_acl_access".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    size >= 0
}

/// Whether `who` has the `want` bits (of READ, WRITE, SEARCH) on `path`.
fn allows(path: &Path, meta: &Metadata, who: &Writer, want: u32) -> bool {
    let mode = meta.mode();
    let bits = match who {
        Writer::User { uid, .. } if *uid == users::effective_uid() => return kernel_allows(path, want),
        Writer::User { uid: 0, .. } => return true,
        Writer::User { uid, .. } if meta.uid() == *uid => mode >> 6,
        Writer::User { groups, .. } if groups.contains(&meta.gid()) => mode >> 3,
        Writer::User { .. } => mode,
        Writer::GroupMembers(gid) if meta.gid() == *gid => mode >> 3,
        Writer::GroupMembers(_) => mode,
    };
    bits & want == want || has_acl(path)
}

/// The kernel's answer for this process (ACLs and read-only mounts included).
fn kernel_allows(path: &Path, want: u32) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut mode = 0;
    if want & READ != 0 {
        mode |= libc::R_OK;
    }
    if want & WRITE != 0 {
        mode |= libc::W_OK;
    }
    if want & SEARCH != 0 {
        mode |= libc::X_OK;
    }
    // SAFETY: the path is NUL-terminated; faccessat only reads it.
    unsafe { libc::faccessat(libc::AT_FDCWD, c_path.as_ptr(), mode, libc::AT_EACCESS) == 0 }
}

fn denied(path: &Path, meta: &Metadata, kind: DeniedKind, what: &str) -> Denied {
    Denied {
        path: path.to_path_buf(),
        kind,
        why: format!(
            "{what} (owner {}, group {}, mode {:04o})",
            users::user_label(meta.uid()),
            users::group_label(meta.gid()),
            meta.mode() & 0o7777
        ),
    }
}

/// The parents of `path` that `who` must pass through; a missing `path` must be creatable in the
/// nearest parent that exists.
fn parents_deny(path: &Path, who: &Writer) -> Option<Denied> {
    let mut missing = true;
    for parent in path.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(parent) else {
            continue;
        };
        let create = std::mem::take(&mut missing) && std::fs::symlink_metadata(path).is_err();
        if create && !allows(parent, &meta, who, WRITE | SEARCH) {
            return Some(denied(
                parent,
                &meta,
                DeniedKind::CannotCreate,
                "cannot create it there",
            ));
        }
        if !allows(parent, &meta, who, SEARCH) {
            return Some(denied(parent, &meta, DeniedKind::CannotPass, "cannot pass through it"));
        }
    }
    None
}

/// What keeps `who` from using the directory tree at `root` (created on first use when
/// missing): every directory must be listable and writable, every file readable and writable.
pub fn tree_denies(root: &Path, who: &Writer) -> Option<Denied> {
    if let Some(denied) = parents_deny(root, who) {
        return Some(denied);
    }
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0;
    while let Some(path) = stack.pop() {
        seen += 1;
        if seen > MAX_ENTRIES {
            break;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if !allows(&path, &meta, who, READ | WRITE | SEARCH) {
                return Some(denied(&path, &meta, DeniedKind::CannotUse, "cannot create files in it"));
            }
            let entries = std::fs::read_dir(&path).into_iter().flatten().flatten();
            stack.extend(entries.map(|entry| entry.path()));
        } else if meta.is_file() && !allows(&path, &meta, who, READ | WRITE) {
            return Some(denied(&path, &meta, DeniedKind::CannotUse, "cannot read and write it"));
        }
    }
    None
}

/// What keeps `who` from appending to the log `file`, and from creating it again in its
/// directory (when missing, and after logrotate renamed it).
pub fn file_denies(file: &Path, who: &Writer) -> Option<Denied> {
    if let Some(denied) = parents_deny(file, who) {
        return Some(denied);
    }
    let meta = std::fs::metadata(file).ok()?;
    if let Some(dir) = file.parent()
        && let Ok(dir_meta) = std::fs::metadata(dir)
        && !allows(dir, &dir_meta, who, WRITE | SEARCH)
    {
        return Some(denied(
            dir,
            &dir_meta,
            DeniedKind::CannotCreate,
            "cannot create the file again there after it is rotated",
        ));
    }
    (!allows(file, &meta, who, WRITE)).then(|| denied(file, &meta, DeniedKind::CannotUse, "cannot write it"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A user that is neither this process's nor root, in no group of the files.
    fn stranger() -> Writer {
        Writer::User {
            uid: 3_999_999_998,
            groups: vec![3_999_999_998],
        }
    }

    #[test]
    fn another_user_is_judged_by_the_others_bits_and_a_group_by_the_groups() {
        let dir = tempfile::TempDir::new().unwrap();
        let tree = dir.path().join("spool");
        std::fs::create_dir_all(tree.join("new")).unwrap();
        std::fs::write(tree.join("new/entry.json"), "{}").unwrap();
        chmod(dir.path(), 0o755);
        chmod(&tree, 0o777);
        chmod(&tree.join("new"), 0o777);
        chmod(&tree.join("new/entry.json"), 0o666);
        assert_eq!(tree_denies(&tree, &stranger()), None);

        chmod(&tree.join("new/entry.json"), 0o644);
        let denied = tree_denies(&tree, &stranger()).unwrap();
        assert_eq!(denied.path, tree.join("new/entry.json"));
        assert!(denied.why.contains("cannot read and write it"), "{}", denied.why);
        assert!(denied.why.contains("mode 0644"), "{}", denied.why);

        chmod(&tree.join("new"), 0o775);
        let denied = tree_denies(&tree, &stranger()).unwrap();
        assert_eq!(denied.path, tree.join("new"));
        assert!(denied.why.contains("cannot create files in it"), "{}", denied.why);

        // Members of the files' group get the group's bits.
        let gid = std::fs::metadata(&tree).unwrap().gid();
        chmod(&tree.join("new/entry.json"), 0o664);
        chmod(&tree, 0o770);
        assert_eq!(tree_denies(&tree, &Writer::GroupMembers(gid)), None);
        chmod(&tree, 0o750);
        assert_eq!(tree_denies(&tree, &Writer::GroupMembers(gid)).unwrap().path, tree);
    }

    #[test]
    fn a_missing_tree_or_file_must_be_creatable_and_its_parents_passable() {
        let dir = tempfile::TempDir::new().unwrap();
        let parent = dir.path().join("var");
        std::fs::create_dir(&parent).unwrap();
        chmod(dir.path(), 0o755);
        chmod(&parent, 0o755);
        let denied = tree_denies(&parent.join("spool/deeper"), &stranger()).unwrap();
        assert_eq!(denied.path, parent);
        assert_eq!(denied.kind, DeniedKind::CannotCreate, "{}", denied.why);
        chmod(&parent, 0o777);
        assert_eq!(tree_denies(&parent.join("spool/deeper"), &stranger()), None);
        assert_eq!(file_denies(&parent.join("log"), &stranger()), None);

        chmod(&parent, 0o770);
        std::fs::create_dir(parent.join("spool")).unwrap();
        let denied = tree_denies(&parent.join("spool"), &stranger()).unwrap();
        assert_eq!(denied.path, parent);
        assert_eq!(denied.kind, DeniedKind::CannotPass, "{}", denied.why);

        // This process is asked of the kernel; root may do anything.
        assert_eq!(
            tree_denies(&parent.join("spool"), &Writer::user(users::effective_uid())),
            None
        );
        assert_eq!(file_denies(&parent.join("log"), &Writer::user(0)), None);
    }
}
