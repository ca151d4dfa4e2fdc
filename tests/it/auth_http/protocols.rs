//! The transport allowlist at push time: a transport outside it runs nothing, git itself refuses
//! it, and remote-helper URLs in a hand-written configuration are never run.

use super::*;

#[test]
fn a_transport_outside_allowed_protocols_fails_at_push_time_and_runs_nothing() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("upstream.git");
    let mirror = env.bare_repo("mirror.git");
    let marker = env.path("mirror-hook-ran");
    write_hook(
        &mirror,
        "pre-receive",
        &format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    );
    let url = format!("file://{}", path_str(&mirror));
    // Allowed when added; the admin then narrows the allowlist.
    let setup = Setup::with_url(&env, upstream, mirror, &url, &["--delay", "0s"]);
    write_global_config(&env, &format!("allowed_protocols = [\"https\"]\n{FAST_RETRY}"));
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    wait_until("the refusal is recorded", CONVERGE, || {
        setup.last_error(&env).contains("allowed_protocols")
    });
    let error = setup.last_error(&env);
    assert!(
        error.contains("the transport file is not in allowed_protocols (https)"),
        "{error}"
    );
    let status = &setup.status_json(&env)[0];
    assert!(
        ["to_retry", "failed"].contains(&status["update_status"].as_str().unwrap()),
        "{status:#}"
    );

    let sync = gpm_output(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(sync.status.code(), Some(1));
    assert!(stdout(&sync).contains("not in allowed_protocols"), "{}", stdout(&sync));
    let check = gpm_output(&env, &["check", path_str(&setup.upstream)]);
    assert_eq!(check.status.code(), Some(1));
    assert!(stdout(&check).contains("FAILED"), "{}", stdout(&check));
    assert!(env.refs(&setup.mirror).is_empty(), "nothing was pushed");
    assert!(!marker.exists(), "nothing ran on the mirror");
}

#[test]
fn git_itself_refuses_a_transport_outside_the_allowlist() {
    // GIT_ALLOW_PROTOCOL, below our own check: git refuses too.
    let env = TestEnv::new();
    let upstream = env.bare_repo("upstream.git");
    let mirror = env.bare_repo("mirror.git");
    let url = format!("file://{}", path_str(&mirror));
    let access = git_push_mirror::git::RemoteAccess::new(&url, Duration::from_secs(60), &["https".to_string()]);
    let err = git_push_mirror::git::ls_remote(&upstream, &access, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("transport 'file' not allowed"), "{err}");
    assert!(err.contains("allowed_protocols"), "{err}");
    let allowed = git_push_mirror::git::RemoteAccess::new(&url, Duration::from_secs(60), &["file".to_string()]);
    assert!(git_push_mirror::git::ls_remote(&upstream, &allowed, &[]).is_ok());
}

#[test]
fn remote_helper_urls_in_a_hand_written_config_are_never_run() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("upstream.git");
    gpm_ok(&env, &["install", path_str(&upstream)]);
    let marker = env.path("pwned");
    for url in [format!("ext::sh -c touch% {}", marker.display()), "fd::3".to_string()] {
        std::fs::write(
            upstream.join("push-mirror.toml"),
            format!("[mirror.evil]\nurl = {url:?}\n"),
        )
        .unwrap();
        let work = env.clone_work(&upstream, "work");
        env.commit(&work, "a.txt", &url, "a push the hook records");
        env.git(&work, &["push", "--quiet", "origin", "main"]);
        let sync = gpm_output(&env, &["sync", path_str(&upstream)]);
        assert_eq!(sync.status.code(), Some(2));
        assert!(stderr(&sync).contains("never allowed"), "{}", stderr(&sync));
        let run = gpm_output(&env, &["run", "--wait"]);
        assert!(!stderr(&run).contains("panicked"), "{}", stderr(&run));
        let check = gpm_output(&env, &["check", path_str(&upstream)]);
        assert_eq!(check.status.code(), Some(2));
        std::fs::remove_dir_all(&work).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(!marker.exists(), "a remote helper URL was executed");
}
