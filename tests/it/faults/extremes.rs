//! Extreme input: thousands of branches pushed and deleted at once, and absurd durations in the
//! configuration.

use super::*;

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
