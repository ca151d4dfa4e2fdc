//! The git side of LFS: finding the LFS pointers that commits reference (`rev-list` piped into
//! `cat-file`, as git-lfs's own pre-push scan does) and uploading objects with git-lfs, which asks
//! the mirror's LFS endpoint with the batch API and uploads only what it asks for.

use super::{GitError, RemoteAccess, Watchdog, git_command, read_in_background, run_with_input, summarize_stderr};
use crate::git::lfs_pointer::{LocalStore, MAX_POINTER_SIZE, Pointer, parse_pointer};
use crate::util::fsutil::{create_private_dirs, write_private};
use crate::util::oid::{ObjectFormat, Oid};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The LFS pointers among the blobs reachable from `tips` and not from `exclude`: the objects a
/// mirror needs to have the tips' history whole, when it already has everything `exclude`
/// reaches. Exclusions the repository does not have are ignored.
pub fn pointers(
    git_dir: &Path,
    tips: &[Oid],
    exclude: &[Oid],
    timeout: Duration,
) -> Result<BTreeSet<Pointer>, GitError> {
    if tips.is_empty() {
        return Ok(BTreeSet::new());
    }
    let small_blobs = small_blobs(git_dir, tips, exclude, timeout)?;
    if small_blobs.is_empty() {
        return Ok(BTreeSet::new());
    }
    read_pointers(git_dir, &small_blobs, timeout)
}

/// Blobs under the pointer size limit reachable from `tips` but not `exclude`:
/// `git rev-list --objects | git cat-file --batch-check`, streamed, so memory
/// stays proportional to the small blobs, not to the history.
fn small_blobs(git_dir: &Path, tips: &[Oid], exclude: &[Oid], timeout: Duration) -> Result<Vec<String>, GitError> {
    let mut revisions = String::new();
    for tip in tips {
        revisions.push_str(&format!("{tip}\n"));
    }
    for oid in exclude {
        revisions.push_str(&format!("^{oid}\n"));
    }
    let mut list = git_command();
    list.arg("--git-dir").arg(git_dir).args([
        "rev-list",
        "--objects",
        "--no-object-names",
        &format!("--filter=blob:limit={MAX_POINTER_SIZE}"),
        "--ignore-missing",
        "--stdin",
    ]);
    let mut check = git_command();
    check.arg("--git-dir").arg(git_dir).args([
        "cat-file",
        "--batch-check=%(objecttype) %(objectsize) %(objectname)",
        "--buffer",
    ]);

    let mut blobs = Vec::new();
    let failure = run_pipeline(list, revisions.into_bytes(), check, timeout, |line| {
        let mut fields = line.splitn(3, ' ');
        if let (Some("blob"), Some(size), Some(oid)) = (fields.next(), fields.next(), fields.next())
            && size.parse::<u64>().is_ok_and(|size| size < MAX_POINTER_SIZE)
        {
            blobs.push(oid.to_string());
        }
    })?;
    match failure {
        None => Ok(blobs),
        Some(stderr) => Err(GitError::Failed(format!(
            "listing the objects of the pushed commits: {}",
            summarize_stderr(&stderr)
        ))),
    }
}

/// Reads `blobs` with `git cat-file --batch` and keeps those that are LFS pointers.
fn read_pointers(git_dir: &Path, blobs: &[String], timeout: Duration) -> Result<BTreeSet<Pointer>, GitError> {
    let mut cmd = git_command();
    cmd.arg("--git-dir").arg(git_dir).args(["cat-file", "--batch"]);
    let input = blobs
        .iter()
        .flat_map(|oid| [oid.as_bytes(), b"\n"])
        .flatten()
        .copied()
        .collect();
    let (success, stdout, stderr) = run_with_input(cmd, Some(input), timeout)?;
    if !success {
        return Err(GitError::Failed(format!(
            "reading small blobs: {}",
            summarize_stderr(&stderr)
        )));
    }
    Ok(parse_batch(&stdout).filter_map(parse_pointer).collect())
}

/// The contents in `git cat-file --batch` output: `<oid> <type> <size>\n<contents>\n` per object.
fn parse_batch(mut output: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let header_end = output.iter().position(|&b| b == b'\n')?;
        let header = std::str::from_utf8(&output[..header_end]).ok()?;
        let size: usize = header.rsplit(' ').next()?.parse().ok()?;
        let start = header_end + 1;
        let contents = output.get(start..start + size)?;
        output = output.get(start + size + 1..).unwrap_or_default();
        Some(contents)
    })
}

