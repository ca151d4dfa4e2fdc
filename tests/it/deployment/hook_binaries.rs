//! The binary each hook runs: `install --all` keeps each hook's binary, `install --rebind` moves them,
//! `check` flags a removed one, and the package's /usr/bin path is written when it holds the same
//! program.

use super::*;

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
