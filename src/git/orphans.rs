//! No orphans: every git child dies with the process that started it, `kill -9` and the OOM
//! killer included, and a worker starting up kills what a dead one left behind.
//!
//! Two mechanisms, because `PR_SET_PDEATHSIG` reaches only the direct child (git), not what git
//! starts (ssh, `git-remote-https`, a credential helper):
//!
//! - the direct child gets `SIGKILL` from the kernel when its parent dies;
//! - every child carries `GIT_PUSH_MIRROR_WORKER=<pid>:<start time>` of its parent, which git
//!   passes on to everything it starts; [`kill_leftovers`] finds processes whose parent process
//!   is gone (the pid is free or reused by another start time) and kills them.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::OnceLock;

/// The variable naming the process that started a git child.
pub const PARENT_VARIABLE: &str = "GIT_PUSH_MIRROR_WORKER";

/// A process's start time (clock ticks after boot), from `/proc/PID/stat`: with the pid, it
/// names a process for good, whatever pids are reused.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: count from the last `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 22 overall is the 20th after the name (state is field 3).
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// `<pid>:<start time>` of this process.
fn this_process() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let pid = std::process::id();
        format!("{pid}:{}", start_time(pid).unwrap_or(0))
    })
}

/// Whether the process a token names still runs.
fn is_alive(token: &str) -> bool {
    let Some((pid, start)) = token.split_once(':') else {
        return false;
    };
    match (pid.parse::<u32>(), start.parse::<u64>()) {
        (Ok(pid), Ok(start)) => start_time(pid) == Some(start),
        _ => false,
    }
}

/// Makes the child `cmd` starts die with this process and marks it (and what it starts) as
/// ours, for [`kill_leftovers`].
///
/// The kernel signals the child when the *thread* that forked it ends: callers spawn from the
/// thread that waits for the child, as every caller in this crate does.
pub fn die_with_this_process(cmd: &mut Command) {
    cmd.env(PARENT_VARIABLE, this_process());
    // SAFETY: getpid is async-signal-safe and called before the fork.
    let parent = unsafe { libc::getpid() };
    // SAFETY: prctl, getppid and _exit are async-signal-safe; nothing is allocated after fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
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

/// Kills the processes (and the process groups they lead) that children of a dead
/// git-push-mirror process left running: a hung `ls-remote`'s ssh, a push's helpers. Returns
/// how many processes were killed. Only processes this user may inspect are considered.
pub fn kill_leftovers() -> usize {
    let me = std::process::id();
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let Some(parent) = parent_of(&environ) else {
            continue;
        };
        if parent == this_process() || is_alive(parent) {
            continue;
        }
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            continue;
        };
        // SAFETY: getpgid and kill have no memory-safety preconditions; the process carries the
        // mark of a git child of ours whose parent is gone.
        unsafe {
            if libc::getpgid(pid) == pid {
                libc::kill(-pid, libc::SIGKILL);
            }
            libc::kill(pid, libc::SIGKILL);
        }
        killed += 1;
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        assert!(is_alive(this_process()), "{}", this_process());
        let pid = std::process::id();
        assert!(!is_alive(&format!("{pid}:1")), "another start time is another process");
        assert!(!is_alive("garbage"));
    }

    #[test]
    fn the_parent_token_is_read_from_an_environment_block() {
        let environ = b"PATH=/bin\0GIT_PUSH_MIRROR_WORKER=12:34\0HOME=/h\0";
        assert_eq!(parent_of(environ), Some("12:34"));
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
                assert_eq!(status.signal(), Some(libc::SIGKILL), "pid {pid}");
                break;
            }
            assert!(Instant::now() < deadline, "the child outlived its parent thread");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
