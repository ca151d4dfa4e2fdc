//! Group commit: many files replaced together and made durable together. Each file is written
//! beside its destination, the writes are flushed with fsyncs issued at the same time from a few
//! threads (the filesystem's journal folds concurrent fsyncs into few commits), then each file is
//! renamed over its destination and each directory is flushed once. A crash at any instant
//! leaves every destination whole: its old contents or its new ones, as
//! [`crate::util::fsutil::replace_file`] does for one file, at a fraction of the cost per file
//! when there are many.

use crate::util::fsutil::{fsync_dir, unique_name};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Threads issuing fsyncs at once: enough for the journal to batch them, few enough to be cheap.
const SYNC_THREADS: usize = 16;

/// One file written beside its destination, not yet visible under its name.
struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
    file: File,
}

/// Files replaced together (see the module's documentation). Files staged and never committed
/// are removed when it is dropped.
#[derive(Default)]
pub struct GroupCommit {
    staged: Vec<Staged>,
}

impl GroupCommit {
    pub fn new() -> GroupCommit {
        GroupCommit::default()
    }

    /// How many files are staged.
    pub fn len(&self) -> usize {
        self.staged.len()
    }

    pub fn is_empty(&self) -> bool {
        self.staged.is_empty()
    }

    /// Writes `bytes` to a new file beside `dest` (mode `mode`); [`Self::commit`] puts it there.
    pub fn stage(&mut self, dest: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        let dir = dest.parent().ok_or_else(|| io::Error::other("path has no directory"))?;
        let file_name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = dir.join(unique_name(&format!(".{file_name}."), ".tmp"));
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        if let Err(e) = file.write_all(bytes) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.staged.push(Staged {
            tmp,
            dest: dest.to_path_buf(),
            file,
        });
        Ok(())
    }

    /// Makes every staged file durable under its name: fsyncs of the files, renames, one fsync
    /// per directory. On an error, files not yet renamed are removed and keep their old contents.
    pub fn commit(mut self) -> io::Result<()> {
        let staged = std::mem::take(&mut self.staged);
        let synced = concurrently(&staged, |s| s.file.sync_all());
        if let Err(e) = synced {
            remove_temporaries(&staged);
            return Err(e);
        }
        let mut dirs = BTreeSet::new();
        for (i, s) in staged.iter().enumerate() {
            if let Err(e) = fs::rename(&s.tmp, &s.dest) {
                remove_temporaries(&staged[i..]);
                return Err(e);
            }
            if let Some(dir) = s.dest.parent() {
                dirs.insert(dir.to_path_buf());
            }
        }
        let dirs: Vec<PathBuf> = dirs.into_iter().collect();
        concurrently(&dirs, |dir| fsync_dir(dir))
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        remove_temporaries(&self.staged);
    }
}

fn remove_temporaries(staged: &[Staged]) {
    for s in staged {
        let _ = fs::remove_file(&s.tmp);
    }
}

/// Runs `each` on every item, from up to [`SYNC_THREADS`] threads at once; the first error.
fn concurrently<T: Sync>(items: &[T], each: impl Fn(&T) -> io::Result<()> + Sync) -> io::Result<()> {
    if items.len() <= 1 {
        return items.iter().try_for_each(each);
    }
    let threads = items.len().min(SYNC_THREADS);
    std::thread::scope(|scope| {
        let each = &each;
        let workers: Vec<_> = (0..threads)
            .map(|first| scope.spawn(move || items.iter().skip(first).step_by(threads).try_for_each(each)))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(io::Error::other("an fsync thread panicked")))
            })
            .collect::<io::Result<Vec<()>>>()
            .map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_files_appear_only_when_committed_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..40)
            .map(|i| {
                let sub = dir.path().join(format!("d{}", i % 7));
                fs::create_dir_all(&sub).unwrap();
                sub.join(format!("f{i}"))
            })
            .collect();
        fs::write(&paths[0], b"old").unwrap();
        let mut commit = GroupCommit::new();
        for (i, path) in paths.iter().enumerate() {
            commit.stage(path, format!("new {i}").as_bytes(), 0o600).unwrap();
        }
        assert_eq!(commit.len(), 40);
        assert_eq!(
            fs::read(&paths[0]).unwrap(),
            b"old",
            "nothing visible before the commit"
        );
        assert!(!paths[1].exists());
        commit.commit().unwrap();
        for (i, path) in paths.iter().enumerate() {
            assert_eq!(fs::read_to_string(path).unwrap(), format!("new {i}"));
        }
        let left: Vec<_> = walk(dir.path())
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }

    #[test]
    fn an_abandoned_commit_leaves_the_old_files_and_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, b"old").unwrap();
        let mut commit = GroupCommit::new();
        commit.stage(&path, b"new", 0o600).unwrap();
        drop(commit);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(walk(dir.path()), vec![path.clone()]);
        // A destination whose directory is gone fails the commit and leaves no temporary file.
        let mut commit = GroupCommit::new();
        commit.stage(&path, b"new", 0o600).unwrap();
        let gone = dir.path().join("gone");
        fs::create_dir(&gone).unwrap();
        commit.stage(&gone.join("x"), b"x", 0o600).unwrap();
        fs::remove_dir_all(&gone).unwrap();
        assert!(commit.commit().is_err());
        assert_eq!(walk(dir.path()), vec![path.clone()]);
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path);
            }
        }
        found.sort();
        found
    }
}
