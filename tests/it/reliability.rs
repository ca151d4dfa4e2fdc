//! Reliability under faults: kill -9 at every failpoint and at random moments, drift scan,
//! silent mode, interrupted updates, and a broken global configuration.

use crate::support::binary::*;
use crate::support::{RepoFormat, TestEnv, wait_until};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

const FAILPOINT_ENV: &str = "GIT_PUSH_MIRROR_FAILPOINT";

/// Every failpoint the binary knows.
const FAILPOINTS: &[&str] = git_push_mirror::util::failpoint::ALL;

/// An upstream whose hook spools without starting a worker, so the test decides when workers run.
fn setup_without_worker(env: &TestEnv) -> Setup {
    Setup::spooling_only(env, "upstream")
}

/// `count` pushes round-robin over 10 branches, with a tag every 7th push.
fn push_workload(env: &TestEnv, setup: &Setup, start: usize, count: usize) {
    for i in start..start + count {
        let branch = format!("b{}", i % 10);
        env.commit(
            &setup.work,
            &format!("{branch}.txt"),
            &i.to_string(),
            &format!("push {i}"),
        );
        let mut refspecs = vec![format!("HEAD:refs/heads/{branch}")];
        if i % 7 == 0 {
            env.git(&setup.work, &["tag", "-f", &format!("t{}", i % 3)]);
            refspecs.push(format!("+refs/tags/t{0}:refs/tags/t{0}", i % 3));
        }
        let mut args = vec!["push", "--quiet", "origin"];
        args.extend(refspecs.iter().map(String::as_str));
        env.git(&setup.work, &args);
    }
}

fn run_with_failpoint(env: &TestEnv, failpoint: &str) -> std::process::ExitStatus {
    gpm(env)
        .args(["run", "--wait"])
        .env(FAILPOINT_ENV, failpoint)
        .status()
        .unwrap()
}

fn assert_converged_and_spool_empty(env: &TestEnv, setup: &Setup, what: &str) {
    let out = gpm_output(env, &["run", "--wait"]);
    assert!(out.status.success(), "{what}: {}", stderr(&out));
    assert_eq!(
        env.refs(&setup.mirror),
        env.refs(&setup.upstream),
        "{what}: the mirror differs from the upstream"
    );
    assert!(spool_files(env, "new").is_empty(), "{what}: entries left in spool/new");
    assert!(
        spool_files(env, "claimed").is_empty(),
        "{what}: entries left in spool/claimed"
    );
    let status = &setup.status_json(env)[0];
    assert_ne!(
        status["update_status"], "started",
        "{what}: an interrupted update was not recovered"
    );
    assert_eq!(status["pending_refs"], serde_json::json!([]), "{what}: {status:#}");
}

#[test]
fn kill_9_at_every_failpoint_and_at_random_moments_loses_nothing() {
    let env = TestEnv::new();
    let setup = setup_without_worker(&env);
    let mut pushes = 0;
    // The notifier's failpoint is reached only with notifications configured: tests/it/notify.rs.
    for failpoint in FAILPOINTS
        .iter()
        .filter(|f| !f.starts_with("spool.") && !f.starts_with("notify."))
    {
        push_workload(&env, &setup, pushes, 30);
        pushes += 30;
        let status = run_with_failpoint(&env, failpoint);
        assert_eq!(
            status.signal(),
            Some(9),
            "the worker did not reach failpoint {failpoint}: {status}"
        );
        assert_converged_and_spool_empty(&env, &setup, failpoint);
    }

    // The hook killed between writing its entry and publishing it: the push is
    // accepted, the entry never appears, and the drift scan of the next run catches it.
    env.commit(&setup.work, "lost.txt", "lost", "hook killed");
    let out = env
        .cmd("git")
        .current_dir(&setup.work)
        .env(FAILPOINT_ENV, "spool.before_publish")
        .args(["push", "--quiet", "origin", "HEAD:refs/heads/b0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the push itself succeeds: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pushes += 1;
    assert!(spool_files(&env, "new").is_empty(), "the killed hook published nothing");
    assert_converged_and_spool_empty(&env, &setup, "hook killed before publishing");

    // kill -9 at random moments while pushes continue.
    let mut seed: u64 = 0x2545f4914f6cdd1d;
    for _ in 0..8 {
        let mut worker = gpm(&env).args(["run", "--wait"]).spawn().unwrap();
        push_workload(&env, &setup, pushes, 3);
        pushes += 3;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 120));
        let _ = worker.kill();
        let _ = worker.wait();
    }
    assert_converged_and_spool_empty(&env, &setup, "random kills");
    assert!(pushes >= 200, "the workload must be at least 200 pushes, was {pushes}");
}

