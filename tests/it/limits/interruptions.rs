//! Stepped updates interrupted: a slow link converges across timeouts and kills without starting
//! over, and a mirror removed or re-pointed between two steps gets no more steps.

use super::*;

/// Pids of the processes of this test's runs (the binary and the git children it started):
/// everything that carries the test's `HOME`.
fn processes_of(env: &TestEnv) -> Vec<i32> {
    let marker = format!("HOME={}", path_str(&env.home()));
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            environ.split(|b| *b == 0).any(|v| v == marker.as_bytes())
        })
        .collect()
}

/// Bytes under a directory (files only), recursively.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Bytes of the packs a mirror kept (pushes that landed; `receive.unpackLimit = 1`).
fn landed_bytes(mirror: &Path) -> u64 {
    std::fs::read_dir(mirror.join("objects/pack"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pack"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn a_slow_link_converges_across_timeouts_and_kills_without_starting_over() {
    let env = TestEnv::new();
    write_global_config(
        &env,
        "worker_linger = \"0s\"\n[retry]\ninitial = \"10ms\"\nmax = \"10ms\"\njitter = false\n",
    );
    let upstream = big_repository(&env, "upstream.git");
    let total = repository_bytes(&env, &upstream);
    // 25 MB/s: the whole repository takes 4 s, the time limit is 3 s, a quarter of it takes 1 s.
    let (mirror, log) = measured_mirror(&env, "slow.git", Some(25 * MB));
    add(&env, &upstream, "slow", &mirror, &["--timeout", "3s", "--delay", "0s"]);
    let expected = env.refs(&upstream);

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    println!("kill schedule seed {seed}");
    let mut runs = 0;
    let mut kills_after_progress = 0;
    let mut runs_after_progress = 0;
    while env.refs(&mirror) != expected {
        runs += 1;
        assert!(runs <= 40, "no convergence after {runs} runs");
        // What reaches the mirror, landed or not: the packs it kept and the quarantine
        // directories that pushes cut off (by the time limit or a kill) leave behind.
        let received_before = dir_bytes(&mirror.join("objects"));
        let had = landed_bytes(&mirror);
        let mut run = gpm(&env).args(["run", "--wait"]).spawn().unwrap();
        // Every other run is killed with SIGKILL at a random moment once a step of it has landed,
        // and every run until one has been: on a loaded machine a run may end by itself (two
        // timeouts in a row) before its kill, and the next one may then finish the mirror.
        if runs % 2 == 1 || kills_after_progress == 0 {
            wait_until("a step lands", Duration::from_secs(60), || {
                landed_bytes(&mirror) > had || run.try_wait().unwrap().is_some()
            });
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            std::thread::sleep(Duration::from_millis((seed >> 33) % 600));
            if run.try_wait().unwrap().is_none() {
                for pid in processes_of(&env) {
                    // SAFETY: kill(2) on a process of this test (the run, or git children it started).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                kills_after_progress += usize::from(landed_bytes(&mirror) > 0);
            }
        }
        let _ = run.wait();
        wait_until("the run's processes end", Duration::from_secs(30), || {
            processes_of(&env).is_empty()
        });
        let received = dir_bytes(&mirror.join("objects")) - received_before;
        if runs == 1 {
            let logged = std::fs::read_to_string(state_base(&env).join("git-push-mirror.log")).unwrap_or_default();
            assert!(logged.contains("did not finish within the time limit"), "{logged}");
        }
        // Once steps have landed, no run sends the whole repository again.
        if had > 0 {
            runs_after_progress += 1;
            assert!(received < total, "run {runs} started over: {received} of {total} bytes");
        }
    }
    assert!(kills_after_progress >= 1, "no run was killed during the stepped push");
    assert!(
        runs_after_progress >= 1,
        "no run continued from what an earlier one left"
    );
    let out = gpm_output(&env, &["status", "--json", path_str(&upstream)]);
    let status: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let logged = std::fs::read_to_string(state_base(&env).join("git-push-mirror.log")).unwrap_or_default();
    // What the timeouts taught is a hypothesis: kept while it spares the next runs the same
    // timeout, raised by the clean updates that follow.
    let source = &status[0]["learned_max_push_size_source"];
    assert!(
        source.is_null() || source == "timed_out",
        "{status:?}\n{logged}\npacks: {:?}",
        pack_sizes(&log)
    );
    // The next run agrees that nothing is left.
    let before = pack_sizes(&log).len();
    gpm_output(&env, &["run", "--wait"]);
    assert_eq!(env.refs(&mirror), expected);
    assert!(pack_sizes(&log)[before..].iter().all(|p| *p == 0));
}

/// The files of mirror `name`'s state (`NAME.json`, `NAME.known`, `NAME.lock`), wherever its
/// repository's state directory is.
fn state_files_of(env: &TestEnv, name: &str) -> Vec<PathBuf> {
    let repos = state_base(env).join("state/repos");
    std::fs::read_dir(&repos)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|entry| {
            std::fs::read_dir(entry.path().join("mirrors"))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_stem().and_then(|s| s.to_str()) == Some(name) && path.extension().is_some_and(|e| e != "tmp")
        })
        .collect()
}

/// A 20 MB repository pushed in steps of at most 2 MB to a mirror that takes 2 s per step, by
/// `run` (the worker) or by `sync`; the mirror is changed on disk once a step has reached it.
fn stepped_update_interrupted_by(
    command: &str,
    change: impl FnOnce(&TestEnv, &Path),
) -> (TestEnv, PathBuf, PathBuf, usize) {
    let env = TestEnv::new();
    write_global_config(&env, "worker_linger = \"0s\"\n");
    let upstream = repository_of(&env, "upstream.git", 66_000);
    let (mirror, log) = measured_mirror(&env, "stepped.git", Some(MB));
    add(&env, &upstream, "m", &mirror, &["--max-push-size", "2MB"]);
    let mut update = match command {
        "run" => gpm(&env).args(["run", "--wait"]).spawn().unwrap(),
        _ => gpm(&env).args(["sync", path_str(&upstream)]).spawn().unwrap(),
    };
    wait_until("a step reaches the mirror", Duration::from_secs(60), || {
        !pack_sizes(&log).is_empty()
    });
    let reached = pack_sizes(&log).len();
    change(&env, &upstream);
    let ended = wait_for_exit(&mut update, Duration::from_secs(120));
    assert!(ended, "the {command} ended");
    (env, upstream, log, reached)
}

fn wait_for_exit(child: &mut std::process::Child, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

#[test]
fn a_mirror_removed_between_two_steps_gets_no_more_steps_and_no_state() {
    for command in ["run", "sync"] {
        let (env, upstream, log, reached) = stepped_update_interrupted_by(command, |env, upstream| {
            gpm_ok(env, &["remove", path_str(upstream), "m"]);
        });
        let steps = pack_sizes(&log).len();
        // The step on its way when `remove` ran may land; no other step is started.
        assert!(
            steps <= reached + 1,
            "{command}: {steps} steps reached the mirror, {reached} when it was removed"
        );
        assert!(steps < 10, "{command}: the update went on: {steps} steps");
        assert!(
            state_files_of(&env, "m").is_empty(),
            "{command}: the removed mirror's state came back: {:?}",
            state_files_of(&env, "m")
        );
        let status = gpm_output(&env, &["status", "--json", path_str(&upstream)]);
        assert_eq!(stdout(&status).trim(), "[]", "{command}");
        // A later run does not bring it back either.
        gpm_output(&env, &["run", "--wait"]);
        assert!(state_files_of(&env, "m").is_empty(), "{command}");
    }
}

#[test]
fn a_mirror_re_pointed_between_two_steps_gets_no_more_steps_at_its_old_url() {
    let mut new_mirror = PathBuf::new();
    let (env, upstream, log, reached) = stepped_update_interrupted_by("run", |env, upstream| {
        new_mirror = env.bare_repo("elsewhere.git");
        let url = format!("file://{}", path_str(&new_mirror));
        gpm_ok(env, &["set", path_str(upstream), "m", "--url", &url]);
    });
    let steps = pack_sizes(&log).len();
    assert!(
        steps <= reached + 1,
        "{steps} steps reached the old URL, {reached} when it was re-pointed"
    );
    // The worker went on with the mirror as configured now: the new URL, reconciled in full.
    gpm_output(&env, &["run", "--wait"]);
    assert_eq!(env.refs(&new_mirror), env.refs(&upstream));
    assert_eq!(pack_sizes(&log).len(), steps, "nothing more went to the old URL");
    let status = gpm_output(&env, &["status", "--json", path_str(&upstream)]);
    let status: Vec<serde_json::Value> = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status[0]["update_status"], "finished", "{status:#?}");
}
