//! Known refs belong to one mirror. What the worker assumes a mirror has is tied to the mirror's
//! URL and checked: a URL edited by hand (per repository or in a fleet mirror's template), a
//! mirror deleted and recreated empty, and a mirror rewound by someone's push all end with the
//! mirror equal to the upstream, exactly; the last through `verify_interval`, which is cheap
//! when nothing changed (no push at all).

use crate::support::binary::*;
use crate::support::procs::Reaper;
use crate::support::{TestEnv, path_str, wait_until};
use serde_json::Value;
use std::time::{Duration, SystemTime};

fn log_text(env: &TestEnv) -> String {
    std::fs::read_to_string(state_base(env).join("git-push-mirror.log")).unwrap_or_default()
}

/// A repository mirrored over `file://` (no delay, no lingering worker, `global_extra` added to
/// the global configuration) whose `history` is mirrored, with the hook's worker gone.
fn mirrored(env: &TestEnv, global_extra: &str) -> Setup {
    write_global_config(env, &format!("worker_linger = \"0s\"\n{global_extra}"));
    let setup = Setup::file(env, &["--delay", "0s"]);
    history(env, &setup);
    wait_worker_idle(env);
    setup
}

/// Branches `main` and `feature` and a tag `v1`, pushed through the hook and mirrored.
fn history(env: &TestEnv, setup: &Setup) {
    env.commit(&setup.work, "a.txt", "one", "first");
    env.git(&setup.work, &["tag", "-a", "-m", "v1", "v1"]);
    env.git(&setup.work, &["checkout", "-q", "-b", "feature"]);
    env.commit(&setup.work, "f.txt", "f", "feature");
    env.git(&setup.work, &["checkout", "-q", "main"]);
    setup.push(env, &["main", "feature", "v1"]);
    setup.wait_converged(env);
}

fn run_wait(env: &TestEnv) {
    let out = gpm_output(env, &["run", "--wait"]);
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", stderr(&out));
}

/// Waits until the hook's worker is gone (its lock free), so a change made now is not raced.
fn wait_worker_idle(env: &TestEnv) {
    wait_until("the worker leaves", CONVERGE, || {
        git_push_mirror::util::fsutil::FileLock::try_acquire(&spool_dir(env).join("worker.lock"))
            .unwrap()
            .is_some()
    });
}

#[test]
fn a_url_edited_by_hand_gets_every_ref_not_only_the_next_push() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    let setup = mirrored(&env, "");
    let first = env.refs(&setup.mirror);

    let second = env.bare_repo("second.git");
    let config = setup.upstream.join("push-mirror.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace(path_str(&setup.mirror), path_str(&second))).unwrap();
    env.commit(&setup.work, "a.txt", "two", "second");
    setup.push(&env, &["main"]);

    let mirrored = Setup {
        upstream: setup.upstream.clone(),
        mirror: second.clone(),
        work: setup.work.clone(),
    };
    mirrored.wait_converged(&env);
    assert_eq!(env.refs(&setup.mirror), first, "the old mirror is not touched any more");
    // The refs land before the worker records the outcome (and the mirror's side after them).
    wait_until("the update is recorded as finished", CONVERGE, || {
        setup.status_json(&env)[0]["update_status"] == "finished"
    });
}

#[test]
fn a_fleet_url_template_edited_in_the_global_file_is_reconciled_in_full_by_the_next_run() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    let root = env.path("repos");
    let upstream = root.join("acme/app.git");
    std::fs::create_dir_all(&upstream).unwrap();
    env.git(&upstream, &["init", "--quiet", "--bare"]);
    let mirror_a = env.bare_repo("fleet-a/acme/app.git");
    let mirror_b = env.bare_repo("fleet-b/acme/app.git");
    let global = |variant: &str| {
        format!(
            "repos_root = \"{}\"\nworker_linger = \"0s\"\n[defaults]\ndelay = \"0s\"\n\
             [mirror.backup]\nrepos = [\"acme/*\"]\nurl = \"file://{}/fleet-{variant}/{{name}}.git\"\n",
            path_str(&root),
            path_str(env.root())
        )
    };
    write_global_config(&env, &global("a"));
    gpm_ok(&env, &["install", path_str(&upstream)]);
    let work = env.clone_work(&upstream, "work");
    let setup = Setup {
        upstream: upstream.clone(),
        mirror: mirror_a.clone(),
        work,
    };
    history(&env, &setup);
    wait_worker_idle(&env);

    // The only way to re-point a fleet mirror: edit its template. No push follows.
    write_global_config(&env, &global("b"));
    run_wait(&env);
    assert_eq!(
        env.refs(&mirror_b),
        env.refs(&upstream),
        "the cron run reconciled the re-pointed mirror in full\n{}",
        log_text(&env)
    );
}

