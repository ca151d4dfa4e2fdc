//! Mirror and upstream repositories that do not exist or are deleted with work pending, and spool
//! entries for paths that are not repositories: reported once, never retried in a loop, never
//! stranded.

use super::*;

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
