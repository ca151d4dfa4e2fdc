//! `HEAD`, the default branch, read and set with `git symbolic-ref` on repositories of this
//! machine: the repository's own (whatever its ref storage) and a local (`file://`) mirror's,
//! which follows it (docs/mirror-side.md).

use super::{GitError, git_command, run_with_timeout, summarize_stderr};
use std::path::Path;
use std::time::Duration;

/// How long a local `symbolic-ref` may take.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(60);

/// The branch `HEAD` points at (`refs/heads/main`), or `None` when it is detached or points
/// elsewhere than a branch.
pub fn head_branch(git_dir: &Path) -> Result<Option<String>, GitError> {
    let mut cmd = git_command();
    cmd.arg("--git-dir").arg(git_dir).args(["symbolic-ref", "-q", "HEAD"]);
    let finished = run_with_timeout(cmd, LOCAL_TIMEOUT)?;
    if !finished.success {
        // `-q`: a detached HEAD exits 1 silently; anything said is a real error.
        return match finished.stderr.trim() {
            "" => Ok(None),
            words => Err(GitError::Failed(summarize_stderr(words))),
        };
    }
    let target = finished.stdout.trim();
    Ok(target.starts_with("refs/heads/").then(|| target.to_string()))
}

/// Points `HEAD` of the repository at `git_dir` (a local mirror) at `branch` (`refs/heads/X`).
pub fn set_head(git_dir: &Path, branch: &str) -> Result<(), GitError> {
    let mut cmd = git_command();
    cmd.arg("--git-dir").arg(git_dir).args(["symbolic-ref", "HEAD", branch]);
    let finished = run_with_timeout(cmd, LOCAL_TIMEOUT)?;
    if finished.success {
        Ok(())
    } else {
        Err(GitError::Failed(summarize_stderr(&finished.stderr)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_is_read_and_set() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("r.git");
        let out = git_command()
            .args(["init", "-q", "--bare", "-b", "develop"])
            .arg(&repo)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(head_branch(&repo).unwrap().as_deref(), Some("refs/heads/develop"));
        set_head(&repo, "refs/heads/trunk").unwrap();
        assert_eq!(head_branch(&repo).unwrap().as_deref(), Some("refs/heads/trunk"));
        assert!(set_head(&repo, "not a ref").is_err());
    }
}
