//! Running git: the command every git child starts from (a clean environment, no terminal prompts), wall-clock timeouts that kill the child's whole process group, and output read without deadlocks.

use super::{env, error::GitError, local_refs, orphans};
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Inherited variables that git children may keep: they point git at the
/// admin's configuration and CA certificates, never at another repository.
const KEPT_GIT_VARIABLES: &[&str] = &[
    "GIT_CONFIG_NOSYSTEM",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
];

/// Whether an inherited environment variable must not reach a git child.
/// A hook runs with `GIT_DIR=.`, `GIT_QUARANTINE_PATH`, `GIT_PUSH_OPTION_*`,
/// object-directory variables and more; leaking them into a push of another
/// repository corrupts data.
pub fn is_unsafe_inherited_variable(name: &str) -> bool {
    (name.starts_with("GIT_") && !KEPT_GIT_VARIABLES.contains(&name))
        || matches!(name, "LC_ALL" | "LANGUAGE" | "SSH_ASKPASS" | "SSH_AUTH_SOCK")
}

/// Removes every unsafe inherited variable from `cmd` and sets the ones git
/// children always get. Also used for the detached worker the hook starts.
pub fn scrub_environment(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_none_or(is_unsafe_inherited_variable) {
            cmd.env_remove(&name);
        }
    }
}

/// A git command with the clean environment (only allowed variables, see [`env`]: no hook
/// location variables, no secrets), no prompts, C messages, null stdin; it dies with this
/// process (see [`orphans`]).
pub fn git_command() -> Command {
    let mut cmd = Command::new("git");
    env::inherit_allowed_only(&mut cmd);
    orphans::die_with_this_process(&mut cmd);
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_MESSAGES", "C")
        .env("GCM_INTERACTIVE", "never")
        .stdin(Stdio::null());
    cmd
}

/// What a finished git process left behind.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` in its own process group, capturing its output; after
/// `timeout` the whole group (ssh, https helpers, hooks) is killed.
pub fn run_with_timeout(cmd: Command, timeout: Duration) -> Result<Finished, GitError> {
    let (success, stdout, stderr) = run_with_input(cmd, None, timeout)?;
    Ok(Finished {
        success,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr,
    })
}

/// [`run_with_timeout`] with `input` written to the child's stdin (stdin stays
/// as `cmd` has it when `None`); stdout comes back as bytes.
pub(super) fn run_with_input(
    mut cmd: Command,
    input: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<(bool, Vec<u8>, String), GitError> {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = cmd.spawn().map_err(|e| GitError::Spawn(e.to_string()))?;
    let group = child.id() as libc::pid_t;
    let writer = match (input, child.stdin.take()) {
        // From a thread: the child may write a lot before it reads all its input.
        (Some(input), Some(mut stdin)) => Some(std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })),
        _ => None,
    };
    let stdout = child.stdout.take().map(read_in_background);
    let stderr = child.stderr.take().map(read_in_background);
    let watchdog = Watchdog::start(group, timeout);
    let status = child.wait();
    let timed_out = watchdog.stop();
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let stdout = stdout.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
    let stderr = stderr.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
    let status = status.map_err(|e| GitError::Spawn(e.to_string()))?;
    if timed_out {
        return Err(GitError::TimedOut(timeout));
    }
    let success = status.success() && status.signal().is_none();
    Ok((success, stdout, String::from_utf8_lossy(&stderr).into_owned()))
}

/// How long a process group whose time is up gets to end after SIGTERM before SIGKILL: git
/// removes its lock files on SIGTERM (a push to a `file://` mirror killed outright could leave
/// the mirror's ref locked).
const TERM_GRACE: Duration = Duration::from_secs(2);

/// Ends a process group when its time is up: SIGTERM, then SIGKILL after [`TERM_GRACE`].
pub(super) struct Watchdog {
    group: libc::pid_t,
    done: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    pub(super) fn start(group: libc::pid_t, timeout: Duration) -> Watchdog {
        let (done, done_rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(timeout) {
                // SAFETY: kill(2) with a negative pid signals the process group we created.
                unsafe { libc::kill(-group, libc::SIGTERM) };
                let deadline = std::time::Instant::now() + TERM_GRACE;
                // SAFETY: signal 0 only asks whether the group still has members.
                while unsafe { libc::kill(-group, 0) } == 0 && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                // SAFETY: as above.
                unsafe { libc::kill(-group, libc::SIGKILL) };
                true
            } else {
                false
            }
        });
        Watchdog { group, done, thread }
    }

    /// Call once the group's leader has been reaped; returns whether time ran out.
    pub(super) fn stop(self) -> bool {
        let _ = self.done.send(());
        let timed_out = self.thread.join().unwrap_or(false);
        // Helpers of the group may outlive git itself and hold our pipes open.
        // SAFETY: as above; the group is ours and the leader has been reaped.
        unsafe { libc::kill(-self.group, libc::SIGKILL) };
        timed_out
    }
}

