//! Object ids as hex strings: the one representation shared by the hook, the spool, the state and the planner.

use serde::{Deserialize, Serialize};
use std::fmt;

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
    }
}
