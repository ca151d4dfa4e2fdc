//! The `post-receive` hook body: parse githooks(5) stdin, write one durable spool entry, start a
//! detached worker, tell the pusher about the repository's failing mirrors, exit 0. It loads no
//! mirror configuration and touches no network: what it tells comes from one small summary file
//! the worker keeps in the state directory (absent while every mirror is healthy).

use crate::config;
use crate::mirror::refs::is_valid_ref_name;
use crate::mirror::state::StateStore;
use crate::pipeline::spool::{RefUpdate, SPOOL_FORMAT_VERSION, Spool, SpoolEntry};
use crate::util::fsutil::{FileLock, now_ms};
use crate::util::oid::Oid;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The name of the worker lock inside the spool directory.
pub const WORKER_LOCK: &str = "worker.lock";

/// The hook's stdin, parsed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HookInput {
    pub updates: Vec<RefUpdate>,
    /// One message per line that was skipped.
    pub skipped: Vec<String>,
}

/// Parses `<old-oid> SP <new-oid> SP <ref-name> LF` lines. Malformed lines
/// and invalid ref names are reported and skipped; valid lines are kept.
pub fn parse_hook_input(bytes: &[u8]) -> HookInput {
    let mut input = HookInput::default();
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            continue;
        }
        let line_no = index + 1;
        let Ok(line) = std::str::from_utf8(raw) else {
            input.skipped.push(format!("line {line_no}: not UTF-8"));
            continue;
        };
        let fields: Vec<&str> = line.split(' ').collect();
        let [old, new, name] = fields[..] else {
            input.skipped.push(format!(
                "line {line_no}: expected \"<old-oid> <new-oid> <ref>\", got {line:?}"
            ));
            continue;
        };
        let (Some(old), Some(new)) = (Oid::parse(old), Oid::parse(new)) else {
            input
                .skipped
                .push(format!("line {line_no}: invalid object id in {line:?}"));
            continue;
        };
        if !is_valid_ref_name(name) {
            input.skipped.push(format!("line {line_no}: invalid ref name {name:?}"));
            continue;
        }
        input.updates.push(RefUpdate {
            name: name.to_string(),
            old,
            new,
        });
    }
    input
}

/// The repository a hook runs in: `$GIT_DIR` (relative to the current
/// directory, `.` in a bare repository's hook) or the current directory.
pub fn hook_repository() -> std::io::Result<PathBuf> {
    let cwd = std::env::current_dir()?;
    let git_dir = std::env::var_os("GIT_DIR").map(|d| cwd.join(d)).unwrap_or(cwd);
    std::fs::canonicalize(git_dir)
}

/// Options of one hook run.
pub struct HookOptions<'a> {
    pub config: Option<&'a Path>,
    /// A previous `post-receive` that still runs after ours, with the same stdin.
    pub chain: Option<&'a Path>,
    /// Arguments to pass on to the chained hook.
    pub chain_args: &'a [String],
    /// Don't start a worker (for tests and admins who rely on cron only).
    pub no_worker: bool,
}

