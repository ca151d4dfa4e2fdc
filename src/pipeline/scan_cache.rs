//! What the drift scan learned about a repository's refs, kept (one small file per repository
//! in the state directory) with a stamp of its ref storage, so an idle scan of an unchanged
//! repository reads no refs at all: it compares the stamp and reuses the fingerprints.
//!
//! The stamp: for reftable storage, the content of `reftable/tables.list` (it names tables that
//! every ref update adds, never the same twice: exact). For files, the modification time, size
//! and inode of `packed-refs`, of every directory under `refs/` and of every loose ref file: git
//! replaces a ref by renaming a new file into its directory, which changes the directory; a file
//! rewritten in place (a backup restored with `cp`) changes its own. Timestamps have a
//! granularity, so a change in the same tick as the stamp was taken would not show: like git's
//! index, a stamp with a time less than one second older than the moment it was written is not
//! trusted (the scan reads the refs again, and writes a stamp that will be).
//!
//! The file is a cache: written without fsync; anything that does not parse, or belongs to
//! another repository, is a miss.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first line of a cache file.
const HEADER: &str = "git-push-mirror scan cache v1";
/// How much older than the moment it was written a timestamp must be to be trusted.
const RACY: Duration = Duration::from_secs(1);
/// Loose refs beyond which a stamp is not worth keeping (statting them costs about what reading
/// them does).
const MAX_STAMPED_FILES: usize = 10_000;

/// A stamp of a repository's ref storage (see the module's documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stamp {
    Reftable { tables: String },
    Files { entries: Vec<Stamped> },
}

/// One file or directory of a files-backend stamp: path relative to the repository, and what
/// changes when it does. `None`: absent (`packed-refs` may be).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamped {
    path: String,
    stat: Option<(i128, u64, u64)>,
}

/// A stamp and the fingerprints of in-scope refs computed at it, by mirror scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanCache {
    repo: PathBuf,
    written: SystemTime,
    stamp: Stamp,
    fingerprints: BTreeMap<String, String>,
}

fn stat_of(path: &Path) -> Option<(i128, u64, u64)> {
    let meta = fs::symlink_metadata(path).ok()?;
    let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    Some((mtime, meta.size(), meta.ino()))
}

