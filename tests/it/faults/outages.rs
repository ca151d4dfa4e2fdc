//! A mirror server stopped during a burst of pushes, a remote that never answers, and a connection
//! cut mid-pack: each is retried or killed in time, and the other mirrors stay current.

use super::*;

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
