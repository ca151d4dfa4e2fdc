//! What git-lfs stores in git and beside it: pointer files, parsed as git-lfs parses them, and
//! the repository's local object store, where the objects the pointers name are found.

use crate::config::lfs::LfsSettings;
use std::path::{Path, PathBuf};

/// What a git-lfs pointer file says: the object's sha256 and size.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pointer {
    /// 64 lowercase hex digits.
    pub oid: String,
    pub size: u64,
}

/// git-lfs never treats a blob of this size or more as a pointer.
pub const MAX_POINTER_SIZE: u64 = 1024;

/// The `version` lines git-lfs accepts (the second is the pre-1.0 name).
const POINTER_VERSIONS: &[&str] = &[
    "https://git-lfs.github.com/spec/v1",
    "https://hawser.github.com/spec/v1",
];

/// Parses a blob as a git-lfs pointer (spec v1): `version` first, then sorted `key value` lines
/// including `oid sha256:<hex>` and `size <n>`, each ending in a newline. Anything else is an
/// ordinary file.
pub fn parse_pointer(blob: &[u8]) -> Option<Pointer> {
    if blob.len() as u64 >= MAX_POINTER_SIZE {
        return None;
    }
    let text = std::str::from_utf8(blob).ok()?;
    let body = text.strip_suffix('\n')?;
    let mut lines = body.split('\n');
    let version = lines.next()?.strip_prefix("version ")?;
    if !POINTER_VERSIONS.contains(&version) {
        return None;
    }
    let (mut oid, mut size) = (None, None);
    let mut previous_key = "";
    for line in lines {
        let (key, value) = line.split_once(' ')?;
        if key <= previous_key {
            return None; // keys are sorted and unique
        }
        previous_key = key;
        match key {
            "oid" => oid = Some(value.strip_prefix("sha256:").filter(|h| is_sha256_hex(h))?.to_string()),
            "size" => {
                size = Some(
                    value
                        .parse::<u64>()
                        .ok()
                        .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))?,
                )
            }
            _ if key.starts_with("ext-") => {}
            _ => return None,
        }
    }
    Some(Pointer { oid: oid?, size: size? })
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Where a repository's LFS objects are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalStore {
    /// git-lfs's own store in the repository: `<repo>/lfs/objects/ab/cd/abcd…`.
    Repository(PathBuf),
    /// A hosting server's store shared by its repositories: `<dir>/ab/cd/<oid without its first
    /// four digits>`, the layout of Gitea (`data/lfs`) and GitLab (`shared/lfs-objects`).
    Shared(PathBuf),
}

impl LocalStore {
    pub fn for_repo(repo: &Path, settings: &LfsSettings) -> LocalStore {
        match &settings.store {
            Some(dir) => LocalStore::Shared(dir.clone()),
            None => LocalStore::Repository(repo.join("lfs/objects")),
        }
    }

    pub fn object_path(&self, oid: &str) -> PathBuf {
        match self {
            LocalStore::Repository(dir) => dir.join(&oid[..2]).join(&oid[2..4]).join(oid),
            LocalStore::Shared(dir) => dir.join(&oid[..2]).join(&oid[2..4]).join(&oid[4..]),
        }
    }

    /// Whether the store holds the object, with the size its pointer says.
    pub fn has(&self, pointer: &Pointer) -> bool {
        std::fs::metadata(self.object_path(&pointer.oid)).is_ok_and(|m| m.is_file() && m.len() == pointer.size)
    }

    /// Whether the repository may have LFS objects (what `lfs = "auto"` looks at): for its own
    /// store, one directory read, so repositories without LFS pay nothing more; a shared store
    /// cannot tell which repositories use it, so it counts as yes.
    pub fn may_have_objects(&self) -> bool {
        match self {
            LocalStore::Repository(dir) => std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()),
            LocalStore::Shared(dir) => dir.is_dir(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OID: &str = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";

    fn pointer_text(oid: &str, size: &str) -> String {
        format!("version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n")
    }

    #[test]
    fn parses_a_pointer() {
        let p = parse_pointer(pointer_text(OID, "12345").as_bytes()).unwrap();
        assert_eq!(p.oid, OID);
        assert_eq!(p.size, 12345);
    }

    #[test]
    fn accepts_extensions_and_the_old_version_name() {
        let text =
            format!("version https://git-lfs.github.com/spec/v1\next-0-foo sha256:{OID}\noid sha256:{OID}\nsize 1\n");
        assert!(parse_pointer(text.as_bytes()).is_some());
        let old = pointer_text(OID, "3").replace("git-lfs.github.com", "hawser.github.com");
        assert!(parse_pointer(old.as_bytes()).is_some());
    }

    #[test]
    fn rejects_what_git_lfs_rejects() {
        let bad = [
            String::new(),
            "hello\n".to_string(),
            pointer_text(OID, "12").trim_end().to_string(), // no final newline
            pointer_text(&OID.to_uppercase(), "12"),
            pointer_text(&OID[1..], "12"),
            pointer_text(OID, "-1"),
            pointer_text(OID, "+1"),
            pointer_text(OID, "1x"),
            pointer_text(OID, "12").replace("sha256:", "sha1:"),
            pointer_text(OID, "12").replace("spec/v1", "spec/v2"),
            // keys out of order
            format!("version https://git-lfs.github.com/spec/v1\nsize 1\noid sha256:{OID}\n"),
            // unknown key
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 1\nzzz 1\n"),
            // missing size
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\n"),
            // too large to be a pointer
            format!("{}{}", pointer_text(OID, "1"), " ".repeat(1100)),
        ];
        for text in bad {
            assert_eq!(parse_pointer(text.as_bytes()), None, "{text:?}");
        }
        assert_eq!(parse_pointer(&[0xff, 0xfe, b'\n']), None);
    }

    #[test]
    fn local_objects_are_found_by_oid_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::for_repo(dir.path(), &LfsSettings::default());
        assert!(!store.may_have_objects());
        let path = store.object_path(OID);
        assert!(path.ends_with(format!("lfs/objects/4d/7a/{OID}")));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"abc").unwrap();
        assert!(store.may_have_objects());
        let pointer = |size| Pointer {
            oid: OID.to_string(),
            size,
        };
        assert!(store.has(&pointer(3)));
        assert!(!store.has(&pointer(4)), "a truncated object is missing");
    }

    #[test]
    fn a_shared_store_uses_the_hosting_servers_layout() {
        let settings = LfsSettings {
            store: Some(PathBuf::from("/var/lib/gitea/data/lfs")),
            ..Default::default()
        };
        let store = LocalStore::for_repo(Path::new("/srv/r.git"), &settings);
        assert_eq!(
            store.object_path(OID),
            Path::new("/var/lib/gitea/data/lfs/4d/7a").join(&OID[4..])
        );
    }
}
