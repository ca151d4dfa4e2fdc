//! Recorded times are facts about the past, never promises about the future: a failure or a
//! verification recorded under a wrong clock (a year ahead, a day behind), or before the clock
//! was set back, delays nothing by more than the configured interval. The binary runs on a
//! clock of the test's own (libfaketime, see `crate::support::FakeClock`); git, which the binary runs
//! with a clean environment, keeps the real one.

use crate::support::binary::*;
use crate::support::{FakeClock, GitDaemon, TestEnv, path_str, require_or_skip, wait_until};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

const DAY_MS: u64 = 24 * 3_600_000;

fn real_now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The binary with `args`, on `clock`.
fn gpm_on(env: &TestEnv, clock: &FakeClock, args: &[&str]) -> Command {
    let mut cmd = gpm(env);
    clock.apply(&mut cmd).args(args);
    cmd
}

/// Runs `run --wait` on `clock`, at `offset` from the real time.
fn run_at(env: &TestEnv, clock: &FakeClock, offset: &str) {
    clock.set(offset);
    let out = gpm_on(env, clock, &["run", "--wait"]).output().unwrap();
    assert!(out.status.code().is_some(), "run at {offset}: {}", stderr(&out));
}

/// The saved state of mirror `name` (the file, as the binary wrote it).
fn saved_state(env: &TestEnv, name: &str) -> serde_json::Value {
    let repos = state_base(env).join("state/repos");
    let file = std::fs::read_dir(&repos)
        .unwrap()
        .flatten()
        .map(|entry| entry.path().join(format!("mirrors/{name}.json")))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("no state of mirror {name} under {}", repos.display()));
    serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
}

fn ms_field(state: &serde_json::Value, field: &str) -> u64 {
    state[field].as_u64().unwrap_or_else(|| panic!("{field} in {state:#}"))
}

fn status(env: &TestEnv, upstream: &Path) -> serde_json::Value {
    let out = gpm_output(env, &["status", "--json", path_str(upstream)]);
    let mut all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.remove(0)
}

/// An upstream with two commits on `main` and a tag, and a work clone.
fn upstream(env: &TestEnv) -> (PathBuf, PathBuf) {
    let upstream = env.bare_repo("upstream.git");
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    env.commit(&work, "b.txt", "two", "second");
    env.git(&work, &["tag", "v1"]);
    env.git(&work, &["push", "--quiet", "origin", "main", "v1"]);
    (upstream, work)
}

#[test]
fn a_failure_recorded_under_a_wrong_clock_is_retried_at_once_at_the_real_time() {
    if !require_or_skip("faketime", FakeClock::available()) {
        return;
    }
    // The failure a year ahead (a run under a wrong clock), at the real time and then the
    // clock set back a day, a day behind and then the real time.
    for (failed_at, retried_at) in [("+365d", "+0"), ("+0", "-1d"), ("-1d", "+0")] {
        let env = TestEnv::new();
        // A run waits at most 5 s for what is due: a retry an hour (or a year) away is left to
        // a later run. (A failure recorded ahead ended "now" as far as the run knows: its push
        // is followed by the one-second window that gathers changes.)
        write_global_config(&env, "worker_linger = \"5s\"\n");
        let clock = FakeClock::new(&env);
        let (upstream, _work) = upstream(&env);
        // The mirror's repository does not exist yet: a permanent failure, retried after
        // `permanent_retry` (an hour).
        let mirror = env.path("mirror.git");
        let url = format!("file://{}", path_str(&mirror));
        gpm_output(&env, &["add", path_str(&upstream), "m", &url]);

        run_at(&env, &clock, failed_at);
        let state = saved_state(&env, "m");
        assert_eq!(state["update_status"], "failed", "{failed_at}: {state:#}");
        let recorded = ms_field(&state, "last_update_at_ms");
        let next = ms_field(&state, "next_attempt_at_ms");
        // The fake clock reached the binary (not only git).
        match failed_at {
            "+365d" => {
                assert!(recorded > real_now_ms() + 300 * DAY_MS, "{state:#}");
                // `status` at the real time shows the next attempt as the worker schedules it.
                let shown = status(&env, &upstream)["next_attempt_at"].clone();
                let shown = humantime::parse_rfc3339(shown.as_str().unwrap()).unwrap();
                assert!(shown <= SystemTime::now(), "next_attempt_at {shown:?} is due now");
            }
            "-1d" => assert!(recorded < real_now_ms() - DAY_MS / 2, "{state:#}"),
            _ => assert!(next > real_now_ms() + 1_800_000, "an hour's wait: {state:#}"),
        }

        std::fs::create_dir_all(&mirror).unwrap();
        env.git(&mirror, &["init", "--quiet", "--bare"]);
        run_at(&env, &clock, retried_at);
        assert_eq!(
            env.refs(&mirror),
            env.refs(&upstream),
            "failed at {failed_at}, retried at {retried_at}: the next run retries at once"
        );
        let status = status(&env, &upstream);
        assert_eq!(status["update_status"], "finished", "{status:#}");
    }
}

