//! Failures are classed, and each class is retried on its own schedule, against real smart-HTTP
//! servers: refused credentials are `permanent` (failed at once, tried again after
//! `permanent_retry` or at the next push, never in the backoff's quick steps), a 429 with
//! `Retry-After` is `rate_limited` (not tried before the time the mirror asked for, whatever is
//! pushed meanwhile), and `run --wait` ends in bounded time whatever the retry settings. The
//! HTTP traces that tell the classes apart are private and hold no credentials.

use crate::support::binary::*;
use crate::support::{HttpGitServer, Misbehaviour, TestEnv, basic_credentials, path_str, require_or_skip, wait_until};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const USER: &str = "mirror-bot";
const PASSWORD: &str = "classes-s3cret-token";

/// Transient failures would be retried every 100-200 ms for as long as a worker lingers, so a
/// permanent or rate-limited one retried like them would show in the server's request count.
const FAST_RETRY: &str = "worker_linger = \"5s\"\n\
                          [retry]\ninitial = \"100ms\"\nmax = \"200ms\"\nfail_after = 1000\njitter = false\n";

fn http_available() -> bool {
    require_or_skip("git http-backend", HttpGitServer::available())
}

/// A smart-HTTP server of an empty `srv/mirror.git` for [`USER`] / [`PASSWORD`].
fn mirror_server(env: &TestEnv) -> HttpGitServer {
    env.bare_repo("srv/mirror.git");
    HttpGitServer::start(env, &env.path("srv"), USER, PASSWORD)
}

/// `upstream.git` (hook installed, one commit on main not yet pushed) mirrored as `backup` to
/// `srv/mirror.git` on `server`, with `password` as the mirror's secret.
fn http_setup(env: &TestEnv, server: &HttpGitServer, password: &str) -> Setup {
    let mirror = env.path("srv/mirror.git");
    let token = secret_file(env, "token", password, 0o600);
    let flags = ["--username", USER, "--password-file", path_str(&token)];
    let setup = Setup::with_url(
        env,
        env.bare_repo("upstream.git"),
        mirror,
        &server.url("mirror.git"),
        &flags,
    );
    env.commit(&setup.work, "a.txt", "one", "first");
    setup
}

