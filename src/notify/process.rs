//! Running a notifier program (the `command`, sendmail): the allowlisted environment git
//! children get, the notice on stdin (closed after it), its own process group, killed when the
//! `timeout` expires or when the worker leaves while it still runs.

use std::io::{Read, Seek, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

/// The process group of the notifier program running now, for [`kill_running`].
static RUNNING: Mutex<Option<libc::pid_t>> = Mutex::new(None);

/// How long a program whose time is up gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(1);

/// How much of a failed program's stderr goes into the error.
const MAX_STDERR: usize = 600;

/// A command for `program` with only the allowlisted part of the worker's environment (the one git
/// children get: `PATH`, `HOME`, locale, proxies, CA variables; no secrets, no hook variables).
pub fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    crate::git::env::inherit_allowed_only(&mut cmd);
    cmd.current_dir("/");
    cmd
}

/// Runs `cmd` with `input` on its stdin, in a process group of its own that is killed if it has
/// not finished within `timeout`. A program that started something in the background and left
/// (an MTA delivering later) is not waited for. Returns why it failed.
pub fn run(mut cmd: Command, input: &[u8], timeout: Duration) -> Result<(), String> {
    // Stderr to a file, not a pipe: a background child that keeps a pipe open would block us.
    let mut stderr = tempfile::tempfile().map_err(|e| format!("creating a temporary file: {e}"))?;
    let stderr_for_child = stderr.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(stderr_for_child)
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let group = child.id() as libc::pid_t;
    set_running(Some(group));
    let (done, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(timeout) {
            kill_group(group);
            true
        } else {
            false
        }
    });
    if let Some(mut stdin) = child.stdin.take() {
        // A program that does not read its input closes the pipe: not an error of ours.
        let _ = stdin.write_all(input);
    }
    let status = child.wait();
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    set_running(None);
    let status = status.map_err(|e| e.to_string())?;
    if timed_out {
        return Err(format!(
            "did not finish within {} and was killed",
            humantime::format_duration(timeout)
        ));
    }
    if status.success() {
        return Ok(());
    }
    let mut words = String::new();
    let _ = stderr.rewind();
    let _ = stderr.take(MAX_STDERR as u64).read_to_string(&mut words);
    let words = words.split_whitespace().collect::<Vec<_>>().join(" ");
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "failed".to_string(),
    };
    Err(if words.is_empty() {
        how
    } else {
        format!("{how}: {words}")
    })
}

fn set_running(group: Option<libc::pid_t>) {
    *RUNNING.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = group;
}

/// SIGTERM to the group, SIGKILL after [`TERM_GRACE`].
fn kill_group(group: libc::pid_t) {
    // SAFETY: kill(2) with a negative pid signals the process group created for the program.
    unsafe { libc::kill(-group, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + TERM_GRACE;
    // SAFETY: signal 0 only asks whether the group still has members.
    while unsafe { libc::kill(-group, 0) } == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above.
    unsafe { libc::kill(-group, libc::SIGKILL) };
}

/// Kills the notifier program still running (the worker is leaving and waits no longer).
pub fn kill_running() {
    let running = *RUNNING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(group) = running {
        // SAFETY: as in kill_group; the group is the running program's.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = command("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn input_is_given_and_failures_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got");
        let script = format!("cat > '{}'", out.display());
        run(sh(&script), b"{\"event\":\"failed\"}", Duration::from_secs(20)).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"event\":\"failed\"}");
        let err = run(sh("echo nope >&2; exit 3"), b"", Duration::from_secs(20)).unwrap_err();
        assert_eq!(err, "exited with status 3: nope");
        assert!(run(command("/nonexistent/notifier"), b"", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn a_hung_program_is_killed_with_its_group_and_a_background_child_is_not_waited_for() {
        let started = std::time::Instant::now();
        let err = run(sh("sleep 1000 & sleep 1000"), b"", Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("did not finish within 300ms"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(30));
        // An MTA that forks its delivery and leaves: done when the program is.
        let started = std::time::Instant::now();
        run(
            sh("(sleep 20 >/dev/null 2>&1 &) ; exit 0"),
            b"",
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "waited for the background child"
        );
    }
}