/// The stamp of `repo`'s ref storage now; `None` when it cannot be taken (unreadable, or too many
/// loose refs to be worth it).
pub fn stamp(repo: &Path) -> Option<Stamp> {
    if let Ok(tables) = crate::git::ref_cache::tables_key(repo) {
        return Some(Stamp::Reftable { tables });
    }
    let mut entries = vec![Stamped {
        path: "packed-refs".to_string(),
        stat: stat_of(&repo.join("packed-refs")),
    }];
    let mut dirs = vec![PathBuf::from("refs")];
    while let Some(dir) = dirs.pop() {
        let full = repo.join(&dir);
        entries.push(Stamped {
            path: dir.to_str()?.to_string(),
            stat: Some(stat_of(&full)?),
        });
        for entry in fs::read_dir(&full).ok()? {
            let entry = entry.ok()?;
            let rel = dir.join(entry.file_name());
            if entry.file_type().ok()?.is_dir() {
                dirs.push(rel);
            } else {
                entries.push(Stamped {
                    path: rel.to_str()?.to_string(),
                    stat: Some(stat_of(&entry.path())?),
                });
                if entries.len() > MAX_STAMPED_FILES {
                    return None;
                }
            }
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Some(Stamp::Files { entries })
}

impl Stamp {
    /// Whether `repo`'s ref storage is still as stamped (for a files stamp: each path stamped,
    /// statted again; a file or directory added or removed changed its directory).
    fn holds(&self, repo: &Path) -> bool {
        match self {
            Stamp::Reftable { tables } => crate::git::ref_cache::tables_key(repo).is_ok_and(|now| now == *tables),
            Stamp::Files { entries } => entries.iter().all(|e| stat_of(&repo.join(&e.path)) == e.stat),
        }
    }

    /// Whether every time in it is older than `written` by [`RACY`] (a reftable stamp has none).
    fn settled_before(&self, written: SystemTime) -> bool {
        let Stamp::Files { entries } = self else { return true };
        let Ok(written) = written.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let limit = i128::try_from(written.saturating_sub(RACY).as_nanos()).unwrap_or(i128::MAX);
        entries.iter().all(|e| e.stat.is_none_or(|(mtime, _, _)| mtime < limit))
    }
}

impl ScanCache {
    pub fn new(repo: &Path, stamp: Stamp, fingerprints: BTreeMap<String, String>) -> ScanCache {
        ScanCache {
            repo: repo.to_path_buf(),
            written: SystemTime::now(),
            stamp,
            fingerprints,
        }
    }

    /// The cached fingerprints of `repo`, when its refs are as they were stamped and the stamp
    /// can be trusted.
    pub fn fingerprints_if_unchanged(&self, repo: &Path) -> Option<&BTreeMap<String, String>> {
        (self.repo == repo && self.stamp.settled_before(self.written) && self.stamp.holds(repo))
            .then_some(&self.fingerprints)
    }

    pub fn stamp(&self) -> &Stamp {
        &self.stamp
    }

    pub fn fingerprints(&self) -> &BTreeMap<String, String> {
        &self.fingerprints
    }

    pub fn read(file: &Path) -> Option<ScanCache> {
        decode(&fs::read_to_string(file).ok()?)
    }

    /// Written without fsync: a cache.
    pub fn write(&self, file: &Path) -> std::io::Result<()> {
        let durability = crate::util::fsutil::Durability::Cache;
        crate::util::fsutil::replace_file(file, self.encode().as_bytes(), 0o600, durability)
    }

    fn encode(&self) -> String {
        let written = self.written.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        let mut out = format!("{HEADER}\n{}\n{written}\n", self.repo.display());
        for (scope, fingerprint) in &self.fingerprints {
            out.push_str(&format!("fingerprint {scope} {fingerprint}\n"));
        }
        match &self.stamp {
            Stamp::Reftable { tables } => {
                for line in tables.lines() {
                    out.push_str(&format!("table {line}\n"));
                }
            }
            Stamp::Files { entries } => {
                for e in entries {
                    match e.stat {
                        Some((mtime, size, ino)) => out.push_str(&format!("file {mtime} {size} {ino} {}\n", e.path)),
                        None => out.push_str(&format!("absent {}\n", e.path)),
                    }
                }
            }
        }
        out.push_str("end\n");
        out
    }
}

fn decode(text: &str) -> Option<ScanCache> {
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let repo = PathBuf::from(lines.next()?);
    let written = UNIX_EPOCH + Duration::from_nanos(u64::try_from(lines.next()?.parse::<u128>().ok()?).ok()?);
    let mut fingerprints = BTreeMap::new();
    let mut tables: Option<String> = None;
    let mut entries: Option<Vec<Stamped>> = None;
    let mut ended = false;
    for line in lines.by_ref() {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "fingerprint" => {
                let (scope, fingerprint) = rest.split_once(' ')?;
                fingerprints.insert(scope.to_string(), fingerprint.to_string());
            }
            "table" => tables.get_or_insert_with(String::new).push_str(&format!("{rest}\n")),
            "file" => {
                let mut fields = rest.splitn(4, ' ');
                let stat = (
                    fields.next()?.parse().ok()?,
                    fields.next()?.parse().ok()?,
                    fields.next()?.parse().ok()?,
                );
                let path = fields.next()?.to_string();
                entries
                    .get_or_insert_with(Vec::new)
                    .push(Stamped { path, stat: Some(stat) });
            }
            "absent" => entries.get_or_insert_with(Vec::new).push(Stamped {
                path: rest.to_string(),
                stat: None,
            }),
            "end" => {
                ended = true;
                break;
            }
            _ => return None,
        }
    }
    let stamp = match (tables, entries) {
        (Some(tables), None) => Stamp::Reftable { tables },
        (None, Some(entries)) => Stamp::Files { entries },
        _ => return None,
    };
    (ended && lines.next().is_none()).then_some(ScanCache {
        repo,
        written,
        stamp,
        fingerprints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("refs/heads/feature")).unwrap();
        fs::create_dir_all(dir.path().join("refs/tags")).unwrap();
        fs::write(dir.path().join("refs/heads/main"), "1\n").unwrap();
        fs::write(dir.path().join("packed-refs"), "# pack-refs\n").unwrap();
        dir
    }

    /// Sets every time under `path` ten seconds back, as for refs that changed a while ago.
    fn age(path: &Path) {
        let past = SystemTime::now() - Duration::from_secs(10);
        if path.is_dir() {
            for entry in fs::read_dir(path).unwrap() {
                age(&entry.unwrap().path());
            }
        }
        fs::File::open(path).unwrap().set_modified(past).unwrap();
    }

    fn cache_of(repo: &Path) -> ScanCache {
        let fingerprints = BTreeMap::from([("scope".to_string(), "fp".to_string())]);
        ScanCache::new(repo, stamp(repo).unwrap(), fingerprints)
    }

    #[test]
    fn a_settled_stamp_holds_until_a_ref_changes_in_any_way() {
        let repo = files_repo();
        let r = repo.path();
        let changes: [&dyn Fn(); 5] = [
            // git's way: a new file renamed over the ref.
            &|| {
                fs::write(r.join("refs/heads/main.lock"), "2\n").unwrap();
                fs::rename(r.join("refs/heads/main.lock"), r.join("refs/heads/main")).unwrap();
            },
            // A restore that rewrites the file in place.
            &|| fs::write(r.join("refs/heads/main"), "3\n").unwrap(),
            // A new ref in a nested directory, and its removal.
            &|| fs::write(r.join("refs/heads/feature/x"), "4\n").unwrap(),
            &|| fs::remove_file(r.join("refs/heads/feature/x")).unwrap(),
            &|| fs::write(r.join("packed-refs"), "# pack-refs\n5 refs/tags/v1\n").unwrap(),
        ];
        for (i, change) in changes.iter().enumerate() {
            age(r);
            let cache = cache_of(r);
            assert!(cache.fingerprints_if_unchanged(r).is_some(), "before change {i}");
            assert!(cache.fingerprints_if_unchanged(Path::new("/elsewhere")).is_none());
            change();
            assert!(cache.fingerprints_if_unchanged(r).is_none(), "change {i} went unseen");
        }
    }

    #[test]
    fn a_stamp_taken_within_a_second_of_a_change_is_not_trusted() {
        let repo = files_repo();
        let fresh = ScanCache::new(repo.path(), stamp(repo.path()).unwrap(), BTreeMap::new());
        assert!(fresh.fingerprints_if_unchanged(repo.path()).is_none(), "racy");
    }

    #[test]
    fn cache_files_round_trip_and_a_cut_one_is_a_miss() {
        let repo = files_repo();
        let cache = cache_of(repo.path());
        let text = cache.encode();
        assert_eq!(decode(&text), Some(cache.clone()));
        assert_eq!(decode(&text[..text.len() - 4]), None);
        assert_eq!(decode(""), None);
        let reftable = ScanCache::new(
            repo.path(),
            Stamp::Reftable {
                tables: "0x01-0x02-aa.ref\n0x03-0x03-bb.ref\n".to_string(),
            },
            BTreeMap::new(),
        );
        assert_eq!(decode(&reftable.encode()), Some(reftable));
    }
}
