//! Changing mirrors after the first day: per-repository copies of fleet mirrors, deleted
//! repositories, protected branches and retrying a fixed mirror.

use super::*;

/// The value of an unlabelled metric.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

// 4 ---------------------------------------------------------------------------------------------

#[test]
fn a_fleet_mirror_is_changed_per_repository_by_a_copy_and_remove_says_how_to_exclude() {
    let env = TestEnv::new();
    let srv = env.path("srv");
    let app = env.bare_repo("srv/acme/app.git");
    let lib = env.bare_repo("srv/acme/lib.git");
    let mirrors = env.path("mirrors");
    env.bare_repo("mirrors/acme/app.git");
    let global = format!(
        "repos_root = \"{}\"\n[defaults]\ndelay = \"0s\"\n\n[mirror.backup]\nrepos = [\"acme/*\"]\n\
         url = \"file://{}/{{name}}.git\"\nbranches = [\"main\"]\n",
        path_str(&srv),
        path_str(&mirrors)
    );
    write_global_config(&env, &global);
    let listed = gpm_ok(&env, &["list", path_str(&app)]);
    assert!(listed.contains("\tfleet "), "{listed}");

    // `set` on a fleet mirror: says so, copies it into the repository, changes the copy.
    let set = gpm_output(&env, &["set", path_str(&app), "backup", "--delay", "3s"]);
    crate::support::assert_success(&set, "set on a fleet mirror");
    assert!(
        stderr(&set).contains("was the fleet mirror [mirror.backup]")
            && stderr(&set).contains("replaces the fleet mirror for this repository"),
        "{}",
        stderr(&set)
    );
    let copy = mirror_table(&app, "backup");
    assert_eq!(
        copy["url"].as_str().unwrap(),
        format!("file://{}/acme/app.git", path_str(&mirrors))
    );
    assert_eq!(copy["delay"].as_str(), Some("3s"));
    assert_eq!(copy["branches"].as_array().unwrap().len(), 1);
    assert!(copy.get("repos").is_none());
    let listed = gpm_ok(&env, &["list", path_str(&app)]);
    assert!(!listed.contains("fleet"), "{listed}");
    // The copy mirrors.
    let work = env.clone_work(&app, "work");
    let head = env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    gpm_ok(&env, &["sync", path_str(&app)]);
    assert_eq!(
        env.refs(&mirrors.join("acme/app.git")).get("refs/heads/main"),
        Some(&head)
    );

    // `remove` of a fleet mirror: refused with the exclusion that does it.
    let refused = gpm_output(&env, &["remove", path_str(&lib), "backup"]);
    assert_exit(&refused, 2, "remove of a fleet mirror");
    assert!(
        stderr(&refused).contains("add \"!acme/lib\" to `repos` in [mirror.backup]"),
        "{}",
        stderr(&refused)
    );
    assert!(!lib.join("push-mirror.toml").exists());

    // Removing the copy hands the repository back to the fleet mirror, and says so.
    let removed = gpm_output(&env, &["remove", path_str(&app), "backup"]);
    crate::support::assert_success(&removed, "remove of the copy");
    assert!(stderr(&removed).contains("applies to"), "{}", stderr(&removed));
    let listed = gpm_ok(&env, &["list", path_str(&app)]);
    assert!(listed.contains("\tfleet "), "{listed}");
}

// 5 ---------------------------------------------------------------------------------------------

