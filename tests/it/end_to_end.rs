//! End to end: a real `git push` to an upstream with the hook installed reaches the mirror by
//! itself, over file://, smart HTTP and git://, with GitLab's mirror rules, for SHA-1 and
//! SHA-256 repositories with files or reftable ref storage.

use crate::support::binary::*;
use crate::support::{GitDaemon, RepoFormat, TestEnv, path_str, wait_until};
use std::time::Instant;

in_each_format! {
    branches_tags_force_pushes_and_deletions_reach_the_mirror:
        sha1_file => sha1 over Over::File,
        sha256_file => sha256 over Over::File,
        reftable_file => reftable over Over::File,
        sha256_reftable_file => sha256_reftable over Over::File,
        sha1_http => sha1 over Over::Http,
        sha256_http => sha256 over Over::Http,
        reftable_http => reftable over Over::Http;
    keep_divergent_refs_keeps_and_reports_a_commit_pushed_to_the_mirror:
        sha1_file => sha1 over Over::File,
        sha256_file => sha256 over Over::File,
        reftable_file => reftable over Over::File,
        sha256_http => sha256 over Over::Http,
        reftable_http => reftable over Over::Http;
}

fn branches_tags_force_pushes_and_deletions_reach_the_mirror(format: RepoFormat, over: Over) {
    let env = TestEnv::with_format(format);
    let setup = Setup::over(&env, over, &[]);
    format.assert_of(&env, &setup.upstream);
    format.assert_of(&env, &setup.mirror);
    exercise_mirror_semantics(&env, &setup);
}

#[test]
fn branches_tags_force_pushes_and_deletions_reach_a_git_daemon_mirror() {
    let env = TestEnv::new();
    let daemon = GitDaemon::start(env.root());
    let upstream = env.bare_repo("upstream.git");
    let mirror = env.bare_repo("mirror.git");
    let setup = Setup::with_url(&env, upstream, mirror, &daemon.url("mirror.git"), &[]);
    exercise_mirror_semantics(&env, &setup);
}

