//! The `post-receive` hook body: parse githooks(5) stdin, write one durable spool entry, start a
//! detached worker, tell the pusher about the repository's failing mirrors, exit 0. It loads no
//! mirror configuration and touches no network: what it tells comes from one small summary file
//! the worker keeps in the state directory (absent while every mirror is healthy).

use crate::config;
use crate::mirror::refs::is_valid_ref_name;
use crate::mirror::state::StateStore;
use crate::pipeline::spool::{RefUpdate, SPOOL_FORMAT_VERSION, Spool, SpoolEntry, WORKER_LOCK};
use crate::util::fsutil::{FileLock, now_ms};
use crate::util::oid::Oid;
use crate::util::users;
use crate::util::writable::{self, Writer};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
        crate::util::fsutil::share_with_group(settings.shared_group.is_some());
        if let Some(warning) = &settings.warning {
            let _ = writeln!(err, "git-push-mirror: {warning}");
        }
        let repo = hook_repository();
        let recorded = match trusted_spool(&settings, err) {
            Some(spool_dir) => record_push(&spool_dir, &repo, input.updates, options, err),
            None => false,
        };
        if settings.warn_pushers
            && let Ok(repo) = &repo
        {
            warn_about_failing_mirrors(&settings.state_dir, repo, recorded, err);
        }
    }
    finish(options, stdin, err)
}

/// Records the push in `spool_dir` and starts a worker, or says why it could not (and leaves
/// the trace `status` shows meanwhile); whether the push was recorded.
fn record_push(
    spool_dir: &Path,
    repo: &std::io::Result<PathBuf>,
    updates: Vec<RefUpdate>,
    options: &HookOptions<'_>,
    err: &mut dyn Write,
) -> bool {
    let spooled = match repo {
        Ok(repo) => spool_push(spool_dir, repo, updates),
        Err(e) => Err(format!("cannot tell which repository this is ({e})")),
    };
    match spooled {
        Ok(()) => {
            if !options.no_worker
                && let Err(e) = start_worker_if_idle(spool_dir, options.config)
            {
                let _ = writeln!(
                    err,
                    "git-push-mirror: could not start the mirror worker ({e}); cron's `run` will push"
                );
            }
            true
        }
        Err(e) => {
            // A trace that costs no disk space, so `status` says the mirrors may be behind
            // until the next drift scan (see `unrecorded`).
            let traced = crate::pipeline::unrecorded::record(spool_dir, repo.as_ref().ok().map(PathBuf::as_path));
            let _ = writeln!(
                err,
                "git-push-mirror: could not record this push for mirroring: {e}; the next `git-push-mirror run` will catch up{}",
                if traced.is_ok() {
                    ""
                } else {
                    " (and `status` cannot show it meanwhile)"
                }
            );
            false
        }
    }
}

/// Runs the chained hook, if any: its exit status is the hook's.
fn finish(options: &HookOptions<'_>, stdin: &[u8], err: &mut dyn Write) -> i32 {
    match options.chain {
        Some(chained) => run_chained(chained, options.chain_args, stdin, err),
        None => 0,
    }
}

/// The spool this push may be recorded in: the configured one when only trusted users can
/// write it (see [`crate::pipeline::trust`]), else the default one, with a one-line warning;
/// `None` (warned) when neither is: the push is not recorded, and the drift scan of the next
/// `run` finds it once the directory is fixed. A few `stat`s: the push is not delayed.
fn trusted_spool(settings: &config::HookSettings, err: &mut dyn Write) -> Option<PathBuf> {
    let shared = settings
        .shared_group
        .as_deref()
        .and_then(crate::util::users::Group::by_name);
    let trusted = crate::util::trust::Trusted::worker(shared);
    // Checked before it is created (never write into a directory of someone else's), and
    // after (someone may have made it in between).
    let usable = |dir: &Path| {
        crate::pipeline::trust::check_spool_dir(dir, &trusted).and_then(|()| {
            let _ = Spool::new(dir).ensure_dirs();
            crate::pipeline::trust::check_spool_dir(dir, &trusted)
        })
    };
    let refused = match usable(&settings.spool_dir) {
        Ok(()) => return Some(settings.spool_dir.clone()),
        Err(refused) => refused,
    };
    let default = config::default_spool_dir();
    if default != settings.spool_dir && usable(&default).is_ok() {
        let _ = writeln!(
            err,
            "git-push-mirror: {refused}; spooling to {} instead",
            default.display()
        );
        return Some(default);
    }
    let _ = writeln!(
        err,
        "git-push-mirror: {refused}; this push was not recorded for mirroring: once the directory is fixed, \
         `git-push-mirror run` finds it"
    );
    None
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

/// Records the push in the spool; the error says which directory and which user, the two things
/// an admin needs to fix it, since the pusher sees nothing else (`check` says the rest).
fn spool_push(spool_dir: &Path, repo: &Path, updates: Vec<RefUpdate>) -> Result<(), String> {
    let entry = SpoolEntry {
        version: SPOOL_FORMAT_VERSION,
        repo: repo.to_path_buf(),
        received_at_ms: now_ms(),
        updates,
    };
    Spool::new(spool_dir).write(&entry).map(|_| ()).map_err(|e| {
        let uid = users::effective_uid();
        let user = format!("{} (uid {uid})", users::user_label(uid));
        match writable::tree_denies(spool_dir, &Writer::user(uid)) {
            Some(denied) => {
                let at = if denied.path == spool_dir {
                    String::new()
                } else {
                    format!("{} ", denied.path.display())
                };
                format!(
                    "the spool {} is not writable by {user}, whom this hook runs as: {at}{} ({e}); \
                     `git-push-mirror check` gives the fix",
                    spool_dir.display(),
                    denied.why
                )
            }
            None => format!("writing into the spool {} as {user}: {e}", spool_dir.display()),
        }
    })
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
    // The worker must find the global file the hook found; without --config, that may be the
    // system file this variable names (see `config::system_config_file`).
    if std::env::var_os(config::SYSTEM_CONFIG_ENV).is_some_and(|v| !v.is_empty()) {
        cmd.env(config::SYSTEM_CONFIG_ENV, config::system_config_file());
    }
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
