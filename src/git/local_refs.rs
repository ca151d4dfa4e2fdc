//! A repository's own refs and HEAD read by git itself, for ref storage gix cannot read yet
//! (reftable: `git init --ref-format=reftable`, `git refs migrate`, Git 3.0's default). One
//! `git for-each-ref` or `git rev-parse` per question; the files backend stays on gix.

use super::{GitError, git_command, run_with_timeout, summarize_stderr};
use crate::util::oid::Oid;
use std::path::Path;
use std::time::Duration;

/// How long a local read may take: the repository is on this machine.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(300);

/// Bytes of ref names given to one `for-each-ref`: far below ARG_MAX.
const MAX_NAME_BYTES: usize = 256 * 1024;

/// One ref as `for-each-ref` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalRef {
    Direct { name: String, oid: Oid },
    Symbolic { name: String },
}

/// Every ref under `refs/` (`names` empty), or those of `names` that exist.
pub fn for_each_ref(git_dir: &Path, names: &[&str]) -> Result<Vec<LocalRef>, GitError> {
    if names.is_empty() {
        return list(git_dir, &["refs/"]);
    }
    let mut refs = Vec::new();
    let mut batch: Vec<&str> = Vec::new();
    let mut bytes = 0;
    for name in names {
        if !batch.is_empty() && bytes + name.len() > MAX_NAME_BYTES {
            refs.extend(exactly(list(git_dir, &batch)?, &batch));
            batch.clear();
            bytes = 0;
        }
        batch.push(name);
        bytes += name.len() + 1;
    }
    refs.extend(exactly(list(git_dir, &batch)?, &batch));
    Ok(refs)
}

/// `for-each-ref` matches a name and everything below it (`refs/heads/a` also finds
/// `refs/heads/a/b`): keep the names asked for.
fn exactly(refs: Vec<LocalRef>, names: &[&str]) -> impl Iterator<Item = LocalRef> {
    let names: std::collections::BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
    refs.into_iter().filter(move |r| names.contains(r.name()))
}

impl LocalRef {
    pub fn name(&self) -> &str {
        match self {
            LocalRef::Direct { name, .. } | LocalRef::Symbolic { name } => name,
        }
    }
}

fn list(git_dir: &Path, patterns: &[&str]) -> Result<Vec<LocalRef>, GitError> {
    let mut cmd = git_command();
    cmd.arg("--git-dir")
        .arg(git_dir)
        .args(["for-each-ref", "--format=%(objectname)%00%(symref)%00%(refname)", "--"])
        .args(patterns);
    let finished = run_with_timeout(cmd, LOCAL_TIMEOUT)?;
    if !finished.success {
        return Err(local_failure("reading refs", &finished.stderr));
    }
    Ok(parse_for_each_ref(&finished.stdout))
}

/// The error for a failed local read; a git too old for the repository's format says so.
pub(super) fn local_failure(what: &str, stderr: &str) -> GitError {
    let summary = summarize_stderr(stderr);
    if stderr.contains("refstorage") {
        return GitError::Failed(format!(
            "{what}: {summary} (hint: this repository keeps its refs in reftable, which needs git 2.45 or newer \
             on the PATH of the user the worker runs as)"
        ));
    }
    GitError::Failed(format!("{what}: {summary}"))
}

/// Parses `%(objectname)NUL%(symref)NUL%(refname)` lines.
fn parse_for_each_ref(output: &str) -> Vec<LocalRef> {
    output
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\0');
            let (oid, symref, name) = (fields.next()?, fields.next()?, fields.next()?);
            let name = name.to_string();
            if !symref.is_empty() {
                Some(LocalRef::Symbolic { name })
            } else {
                Some(LocalRef::Direct {
                    name,
                    oid: Oid::parse(oid)?,
                })
            }
        })
        .collect()
}

/// The commit HEAD resolves to, or `None` when HEAD is unborn or not a commit.
pub fn head_commit(git_dir: &Path) -> Result<Option<Oid>, GitError> {
    let mut cmd = git_command();
    cmd.arg("--git-dir")
        .arg(git_dir)
        .args(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]);
    let finished = run_with_timeout(cmd, LOCAL_TIMEOUT)?;
    if !finished.success {
        // `--quiet` fails silently for an unborn HEAD; anything on stderr is a real problem.
        return match finished.stderr.trim() {
            "" => Ok(None),
            stderr => Err(local_failure("reading HEAD", stderr)),
        };
    }
    Ok(Oid::parse(finished.stdout.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_each_ref_output_splits_direct_and_symbolic_refs_of_either_format() {
        let sha1 = "1".repeat(40);
        let sha256 = "2".repeat(64);
        let out = format!(
            "{sha1}\0\0refs/heads/main\n{sha1}\0refs/heads/main\0refs/heads/alias\n{sha256}\0\0refs/tags/v1\nbroken line\n"
        );
        assert_eq!(
            parse_for_each_ref(&out),
            vec![
                LocalRef::Direct {
                    name: "refs/heads/main".into(),
                    oid: Oid::parse(&sha1).unwrap()
                },
                LocalRef::Symbolic {
                    name: "refs/heads/alias".into()
                },
                LocalRef::Direct {
                    name: "refs/tags/v1".into(),
                    oid: Oid::parse(&sha256).unwrap()
                },
            ]
        );
    }

    #[test]
    fn only_the_names_asked_for_are_kept() {
        let oid = Oid::parse(&"1".repeat(40)).unwrap();
        let found = vec![
            LocalRef::Direct {
                name: "refs/heads/a".into(),
                oid: oid.clone(),
            },
            LocalRef::Direct {
                name: "refs/heads/a/b".into(),
                oid,
            },
        ];
        let kept: Vec<LocalRef> = exactly(found, &["refs/heads/a"]).collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].name(), "refs/heads/a");
    }
}
