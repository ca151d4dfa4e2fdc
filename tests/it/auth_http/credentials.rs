//! Using a mirror's credentials: the right token converges, a wrong one fails at once as permanent
//! with a redacted error, a short password is refused, and a mirror without any is told how to set
//! them.

use super::*;

/// A `pre-receive` hook on the mirror that records, while a push is being
/// received (so the pushing processes are alive), every process's argv:
/// `ps -eo args` and each `/proc/*/cmdline`.
fn record_argv_while_receiving(mirror: &Path, log: &Path) {
    write_hook(
        mirror,
        "pre-receive",
        &format!(
            "#!/bin/sh\ncat >/dev/null\n{{\n  echo '== ps -eo args'\n  ps -eo args\n  echo '== /proc/*/cmdline'\n  \
             for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\" 2>/dev/null; echo; done\n}} >> '{}'\n",
            log.display()
        ),
    );
}

#[test]
fn the_right_token_converges_through_the_hook_and_sync_and_the_secret_never_leaks() {
    if !http_available() {
        return;
    }
    let env = TestEnv::new();
    let token = unique_token("right");
    let http = http_mirror(&env, USER, &token);
    let argv_log = env.path("argv-while-receiving.txt");
    record_argv_while_receiving(&http.repo, &argv_log);
    let token_file = secret_file(&env, "github.token", &token, 0o600);
    let watcher = SecretWatcher::in_argv(&token);

    let flags = [
        "--username",
        USER,
        "--password-file",
        path_str(&token_file),
        "--delay",
        "0s",
    ];
    let (setup, added) = add_and_install(&env, &http.repo, &http.url, &flags);
    assert!(
        stderr(&added).contains("clear text over http"),
        "a password over plain http warns: {}",
        stderr(&added)
    );
    env.commit(&setup.work, "a.txt", "one", "first");
    env.git(&setup.work, &["tag", "-a", "v1", "-m", "v1"]);
    setup.push(&env, &["main", "v1"]);
    setup.wait_converged(&env);

    // `sync` authenticates the same way, without the hook.
    gpm_ok(&env, &["uninstall", path_str(&setup.upstream)]);
    env.commit(&setup.work, "a.txt", "two", "second");
    setup.push(&env, &["main"]);
    let table = gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert!(
        table.contains("refs/heads/main") && table.contains("updated"),
        "{table}"
    );
    assert!(table.contains("result: ok"), "{table}");
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    watcher.assert_never_seen();

    let argv = std::fs::read_to_string(&argv_log).unwrap();
    assert!(
        argv.contains(&http.url),
        "the hook saw the pushing git processes (their argv has the URL):\n{argv}"
    );
    assert!(argv.contains("== ps -eo args") && argv.contains("== /proc/*/cmdline"));
    assert!(!argv.contains(&token), "a process's argv held the token:\n{argv}");
    assert_eq!(http.server.auth_failures(), 0);
    assert_secret_nowhere(&env, &setup.upstream, &token);
    let list = gpm_ok(&env, &["list", path_str(&setup.upstream)]);
    assert!(list.contains("http://*****:*****@127.0.0.1:"), "{list}");
}

#[test]
fn a_password_under_4_characters_is_refused_and_a_4_letter_one_never_blanks_part_of_a_word() {
    if !http_available() {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, FAST_RETRY);
    let http = http_mirror(&env, USER, &unique_token("good"));
    let upstream = env.bare_repo("upstream.git");
    let repo = path_str(&upstream);

    let add_with = |secret: &str| {
        let file = secret_file(&env, "token", secret, 0o600);
        let args = [
            "add",
            repo,
            "backup",
            &http.url,
            "--username",
            USER,
            "--password-file",
            path_str(&file),
        ];
        gpm_output(&env, &args)
    };

    // Too short to tell apart from ordinary words: refused, without showing it.
    let refused = add_with("ent");
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("shorter than 4 characters"),
        "{}",
        stderr(&refused)
    );
    assert!(!upstream.join("push-mirror.toml").exists());

    // "word", refused by the host: the error's own words ("password_file", "password/token")
    // are intact (the password stands alone nowhere in them).
    let added = add_with("word");
    assert_eq!(added.status.code(), Some(0), "{}", stderr(&added));
    let sync = gpm_output(&env, &["sync", repo]);
    assert_eq!(sync.status.code(), Some(1), "{}", stdout(&sync));
    let status = gpm_output(&env, &["status", "--json", repo]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let error = status[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("the secret in password_file, password_env or password; the token"),
        "{error}"
    );
    assert!(!error.contains("*****"), "nothing of the words was blanked: {error}");
    assert!(http.server.auth_failures() > 0);
}

