//! `push --porcelain` with leases: the arguments for each planned change, split to fit the command line, pushed through a view of the repository when there are many, and the per-ref result parsed.

use super::trace::Trace;
use super::{
    FailureClass, RemoteAccess, error::GitError, error::says_dropped, error::says_too_large, process::run_with_timeout,
};
use crate::util::fsutil::{create_private_dirs, write_private};
use crate::util::oid::RefChange;
use crate::util::oid::{ObjectFormat, Oid};
use std::path::Path;

/// The flag git prints for a ref in `push --porcelain` output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushFlag {
    /// ` ` a fast-forward.
    FastForward,
    /// `+` a forced update.
    Forced,
    /// `-` a deleted ref.
    Deleted,
    /// `*` a new ref.
    New,
    /// `!` rejected or failed.
    Rejected,
    /// `=` already up to date.
    UpToDate,
}

impl PushFlag {
    fn from_char(c: char) -> Option<PushFlag> {
        Some(match c {
            ' ' => PushFlag::FastForward,
            '+' => PushFlag::Forced,
            '-' => PushFlag::Deleted,
            '*' => PushFlag::New,
            '!' => PushFlag::Rejected,
            '=' => PushFlag::UpToDate,
            _ => return None,
        })
    }
}

/// One ref's line of `git push --porcelain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedRef {
    /// The destination ref on the mirror.
    pub name: String,
    pub flag: PushFlag,
    /// e.g. `[new branch]`, `abc..def`, `[rejected]`, `[remote rejected]`.
    pub summary: String,
    /// e.g. `stale info`, `pre-receive hook declined`.
    pub reason: Option<String>,
}

impl PushedRef {
    /// Whether the ref now has the value that was pushed.
    pub fn landed(&self) -> bool {
        self.flag != PushFlag::Rejected
    }

    /// Whether the ref was refused because the mirror's value is not the one
    /// the change was planned for (a failed lease, or a new ref that exists).
    pub fn lease_failed(&self) -> bool {
        self.flag == PushFlag::Rejected && self.reason.as_deref().is_some_and(means_remote_changed)
    }
}

/// Whether a rejection reason says the mirror's ref is not what the change
/// expected: `stale info` (a lease), or `fetch first` / `non-fast-forward`
/// / `already exists` (a create, pushed without a lease, found the ref existing), or a create
/// that lost a race on the mirror to another push creating the same ref (receive-pack: `cannot
/// lock ref '…': reference already exists`).
pub fn means_remote_changed(reason: &str) -> bool {
    matches!(
        reason,
        "stale info" | "fetch first" | "non-fast-forward" | "already exists"
    ) || (reason.starts_with("failed to update ref") && reason.ends_with("': reference already exists"))
}

