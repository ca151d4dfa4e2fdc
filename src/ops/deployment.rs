//! How a repository is deployed, beyond its mirrors, for `check` (and for the commands that must
//! run as the right user): whether a hook records its pushes (installed, executable, running a
//! binary that exists, the binary running `check`), who pushes run as (the repository's owner,
//! and with `core.sharedRepository` its group's members), whether they can use the spool, the
//! state directory and the log, and whether the caller is one of them. Each problem comes with
//! the command that fixes it.

use crate::config::GlobalConfig;
use crate::ops::hook_binary::{self, HookCall};
use crate::ops::install::{CHAINED_SUFFIX, is_ours};
use crate::util::users;
use crate::util::writable::{self, Denied, DeniedKind, Writer};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One problem and what fixes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What is wrong, in one sentence.
    pub problem: String,
    /// The command (or step) that fixes it.
    pub fix: String,
}

/// Who pushes to a repository: the hook runs as the pushing user, which on a server is the
/// repository's owner (`git`), or, in a repository git shares with a group
/// (`core.sharedRepository`), any member of that group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pushers {
    pub owner: u32,
    /// The repository's group, for the commands that create directories for the owner.
    pub group: u32,
    /// With `core.sharedRepository`: the group whose members push too.
    pub shared_group: Option<u32>,
}

impl Pushers {
    /// The pushers of the bare repository `repo`.
    pub fn of(repo: &Path) -> std::io::Result<Pushers> {
        let meta = std::fs::metadata(repo)?;
        let shared = crate::git::config_get(repo, "core.sharedRepository")
            .ok()
            .flatten()
            .is_some_and(|value| shares_with_group(&value));
        Ok(Pushers {
            owner: meta.uid(),
            group: meta.gid(),
            shared_group: shared.then_some(meta.gid()),
        })
    }

    /// Whether the user `uid` pushes as one of them.
    pub fn includes(&self, uid: u32) -> bool {
        uid == self.owner
            || self
                .shared_group
                .is_some_and(|gid| users::groups_of(uid).contains(&gid))
    }

    fn owner_name(&self) -> String {
        users::user_label(self.owner)
    }
}

/// Whether a `core.sharedRepository` value lets the repository's group push (git-config(1)).
fn shares_with_group(value: &str) -> bool {
    match value.trim().to_ascii_lowercase().as_str() {
        "group" | "true" | "1" | "all" | "world" | "everybody" | "2" => true,
        "umask" | "false" | "0" | "" => false,
        octal => u32::from_str_radix(octal, 8).is_ok_and(|mode| mode & 0o060 == 0o060),
    }
}

/// The line the commands that write (`add`, `set`, …) refuse with when the caller is not among
/// the repository's pushers: what it creates, the owner could not use.
pub fn other_user(repo: &Path, command: &str) -> Option<String> {
    other_users(&[repo.to_path_buf()], command).pop()
}

/// One line per owner of `repos` whose pushes the caller does not push as (`status` says them):
/// the hook recorded those pushes in the owner's spool and state, with the owner's configuration.
pub fn other_users(repos: &[PathBuf], command: &str) -> Vec<String> {
    let caller = users::effective_uid();
    let mut by_owner: Vec<(u32, Vec<&Path>)> = Vec::new();
    for repo in repos {
        // The usual case, without asking git about core.sharedRepository (status over a fleet).
        if std::fs::metadata(repo).is_ok_and(|meta| meta.uid() == caller) {
            continue;
        }
        let Ok(pushers) = Pushers::of(repo) else {
            continue;
        };
        if pushers.includes(caller) {
            continue;
        }
        match by_owner.iter_mut().find(|(owner, _)| *owner == pushers.owner) {
            Some((_, repos)) => repos.push(repo),
            None => by_owner.push((pushers.owner, vec![repo])),
        }
    }
    by_owner
        .into_iter()
        .map(|(owner, repos)| {
            let owner = users::user_label(owner);
            let which = match repos.as_slice() {
                [one] => format!("{} belongs", one.display()),
                many => format!(
                    "{} repositories ({}, …) belong",
                    many.len(),
                    many.first().map(|r| r.display().to_string()).unwrap_or_default()
                ),
            };
            format!(
                "{which} to {owner}, and pushes run as {owner}, but this runs as {}: run it as {owner}: \
                 sudo -u {owner} -H git-push-mirror {command}",
                users::user_label(caller),
            )
        })
        .collect()
}

