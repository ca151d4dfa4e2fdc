//! What one `git for-each-ref` told about a reftable repository, kept while its refs cannot have
//! changed, so the drift scan and the planner do not start git to be told it again.
//!
//! The key is the content of `reftable/tables.list`, not its timestamps: every ref update (and
//! every compaction) writes new tables and renames a new `tables.list` over the old one, and
//! table names carry an update index that only grows and a random suffix, so the same content
//! never comes back. No timestamp is trusted, so there is no racy window (git's index has one:
//! a file changed within the second its timestamp was recorded looks unchanged); a key read
//! before git ran is the one stored, so a listing is never filed under a newer key than its own.
//!
//! Two levels: in this process's memory (the drift scan's listing serves the update that follows
//! it), bounded by [`MEMORY_REFS`]; and, when the caller names one, a file (in the state
//! directory, one per repository) that a later run reads instead of running git. The file is a
//! cache: written without fsync, and anything that does not parse is a miss.

use super::GitError;
use super::local_refs::{LocalRef, for_each_ref};
use crate::util::oid::Oid;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Refs kept in memory across repositories, at most (about 100 bytes each).
const MEMORY_REFS: usize = 500_000;
/// The largest `tables.list` read as a key (a few lines; compaction keeps it short).
const MAX_KEY_BYTES: u64 = 1 << 20;
/// The first line of a cache file.
const FILE_HEADER: &str = "git-push-mirror reftable refs v1";

/// The refs of a repository as one `for-each-ref` listed them, sorted by name.
#[derive(Debug, PartialEq, Eq)]
pub struct Listing {
    key: String,
    refs: Vec<LocalRef>,
}

impl Listing {
    pub fn refs(&self) -> &[LocalRef] {
        &self.refs
    }

    /// Those of `names` that exist.
    pub fn named(&self, names: &[&str]) -> Vec<LocalRef> {
        names
            .iter()
            .filter_map(|name| {
                self.refs
                    .binary_search_by(|r| r.name().cmp(name))
                    .ok()
                    .map(|i| self.refs[i].clone())
            })
            .collect()
    }
}

/// What names a reftable repository's ref state: the content of `reftable/tables.list` (an
/// error for a repository that keeps its refs in files).
pub fn tables_key(git_dir: &Path) -> io::Result<String> {
    key_of(git_dir)
}

fn key_of(git_dir: &Path) -> io::Result<String> {
    crate::util::regular_file::read_regular_text(&git_dir.join("reftable").join("tables.list"), MAX_KEY_BYTES)
        .map(|(text, _)| text)
}

fn memory() -> &'static Mutex<HashMap<PathBuf, Arc<Listing>>> {
    static MEMORY: OnceLock<Mutex<HashMap<PathBuf, Arc<Listing>>>> = OnceLock::new();
    MEMORY.get_or_init(Default::default)
}

/// Every ref under `refs/` of the reftable repository `git_dir`: from memory or `file` while
/// `tables.list` is unchanged, else from git (and then kept in both).
pub fn all_refs(git_dir: &Path, file: Option<&Path>) -> Result<Arc<Listing>, GitError> {
    let key = key_of(git_dir).ok();
    if let Some(key) = &key
        && let Some(hit) = cached(git_dir, file, key)
    {
        return Ok(hit);
    }
    let mut refs = for_each_ref(git_dir, &[])?;
    refs.sort_by(|a, b| a.name().cmp(b.name()));
    let Some(key) = key else {
        // No key to file it under (a git that keeps no tables.list?): not cached.
        return Ok(Arc::new(Listing {
            key: String::new(),
            refs,
        }));
    };
    let listing = Arc::new(Listing { key, refs });
    remember(git_dir, &listing);
    if let Some(file) = file
        && let Err(e) = write_file(file, git_dir, &listing)
    {
        log::debug!("{}: not cached: {e}", file.display());
    }
    Ok(listing)
}

/// Those of `names` that exist, when a listing of the repository's current refs is cached
/// (memory or `file`); `None` otherwise (ask git for just those names).
pub fn refs_named(git_dir: &Path, file: Option<&Path>, names: &[&str]) -> Option<Vec<LocalRef>> {
    let key = key_of(git_dir).ok()?;
    cached(git_dir, file, &key).map(|listing| listing.named(names))
}

fn cached(git_dir: &Path, file: Option<&Path>, key: &str) -> Option<Arc<Listing>> {
    let in_memory = memory()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(git_dir)
        .filter(|listing| listing.key == key)
        .cloned();
    if in_memory.is_some() {
        return in_memory;
    }
    let listing = Arc::new(read_file(file?, git_dir, key)?);
    remember(git_dir, &listing);
    Some(listing)
}

