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

/// The `remote: git-push-mirror: …` lines a pusher saw.
fn our_remote_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("remote: git-push-mirror"))
        .map(str::to_owned)
        .collect()
}

/// Incompressible-ish text (hex of a xorshift stream) of `len` bytes.
fn noise(len: usize, seed: u64) -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed;
    let mut s = String::with_capacity(len + 16);
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{x:016x}"));
    }
    s.truncate(len);
    s
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

/// Log lines naming `path` as a whole path (not as the prefix of a longer one).
fn lines_naming(log: &str, path: &Path) -> usize {
    let path = path_str(path);
    let continues_the_path = |rest: &str| {
        let mut chars = rest.chars();
        match chars.next() {
            None => false,
            // A full stop ends a sentence; `.git` or `.d` continues a name.
            Some('.') => chars.next().is_some_and(|c| !c.is_whitespace()),
            Some(c) => c.is_alphanumeric() || "-_/".contains(c),
        }
    };
    log.lines()
        .filter(|line| {
            line.match_indices(path)
                .any(|(at, _)| !continues_the_path(&line[at + path.len()..]))
        })
        .count()
}

const ZERO: &str = "0000000000000000000000000000000000000000";

// ---------------------------------------------------------------------------
// Outage

#[test]
fn a_mirror_down_during_50_pushes_catches_up_when_it_returns_while_the_other_stays_current() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    quick_retries(&env, "30s", "200ms", "1s");
    let served = env.path("served");
    std::fs::create_dir_all(&served).unwrap();
    let mut daemon = GitDaemon::start(&served);
    let mirror_a = env.bare_repo("served/a.git");
    let mirror_b = env.bare_repo("b.git");
    let upstream = env.bare_repo("upstream.git");
    add_mirror(&env, &upstream, "a", &daemon.url("a.git"), &[]);
    add_mirror(&env, &upstream, "b", &file_url(&mirror_b), &[]);
    gpm_ok(&env, &["install", path_str(&upstream)]);
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "f.txt", "start", "start");
    push(&env, &work, &["main"]);
    wait_mirror_equals_upstream(&env, &upstream, &mirror_a, "mirror a has the first push");
    wait_mirror_equals_upstream(&env, &upstream, &mirror_b, "mirror b has the first push");
    let before_outage = env.refs(&mirror_a);

    daemon.stop();
    for i in 0..50 {
        env.commit(&work, "f.txt", &format!("push {i}"), &format!("push {i}"));
        let target = match i % 6 {
            0 => "HEAD:refs/heads/main".to_string(),
            n => format!("HEAD:refs/heads/b{n}"),
        };
        push(&env, &work, &["--quiet", &target]);
        if i == 24 {
            wait_mirror_equals_upstream(&env, &upstream, &mirror_b, "mirror b keeps up during the outage");
        }
    }
    wait_mirror_equals_upstream(&env, &upstream, &mirror_b, "mirror b has every push while a is down");
    assert!(!daemon.is_running());
    assert_eq!(
        env.refs(&mirror_a),
        before_outage,
        "nothing reached a while it was down"
    );

    wait_for(&env, &upstream, "mirror a is to_retry", CONVERGE, || {
        let a = status_of(&env, &upstream, "a");
        a["update_status"] == "to_retry" && a["consecutive_failures"].as_u64() >= Some(1)
    });
    let a = status_of(&env, &upstream, "a");
    assert!(
        a["last_error"].as_str().is_some_and(|e| !e.trim().is_empty()),
        "a failed update records why: {a:#}"
    );
    assert!(
        !a["pending_refs"].as_array().unwrap().is_empty(),
        "a keeps its pending refs: {a:#}"
    );
    // Retries go on by themselves, with no new push to trigger them.
    let failures = a["consecutive_failures"].as_u64().unwrap();
    wait_for(
        &env,
        &upstream,
        "mirror a is retried without a new push",
        CONVERGE,
        || status_of(&env, &upstream, "a")["consecutive_failures"].as_u64() > Some(failures),
    );
    let b = status_of(&env, &upstream, "b");
    assert_eq!(b["update_status"], "finished", "b is unaffected by a's outage: {b:#}");
    assert_eq!(b["last_error"], Value::Null, "{b:#}");

    // The server returns: the lingering worker catches up with no `run` from anyone.
    daemon.restart();
    wait_mirror_equals_upstream(&env, &upstream, &mirror_a, "mirror a catches up after the outage");
    wait_for(&env, &upstream, "mirror a is finished", CONVERGE, || {
        let a = status_of(&env, &upstream, "a");
        a["update_status"] == "finished" && a["consecutive_failures"] == 0 && a["last_error"].is_null()
    });
    // Cron's run afterwards finds nothing to do and nothing stranded.
    let out = gpm_within(&env, &["run", "--wait"], CONVERGE);
    assert!(out.status.success(), "{}\n{}", stderr(&out), log_text(&env));
    spool_is_drained(&env);
    assert_eq!(env.refs(&mirror_a), env.refs(&upstream));
    assert_eq!(env.refs(&mirror_b), env.refs(&upstream));
    let a = status_of(&env, &upstream, "a");
    assert_eq!(a["pending_refs"], serde_json::json!([]), "{a:#}");
}

