//! Self-tests of the integration-test harness (`tests/it/support`): each server
//! is driven by plain `git` only, so a failure here is the harness's fault,
//! never the mirror's.

use crate::support::*;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// Runs `git args` in `dir` with extra environment variables (secrets travel
/// this way, never in argv).
fn git_with_env(env: &TestEnv, dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    env.cmd("git")
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .envs(vars.iter().copied())
        .args(args)
        .output()
        .expect("run git")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A work tree (not cloned from anywhere) with one commit on `main`.
fn work_with_commit(env: &TestEnv, name: &str) -> (std::path::PathBuf, String) {
    let work = env.path(name);
    std::fs::create_dir_all(&work).expect("create work tree");
    env.git(&work, &["init", "--quiet"]);
    let oid = env.commit(&work, "README", "hello\n", "first");
    (work, oid)
}

/// Incompressible-ish text (hex of a xorshift stream) of `len` bytes, so the
/// pushed pack is about half that size.
fn noise(len: usize) -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
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

// ---------------------------------------------------------------- TestEnv

#[test]
fn test_env_is_isolated_and_commits_are_deterministic() {
    let env = TestEnv::new();
    let home = env.home();
    assert_eq!(
        env.git(env.root(), &["config", "--global", "init.defaultBranch"]),
        "main"
    );
    // Only the test's global file is read: no system file, no user file.
    let origins = env.git(env.root(), &["config", "--list", "--show-origin"]);
    for line in origins.lines() {
        assert!(
            line.contains(home.to_str().expect("utf-8")),
            "config outside HOME: {line}"
        );
    }

    let (work, first) = work_with_commit(&env, "w1");
    let second = env.commit(&work, "README", "hello again\n", "second");
    assert_ne!(first, second);
    assert_eq!(
        env.git(&work, &["log", "-1", "--format=%ad %cd", "--date=raw"]),
        "1700000002 +0000 1700000002 +0000"
    );

    // The same history in another environment gets the same ids.
    let other = TestEnv::new();
    let (_, again) = work_with_commit(&other, "w1");
    assert_eq!(first, again);

    // refs() lists branches and tags, annotated tags by their tag object.
    env.git(&work, &["tag", "-a", "-m", "release", "v1"]);
    env.git(&work, &["tag", "light"]);
    let refs = env.refs(&work);
    let tag_object = env.git(&work, &["rev-parse", "v1"]);
    assert_ne!(tag_object, second);
    assert_eq!(refs.get("refs/heads/main"), Some(&second));
    assert_eq!(refs.get("refs/tags/v1"), Some(&tag_object));
    assert_eq!(refs.get("refs/tags/light"), Some(&second));
    assert_eq!(refs.len(), 3);
}

#[test]
fn test_env_removes_inherited_git_variables() {
    let mut env = TestEnv::new();
    env.set_env("MARKER", "kept");
    let out = env.cmd("env").output().expect("run env");
    let vars = String::from_utf8_lossy(&out.stdout);
    assert!(vars.lines().any(|l| l == "MARKER=kept"));
    assert!(vars.lines().any(|l| l == "LC_ALL=C"));
    // Whatever cargo or a hook set, no GIT_DIR-like variable leaks through.
    for banned in ["GIT_DIR=", "GIT_WORK_TREE=", "GIT_INDEX_FILE=", "SSH_AUTH_SOCK="] {
        assert!(!vars.lines().any(|l| l.starts_with(banned)), "{banned} leaked");
    }
}

#[test]
fn wait_until_returns_once_true() {
    let mut calls = 0;
    wait_until("the third call", Duration::from_secs(10), || {
        calls += 1;
        calls == 3
    });
    assert_eq!(calls, 3);
}

#[test]
#[should_panic(expected = "waiting until never")]
fn wait_until_panics_on_deadline() {
    wait_until("never", Duration::from_millis(50), || false);
}

#[test]
fn require_or_skip_skips_locally_and_fails_under_ci() {
    assert_eq!(skip_reason(true, "tool", Ok(())), None);
    assert_eq!(
        skip_reason(false, "tool", Err("missing".into())).as_deref(),
        Some("tool is not available: missing")
    );
    let under_ci = std::panic::catch_unwind(|| skip_reason(true, "tool", Err("gone".into())));
    assert!(under_ci.is_err(), "a missing tool must fail under CI");
}

/// Skips itself only when run by the test below (`SKIP_ME=1`).
#[test]
fn skipped_when_asked() {
    if std::env::var_os("SKIP_ME").is_some() {
        assert!(!require_or_skip("a tool nobody has", Err("asked to skip".into())));
    }
}

#[test]
fn a_skipped_test_says_so_on_stderr_past_the_capture_of_cargo_test() {
    // This very test binary, as `cargo test` runs it (output captured), on the test above.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "harness::skipped_when_asked", "--test-threads", "1"])
        .env("SKIP_ME", "1")
        .env("CI", "false")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SKIPPED: harness::skipped_when_asked: a tool nobody has is not available: asked to skip"),
        "{err}"
    );
}

