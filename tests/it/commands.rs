//! The admin's commands: install/uninstall, add/set/remove/list, status, check, and the
//! `post-receive` symlink.

use crate::support::binary::*;
use crate::support::{TestEnv, path_str, wait_until};
use std::os::unix::fs::PermissionsExt;

#[test]
fn install_chains_an_existing_hook_and_uninstall_restores_it() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("upstream.git");
    let mirror = env.bare_repo("mirror.git");
    let seen = env.path("existing-hook-saw");
    let original = format!("#!/bin/sh\ncat > '{}'\n", seen.display());
    write_hook(&upstream, "post-receive", &original);
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
    let installed = gpm_ok(&env, &["install", path_str(&upstream)]);
    assert!(installed.contains("still runs"), "{installed}");

    let work = env.clone_work(&upstream, "work");
    let head = env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    wait_until("the existing hook ran", CONVERGE, || {
        std::fs::read_to_string(&seen).is_ok_and(|s| s.contains(&head))
    });
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        format!("{} {head} refs/heads/main\n", "0".repeat(40)),
        "the existing hook got the same stdin"
    );
    wait_until("the mirror converges", CONVERGE, || {
        env.refs(&mirror) == env.refs(&upstream)
    });

    // Installing twice is harmless and keeps the chain.
    gpm_ok(&env, &["install", path_str(&upstream)]);
    gpm_ok(&env, &["uninstall", path_str(&upstream)]);
    let restored = std::fs::read_to_string(upstream.join("hooks/post-receive")).unwrap();
    assert_eq!(restored, original);
    assert!(!upstream.join("hooks/post-receive.before-push-mirror").exists());
    let again = gpm_ok(&env, &["uninstall", path_str(&upstream)]);
    assert!(again.contains("not installed"), "{again}");
}

#[test]
fn install_into_a_repository_without_a_hook_and_uninstall_removes_it() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("upstream.git");
    gpm_ok(&env, &["install", path_str(&upstream)]);
    let hook = upstream.join("hooks/post-receive");
    let mode = std::fs::metadata(&hook).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "the hook is executable");
    gpm_ok(&env, &["uninstall", path_str(&upstream)]);
    assert!(!hook.exists());
}

#[test]
fn add_set_and_remove_keep_the_admins_comments() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("upstream.git");
    let config = upstream.join("push-mirror.toml");
    let original = "# Mirrors of app.git -- ask ops before changing.\nprotected_branches = [\"main\"] # the release line\n\n# Off-site backup.\n[mirror.backup]\nurl = \"file:///srv/backup/app.git\" # nightly verified\n";
    std::fs::write(&config, original).unwrap();
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&upstream),
            "second",
            "https://example.com/app.git",
            "--no-tags",
            "--branch",
            "release/*",
        ],
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.starts_with(original),
        "existing text is kept byte for byte:\n{text}"
    );
    assert!(text.contains("[mirror.second]"), "{text}");

    gpm_ok(
        &env,
        &[
            "set",
            path_str(&upstream),
            "backup",
            "--keep-divergent-refs",
            "--enabled",
            "false",
        ],
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("# Off-site backup.") && text.contains("# nightly verified"),
        "{text}"
    );
    assert!(
        text.contains("keep_divergent_refs = true") && text.contains("enabled = false"),
        "{text}"
    );

    let listed = gpm_ok(&env, &["list", path_str(&upstream)]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines[0].contains("backup") && lines[0].contains("disabled") && lines[0].contains("keep-divergent-refs"));
    assert!(lines[1].contains("second") && lines[1].contains("no-tags") && lines[1].contains("branches=release/*"));

    gpm_ok(&env, &["remove", path_str(&upstream), "second"]);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains("second"), "{text}");
    assert!(text.contains("# Mirrors of app.git -- ask ops before changing."));
    let missing = gpm_output(&env, &["remove", path_str(&upstream), "second"]);
    assert_eq!(missing.status.code(), Some(2));
    let duplicate = gpm_output(&env, &["add", path_str(&upstream), "backup", "file:///x.git"]);
    assert_eq!(duplicate.status.code(), Some(2));
}