// ---------------------------------------------------------------------------
// Hung remote

#[test]
fn a_remote_that_never_answers_is_killed_at_timeout_and_delays_no_other_mirror() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    // A long backoff and a short linger: after its one timed-out attempt the worker leaves.
    quick_retries(&env, "1s", "1m", "1m");
    let hung = HungListener::start();
    let needle = format!("127.0.0.1:{}", hung.port);
    let healthy = env.bare_repo("healthy.git");
    let upstream = env.bare_repo("upstream.git");
    add_mirror(
        &env,
        &upstream,
        "hung",
        &format!("git://{needle}/x.git"),
        &["--timeout", "2s"],
    );
    add_mirror(&env, &upstream, "healthy", &file_url(&healthy), &[]);
    gpm_ok(&env, &["install", path_str(&upstream)]);
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    push(&env, &work, &["main"]);

    wait_mirror_equals_upstream(&env, &upstream, &healthy, "the healthy mirror converges");
    // Isolation: the healthy mirror landed while the hung one is still inside its attempt.
    let hanging = status_of(&env, &upstream, "hung");
    assert_eq!(
        hanging["update_status"], "started",
        "the healthy mirror waited for the hung one: {hanging:#}"
    );
    assert!(hung.accepted() >= 1, "the hung remote was contacted");

    wait_for(
        &env,
        &upstream,
        "the hung mirror gives up at its timeout",
        CONVERGE,
        || status_of(&env, &upstream, "hung")["update_status"] != "started",
    );
    let status = status_of(&env, &upstream, "hung");
    assert_eq!(status["update_status"], "to_retry", "{status:#}");
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("timed out"), "last_error says it timed out: {status:#}");
    assert!(
        !status["pending_refs"].as_array().unwrap().is_empty(),
        "the hung mirror keeps its pending refs: {status:#}"
    );
    // The timed-out git and everything in its process group are gone.
    let left = processes_mentioning(&needle);
    assert!(
        left.is_empty(),
        "processes of the timed-out push are still running: {left:#?}"
    );
    let healthy_status = status_of(&env, &upstream, "healthy");
    assert_eq!(healthy_status["update_status"], "finished", "{healthy_status:#}");
}

// ---------------------------------------------------------------------------
// Connection dropped mid-pack

