//! Git LFS for mirrors: the per-mirror settings, pointer parsing, the repository's local object
//! store, and which transports can carry LFS objects. The scan and the upload run git and
//! git-lfs, in `git/lfs.rs`.

use crate::util::remote_url::Transport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// `lfs = "auto" | "on" | "off"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LfsMode {
    /// Upload LFS objects when the repository has any.
    #[default]
    Auto,
    /// Always scan for LFS pointers and upload their objects.
    On,
    /// Never upload LFS objects.
    Off,
}

impl LfsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LfsMode::Auto => "auto",
            LfsMode::On => "on",
            LfsMode::Off => "off",
        }
    }

    pub fn parse(text: &str) -> Option<LfsMode> {
        match text {
            "auto" => Some(LfsMode::Auto),
            "on" => Some(LfsMode::On),
            "off" => Some(LfsMode::Off),
            _ => None,
        }
    }
}

/// One mirror's LFS settings, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LfsSettings {
    pub mode: LfsMode,
    /// Whether a failed LFS upload fails the update (its refs are then not pushed).
    pub required: bool,
    /// The LFS endpoint, when not the one git-lfs derives from the mirror's URL.
    pub url: Option<String>,
    /// Where the repository's LFS objects are when a hosting server keeps them outside the
    /// repository (Gitea's `data/lfs`, GitLab's `shared/lfs-objects`).
    pub store: Option<PathBuf>,
}

impl Default for LfsSettings {
    fn default() -> Self {
        LfsSettings {
            mode: LfsMode::Auto,
            required: true,
            url: None,
            store: None,
        }
    }
}

/// Whether the mirror has the LFS objects of the refs it was given, as of the last update
/// that looked (`status` shows it as `lfs_status`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LfsStatus {
    /// No update has had LFS objects to send.
    #[default]
    None,
    Ok,
    Failed,
}

impl LfsStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LfsStatus::None => "none",
            LfsStatus::Ok => "ok",
            LfsStatus::Failed => "failed",
        }
    }
}

/// What the LFS step of one update did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LfsReport {
    /// Distinct LFS objects the scanned commits reference.
    pub objects: usize,
    /// Objects handed to git-lfs, which uploaded those the mirror lacked.
    pub sent: usize,
    /// Objects the local store lacks (pointers whose content never reached this repository).
    pub missing: BTreeSet<String>,
    /// Why the upload failed (redacted).
    pub error: Option<String>,
    /// Every object of every ref on the mirror was checked, not only the new commits'.
    pub full: bool,
    /// Refs were pushed although some of their objects could not be sent (`lfs_required = false`).
    pub pushed_without_objects: bool,
}

impl LfsReport {
    pub fn is_complete(&self) -> bool {
        self.error.is_none() && self.missing.is_empty()
    }

    /// The `lfs_error` this report leaves, if any.
    pub fn error_summary(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(error) = &self.error {
            parts.push(format!("LFS upload failed: {error}"));
        }
        if !self.missing.is_empty() {
            parts.push(missing_objects_message(&self.missing));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// How many missing objects a message names before "and N more".
const MISSING_SHOWN: usize = 3;

/// Names (some of) the missing objects and says how to get them.
pub fn missing_objects_message(missing: &BTreeSet<String>) -> String {
    let mut shown: Vec<&str> = missing.iter().take(MISSING_SHOWN).map(String::as_str).collect();
    let more = format!("and {} more", missing.len().saturating_sub(MISSING_SHOWN));
    if missing.len() > MISSING_SHOWN {
        shown.push(&more);
    }
    format!(
        "{} LFS object(s) missing from the repository's LFS store: {} (fetch them into the repository \
         with `git lfs fetch --all`, or have the pusher run `git lfs push --all`)",
        missing.len(),
        shown.join(", ")
    )
}

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

/// Whether LFS objects can reach a mirror of this transport, and if not, why.
pub fn transport_support(transport: &Transport, lfs_url: Option<&str>) -> Result<(), String> {
    if lfs_url.is_some() {
        return Ok(());
    }
    match transport {
        // HTTPS: the endpoint is <url>.git/info/lfs; SSH: git-lfs asks the host with
        // git-lfs-authenticate (GitHub, GitLab, Gitea) or speaks git-lfs-transfer;
        // file://: git-lfs copies into the mirror's own lfs/objects.
        Transport::Https | Transport::Http | Transport::Ssh | Transport::File => Ok(()),
        Transport::Git => Err("the git:// protocol cannot carry LFS objects; set lfs_url to the \
             mirror's HTTPS LFS endpoint, or lfs = \"off\""
            .to_string()),
        Transport::Refused(what) => Err(format!("{what} is not an allowed transport")),
    }
}

/// Where a mirror's LFS objects go, in words for `check`: the endpoint git-lfs uses (`lfs_url`,
/// else derived from the URL as git-lfs derives it), or why there is none.
pub fn describe_endpoint(url: &str, transport: &Transport, lfs_url: Option<&str>) -> Result<String, String> {
    transport_support(transport, lfs_url)?;
    if let Some(lfs_url) = lfs_url {
        return Ok(format!("{lfs_url} (lfs_url)"));
    }
    Ok(match transport {
        Transport::Https | Transport::Http => {
            let base = url.trim_end_matches('/');
            let git = if base.ends_with(".git") { "" } else { ".git" };
            format!("{base}{git}/info/lfs")
        }
        Transport::Ssh => "given by the SSH host (git-lfs-authenticate or git-lfs-transfer, which GitHub, \
             GitLab and Gitea provide; for another SSH server set lfs_url to an HTTPS LFS endpoint)"
            .to_string(),
        _ => format!("{url} (the mirror repository's own lfs/objects)"),
    })
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

    #[test]
    fn reports_name_missing_objects_and_upload_errors() {
        let mut report = LfsReport::default();
        assert!(report.is_complete());
        assert_eq!(report.error_summary(), None);
        report.missing = (0..5).map(|i| format!("{i}{}", &OID[1..])).collect();
        report.error = Some("batch response: Authorization error".into());
        let summary = report.error_summary().unwrap();
        assert!(summary.starts_with("LFS upload failed: batch response: Authorization error; 5 LFS object(s) missing"));
        assert!(summary.contains(&format!("0{}", &OID[1..])));
        assert!(summary.contains("and 2 more"), "{summary}");
        assert!(!summary.contains(&format!("4{}", &OID[1..])));
    }

    #[test]
    fn endpoints_are_derived_as_git_lfs_derives_them() {
        let https = |url| describe_endpoint(url, &Transport::Https, None).unwrap();
        assert_eq!(https("https://h/a/b.git"), "https://h/a/b.git/info/lfs");
        assert_eq!(https("https://h/a/b"), "https://h/a/b.git/info/lfs");
        assert_eq!(https("https://h/a/b/"), "https://h/a/b.git/info/lfs");
        let own = describe_endpoint("ssh://h/x", &Transport::Ssh, Some("https://l/x")).unwrap();
        assert_eq!(own, "https://l/x (lfs_url)");
        assert!(
            describe_endpoint("ssh://h/x", &Transport::Ssh, None)
                .unwrap()
                .contains("git-lfs-authenticate")
        );
        assert!(describe_endpoint("git://h/x", &Transport::Git, None).is_err());
    }

    #[test]
    fn git_protocol_mirrors_need_an_lfs_url() {
        assert!(transport_support(&Transport::Git, None).is_err());
        assert!(transport_support(&Transport::Git, Some("https://lfs.example/x")).is_ok());
        for t in [Transport::Https, Transport::Ssh, Transport::File] {
            assert!(transport_support(&t, None).is_ok());
        }
    }
}