#[test]
fn deleted_repositories_are_reported_once_then_forgotten_and_forget_unregisters() {
    let env = TestEnv::new();
    let chain = env.bare_repo("chain.git");
    let kept = env.bare_repo("kept.git");
    let mirror = env.bare_repo("mirror.git");
    let url = format!("file://{}", path_str(&mirror));
    for repo in [&chain, &kept] {
        gpm_ok(&env, &["add", path_str(repo), "backup", &url]);
        gpm_ok(&env, &["install", path_str(repo)]);
    }
    let metrics = gpm_ok(&env, &["metrics"]);
    assert_eq!(metric(&metrics, "git_push_mirror_repositories"), 2.0);

    fs::remove_dir_all(&chain).unwrap();
    let first = gpm_output(&env, &["check"]);
    assert!(
        stderr(&first).contains(&format!("{}: the repository no longer exists", chain.display()))
            && stderr(&first).contains("forgotten"),
        "{}",
        stderr(&first)
    );
    assert!(!stdout(&first).contains(path_str(&chain)), "{}", stdout(&first));
    let again = gpm_output(&env, &["check"]);
    assert!(!stderr(&again).contains("chain.git") && !stdout(&again).contains("chain.git"));
    let metrics = gpm_ok(&env, &["metrics"]);
    assert_eq!(metric(&metrics, "git_push_mirror_repositories"), 1.0);

    // A repository whose last mirror was removed is not counted.
    gpm_ok(&env, &["remove", path_str(&kept), "backup"]);
    let metrics = gpm_ok(&env, &["metrics"]);
    assert_eq!(metric(&metrics, "git_push_mirror_repositories"), 0.0);

    // `forget`: refused while the repository has mirrors, unknown paths get a suggestion.
    gpm_ok(&env, &["add", path_str(&kept), "backup", &url]);
    let refused = gpm_output(&env, &["forget", path_str(&kept)]);
    assert_exit(&refused, 2, "forget with mirrors");
    assert!(
        stderr(&refused).contains("still has mirrors (`backup`)"),
        "{}",
        stderr(&refused)
    );
    gpm_ok(&env, &["remove", path_str(&kept), "backup"]);
    let forgot = gpm_ok(&env, &["forget", path_str(&kept)]);
    assert!(forgot.contains("forgot"), "{forgot}");
    let status = gpm_ok(&env, &["status"]);
    assert!(
        !status.contains("kept.git") && status.contains("no mirrors configured"),
        "{status}"
    );
    let unknown = gpm_output(&env, &["forget", path_str(&kept)]);
    assert_exit(&unknown, 2, "forget twice");
    assert!(stderr(&unknown).contains("is not registered"), "{}", stderr(&unknown));

    // `run` forgets a deleted repository too (in its log), and stops failing it.
    let gone = env.bare_repo("gone.git");
    gpm_ok(&env, &["add", path_str(&gone), "backup", &url]);
    fs::remove_dir_all(&gone).unwrap();
    let run = gpm_output(&env, &["run"]);
    assert_exit(&run, 0, "run after a repository was deleted");
    let log = fs::read_to_string(state_base(&env).join("git-push-mirror.log")).unwrap_or_default();
    assert!(log.contains("gone.git: the repository no longer exists"), "{log}");
    assert!(!gpm_ok(&env, &["status"]).contains("gone.git"));
}

#[test]
fn protect_sets_the_branches_protected_only_mirrors_carry_and_add_warns_when_there_are_none() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("app.git");
    let mirror = env.bare_repo("mirror.git");
    let repo = path_str(&upstream);
    let shown_repo = fs::canonicalize(&upstream).unwrap().display().to_string();
    let url = format!("file://{}", path_str(&mirror));
    fs::write(upstream.join("push-mirror.toml"), "# Mirrors of app.git.\n").unwrap();

    // No protected branches yet: `add` says nothing would be mirrored, and what adds them.
    let (setup, added) = Setup::add_and_install(
        &env,
        upstream.clone(),
        &mirror,
        &url,
        &["--only-protected-branches", "--delay", "0s"],
    );
    assert!(
        stderr(&added).contains(&format!(
            "warning: mirror backup mirrors only protected branches, and {shown_repo} has none: no branch is \
             mirrored until you add them: git-push-mirror protect {shown_repo} PATTERN…"
        )),
        "{}",
        stderr(&added)
    );

    let protected = gpm_ok(&env, &["protect", repo, "main", "release/*"]);
    assert_eq!(
        protected.trim(),
        format!("protected branches of {shown_repo}: main, release/*")
    );
    let text = repo_file(&upstream);
    assert!(
        text.starts_with("# Mirrors of app.git.\n\nprotected_branches = [\"main\", \"release/*\"]\n"),
        "at the top, the file's comment kept:\n{text}"
    );
    assert_eq!(
        gpm_ok(&env, &["protect", repo, "main"]).trim(),
        format!("protected branches of {shown_repo}: main, release/*"),
        "a pattern is kept once"
    );

    // The mirror carries just those branches.
    env.commit(&setup.work, "a.txt", "one", "first");
    env.git(&setup.work, &["branch", "release/1"]);
    env.git(&setup.work, &["branch", "feature"]);
    setup.push(&env, &["main", "release/1", "feature"]);
    let upstream_refs = env.refs(&upstream);
    let mut expected = upstream_refs.clone();
    expected.remove("refs/heads/feature");
    setup.wait_for_mirror(&env, &expected);

    // Mistakes: a full ref name, a pattern that is not there.
    let full = gpm_output(&env, &["protect", repo, "refs/heads/main"]);
    assert_exit(&full, 2, "protect refs/heads/main");
    assert!(
        stderr(&full).contains("give `main` instead of `refs/heads/main`"),
        "{}",
        stderr(&full)
    );
    let typo = gpm_output(&env, &["unprotect", repo, "relase/*"]);
    assert_exit(&typo, 2, "unprotect a pattern that is not there");
    assert!(stderr(&typo).contains("did you mean `release/*`?"), "{}", stderr(&typo));
    assert_eq!(repo_file(&upstream), text, "nothing was changed");

    // Removing the last one: the key goes, and the warning comes back.
    gpm_ok(&env, &["unprotect", repo, "release/*"]);
    let none = gpm_output(&env, &["unprotect", repo, "main"]);
    assert_exit(&none, 0, "unprotect main");
    assert_eq!(
        stdout(&none).trim(),
        format!("protected branches of {shown_repo}: none")
    );
    assert!(
        stderr(&none).contains("no branch is mirrored until you add them"),
        "{}",
        stderr(&none)
    );
    assert!(
        repo_file(&upstream).starts_with("# Mirrors of app.git.\n\n[mirror.backup]\n"),
        "the key is gone, the comment kept:\n{}",
        repo_file(&upstream)
    );
    let set = gpm_output(&env, &["set", repo, "backup", "--only-protected-branches", "true"]);
    assert_exit(&set, 0, "set --only-protected-branches");
    assert!(stderr(&set).contains("git-push-mirror protect"), "{}", stderr(&set));
}