// ------------------------------------------------------------- git daemon

#[test]
fn git_daemon_push_and_read_back() {
    let env = TestEnv::new();
    let bare = env.bare_repo("srv/app.git");
    let daemon = GitDaemon::start(&env.path("srv"));
    let url = daemon.url("app.git");

    let (work, oid) = work_with_commit(&env, "work");
    env.git(&work, &["push", "--quiet", &url, "main"]);
    assert_eq!(env.refs(&bare).get("refs/heads/main"), Some(&oid));

    let listed = env.git(env.root(), &["ls-remote", &url, "refs/heads/main"]);
    assert_eq!(listed, format!("{oid}\trefs/heads/main"));
    let clone = env.path("clone");
    env.git(env.root(), &["clone", "--quiet", &url, clone.to_str().expect("utf-8")]);
    assert_eq!(env.git(&clone, &["rev-parse", "HEAD"]), oid);
}

#[test]
fn git_daemon_stops_and_restarts_on_the_same_port() {
    let env = TestEnv::new();
    let bare = env.bare_repo("srv/app.git");
    let mut daemon = GitDaemon::start(&env.path("srv"));
    let url = daemon.url("app.git");
    let (work, first) = work_with_commit(&env, "work");
    env.git(&work, &["push", "--quiet", &url, "main"]);

    daemon.stop();
    assert!(!daemon.is_running());
    let second = env.commit(&work, "README", "two\n", "second");
    let refused = env.git_output(&work, &["push", &url, "main"]);
    assert!(!refused.status.success(), "push must fail while the daemon is down");
    assert!(stderr(&refused).contains("unable to connect"), "{}", stderr(&refused));
    assert_eq!(env.refs(&bare).get("refs/heads/main"), Some(&first));

    daemon.restart();
    assert_eq!(daemon.url("app.git"), url);
    env.git(&work, &["push", "--quiet", &url, "main"]);
    assert_eq!(env.refs(&bare).get("refs/heads/main"), Some(&second));
}

// ------------------------------------------------------------------- HTTP

/// A credential helper that reads the password from `$PW` (git's
/// environment), so the secret never appears in any argv.
const HELPER: &str = "credential.helper=!f() { echo username=u; echo password=$PW; }; f";

#[test]
fn http_push_requires_basic_auth() {
    let env = TestEnv::new();
    let bare = env.bare_repo("srv/app.git");
    let server = HttpGitServer::start(&env, &env.path("srv"), "u", "s3cret");
    let url = server.url("app.git");
    let (work, oid) = work_with_commit(&env, "work");

    let ok = git_with_env(&env, &work, &[("PW", "s3cret")], &["-c", HELPER, "push", &url, "main"]);
    assert!(ok.status.success(), "push with the right password: {}", stderr(&ok));
    assert_eq!(env.refs(&bare).get("refs/heads/main"), Some(&oid));
    assert_eq!(server.auth_failures(), 0);
    assert!(
        server.unauthenticated_requests() > 0,
        "git asks without credentials first"
    );

    let second = env.commit(&work, "README", "two\n", "second");
    let bad = git_with_env(&env, &work, &[("PW", "wrong")], &["-c", HELPER, "push", &url, "main"]);
    assert!(!bad.status.success(), "push with a wrong password must fail");
    assert!(stderr(&bad).contains("Authentication failed"), "{}", stderr(&bad));
    assert!(server.auth_failures() > 0);
    assert_eq!(env.refs(&bare).get("refs/heads/main"), Some(&oid));

    // Rotating the password on the server: the old one now fails too.
    server.set_password("n3w");
    let failures = server.auth_failures();
    let old = git_with_env(&env, &work, &[("PW", "s3cret")], &["-c", HELPER, "push", &url, "main"]);
    assert!(!old.status.success(), "the old password must be refused");
    assert!(server.auth_failures() > failures);
    let new = git_with_env(&env, &work, &[("PW", "n3w")], &["-c", HELPER, "push", &url, "main"]);
    assert!(new.status.success(), "push with the new password: {}", stderr(&new));
    assert_eq!(env.refs(&bare).get("refs/heads/main"), Some(&second));

    // Fetching (protocol v2, Git-Protocol header) works as well.
    let listed = git_with_env(&env, &work, &[("PW", "n3w")], &["-c", HELPER, "ls-remote", &url]);
    assert!(listed.status.success(), "ls-remote: {}", stderr(&listed));
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&second));
}

