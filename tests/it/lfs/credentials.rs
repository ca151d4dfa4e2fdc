//! LFS credentials: a wrong one fails the update with a redacted error and the refs wait (or go,
//! without `lfs_required`), and an `lfs_url` asking for credentials the mirror lacks is told so.

use super::*;

#[test]
fn a_wrong_lfs_credential_fails_the_update_with_a_redacted_error_and_the_refs_wait() {
    if !lfs_and_http_available() {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, FAIL_FAST);
    let (setup, server) = http_lfs_setup(&env, &[]);
    // The git credential is right; the LFS server wants another one.
    server.lfs().set_password("the-lfs-servers-own-password");
    track_lfs(&env, &setup.work);
    let a = commit_lfs_file(&env, &setup.work, "a.bin", "a");
    setup.push(&env, &["main"]);

    let status = wait_for_status(&setup, &env, "update_status", "failed");
    assert!(
        field(&status, "last_error")
            .starts_with("LFS upload failed: the LFS endpoint refused the user name and password"),
        "{status}"
    );
    assert_eq!(field(&status, "lfs_status"), "failed");
    assert!(
        field(&status, "lfs_error").starts_with("LFS upload failed:"),
        "{status}"
    );
    assert_eq!(status["pending_refs"], serde_json::json!(["refs/heads/main"]));
    assert!(
        server.lfs().auth_failures() > 0,
        "git-lfs offered the mirror's credential"
    );
    assert!(
        env.refs(&setup.mirror).is_empty(),
        "no ref reaches the mirror without its objects"
    );
    assert!(server.lfs().objects().is_empty());
    let human = gpm_output(&env, &["status", path_str(&setup.upstream)]);
    assert_eq!(human.status.code(), Some(1));
    assert!(stdout(&human).contains("lfs_status: failed"), "{}", stdout(&human));
    assert_password_not_stored(&env, &setup);

    // Fixed on the server: the next run mirrors objects and refs.
    server.lfs().set_password(PASSWORD);
    gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    assert_eq!(server.lfs().objects(), expected_objects(&[&a]));
    wait_for_status(&setup, &env, "lfs_status", "ok");
}

#[test]
fn without_lfs_required_a_wrong_lfs_credential_still_mirrors_the_refs_and_says_so() {
    if !lfs_and_http_available() {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, FAIL_FAST);
    let (setup, server) = http_lfs_setup(&env, &["--lfs-required=false"]);
    server.lfs().set_password("the-lfs-servers-own-password");
    track_lfs(&env, &setup.work);
    commit_lfs_file(&env, &setup.work, "a.bin", "a");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    let status = wait_for_status(&setup, &env, "update_status", "finished");
    assert_eq!(field(&status, "lfs_status"), "failed", "{status}");
    assert!(
        field(&status, "lfs_error").starts_with("LFS upload failed:"),
        "{status}"
    );
    assert!(status["last_error"].is_null(), "{status}");
    assert_password_not_stored(&env, &setup);
}

#[test]
fn an_lfs_url_that_asks_for_credentials_the_mirror_lacks_is_told_so_not_that_they_were_refused() {
    if !lfs_and_http_available() {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, FAIL_FAST);
    std::fs::create_dir_all(env.path("srv")).unwrap();
    let server = HttpGitServer::start_with_lfs(&env, &env.path("srv"), USER, PASSWORD);
    let lfs_url = format!("http://127.0.0.1:{}/lfs/backup", server.port());
    let mirror = env.bare_repo("mirror.git");
    let url = format!("file://{}", path_str(&mirror));
    let setup = Setup::with_url(
        &env,
        env.bare_repo("upstream.git"),
        mirror,
        &url,
        &["--lfs-url", &lfs_url],
    );
    track_lfs(&env, &setup.work);
    let a = commit_lfs_file(&env, &setup.work, "a.bin", "a");
    setup.push(&env, &["main"]);

    // No user name or password was offered: the error says the endpoint wants some.
    let status = wait_for_status(&setup, &env, "update_status", "failed");
    let error = field(&status, "last_error");
    assert!(
        error.contains(&format!(
            "the LFS endpoint (http://127.0.0.1:{}) asks for a user name and password, and the mirror has none: \
             set them with `git-push-mirror set {} backup --username USER --password-file FILE`",
            server.port(),
            setup.upstream.display()
        )),
        "{status}"
    );
    assert!(
        !error.contains("refused"),
        "nothing was offered, nothing refused: {error}"
    );

    // Given them (the file:// mirror takes them, for its lfs_url), it mirrors.
    let token = secret_file(&env, "mirror.token", PASSWORD, 0o600);
    let upstream = path_str(&setup.upstream);
    gpm_ok(
        &env,
        &[
            "set",
            upstream,
            "backup",
            "--username",
            USER,
            "--password-file",
            path_str(&token),
        ],
    );
    gpm_ok(&env, &["sync", upstream]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    assert_eq!(server.lfs().objects(), expected_objects(&[&a]));

    // Without the lfs_url, nothing would send them: `set` refuses to drop it.
    let refused = gpm_output(&env, &["set", upstream, "backup", "--lfs-url", ""]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("a local (file://) mirror is never sent a user name or password"),
        "{}",
        stderr(&refused)
    );
}
