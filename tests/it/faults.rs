//! Faults injected around real pushes (docs/reliability.md: "Failure behaviour"): a mirror server
//! stopped during a burst, a remote that never answers, a connection cut mid-pack, thousands of refs at once, missing
//! mirror and upstream repositories, a spool entry for a non-repository, an unwritable spool,
//! and 16 concurrent pushers. The promise under test: a push the upstream accepted reaches every
//! reachable mirror, and a broken one never delays the others or strands anything.

use crate::support::{CuttingProxy, GitDaemon, TestEnv, path_str};
use serde_json::Value;
use std::io::Write;

use crate::support::binary::*;
use crate::support::procs::{HungListener, Reaper, processes_mentioning};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod extremes;
mod missing_repositories;
mod outages;
mod spool;

// ---------------------------------------------------------------------------
// Helpers

/// A global configuration with quick retries, and a worker that lingers for `linger`.
fn quick_retries(env: &TestEnv, linger: &str, initial: &str, max: &str) {
    write_global_config(
        env,
        &format!(
            "worker_linger = \"{linger}\"\n\n[retry]\ninitial = \"{initial}\"\nmax = \"{max}\"\njitter = false\n\
             # Stay `to_retry`: these tests watch retries, not the `failed` threshold.\nfail_after = 1000\n"
        ),
    );
}

fn file_url(repo: &Path) -> String {
    format!("file://{}", path_str(repo))
}

/// `add REPO NAME URL [extra]`, with `--delay 0s` unless `extra` sets a delay.
fn add_mirror(env: &TestEnv, upstream: &Path, name: &str, url: &str, extra: &[&str]) {
    let mut args = vec!["add", path_str(upstream), name, url];
    if !extra.contains(&"--delay") {
        args.extend(["--delay", "0s"]);
    }
    args.extend_from_slice(extra);
    gpm_ok(env, &args);
}

fn log_text(env: &TestEnv) -> String {
    std::fs::read_to_string(state_base(env).join("git-push-mirror.log")).unwrap_or_default()
}

/// `status --json` of one mirror of `upstream`.
fn status_of(env: &TestEnv, upstream: &Path, mirror: &str) -> Value {
    let out = gpm_output(env, &["status", "--json", path_str(upstream)]);
    let all: Vec<Value> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("status --json: {e}\n{}", stderr(&out)));
    all.into_iter()
        .find(|s| s["mirror"] == mirror)
        .unwrap_or_else(|| panic!("no status for mirror {mirror}"))
}

/// What a failing wait shows: every mirror's status and the worker's log.
fn diagnostics(env: &TestEnv, upstream: &Path) -> String {
    let status = gpm_output(env, &["status", "--json", path_str(upstream)]);
    format!(
        "status:\n{}{}\nlog:\n{}",
        stdout(&status),
        stderr(&status),
        log_text(env)
    )
}

/// Polls `f` until it holds; on timeout panics with the statuses and the log.
fn wait_for(env: &TestEnv, upstream: &Path, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting until {what}\n{}",
                diagnostics(env, upstream)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `mirror` has exactly the upstream's branches and tags.
fn wait_mirror_equals_upstream(env: &TestEnv, upstream: &Path, mirror: &Path, what: &str) {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let expected = env.refs(upstream);
        let last = env.refs(mirror);
        if last == expected {
            return;
        }
        if Instant::now() >= deadline {
            let missing = expected.iter().filter(|(k, v)| last.get(*k) != Some(*v)).count();
            let extra = last.keys().filter(|k| !expected.contains_key(*k)).count();
            panic!(
                "timed out waiting until {what}: {missing} ref(s) missing or different, {extra} extra\n{}",
                diagnostics(env, upstream)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the binary with a deadline; a run that does not finish is killed and fails the test
/// (a worker that loops on a bad entry never finishes).
fn gpm_within(env: &TestEnv, args: &[&str], deadline: Duration) -> Output {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    let out_file = env.path(format!("gpm-{n}.out"));
    let err_file = env.path(format!("gpm-{n}.err"));
    let mut child = gpm(env)
        .args(args)
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .expect("run git-push-mirror");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "git-push-mirror {} still running after {deadline:?}: killed\nlog:\n{}",
                args.join(" "),
                log_text(env)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&out_file).unwrap_or_default(),
        stderr: std::fs::read(&err_file).unwrap_or_default(),
    }
}

fn spool_is_drained(env: &TestEnv) {
    assert!(
        spool_files(env, "new").is_empty(),
        "entries left in spool/new: {:?}",
        spool_files(env, "new")
    );
    assert!(
        spool_files(env, "claimed").is_empty(),
        "entries left in spool/claimed: {:?}",
        spool_files(env, "claimed")
    );
}

/// `git push origin args` from `work`, without `--quiet`: returns the output (the pusher's view).
fn push(env: &TestEnv, work: &Path, args: &[&str]) -> Output {
    let mut all = vec!["push", "origin"];
    all.extend_from_slice(args);
    let out = env.git_output(work, &all);
    crate::support::assert_success(&out, &format!("git {}", all.join(" ")));
    out
}

/// Feeds one hook line to `hook post-receive --no-worker` as git runs it (cwd = repo, GIT_DIR=.).
fn spool_by_hook(env: &TestEnv, repo: &Path, line: &str) {
    let mut hook = gpm(env)
        .args(["hook", "post-receive", "--no-worker"])
        .current_dir(repo)
        .env("GIT_DIR", ".")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    hook.stdin.take().unwrap().write_all(line.as_bytes()).unwrap();
    let out = hook.wait_with_output().unwrap();
    crate::support::assert_success(&out, "hook post-receive --no-worker");
}

const ZERO: &str = "0000000000000000000000000000000000000000";
