//! Every repository git makes: a tree of SHA-1, SHA-256 and reftable repositories (and a broken
//! one) under `install --all`, `check` and `list`; a repository migrated to reftable while it
//! has mirrors; a mirror of the other object format, refused at `add`, named by `check` and by
//! the update; pushes large enough to go through the push view in SHA-256 and reftable.

use crate::support::binary::*;
use crate::support::{RepoFormat, TestEnv, git_at_least, path_str, require_or_skip, wait_until};
use std::path::{Path, PathBuf};

/// `git init --bare` of the given formats at `rel` under the test's root.
fn bare_repo_of(env: &TestEnv, rel: &str, format: RepoFormat) -> PathBuf {
    let path = env.path(rel);
    std::fs::create_dir_all(&path).unwrap();
    let object = format!("--object-format={}", format.object);
    let mut args = vec!["init", "--quiet", "--bare", &object];
    // `--ref-format` is git 2.45's, like reftable.
    if format.refs == "reftable" {
        args.push("--ref-format=reftable");
    }
    env.git(&path, &args);
    format.assert_of(env, &path);
    path
}

/// A bare repository git cannot open: its configuration is not a configuration.
fn broken_repo(env: &TestEnv, rel: &str) -> PathBuf {
    let path = env.bare_repo(rel);
    std::fs::write(path.join("config"), "[core\nthis is not a git configuration\n").unwrap();
    path
}

fn has_hook(repo: &Path) -> bool {
    repo.join("hooks/post-receive").exists()
}