/// The caller's finding for `check`: pushes run as another user, whose spool, state and
/// configuration this check may not see.
pub fn caller_finding(repo: &Path, pushers: &Pushers) -> Option<Finding> {
    let caller = users::effective_uid();
    if pushers.includes(caller) {
        return None;
    }
    let owner = pushers.owner_name();
    Some(Finding {
        problem: format!(
            "this check runs as {}, but pushes to this repository run as {owner} (its owner): the hook \
             records them in {owner}'s spool and state, with {owner}'s configuration",
            users::user_label(caller)
        ),
        fix: format!("sudo -u {owner} -H git-push-mirror check {}", repo.display()),
    })
}

// ---------------------------------------------------------------------------------------------
// The hook

/// The ways a hook reaches a repository's pushes, for the command that installs it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    /// `hooks/post-receive` itself.
    Plain,
    /// `hooks/post-receive.d/NAME`, run by Gitea's (or Forgejo's) `hooks/post-receive`.
    Gitea,
    /// `hooks/post-receive`, a link to gitolite's common hook under `LOCAL_CODE`.
    GitoliteCommon,
    /// `hooks/post-receive.hNN-NAME`, a link gitolite made to a repo-specific hook, run by its
    /// multi-hook driver `hooks/post-receive`.
    GitoliteRepoSpecific,
}

impl HookKind {
    /// `git-push-mirror install …` for this kind of hook, with `extra` flags.
    fn install_command(self, program: &str, repo: &Path, extra: &str) -> String {
        let repo = repo.display();
        match self {
            HookKind::Plain => format!("{program} install{extra} {repo}"),
            HookKind::Gitea => format!("{program} install --gitea{extra} {repo}"),
            HookKind::GitoliteCommon => format!("{program} install --gitolite{extra}"),
            HookKind::GitoliteRepoSpecific => format!("{program} install --gitolite --repo-specific{extra}"),
        }
    }
}

/// A hook of the repository that calls `git-push-mirror hook post-receive`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundHook {
    pub path: PathBuf,
    pub kind: HookKind,
    pub call: HookCall,
    /// Whether `install` wrote it (else someone wrote it by hand, e.g. from `hooks/`).
    pub ours: bool,
    /// `hooks/post-receive`, when it is what runs this hook (Gitea, gitolite's repo-specific hooks).
    pub dispatcher: Option<PathBuf>,
}

/// How much of a hook file is read to find its call (hooks are scripts; a binary is not read).
const HOOK_READ_LIMIT: u64 = 64 * 1024;

/// What the hook file at `path` calls, if it calls `hook post-receive`; the binary itself, run
/// under the hook's name (`hooks/post-receive -> /usr/bin/git-push-mirror`), counts.
fn read_call(path: &Path, running: &Path) -> Option<HookCall> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(HOOK_READ_LIMIT)
        .read_to_end(&mut head)
        .ok()?;
    if head.starts_with(b"#!") {
        return hook_binary::hook_call(&String::from_utf8_lossy(&head));
    }
    let target = std::fs::canonicalize(path).ok()?;
    let ours = target.file_name() == Some(OsStr::new("git-push-mirror")) || hook_binary::same_program(&target, running);
    ours.then(|| HookCall {
        program: target.to_string_lossy().into_owned(),
        config: None,
    })
}

