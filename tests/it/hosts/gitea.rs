//! Gitea/Forgejo, with its hook dispatcher reproduced: ours runs beside Gitea's own hook, and
//! repositories Gitea does not manage are refused or skipped.

use super::*;

#[test]
fn gitea_dispatcher_runs_ours_beside_giteas_own_hook_which_still_gets_all_input() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("gitea-repositories/acme/app.git");
    let mirror = env.bare_repo("mirror.git");
    let gitea_log = env.path("gitea-hook.log");
    let gitea_hook = gitea_layout(&upstream, &gitea_log);
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
    let installed = gpm_ok(&env, &["install", "--gitea", path_str(&upstream)]);
    let ours = upstream.join("hooks/post-receive.d/git-push-mirror");
    assert!(installed.contains(path_str(&ours)), "{installed}");
    assert_eq!(
        fs::read_to_string(upstream.join("hooks/post-receive")).unwrap(),
        GITEA_POST_RECEIVE
    );
    assert_eq!(
        fs::read_to_string(upstream.join("hooks/post-receive.d/gitea")).unwrap(),
        gitea_hook
    );

    // One push of two branches and a tag: both hooks get all three lines.
    let work = env.clone_work(&upstream, "work");
    let main = env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["branch", "feature"]);
    env.git(&work, &["tag", "v1"]);
    env.git(&work, &["push", "--quiet", "origin", "main", "feature", "v1"]);
    let setup = Setup {
        upstream: upstream.clone(),
        mirror: mirror.clone(),
        work: work.clone(),
    };
    setup.wait_converged(&env);
    let seen = fs::read_to_string(&gitea_log).unwrap();
    let zero = "0".repeat(40);
    for name in ["refs/heads/main", "refs/heads/feature", "refs/tags/v1"] {
        assert!(
            seen.contains(&format!("{zero} {main} {name}")),
            "Gitea's hook missed {name}: {seen}"
        );
    }

    // Installing again refreshes ours; uninstalling removes only ours.
    let again = gpm_ok(&env, &["install", "--gitea", path_str(&upstream)]);
    assert!(again.contains("refreshed"), "{again}");
    gpm_ok(&env, &["uninstall", "--gitea", path_str(&upstream)]);
    assert!(!ours.exists());
    assert_eq!(
        fs::read_to_string(upstream.join("hooks/post-receive")).unwrap(),
        GITEA_POST_RECEIVE
    );
    assert_eq!(
        fs::read_to_string(upstream.join("hooks/post-receive.d/gitea")).unwrap(),
        gitea_hook
    );
}

#[test]
fn gitea_install_refuses_repositories_gitea_does_not_manage_and_skips_them_over_a_tree() {
    let env = TestEnv::new();
    let plain = env.bare_repo("root/plain.git");
    let out = gpm_output(&env, &["install", "--gitea", path_str(&plain)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("post-receive.d"), "{}", stderr(&out));
    assert!(!plain.join("hooks/post-receive").exists(), "nothing was written");

    let managed: Vec<PathBuf> = ["root/acme/a.git", "root/acme/b.git"]
        .iter()
        .map(|name| {
            let repo = env.bare_repo(name);
            gitea_layout(&repo, &env.path("gitea.log"));
            repo
        })
        .collect();
    let out = gpm_output(&env, &["install", "--gitea", "--all", path_str(&env.path("root"))]);
    assert_eq!(out.status.code(), Some(1), "one repository was skipped");
    let text = stdout(&out);
    assert!(text.contains(&format!("skipped {}", path_str(&plain))), "{text}");
    for repo in &managed {
        assert!(repo.join("hooks/post-receive.d/git-push-mirror").exists(), "{text}");
    }
}