/// Runs `first | second` in one process group with `input` on `first`'s stdin, handing each
/// line of `second`'s output to `on_line`; after `timeout` the group is killed. Returns the
/// stderr of the pipeline when either command failed.
fn run_pipeline(
    mut first: Command,
    input: Vec<u8>,
    mut second: Command,
    timeout: Duration,
    mut on_line: impl FnMut(&str),
) -> Result<Option<String>, GitError> {
    let spawn_error = |e: std::io::Error| GitError::Spawn(e.to_string());
    first
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut upstream = first.spawn().map_err(spawn_error)?;
    let group = upstream.id() as libc::pid_t;
    let watchdog = Watchdog::start(group, timeout);
    let pipe = upstream.stdout.take().map(Stdio::from).unwrap_or_else(Stdio::null);
    second
        .stdin(pipe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(group);
    let mut downstream = match second.spawn() {
        Ok(child) => child,
        Err(e) => {
            watchdog.stop();
            let _ = upstream.wait();
            return Err(spawn_error(e));
        }
    };
    // Input from a thread: the pipeline may write a lot before it reads all its input.
    let writer = upstream.stdin.take().map(|mut stdin| {
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let upstream_err = upstream.stderr.take().map(read_in_background);
    let downstream_err = downstream.stderr.take().map(read_in_background);
    if let Some(stdout) = downstream.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(line) => on_line(&line),
                Err(_) => break,
            }
        }
    }
    let statuses = [downstream.wait(), upstream.wait()];
    let timed_out = watchdog.stop();
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let mut stderr = String::new();
    for handle in [upstream_err, downstream_err].into_iter().flatten() {
        stderr.push_str(&String::from_utf8_lossy(&handle.join().unwrap_or_default()));
    }
    if timed_out {
        return Err(GitError::TimedOut(timeout));
    }
    let failed = statuses
        .iter()
        .any(|s| s.as_ref().map_or(true, |s| !s.success() || s.signal().is_some()));
    Ok(failed.then_some(stderr))
}

/// Uploads `objects` from the repository's LFS store to the mirror's LFS endpoint with
/// `git lfs push --object-id`: git-lfs sends their ids and sizes to the batch API and uploads
/// only those the mirror asks for. The endpoint, credentials and SSH command come from `access`
/// (built by `access::auth`). A shared store is shown to git-lfs through a [`StorageView`]. Errors
/// are redacted.
pub fn upload(git_dir: &Path, store: &LocalStore, access: &RemoteAccess, objects: &[Pointer]) -> Result<(), GitError> {
    if objects.is_empty() {
        return Ok(());
    }
    let oids: Vec<&str> = objects.iter().map(|p| p.oid.as_str()).collect();
    let view = match store {
        LocalStore::Repository(_) => None,
        LocalStore::Shared(_) => Some(
            StorageView::new(git_dir, store, &oids)
                .map_err(|e| GitError::Spawn(format!("preparing the LFS objects for git-lfs: {e}")))?,
        ),
    };
    let git_dir = view.as_ref().map_or(git_dir, StorageView::path);
    // The ids go as arguments (they are not secret): `--stdin` needs git-lfs 3.3, and
    // Ubuntu 22.04 ships 3.0.
    for batch in objects.chunks(OIDS_PER_RUN) {
        let bytes = batch.iter().map(|p| p.size).sum();
        let mut cmd = access.lfs_command();
        cmd.arg("--git-dir")
            .arg(git_dir)
            .args(["lfs", "push", "--object-id", &access.url])
            .args(batch.iter().map(|p| p.oid.as_str()))
            // Run where git-lfs finds the repository even if it ignores --git-dir.
            .current_dir(git_dir);
        let (success, _stdout, stderr) = run_with_input(cmd, None, upload_time_limit(access.timeout, bytes))?;
        if !success {
            return Err(upload_failure(access, &stderr));
        }
    }
    Ok(())
}

/// Object ids per `git lfs push`: 260 KB of arguments, far below ARG_MAX.
const OIDS_PER_RUN: usize = 4000;

/// The error for a failed `git lfs push`, redacted.
fn upload_failure(access: &RemoteAccess, stderr: &str) -> GitError {
    if stderr.contains("'lfs' is not a git command") {
        return GitError::Failed(NOT_INSTALLED.to_string());
    }
    let summary = summarize_stderr(&strip_progress(stderr));
    // The endpoint asked for credentials that no helper answered (`Git credentials for URL not
    // found`): ours refused to offer again a password the endpoint rejected, or had none for it.
    let message = match asked_credentials_for(stderr) {
        Some(url) => format!(
            "{} ({summary})",
            super::error::credentials_hint(access, "the LFS endpoint", url)
        ),
        None => summary,
    };
    GitError::Failed(access.redact(&message))
}

