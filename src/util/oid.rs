//! Object ids as hex strings: the one representation shared by the hook, the spool, the state and the planner;
//! a ref update as the hook reports it, and a ref change as the planner decides it and git pushes it;
//! and object formats (SHA-1, SHA-256), with the one a repository uses.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// A full hexadecimal object id (SHA-1 or SHA-256), lower case.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Oid(String);

impl Oid {
    /// Parses a full hex object id; `None` unless it is 40 or 64 hex digits.
    pub fn parse(hex: &str) -> Option<Oid> {
        let ok = matches!(hex.len(), 40 | 64) && hex.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| Oid(hex.to_ascii_lowercase()))
    }

    /// True for the all-zero id git uses for "no object" (creation / deletion).
    pub fn is_null(&self) -> bool {
        self.0.bytes().all(|b| b == b'0')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 10 hex digits, for tables.
    pub fn short(&self) -> &str {
        &self.0[..10]
    }
}

/// What to do with one ref on the remote. Pushed with
/// `--force-with-lease=<ref>:<expected remote value>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefChange {
    /// The ref does not exist on the remote (lease: must still not exist).
    Create { new: Oid },
    /// The remote has `old`; set it to `new`. `forced` when `old` is not known
    /// to be an ancestor of `new` (a non-fast-forward overwrite).
    Update { old: Oid, new: Oid, forced: bool },
    /// The remote has `old`; delete it.
    Delete { old: Oid },
}

impl RefChange {
    /// The value the remote is expected to hold (`None`: must not exist).
    pub fn expected_remote(&self) -> Option<&Oid> {
        match self {
            RefChange::Create { .. } => None,
            RefChange::Update { old, .. } | RefChange::Delete { old } => Some(old),
        }
    }

    /// The value to push (`None`: delete).
    pub fn new_value(&self) -> Option<&Oid> {
        match self {
            RefChange::Create { new } | RefChange::Update { new, .. } => Some(new),
            RefChange::Delete { .. } => None,
        }
    }
}

/// A repository's object format: how long its object ids are. git cannot push between formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectFormat {
    Sha1,
    Sha256,
}

impl ObjectFormat {
    /// The format of an id, by its length.
    pub fn of(oid: &Oid) -> ObjectFormat {
        if oid.0.len() == 64 {
            ObjectFormat::Sha256
        } else {
            ObjectFormat::Sha1
        }
    }

    /// The value of git's `extensions.objectFormat` (and of the `object-format` capability).
    pub fn parse(name: &str) -> Option<ObjectFormat> {
        match name.to_ascii_lowercase().as_str() {
            "sha1" => Some(ObjectFormat::Sha1),
            "sha256" => Some(ObjectFormat::Sha256),
            _ => None,
        }
    }

    /// The name git uses: `sha1`, `sha256`.
    pub fn git_name(self) -> &'static str {
        match self {
            ObjectFormat::Sha1 => "sha1",
            ObjectFormat::Sha256 => "sha256",
        }
    }
}

/// One ref update as git reports it to `post-receive`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefUpdate {
    #[serde(rename = "ref")]
    pub name: String,
    pub old: Oid,
    pub new: Oid,
}

/// The object format of the repository at `git_dir`, from its `extensions.objectFormat`
/// (cheap: the config file alone, no repository opened). SHA-1 when unset or unreadable.
pub fn object_format(git_dir: &Path) -> ObjectFormat {
    gix::config::File::from_path_no_includes(git_dir.join("config"), gix::config::Source::Local)
        .ok()
        .and_then(|config| config.string("extensions.objectFormat"))
        .and_then(|name| ObjectFormat::parse(&name.to_string()))
        .unwrap_or(ObjectFormat::Sha1)
}

impl fmt::Display for ObjectFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectFormat::Sha1 => "SHA-1",
            ObjectFormat::Sha256 => "SHA-256",
        })
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oid({})", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_full_hex_ids() {
        assert!(Oid::parse(&"a".repeat(40)).is_some());
        assert!(Oid::parse(&"A".repeat(64)).is_some());
        assert_eq!(Oid::parse(&"A".repeat(40)).unwrap().as_str(), "a".repeat(40));
        assert!(Oid::parse(&"a".repeat(39)).is_none());
        assert!(Oid::parse(&"g".repeat(40)).is_none());
        assert!(Oid::parse("").is_none());
        assert!(Oid::parse(&"0".repeat(40)).unwrap().is_null());
        assert!(Oid::parse(&"0".repeat(64)).unwrap().is_null());
    }

    #[test]
    fn the_object_format_follows_the_id_length() {
        assert_eq!(
            ObjectFormat::of(&Oid::parse(&"a".repeat(40)).unwrap()),
            ObjectFormat::Sha1
        );
        assert_eq!(
            ObjectFormat::of(&Oid::parse(&"a".repeat(64)).unwrap()),
            ObjectFormat::Sha256
        );
        assert_eq!(ObjectFormat::parse("SHA256"), Some(ObjectFormat::Sha256));
        assert_eq!(ObjectFormat::parse("md5"), None);
        assert_eq!(ObjectFormat::Sha256.to_string(), "SHA-256");
    }
}
