//! A deployment that checks itself: `check` names each thing that keeps a repository's pushes from
//! being mirrored (no hook, a hook git does not run or that runs a missing or other binary, a
//! spool, state or log the pushing user cannot use, the wrong user running the command), each
//! with the command that fixes it, on repositories owned by a real user; the commands that write
//! refuse to run as another user, and `status` says so; the hook's own message names the
//! directory and the user. And hooks keep the binary they run when another copy installs again.

use crate::support::binary::{gpm_output, stderr, stdout};
use crate::support::{TestEnv, TestUser, path_str, require_or_skip};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

const BIN: &str = env!("CARGO_BIN_EXE_git-push-mirror");

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A server as docs/hosts.md sets it up: a global configuration in the system file
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

    /// [`Server::new`] with the hook installed (by the owner), `check` clean.
    fn installed() -> Option<Server> {
        let server = Server::new()?;
        let installed = server.as_user(&["install", path_str(&server.repo)]);
        assert!(installed.status.success(), "{installed:?}");
        assert_clean(&server);
        Some(server)
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

#[test]
fn the_wrong_user_is_told_whom_to_run_as_and_nothing_is_created_for_it() {
    let Some(server) = Server::installed() else { return };
    let repo = path_str(&server.repo);
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
    // it writes anything; set, remove, sync, keygen and known-hosts --accept too.
    let config_before = fs::read_to_string(server.repo.join("push-mirror.toml")).unwrap();
    let state_before = files_under(&server.state);
    let secret_url = "https://bot:pa55word@git.example.com/app.git";
    for args in [
        vec!["add", repo, "other", secret_url],
        vec!["set", repo, "backup", "--delay", "1s"],
        vec!["remove", repo, "backup"],
        vec!["sync", repo],
        vec!["keygen", repo, "backup"],
        vec![
            "known-hosts",
            "ssh://git@127.0.0.1:9/x.git",
            "--accept",
            "--repo",
            repo,
            "--mirror",
            "backup",
        ],
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
    let Some(server) = Server::installed() else { return };
    let repo = path_str(&server.repo);
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

// ---------------------------------------------------------------------------------------------
// Hooks keep their binary

/// A copy of the binary at `path` (made executable), as a package or `cargo install` would put it.
fn install_copy(path: &Path, extra_byte: bool) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut bytes = fs::read(BIN).unwrap();
    if extra_byte {
        bytes.push(0); // another build: a different program
    }
    fs::write(path, bytes).unwrap();
    chmod(path, 0o755);
}

/// The program a hook runs, from its `exec` line.
fn hook_program(repo: &Path) -> String {
    let script = fs::read_to_string(repo.join("hooks/post-receive")).unwrap();
    git_push_mirror::ops::hook_binary::hook_call(&script)
        .unwrap_or_else(|| panic!("no call in {script}"))
        .program
}

#[test]
fn install_all_keeps_each_hooks_binary_rebind_moves_them_and_check_flags_a_removed_one() {
    let mut env = TestEnv::new();
    // The package's binary and cargo's, first on PATH as /usr/local/bin is.
    let package = env.path("usr/bin/git-push-mirror");
    let cargo = env.path("usr/local/bin/git-push-mirror");
    install_copy(&package, false);
    install_copy(&cargo, false);
    let path = std::env::join_paths(
        [cargo.parent().unwrap(), package.parent().unwrap()]
            .into_iter()
            .map(Path::to_path_buf)
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    env.set_env("PATH", &path);
    let root = env.path("srv/git");
    let (a, b) = (env.bare_repo("srv/git/a.git"), env.bare_repo("srv/git/b.git"));
    let mirror = env.bare_repo("mirrors/a.git");
    let run = |program: &Path, args: &[&str]| env.cmd(program).args(args).output().unwrap();
    let url = format!("file://{}", path_str(&mirror));
    assert!(run(&package, &["add", path_str(&a), "backup", &url]).status.success());

    // Installed with the package's binary.
    let first = run(&package, &["install", "--all", path_str(&root)]);
    assert!(first.status.success(), "{first:?}");
    for repo in [&a, &b] {
        assert_eq!(hook_program(repo), path_str(&package));
    }
    let hooks_before: Vec<String> = [&a, &b]
        .iter()
        .map(|r| fs::read_to_string(r.join("hooks/post-receive")).unwrap())
        .collect();

    // `git-push-mirror install --all` again, which PATH resolves to cargo's: hooks keep theirs.
    let again = env
        .cmd("git-push-mirror")
        .args(["install", "--all", path_str(&root)])
        .output()
        .unwrap();
    assert!(again.status.success(), "{again:?}");
    let said = stdout(&again);
    for repo in [&a, &b] {
        assert_eq!(hook_program(repo), path_str(&package), "{said}");
        assert!(
            said.contains(&format!(
                "refreshed {}, which keeps running {} (not this {}; --rebind switches it)",
                repo.join("hooks/post-receive").display(),
                package.display(),
                cargo.display()
            )),
            "{said}"
        );
    }
    let hooks_after: Vec<String> = [&a, &b]
        .iter()
        .map(|r| fs::read_to_string(r.join("hooks/post-receive")).unwrap())
        .collect();
    assert_eq!(hooks_after, hooks_before);
    // (The machine's own /usr/bin or /usr/local/bin copy, if any, is listed after these two.)
    assert!(
        said.contains(&format!(
            " git-push-mirror binaries are installed ({}, {}",
            cargo.display(),
            package.display()
        )) && said.contains(&format!("new hooks run {}, existing ones keep theirs", cargo.display())),
        "{said}"
    );

    // --rebind moves them to cargo's, and pushes are mirrored through it.
    let rebound = env
        .cmd("git-push-mirror")
        .args(["install", "--rebind", "--all", path_str(&root)])
        .output()
        .unwrap();
    assert!(rebound.status.success(), "{rebound:?}");
    for repo in [&a, &b] {
        assert_eq!(hook_program(repo), path_str(&cargo));
        assert!(
            stdout(&rebound).contains(&format!(
                "rebound {}: it runs {} instead of {}",
                repo.join("hooks/post-receive").display(),
                cargo.display(),
                package.display()
            )),
            "{rebound:?}"
        );
    }
    let work = env.clone_work(&a, "work");
    env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    let expected = env.refs(&a);
    crate::support::wait_until("the mirror has the push", crate::support::binary::CONVERGE, || {
        env.refs(&mirror) == expected
    });

    // cargo's binary removed: check (with the package's) flags the hooks, install keeps them but
    // fails, --rebind repairs them.
    fs::remove_file(&cargo).unwrap();
    let check = run(&package, &["check", path_str(&a)]);
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    assert!(
        stdout(&check).contains(&format!(
            "{} runs {}, which does not exist: every push prints `not found` and records nothing",
            a.join("hooks/post-receive").display(),
            cargo.display()
        )),
        "{check:?}"
    );
    assert!(
        fixes(&stdout(&check)).contains(&format!("{} install --rebind {}", package.display(), path_str(&a))),
        "{check:?}"
    );
    let kept = run(&package, &["install", "--all", path_str(&root)]);
    assert_eq!(kept.status.code(), Some(1), "{kept:?}");
    assert!(
        stdout(&kept).contains("which does not exist, so pushes are not recorded"),
        "{kept:?}"
    );
    assert_eq!(hook_program(&a), path_str(&cargo));
    let repaired = run(&package, &["install", "--rebind", "--all", path_str(&root)]);
    assert!(repaired.status.success(), "{repaired:?}");
    assert_eq!(hook_program(&a), path_str(&package));
    let check = run(&package, &["check", path_str(&a)]);
    assert!(check.status.success(), "{check:?}");
}

/// Whether this test may mount over /usr/bin in a mount namespace of its own (root, `unshare`,
/// tmpfs and overlayfs): the machine's /usr/bin is never touched.
fn private_usr_bin() -> Result<(), String> {
    TestUser::available()?;
    let probe = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "d=$(mktemp -d) && mount -t tmpfs tmpfs \"$d\" && mkdir \"$d/u\" \"$d/w\" && \
             mount -t overlay overlay -o \"lowerdir=/usr/bin,upperdir=$d/u,workdir=$d/w\" /usr/bin; \
             s=$?; umount -R \"$d\" 2>/dev/null; rmdir \"$d\"; exit $s",
        )
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    if probe.status.success() {
        Ok(())
    } else {
        Err(format!(
            "cannot mount over /usr/bin in a mount namespace: {}",
            stderr(&probe)
        ))
    }
}

#[test]
fn install_writes_the_packages_usr_bin_path_when_it_holds_the_same_program() {
    if !require_or_skip(
        "a private mount namespace (root, unshare, overlayfs)",
        private_usr_bin(),
    ) {
        return;
    }
    let env = TestEnv::new();
    let (same, other) = (
        env.path("local/bin/git-push-mirror"),
        env.path("other/bin/git-push-mirror"),
    );
    install_copy(&same, false);
    install_copy(&other, true);
    let (a, b) = (env.bare_repo("a.git"), env.bare_repo("b.git"));
    // In a mount namespace of its own, /usr/bin gets the package's binary (an overlay on a tmpfs).
    let scratch = env.path("scratch");
    fs::create_dir(&scratch).unwrap();
    let script = format!(
        "set -e\n\
         mount -t tmpfs tmpfs '{scratch}'\n\
         mkdir '{scratch}/upper' '{scratch}/work'\n\
         mount -t overlay overlay -o 'lowerdir=/usr/bin,upperdir={scratch}/upper,workdir={scratch}/work' /usr/bin\n\
         cp '{BIN}' /usr/bin/git-push-mirror\n\
         '{same}' install '{a}'\n\
         '{other}' install '{b}'\n",
        scratch = path_str(&scratch),
        same = path_str(&same),
        other = path_str(&other),
        a = path_str(&a),
        b = path_str(&b),
    );
    let out = env
        .cmd("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The same program as the package's: the hook runs the package's path, which outlives the copy.
    assert_eq!(hook_program(&a), "/usr/bin/git-push-mirror");
    // Another build: the hook runs the binary that installed it.
    assert_eq!(hook_program(&b), path_str(&other));
    let machines = Path::new("/usr/bin/git-push-mirror");
    assert!(
        !git_push_mirror::ops::hook_binary::same_program(machines, Path::new(BIN)),
        "the machine's /usr/bin was not touched"
    );
}