/// Parses `git push --porcelain` output: `<flag>\t<from>:<to>\t<summary> (<reason>)`.
pub fn parse_porcelain(output: &str) -> Vec<PushedRef> {
    let mut refs = Vec::new();
    for line in output.lines() {
        let mut chars = line.chars();
        let (Some(flag), Some('\t')) = (chars.next().and_then(PushFlag::from_char), chars.next()) else {
            continue;
        };
        let mut fields = line[2..].splitn(2, '\t');
        let (Some(spec), Some(rest)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((_, to)) = spec.rsplit_once(':') else { continue };
        let (summary, reason) = match rest.find(" (") {
            Some(pos) if rest.ends_with(')') => {
                (rest[..pos].to_string(), Some(rest[pos + 2..rest.len() - 1].to_string()))
            }
            _ => (rest.to_string(), None),
        };
        refs.push(PushedRef {
            name: to.to_string(),
            flag,
            summary,
            reason,
        });
    }
    refs
}

/// Refspec and lease arguments for one change. Updates and deletions carry
/// `--force-with-lease=<ref>:<observed>`; a create is pushed without force, so
/// git refuses it if the ref appeared meanwhile with unrelated history (and
/// git's lease bookkeeping, quadratic in the number of leases, is spared for
/// the thousands of creates of a first sync).
fn change_args(name: &str, change: &RefChange) -> Vec<String> {
    match change {
        RefChange::Create { new } => vec![format!("{new}:{name}")],
        RefChange::Update { old, new, .. } => {
            vec![format!("--force-with-lease={name}:{old}"), format!("{new}:{name}")]
        }
        RefChange::Delete { old } => vec![format!("--force-with-lease={name}:{old}"), format!(":{name}")],
    }
}

/// Above this many changes, push through a [`PushView`].
const VIEW_THRESHOLD: usize = 32;

/// A temporary git directory whose object store is the repository's (through
/// `objects/info/alternates`) and whose only refs are the new values of the
/// refs being created or updated (in `packed-refs`): `refs/*:refs/*` then
/// pushes exactly those, in time linear in their number. It has the
/// repository's object format and includes its configuration (`http.sslCAInfo`,
/// proxies, `http.<url>.*`), so the push behaves as one from the repository.
struct PushView {
    dir: tempfile::TempDir,
}

impl PushView {
    fn new(git_dir: &Path, changes: &[(&str, &RefChange)]) -> std::io::Result<PushView> {
        let dir = crate::util::fsutil::private_temp_dir("view")?;
        let git_dir = std::path::absolute(git_dir)?;
        let objects = git_dir.join("objects");
        let format = changes
            .iter()
            .find_map(|(_, change)| change.new_value().or(change.expected_remote()))
            .map_or(ObjectFormat::Sha1, ObjectFormat::of);
        write_private(&dir.path().join("config"), &view_config(&git_dir, format))?;
        create_private_dirs(&dir.path().join("objects/info"))?;
        create_private_dirs(&dir.path().join("refs"))?;
        write_private(&dir.path().join("HEAD"), b"ref: refs/heads/none\n")?;
        let mut alternates = objects.as_os_str().as_encoded_bytes().to_vec();
        alternates.push(b'\n');
        write_private(&dir.path().join("objects/info/alternates"), &alternates)?;
        let mut new_values: Vec<(&str, &Oid)> = changes
            .iter()
            .filter_map(|(name, change)| change.new_value().map(|oid| (*name, oid)))
            .collect();
        new_values.sort();
        let mut packed = String::from("# pack-refs with: sorted \n");
        for (name, oid) in new_values {
            packed.push_str(&format!("{oid} {name}\n"));
        }
        write_private(&dir.path().join("packed-refs"), packed.as_bytes())?;
        Ok(PushView { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The configuration of a temporary git directory standing in for the repository at `git_dir`:
/// its object format (git reads `extensions.*` from this file only), then the repository's own
/// configuration, included.
pub(crate) fn view_config(git_dir: &Path, format: ObjectFormat) -> Vec<u8> {
    let mut config = Vec::new();
    if format != ObjectFormat::Sha1 {
        config.extend_from_slice(
            format!(
                "[core]\n\trepositoryformatversion = 1\n[extensions]\n\tobjectformat = {}\n",
                format.git_name()
            )
            .as_bytes(),
        );
    }
    // A quoted value: the path may hold spaces, `"` or `\\` (a line break it cannot).
    let path = git_dir.join("config");
    if path.as_os_str().as_encoded_bytes().contains(&b'\n') {
        return config;
    }
    let mut quoted = Vec::new();
    for byte in path.as_os_str().as_encoded_bytes() {
        if matches!(byte, b'"' | b'\\') {
            quoted.push(b'\\');
        }
        quoted.push(*byte);
    }
    config.extend_from_slice(b"[include]\n\tpath = \"");
    config.extend_from_slice(&quoted);
    config.extend_from_slice(b"\"\n");
    config
}

/// Bytes of arguments per git process: far below ARG_MAX, which is the only
/// reason to split a push at all.
const MAX_ARGUMENT_BYTES: usize = 512 * 1024;

/// Splits `changes` into groups that each fit the arguments of one `git push` (see [`push`]).
pub fn split_by_argument_size<'a>(changes: &[(&'a str, &'a RefChange)]) -> Vec<Vec<(&'a str, &'a RefChange)>> {
    let mut groups = Vec::new();
    let mut group: Vec<(&str, &RefChange)> = Vec::new();
    let mut group_bytes = 0;
    for &(name, change) in changes {
        // Through a view (more than VIEW_THRESHOLD changes) creates cost no argument at all.
        let bytes = match change {
            RefChange::Create { .. } => 0,
            RefChange::Update { .. } | RefChange::Delete { .. } => 2 * name.len() + 64 + 24,
        };
        if !group.is_empty() && group_bytes + bytes > MAX_ARGUMENT_BYTES {
            groups.push(std::mem::take(&mut group));
            group_bytes = 0;
        }
        group.push((name, change));
        group_bytes += bytes;
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

/// What one `git push` did.
#[derive(Debug, Default)]
pub struct PushOutcome {
    /// git's per-ref results; their reasons are redacted.
    pub refs: Vec<PushedRef>,
    /// The mirror's own words (its `remote:` lines), cleaned and redacted.
    pub remote_lines: Vec<String>,
    /// `false` when the mirror did not offer `report-status`: git then reports every ref it sent
    /// as pushed without the mirror having said so.
    pub confirmed: bool,
}

/// Pushes `changes` from the local repository at `git_dir` to the mirror in one git process,
/// each update and deletion with `--force-with-lease=<ref>:<observed>`, and returns git's
/// per-ref results and the mirror's words. A failure of the push as a whole is an error;
/// per-ref rejections are results. Callers keep each push within [`split_by_argument_size`].
pub fn push(git_dir: &Path, remote: &RemoteAccess, changes: &[(&str, &RefChange)]) -> Result<PushOutcome, GitError> {
    if changes.len() <= VIEW_THRESHOLD {
        let args: Vec<String> = changes
            .iter()
            .flat_map(|(name, change)| change_args(name, change))
            .collect();
        return push_batch(git_dir, remote, &args);
    }
    // git matches every explicit refspec against every local and every
    // remote ref, formatting strings for each pair: quadratic. Large pushes
    // instead go from a view of the repository that shares its objects and
    // whose only refs are the new values, with one pattern refspec; only
    // leases and deletions remain as arguments.
    push_through_view(git_dir, remote, changes)
}

fn push_through_view(
    git_dir: &Path,
    remote: &RemoteAccess,
    changes: &[(&str, &RefChange)],
) -> Result<PushOutcome, GitError> {
    let view = PushView::new(git_dir, changes).map_err(|e| GitError::Spawn(format!("preparing the push: {e}")))?;
    let mut args = Vec::new();
    let mut has_new_values = false;
    for (name, change) in changes {
        match change {
            RefChange::Create { .. } => has_new_values = true,
            RefChange::Update { old, .. } => {
                has_new_values = true;
                args.push(format!("--force-with-lease={name}:{old}"));
            }
            RefChange::Delete { old } => {
                args.push(format!("--force-with-lease={name}:{old}"));
                args.push(format!(":{name}"));
            }
        }
    }
    if has_new_values {
        args.push("refs/*:refs/*".to_string());
    }
    push_batch(view.path(), remote, &args)
}

/// What git says, before sending anything, when push options go to a mirror that does not
/// advertise them.
const PUSH_OPTIONS_REFUSED: &str = "the receiving end does not support push options";

fn push_batch(git_dir: &Path, remote: &RemoteAccess, args: &[String]) -> Result<PushOutcome, GitError> {
    let (leases, refspecs): (Vec<&String>, Vec<&String>) =
        args.iter().partition(|a| a.starts_with("--force-with-lease="));
    let options = remote.push_options_to_send();
    let mut cmd = remote.command();
    // Config values, not secrets: git's argv, never a shell.
    cmd.arg("--git-dir")
        .arg(git_dir)
        .args([
            "push",
            "--porcelain",
            "--no-verify",
            "--no-follow-tags",
            "--no-recurse-submodules",
        ])
        .args(options.iter().map(|option| format!("--push-option={option}")))
        .args(leases)
        .arg("--")
        .arg(&remote.url)
        .args(refspecs);
    let trace = Trace::start(&mut cmd, &remote.url, true);
    let finished = run_with_timeout(cmd, remote.timeout)?;
    if !finished.success && !options.is_empty() && finished.stderr.contains(PUSH_OPTIONS_REFUSED) {
        // git stops before sending anything: the same push again, without them.
        remote
            .push_options_refused
            .store(true, std::sync::atomic::Ordering::Relaxed);
        return push_batch(git_dir, remote, args);
    }
    crate::util::failpoint::hit("push.after_git");
    let pushed = parse_porcelain(&finished.stdout);
    if pushed.is_empty() && !finished.success {
        let http = trace.as_ref().map(Trace::http).unwrap_or_default();
        return Err(match remote.failure(&finished.stderr, &http) {
            GitError::Remote(failure) if says_too_large(&finished.stderr) => GitError::TooLarge(failure.message),
            // A dropped connection is a hypothesis about size only when nothing says otherwise
            // (a 503 or a refused login drop connections too).
            GitError::Remote(failure) if failure.class == FailureClass::Transient && says_dropped(&finished.stderr) => {
                GitError::Dropped(failure.message)
            }
            other => other,
        });
    }
    let confirmed = trace.is_none_or(|trace| trace.report_requested() != Some(false));
    Ok(PushOutcome {
        refs: pushed
            .into_iter()
            .map(|mut r| {
                r.reason = r.reason.map(|reason| remote.redact(&reason));
                r
            })
            .collect(),
        remote_lines: crate::git::remote_words::remote_lines(&finished.stderr)
            .iter()
            .map(|line| remote.redact(line))
            .collect(),
        confirmed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(c: char) -> Oid {
        Oid::parse(&c.to_string().repeat(40)).unwrap()
    }

    /// Captured from `git push --porcelain` (git 2.47) against a mirror with a
    /// pre-receive hook rejecting one ref and a stale lease on another.
    const CAPTURED_PORCELAIN: &str = "To git://127.0.0.1:40123/mirror.git\n\
=\trefs/heads/same:refs/heads/same\t[up to date]\n\
\x20\t1111111111111111111111111111111111111111:refs/heads/main\t4e1f0a2..9b7c3d1\n\
+\t2222222222222222222222222222222222222222:refs/heads/forced\t8a1b2c3...d4e5f60 (forced update)\n\
-\t:refs/heads/gone\t[deleted]\n\
*\t3333333333333333333333333333333333333333:refs/tags/v1.0\t[new tag]\n\
*\t4444444444444444444444444444444444444444:refs/heads/feature/x\t[new branch]\n\
!\t5555555555555555555555555555555555555555:refs/heads/stale\t[rejected] (stale info)\n\
!\t6666666666666666666666666666666666666666:refs/heads/hooked\t[remote rejected] (pre-receive hook declined)\n\
!\t7777777777777777777777777777777777777777:refs/heads/a\t[remote rejected] (failed to update ref)\n\
Done\n";

    #[test]
    fn porcelain_output_is_parsed_per_ref() {
        let refs = parse_porcelain(CAPTURED_PORCELAIN);
        let flags: Vec<(&str, PushFlag)> = refs.iter().map(|r| (r.name.as_str(), r.flag)).collect();
        assert_eq!(
            flags,
            vec![
                ("refs/heads/same", PushFlag::UpToDate),
                ("refs/heads/main", PushFlag::FastForward),
                ("refs/heads/forced", PushFlag::Forced),
                ("refs/heads/gone", PushFlag::Deleted),
                ("refs/tags/v1.0", PushFlag::New),
                ("refs/heads/feature/x", PushFlag::New),
                ("refs/heads/stale", PushFlag::Rejected),
                ("refs/heads/hooked", PushFlag::Rejected),
                ("refs/heads/a", PushFlag::Rejected),
            ]
        );
        assert_eq!(refs[2].reason.as_deref(), Some("forced update"));
        assert_eq!(refs[2].summary, "8a1b2c3...d4e5f60");
        assert!(refs[6].lease_failed());
        assert!(!refs[7].lease_failed());
        // Captured (git 2.47) from two pushes creating one ref at once: the loser re-plans.
        assert!(means_remote_changed(
            "failed to update ref: error: cannot lock ref 'refs/heads/main': reference already exists"
        ));
        assert!(!means_remote_changed("failed to update ref"));
        assert_eq!(refs[7].summary, "[remote rejected]");
        assert_eq!(refs[7].reason.as_deref(), Some("pre-receive hook declined"));
        assert!(refs[0].landed() && refs[3].landed() && !refs[8].landed());
    }

    #[test]
    fn porcelain_parser_ignores_noise() {
        assert!(parse_porcelain("").is_empty());
        assert!(parse_porcelain("To x\nDone\nerror: failed to push some refs\n").is_empty());
        assert!(parse_porcelain("?\tweird\tline\n!\tno-colon\t[rejected]\n").is_empty());
    }

    #[test]
    fn a_view_has_the_repositorys_object_format_and_includes_its_configuration() {
        let sha1 = String::from_utf8(view_config(Path::new("/srv/git/app.git"), ObjectFormat::Sha1)).unwrap();
        assert_eq!(sha1, "[include]\n\tpath = \"/srv/git/app.git/config\"\n");
        let sha256 = String::from_utf8(view_config(Path::new("/srv/a \"b\"\\c.git"), ObjectFormat::Sha256)).unwrap();
        assert_eq!(
            sha256,
            "[core]\n\trepositoryformatversion = 1\n[extensions]\n\tobjectformat = sha256\n\
             [include]\n\tpath = \"/srv/a \\\"b\\\"\\\\c.git/config\"\n"
        );
        let odd = view_config(Path::new("/srv/a\nb.git"), ObjectFormat::Sha1);
        assert!(odd.is_empty(), "a path git configuration cannot hold is left out");
    }

    #[test]
    fn every_update_and_deletion_carries_a_lease_on_the_observed_value() {
        let create = RefChange::Create { new: oid('a') };
        let update = RefChange::Update {
            old: oid('b'),
            new: oid('c'),
            forced: true,
        };
        let delete = RefChange::Delete { old: oid('d') };
        // A create is pushed without force: git refuses it if the ref appeared meanwhile.
        assert_eq!(
            change_args("refs/heads/n", &create),
            [format!("{}:refs/heads/n", oid('a'))]
        );
        assert_eq!(
            change_args("refs/heads/u", &update),
            [
                format!("--force-with-lease=refs/heads/u:{}", oid('b')),
                format!("{}:refs/heads/u", oid('c'))
            ]
        );
        assert_eq!(
            change_args("refs/heads/d", &delete),
            [
                format!("--force-with-lease=refs/heads/d:{}", oid('d')),
                ":refs/heads/d".to_string()
            ]
        );
    }
}