#[test]
fn a_connection_dropped_mid_pack_is_retried_and_lands_once_the_network_recovers() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    quick_retries(&env, "30s", "200ms", "1s");
    let served = env.path("served");
    std::fs::create_dir_all(&served).unwrap();
    let daemon = GitDaemon::start(&served);
    let mirror = env.bare_repo("served/m.git");
    let proxy = CuttingProxy::start(daemon.port(), 2000);
    let upstream = env.bare_repo("upstream.git");
    add_mirror(
        &env,
        &upstream,
        "m",
        &format!("git://127.0.0.1:{}/m.git", proxy.port),
        &[],
    );
    gpm_ok(&env, &["install", path_str(&upstream)]);
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "big.txt", &noise(600_000, 1), "a large file");
    push(&env, &work, &["main"]);

    wait_for(&env, &upstream, "the cut push is to_retry", CONVERGE, || {
        status_of(&env, &upstream, "m")["update_status"] == "to_retry"
    });
    let status = status_of(&env, &upstream, "m");
    assert!(proxy.cuts.load(Ordering::SeqCst) >= 1, "the proxy cut a connection");
    assert!(
        status["last_error"].as_str().is_some_and(|e| !e.trim().is_empty()),
        "{status:#}"
    );
    assert!(env.refs(&mirror).is_empty(), "a cut push lands nothing");

    proxy.pass.store(true, Ordering::SeqCst);
    wait_mirror_equals_upstream(
        &env,
        &upstream,
        &mirror,
        "the mirror converges once the proxy passes everything",
    );
    wait_for(&env, &upstream, "the mirror is finished", CONVERGE, || {
        let s = status_of(&env, &upstream, "m");
        s["update_status"] == "finished" && s["last_error"].is_null()
    });
}

// ---------------------------------------------------------------------------
// Thousands of refs

#[test]
fn three_thousand_branches_in_one_push_are_mirrored_exactly_and_a_thousand_deleted_exactly() {
    const BRANCHES: usize = 3000;
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    quick_retries(&env, "5s", "200ms", "1s");
    let upstream = env.bare_repo("upstream.git");
    let mirror = env.bare_repo("mirror.git");
    add_mirror(&env, &upstream, "backup", &file_url(&mirror), &[]);
    gpm_ok(&env, &["install", path_str(&upstream)]);
    // The work clone keeps its refs in a reftable: creating 3000 loose refs costs seconds of
    // filesystem time here, and only the upstream and the mirror are under test.
    let work = env.path("work");
    env.git(
        env.root(),
        &[
            "clone",
            "--quiet",
            "--ref-format=reftable",
            path_str(&upstream),
            path_str(&work),
        ],
    );
    let first = env.commit(&work, "a.txt", "one", "first");
    let second = env.commit(&work, "a.txt", "two", "second");
    push(&env, &work, &["--quiet", "main"]);
    wait_mirror_equals_upstream(&env, &upstream, &mirror, "main is mirrored");

    let update_refs = |lines: String| {
        let mut child = env
            .cmd("git")
            .current_dir(&work)
            .args(["update-ref", "--stdin"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "git update-ref --stdin");
    };
    let branch = |i: usize| format!("refs/heads/many/{}/b{i:04}", i % 7);
    update_refs(
        (0..BRANCHES)
            .map(|i| format!("create {} {}\n", branch(i), if i % 2 == 0 { &first } else { &second }))
            .collect(),
    );
    push(&env, &work, &["--quiet", "refs/heads/*:refs/heads/*"]);
    assert_eq!(env.refs(&upstream).len(), BRANCHES + 1);
    wait_mirror_equals_upstream(&env, &upstream, &mirror, "3000 new branches are mirrored");
    wait_for(&env, &upstream, "the update is finished", CONVERGE, || {
        status_of(&env, &upstream, "backup")["update_status"] == "finished"
    });

    // All merged into main: deleting a thousand of them upstream in one push deletes exactly
    // those on the mirror. (A thousand, not all: each loose ref deleted upstream and on the
    // mirror costs filesystem time, and this test must stay quick.)
    update_refs(
        (0..BRANCHES)
            .step_by(3)
            .map(|i| format!("delete {}\n", branch(i)))
            .collect(),
    );
    push(&env, &work, &["--quiet", "--prune", "refs/heads/*:refs/heads/*"]);
    assert_eq!(env.refs(&upstream).len(), BRANCHES - BRANCHES / 3 + 1);
    wait_mirror_equals_upstream(&env, &upstream, &mirror, "1000 deletions are mirrored");
    wait_for(&env, &upstream, "the deletions are finished", CONVERGE, || {
        let s = status_of(&env, &upstream, "backup");
        s["update_status"] == "finished" && s["pending_refs"] == serde_json::json!([])
    });
    let s = status_of(&env, &upstream, "backup");
    assert_eq!(s["kept_refs"], serde_json::json!([]), "{s:#}");
}

// ---------------------------------------------------------------------------
// A mirror repository that does not exist

#[test]
fn a_mirror_repository_that_does_not_exist_is_failed_as_permanent_with_a_clear_error_and_others_land() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    quick_retries(&env, "1s", "1m", "1m");
    let served = env.path("served");
    std::fs::create_dir_all(&served).unwrap();
    let daemon = GitDaemon::start(&served);
    let good = env.bare_repo("good.git");
    let upstream = env.bare_repo("upstream.git");
    let missing = env.path("does-not-exist.git");
    add_mirror(&env, &upstream, "gone-file", &file_url(&missing), &[]);
    add_mirror(&env, &upstream, "gone-daemon", &daemon.url("does-not-exist.git"), &[]);
    add_mirror(&env, &upstream, "good", &file_url(&good), &[]);
    gpm_ok(&env, &["install", path_str(&upstream)]);
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    push(&env, &work, &["main"]);

    wait_mirror_equals_upstream(&env, &upstream, &good, "the good mirror converges");
    for name in ["gone-file", "gone-daemon"] {
        // A person must create it (or fix the URL): failed at once, not retried in quick steps.
        wait_for(&env, &upstream, &format!("{name} is failed"), CONVERGE, || {
            status_of(&env, &upstream, name)["update_status"] == "failed"
        });
        let status = status_of(&env, &upstream, name);
        assert_eq!(status["failure_class"], "permanent", "{name}: {status:#}");
        let error = status["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains("does-not-exist.git") && error.to_lowercase().contains("repository"),
            "{name}: last_error names the missing repository: {status:#}"
        );
    }
    assert!(!missing.exists(), "a missing mirror is never created by a push");
    // Its refs can land before its status says so: wait for the last word.
    wait_for(&env, &upstream, "the good mirror is finished", CONVERGE, || {
        status_of(&env, &upstream, "good")["update_status"] == "finished"
    });
}

