//! A deployment that checks itself: `check` names each thing that keeps a repository's pushes from
//! being mirrored (no hook, a hook git does not run or that runs a missing or other binary, a
//! spool, state or log the pushing user cannot use, the wrong user running the command), each
//! with the command that fixes it, on repositories owned by a real user; the commands that write
//! refuse to run as another user, and `status` says so; the hook's own message names the
//! directory and the user. And hooks keep the binary they run when another copy installs again.

mod common;
mod support;

use common::{TestEnv, TestUser, path_str, require_or_skip};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use support::{gpm_output, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_git-push-mirror");

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A server as the README's Hosts section sets it up: a global configuration in the system file
/// (the test's, see `TestEnv`), whose spool, state and log a real user owns, and that user's
/// repository with a mirror.
struct Server {
    env: TestEnv,
    user: TestUser,
    repo: PathBuf,
    spool: PathBuf,
    state: PathBuf,
    log_dir: PathBuf,
}

impl Server {
    fn new() -> Option<Server> {
        if !require_or_skip("root, useradd and setpriv", TestUser::available()) {
            return None;
        }
        let env = TestEnv::new();
        chmod(env.root(), 0o755);
        let user = TestUser::create();
        let (spool, state, log_dir) = (env.path("srv/spool"), env.path("srv/state"), env.path("srv/log"));
        for dir in [&spool, &state, &log_dir] {
            fs::create_dir_all(dir).unwrap();
        }
        let system = env.path("etc/git-push-mirror/config.toml");
        fs::create_dir_all(system.parent().unwrap()).unwrap();
        fs::write(
            &system,
            format!(
                "spool_dir = '{}'\nstate_dir = '{}'\nlog_file = '{}/git-push-mirror.log'\nworker_linger = '1s'\n",
                path_str(&spool),
                path_str(&state),
                path_str(&log_dir)
            ),
        )
        .unwrap();
        let repo = env.bare_repo("srv/git/app.git");
        let mirror = env.bare_repo("srv/git/mirror.git");
        user.own(&[&spool, &state, &log_dir, &repo, &mirror]);
        let server = Server {
            env,
            user,
            repo,
            spool,
            state,
            log_dir,
        };
        let url = format!("file://{}", path_str(&mirror));
        let added = server.as_user(&["add", path_str(&server.repo), "backup", &url]);
        assert!(added.status.success(), "add as the owner: {added:?}");
        Some(server)
    }

    /// The binary run as the repository's owner.
    fn as_user(&self, args: &[&str]) -> Output {
        self.user.cmd(&self.env, BIN).args(args).output().unwrap()
    }

    fn check(&self) -> (i32, String) {
        let out = self.as_user(&["check", path_str(&self.repo)]);
        (out.status.code().unwrap(), format!("{}{}", stdout(&out), stderr(&out)))
    }

    fn hook(&self) -> PathBuf {
        self.repo.join("hooks/post-receive")
    }
}

/// The `fix:` lines of `check`'s output.
fn fixes(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("fix: "))
        .map(str::to_string)
        .collect()
}

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

fn assert_clean(server: &Server) {
    let (code, output) = server.check();
    assert_eq!(code, 0, "check must pass:\n{output}");
    assert!(!output.contains("FAILED"), "{output}");
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
        &format!(
            "{BIN} install --rebind {repo}   (or check with that binary: {} check)",
            other.display()
        ),
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
    support::write_hook(&server.repo, "post-receive", support::GITEA_POST_RECEIVE);
    assert_clean(&server);
}

