//! Refs whose LFS objects are missing or not wanted: `lfs = off` pushes refs without objects, a ref
//! needing an object missing locally is held, and without `lfs_required` the refs go and the gap is
//! reported.

use super::*;

#[test]
fn lfs_off_pushes_refs_without_objects() {
    if !lfs_available() {
        return;
    }
    let env = TestEnv::new();
    let setup = Setup::file(&env, &["--lfs", "off"]);
    track_lfs(&env, &setup.work);
    commit_lfs_file(&env, &setup.work, "a.bin", "a");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    let status = wait_for_status(&setup, &env, "update_status", "finished");
    assert!(local_store(&setup.mirror).is_empty());
    assert_eq!(field(&status, "lfs_status"), "none");
}

/// Pushes without git-lfs's pre-push hook, as a client without git-lfs does: the refs arrive,
/// their LFS objects never reach the upstream's store.
fn push_without_lfs_objects(env: &TestEnv, work: &Path, refs: &[&str]) {
    let mut args = vec!["push", "--quiet", "--no-verify", "origin"];
    args.extend_from_slice(refs);
    env.git(work, &args);
}

#[test]
fn a_ref_needing_an_object_missing_locally_is_held_and_the_others_are_mirrored() {
    if !lfs_available() {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, FAIL_FAST);
    let setup = Setup::file(&env, &[]);
    track_lfs(&env, &setup.work);
    let a = commit_lfs_file(&env, &setup.work, "a.bin", "a");
    env.git(&setup.work, &["checkout", "--quiet", "-b", "broken"]);
    let lost = commit_lfs_file(&env, &setup.work, "lost.bin", "lost");
    setup.push(&env, &["main"]);
    push_without_lfs_objects(&env, &setup.work, &["broken"]);
    assert!(!local_store(&setup.upstream).contains_key(&lost.oid));
    let sync = gpm_output(&env, &["sync", path_str(&setup.upstream)]);
    let report = stdout(&sync);
    assert_eq!(sync.status.code(), Some(1), "a held ref fails the update:\n{report}");
    assert!(
        report.contains("refs/heads/broken") && report.contains("held"),
        "{report}"
    );
    assert!(
        report.contains(&lost.oid),
        "the report names the missing object:\n{report}"
    );

    let mirror_refs = env.refs(&setup.mirror);
    let upstream_refs = env.refs(&setup.upstream);
    assert_eq!(mirror_refs.get("refs/heads/main"), upstream_refs.get("refs/heads/main"));
    assert!(
        !mirror_refs.contains_key("refs/heads/broken"),
        "pointers without their object are not mirrored"
    );
    assert_eq!(local_store(&setup.mirror), expected_objects(&[&a]));
    let status = status_of(&setup, &env);
    assert_eq!(field(&status, "lfs_status"), "failed");
    assert!(field(&status, "lfs_error").contains(&lost.oid), "{status}");
    assert!(field(&status, "lfs_error").contains("git lfs fetch --all"), "{status}");
    assert_eq!(status["pending_refs"], serde_json::json!(["refs/heads/broken"]));

    // The object comes back (here: pushed again from the work tree); the next run mirrors the ref.
    env.git(&setup.work, &["lfs", "push", "--all", "origin", "broken"]);
    gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    assert_eq!(local_store(&setup.mirror), expected_objects(&[&a, &lost]));
    // (A worker the hook started may still be retrying: wait for the last word.)
    let status = wait_for_status(&setup, &env, "update_status", "finished");
    assert_eq!(field(&status, "lfs_status"), "ok");
}

#[test]
fn without_lfs_required_a_missing_object_is_reported_and_the_refs_are_mirrored() {
    if !lfs_available() {
        return;
    }
    let env = TestEnv::new();
    // `on`: with `auto` a repository whose store is still empty is not an LFS repository.
    let setup = Setup::file(&env, &["--lfs", "on", "--lfs-required", "false"]);
    track_lfs(&env, &setup.work);
    let lost = commit_lfs_file(&env, &setup.work, "lost.bin", "lost");
    push_without_lfs_objects(&env, &setup.work, &["main"]);
    assert!(local_store(&setup.upstream).is_empty());
    let sync = gpm_output(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(sync.status.code(), Some(0), "{}", stdout(&sync));
    assert!(stdout(&sync).contains("lfs: failed"), "{}", stdout(&sync));
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    let status = wait_for_status(&setup, &env, "update_status", "finished");
    assert_eq!(field(&status, "lfs_status"), "failed");
    assert!(field(&status, "lfs_error").contains(&lost.oid));
    let metrics = gpm_ok(&env, &["metrics"]);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("git_push_mirror_mirror_lfs_failed{") && l.ends_with(" 1")),
        "{metrics}"
    );

    // Once the object is back, the next update (a push of something else) sends the owed
    // object too: refs pushed without their objects are checked again in full.
    env.git(&setup.work, &["lfs", "push", "--all", "origin", "main"]);
    env.commit(&setup.work, "README", "more\n", "unrelated change");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    wait_until("the owed object reaches the mirror", CONVERGE, || {
        local_store(&setup.mirror).contains_key(&lost.oid)
    });
    wait_for_status(&setup, &env, "lfs_status", "ok");
}