#[test]
fn http_push_with_chunked_body() {
    let env = TestEnv::new();
    let bare = env.bare_repo("srv/app.git");
    let server = HttpGitServer::start(&env, &env.path("srv"), "u", "s3cret");
    let url = server.url("app.git");
    let (work, _) = work_with_commit(&env, "work");
    let oid = env.commit(&work, "big.txt", &noise(600 * 1024), "a few hundred KB");

    let args = ["-c", HELPER, "-c", "http.postBuffer=1024", "push", &url, "main"];
    let out = git_with_env(&env, &work, &[("PW", "s3cret")], &args);
    assert!(out.status.success(), "chunked push: {}", stderr(&out));
    assert!(server.chunked_requests() > 0, "git should have sent a chunked body");
    assert_eq!(env.refs(&bare).get("refs/heads/main"), Some(&oid));

    // And the big object comes back intact over HTTP.
    let clone = env.path("clone");
    let args = ["-c", HELPER, "clone", "--quiet", &url, clone.to_str().expect("utf-8")];
    let out = git_with_env(&env, env.root(), &[("PW", "s3cret")], &args);
    assert!(out.status.success(), "clone: {}", stderr(&out));
    assert_eq!(env.git(&clone, &["rev-parse", "HEAD"]), oid);
}

// -------------------------------------------------------------------- SSH

#[test]
fn ssh_push_and_changed_host_key() {
    if !require_or_skip("sshd", Sshd::available()) {
        return;
    }
    let env = TestEnv::new();
    let bare = env.bare_repo("srv/app.git");
    let mut sshd = Sshd::start(&env);
    let url = sshd.url(&bare);
    let known_hosts = env.path("known_hosts");
    std::fs::write(&known_hosts, format!("{}\n", sshd.known_hosts_line())).expect("known_hosts");
    let ssh = sshd.git_ssh_command(&known_hosts);
    let (work, oid) = work_with_commit(&env, "work");

    let out = git_with_env(&env, &work, &[("GIT_SSH_COMMAND", &ssh)], &["push", &url, "main"]);
    assert!(
        out.status.success(),
        "ssh push: {}\n{}",
        stderr(&out),
        log(&sshd.log_path())
    );
    assert_eq!(env.refs(&bare).get("refs/heads/main"), Some(&oid));

    let port = sshd.port();
    sshd.rotate_host_key();
    assert_eq!(sshd.port(), port);
    let second = env.commit(&work, "README", "two\n", "second");
    let out = git_with_env(&env, &work, &[("GIT_SSH_COMMAND", &ssh)], &["push", &url, "main"]);
    assert!(!out.status.success(), "push must fail after the host key changed");
    let err = stderr(&out);
    assert!(err.contains("HOST IDENTIFICATION HAS CHANGED"), "{err}");
    assert_eq!(env.refs(&bare).get("refs/heads/main"), Some(&oid));

    // Accepting the new key makes it work again: the restart is real.
    std::fs::write(&known_hosts, format!("{}\n", sshd.known_hosts_line())).expect("known_hosts");
    let out = git_with_env(&env, &work, &[("GIT_SSH_COMMAND", &ssh)], &["push", &url, "main"]);
    assert!(out.status.success(), "ssh push with the new key: {}", stderr(&out));
    assert_eq!(env.refs(&bare).get("refs/heads/main"), Some(&second));
}

fn log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
