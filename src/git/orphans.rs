//! No orphans: every git child dies with the process that started it, `kill -9` and the OOM
//! killer included, and a worker starting up kills what a dead one left behind.
//!
//! Two mechanisms, because `PR_SET_PDEATHSIG` reaches only the direct child (git), not what git
//! starts (ssh, `git-remote-https`, a credential helper):
//!
//! - the direct child gets `SIGTERM` from the kernel when its parent dies;
//! - every child carries `GIT_PUSH_MIRROR_WORKER=<pid>.<start time>` of its parent, which git
//!   passes on to everything it starts; [`kill_leftovers`] finds processes whose parent process
//!   is gone (the pid is free or reused by another start time) and ends them.
//!
//! Both send `SIGTERM`, never `SIGKILL`: nothing of ours ignores it (git, ssh, git-lfs, the shell
//! of a helper), and git removes its lock files when terminated. The server side of a push to
//! (or a listing of) a local mirror (`git-receive-pack`, `git-upload-pack` and what they run) is
//! our descendant too, but is left alone: it ends by itself once its client is gone, and one
//! stopped in the middle of a ref update could leave `refs/heads/<branch>.lock` in the mirror,
//! refusing every later update of that branch.

use crate::util::fsutil::{identity_alive, this_process_identity};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The variable naming the process that started a git child.
pub const PARENT_VARIABLE: &str = "GIT_PUSH_MIRROR_WORKER";

/// Makes the child `cmd` starts die with this process and marks it (and what it starts) as
/// ours, for [`kill_leftovers`].
///
/// The kernel signals the child when the *thread* that forked it ends: callers spawn from the
/// thread that waits for the child, as every caller in this crate does.
pub fn die_with_this_process(cmd: &mut Command) {
    cmd.env(PARENT_VARIABLE, this_process_identity());
    // SAFETY: getpid is async-signal-safe and called before the fork.
    let parent = unsafe { libc::getpid() };
    // SAFETY: prctl, getppid and _exit are async-signal-safe; nothing is allocated after fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would signal us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// The parent token in a process's environment, if it is one of ours.
fn parent_of(environ: &[u8]) -> Option<&str> {
    let prefix = format!("{PARENT_VARIABLE}=");
    environ
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(prefix.as_bytes()))
        .and_then(|value| std::str::from_utf8(value).ok())
}

/// Terminates (`SIGTERM`) the processes, and the process groups they lead, that children of a
/// dead git-push-mirror process left running: a hung `ls-remote`'s ssh, a push's helpers.
/// Returns how many there were. Only processes this user may inspect are considered.
pub fn kill_leftovers() -> usize {
    let leftovers = find_leftovers();
    for pid in &leftovers {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        log::info!(
            "terminating {pid} (left by a dead worker): {}",
            crate::util::redact::redact(&String::from_utf8_lossy(&cmdline).replace('\0', " "), &[])
        );
        // SAFETY: getpgid and kill have no memory-safety preconditions; each process carries
        // the mark of a git child of ours whose parent is gone.
        unsafe {
            if libc::getpgid(*pid) == *pid {
                libc::kill(-pid, libc::SIGTERM);
            }
            libc::kill(*pid, libc::SIGTERM);
        }
    }
    leftovers.len()
}

/// Whether an argv (NUL-separated) is git's server side of a local transport.
fn is_server_side(cmdline: &[u8]) -> bool {
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let serves = |arg: &[u8]| arg.starts_with(b"git-receive-pack") || arg.starts_with(b"git-upload-pack");
    let program = args.first().map(|a| a.rsplit(|b| *b == b'/').next().unwrap_or(a));
    program.is_some_and(serves)
        || (program == Some(b"git".as_slice()) && args.get(1).is_some_and(|a| serves(&[b"git-", *a].concat())))
        // `sh -c 'git-receive-pack ...'`, as git starts a local transport's server side.
        || (args.get(1) == Some(&b"-c".as_slice()) && args.get(2).is_some_and(|a| serves(a)))
}

/// Whether a process is, or was started by, the server side of a local transport (see the
/// module's documentation): its own command line or an ancestor's says so.
fn serves_a_local_mirror(pid: u32) -> bool {
    let mut pid = pid;
    for _ in 0..16 {
        if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| is_server_side(&c)) {
            return true;
        }
        let Some(parent) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let fields = &stat[stat.rfind(')')? + 1..];
                fields.split_whitespace().nth(1)?.parse::<u32>().ok()
            })
        else {
            return false;
        };
        if parent <= 1 {
            return false;
        }
        pid = parent;
    }
    false
}

/// Processes marked as started by a git-push-mirror process that is gone.
fn find_leftovers() -> Vec<libc::pid_t> {
    use std::os::unix::fs::MetadataExt;
    let me = std::process::id();
    // SAFETY: geteuid has no preconditions.
    let user = unsafe { libc::geteuid() };
    let mut leftovers = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // Only this user's processes can be ours (a stat is cheaper than reading an environment).
        if pid == me || entry.metadata().map(|m| m.uid()).ok() != Some(user) {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let Some(parent) = parent_of(&environ) else {
            continue;
        };
        // A bare pid (no start time) is not ours: every parent is named with its start time.
        if parent == this_process_identity() || !parent.contains('.') || identity_alive(parent) {
            continue;
        }
        if serves_a_local_mirror(pid) {
            continue;
        }
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            leftovers.push(pid);
        }
    }
    leftovers
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        assert!(identity_alive(this_process_identity()), "{}", this_process_identity());
        let pid = std::process::id();
        assert!(
            !identity_alive(&format!("{pid}.1")),
            "another start time is another process"
        );
        assert!(identity_alive(&pid.to_string()), "a bare pid: any process with it");
        assert!(!identity_alive("garbage.x"));
    }

    #[test]
    fn the_server_side_of_a_local_transport_is_recognised() {
        for server in [
            &b"git-receive-pack\0/srv/m.git\0"[..],
            b"/usr/lib/git-core/git-upload-pack\0/srv/m.git\0",
            b"git\0receive-pack\0/srv/m.git\0",
            b"/bin/sh\0-c\0git-receive-pack '/srv/m.git'\0git-receive-pack '/srv/m.git'\0",
        ] {
            assert!(is_server_side(server), "{}", String::from_utf8_lossy(server));
        }
        for client in [
            &b"git\0push\0--porcelain\0--\0file:///srv/m.git\0"[..],
            b"ssh\0-o\0BatchMode=yes\0git@h\0git-receive-pack '/x.git'\0",
            b"git\0ls-remote\0--\0file:///srv/git-upload-pack.git\0",
        ] {
            assert!(!is_server_side(client), "{}", String::from_utf8_lossy(client));
        }
    }

    #[test]
    fn the_parent_token_is_read_from_an_environment_block() {
        let environ = b"PATH=/bin\0GIT_PUSH_MIRROR_WORKER=12.34\0HOME=/h\0";
        assert_eq!(parent_of(environ), Some("12.34"));
        assert_eq!(parent_of(b"PATH=/bin\0"), None);
    }

    #[test]
    fn a_child_dies_when_the_thread_that_started_it_ends() {
        let started = std::thread::spawn(|| {
            let mut cmd = Command::new("sleep");
            cmd.arg("60");
            die_with_this_process(&mut cmd);
            cmd.spawn().unwrap()
        })
        .join()
        .unwrap();
        let pid = started.id();
        let mut child = started;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(status.signal(), Some(libc::SIGTERM), "pid {pid}");
                break;
            }
            assert!(Instant::now() < deadline, "the child outlived its parent thread");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