// ---------------------------------------------------------------------------
// The upstream repository deleted while its entries are pending

#[test]
fn a_repository_deleted_while_entries_are_pending_is_logged_once_and_its_entries_retired() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    quick_retries(&env, "1s", "1m", "1m");
    let upstream = env.bare_repo("upstream.git");
    let mirror = env.bare_repo("mirror.git");
    add_mirror(&env, &upstream, "backup", &file_url(&mirror), &[]);
    let work = env.clone_work(&upstream, "work");
    let head = env.commit(&work, "a.txt", "one", "first");
    push(&env, &work, &["--quiet", "main"]);
    spool_by_hook(&env, &upstream, &format!("{ZERO} {head} refs/heads/main\n"));
    assert_eq!(spool_files(&env, "new").len(), 1, "the hook spooled one entry");

    let repo = std::fs::canonicalize(&upstream).unwrap();
    std::fs::remove_dir_all(&upstream).unwrap();
    let out = gpm_within(&env, &["run", "--wait"], Duration::from_secs(30));
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "run crashed: {:?}\n{}\nlog:\n{}",
        out.status,
        stderr(&out),
        log_text(&env)
    );
    spool_is_drained(&env);
    assert!(spool_files(&env, "tmp").is_empty());
    let log = log_text(&env);
    assert_eq!(
        lines_naming(&log, &repo),
        1,
        "the deleted repository is logged exactly once by a run:\n{log}"
    );
    assert!(
        env.refs(&mirror).is_empty(),
        "nothing was pushed from a deleted repository"
    );

    // The next cron run is just as quick, and leaves nothing behind either.
    let again = gpm_within(&env, &["run", "--wait"], Duration::from_secs(30));
    assert!(matches!(again.status.code(), Some(0 | 1)), "{}", log_text(&env));
    spool_is_drained(&env);
}