/// Unix time of an RFC 3339 time of `status`.
fn unix(time: &serde_json::Value) -> u64 {
    let text = time.as_str().unwrap_or_else(|| panic!("not a time: {time}"));
    humantime::parse_rfc3339(text)
        .unwrap()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn refused_credentials_are_permanent_and_tried_again_only_later_or_at_the_next_push() {
    if !http_available() {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, FAST_RETRY);
    let server = mirror_server(&env);
    let setup = http_setup(&env, &server, "a-revoked-token");
    setup.push(&env, &["main"]);
    let mut status = serde_json::Value::Null;
    wait_until("the refused login is recorded", CONVERGE, || {
        status = setup.status_json(&env).remove(0);
        status["update_status"] == "failed"
    });
    assert_eq!(status["failure_class"], "permanent", "{status:#}");
    assert_eq!(status["consecutive_failures"], 1, "failed at once: {status:#}");
    let error = status["last_error"].as_str().unwrap();
    assert!(error.contains("Authentication failed"), "{error}");
    let wait = unix(&status["next_attempt_at"]) - unix(&status["last_update_at"]);
    assert_eq!(wait, 3600, "tried again after permanent_retry (1h): {status:#}");
    let human = stdout(&gpm_output(&env, &["status", path_str(&setup.upstream)]));
    assert!(human.contains("failure_class: permanent"), "{human}");

    // Cron's runs within the minute leave it alone: no request reaches the server.
    let requests = server.requests();
    for _ in 0..5 {
        let run = gpm_output(&env, &["run", "--wait"]);
        assert!(run.status.code().is_some(), "{}", stderr(&run));
    }
    assert_eq!(
        server.requests(),
        requests,
        "a permanent failure is not retried by the next runs"
    );
    assert_eq!(setup.status_json(&env)[0]["consecutive_failures"], 1);

    // A push tries again at once.
    env.commit(&setup.work, "b.txt", "two", "second");
    setup.push(&env, &["main"]);
    wait_until("the push is tried", CONVERGE, || {
        setup.status_json(&env)[0]["consecutive_failures"] == 2
    });
    assert!(server.requests() > requests);
    assert!(server.requests() - requests < 10, "one attempt, not a retry loop");
    assert!(env.refs(&setup.mirror).is_empty());
}

#[test]
fn a_rate_limited_mirror_is_not_tried_before_the_time_it_asked_for() {
    if !http_available() {
        return;
    }
    let env = TestEnv::new();
    // `Retry-After` is bounded by `max` (10 minutes by default).
    write_global_config(
        &env,
        "worker_linger = \"5s\"\n[retry]\ninitial = \"100ms\"\nfail_after = 1000\njitter = false\n",
    );
    let server = mirror_server(&env);
    server.misbehave(Some(Misbehaviour::Answer {
        status: "429 Too Many Requests".into(),
        headers: vec![("Retry-After".into(), "30".into())],
    }));
    let setup = http_setup(&env, &server, PASSWORD);
    setup.push(&env, &["main"]);
    let mut status = serde_json::Value::Null;
    wait_until("the rate limit is recorded", CONVERGE, || {
        status = setup.status_json(&env).remove(0);
        status["failure_class"] == "rate_limited" && status["update_status"] != "started"
    });
    assert_eq!(status["update_status"], "to_retry", "{status:#}");
    let wait = unix(&status["next_attempt_at"]) - unix(&status["last_update_at"]);
    assert!(
        wait >= 30,
        "the next attempt waits the 30 s the mirror asked for: {status:#}"
    );
    let error = status["last_error"].as_str().unwrap();
    assert!(error.contains("HTTP 429") && error.contains("wait 30s"), "{error}");

    // Pushes meanwhile are recorded, but the mirror is left alone until then.
    let requests = server.requests();
    env.commit(&setup.work, "b.txt", "two", "second");
    setup.push(&env, &["main"]);
    gpm_output(&env, &["run", "--wait"]);
    let after = setup.status_json(&env).remove(0);
    assert_eq!(
        server.requests(),
        requests,
        "nothing asked of the mirror before its time: {after:#}"
    );
    assert_eq!(after["next_attempt_at"], status["next_attempt_at"], "{after:#}");
    assert_eq!(
        after["pending_refs"],
        serde_json::json!(["refs/heads/main"]),
        "{after:#}"
    );

    // A 503 without Retry-After is a rate limit too; `sync` (a person asking) goes at once.
    server.misbehave(Some(Misbehaviour::Answer {
        status: "503 Service Unavailable".into(),
        headers: Vec::new(),
    }));
    let sync = gpm_output(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(sync.status.code(), Some(1));
    assert!(server.requests() > requests);
    assert_eq!(setup.status_json(&env)[0]["failure_class"], "rate_limited");

    // Once the mirror takes pushes again, `sync` converges and the class is gone.
    server.misbehave(None);
    gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    let recovered = setup.status_json(&env).remove(0);
    assert_eq!(recovered["update_status"], "finished", "{recovered:#}");
    assert_eq!(recovered["failure_class"], serde_json::Value::Null, "{recovered:#}");
}

#[test]
fn run_wait_ends_in_bounded_time_when_the_backoff_is_shorter_than_the_linger() {
    let env = TestEnv::new();
    // Retries every 100 ms, a worker that would wait 10 minutes for them, never `failed`.
    write_global_config(
        &env,
        "worker_linger = \"10m\"\n[retry]\ninitial = \"50ms\"\nmax = \"100ms\"\nfail_after = 1000\njitter = false\n",
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/mirror.git", closed.local_addr().unwrap().port());
    drop(closed); // connection refused from now on: a transient failure, for ever
    let upstream = env.bare_repo("upstream.git");
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    gpm_ok(&env, &["add", path_str(&upstream), "down", &url]);

    let run = gpm(&env).args(["run", "--wait"]).spawn().unwrap();
    let pid = run.id();
    let (done, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut run = run;
        let _ = done.send(run.wait());
    });
    let Ok(exit) = exited.recv_timeout(CONVERGE) else {
        // SAFETY: signalling the child this test started, still unreaped (its waiter is blocked).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        panic!("`run --wait` was still retrying after {CONVERGE:?}");
    };
    let exit = exit.unwrap();
    assert_eq!(exit.code(), Some(1), "a failed update");
    let status = &serde_json::from_slice::<Vec<serde_json::Value>>(
        &gpm_output(&env, &["status", "--json", path_str(&upstream)]).stdout,
    )
    .unwrap()[0];
    assert_eq!(status["failure_class"], "transient", "{status:#}");
    assert_eq!(
        status["consecutive_failures"], 3,
        "at most 3 attempts per run: {status:#}"
    );
    assert_eq!(status["update_status"], "to_retry", "{status:#}");
}

/// Regular files under `dir` (a killed worker's credential pipe is a FIFO: never opened).
fn regular_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in walk(dir) {
        if entry.symlink_metadata().is_ok_and(|m| m.file_type().is_file()) {
            files.push(entry);
        }
    }
    files
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            all.extend(walk(&path));
        }
        all.push(path);
    }
    all
}

