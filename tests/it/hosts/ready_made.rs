//! The ready-made hook scripts for Gitea and gitolite work where each host runs them.

use super::*;

// ---------------------------------------------------------------------------
// The ready-made scripts in hooks/, for installing by hand

/// A test environment whose PATH finds the binary as `git-push-mirror`.
fn env_with_binary_on_path() -> TestEnv {
    let mut env = TestEnv::new();
    let bin = Path::new(env!("CARGO_BIN_EXE_git-push-mirror"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin];
    dirs.extend(std::env::split_paths(&path));
    env.set_env("PATH", std::env::join_paths(dirs).unwrap());
    env
}

fn ready_made(script: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks").join(script)).unwrap()
}

#[test]
fn the_ready_made_gitea_script_works_in_giteas_dispatcher() {
    let env = env_with_binary_on_path();
    let upstream = env.bare_repo("acme/app.git");
    let mirror = env.bare_repo("mirror.git");
    let gitea_log = env.path("gitea-hook.log");
    gitea_layout(&upstream, &gitea_log);
    write_hook(
        &upstream,
        "post-receive.d/git-push-mirror",
        &ready_made("gitea-post-receive.d"),
    );
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
    wait_mirrored(&env, &upstream, &mirror);
    assert!(fs::read_to_string(&gitea_log).unwrap().contains(&head));
}

#[test]
fn the_ready_made_gitolite_script_chains_the_previous_common_hook_as_gitolite_links_it() {
    let env = env_with_binary_on_path();
    // gitolite's layout without gitolite: LOCAL_CODE/hooks/common/post-receive,
    // the admin's previous hook beside hooks/common/, and the symbolic link
    // `gitolite setup` makes in each repository.
    let local_code = env.path("home/local");
    let common = local_code.join("hooks/common");
    fs::create_dir_all(&common).unwrap();
    write_executable(&common.join("post-receive"), &ready_made("gitolite-post-receive"));
    let admins_log = env.path("admins-hook.log");
    write_executable(
        &local_code.join("hooks/post-receive.before-push-mirror"),
        &format!("#!/bin/sh\ncat >> '{}'\n", admins_log.display()),
    );
    let upstream = env.bare_repo("repositories/acme/app.git");
    std::os::unix::fs::symlink(common.join("post-receive"), upstream.join("hooks/post-receive")).unwrap();
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
    wait_mirrored(&env, &upstream, &mirror);
    assert!(fs::read_to_string(&admins_log).unwrap().contains(&head));
}
