//! `ls-remote`: the refs a mirror has, and its object format, read without fetching anything.

use super::{RemoteAccess, error::GitError, process::run_with_timeout};
use crate::util::oid::{ObjectFormat, Oid};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The refs observed on a mirror.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RemoteRefs {
    pub direct: BTreeMap<String, Oid>,
    pub symbolic: BTreeSet<String>,
    /// What the mirror's `HEAD` points at (`refs/heads/main`): its default branch, when it says.
    pub head: Option<String>,
}

/// Parses `git ls-remote --symref` output.
pub fn parse_ls_remote(output: &str) -> RemoteRefs {
    let mut refs = RemoteRefs::default();
    for line in output.lines() {
        let Some((left, name)) = line.split_once('\t') else {
            continue;
        };
        if let Some(target) = left.strip_prefix("ref: ") {
            if name == "HEAD" {
                refs.head = Some(target.to_string());
            }
            refs.symbolic.insert(name.to_string());
        } else if name.ends_with("^{}") {
            continue;
        } else if let Some(oid) = Oid::parse(left) {
            refs.direct.insert(name.to_string(), oid);
        }
    }
    for name in &refs.symbolic {
        refs.direct.remove(name);
    }
    refs
}

/// Lists the mirror's refs matching `patterns` (git's ls-remote patterns;
/// empty: all refs), as the repository at `git_dir` sees it: its own git
/// configuration applies (`http.sslCAInfo`, `http.<url>.*`, proxies). A mirror
/// whose ids are of another object format is an error: git cannot push to it.
pub fn ls_remote(git_dir: &Path, remote: &RemoteAccess, patterns: &[String]) -> Result<RemoteRefs, GitError> {
    let (refs, _) = list_remote(git_dir, remote, patterns, false)?;
    let local = crate::util::oid::object_format(git_dir);
    match refs.direct.values().next().map(ObjectFormat::of) {
        Some(mirror) if mirror != local => Err(GitError::Remote(crate::git::Failure::new(
            format_mismatch(local, mirror),
            crate::git::FailureClass::Permanent,
        ))),
        _ => Ok(refs),
    }
}

/// What `check` and `add` learn about a mirror: its refs matching the patterns and the object
/// format it announces (known even for an empty mirror), next to the repository's.
#[derive(Debug)]
pub struct Probe {
    pub refs: RemoteRefs,
    pub object_format: Option<ObjectFormat>,
    pub local_format: ObjectFormat,
}

impl Probe {
    /// Why git cannot push from the repository to this mirror, if it cannot.
    pub fn format_mismatch(&self) -> Option<String> {
        self.object_format
            .filter(|mirror| *mirror != self.local_format)
            .map(|mirror| format_mismatch(self.local_format, mirror))
    }
}

/// [`ls_remote`] that also reads the object format the mirror announces (from git's packet
/// trace), so a mirror git cannot push to is named before the first push, even when empty.
pub fn probe(git_dir: &Path, remote: &RemoteAccess, patterns: &[String]) -> Result<Probe, GitError> {
    let (refs, trace) = list_remote(git_dir, remote, patterns, true)?;
    let object_format = announced_object_format(&trace).or_else(|| refs.direct.values().next().map(ObjectFormat::of));
    Ok(Probe {
        refs,
        object_format,
        local_format: crate::util::oid::object_format(git_dir),
    })
}

/// Why a mirror of another object format cannot be pushed to, and what to do.
pub fn format_mismatch(local: ObjectFormat, mirror: ObjectFormat) -> String {
    format!(
        "the mirror is a {mirror} repository and this repository is {local}: git cannot push between \
         object formats; recreate the mirror as {local} (`git init --bare --object-format={}`, or the \
         host's object format setting for new repositories) or push to another mirror",
        local.git_name()
    )
}

