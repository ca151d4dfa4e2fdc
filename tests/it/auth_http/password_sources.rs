//! Where a password comes from and where it may go: split out of the URL and shown masked, a
//! password file others can read refused, password_env for the hook's worker, and never handed to a
//! mirror that is not HTTP.

use super::*;

#[test]
fn a_password_in_the_url_is_split_out_stored_privately_and_shown_masked() {
    if !http_available() {
        return;
    }
    let env = TestEnv::new();
    let token = unique_token("inurl");
    let http = http_mirror(&env, USER, &token);
    let with_secret = http.url.replacen("http://", &format!("http://{USER}:{token}@"), 1);
    let (setup, added) = add_and_install(&env, &http.repo, &with_secret, &["--delay", "0s"]);
    let (out, err) = (stdout(&added), stderr(&added));
    assert!(
        out.contains("http://*****:*****@127.0.0.1:") && !out.contains(&token),
        "{out}"
    );
    assert!(
        err.contains("clear text over http") && err.contains("(mode 600)"),
        "{err}"
    );
    assert!(!err.contains(&token), "{err}");

    let config = std::fs::read_to_string(setup.upstream.join("push-mirror.toml")).unwrap();
    assert!(!config.contains(&token), "{config}");
    assert!(config.contains(&format!("username = \"{USER}\"")), "{config}");
    let table: toml::Table = config.parse().unwrap();
    let file = PathBuf::from(table["mirror"]["backup"]["password_file"].as_str().unwrap());
    assert!(file.starts_with(state_base(&env)), "{}", file.display());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), token);
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777,
        0o700
    );

    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    let list = gpm_ok(&env, &["list", path_str(&setup.upstream)]);
    assert!(
        list.contains(&format!("http://*****:*****@{}", &http.url["http://".len()..])),
        "{list}"
    );
    let status = &setup.status_json(&env)[0];
    assert!(
        status["url"].as_str().unwrap().starts_with("http://*****:*****@"),
        "{status:#}"
    );
    // Only its own mode-600 file holds the secret.
    let stored = files_containing(&state_base(&env), &token);
    assert_eq!(stored, vec![file.clone()]);

    // A refused `add` never replaces the stored secret.
    let other = with_secret.replace(&token, "another-secret");
    let again = gpm_output(&env, &["add", path_str(&setup.upstream), "backup", &other]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("already exists"), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), token);
    let leftovers: Vec<_> = std::fs::read_dir(file.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no staged secret is left behind");

    // A password in the URL and a password file at once is ambiguous.
    let both = gpm_output(
        &env,
        &[
            "add",
            path_str(&setup.upstream),
            "other",
            &other,
            "--password-file",
            path_str(&file),
        ],
    );
    assert_eq!(both.status.code(), Some(2));
    assert!(stderr(&both).contains("use only one"), "{}", stderr(&both));

    // Removing the mirror removes the secret it stored.
    let removed = gpm_ok(&env, &["remove", path_str(&setup.upstream), "backup"]);
    assert!(removed.contains(&format!("deleted {}", file.display())), "{removed}");
    assert!(!file.exists());
}