#[test]
fn a_password_in_the_url_is_stored_apart_and_never_shown() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("upstream.git");
    let out = gpm_output(
        &env,
        &[
            "add",
            path_str(&upstream),
            "gh",
            "https://bob:hunter2@example.com/app.git",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let config = std::fs::read_to_string(upstream.join("push-mirror.toml")).unwrap();
    assert!(!config.contains("hunter2"), "{config}");
    assert!(config.contains("username = \"bob\""), "{config}");
    let listed = gpm_ok(&env, &["list", path_str(&upstream)]);
    assert!(
        !listed.contains("hunter2") && listed.contains("https://*****:*****@example.com/app.git"),
        "{listed}"
    );
    let status = gpm_ok(&env, &["status", "--json", path_str(&upstream)]);
    assert!(!status.contains("hunter2"));
}

#[test]
fn status_json_has_the_documented_fields() {
    let env = TestEnv::new();
    let setup = Setup::file(&env, &["--delay", "0s"]);
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    wait_until("the update is recorded", CONVERGE, || {
        setup.status_json(&env)[0]["update_status"] == "finished"
    });
    let status = &setup.status_json(&env)[0];
    for field in [
        "repo",
        "mirror",
        "url",
        "enabled",
        "update_status",
        "last_update_at",
        "last_update_started_at",
        "last_successful_update_at",
        "last_error",
        "divergent_refs",
        "kept_refs",
        "pending_refs",
    ] {
        assert!(status.get(field).is_some(), "missing {field}: {status:#}");
    }
    assert_eq!(status["mirror"], "backup");
    assert_eq!(status["enabled"], true);
    assert!(status["last_successful_update_at"].as_str().unwrap().ends_with('Z'));
    // Without arguments, status covers every registered repository.
    let all = gpm_ok(&env, &["status"]);
    assert!(
        all.contains(path_str(&std::fs::canonicalize(&setup.upstream).unwrap())),
        "{all}"
    );
}

#[test]
fn check_reports_unreachable_mirrors() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("upstream.git");
    let mirror = env.bare_repo("mirror.git");
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&upstream),
            "good",
            &format!("file://{}", path_str(&mirror)),
        ],
    );
    gpm_ok(&env, &["install", path_str(&upstream)]);
    let ok = gpm_ok(&env, &["check", path_str(&upstream)]);
    assert!(ok.contains("good") && ok.contains("reachable"), "{ok}");
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&upstream),
            "gone",
            &format!("file://{}", env.path("missing.git").display()),
        ],
    );
    let out = gpm_output(&env, &["check", path_str(&upstream)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out)
            .lines()
            .any(|line| line.contains("  gone file://") && line.contains(": FAILED")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_binary_works_as_a_post_receive_symlink() {
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
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_git-push-mirror"),
        upstream.join("hooks/post-receive"),
    )
    .unwrap();
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    wait_until("the mirror converges", CONVERGE, || {
        env.refs(&mirror) == env.refs(&upstream)
    });
    // `check` knows the link for the hook it is.
    let check = gpm_ok(&env, &["check", path_str(&upstream)]);
    assert!(
        check.contains(&format!(
            "hook {}: runs {}",
            upstream.join("hooks/post-receive").display(),
            env!("CARGO_BIN_EXE_git-push-mirror")
        )),
        "{check}"
    );
}

#[test]
fn help_names_every_command() {
    let env = TestEnv::new();
    let help = gpm_ok(&env, &["--help"]);
    for command in [
        "hook",
        "run",
        "sync",
        "add",
        "set",
        "remove",
        "list",
        "status",
        "install",
        "uninstall",
        "check",
        "forget",
        "metrics",
        "keygen",
        "known-hosts",
        "completions",
        "man",
    ] {
        // A line of the command list: "  NAME  description".
        let listed = help
            .lines()
            .any(|line| line.starts_with("  ") && line.split_whitespace().next() == Some(command));
        assert!(listed, "--help lacks {command}:\n{help}");
    }
    let usage = gpm_output(&env, &["no-such-command"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn shell_completions_and_the_man_page_come_from_the_cli_definition() {
    let env = TestEnv::new();
    let bash = gpm_ok(&env, &["completions", "bash"]);
    assert!(
        bash.contains("git-push-mirror") && bash.contains("known-hosts"),
        "{bash}"
    );
    let man = gpm_ok(&env, &["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH git-push-mirror"),
        "{}",
        &man[..man.len().min(300)]
    );
    assert!(man.contains("sync"), "the man page lists the commands");
    let bad = gpm_output(&env, &["completions", "no-such-shell"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn list_and_check_go_on_past_a_repository_whose_configuration_is_broken() {
    let env = TestEnv::new();
    let broken = env.bare_repo("a-broken.git");
    let good = env.bare_repo("b-good.git");
    let mirror = env.bare_repo("mirror.git");
    let url = format!("file://{}", path_str(&mirror));
    gpm_ok(&env, &["add", path_str(&broken), "backup", &url]);
    gpm_ok(&env, &["add", path_str(&good), "backup", &url]);
    std::fs::write(
        broken.join("push-mirror.toml"),
        "[mirror.backup]\nurl = \"unterminated\n",
    )
    .unwrap();

    let list = gpm_output(&env, &["list"]);
    assert_eq!(
        list.status.code(),
        Some(2),
        "a broken configuration is a configuration error"
    );
    assert!(
        stderr(&list).contains("a-broken.git/push-mirror.toml:2:"),
        "{}",
        stderr(&list)
    );
    assert!(
        stdout(&list).contains(path_str(&good)),
        "the others are still listed: {}",
        stdout(&list)
    );

    let check = gpm_output(&env, &["check"]);
    let text = stdout(&check);
    assert_eq!(check.status.code(), Some(2), "{text}");
    assert!(text.contains(&format!("{}: FAILED", path_str(&broken))), "{text}");
    assert!(
        text.contains("backup") && text.contains("reachable"),
        "the others are still checked: {text}"
    );
}