pub(super) fn read_in_background(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// The hooks directory git uses for a repository (honours `core.hooksPath`).
pub fn hooks_dir(git_dir: &Path) -> Result<std::path::PathBuf, GitError> {
    let mut cmd = git_command();
    cmd.arg("--git-dir")
        .arg(git_dir)
        .args(["rev-parse", "--path-format=absolute", "--git-path", "hooks"]);
    let finished = run_with_timeout(cmd, Duration::from_secs(30))?;
    if !finished.success {
        return Err(local_refs::local_failure(
            "finding the hooks directory",
            &finished.stderr,
        ));
    }
    Ok(std::path::PathBuf::from(finished.stdout.trim_end_matches('\n')))
}

/// `git config --get KEY` as the repository at `git_dir` sees it (its own, the user's and the
/// system's configuration); `None` when the key is unset.
pub fn config_get(git_dir: &Path, key: &str) -> Result<Option<String>, GitError> {
    let mut cmd = git_command();
    cmd.arg("--git-dir").arg(git_dir).args(["config", "--get", key]);
    let finished = run_with_timeout(cmd, Duration::from_secs(30))?;
    if finished.success {
        return Ok(Some(finished.stdout.trim_end_matches('\n').to_string()));
    }
    if finished.stderr.trim().is_empty() {
        return Ok(None); // exit 1 without a word: unset
    }
    Err(local_refs::local_failure(
        "reading the git configuration",
        &finished.stderr,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_variables_never_reach_git_children() {
        for unsafe_name in [
            "GIT_DIR",
            "GIT_QUARANTINE_PATH",
            "GIT_PUSH_OPTION_0",
            "GIT_PUSH_OPTION_COUNT",
            "GIT_PROTOCOL",
            "GIT_OBJECT_DIRECTORY",
            "GIT_ALTERNATE_OBJECT_DIRECTORIES",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_CONFIG_PARAMETERS",
            "GIT_CONFIG_COUNT",
            "GIT_EXEC_PATH",
            "GIT_SSH_COMMAND",
            "LC_ALL",
            "LANGUAGE",
        ] {
            assert!(is_unsafe_inherited_variable(unsafe_name), "{unsafe_name}");
        }
        for kept in [
            "PATH",
            "HOME",
            "GIT_CONFIG_GLOBAL",
            "GIT_CONFIG_NOSYSTEM",
            "GIT_SSL_CAINFO",
            "LANG",
        ] {
            assert!(!is_unsafe_inherited_variable(kept), "{kept}");
        }
    }

    #[test]
    fn a_child_whose_time_is_up_may_clean_up_and_one_that_will_not_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let cleaned = dir.path().join("cleaned");
        // Like git: on SIGTERM, remove the lock files and leave.
        let mut polite = Command::new("sh");
        polite.args([
            "-c",
            "trap 'touch \"$0\"; exit 1' TERM; while :; do sleep 0.05; done",
            cleaned.to_str().unwrap(),
        ]);
        assert!(run_with_timeout(polite, Duration::from_millis(200)).is_err());
        assert!(cleaned.exists(), "SIGTERM came first");
        let mut stubborn = Command::new("sh");
        stubborn.args(["-c", "trap '' TERM; while :; do sleep 0.05; done"]);
        let started = std::time::Instant::now();
        assert!(run_with_timeout(stubborn, Duration::from_millis(200)).is_err());
        assert!(
            started.elapsed() < TERM_GRACE + Duration::from_secs(10),
            "SIGKILL followed"
        );
    }

    #[test]
    fn a_hung_child_is_killed_with_its_process_group() {
        let mut cmd = Command::new("sh");
        // The grandchild `sleep` holds stdout open: only killing the group ends it.
        cmd.args(["-c", "sleep 30 & sleep 30; echo never"]);
        let started = std::time::Instant::now();
        let result = run_with_timeout(cmd, Duration::from_millis(200));
        assert_eq!(result.unwrap_err(), GitError::TimedOut(Duration::from_millis(200)));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the process group was not killed"
        );
    }
}