#[test]
fn a_fleet_repository_deleted_with_pending_work_is_logged_once_and_not_retried_in_a_loop() {
    // With a fleet mirror the configuration outlives the repository (it is global), so the
    // worker still has a mirror to update for a repository that is gone.
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    let srv = env.path("srv");
    let mirrors = env.path("mirrors");
    let configure = |linger: &str| {
        write_global_config(
            &env,
            &format!(
                "repos_root = \"{}\"\nworker_linger = \"{linger}\"\n\n\
                 [retry]\ninitial = \"200ms\"\nmax = \"1s\"\njitter = false\nfail_after = 1000\n\n\
                 [defaults]\ndelay = \"0s\"\n\n[mirror.backup]\nrepos = [\"acme/*\"]\nurl = \"file://{}/{{name}}.git\"\n",
                path_str(&srv),
                path_str(&mirrors)
            ),
        )
    };
    configure("0s");
    let upstream = env.bare_repo("srv/acme/app.git");
    let mirror = env.bare_repo("mirrors/acme/app.git");
    let work = env.clone_work(&upstream, "work");
    let mut old = ZERO.to_string();
    let mut push_and_spool = |content: &str| {
        let new = env.commit(&work, "a.txt", content, content);
        push(&env, &work, &["--quiet", "main"]);
        spool_by_hook(&env, &upstream, &format!("{old} {new} refs/heads/main\n"));
        old = new.clone();
        new
    };
    let first = push_and_spool("first");
    let out = gpm_within(&env, &["run", "--wait"], CONVERGE);
    assert!(out.status.success(), "{}\n{}", stderr(&out), log_text(&env));
    assert_eq!(env.refs(&mirror), env.refs(&upstream), "the fleet mirror works");

    // The mirror is away for a while: the second push stays pending, to retry (a missing
    // repository is a permanent failure: retried at the next push).
    let away = env.path("mirror-away.git");
    std::fs::rename(&mirror, &away).unwrap();
    push_and_spool("second");
    gpm_within(&env, &["run", "--wait"], CONVERGE);
    let status = status_of(&env, &upstream, "backup");
    assert_eq!(status["update_status"], "failed", "{status:#}");
    assert_eq!(
        status["pending_refs"],
        serde_json::json!(["refs/heads/main"]),
        "{status:#}"
    );

    // The mirror is back, a third push is spooled, and the repository is deleted.
    std::fs::rename(&away, &mirror).unwrap();
    push_and_spool("third");
    let repo = std::fs::canonicalize(&upstream).unwrap();
    std::fs::remove_dir_all(&upstream).unwrap();
    configure("30s");
    let log_before = log_text(&env).len();

    // Retrying every second within a 30 s linger would keep this run going: it must not.
    let out = gpm_within(&env, &["run", "--wait"], Duration::from_secs(20));
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "run crashed: {:?}\n{}\nlog:\n{}",
        out.status,
        stderr(&out),
        log_text(&env)
    );
    spool_is_drained(&env);
    let log = log_text(&env);
    let this_run = &log[log_before..];
    // Once, for the dropped spool entry and the repository forgotten with its mirror's pending
    // refs (the mirror's state goes with it); never in a loop.
    assert_eq!(
        lines_naming(this_run, &repo),
        1,
        "the deleted repository is logged once by a run:\n{this_run}"
    );
    assert!(this_run.contains("forgotten"), "{this_run}");
    assert_eq!(
        env.refs(&mirror)["refs/heads/main"],
        first,
        "the mirror keeps what it had"
    );
}

// ---------------------------------------------------------------------------
// A spool entry for a path that is not a git repository