/// Runs `ls-remote`; with `trace`, also returns git's packet trace (its stderr).
fn list_remote(
    git_dir: &Path,
    remote: &RemoteAccess,
    patterns: &[String],
    trace: bool,
) -> Result<(RemoteRefs, String), GitError> {
    let mut cmd = remote.command();
    if trace {
        cmd.env("GIT_TRACE_PACKET", "1");
    }
    cmd.arg("--git-dir")
        .arg(git_dir)
        .args(["ls-remote", "--symref", "--"])
        .arg(&remote.url)
        .args(patterns);
    let http_trace = super::trace::Trace::start(&mut cmd, &remote.url, false);
    let finished = run_with_timeout(cmd, remote.timeout)?;
    let (trace, stderr): (Vec<&str>, Vec<&str>) = finished
        .stderr
        .lines()
        .partition(|line| trace && line.contains(" packet: "));
    if !finished.success {
        let http = http_trace.map(|t| t.http()).unwrap_or_default();
        return Err(remote.failure(&stderr.join("\n"), &http));
    }
    Ok((parse_ls_remote(&finished.stdout), trace.join("\n")))
}

/// The `object-format=` capability a server announced, in a `GIT_TRACE_PACKET` trace (protocol
/// v2 on a line of its own, v0 among the capabilities of the first ref).
fn announced_object_format(trace: &str) -> Option<ObjectFormat> {
    trace
        .lines()
        .filter(|line| line.contains("< "))
        // The trace shows v0's NUL before the capabilities as `\0`.
        .flat_map(|line| line.split(' ').filter_map(|word| word.rsplit("\\0").next()))
        .find_map(|word| word.strip_prefix("object-format=").and_then(ObjectFormat::parse))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(c: char) -> Oid {
        Oid::parse(&c.to_string().repeat(40)).unwrap()
    }

    #[test]
    fn ls_remote_output_excludes_symrefs_and_peeled_tags() {
        let out = "ref: refs/heads/main\tHEAD\n\
1111111111111111111111111111111111111111\tHEAD\n\
1111111111111111111111111111111111111111\trefs/heads/main\n\
ref: refs/heads/main\trefs/heads/alias\n\
1111111111111111111111111111111111111111\trefs/heads/alias\n\
2222222222222222222222222222222222222222\trefs/tags/v1\n\
1111111111111111111111111111111111111111\trefs/tags/v1^{}\n";
        let refs = parse_ls_remote(out);
        assert_eq!(refs.direct.len(), 2);
        assert_eq!(refs.direct["refs/heads/main"], oid('1'));
        assert_eq!(refs.direct["refs/tags/v1"], oid('2'));
        assert!(refs.symbolic.contains("HEAD") && refs.symbolic.contains("refs/heads/alias"));
        assert_eq!(refs.head.as_deref(), Some("refs/heads/main"));
        assert_eq!(
            parse_ls_remote("1111111111111111111111111111111111111111\tHEAD\n").head,
            None
        );
    }

    #[test]
    fn the_announced_object_format_is_read_from_the_packet_trace() {
        // Captured (git 2.47, GIT_TRACE_PACKET=1) from ls-remote over protocol v2 and v0.
        let v2 = "11:18:42.139795 pkt-line.c:86           packet:    ls-remote< version 2\n\
11:18:42.139915 pkt-line.c:86           packet:    ls-remote< object-format=sha256\n\
11:18:42.139943 pkt-line.c:86           packet:    ls-remote> object-format=sha256\n";
        assert_eq!(announced_object_format(v2), Some(ObjectFormat::Sha256));
        let v0 = "11:18:42.148944 pkt-line.c:86           packet:    ls-remote< \
0000000000000000000000000000000000000000 capabilities^{}\\0object-format=sha1 agent=git/2.47.3\n";
        assert_eq!(announced_object_format(v0), Some(ObjectFormat::Sha1));
        let old_server =
            "packet:    ls-remote< 1111111111111111111111111111111111111111 refs/heads/main\\0multi_ack ofs-delta\n";
        assert_eq!(announced_object_format(old_server), None);
    }

    #[test]
    fn ls_remote_output_of_a_sha256_mirror_is_parsed() {
        let sha256 = "c2f6722a36398972fd504337b69a3221be0f00cd0d48b45aec8b0d8036719595";
        let out = format!("ref: refs/heads/main\tHEAD\n{sha256}\tHEAD\n{sha256}\trefs/heads/main\n");
        let refs = parse_ls_remote(&out);
        assert_eq!(refs.direct["refs/heads/main"].as_str(), sha256);
        assert_eq!(ObjectFormat::of(&refs.direct["refs/heads/main"]), ObjectFormat::Sha256);
    }
}