#[test]
fn a_mirror_deleted_and_recreated_empty_gets_everything_back_at_the_next_push() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    let setup = mirrored(&env, "");

    std::fs::remove_dir_all(&setup.mirror).unwrap();
    env.bare_repo("mirror.git");
    env.commit(&setup.work, "a.txt", "two", "second");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    assert!(log_text(&env).contains("reconciling in full"), "{}", log_text(&env));
}

/// Seconds since the epoch of an RFC 3339 time in `status --json`.
fn unix(value: &Value) -> u64 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a time: {value}"));
    humantime::parse_rfc3339(text)
        .unwrap()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits until `verify_interval` (1 s here) has passed since the mirror's last verification.
fn wait_verification_due(env: &TestEnv, setup: &Setup) -> u64 {
    let verified = unix(&setup.status_json(env)[0]["last_verified_at"]);
    wait_until("a verification is due", Duration::from_secs(10), || {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            > verified + 1
    });
    verified
}

#[test]
fn a_mirror_rewound_by_a_direct_push_is_caught_by_verify_interval_and_an_unchanged_one_costs_no_push() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    write_global_config(&env, "worker_linger = \"0s\"\n[defaults]\nverify_interval = \"1s\"\n");
    let setup = Setup::file(&env, &["--delay", "0s"]);
    history(&env, &setup);
    env.commit(&setup.work, "a.txt", "two", "second");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    wait_worker_idle(&env);
    let pushes = count_mirror_pushes(&setup.mirror);

    // Nothing changed: the check lists the mirror, records the time, pushes nothing.
    let before = wait_verification_due(&env, &setup);
    run_wait(&env);
    let status = &setup.status_json(&env)[0];
    assert!(unix(&status["last_verified_at"]) > before, "{status:#}");
    assert_eq!(status["update_status"], "finished", "{status:#}");
    assert_eq!(lines_in(&pushes), 0, "an unchanged mirror gets no push");

    // Someone rewinds the mirror's main: no local signal shows it; the next check does.
    let mirror_url = format!("file://{}", path_str(&setup.mirror));
    env.git(
        &setup.work,
        &["push", "--quiet", "--force", &mirror_url, "HEAD~1:refs/heads/main"],
    );
    env.git(&setup.work, &["push", "--quiet", &mirror_url, "HEAD:refs/heads/stray"]);
    assert_ne!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    wait_verification_due(&env, &setup);
    run_wait(&env);
    // The stray branch is merged work (reachable from main): a full reconciliation deletes it.
    assert_eq!(
        env.refs(&setup.mirror),
        env.refs(&setup.upstream),
        "the rewound mirror was reconciled\n{}",
        log_text(&env)
    );
    assert!(log_text(&env).contains("verification:"), "{}", log_text(&env));
}

#[test]
fn filters_widened_by_hand_are_reconciled_in_full_and_stale_refs_leave_the_mirror() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    let setup = mirrored(&env, "");
    assert!(env.refs(&setup.mirror).contains_key("refs/heads/feature"));

    // Narrowed by hand, reconciled; then `feature` (merged) is deleted while out of scope.
    let config = setup.upstream.join("push-mirror.toml");
    let wide = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{wide}branches = [\"main\"]\n")).unwrap();
    gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    env.git(&setup.work, &["merge", "--quiet", "--ff-only", "feature"]);
    setup.push(&env, &["main", ":feature"]);
    wait_worker_idle(&env);
    assert!(
        env.refs(&setup.mirror).contains_key("refs/heads/feature"),
        "out of scope, the mirror's copy is left alone"
    );

    // Widened by hand again: the mirror must equal the upstream, without the stale branch.
    std::fs::write(&config, wide).unwrap();
    run_wait(&env);
    assert_eq!(
        env.refs(&setup.mirror),
        env.refs(&setup.upstream),
        "the re-filtered mirror was reconciled in full\n{}",
        log_text(&env)
    );
}