#[test]
fn a_spool_entry_for_a_path_that_is_not_a_repository_is_handled_and_not_stranded() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    quick_retries(&env, "1s", "1m", "1m");
    let mirror = env.bare_repo("mirror.git");
    // One plain directory, and one that even carries a mirror configuration.
    let plain = env.path("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let configured = env.path("plain-with-config");
    std::fs::create_dir_all(&configured).unwrap();
    std::fs::write(
        configured.join("push-mirror.toml"),
        format!("[mirror.backup]\nurl = {:?}\ndelay = \"0s\"\n", file_url(&mirror)),
    )
    .unwrap();
    let new_dir = spool_dir(&env).join("new");
    std::fs::create_dir_all(&new_dir).unwrap();
    for (i, dir) in [&plain, &configured].into_iter().enumerate() {
        let entry = serde_json::json!({
            "version": 1,
            "repo": path_str(&std::fs::canonicalize(dir).unwrap()),
            "received_at_ms": 1_700_000_000_000u64,
            "updates": [{"ref": "refs/heads/main", "old": ZERO, "new": "1".repeat(40)}],
        });
        std::fs::write(
            new_dir.join(format!("00000000000000000001-1-{i}.json")),
            serde_json::to_vec(&entry).unwrap(),
        )
        .unwrap();
    }

    let out = gpm_within(&env, &["run", "--wait"], Duration::from_secs(30));
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "run crashed: {:?}\n{}\nlog:\n{}",
        out.status,
        stderr(&out),
        log_text(&env)
    );
    spool_is_drained(&env);
    assert!(env.refs(&mirror).is_empty(), "nothing was pushed from a non-repository");
    // The admin is told, once per entry, which path was not a repository.
    let log = log_text(&env);
    for dir in [&plain, &configured] {
        let path = std::fs::canonicalize(dir).unwrap();
        assert_eq!(
            lines_naming(&log, &path),
            1,
            "the log names {} once:\n{log}",
            path.display()
        );
    }
    let again = gpm_within(&env, &["run", "--wait"], Duration::from_secs(30));
    assert!(matches!(again.status.code(), Some(0 | 1)), "{}", log_text(&env));
    spool_is_drained(&env);
}

// ---------------------------------------------------------------------------
// Spool directory unwritable

/// Points the hook's spool at a path under a regular file, so creating it fails even for
/// root (for whom permission bits do not stop writes).
fn break_the_spool(env: &TestEnv) -> PathBuf {
    let blocker = env.path("not-a-directory");
    std::fs::write(&blocker, "a file where the spool's parent should be").unwrap();
    write_global_config(env, &format!("spool_dir = \"{}/spool\"\n", path_str(&blocker)));
    blocker
}

#[test]
fn an_unwritable_spool_never_fails_the_push_and_warns_the_pusher_in_one_line() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    let upstream = env.bare_repo("upstream.git");
    let mirror = env.bare_repo("mirror.git");
    add_mirror(&env, &upstream, "backup", &file_url(&mirror), &[]);
    gpm_ok(&env, &["install", path_str(&upstream)]);
    let work = env.clone_work(&upstream, "work");
    let head = env.commit(&work, "a.txt", "one", "first");
    break_the_spool(&env);

    let out = push(&env, &work, &["main"]);
    assert_eq!(
        env.git(&upstream, &["rev-parse", "refs/heads/main"]),
        head,
        "the push landed upstream"
    );
    let lines = our_remote_lines(&out);
    assert_eq!(lines.len(), 1, "exactly one line for the pusher:\n{}", stderr(&out));
    assert!(
        lines[0].contains("could not record"),
        "the line says the push was not recorded: {}",
        lines[0]
    );
}

