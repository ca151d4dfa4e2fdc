//! Known refs: what the worker believes each mirror has (the local value each decision was made
//! for, and the mirror's value), with the identity (URL and filters) they were learned for, and
//! their compact file format, and the [`StateStore`] methods that read and write the files.

use super::StateStore;
use crate::util::fsutil::{Durability, replace_file};
use crate::util::oid::Oid;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
/// One in-scope ref as the mirror's last decisions left it: the local value
/// the decision was made for, and the mirror's value as far as we know.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownRef {
    pub local: Option<Oid>,
    pub remote: Option<Oid>,
}

/// Known refs by full name.
pub type KnownRefs = BTreeMap<String, KnownRef>;

/// The local values of known refs (what the drift scan compares).
pub fn known_local_values(refs: &KnownRefs) -> BTreeMap<String, Oid> {
    refs.iter()
        .filter_map(|(name, r)| r.local.clone().map(|oid| (name.clone(), oid)))
        .collect()
}

/// The mirror's values of known refs (what an update may assume before observing).
pub fn known_remote_values(refs: &KnownRefs) -> BTreeMap<String, Oid> {
    refs.iter()
        .filter_map(|(name, r)| r.remote.clone().map(|oid| (name.clone(), oid)))
        .collect()
}

/// What known refs describe: the mirror at `url`, as seen through the filters whose
/// fingerprint is `scope`. Refs learned for another URL describe another mirror; refs learned
/// under other filters leave out refs now in scope (stale on the mirror, or never pushed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorIdentity {
    pub url: String,
    pub scope: String,
}

/// The header lines of a known-refs file.
const URL_LINE: &str = "url ";
const SCOPE_LINE: &str = "scope ";

/// `url <url>`, `scope <scope>`, then one line per ref, `<local|-> <remote|-> <name>`: compact
/// and fast for repositories with many refs. The identity and the refs are written in one file
/// so that no crash can leave the refs of one mirror attributed to another.
pub(super) fn encode_known_refs(identity: &MirrorIdentity, refs: &KnownRefs) -> String {
    let mut text = String::with_capacity(refs.len() * 100 + identity.url.len() + 40);
    // A URL never holds a line break (git refuses one); escape it anyway so it cannot end the line.
    text.push_str(&format!("{URL_LINE}{}\n", identity.url.replace('\n', "%0A")));
    text.push_str(&format!("{SCOPE_LINE}{}\n", identity.scope));
    let show = |oid: &Option<Oid>| oid.as_ref().map_or("-", |o| o.as_str()).to_string();
    for (name, r) in refs {
        text.push_str(&format!("{} {} {name}\n", show(&r.local), show(&r.remote)));
    }
    text
}

/// The identity in the first lines of a known-refs file (none in a file from before they were
/// recorded).
pub(super) fn decode_identity<'a>(
    lines: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
) -> Option<MirrorIdentity> {
    let url = lines.next_if(|line| line.starts_with(URL_LINE))?[URL_LINE.len()..].to_string();
    let scope = lines.next_if(|line| line.starts_with(SCOPE_LINE))?[SCOPE_LINE.len()..].to_string();
    Some(MirrorIdentity { url, scope })
}

/// The identity and refs of a known-refs file; `None` when it is corrupt.
pub(super) fn decode_known_refs(text: &str) -> Option<(Option<MirrorIdentity>, KnownRefs)> {
    let parse = |field: &str| {
        if field == "-" {
            Some(None)
        } else {
            Oid::parse(field).map(Some)
        }
    };
    let mut lines = text.lines().peekable();
    let identity = decode_identity(&mut lines);
    let mut refs = KnownRefs::new();
    for line in lines {
        let mut fields = line.splitn(3, ' ');
        let (local, remote, name) = (fields.next()?, fields.next()?, fields.next()?);
        refs.insert(
            name.to_string(),
            KnownRef {
                local: parse(local)?,
                remote: parse(remote)?,
            },
        );
    }
    Some((identity, refs))
}

/// Known refs together with what they describe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownRefsOf {
    /// `None` for a file written before identities were recorded (or none at all).
    pub identity: Option<MirrorIdentity>,
    pub refs: KnownRefs,
}

impl KnownRefsOf {
    /// The refs, if they describe `identity`; empty otherwise: what another mirror had (a URL
    /// changed by hand, a fleet template edited), or what other filters let through, says
    /// nothing reliable about this one.
    pub fn for_mirror(self, identity: &MirrorIdentity) -> KnownRefs {
        if self.identity.as_ref() == Some(identity) {
            self.refs
        } else {
            KnownRefs::new()
        }
    }
}

impl StateStore {
    /// What the mirror's last decisions were made for (see [`KnownRef`]), and the mirror they
    /// were made for; empty when the file is missing or unreadable (its loss costs a
    /// re-observation, never correctness).
    pub fn load_known_refs(&self, repo: &Path, mirror: &str) -> KnownRefsOf {
        let path = self.known_refs_file(repo, mirror);
        match fs::read_to_string(&path) {
            Ok(text) => match decode_known_refs(&text) {
                Some((identity, refs)) => KnownRefsOf { identity, refs },
                None => {
                    log::warn!("{} is corrupt; it will be rebuilt", path.display());
                    KnownRefsOf::default()
                }
            },
            Err(_) => KnownRefsOf::default(),
        }
    }

    /// The mirror the known refs describe, reading only the file's first lines (the drift scan
    /// asks this of every pair).
    pub fn known_refs_identity(&self, repo: &Path, mirror: &str) -> Option<MirrorIdentity> {
        use std::io::Read;
        let file = fs::File::open(self.known_refs_file(repo, mirror)).ok()?;
        let mut head = Vec::with_capacity(8192);
        file.take(8192).read_to_end(&mut head).ok()?;
        let head = String::from_utf8_lossy(&head);
        decode_identity(&mut head.lines().peekable())
    }

    /// Saves the known refs learned from the mirror `identity`, without fsync: they are a
    /// cache (see [`Self::load_known_refs`]).
    pub fn save_known_refs(
        &self,
        repo: &Path,
        mirror: &str,
        identity: &MirrorIdentity,
        refs: &KnownRefs,
    ) -> Result<()> {
        let path = self.known_refs_file(repo, mirror);
        replace_file(
            &path,
            encode_known_refs(identity, refs).as_bytes(),
            0o600,
            Durability::Cache,
        )
        .with_context(|| format!("writing {}", path.display()))
    }
}