#[test]
fn a_fixed_mirror_is_retried_at_the_next_run_not_after_its_backoff_and_set_says_how_to_retry_now() {
    let env = TestEnv::new();
    // A backoff of an hour: only the fix can make the mirror due within this test.
    write_global_config(
        &env,
        "worker_linger = \"1s\"\n[retry]\ninitial = \"1h\"\nmax = \"2h\"\nfail_after = 1\njitter = false\n",
    );
    let upstream = env.bare_repo("app.git");
    let mirror = env.bare_repo("mirror.git");
    let wrong = format!("file://{}", path_str(&env.path("mirorr.git")));
    let (setup, _) = Setup::add_and_install(&env, upstream, &mirror, &wrong, &["--delay", "0s"]);
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    wait_until("the wrong path fails", CONVERGE, || {
        setup.status_json(&env)[0]["update_status"] == "failed"
    });
    assert!(!setup.status_json(&env)[0]["next_attempt_at"].is_null(), "backed off");

    let repo = path_str(&setup.upstream);
    let right = format!("file://{}", path_str(&mirror));
    let fixed = gpm_output(&env, &["set", repo, "backup", "--url", &right]);
    assert_exit(&fixed, 0, "set --url");
    assert!(
        stderr(&fixed).contains(&format!(
            "mirror backup was failing: it is retried at the next `run` (cron) or push instead of after its \
             backoff; to retry it now: git-push-mirror sync {} --mirror backup",
            fs::canonicalize(&setup.upstream).unwrap().display()
        )),
        "{}",
        stderr(&fixed)
    );
    assert!(setup.status_json(&env)[0]["next_attempt_at"].is_null(), "due now");
    gpm_ok(&env, &["run", "--wait"]);
    setup.wait_converged(&env);
    assert_eq!(setup.status_json(&env)[0]["update_status"], "finished");

    // The same after `known-hosts --accept` of an SSH mirror refused for its unknown host key.
    if !require_or_skip("sshd", Sshd::available()) {
        return;
    }
    let sshd = Sshd::start(&env);
    let ssh_mirror = env.bare_repo("ssh-mirror.git");
    let url = sshd.url(&ssh_mirror);
    let key = env.path("key");
    fs::copy(sshd.client_key(), &key).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    gpm_ok(
        &env,
        &["add", repo, "ssh", &url, "--ssh-key", path_str(&key), "--delay", "0s"],
    );
    let ssh_status = || {
        let all = setup.status_json(&env);
        all.into_iter().find(|s| s["mirror"] == "ssh").unwrap()
    };
    let refused = gpm_output(&env, &["run", "--wait"]);
    assert_exit(&refused, 1, "run with an unknown host key");
    assert_eq!(ssh_status()["update_status"], "failed", "{}", ssh_status());
    assert!(!ssh_status()["next_attempt_at"].is_null(), "backed off");
    let accepted = gpm_output(
        &env,
        &["known-hosts", &url, "--accept", "--repo", repo, "--mirror", "ssh"],
    );
    assert_exit(&accepted, 0, "known-hosts --accept");
    assert!(
        stderr(&accepted).contains("mirror ssh was failing") && stderr(&accepted).contains("--mirror ssh"),
        "{}",
        stderr(&accepted)
    );
    assert!(ssh_status()["next_attempt_at"].is_null(), "due now");
    gpm_ok(&env, &["run", "--wait"]);
    assert_eq!(ssh_status()["update_status"], "finished", "{}", ssh_status());
    assert_eq!(env.refs(&ssh_mirror), env.refs(&setup.upstream));
}