#[test]
fn a_verification_recorded_a_year_ahead_does_not_turn_verification_off() {
    if !require_or_skip("faketime", FakeClock::available()) {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, "worker_linger = \"0s\"\n");
    let clock = FakeClock::new(&env);
    let (upstream, work) = upstream(&env);
    let mirror = env.bare_repo("mirror.git");
    let url = format!("file://{}", path_str(&mirror));
    gpm_ok(&env, &["add", path_str(&upstream), "m", &url]);
    run_at(&env, &clock, "+0");
    assert_eq!(env.refs(&mirror), env.refs(&upstream));

    // A run a year ahead verifies the mirror (a day has passed, as far as it knows) and
    // records the check a year ahead.
    run_at(&env, &clock, "+365d");
    let verified = ms_field(&saved_state(&env, "m"), "last_verified_at_ms");
    assert!(verified > real_now_ms() + 300 * DAY_MS, "verified at {verified}");

    // Back at the real time, someone rewinds `main` on the mirror: the next run's check (due,
    // since no check happened after now) finds it and repairs it.
    let first = env.git(&work, &["rev-parse", "HEAD~1"]);
    env.git(&mirror, &["update-ref", "refs/heads/main", first.trim()]);
    assert_ne!(env.refs(&mirror), env.refs(&upstream));
    run_at(&env, &clock, "+0");
    assert_eq!(env.refs(&mirror), env.refs(&upstream), "the rewind was repaired");
    let verified = ms_field(&saved_state(&env, "m"), "last_verified_at_ms");
    assert!(verified <= real_now_ms(), "the check is recorded at the real time");
}

#[test]
fn a_lingering_worker_retries_when_due_though_the_clock_is_set_back_a_day() {
    if !require_or_skip("faketime", FakeClock::available()) || !require_or_skip("git daemon", GitDaemon::available()) {
        return;
    }
    let env = TestEnv::new();
    // Retries every 8 s; the worker lingers for a minute.
    write_global_config(
        &env,
        "worker_linger = \"60s\"\n[retry]\ninitial = \"8s\"\nmax = \"8s\"\njitter = false\nfail_after = 100\n",
    );
    let clock = FakeClock::new(&env);
    let (upstream, _work) = upstream(&env);
    let served = env.path("served");
    std::fs::create_dir_all(&served).unwrap();
    let mirror = env.bare_repo("served/m.git");
    let mut daemon = GitDaemon::start(&served);
    daemon.stop();
    gpm_output(&env, &["add", path_str(&upstream), "m", &daemon.url("m.git")]);

    let mut worker = gpm_on(&env, &clock, &["run", "--wait"]).spawn().unwrap();
    wait_until("the first attempt fails", CONVERGE, || {
        status(&env, &upstream)["update_status"] == "to_retry"
    });
    // While the worker waits for the retry, the clock goes back a day and the mirror comes back.
    clock.set("-1d");
    daemon.restart();
    wait_until("the retry lands", CONVERGE, || {
        env.refs(&mirror) == env.refs(&upstream) || worker.try_wait().unwrap().is_some()
    });
    let left_early = worker.try_wait().unwrap();
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(
        env.refs(&mirror),
        env.refs(&upstream),
        "the lingering worker retried (it ended with {left_early:?} instead)"
    );
}