/// The hooks of `repo` that call `git-push-mirror`, in the places each host puts them.
pub fn find_hooks(repo: &Path, running: &Path) -> Vec<FoundHook> {
    let dir = crate::git::hooks_dir(repo).unwrap_or_else(|_| repo.join("hooks"));
    let post_receive = dir.join("post-receive");
    let mut candidates = Vec::new();
    let plain_kind = match std::fs::read_link(&post_receive) {
        Ok(target) if target.to_string_lossy().contains("/hooks/common/") => HookKind::GitoliteCommon,
        _ => HookKind::Plain,
    };
    candidates.push((post_receive.clone(), plain_kind, None));
    let gitea = std::fs::read_dir(dir.join("post-receive.d"))
        .into_iter()
        .flatten()
        .flatten();
    candidates.extend(gitea.map(|entry| (entry.path(), HookKind::Gitea, Some(post_receive.clone()))));
    let repo_specific = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("post-receive.h"));
    candidates
        .extend(repo_specific.map(|entry| (entry.path(), HookKind::GitoliteRepoSpecific, Some(post_receive.clone()))));
    let mut found: Vec<FoundHook> = candidates
        .into_iter()
        .filter(|(path, ..)| !path.to_string_lossy().ends_with(CHAINED_SUFFIX))
        .filter_map(|(path, kind, dispatcher)| {
            let call = read_call(&path, running)?;
            Some(FoundHook {
                ours: is_ours(&path),
                path,
                kind,
                call,
                dispatcher,
            })
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

fn executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// What stands in the way of the repository's hook, each with its fix; `check` runs as
/// `running`, and looks up a program written without a path on its own `path`.
pub fn hook_findings(repo: &Path, hooks: &[FoundHook], running: &Path, path: Option<&OsStr>) -> Vec<Finding> {
    if hooks.is_empty() {
        let dir = crate::git::hooks_dir(repo).unwrap_or_else(|_| repo.join("hooks"));
        let kind = if dir.join("post-receive.d").is_dir() {
            HookKind::Gitea
        } else {
            HookKind::Plain
        };
        let mut problem =
            "no hook records its pushes: its mirrors get them only when `run` (cron) comes by".to_string();
        if let Ok(target) = std::fs::read_link(dir.join("post-receive"))
            && !dir.join("post-receive").exists()
        {
            problem = format!(
                "no hook records its pushes: hooks/post-receive links to {}, which does not exist",
                target.display()
            );
        }
        return vec![Finding {
            problem,
            fix: kind.install_command("git-push-mirror", repo, ""),
        }];
    }
    let mut findings = Vec::new();
    for hook in hooks {
        findings.extend(one_hook_findings(repo, hook, running, path));
    }
    findings
}

fn one_hook_findings(repo: &Path, hook: &FoundHook, running: &Path, path: Option<&OsStr>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let shown = hook.path.display();
    if !executable(&hook.path) {
        findings.push(Finding {
            problem: format!("{shown} is not executable, so git does not run it"),
            fix: format!("chmod +x {shown}"),
        });
    }
    if let Some(dispatcher) = &hook.dispatcher
        && !executable(dispatcher)
    {
        let fix = match hook.kind {
            HookKind::Gitea => "in Gitea: Site Administration → Dashboard → \"Resynchronize pre-receive, update and \
                                post-receive hooks\""
                .to_string(),
            _ if dispatcher.exists() => format!("chmod +x {}", dispatcher.display()),
            _ => "gitolite setup (as the gitolite user)".to_string(),
        };
        findings.push(Finding {
            problem: format!(
                "{} is missing or not executable, so nothing runs {shown}",
                dispatcher.display()
            ),
            fix,
        });
    }
    let rebind = hook.kind.install_command(&running.to_string_lossy(), repo, " --rebind");
    let Some(binary) = hook.call.resolve(path).filter(|binary| binary.exists()) else {
        let fix = if hook.ours {
            rebind
        } else {
            format!(
                "install git-push-mirror where the pushing user's PATH finds `{}` (the Debian package puts it in /usr/bin), \
                 or replace the hook: {}",
                hook.call.program,
                hook.kind.install_command("git-push-mirror", repo, "")
            )
        };
        findings.push(Finding {
            problem: format!(
                "{shown} runs {}, which does not exist: every push prints `not found` and records nothing",
                hook.call.program
            ),
            fix,
        });
        return findings;
    };
    if !executable(&binary) {
        findings.push(Finding {
            problem: format!("{shown} runs {}, which is not executable", binary.display()),
            fix: format!("chmod 755 {}", binary.display()),
        });
    } else if !hook_binary::same_program(&binary, running) {
        findings.push(Finding {
            problem: format!(
                "{shown} runs {}, another binary than this check's {} (the hook and the worker it starts run \
                 that one: to check with it, run `{} check`)",
                binary.display(),
                running.display(),
                binary.display()
            ),
            fix: rebind,
        });
    }
    findings
}

// ---------------------------------------------------------------------------------------------
// Spool, state and log

/// What keeps the pushers from using the spool, the state directory or the log file.
pub fn directory_findings(global: &GlobalConfig, pushers: &Pushers) -> Vec<Finding> {
    let mut writers = vec![(Writer::user(pushers.owner), None)];
    if let Some(gid) = pushers.shared_group {
        writers.push((Writer::GroupMembers(gid), Some(gid)));
    }
    let places = [
        ("spool", global.spool_dir.as_path(), true),
        ("state", global.state_dir.as_path(), true),
        ("log_file", global.log_file.as_path(), false),
    ];
    let mut findings = Vec::new();
    for (writer, shared_group) in &writers {
        for (label, place, tree) in places {
            let denied = if tree {
                writable::tree_denies(place, writer)
            } else {
                writable::file_denies(place, writer)
            };
            if let Some(denied) = denied {
                findings.push(place_finding(label, place, tree, &denied, pushers, *shared_group));
            }
        }
    }
    findings
}

fn place_finding(
    label: &str,
    place: &Path,
    tree: bool,
    denied: &Denied,
    pushers: &Pushers,
    shared_group: Option<u32>,
) -> Finding {
    let owner = pushers.owner_name();
    let who = match shared_group {
        Some(gid) => format!(
            "members of group {} (the repository is shared: core.sharedRepository)",
            users::group_label(gid)
        ),
        None => format!("{owner}, whom pushes run as,"),
    };
    let here = if denied.path == place {
        String::new()
    } else {
        format!(" at {}", denied.path.display())
    };
    let group = users::group_label(shared_group.unwrap_or(pushers.group));
    // A group-writable spool or state is refused by the worker unless the admin names the group.
    let shared_note = match shared_group {
        Some(_) => format!(
            " (the global configuration needs `shared_group = \"{group}\"` for the worker to accept a directory that group may write)"
        ),
        None => String::new(),
    };
    let problem = format!(
        "{label} {}: {who} cannot use it{here}: {}{shared_note}",
        place.display(),
        denied.why
    );
    let dir = if tree { place } else { place.parent().unwrap_or(place) };
    let fix = match (denied.kind, shared_group) {
        (DeniedKind::CannotCreate, None) => format!("install -d -o {owner} -g {group} {}", dir.display()),
        (DeniedKind::CannotCreate, Some(_)) => {
            format!("install -d -m 2770 -o {owner} -g {group} {}", dir.display())
        }
        (DeniedKind::CannotPass, _) => format!("chmod a+x {}", denied.path.display()),
        (DeniedKind::CannotUse, None) => format!("chown -R {owner} {}", place.display()),
        (DeniedKind::CannotUse, Some(_)) => format!(
            "chgrp -R {group} {place} && chmod -R g+rwX {place}",
            place = place.display()
        ),
    };
    Finding { problem, fix }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_repository_values_that_let_the_group_push() {
        for shared in [
            "group",
            "true",
            "1",
            "all",
            "world",
            "everybody",
            "2",
            "0660",
            "0664",
            "0770",
            "GROUP",
        ] {
            assert!(shares_with_group(shared), "{shared}");
        }
        for private in ["umask", "false", "0", "", "0600", "0640", "0644", "nonsense"] {
            assert!(!shares_with_group(private), "{private}");
        }
    }

    #[test]
    fn install_commands_follow_the_kind_of_hook() {
        let repo = Path::new("/srv/git/app.git");
        assert_eq!(
            HookKind::Plain.install_command("git-push-mirror", repo, " --rebind"),
            "git-push-mirror install --rebind /srv/git/app.git"
        );
        assert_eq!(
            HookKind::Gitea.install_command("/usr/bin/git-push-mirror", repo, ""),
            "/usr/bin/git-push-mirror install --gitea /srv/git/app.git"
        );
        assert_eq!(
            HookKind::GitoliteRepoSpecific.install_command("git-push-mirror", repo, " --rebind"),
            "git-push-mirror install --gitolite --repo-specific --rebind"
        );
    }
}