#[test]
fn http_traces_are_private_and_never_hold_the_credentials_even_after_a_kill() {
    if !http_available() {
        return;
    }
    let env = TestEnv::new();
    let server = mirror_server(&env);
    let upstream = env.bare_repo("upstream.git");
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    let token = secret_file(&env, "token", PASSWORD, 0o600);
    let url = server.url("mirror.git");
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&upstream),
            "backup",
            &url,
            "--username",
            USER,
            "--password-file",
            path_str(&token),
        ],
    );
    // Killed right after git's push, before the traces are read and removed: what a crash leaves.
    let tmp = env.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let sync = gpm(&env)
        .args(["sync", path_str(&upstream)])
        .env("TMPDIR", &tmp)
        .env("GIT_PUSH_MIRROR_FAILPOINT", "push.after_git")
        .output()
        .unwrap();
    assert_eq!(sync.status.code(), None, "killed at the failpoint: {}", stderr(&sync));
    let traces: Vec<PathBuf> = walk(&tmp)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("git-push-mirror-trace."))
        })
        .collect();
    assert!(!traces.is_empty(), "the push was traced: {:?}", walk(&tmp));
    for dir in &traces {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
        let files = regular_files(dir);
        assert!(files.iter().any(|f| f.ends_with("curl")), "{files:?}");
        for file in files {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
    }
    let curl = std::fs::read_to_string(traces[0].join("curl")).unwrap();
    assert!(curl.contains("<= Recv header: HTTP/1.1 200"), "a real trace: {curl}");
    for secret in [PASSWORD.to_string(), basic_credentials(USER, PASSWORD)] {
        let leaked: Vec<PathBuf> = regular_files(&tmp)
            .into_iter()
            .filter(|f| std::fs::read(f).is_ok_and(|b| b.windows(secret.len()).any(|w| w == secret.as_bytes())))
            .collect();
        assert!(leaked.is_empty(), "{secret} is stored in {leaked:?}");
    }
}

#[test]
fn a_redirect_to_a_host_that_refuses_the_credentials_is_named_as_a_redirect() {
    if !http_available() {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, FAST_RETRY);
    // The mirror moved to another server, which has other credentials; the old one redirects.
    let elsewhere = mirror_server(&env);
    let old = HttpGitServer::start(&env, &env.path("srv"), USER, PASSWORD);
    let target = elsewhere.url("mirror.git");
    let origin = target.trim_end_matches("/mirror.git").to_string();
    old.misbehave(Some(Misbehaviour::RedirectTo(origin.clone())));
    elsewhere.set_password("another-token");
    let setup = http_setup(&env, &old, PASSWORD);
    let sync = gpm_output(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(sync.status.code(), Some(1));
    let status = &setup.status_json(&env)[0];
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(error.contains(&format!("redirected to {origin}")), "{status:#}");
    assert!(!error.contains("expired"), "{status:#}");
    assert_eq!(status["failure_class"], "permanent", "{status:#}");
    assert_eq!(
        elsewhere.auth_failures(),
        0,
        "the credentials never went to the other host"
    );
    assert!(elsewhere.unauthenticated_requests() > 0, "git followed the redirect");
}