/// The URL of git-lfs's `Git credentials for URL not found.`, when it says that.
fn asked_credentials_for(stderr: &str) -> Option<&str> {
    let rest = &stderr[stderr.find("Git credentials for ")? + "Git credentials for ".len()..];
    let line = rest.lines().next()?;
    line.strip_suffix(" not found.")
        .or_else(|| line.strip_suffix(" not found"))
        .map(str::trim)
}

/// A temporary empty git directory whose LFS store (`lfs/objects/ab/cd/<oid>`) links to the
/// objects of a shared store, for git-lfs to upload from. (Not `lfs.storage`: configuration
/// given to git-lfs reaches the other side of a file:// push too.) It includes the
/// repository's configuration, so git-lfs sees its `http.*` settings (CA files, proxies).
struct StorageView {
    dir: tempfile::TempDir,
}

impl StorageView {
    fn new(git_dir: &Path, store: &LocalStore, oids: &[&str]) -> std::io::Result<StorageView> {
        let dir = crate::util::fsutil::private_temp_dir("lfs")?;
        let git_dir = std::path::absolute(git_dir)?;
        // git-lfs reads no objects: the object format does not matter here.
        write_private(
            &dir.path().join("config"),
            &super::view_config(&git_dir, ObjectFormat::Sha1),
        )?;
        create_private_dirs(&dir.path().join("objects"))?;
        create_private_dirs(&dir.path().join("refs"))?;
        write_private(&dir.path().join("HEAD"), b"ref: refs/heads/none\n")?;
        for oid in oids {
            let link = LocalStore::Repository(dir.path().join("lfs/objects")).object_path(oid);
            if let Some(parent) = link.parent() {
                create_private_dirs(parent)?;
            }
            // A hard link where the filesystems allow: a file:// mirror's git-lfs links what it
            // is given, and must get the object, not a symbolic link to another server's store.
            let target = store.object_path(oid);
            std::fs::hard_link(&target, &link).or_else(|_| std::os::unix::fs::symlink(&target, &link))?;
        }
        Ok(StorageView { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The slowest upload rate the time limit allows for: 1 MiB/s.
const SLOWEST_UPLOAD_BYTES_PER_SECOND: u64 = 1024 * 1024;

/// How long an upload of `bytes` may take: the mirror's `timeout` plus the time the bytes take
/// at [`SLOWEST_UPLOAD_BYTES_PER_SECOND`], so a large first upload is not killed over and over
/// by a limit sized for pushes. (git-lfs itself gives up on a connection idle for 30 s.)
fn upload_time_limit(timeout: Duration, bytes: u64) -> Duration {
    timeout.saturating_add(Duration::from_secs(bytes / SLOWEST_UPLOAD_BYTES_PER_SECOND))
}

/// git-lfs's version line, or why it cannot run.
pub fn version() -> Result<String, GitError> {
    let mut cmd = git_command();
    cmd.args(["lfs", "version"]);
    let (success, stdout, _stderr) = run_with_input(cmd, None, Duration::from_secs(30))?;
    if !success {
        return Err(GitError::Failed(NOT_INSTALLED.to_string()));
    }
    Ok(String::from_utf8_lossy(&stdout).trim().to_string())
}

const NOT_INSTALLED: &str =
    "git-lfs is not installed (Debian/Ubuntu: apt install git-lfs); it is needed to upload LFS objects";

/// Drops git-lfs's progress meter lines (rewritten with `\r`) from its stderr.
fn strip_progress(stderr: &str) -> String {
    stderr
        .split(['\n', '\r'])
        .filter(|l| !l.starts_with("Uploading LFS objects:"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_lfs_endpoint_asking_for_credentials_is_told_by_what_it_was_offered() {
        // Captured from git-lfs 3.3 pushing to an endpoint that answers 401.
        let stderr = "fatal: could not read Username for 'http://127.0.0.1:18765': terminal prompts disabled\n\
                      batch response: Git credentials for http://127.0.0.1:18765/lfs not found.\n";
        assert_eq!(asked_credentials_for(stderr), Some("http://127.0.0.1:18765/lfs"));
        let mut access = RemoteAccess::new("file:///srv/m.git", std::time::Duration::from_secs(1), &[]);
        access.mirror = "backup".into();
        let none = upload_failure(&access, stderr).to_string();
        assert!(
            none.starts_with(
                "the LFS endpoint (http://127.0.0.1:18765) asks for a user name and password, and the mirror has none"
            ),
            "{none}"
        );
        assert!(
            !none.contains("refused"),
            "nothing was offered, so nothing was refused: {none}"
        );
        access.credential_origins = vec!["http://127.0.0.1:18765".into()];
        access.secrets = vec!["lfs-s3cret".into()];
        let refused = upload_failure(&access, stderr).to_string();
        assert!(
            refused.starts_with("the LFS endpoint refused the user name and password/token"),
            "{refused}"
        );
        access.credential_origins = vec!["https://git.example.com".into()];
        let elsewhere = upload_failure(&access, stderr).to_string();
        assert!(
            elsewhere.contains("offered only to https://git.example.com"),
            "{elsewhere}"
        );
        assert_eq!(
            asked_credentials_for("batch response: Fatal error: Server error\n"),
            None
        );
    }

    /// Runs git in `dir` with a fixed identity; returns trimmed stdout.
    fn git(dir: &Path, args: &[&str]) -> String {
        let out = git_command()
            .current_dir(dir)
            .args(["-c", "user.name=T", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn commit_files(dir: &Path, files: &[(&str, String)]) -> Oid {
        for (name, content) in files {
            std::fs::write(dir.join(name), content).unwrap();
            git(dir, &["add", name]);
        }
        git(dir, &["commit", "-q", "-m", "c"]);
        Oid::parse(&git(dir, &["rev-parse", "HEAD"])).unwrap()
    }

    fn pointer_file(oid: &str, size: u64) -> String {
        format!("version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n")
    }

    #[test]
    fn pointers_are_those_of_the_new_commits_only() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path();
        git(work, &["init", "-q"]);
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let first = commit_files(
            work,
            &[
                ("a.bin", pointer_file(&a, 5)),
                ("big.txt", "x".repeat(5000)),
                ("small.txt", "hello\n".to_string()),
            ],
        );
        let second = commit_files(work, &[("b.bin", pointer_file(&b, 7))]);
        let git_dir = work.join(".git");
        let limit = Duration::from_secs(60);
        let found = |tips: &[Oid], exclude: &[Oid]| -> Vec<String> {
            pointers(&git_dir, tips, exclude, limit)
                .unwrap()
                .into_iter()
                .map(|p| p.oid)
                .collect()
        };
        assert_eq!(found(std::slice::from_ref(&second), &[]), vec![a.clone(), b.clone()]);
        assert_eq!(
            found(std::slice::from_ref(&second), std::slice::from_ref(&first)),
            vec![b.clone()]
        );
        let unknown = Oid::parse(&"1".repeat(40)).unwrap();
        assert_eq!(
            found(std::slice::from_ref(&second), &[first.clone(), unknown.clone()]),
            vec![b],
            "an exclusion the repository lacks (a mirror's foreign commit) is ignored"
        );
        assert_eq!(
            found(&[second.clone(), unknown.clone()], std::slice::from_ref(&first)).len(),
            1,
            "so is a tip it lacks"
        );
        assert!(found(&[], &[]).is_empty());
    }

    #[test]
    fn batch_output_is_split_by_the_sizes_in_the_headers() {
        let out = b"aaaa blob 3\na\nb\nbbbb blob 0\n\ncccc blob 2\nxy\n";
        let parts: Vec<&[u8]> = parse_batch(out).collect();
        assert_eq!(parts, vec![&b"a\nb"[..], b"", b"xy"]);
    }

    #[test]
    fn truncated_batch_output_stops_cleanly() {
        let parts: Vec<&[u8]> = parse_batch(b"aaaa blob 10\nshort").collect();
        assert!(parts.is_empty());
    }

    #[test]
    fn large_uploads_get_time_for_their_bytes() {
        let ten_minutes = Duration::from_secs(600);
        assert_eq!(upload_time_limit(ten_minutes, 1000), ten_minutes);
        assert_eq!(
            upload_time_limit(ten_minutes, 5 << 30),
            Duration::from_secs(600 + 5 * 1024)
        );
        assert_eq!(upload_time_limit(Duration::MAX, u64::MAX), Duration::MAX);
    }

    #[test]
    fn progress_lines_are_dropped() {
        let stderr = "Uploading LFS objects:   0% (0/1), 0 B | 0 B/s\rUploading LFS objects: 0% (0/1)\nbatch response: Authorization error\n";
        assert_eq!(strip_progress(stderr).trim(), "batch response: Authorization error");
    }
}