fn exercise_mirror_semantics(env: &TestEnv, setup: &Setup) {
    let work = &setup.work;
    let base = env.commit(work, "a.txt", "one", "first");
    env.git(work, &["tag", "light"]);
    env.git(work, &["tag", "-a", "v1.0", "-m", "release 1.0"]);
    env.git(work, &["checkout", "-q", "-b", "merged"]);
    env.commit(work, "m.txt", "merged work", "merged work");
    env.git(work, &["checkout", "-q", "-b", "unmerged", &base]);
    env.commit(work, "u.txt", "unmerged work", "unmerged work");
    env.git(work, &["checkout", "-q", "main"]);
    env.git(work, &["merge", "-q", "--ff-only", "merged"]);
    setup.push(env, &["main", "merged", "unmerged", "light", "v1.0"]);
    setup.wait_converged(env);
    let refs = env.refs(&setup.mirror);
    let v1 = env.git(&setup.upstream, &["rev-parse", "refs/tags/v1.0"]);
    assert_eq!(refs["refs/tags/v1.0"], v1, "annotated tags keep their tag object");

    // A merged branch deleted upstream is deleted on the mirror; an unmerged one is kept and reported.
    let unmerged_on_mirror = env.refs(&setup.mirror)["refs/heads/unmerged"].clone();
    let upstream_plus_kept_unmerged = || {
        let mut expected = env.refs(&setup.upstream);
        expected.insert("refs/heads/unmerged".into(), unmerged_on_mirror.clone());
        expected
    };
    env.git(work, &["push", "--quiet", "origin", "--delete", "merged"]);
    setup.wait_for_mirror(env, &upstream_plus_kept_unmerged());
    env.git(work, &["push", "--quiet", "origin", "--delete", "unmerged"]);
    wait_until("the unmerged branch is reported as kept", CONVERGE, || {
        setup.status_json(env)[0]["kept_refs"] == serde_json::json!(["refs/heads/unmerged"])
    });
    assert!(
        env.refs(&setup.mirror).contains_key("refs/heads/unmerged"),
        "unmerged work is never deleted"
    );
    assert!(!env.refs(&setup.mirror).contains_key("refs/heads/merged"));

    // A force-push upstream is overwritten on the mirror.
    env.git(work, &["reset", "-q", "--hard", &base]);
    env.commit(work, "b.txt", "rewritten", "rewritten history");
    setup.push(env, &["--force", "main"]);
    setup.wait_for_mirror(env, &upstream_plus_kept_unmerged());

    // The state is written just after the mirror's refs move.
    wait_until("the update is recorded as finished", CONVERGE, || {
        setup.status_json(env)[0]["update_status"] == "finished"
    });
    let status = &setup.status_json(env)[0];
    assert_eq!(
        status["kept_refs"],
        serde_json::json!(["refs/heads/unmerged"]),
        "{status:#}"
    );
    assert_eq!(status["last_error"], serde_json::Value::Null, "{status:#}");

    // Each kept ref says why, and how to have such refs deleted.
    let why = "deleted locally with work not merged into the default branch; prune_unmerged = true deletes it";
    assert_eq!(
        status["kept_reasons"],
        serde_json::json!([{"ref": "refs/heads/unmerged", "reason": why}]),
        "{status:#}"
    );
    let human = gpm_ok(env, &["status", path_str(&setup.upstream)]);
    assert!(human.contains(&format!("      refs/heads/unmerged: {why}")), "{human}");

    // With prune_unmerged, a `sync` deletes it (with a lease on the value the mirror has).
    gpm_ok(
        env,
        &["set", path_str(&setup.upstream), "backup", "--prune-unmerged", "true"],
    );
    gpm_ok(env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    let status = &setup.status_json(env)[0];
    assert_eq!(status["kept_refs"], serde_json::json!([]), "{status:#}");
    assert_eq!(status["kept_reasons"], serde_json::json!([]), "{status:#}");
}

#[test]
fn the_pusher_does_not_wait_for_a_slow_mirror() {
    let env = TestEnv::new();
    let setup = Setup::file(&env, &["--delay", "0s"]);
    let marker = env.path("mirror-received");
    write_hook(
        &setup.mirror,
        "pre-receive",
        &format!("#!/bin/sh\nsleep 5\ntouch '{}'\n", marker.display()),
    );
    let pushed = env.commit(&setup.work, "a.txt", "one", "first");
    let started = Instant::now();
    setup.push(&env, &["main"]);
    let push_took = started.elapsed();
    // Order of events: our push returned while the mirror was still inside its 5 s pre-receive hook.
    assert!(
        !marker.exists(),
        "git push returned only after the mirror had received the push ({push_took:?})"
    );
    setup.wait_converged(&env);
    assert!(marker.exists());
    assert_eq!(env.refs(&setup.mirror)["refs/heads/main"], pushed);
}

#[test]
fn a_burst_of_pushes_coalesces_into_few_mirror_pushes_and_the_newest_value_lands() {
    let env = TestEnv::new();
    let setup = Setup::file(&env, &["--delay", "2s"]);
    let pushes = count_mirror_pushes(&setup.mirror);
    let mut newest = String::new();
    for i in 0..30 {
        newest = env.commit(&setup.work, "counter.txt", &i.to_string(), &format!("push {i}"));
        setup.push(&env, &["main"]);
    }
    setup.wait_converged(&env);
    assert_eq!(env.refs(&setup.mirror)["refs/heads/main"], newest);
    let count = lines_in(&pushes);
    assert!(count < 15, "30 pushes produced {count} mirror pushes");
}

fn keep_divergent_refs_keeps_and_reports_a_commit_pushed_to_the_mirror(format: RepoFormat, over: Over) {
    let env = TestEnv::with_format(format);
    let setup = Setup::over(&env, over, &["--keep-divergent-refs", "--delay", "0s"]);
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);

    // Someone pushes straight to the mirror.
    let direct = env.clone_work(&setup.mirror, "direct");
    let divergent = env.commit(&direct, "d.txt", "direct", "pushed to the mirror");
    env.git(&direct, &["push", "--quiet", "origin", "main"]);

    env.commit(&setup.work, "a.txt", "two", "second");
    env.git(&setup.work, &["checkout", "-q", "-b", "other"]);
    let other = env.commit(&setup.work, "o.txt", "other", "other branch");
    setup.push(&env, &["main", "other"]);
    wait_until("the other branch lands", CONVERGE, || {
        env.refs(&setup.mirror).get("refs/heads/other") == Some(&other)
    });
    wait_until("the divergent ref is reported", CONVERGE, || {
        setup.status_json(&env)[0]["divergent_refs"] == serde_json::json!(["refs/heads/main"])
    });
    assert_eq!(
        env.refs(&setup.mirror)["refs/heads/main"],
        divergent,
        "the mirror's commit is kept"
    );
    let status = &setup.status_json(&env)[0];
    assert_eq!(status["update_status"], "failed");
    assert!(status["last_error"].as_str().unwrap().contains("refs/heads/main"));

    let sync = gpm_output(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(sync.status.code(), Some(1), "{}", stdout(&sync));
    let table = stdout(&sync);
    assert!(
        table.contains("refs/heads/main") && table.contains("divergent"),
        "{table}"
    );
    assert!(
        table.contains("refs/heads/other") && table.contains("up-to-date"),
        "{table}"
    );
    let status_exit = gpm_output(&env, &["status", path_str(&setup.upstream)]);
    assert_eq!(
        status_exit.status.code(),
        Some(1),
        "status exits 1 when a mirror failed"
    );
}

#[test]
fn sync_reconciles_everything_and_prints_a_table() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("upstream.git");
    let mirror = env.bare_repo("mirror.git");
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["tag", "v1"]);
    env.git(&work, &["push", "--quiet", "origin", "main", "v1"]);
    // No hook: pushes made before the mirror was added are reconciled by `sync`.
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&upstream),
            "backup",
            &format!("file://{}", path_str(&mirror)),
        ],
    );
    let table = gpm_ok(&env, &["sync", path_str(&upstream)]);
    assert!(table.contains("mirror backup"), "{table}");
    assert!(
        table.contains("refs/heads/main") && table.contains("created"),
        "{table}"
    );
    assert!(table.contains("refs/tags/v1"), "{table}");
    assert!(table.contains("result: ok"), "{table}");
    assert_eq!(env.refs(&mirror), env.refs(&upstream));
    let again = gpm_ok(&env, &["sync", path_str(&upstream), "--mirror", "backup"]);
    assert!(again.contains("up-to-date") && !again.contains("created"), "{again}");
    let unknown = gpm_output(&env, &["sync", path_str(&upstream), "--mirror", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("there is no mirror named `nope`"));
}

