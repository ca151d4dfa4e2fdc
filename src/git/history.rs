//! What a push would carry, asked of git: the size of the objects between what a mirror has and
//! new values, and the first-parent states a branch went through (to push a big history in steps).

use super::{GitError, git_command, run_with_input, summarize_stderr};
use crate::util::oid::Oid;
use std::path::Path;
use std::time::Duration;

/// Bytes on disk of the objects reachable from `tips` and not from `haves`: what a push of
/// `tips` to a mirror holding `haves` would send, about (`git rev-list --disk-usage`: git ≥ 2.31).
/// `haves` unknown locally are ignored.
pub fn disk_usage(git_dir: &Path, tips: &[&Oid], haves: &[&Oid], timeout: Duration) -> Result<u64, GitError> {
    if tips.is_empty() {
        return Ok(0);
    }
    let out = rev_list(git_dir, &["--objects", "--disk-usage"], tips, haves, timeout)?;
    out.trim()
        .parse()
        .map_err(|_| GitError::Failed(format!("git rev-list --disk-usage printed {:?}", out.trim())))
}

/// The states a branch had on its way to `to`, oldest first, ending with `to` itself: the
/// commits of its first-parent history that the mirror lacks. With `from` (the mirror's value,
/// to be fast-forwarded), only states that descend from it, so that each step is a fast-forward.
pub fn first_parent_states(
    git_dir: &Path,
    to: &Oid,
    from: Option<&Oid>,
    haves: &[&Oid],
    timeout: Duration,
) -> Result<Vec<Oid>, GitError> {
    let out = match from {
        Some(from) => rev_list(
            git_dir,
            &["--first-parent", "--ancestry-path", "--reverse"],
            &[to],
            &[from],
            timeout,
        )?,
        None => rev_list(git_dir, &["--first-parent", "--reverse"], &[to], haves, timeout)?,
    };
    out.lines()
        .map(|line| Oid::parse(line).ok_or_else(|| GitError::Failed(format!("git rev-list printed {line:?}"))))
        .collect()
}

/// `git rev-list OPTIONS --stdin` with `tips`, then `--not` and `haves` on its input.
fn rev_list(
    git_dir: &Path,
    options: &[&str],
    tips: &[&Oid],
    haves: &[&Oid],
    timeout: Duration,
) -> Result<String, GitError> {
    let mut input = String::with_capacity((tips.len() + haves.len()) * 65 + 8);
    for oid in tips {
        input.push_str(oid.as_str());
        input.push('\n');
    }
    input.push_str("--not\n");
    for oid in haves {
        input.push_str(oid.as_str());
        input.push('\n');
    }
    let mut cmd = git_command();
    cmd.arg("--git-dir")
        .arg(git_dir)
        .arg("rev-list")
        .args(options)
        .args(["--ignore-missing", "--stdin"]);
    let (success, stdout, stderr) = run_with_input(cmd, Some(input.into_bytes()), timeout)?;
    if !success {
        return Err(GitError::Failed(summarize_stderr(&stderr)));
    }
    String::from_utf8(stdout).map_err(|_| GitError::Failed("git rev-list printed something that is not UTF-8".into()))
}