#[test]
fn check_names_each_directory_the_pushing_user_cannot_use_and_its_fix_works() {
    let Some(server) = Server::new() else { return };
    let repo = path_str(&server.repo);
    assert!(server.as_user(&["install", repo]).status.success());
    assert_clean(&server);
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

#[test]
fn the_wrong_user_is_told_whom_to_run_as_and_nothing_is_created_for_it() {
    let Some(server) = Server::new() else { return };
    let repo = path_str(&server.repo);
    assert!(server.as_user(&["install", repo]).status.success());
    let user = &server.user.name;

    // check, run as root: whom pushes run as, and the command to run instead.
    let check = gpm_output(&server.env, &["check", repo]);
    let output = format!("{}{}", stdout(&check), stderr(&check));
    assert_eq!(check.status.code(), Some(1), "{output}");
    assert!(
        output.contains(&format!(
            "this check runs as root, but pushes to this repository run as {user} (its owner)"
        )),
        "{output}"
    );
    assert!(
        fixes(&output).contains(&format!("sudo -u {user} -H git-push-mirror check {repo}")),
        "{output}"
    );

    // status says it in one line.
    let status = gpm_output(&server.env, &["status", repo]);
    let said = stderr(&status);
    let notes: Vec<&str> = said.lines().filter(|l| l.contains("belongs to")).collect();
    assert_eq!(
        notes,
        [format!(
            "git-push-mirror: note: {repo} belongs to {user}, and pushes run as {user}, but this runs as root: \
             run it as {user}: sudo -u {user} -H git-push-mirror status"
        )],
        "{status:?}"
    );

    // add (with a password in the URL, which would become a root-owned secret) is refused before
    // it writes anything; set, remove and sync too.
    let config_before = fs::read_to_string(server.repo.join("push-mirror.toml")).unwrap();
    let state_before = files_under(&server.state);
    let secret_url = "https://bot:pa55word@git.example.com/app.git";
    for args in [
        vec!["add", repo, "other", secret_url],
        vec!["set", repo, "backup", "--delay", "1s"],
        vec!["remove", repo, "backup"],
        vec!["sync", repo],
    ] {
        let out = gpm_output(&server.env, &args);
        assert_eq!(out.status.code(), Some(2), "{}: {out:?}", args[0]);
        assert_eq!(
            stderr(&out).trim(),
            format!(
                "git-push-mirror: {repo} belongs to {user}, and pushes run as {user}, but this runs as root: \
                 run it as {user}: sudo -u {user} -H git-push-mirror {} …",
                args[0]
            )
        );
        assert!(!stderr(&out).contains("pa55word"));
    }
    assert_eq!(
        fs::read_to_string(server.repo.join("push-mirror.toml")).unwrap(),
        config_before
    );
    assert_eq!(files_under(&server.state), state_before);

    // The owner may; so may a member of a shared repository's group.
    assert!(
        server
            .as_user(&["set", repo, "backup", "--delay", "1s"])
            .status
            .success()
    );
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            found.push(entry.path());
            if entry.path().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_push_the_hook_cannot_record_names_the_spool_and_the_user() {
    let Some(server) = Server::new() else { return };
    let repo = path_str(&server.repo);
    assert!(server.as_user(&["install", repo]).status.success());
    let user = &server.user;

    // The user's work clone, in a directory of its own.
    let work = server.env.path("home-of-user/work");
    fs::create_dir_all(work.parent().unwrap()).unwrap();
    user.own(&[work.parent().unwrap()]);
    let git = |args: &[&str]| {
        let out = user
            .cmd(&server.env, "git")
            .current_dir(work.parent().unwrap())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        out
    };
    git(&["clone", "--quiet", repo, path_str(&work)]);
    fs::write(work.join("a.txt"), "one\n").unwrap();
    user.own(&[&work]);
    git(&["-C", path_str(&work), "add", "a.txt"]);
    git(&["-C", path_str(&work), "commit", "--quiet", "-m", "first"]);

    // Root took the spool's tmp/ (a hook or worker run as root would).
    let tmp = server.spool.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    std::os::unix::fs::chown(&tmp, Some(0), Some(0)).unwrap();
    let pushed = git(&["-C", path_str(&work), "push", "origin", "main"]);
    let said = stderr(&pushed);
    assert!(
        said.contains(&format!(
            "remote: git-push-mirror: could not record this push for mirroring: the spool {} is not writable by {} \
             (uid {}), whom this hook runs as: {} cannot create files in it (owner root, group root, mode 0755)",
            server.spool.display(),
            user.name,
            user.uid,
            tmp.display()
        )),
        "{said}"
    );
    assert!(said.contains("`git-push-mirror check` gives the fix"), "{said}");
}
