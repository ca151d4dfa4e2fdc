//! The spool under stress: an unwritable spool never fails a push, an unspooled push reaches the
//! mirror at the next run, and sixteen concurrent pushers converge.

use super::*;

/// The `remote: git-push-mirror: …` lines a pusher saw.
fn our_remote_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("remote: git-push-mirror"))
        .map(str::to_owned)
        .collect()
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
