//! Bad input gets a clear error and loses nothing: hook stdin, spool files, configuration.

use crate::support::binary::*;
use crate::support::{TestEnv, path_str};
use std::io::Write;
use std::process::Stdio;

fn run_hook(env: &TestEnv, repo: &std::path::Path, stdin: &[u8]) -> std::process::Output {
    let mut child = gpm(env)
        .args(["hook", "post-receive", "--no-worker"])
        .current_dir(repo)
        .env("GIT_DIR", ".")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn junk_and_invalid_ref_names_on_hook_stdin_are_skipped_and_valid_lines_spooled() {
    let env = TestEnv::new();
    let repo = env.bare_repo("upstream.git");
    let (zero, a) = ("0".repeat(40), "a".repeat(40));
    let mut stdin = format!(
        "this is not a hook line\n{zero} {a} refs/heads/ok\n{zero} {a} refs/heads/bad..name\n{zero} nothex refs/heads/x\n{zero} {a} refs/heads/with space\n"
    )
    .into_bytes();
    stdin.extend_from_slice(b"\xff\xfe\n");
    let out = run_hook(&env, &repo, &stdin);
    assert_eq!(out.status.code(), Some(0), "the hook never fails a push");
    let err = stderr(&out);
    assert!(err.contains("skipped line 1"), "{err}");
    assert!(err.contains("invalid ref name \"refs/heads/bad..name\""), "{err}");
    assert!(err.contains("invalid object id"), "{err}");
    assert!(err.contains("not UTF-8"), "{err}");
    let entries = spool_files(&env, "new");
    assert_eq!(entries.len(), 1);
    let entry: serde_json::Value = serde_json::from_slice(&std::fs::read(&entries[0]).unwrap()).unwrap();
    assert_eq!(entry["updates"].as_array().unwrap().len(), 1);
    assert_eq!(entry["updates"][0]["ref"], "refs/heads/ok");
    assert_eq!(entry["repo"], path_str(&std::fs::canonicalize(&repo).unwrap()));
}

#[test]
fn a_corrupt_spool_file_is_moved_to_bad_while_the_rest_drains() {
    let env = TestEnv::new();
    let setup = Setup::file(&env, &["--delay", "0s"]);
    // Hook runs spool but start no worker: remove the installed hook's worker by using --no-worker manually.
    gpm_ok(&env, &["uninstall", path_str(&setup.upstream)]);
    let head = env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    let out = run_hook(
        &env,
        &setup.upstream,
        format!("{} {head} refs/heads/main\n", "0".repeat(40)).as_bytes(),
    );
    assert!(out.status.success());
    let new_dir = spool_dir(&env).join("new");
    std::fs::write(new_dir.join("00000000000000000000-1-0.json"), b"{ this is not json").unwrap();
    std::fs::write(new_dir.join("00000000000000000000-1-1.json"), b"").unwrap();
    let out = gpm_output(&env, &["run", "--wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        env.refs(&setup.mirror),
        env.refs(&setup.upstream),
        "the valid entry landed"
    );
    assert_eq!(
        spool_files(&env, "bad").len(),
        2,
        "corrupt entries are kept for the admin"
    );
    assert!(spool_files(&env, "new").is_empty() && spool_files(&env, "claimed").is_empty());
    let log = std::fs::read_to_string(state_base(&env).join("git-push-mirror.log")).unwrap();
    assert!(log.contains("is unusable") && log.contains("moved to"), "{log}");
}

#[test]
fn an_unknown_key_is_a_usage_error_naming_the_key_and_line() {
    let env = TestEnv::new();
    let repo = env.bare_repo("upstream.git");
    std::fs::write(
        repo.join("push-mirror.toml"),
        "[mirror.backup]\nurl = \"file:///tmp/x.git\"\nbrnaches = [\"main\"]\n",
    )
    .unwrap();
    let out = gpm_output(&env, &["list", path_str(&repo)]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("push-mirror.toml:3:"), "{err}");
    assert!(err.contains("brnaches"), "{err}");
}

#[test]
fn a_syntax_error_is_reported_as_file_line_column() {
    let env = TestEnv::new();
    let repo = env.bare_repo("upstream.git");
    std::fs::write(
        repo.join("push-mirror.toml"),
        "[mirror.backup]\nurl = \"file:///tmp/x.git\nenabled = true\n",
    )
    .unwrap();
    let out = gpm_output(&env, &["status", path_str(&repo)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("push-mirror.toml:2:"), "{err}");
}

#[test]
fn a_broken_global_config_is_a_usage_error() {
    let env = TestEnv::new();
    write_global_config(&env, "max_parallel = \"many\"\n");
    let out = gpm_output(&env, &["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("config.toml:1:"), "{}", stderr(&out));
}

#[test]
fn the_hook_spools_under_a_broken_config_and_the_push_lands_once_it_is_fixed() {
    let env = TestEnv::new();
    let setup = Setup::file(&env, &["--delay", "0s"]);
    let config = setup.upstream.join("push-mirror.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}\nthis is not toml\n")).unwrap();
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]); // the push itself succeeds
    // Whatever the worker did, nothing reached the mirror and nothing was lost.
    let out = gpm_output(&env, &["run", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(env.refs(&setup.mirror).is_empty());
    let status = gpm_output(&env, &["status", path_str(&setup.upstream)]);
    assert_eq!(status.status.code(), Some(2), "a broken config is reported by status");
    std::fs::write(&config, good).unwrap();
    gpm_ok(&env, &["run", "--wait"]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
}

#[test]
fn refused_transports_are_refused_at_add_and_never_run() {
    let env = TestEnv::new();
    let repo = env.bare_repo("upstream.git");
    let marker = env.path("pwned");
    for url in [format!("ext::sh -c touch% {}", marker.display()), "fd::3".to_string()] {
        let out = gpm_output(&env, &["add", path_str(&repo), "evil", &url]);
        assert_eq!(out.status.code(), Some(2), "{url}");
        assert!(stderr(&out).contains("not allowed"), "{}", stderr(&out));
    }
    assert!(!repo.join("push-mirror.toml").exists(), "nothing was written");
    assert!(!marker.exists());
}

#[test]
fn a_remote_helper_url_in_a_hand_edited_config_is_refused_and_never_run() {
    let env = TestEnv::new();
    let repo = env.bare_repo("upstream.git");
    let marker = env.path("pwned");
    std::fs::write(
        repo.join("push-mirror.toml"),
        format!("[mirror.evil]\nurl = \"ext::sh -c touch% {}\"\n", marker.display()),
    )
    .unwrap();
    gpm_ok(&env, &["install", path_str(&repo)]);
    let work = env.clone_work(&repo, "work");
    env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    // The configuration is refused as a whole, by every command and by the worker.
    for args in [vec!["sync", path_str(&repo)], vec!["status", path_str(&repo)]] {
        let out = gpm_output(&env, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains("ext::"), "{}", stderr(&out));
    }
    assert!(gpm_output(&env, &["run", "--wait"]).status.success());
    assert!(!marker.exists(), "the ext:: command never ran");
}

#[test]
fn a_fifo_global_configuration_never_holds_a_push_and_the_push_is_spooled_to_the_default_spool() {
    let mut env = TestEnv::new();
    let _reaper = crate::support::procs::Reaper::new(&env);
    let setup = Setup::file(&env, &["--delay", "0s"]);
    // A FIFO nobody writes: reading it would block for ever, and `git push` with it.
    let fifo = env.path("config.toml");
    git_push_mirror::util::fsutil::make_fifo(&fifo, 0o644).unwrap();
    env.set_env("GIT_PUSH_MIRROR_CONFIG", &fifo);
    env.commit(&setup.work, "a.txt", "one", "first");
    let out = output_within(
        env.cmd("git").current_dir(&setup.work).args(["push", "origin", "main"]),
        std::time::Duration::from_secs(60),
        "git push with a FIFO as the global configuration",
    );
    crate::support::assert_success(&out, "git push");
    let warning: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| l.contains("git-push-mirror:"))
        .map(str::to_string)
        .collect();
    assert!(
        warning.len() == 1 && warning[0].contains("FIFO") && warning[0].contains("spooling to"),
        "one clear line: {}",
        stderr(&out)
    );
    // In the default spool (the worker the hook started cannot read the configuration either).
    let spooled = spool_files(&env, "new");
    assert_eq!(spooled.len(), 1, "{spooled:?}");

    // Commands say what is wrong at once; fixed, the push lands.
    let status = output_within(
        gpm(&env).arg("status"),
        std::time::Duration::from_secs(60),
        "status with a FIFO as the global configuration",
    );
    assert_eq!(status.status.code(), Some(2));
    assert!(stderr(&status).contains("FIFO"), "{}", stderr(&status));
    env.remove_env("GIT_PUSH_MIRROR_CONFIG");
    gpm_ok(&env, &["run", "--wait"]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
}