#[test]
fn a_wrong_token_fails_at_once_as_permanent_with_a_redacted_useful_error() {
    if !http_available() {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, FAST_RETRY);
    let token = unique_token("good");
    let wrong = unique_token("wrong");
    let http = http_mirror(&env, USER, &token);
    let token_file = secret_file(&env, "token", &wrong, 0o600);
    let flags = [
        "--username",
        USER,
        "--password-file",
        path_str(&token_file),
        "--delay",
        "0s",
    ];
    let (setup, _) = add_and_install(&env, &http.repo, &http.url, &flags);
    env.commit(&setup.work, "a.txt", "one", "first");

    // One attempt: refused credentials need a person, so `failed` at once (permanent), with
    // what failed and how to fix it.
    let sync = gpm_output(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(sync.status.code(), Some(1), "{}", stdout(&sync));
    assert!(stdout(&sync).contains("Authentication failed"), "{}", stdout(&sync));
    let status = &setup.status_json(&env)[0];
    assert_eq!(status["update_status"], "failed", "{status:#}");
    assert_eq!(status["failure_class"], "permanent", "{status:#}");
    let error = status["last_error"].as_str().unwrap();
    assert!(error.contains("Authentication failed"), "{error}");
    assert!(
        error.contains("check `username`") && error.contains("password_file"),
        "{error}"
    );
    assert!(!error.contains(&wrong) && !error.contains(&token), "{error}");
    assert!(http.server.auth_failures() > 0);

    // A push tries again at once (and fails again); nothing lands.
    setup.push(&env, &["main"]);
    wait_until("the push's attempt has failed", CONVERGE, || {
        let status = &setup.status_json(&env)[0];
        status["update_status"] == "failed" && status["consecutive_failures"] == 2
    });
    assert!(setup.last_error(&env).contains("Authentication failed"));
    assert!(
        env.refs(&setup.mirror).is_empty(),
        "nothing is pushed with a wrong token"
    );
    let human = gpm_output(&env, &["status", path_str(&setup.upstream)]);
    assert_eq!(human.status.code(), Some(1), "status exits 1 when a mirror failed");
    assert_secret_nowhere(&env, &setup.upstream, &wrong);

    // Fixing the token is enough: the next sync converges.
    secret_file(&env, "token", &token, 0o600);
    gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    // The hook's worker may still be on a retry of its own (`started`): wait for the last word.
    let mut status = serde_json::Value::Null;
    wait_until("the mirror is finished", CONVERGE, || {
        status = setup.status_json(&env).remove(0);
        status["update_status"] == "finished"
    });
    assert_eq!(status["last_error"], serde_json::Value::Null, "{status:#}");
    assert_secret_nowhere(&env, &setup.upstream, &token);
}

#[test]
fn a_mirror_without_credentials_is_told_how_to_set_them() {
    if !http_available() {
        return;
    }
    let env = TestEnv::new();
    let http = http_mirror(&env, USER, &unique_token("unused"));
    let (setup, _) = add_and_install(&env, &http.repo, &http.url, &[]);
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    let sync = gpm_output(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(sync.status.code(), Some(1));
    let error = setup.last_error(&env);
    assert!(error.contains("--username USER --password-file FILE"), "{error}");
}