#[test]
fn a_push_the_hook_could_not_spool_reaches_the_mirror_at_the_next_run() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    let upstream = env.bare_repo("upstream.git");
    let mirror = env.bare_repo("mirror.git");
    add_mirror(&env, &upstream, "backup", &file_url(&mirror), &[]);
    gpm_ok(&env, &["install", path_str(&upstream)]);
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    push(&env, &work, &["--quiet", "main"]);
    wait_mirror_equals_upstream(&env, &upstream, &mirror, "the first push is mirrored");

    let blocker = break_the_spool(&env);
    env.commit(&work, "a.txt", "two", "second");
    env.git(&work, &["tag", "v2"]);
    push(&env, &work, &["--quiet", "main", "v2"]);
    assert_ne!(env.refs(&mirror), env.refs(&upstream), "nothing recorded this push");

    // The admin repairs the spool; the next cron run finds what no hook recorded.
    std::fs::remove_file(&blocker).unwrap();
    let out = gpm_within(&env, &["run", "--wait"], CONVERGE);
    assert!(out.status.success(), "{}\n{}", stderr(&out), log_text(&env));
    assert_eq!(
        env.refs(&mirror),
        env.refs(&upstream),
        "the run caught up with the unrecorded push\n{}",
        diagnostics(&env, &upstream)
    );
}

// ---------------------------------------------------------------------------
// 16 concurrent pushers

#[test]
fn sixteen_concurrent_pushers_and_a_run_loop_converge_with_no_lock_errors_and_nothing_stranded() {
    const PUSHERS: usize = 16;
    const PUSHES_EACH: usize = 4;
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    quick_retries(&env, "5s", "200ms", "1s");
    let upstream = env.bare_repo("upstream.git");
    let mirror = env.bare_repo("mirror.git");
    add_mirror(&env, &upstream, "backup", &file_url(&mirror), &[]);
    gpm_ok(&env, &["install", path_str(&upstream)]);
    let seed = env.clone_work(&upstream, "seed");
    env.commit(&seed, "seed.txt", "seed", "seed");
    push(&env, &seed, &["--quiet", "main"]);
    let clones: Vec<PathBuf> = (0..PUSHERS)
        .map(|i| env.clone_work(&upstream, &format!("work{i}")))
        .collect();

    let stop = AtomicBool::new(false);
    let pusher_lines: Mutex<Vec<String>> = Mutex::default();
    std::thread::scope(|scope| {
        let runner = scope.spawn(|| {
            let mut runs = 0;
            while !stop.load(Ordering::SeqCst) {
                let out = gpm_within(&env, &["run"], CONVERGE);
                assert!(
                    matches!(out.status.code(), Some(0 | 1)),
                    "run failed: {:?} {}",
                    out.status,
                    stderr(&out)
                );
                runs += 1;
            }
            runs
        });
        let pushers: Vec<_> = clones
            .iter()
            .enumerate()
            .map(|(i, work)| {
                let (env, pusher_lines) = (&env, &pusher_lines);
                scope.spawn(move || {
                    for n in 0..PUSHES_EACH {
                        env.commit(
                            work,
                            &format!("p{i}.txt"),
                            &format!("{n}"),
                            &format!("pusher {i} push {n}"),
                        );
                        let out = push(env, work, &[&format!("HEAD:refs/heads/p{i}")]);
                        pusher_lines.lock().unwrap().extend(our_remote_lines(&out));
                    }
                })
            })
            .collect();
        for pusher in pushers {
            pusher.join().expect("a pusher failed");
        }
        stop.store(true, Ordering::SeqCst);
        let runs = runner.join().expect("the run loop failed");
        assert!(runs >= 1);
    });
    let lines = pusher_lines.into_inner().unwrap();
    assert!(lines.is_empty(), "pushers were warned: {lines:#?}");
    assert_eq!(env.refs(&upstream).len(), PUSHERS + 1);
    wait_mirror_equals_upstream(&env, &upstream, &mirror, "the mirror has every pusher's branch");

    let out = gpm_within(&env, &["run", "--wait"], CONVERGE);
    assert!(out.status.success(), "{}\n{}", stderr(&out), log_text(&env));
    spool_is_drained(&env);
    let log = log_text(&env);
    // Nothing failed, so nothing is worth a warning: in particular no lock error.
    let complaints: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
        .collect();
    assert!(complaints.is_empty(), "errors or warnings in the log: {complaints:#?}");
    assert!(!log.to_lowercase().contains("lock"), "the log mentions a lock:\n{log}");
    let status = status_of(&env, &upstream, "backup");
    assert_eq!(status["update_status"], "finished", "{status:#}");
    assert_eq!(status["pending_refs"], serde_json::json!([]), "{status:#}");
}

