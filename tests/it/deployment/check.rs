//! `check` names each hook problem and each directory the pushing user cannot use, with the fix,
//! and the fix works.

use super::*;

/// Runs each fix `check` gave, as root, the way an admin would paste it.
fn apply(env: &TestEnv, fixes: &[String]) {
    for fix in fixes {
        let out = env.cmd("sh").args(["-c", fix]).output().unwrap();
        assert!(out.status.success(), "the fix `{fix}` failed: {out:?}");
    }
}

/// Asserts `check` fails with `problem` and the fix `fix`, and returns its output.
fn assert_finds(server: &Server, problem: &str, fix: &str) -> String {
    let (code, output) = server.check();
    assert_eq!(code, 1, "check must fail:\n{output}");
    assert!(output.contains(problem), "check does not say `{problem}`:\n{output}");
    assert!(
        fixes(&output).iter().any(|f| f == fix),
        "check does not give the fix `{fix}`:\n{output}"
    );
    output
}

#[test]
fn check_names_each_hook_problem_with_its_fix() {
    let Some(server) = Server::new() else { return };
    let repo = path_str(&server.repo);

    // Mirrors, but no hook: pushes wait for cron.
    assert_finds(
        &server,
        "no hook records its pushes",
        &format!("git-push-mirror install {repo}"),
    );
    assert!(server.as_user(&["install", repo]).status.success());
    assert_clean(&server);

    // A hook git does not run.
    let hook = server.hook();
    chmod(&hook, 0o644);
    let output = assert_finds(
        &server,
        "post-receive is not executable",
        &format!("chmod +x {}", hook.display()),
    );
    apply(&server.env, &fixes(&output));
    assert_clean(&server);

    // A hook that runs another program than this check's (a build with one more byte).
    let other = server.env.path("opt/other/git-push-mirror");
    fs::create_dir_all(other.parent().unwrap()).unwrap();
    let mut bytes = fs::read(BIN).unwrap();
    bytes.push(0);
    fs::write(&other, bytes).unwrap();
    chmod(&other, 0o755);
    let rebound = server
        .user
        .cmd(&server.env, &other)
        .args(["install", "--rebind", repo])
        .output()
        .unwrap();
    assert!(stdout(&rebound).contains("rebound"), "{rebound:?}");
    assert_finds(
        &server,
        &format!("runs {}, another binary than this check's", other.display()),
        &format!("{BIN} install --rebind {repo}"),
    );
    assert!(server.as_user(&["install", "--rebind", repo]).status.success());
    assert_clean(&server);

    // A hook whose binary was removed: every push would say `not found`.
    let rebound = server
        .user
        .cmd(&server.env, &other)
        .args(["install", "--rebind", repo])
        .output()
        .unwrap();
    assert!(rebound.status.success(), "{rebound:?}");
    fs::remove_file(&other).unwrap();
    assert_finds(
        &server,
        &format!("runs {}, which does not exist", other.display()),
        &format!("{BIN} install --rebind {repo}"),
    );
    assert!(server.as_user(&["install", "--rebind", repo]).status.success());
    assert_clean(&server);

    // Gitea's way: our script in post-receive.d/ is run only by Gitea's dispatcher.
    fs::remove_file(&hook).unwrap();
    fs::create_dir_all(server.repo.join("hooks/post-receive.d")).unwrap();
    server.user.own(&[&server.repo.join("hooks")]);
    let gitea = server.as_user(&["install", "--gitea", repo]);
    assert!(gitea.status.success(), "{gitea:?}");
    assert_finds(
        &server,
        "post-receive is missing or not executable, so nothing runs",
        "in Gitea: Site Administration → Dashboard → \"Resynchronize pre-receive, update and post-receive hooks\"",
    );
    crate::support::binary::write_hook(&server.repo, "post-receive", crate::support::binary::GITEA_POST_RECEIVE);
    assert_clean(&server);
}

#[test]
fn check_names_each_directory_the_pushing_user_cannot_use_and_its_fix_works() {
    let Some(server) = Server::installed() else { return };
    let user = &server.user.name;

    // Root took the spool and the state (a `sync` run as root would), and a file in the state.
    let secret = server.state.join("secrets/backup.password");
    fs::create_dir_all(secret.parent().unwrap()).unwrap();
    fs::write(&secret, "s3cret\n").unwrap();
    chmod(&secret, 0o600);
    server.user.own(&[secret.parent().unwrap()]);
    std::os::unix::fs::chown(&secret, Some(0), Some(0)).unwrap();
    let _ = fs::remove_file(server.log_dir.join("git-push-mirror.log"));
    for dir in [&server.spool, &server.log_dir] {
        std::os::unix::fs::chown(dir, Some(0), Some(0)).unwrap();
    }
    let output = assert_finds(
        &server,
        &format!(
            "spool {}: {user}, whom pushes run as, cannot use it: cannot create files in it (owner root, group root, mode 0755)",
            server.spool.display()
        ),
        &format!("chown -R {user} {}", server.spool.display()),
    );
    assert!(
        output.contains(&format!(
            "at {}: cannot read and write it (owner root",
            secret.display()
        )),
        "{output}"
    );
    assert!(
        fixes(&output).contains(&format!("chown -R {user} {}", server.state.display())),
        "{output}"
    );
    assert!(
        output.contains(&format!("log_file {}/git-push-mirror.log", server.log_dir.display())),
        "{output}"
    );
    assert!(
        fixes(&output).contains(&format!("install -d -o {user} -g {user} {}", server.log_dir.display())),
        "{output}"
    );
    apply(&server.env, &fixes(&output));
    assert_clean(&server);

    // A shared repository: every member of its group pushes, so they must all write the spool.
    let git_dir = format!("--git-dir={}", path_str(&server.repo));
    server.env.git(
        server.env.root(),
        &[&git_dir, "config", "core.sharedRepository", "group"],
    );
    let output = assert_finds(
        &server,
        &format!("members of group {user} (the repository is shared: core.sharedRepository) cannot use it"),
        &format!(
            "chgrp -R {user} {spool} && chmod -R g+rwX {spool}",
            spool = server.spool.display()
        ),
    );
    apply(&server.env, &fixes(&output));
    assert_clean(&server);
}