#[test]
fn a_password_is_never_handed_to_a_mirror_that_is_not_http() {
    // Over file:// the mirror's hooks run in the pushing git's environment:
    // a password given to git there would reach them.
    let env = TestEnv::new();
    let token = unique_token("file");
    let token_file = secret_file(&env, "token", &token, 0o600);
    let mirror = env.bare_repo("mirror.git");
    let seen = env.path("mirror-hook-env.txt");
    write_hook(
        &mirror,
        "pre-receive",
        &format!(
            "#!/bin/sh
cat >/dev/null
env > '{}'
",
            seen.display()
        ),
    );
    let url = format!("file://{}", path_str(&mirror));
    let credentials = ["--username", USER, "--password-file", path_str(&token_file)];

    // `add` refuses credentials a file:// mirror never sends (and so does `set`).
    let upstream = env.bare_repo("upstream.git");
    let mut args = vec!["add", path_str(&upstream), "backup", &url];
    args.extend_from_slice(&credentials);
    let refused = gpm_output(&env, &args);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(
            "mirror backup: `username` and `password_file` set, but a local (file://) mirror is never sent a \
             user name or password"
        ),
        "{}",
        stderr(&refused)
    );
    assert!(!upstream.join("push-mirror.toml").exists(), "nothing was added");
    let (setup, _) = Setup::add_and_install(&env, upstream, &mirror, &url, &["--delay", "0s"]);
    let mut args = vec!["set", path_str(&setup.upstream), "backup"];
    args.extend_from_slice(&credentials);
    let refused = gpm_output(&env, &args);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("never sent a user name or password"));

    // Written by hand, they are ignored (`check` says so) and never reach the mirror's hooks.
    let file = setup.upstream.join("push-mirror.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!(
            "{text}username = \"{USER}\"\npassword_file = \"{}\"\n",
            path_str(&token_file)
        ),
    )
    .unwrap();
    let check = gpm_ok(&env, &["check", path_str(&setup.upstream)]);
    assert!(
        check.contains("note: `username` and `password_file` set, but a local (file://) mirror is never sent"),
        "{check}"
    );
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    let hook_env = std::fs::read_to_string(&seen).unwrap();
    assert!(hook_env.contains("GIT_DIR="), "the hook ran: {hook_env}");
    assert!(!hook_env.contains(&token), "the mirror's hook saw the password");
    assert!(
        !hook_env.contains("GIT_PUSH_MIRROR_CREDENTIALS"),
        "nor where to read it"
    );
}

#[test]
fn a_password_file_others_can_read_is_refused_at_add_with_the_fix() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("upstream.git");
    let token_file = secret_file(&env, "token", "s3cret-token", 0o644);
    let out = gpm_output(
        &env,
        &[
            "add",
            path_str(&upstream),
            "github",
            "https://github.com/acme/app.git",
            "--username",
            USER,
            "--password-file",
            path_str(&token_file),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&format!("chmod 600 {}", token_file.display())), "{err}");
    assert!(!upstream.join("push-mirror.toml").exists(), "nothing was added");

    // Private, it is accepted; without a user name, with a warning.
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let url = "https://github.com/acme/app.git";
    let out = gpm_output(
        &env,
        &[
            "add",
            path_str(&upstream),
            "github",
            url,
            "--password-file",
            path_str(&token_file),
        ],
    );
    crate::support::assert_success(&out, "add with a private password file");
    assert!(
        stderr(&out).contains("a password without a user name"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("https://*****:*****@github.com/acme/app.git"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn password_env_supplies_the_token_to_the_hooks_worker() {
    if !http_available() {
        return;
    }
    let mut env = TestEnv::new();
    let token = unique_token("env");
    let http = http_mirror(&env, USER, &token);
    // The worker inherits it from the git server that runs the hook.
    env.set_env("MIRROR_TOKEN", &token);
    let flags = ["--username", USER, "--password-env", "MIRROR_TOKEN", "--delay", "0s"];
    let (setup, added) = add_and_install(&env, &http.repo, &http.url, &flags);
    assert!(stderr(&added).contains("clear text over http"), "{}", stderr(&added));
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    assert_secret_nowhere(&env, &setup.upstream, &token);

    let without = gpm(&env)
        .args(["sync", path_str(&setup.upstream)])
        .env_remove("MIRROR_TOKEN")
        .output()
        .unwrap();
    assert_eq!(without.status.code(), Some(1));
    assert!(
        stdout(&without).contains("MIRROR_TOKEN (password_env) is not set"),
        "{}",
        stdout(&without)
    );

    let git_named = gpm_output(
        &env,
        &[
            "set",
            path_str(&setup.upstream),
            "backup",
            "--password-env",
            "GIT_TOKEN",
        ],
    );
    assert!(
        stderr(&git_named).contains("variables named GIT_* are removed"),
        "{}",
        stderr(&git_named)
    );
}