// ---------------------------------------------------------------------------
// Absurd durations

#[test]
fn absurd_durations_in_the_configuration_never_crash_the_worker() {
    // The largest whole number of seconds whose milliseconds still fit in a u64: accepted by
    // the configuration, so every sum or product of a timestamp and such a duration must saturate.
    const FOREVER: &str = "18446744073709551s";
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    write_global_config(
        &env,
        &format!("worker_linger = \"1s\"\n\n[retry]\ninitial = \"{FOREVER}\"\nmax = \"{FOREVER}\"\njitter = true\n"),
    );
    let upstream = env.bare_repo("upstream.git");
    let prompt = env.bare_repo("prompt.git");
    let patient = env.bare_repo("patient.git");
    add_mirror(&env, &upstream, "prompt", &file_url(&prompt), &[]);
    // Debounced and rate-limited for ever: never due, so not pushed, and not waited for.
    add_mirror(
        &env,
        &upstream,
        "patient",
        &file_url(&patient),
        &["--delay", FOREVER, "--min-interval", FOREVER],
    );
    // Fails (transiently: nothing listens there), and is then backed off for ever.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://127.0.0.1:{}/missing.git", closed.local_addr().unwrap().port());
    drop(closed);
    add_mirror(&env, &upstream, "broken", &nowhere, &[]);
    let work = env.clone_work(&upstream, "work");
    let head = env.commit(&work, "a.txt", "one", "first");
    push(&env, &work, &["--quiet", "main"]);
    spool_by_hook(&env, &upstream, &format!("{ZERO} {head} refs/heads/main\n"));

    let run_once = |what: &str| {
        // Nothing is due soon, so a run that is still going after this long is stuck.
        let out = gpm_within(&env, &["run", "--wait"], Duration::from_secs(30));
        let log = log_text(&env);
        assert!(!log.contains("panicked"), "{what}: the worker panicked:\n{log}");
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{what}: run ended with {:?}\n{}\n{log}",
            out.status,
            stderr(&out)
        );
    };
    run_once("backoff and debounce for ever");
    // A retry due in a far future is still shown (as a table and as JSON), whatever the year.
    for args in [
        vec!["status", path_str(&upstream)],
        vec!["status", "--json", path_str(&upstream)],
    ] {
        let out = gpm_output(&env, &args);
        assert!(
            matches!(out.status.code(), Some(0 | 1)) && !stderr(&out).contains("panicked"),
            "{args:?} ended with {:?}\n{}",
            out.status,
            stderr(&out)
        );
    }
    assert_eq!(env.refs(&prompt), env.refs(&upstream), "the prompt mirror was updated");
    assert!(
        env.refs(&patient).is_empty(),
        "a mirror debounced for ever is not pushed yet"
    );
    let broken = status_of(&env, &upstream, "broken");
    assert_eq!(broken["update_status"], "to_retry", "{broken:#}");
    run_once("the next run, with everything backed off or debounced");

    // A worker that lingers for ever still leaves once nothing at all is pending.
    gpm_ok(&env, &["remove", path_str(&upstream), "patient"]);
    gpm_ok(&env, &["remove", path_str(&upstream), "broken"]);
    write_global_config(&env, &format!("worker_linger = \"{FOREVER}\"\n"));
    let head = env.commit(&work, "a.txt", "two", "second");
    push(&env, &work, &["--quiet", "main"]);
    spool_by_hook(&env, &upstream, &format!("{ZERO} {head} refs/heads/main\n"));
    run_once("lingering for ever");
    assert_eq!(
        env.refs(&prompt),
        env.refs(&upstream),
        "the prompt mirror was updated again"
    );
}