/// Keeps a listing in memory, forgetting others when the bound is reached.
fn remember(git_dir: &Path, listing: &Arc<Listing>) {
    let mut memory = memory().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    memory.remove(git_dir);
    let mut total: usize = memory.values().map(|l| l.refs.len()).sum();
    if listing.refs.len() > MEMORY_REFS {
        return;
    }
    while total + listing.refs.len() > MEMORY_REFS {
        let Some(victim) = memory.keys().next().cloned() else {
            break;
        };
        total -= memory.remove(&victim).map_or(0, |l| l.refs.len());
    }
    memory.insert(git_dir.to_path_buf(), Arc::clone(listing));
}

/// The cache file: a header, the repository, the key's line count and lines, then one ref a
/// line (`<oid> <name>`, or `-> <name>` for a symbolic ref).
fn encode(git_dir: &Path, listing: &Listing) -> String {
    let key_lines: Vec<&str> = listing.key.lines().collect();
    let mut out = String::with_capacity(64 * (listing.refs.len() + key_lines.len() + 3));
    out.push_str(FILE_HEADER);
    out.push('\n');
    out.push_str(&git_dir.to_string_lossy());
    out.push('\n');
    out.push_str(&key_lines.len().to_string());
    out.push('\n');
    for line in key_lines {
        out.push_str(line);
        out.push('\n');
    }
    for r in &listing.refs {
        match r {
            LocalRef::Direct { name, oid } => {
                out.push_str(oid.as_str());
                out.push(' ');
                out.push_str(name);
            }
            LocalRef::Symbolic { name } => {
                out.push_str("-> ");
                out.push_str(name);
            }
        }
        out.push('\n');
    }
    out
}

/// A cache file's listing, if it is whole, of `git_dir`, and filed under `key`.
fn decode(text: &str, git_dir: &Path, key: &str) -> Option<Listing> {
    let mut lines = text.lines();
    if lines.next()? != FILE_HEADER || lines.next()? != git_dir.to_string_lossy() {
        return None;
    }
    let key_lines: usize = lines.next()?.parse().ok()?;
    let stored: Vec<&str> = lines.by_ref().take(key_lines).collect();
    if stored.len() != key_lines || !stored.iter().copied().eq(key.lines()) {
        return None;
    }
    let mut refs = Vec::new();
    for line in lines {
        let (head, name) = line.split_once(' ')?;
        refs.push(match head {
            "->" => LocalRef::Symbolic { name: name.to_string() },
            oid => LocalRef::Direct {
                name: name.to_string(),
                oid: Oid::parse(oid)?,
            },
        });
    }
    // A file cut short by a crash ends without its last newline: refused, not half-read.
    (text.ends_with('\n') && refs.is_sorted_by(|a, b| a.name() < b.name())).then(|| Listing {
        key: key.to_string(),
        refs,
    })
}

fn read_file(file: &Path, git_dir: &Path, key: &str) -> Option<Listing> {
    let (text, _) = crate::util::regular_file::read_regular_text(file, u64::MAX).ok()?;
    decode(&text, git_dir, key)
}

fn write_file(file: &Path, git_dir: &Path, listing: &Listing) -> io::Result<()> {
    let durability = crate::util::fsutil::Durability::Cache;
    crate::util::fsutil::replace_file(file, encode(git_dir, listing).as_bytes(), 0o600, durability)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(key: &str) -> Listing {
        Listing {
            key: key.to_string(),
            refs: vec![
                LocalRef::Symbolic {
                    name: "refs/heads/alias".into(),
                },
                LocalRef::Direct {
                    name: "refs/heads/main".into(),
                    oid: Oid::parse(&"1".repeat(40)).unwrap(),
                },
                LocalRef::Direct {
                    name: "refs/tags/v1".into(),
                    oid: Oid::parse(&"2".repeat(64)).unwrap(),
                },
            ],
        }
    }

    #[test]
    fn a_cache_file_is_used_only_for_its_repository_and_key_and_only_when_whole() {
        let git_dir = Path::new("/srv/git/app.git");
        let key = "0x000000000001-0x000000000002-c5acd020.ref\n0x000000000003-0x000000000003-0a1b2c3d.ref\n";
        let text = encode(git_dir, &listing(key));
        assert_eq!(decode(&text, git_dir, key), Some(listing(key)));
        assert_eq!(decode(&text, Path::new("/srv/git/other.git"), key), None);
        let newer = "0x000000000001-0x000000000004-99999999.ref\n";
        assert_eq!(decode(&text, git_dir, newer), None, "another key is another state");
        assert_eq!(decode(&text[..text.len() - 1], git_dir, key), None, "cut short");
        let cut = &text[..text.rfind("refs/heads/main").unwrap() + 5];
        assert_eq!(decode(cut, git_dir, key), None);
        assert_eq!(decode("", git_dir, key), None);
    }

    #[test]
    fn names_are_looked_up_in_the_sorted_listing() {
        let found = listing("k").named(&["refs/tags/v1", "refs/heads/none", "refs/heads/alias"]);
        assert_eq!(
            found.iter().map(LocalRef::name).collect::<Vec<_>>(),
            ["refs/tags/v1", "refs/heads/alias"]
        );
    }
}