/// Runs the hook. Always returns 0 unless a chained hook fails: a mirror
/// problem never turns into a failed push.
pub fn run_hook(stdin: &[u8], options: &HookOptions<'_>, err: &mut dyn Write) -> i32 {
    let input = parse_hook_input(stdin);
    for message in &input.skipped {
        let _ = writeln!(err, "git-push-mirror: skipped {message}");
    }
    if !input.updates.is_empty() {
        let settings = config::hook_settings(options.config);
        if let Some(warning) = &settings.warning {
            let _ = writeln!(err, "git-push-mirror: {warning}");
        }
        let repo = hook_repository();
        let spooled = repo
            .as_ref()
            .map_err(|e| std::io::Error::new(e.kind(), e.to_string()))
            .and_then(|repo| spool_push(&settings.spool_dir, repo, input.updates));
        let recorded = spooled.is_ok();
        match spooled {
            Ok(()) => {
                if !options.no_worker
                    && let Err(e) = start_worker_if_idle(&settings.spool_dir, options.config)
                {
                    let _ = writeln!(
                        err,
                        "git-push-mirror: could not start the mirror worker ({e}); cron's `run` will push"
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(
                    err,
                    "git-push-mirror: could not record this push for mirroring ({e}); the next `git-push-mirror run` will catch up"
                );
            }
        }
        if settings.warn_pushers
            && let Ok(repo) = &repo
        {
            warn_about_failing_mirrors(&settings.state_dir, repo, recorded, err);
        }
    }
    match options.chain {
        Some(chained) => run_chained(chained, options.chain_args, stdin, err),
        None => 0,
    }
}

/// One `remote:` line per failing mirror of `repo` (gitolite's habit): its name, since when, the
/// first line of its error, and what becomes of this push. Nothing when every mirror is healthy.
fn warn_about_failing_mirrors(state_dir: &Path, repo: &Path, recorded: bool, err: &mut dyn Write) {
    let outcome = if recorded {
        "this push is recorded and will be retried"
    } else {
        "it is retried"
    };
    for failing in StateStore::new(state_dir).failing_mirrors(repo) {
        let since = failing
            .since_ms
            .map(|ms| {
                let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
                format!(" since {}", humantime::format_rfc3339_seconds(at))
            })
            .unwrap_or_default();
        let error = if failing.error.is_empty() {
            String::new()
        } else {
            format!(": {}", failing.error)
        };
        let _ = writeln!(
            err,
            "git-push-mirror: mirror {} is failing{since}{error}; {outcome}",
            failing.mirror
        );
    }
}

fn spool_push(spool_dir: &Path, repo: &Path, updates: Vec<RefUpdate>) -> std::io::Result<()> {
    let entry = SpoolEntry {
        version: SPOOL_FORMAT_VERSION,
        repo: repo.to_path_buf(),
        received_at_ms: now_ms(),
        updates,
    };
    Spool::new(spool_dir).write(&entry).map(|_| ())
}

/// Starts `git-push-mirror run` fully detached (own session, no inherited
/// stdio, clean environment), unless a worker already holds the lock: that
/// one re-checks the spool after releasing it, so our entry is not stranded.
pub fn start_worker_if_idle(spool_dir: &Path, config: Option<&Path>) -> std::io::Result<()> {
    match FileLock::try_acquire(&spool_dir.join(WORKER_LOCK))? {
        None => return Ok(()),
        Some(lock) => drop(lock),
    }
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    // A file named by $GIT_PUSH_MIRROR_CONFIG is passed on as --config: the
    // worker's environment loses every GIT_* variable, and its directory is `/`.
    let named = std::env::var_os(config::CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(config) = config.map(Path::to_path_buf).or(named) {
        cmd.arg("--config").arg(std::path::absolute(config)?);
    }
    cmd.arg("run").arg("--detached");
    crate::git::scrub_environment(&mut cmd);
    cmd.current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid() is async-signal-safe; it detaches the worker from the
    // pusher's session so nothing holds the push open or signals the worker.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().map(|_| ())
}

fn run_chained(hook: &Path, args: &[String], stdin: &[u8], err: &mut dyn Write) -> i32 {
    let child = Command::new(hook).args(args).stdin(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            let _ = writeln!(
                err,
                "git-push-mirror: could not run the chained hook {}: {e}",
                hook.display()
            );
            return 1;
        }
    };
    if let Some(mut pipe) = child.stdin.take() {
        // A hook that doesn't read its stdin closes the pipe: not an error.
        let _ = pipe.write_all(stdin);
    }
    match child.wait() {
        Ok(status) => status.code().unwrap_or(1),
        Err(_) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const Z: &str = "0000000000000000000000000000000000000000";

    #[test]
    fn valid_lines_are_parsed() {
        let stdin = format!("{Z} {A} refs/heads/main\n{A} {Z} refs/tags/v1\n");
        let input = parse_hook_input(stdin.as_bytes());
        assert!(input.skipped.is_empty());
        assert_eq!(input.updates.len(), 2);
        assert_eq!(input.updates[0].name, "refs/heads/main");
        assert!(input.updates[0].old.is_null());
        assert!(input.updates[1].new.is_null());
    }

    #[test]
    fn junk_and_invalid_ref_names_are_skipped_but_valid_lines_kept() {
        let stdin = format!(
            "garbage\n{A} {A}\n{A} xyz refs/heads/a\n{Z} {A} refs/heads/a..b\n{Z} {A} main\n{Z} {A} refs/heads/ok\n{Z} {A} refs/heads/two spaces\n"
        );
        let mut bytes = stdin.into_bytes();
        bytes.extend_from_slice(b"\xff\xfe\n\xff\n");
        let input = parse_hook_input(&bytes);
        assert_eq!(input.updates.len(), 1);
        assert_eq!(input.updates[0].name, "refs/heads/ok");
        assert_eq!(input.skipped.len(), 8, "{:?}", input.skipped);
    }

    #[test]
    fn sha256_object_ids_are_parsed() {
        // A push to a SHA-256 repository (`git init --object-format=sha256`).
        let (z, a) = ("0".repeat(64), "ab".repeat(32));
        let input = parse_hook_input(format!("{z} {a} refs/heads/main\n{a} {z} refs/tags/v1\n").as_bytes());
        assert!(input.skipped.is_empty(), "{:?}", input.skipped);
        assert_eq!(input.updates[0].new.as_str(), a);
        assert!(input.updates[0].old.is_null() && input.updates[1].new.is_null());
    }

    #[test]
    fn crlf_and_missing_final_newline_are_tolerated() {
        let stdin = format!("{Z} {A} refs/heads/a\r\n{Z} {A} refs/heads/b");
        let input = parse_hook_input(stdin.as_bytes());
        assert_eq!(input.updates.len(), 2);
    }
}