#[test]
fn filters_leave_refs_outside_them_untouched() {
    let env = TestEnv::new();
    let setup = Setup::file(&env, &["--branch", "release/*", "--tag", "v*", "--delay", "0s"]);
    let work = &setup.work;
    env.commit(work, "a.txt", "one", "first");
    env.git(work, &["branch", "release/1.0"]);
    env.git(work, &["branch", "feature"]);
    env.git(work, &["tag", "v1"]);
    env.git(work, &["tag", "nightly"]);
    setup.push(&env, &["main", "release/1.0", "feature", "v1", "nightly"]);
    let expected: std::collections::BTreeMap<String, String> = env
        .refs(&setup.upstream)
        .into_iter()
        .filter(|(name, _)| name == "refs/heads/release/1.0" || name == "refs/tags/v1")
        .collect();
    setup.wait_for_mirror(&env, &expected);
}

#[test]
fn protected_only_with_no_protected_branches_mirrors_no_branch_and_warns() {
    let env = TestEnv::new();
    let setup = Setup::file(&env, &["--only-protected-branches", "--delay", "0s"]);
    env.commit(&setup.work, "a.txt", "one", "first");
    env.git(&setup.work, &["tag", "v1"]);
    setup.push(&env, &["main", "v1"]);
    let expected: std::collections::BTreeMap<String, String> = env
        .refs(&setup.upstream)
        .into_iter()
        .filter(|(name, _)| name.starts_with("refs/tags/"))
        .collect();
    setup.wait_for_mirror(&env, &expected);
    let table = gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert!(
        table.contains("warning: only_protected_branches is set but the repository has no protected_branches"),
        "{table}"
    );

    // Protecting main makes it mirrored.
    let config = setup.upstream.join("push-mirror.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("protected_branches = [\"main\"]\n{text}")).unwrap();
    gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
}

#[test]
fn a_worker_ignores_the_hook_environment_it_inherits() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("upstream.git");
    let mirror = env.bare_repo("mirror.git");
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&upstream),
            "backup",
            &format!("file://{}", path_str(&mirror)),
            "--delay",
            "0s",
        ],
    );
    let work = env.clone_work(&upstream, "work");
    let head = env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["push", "--quiet", "origin", "main"]);

    // The hook body as git runs it: in the repository, with GIT_DIR=. (no worker started).
    let mut hook = gpm(&env)
        .args(["hook", "post-receive", "--no-worker"])
        .current_dir(&upstream)
        .env("GIT_DIR", ".")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let line = format!("{} {head} refs/heads/main\n", "0".repeat(40));
    hook.stdin.take().unwrap().write_all(line.as_bytes()).unwrap();
    assert!(hook.wait().unwrap().success());

    // A worker that inherited a hook's environment pointing elsewhere must not pass it to git.
    let bogus = env.path("bogus");
    std::fs::create_dir_all(&bogus).unwrap();
    let out = gpm(&env)
        .arg("run")
        .current_dir(&bogus)
        .env("GIT_DIR", ".")
        .env("GIT_OBJECT_DIRECTORY", &bogus)
        .env("GIT_ALTERNATE_OBJECT_DIRECTORIES", &bogus)
        .env("GIT_QUARANTINE_PATH", &bogus)
        .env("GIT_PUSH_OPTION_COUNT", "1")
        .env("GIT_PUSH_OPTION_0", "ci.skip")
        .env("GIT_PROTOCOL", "version=2")
        .env("GIT_INDEX_FILE", bogus.join("index"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.refs(&mirror), env.refs(&upstream));
}