in_each_format! {
    a_ref_updated_without_a_hook_reaches_the_mirror_at_the_next_run:
        sha1_file => sha1 over Over::File,
        sha256_file => sha256 over Over::File,
        reftable_file => reftable over Over::File,
        sha256_http => sha256 over Over::Http,
        reftable_http => reftable over Over::Http;
}

fn a_ref_updated_without_a_hook_reaches_the_mirror_at_the_next_run(format: RepoFormat, over: Over) {
    let env = TestEnv::with_format(format);
    let setup = Setup::over(&env, over, &["--delay", "0s"]);
    format.assert_of(&env, &setup.upstream);
    let first = env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    wait_until("the update is recorded", CONVERGE, || {
        setup.status_json(&env)[0]["update_status"] == "finished"
    });
    // Server-side ref changes run no hook.
    env.git(&setup.upstream, &["update-ref", "refs/heads/server-side", &first]);
    env.git(&setup.upstream, &["tag", "v-server", &first]);
    gpm_ok(&env, &["run", "--wait"]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    // A deletion without a hook is found too (merged: deleted on the mirror).
    env.git(&setup.upstream, &["update-ref", "-d", "refs/heads/server-side"]);
    gpm_ok(&env, &["run", "--wait"]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
}

#[test]
fn silent_mode_records_pushes_and_turning_it_off_drains_everything() {
    let env = TestEnv::new();
    write_global_config(&env, "silent_mode = true\n");
    let setup = Setup::file(&env, &["--delay", "0s"]);
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    gpm_ok(&env, &["run", "--wait"]);
    assert!(env.refs(&setup.mirror).is_empty(), "silent mode pushes nothing");
    let status = &setup.status_json(&env)[0];
    assert!(status["note"].as_str().unwrap().contains("silent_mode"), "{status:#}");
    write_global_config(&env, "silent_mode = false\n");
    gpm_ok(&env, &["run", "--wait"]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
}

#[test]
fn pushes_spooled_under_a_broken_global_config_are_adopted_once_it_is_fixed() {
    let env = TestEnv::new();
    let setup = setup_without_worker(&env);
    write_global_config(&env, "spool_dir = [broken\n");
    env.commit(&setup.work, "a.txt", "one", "first");
    let out = env.git_output(&setup.work, &["push", "origin", "main"]);
    assert!(out.status.success());
    let pusher_saw = String::from_utf8_lossy(&out.stderr);
    assert!(
        pusher_saw.contains("remote: git-push-mirror:") && pusher_saw.contains("spooling to"),
        "{pusher_saw}"
    );
    assert_eq!(spool_files(&env, "new").len(), 1, "the entry is in the default spool");
    let custom = env.path("custom-spool");
    write_global_config(&env, &format!("spool_dir = \"{}\"\n", custom.display()));
    gpm_ok(&env, &["run", "--wait"]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    assert!(spool_files(&env, "new").is_empty());
}

#[test]
fn an_update_interrupted_by_kill_9_is_not_left_started() {
    let env = TestEnv::new();
    let setup = setup_without_worker(&env);
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    let status = run_with_failpoint(&env, "update.after_started");
    assert_eq!(status.signal(), Some(9));
    assert_eq!(setup.status_json(&env)[0]["update_status"], "started");
    gpm_ok(&env, &["run", "--wait"]);
    let status = &setup.status_json(&env)[0];
    assert_eq!(status["update_status"], "finished", "{status:#}");
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
}