#[test]
fn install_all_hooks_sha1_sha256_and_reftable_repositories_and_reports_a_broken_one() {
    if !RepoFormat::reftable().usable() {
        return;
    }
    let env = TestEnv::new();
    let root = env.path("srv");
    let formats = [
        ("a-sha1.git", RepoFormat::sha1()),
        ("b-sha256.git", RepoFormat::sha256()),
        ("c-reftable.git", RepoFormat::reftable()),
        ("d-sha256-reftable.git", RepoFormat::sha256_reftable()),
    ];
    let readable: Vec<PathBuf> = formats
        .iter()
        .map(|(name, format)| bare_repo_of(&env, &format!("srv/{name}"), *format))
        .collect();
    // Sorted between the others: the ones after it are still done.
    let broken = broken_repo(&env, "srv/bb-broken.git");

    let out = gpm_output(&env, &["install", "--all", path_str(&root)]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    for repo in &readable {
        assert!(has_hook(repo), "no hook in {}:\n{text}", repo.display());
    }
    assert!(!has_hook(&broken));
    assert!(
        text.contains(&format!("skipped {}", path_str(&broken))),
        "the broken repository is named:\n{text}"
    );
    assert!(text.contains("1 repository(ies)"), "{text}");

    // The Gitea way over the same tree, and uninstall, go on past it too.
    let out = gpm_output(&env, &["uninstall", "--all", path_str(&root)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(readable.iter().all(|repo| !has_hook(repo)), "{}", stdout(&out));
    for repo in &readable {
        std::fs::create_dir_all(repo.join("hooks/post-receive.d")).unwrap();
        std::fs::write(repo.join("hooks/post-receive"), "#!/bin/sh\n# Gitea's dispatcher\n").unwrap();
    }
    let out = gpm_output(&env, &["install", "--gitea", "--all", path_str(&root)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    for repo in &readable {
        assert!(
            repo.join("hooks/post-receive.d/git-push-mirror").exists(),
            "{}",
            stdout(&out)
        );
    }

    // `check` and `list` over the fleet report the broken repository and cover the others.
    let mirrors = env.path("mirrors");
    for (name, format) in formats {
        // A mirror of the same object format (its ref storage is its own business).
        let format = if format.object == "sha256" {
            RepoFormat::sha256()
        } else {
            RepoFormat::sha1()
        };
        bare_repo_of(&env, &format!("mirrors/{name}"), format);
    }
    write_global_config(
        &env,
        &format!(
            "repos_root = {:?}\n[mirror.backup]\nrepos = [\"*\"]\nurl = \"file://{}/{{name}}.git\"\n",
            path_str(&root),
            path_str(&mirrors)
        ),
    );
    let out = gpm_output(&env, &["check"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!("{}: FAILED", path_str(&broken))),
        "check names the broken repository:\n{text}"
    );
    for repo in &readable {
        assert!(
            text.contains(&format!("{}: configuration ok, 1 mirror(s)", path_str(repo))),
            "{text}"
        );
    }
    assert_eq!(
        text.matches("reachable (0 branches)").count(),
        readable.len(),
        "every readable repository's mirror was reached:\n{text}"
    );
    let list = gpm_output(&env, &["list"]);
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    for repo in &readable {
        assert!(stdout(&list).contains(path_str(repo)), "{}", stdout(&list));
    }
    // `run` registers the fleet and mirrors every readable repository, past the broken one.
    for repo in &readable {
        let work = env.clone_work(repo, &format!("work-{}", repo.file_name().unwrap().to_str().unwrap()));
        env.commit(&work, "a.txt", "one", "first");
        // No hook (the Gitea dispatcher above runs nothing): the drift scan finds the push.
        env.git(&work, &["push", "--quiet", "origin", "HEAD:refs/heads/main"]);
    }
    gpm_output(&env, &["run", "--wait"]);
    for repo in &readable {
        let mirror = mirrors.join(repo.file_name().unwrap());
        assert_eq!(env.refs(&mirror), env.refs(repo), "{}", repo.display());
    }
}

#[test]
fn a_repository_migrated_to_reftable_with_mirrors_configured_keeps_mirroring() {
    if !require_or_skip("git 2.46 or newer (git refs migrate)", git_at_least(2, 46)) {
        return;
    }
    let env = TestEnv::new();
    let setup = Setup::file(&env, &["--delay", "0s"]);
    RepoFormat::sha1().assert_of(&env, &setup.upstream);
    let first = env.commit(&setup.work, "a.txt", "one", "first");
    env.git(&setup.work, &["tag", "-a", "v1", "-m", "v1"]);
    setup.push(&env, &["main", "v1"]);
    setup.wait_converged(&env);

    env.git(&setup.upstream, &["refs", "migrate", "--ref-format=reftable"]);
    RepoFormat::reftable().assert_of(&env, &setup.upstream);

    // The next push, through the hook, still arrives.
    env.commit(&setup.work, "a.txt", "two", "second");
    env.git(&setup.work, &["checkout", "--quiet", "-b", "feature"]);
    env.commit(&setup.work, "f.txt", "feature", "feature");
    setup.push(&env, &["main", "feature"]);
    setup.wait_converged(&env);

    // The drift scan notices changes made without a hook, in the reftable storage.
    env.git(&setup.upstream, &["update-ref", "refs/heads/server-side", &first]);
    env.git(&setup.upstream, &["update-ref", "-d", "refs/heads/feature"]);
    gpm_ok(&env, &["run", "--wait"]);
    let mut expected = env.refs(&setup.upstream);
    let feature = env.refs(&setup.mirror)["refs/heads/feature"].clone();
    // Deleted upstream with work not merged into main: kept on the mirror, as always.
    expected.insert("refs/heads/feature".into(), feature);
    assert_eq!(env.refs(&setup.mirror), expected);
    assert!(env.refs(&setup.mirror).contains_key("refs/heads/server-side"));
    let status = &setup.status_json(&env)[0];
    assert_eq!(
        status["kept_refs"],
        serde_json::json!(["refs/heads/feature"]),
        "{status:#}"
    );
    let sync = gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert!(sync.contains("result: ok"), "{sync}");
}

in_each_format! {
    a_push_of_many_branches_goes_through_the_push_view_in_every_format:
        sha256 => sha256,
        reftable => reftable,
        sha256_reftable => sha256_reftable;
}

/// More changes than one command line carries comfortably go through a temporary view of the
/// repository (see `git::push`): it must have the repository's object format.
fn a_push_of_many_branches_goes_through_the_push_view_in_every_format(format: RepoFormat) {
    let env = TestEnv::with_format(format);
    let setup = Setup::file(&env, &["--delay", "0s"]);
    env.commit(&setup.work, "a.txt", "one", "first");
    let branches: Vec<String> = (0..60).map(|i| format!("b{i:02}")).collect();
    for branch in &branches {
        env.git(&setup.work, &["branch", branch]);
    }
    setup.push(&env, &["--all"]);
    setup.wait_converged(&env);
    // And deletions of as many, with leases of that format.
    let mut delete = vec!["push", "--quiet", "origin", "--delete"];
    delete.extend(branches.iter().map(String::as_str));
    env.git(&setup.work, &delete);
    setup.wait_converged(&env);
    assert_eq!(env.refs(&setup.mirror).len(), 1, "only main is left");
}

#[test]
fn a_mirror_of_the_other_object_format_is_refused_at_add_and_named_by_check_and_the_update() {
    let env = TestEnv::new();
    let sha256 = bare_repo_of(&env, "sha256.git", RepoFormat::sha256());
    let sha1 = bare_repo_of(&env, "sha1.git", RepoFormat::sha1());
    let empty_sha1_mirror = bare_repo_of(&env, "empty-sha1-mirror.git", RepoFormat::sha1());
    let sha256_mirror = bare_repo_of(&env, "sha256-mirror.git", RepoFormat::sha256());
    // The SHA-256 mirror has a branch; the SHA-1 one is empty: the format is known either way.
    // (Work trees made with `init`: before git 2.41 a clone of an empty repository is SHA-1.)
    for (work, format, targets) in [
        ("work256", "sha256", vec![&sha256, &sha256_mirror]),
        ("work1", "sha1", vec![&sha1]),
    ] {
        env.git(
            env.root(),
            &["init", "--quiet", &format!("--object-format={format}"), work],
        );
        let work = env.path(work);
        env.commit(&work, "a.txt", "one", "first");
        for target in targets {
            let url = format!("file://{}", path_str(target));
            env.git(&work, &["push", "--quiet", &url, "HEAD:refs/heads/main"]);
        }
    }

    for (repo, mirror, words) in [
        (
            &sha256,
            &empty_sha1_mirror,
            "the mirror is a SHA-1 repository and this repository is SHA-256",
        ),
        (
            &sha1,
            &sha256_mirror,
            "the mirror is a SHA-256 repository and this repository is SHA-1",
        ),
    ] {
        let url = format!("file://{}", path_str(mirror));
        let out = gpm_output(&env, &["add", path_str(repo), "backup", &url]);
        assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
        assert!(stderr(&out).contains(words), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("git cannot push between object formats"),
            "{}",
            stderr(&out)
        );
        assert!(!repo.join("push-mirror.toml").exists(), "nothing was written");

        // Added anyway (disabled, then enabled by hand): check and the update say why it fails.
        gpm_ok(&env, &["add", path_str(repo), "backup", &url, "--disabled"]);
        let config = repo.join("push-mirror.toml");
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("enabled = false", "enabled = true");
        std::fs::write(&config, text).unwrap();
        let check = gpm_output(&env, &["check", path_str(repo)]);
        assert_eq!(check.status.code(), Some(1), "{}", stdout(&check));
        assert!(
            stdout(&check).contains(&format!("backup {url}: FAILED: {words}")),
            "{}",
            stdout(&check)
        );
        let sync = gpm_output(&env, &["sync", path_str(repo)]);
        assert_eq!(sync.status.code(), Some(1), "{}", stdout(&sync));
        let table = stdout(&sync);
        assert!(
            table.contains("different object formats") || table.contains(words),
            "the update's error says why:\n{table}"
        );
        let status = gpm_output(&env, &["status", "--json", path_str(repo)]);
        let last_error = serde_json::from_slice::<serde_json::Value>(&status.stdout).unwrap()[0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            last_error.contains("SHA-1") && last_error.contains("SHA-256"),
            "{last_error}"
        );
    }
    assert!(env.refs(&empty_sha1_mirror).is_empty(), "nothing reached the mirror");
}

#[test]
fn sync_status_and_metrics_work_on_sha256_and_reftable_repositories() {
    if !RepoFormat::sha256_reftable().usable() {
        return;
    }
    let env = TestEnv::with_format(RepoFormat::sha256_reftable());
    let setup = Setup::file(&env, &["--delay", "0s"]);
    RepoFormat::sha256_reftable().assert_of(&env, &setup.upstream);
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    wait_until("the update is recorded", CONVERGE, || {
        setup.status_json(&env)[0]["update_status"] == "finished"
    });
    let sync = gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert!(
        sync.contains("refs/heads/main") && sync.contains("up-to-date"),
        "{sync}"
    );
    gpm_ok(&env, &["status", path_str(&setup.upstream)]);
    let metrics = gpm_ok(&env, &["metrics", path_str(&setup.upstream)]);
    assert!(metrics.contains("git_push_mirror_mirror_update_status"), "{metrics}");
    let check = gpm_ok(&env, &["check", path_str(&setup.upstream)]);
    assert!(check.contains("reachable (1 branches)"), "{check}");
}

/// In a reftable repository HEAD lives in the tables: the drift scan follows a HEAD moved with
/// `git symbolic-ref` (no push), and once it has seen it, an idle scan of the unchanged
/// repository starts no git at all (what it needs is in its cache, keyed on `tables.list`).
#[test]
fn a_reftable_repositorys_moved_head_is_followed_and_an_idle_scan_starts_no_git() {
    let strace = std::process::Command::new("strace").arg("-V").output();
    let available = match strace {
        Ok(out) if out.status.success() => Ok(()),
        _ => Err("strace is missing (package strace)".to_string()),
    };
    if !require_or_skip("strace", available) {
        return;
    }
    let env = TestEnv::with_format(RepoFormat::reftable());
    let setup = Setup::file(&env, &["--delay", "0s"]);
    env.commit(&setup.work, "a.txt", "one", "first");
    env.git(&setup.work, &["branch", "trunk"]);
    setup.push(&env, &["main", "trunk"]);
    setup.wait_converged(&env);
    gpm_ok(&env, &["run", "--wait"]);
    let head = |repo: &std::path::Path| env.git(repo, &["symbolic-ref", "HEAD"]).trim().to_string();
    assert_eq!(head(&setup.mirror), "refs/heads/main");

    // Every program the worker starts, as strace sees it (the worker gives git children a clean
    // environment, so nothing in ours could log them).
    let log = env.path("execs.log");
    let run = |what: &str| {
        let out = env
            .cmd("strace")
            .args(["-f", "-qq", "-e", "trace=execve", "-o", path_str(&log)])
            .arg(env!("CARGO_BIN_EXE_git-push-mirror"))
            .args(["run", "--wait"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let execs = std::fs::read_to_string(&log).unwrap_or_default();
        // The first exec is the worker itself.
        execs.lines().filter(|l| l.contains("execve(")).skip(1).count()
    };

    env.git(&setup.upstream, &["symbolic-ref", "HEAD", "refs/heads/trunk"]);
    assert!(run("the run after HEAD moved") > 0, "strace sees the worker's git");
    assert_eq!(
        head(&setup.mirror),
        "refs/heads/trunk",
        "the mirror's default branch follows HEAD"
    );
    assert_eq!(
        run("an idle run"),
        0,
        "an idle scan of an unchanged reftable repository started a program"
    );
    // A ref changed without a hook: the run whose drift scan finds and pushes it reads the
    // changed refs, and keeps HEAD with them too.
    let main = env.git(&setup.upstream, &["rev-parse", "refs/heads/main"]);
    env.git(&setup.upstream, &["update-ref", "refs/heads/server-side", main.trim()]);
    gpm_ok(&env, &["run", "--wait"]);
    assert!(env.refs(&setup.mirror).contains_key("refs/heads/server-side"));
    assert_eq!(
        run("an idle run after a change"),
        0,
        "an idle scan after a change started a program"
    );
}
