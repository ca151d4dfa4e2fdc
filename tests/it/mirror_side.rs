//! The mirror's side (docs/mirror-side.md) over SSH and file://: a missing repository
//! created with `git init --bare` over a real sshd (and what the host says when it cannot), the
//! default branch following the local HEAD, `sync --dry-run` against what a real sync then does
//! (and nothing written), `status --refs`, push options for mirrors that take them and those that
//! do not, and mirrors left behind by a repository that went away.

use crate::support::binary::*;
use crate::support::{HttpGitServer, Sshd, TestEnv, TestUser, path_str, require_or_skip};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

fn head_of(env: &TestEnv, repo: &Path) -> String {
    env.git(repo, &["symbolic-ref", "--short", "HEAD"])
}

fn status_of(env: &TestEnv, upstream: &Path) -> Vec<serde_json::Value> {
    let out = gpm_output(env, &["status", "--json", path_str(upstream)]);
    serde_json::from_str(&stdout(&out)).unwrap()
}

#[test]
fn ssh_creates_a_missing_repository_pushes_at_once_and_its_head_follows() {
    if !require_or_skip("sshd", Sshd::available()) {
        return;
    }
    let env = TestEnv::new();
    let sshd = Sshd::start(&env);
    let (upstream, work) = upstream_on_develop(&env);
    let mirror = env.path("mirrors/deep/app.git");
    assert!(!mirror.exists());
    let url = sshd.url(&mirror);
    let flags = ssh_mirror_flags(&env, &sshd);
    let mut args = vec!["add", path_str(&upstream), "backup", &url, "--create", "ssh"];
    args.extend(flags.iter().map(String::as_str));
    gpm_ok(&env, &args);

    let dry = gpm_ok(&env, &["sync", "--dry-run", path_str(&upstream)]);
    assert!(
        dry.contains("would create the repository") && dry.contains("git init --bare"),
        "{dry}"
    );
    assert!(!mirror.exists(), "a dry run creates nothing");
    let out = gpm_ok(&env, &["sync", path_str(&upstream)]);
    assert!(out.contains("refs/heads/develop  created"), "{out}");
    assert_eq!(env.refs(&mirror), env.refs(&upstream), "the first push landed");
    assert_eq!(head_of(&env, &mirror), "develop", "its default branch is the local one");
    let status = &status_of(&env, &upstream)[0];
    assert_eq!(status["update_status"], "finished");
    assert!(status["repository_created_at"].is_string(), "{status:#}");

    // HEAD moved without a push (`git symbolic-ref`): `run`'s drift scan makes the mirror follow.
    env.git(&work, &["push", "-q", "origin", "HEAD:refs/heads/trunk"]);
    gpm_ok(&env, &["sync", path_str(&upstream)]);
    assert_eq!(head_of(&env, &mirror), "develop");
    env.git(&upstream, &["symbolic-ref", "HEAD", "refs/heads/trunk"]);
    gpm_ok(&env, &["run", "--wait"]);
    assert_eq!(head_of(&env, &mirror), "trunk");
    assert!(status_of(&env, &upstream)[0]["mirror_default_branch"].is_null());
}

#[test]
fn ssh_create_under_a_directory_the_user_cannot_write_fails_with_the_hosts_words() {
    if !require_or_skip("sshd", Sshd::available()) || !require_or_skip("root (useradd)", TestUser::available()) {
        return;
    }
    let env = TestEnv::new();
    let user = TestUser::with_login_shell(&env);
    // The user logs in with the test's key, read from the test's directory.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(env.root(), fs::Permissions::from_mode(0o755)).unwrap();
    let sshd = Sshd::start_allowing(&env, &[&user.name]);
    let (upstream, _) = upstream_on_develop(&env);
    let locked = env.path("locked");
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    let mirror = locked.join("app.git");
    let url = format!("ssh://{}@127.0.0.1:{}{}", user.name, sshd.port(), mirror.display());
    let flags = ssh_mirror_flags(&env, &sshd);
    let mut args = vec!["add", path_str(&upstream), "backup", &url, "--create", "ssh"];
    args.extend(flags.iter().map(String::as_str));
    gpm_ok(&env, &args);

    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(!mirror.exists());
    let status = &status_of(&env, &upstream)[0];
    let error = status["last_error"].as_str().unwrap();
    assert!(
        error.contains("creating it failed")
            && error.contains(&format!("cannot mkdir {}", mirror.display()))
            && error.contains("Permission denied"),
        "the host's own words: {error}\nsshd: {}",
        fs::read_to_string(sshd.log_path()).unwrap_or_default()
    );
    assert_eq!(status["failure_class"], "permanent");
}

#[test]
fn a_local_mirrors_default_branch_follows_head_and_status_says_when_it_differs() {
    let env = TestEnv::new();
    let (upstream, work) = upstream_on_develop(&env);
    let mirror = env.path("mirror.git");
    env.git(env.root(), &["init", "-q", "--bare", "-b", "main", path_str(&mirror)]);
    gpm_ok(&env, &["add", path_str(&upstream), "backup", path_str(&mirror)]);
    gpm_ok(&env, &["sync", path_str(&upstream)]);
    assert_eq!(head_of(&env, &mirror), "develop");

    // Someone changes it on the mirror: status says so; a sync sets it back.
    env.git(&mirror, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    env.commit(&work, "c.txt", "three", "three");
    env.git(&work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    gpm_ok(&env, &["run", "--wait"]);
    gpm_ok(&env, &["sync", path_str(&upstream), "--dry-run"]);
    let dry: serde_json::Value =
        serde_json::from_str(&gpm_ok(&env, &["sync", path_str(&upstream), "--dry-run", "--json"])).unwrap();
    assert_eq!(dry[0]["default_branch"]["set_to"], "develop", "{dry:#}");
    assert_eq!(dry[0]["default_branch"]["now"], "main", "{dry:#}");
    gpm_ok(&env, &["sync", path_str(&upstream)]);
    assert_eq!(head_of(&env, &mirror), "develop");

    // A mirror over HTTPS without a forge keeps its own; shown when it differs is tested by
    // `status` reading the state an update left: here, a mirror HEAD seen as main.
    env.git(&work, &["push", "-q", "origin", "HEAD:refs/heads/trunk"]);
    env.git(&upstream, &["symbolic-ref", "HEAD", "refs/heads/trunk"]);
    gpm_ok(&env, &["run", "--wait"]);
    assert_eq!(head_of(&env, &mirror), "trunk");
}

#[test]
fn a_mirror_whose_default_branch_cannot_be_set_shows_it_in_status_when_it_differs() {
    if !require_or_skip("git http-backend", HttpGitServer::available()) {
        return;
    }
    let env = TestEnv::new();
    let (upstream, _) = upstream_on_develop(&env);
    let served = env.path("served");
    fs::create_dir_all(&served).unwrap();
    let mirror = served.join("app.git");
    env.git(
        env.root(),
        &["clone", "-q", "--bare", path_str(&upstream), path_str(&mirror)],
    );
    env.git(&mirror, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    let http = HttpGitServer::start(&env, &served, "bot", "s3cret-token");
    let token = secret_file(&env, "token", "s3cret-token", 0o600);
    let url = http.url("app.git");
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&upstream),
            "backup",
            &url,
            "--username",
            "bot",
            "--password-file",
            path_str(&token),
        ],
    );
    let dry = gpm_ok(&env, &["sync", "--dry-run", path_str(&upstream)]);
    assert!(
        dry.contains("default branch: main on the mirror, develop here; not changed for this kind of mirror"),
        "{dry}"
    );
    gpm_ok(&env, &["sync", path_str(&upstream)]);
    assert_eq!(head_of(&env, &mirror), "main", "HTTPS without a forge: left as it is");
    let status = &status_of(&env, &upstream)[0];
    assert_eq!(
        status["mirror_default_branch"], "main (the local default branch is develop)",
        "{status:#}"
    );
    assert_eq!(status["update_status"], "finished");
}

/// Every file under `dir` with its SHA-256.
fn hashes(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut all = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = fs::read(&path).unwrap_or_default();
                all.insert(path, format!("{:x}", Sha256::digest(&bytes)));
            }
        }
    }
    all
}

#[test]
fn dry_run_lists_what_a_sync_then_does_and_changes_nothing() {
    let env = TestEnv::new();
    let (upstream, work) = upstream_on_develop(&env);
    let mirror = env.bare_repo("mirror.git");
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&upstream),
            "backup",
            path_str(&mirror),
            "--branch",
            "main",
            "--branch",
            "develop",
            "--branch",
            "old",
            "--branch",
            "new",
        ],
    );
    env.git(&work, &["push", "-q", "origin", "HEAD:refs/heads/old"]);
    gpm_ok(&env, &["sync", path_str(&upstream)]);
    // Locally: main rewritten (a force), `old` deleted (merged: a delete), `new` created, and a
    // branch the filters leave out.
    env.git(&work, &["checkout", "-q", "--orphan", "rewrite"]);
    env.commit(&work, "c.txt", "rewritten", "rewritten");
    env.git(
        &work,
        &[
            "push",
            "-q",
            "-f",
            "origin",
            "HEAD:refs/heads/main",
            "HEAD:refs/heads/new",
            "HEAD:refs/heads/wip",
            ":refs/heads/old",
        ],
    );

    let state = state_base(&env).join("state");
    let (state_before, mirror_before) = (hashes(&state), hashes(&mirror));
    let dry: serde_json::Value =
        serde_json::from_str(&gpm_ok(&env, &["sync", "--dry-run", "--json", path_str(&upstream)])).unwrap();
    let human = gpm_ok(&env, &["sync", "--dry-run", path_str(&upstream)]);
    assert_eq!(hashes(&state), state_before, "the state is byte for byte the same");
    assert_eq!(hashes(&mirror), mirror_before, "the mirror is byte for byte the same");
    let actions: BTreeMap<String, String> = dry[0]["refs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["ref"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(actions["refs/heads/main"], "force", "{dry:#}");
    assert_eq!(actions["refs/heads/old"], "delete");
    assert_eq!(actions["refs/heads/new"], "create");
    assert_eq!(actions["refs/heads/wip"], "filtered-out");
    assert_eq!(actions["refs/heads/develop"], "up-to-date");
    assert!(human.contains("would: 1 create, 1 force, 1 delete"), "{human}");

    let synced = gpm_ok(&env, &["sync", path_str(&upstream)]);
    let done: BTreeMap<&str, &str> = synced
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?, words.next()?))
        })
        .filter(|(name, _)| name.starts_with("refs/"))
        .collect();
    for (name, action) in &actions {
        let expected = match action.as_str() {
            "force" => "forced",
            "delete" => "deleted",
            "create" => "created",
            "up-to-date" => "up-to-date",
            _ => continue,
        };
        assert_eq!(done.get(name.as_str()), Some(&expected), "{name}: {synced}");
    }
    assert!(!done.contains_key("refs/heads/wip"));
}

#[test]
fn dry_run_marks_refs_the_mirror_refused_last_time() {
    let env = TestEnv::new();
    let (upstream, work) = upstream_on_develop(&env);
    let mirror = env.bare_repo("mirror.git");
    write_hook(
        &mirror,
        "pre-receive",
        "#!/bin/sh\nwhile read old new ref; do\n  [ \"$ref\" = refs/heads/locked ] && { echo 'locked is protected here' >&2; exit 1; }\ndone\nexit 0\n",
    );
    gpm_ok(&env, &["add", path_str(&upstream), "backup", path_str(&mirror)]);
    env.git(&work, &["push", "-q", "origin", "HEAD:refs/heads/locked"]);
    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let dry: serde_json::Value =
        serde_json::from_str(&gpm_ok(&env, &["sync", "--dry-run", "--json", path_str(&upstream)])).unwrap();
    let locked = dry[0]["refs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ref"] == "refs/heads/locked")
        .unwrap()
        .clone();
    assert_eq!(locked["action"], "create");
    assert!(
        locked["refused_last_time"]
            .as_str()
            .is_some_and(|why| why.contains("locked is protected here")),
        "{locked:#}"
    );
    let human = gpm_ok(&env, &["sync", "--dry-run", path_str(&upstream)]);
    assert!(human.contains("refused last time: "), "{human}");
}

#[test]
fn status_refs_shows_each_refs_local_and_mirror_value() {
    let env = TestEnv::new();
    let (upstream, work) = upstream_on_develop(&env);
    let mirror = env.bare_repo("mirror.git");
    gpm_ok(
        &env,
        &["add", path_str(&upstream), "backup", path_str(&mirror), "--no-tags"],
    );
    gpm_ok(&env, &["sync", path_str(&upstream)]);
    env.commit(&work, "c.txt", "three", "three");
    env.git(&work, &["push", "-q", "origin", "HEAD:refs/heads/develop"]);
    let json: serde_json::Value =
        serde_json::from_str(&gpm_ok(&env, &["status", "--refs", "--json", path_str(&upstream)])).unwrap();
    let refs: BTreeMap<&str, &serde_json::Value> = json[0]["refs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["ref"].as_str().unwrap(), r))
        .collect();
    let local = env.refs(&upstream);
    let there = env.refs(&mirror);
    let develop = refs["refs/heads/develop"];
    assert_eq!(develop["state"], "differs");
    assert_eq!(develop["local"], local["refs/heads/develop"]);
    assert_eq!(develop["mirror"], there["refs/heads/develop"]);
    assert_eq!(refs["refs/heads/main"]["state"], "same");
    assert_eq!(refs["refs/tags/v1"]["state"], "local-only");
    assert_eq!(refs["refs/tags/v1"]["in_scope"], false);
    let human = gpm_ok(&env, &["status", "--refs", path_str(&upstream)]);
    assert!(human.contains("differs") && human.contains("(filtered out)"), "{human}");
}

#[test]
fn push_options_reach_a_mirror_that_takes_them_and_another_gets_the_push_without_them() {
    let env = TestEnv::new();
    let (upstream, work) = upstream_on_develop(&env);
    let takes = env.bare_repo("takes.git");
    env.git(&takes, &["config", "receive.advertisePushOptions", "true"]);
    let log = env.path("push-options.log");
    write_hook(
        &takes,
        "pre-receive",
        &format!(
            "#!/bin/sh\ncat >/dev/null\necho \"push: $GIT_PUSH_OPTION_COUNT $GIT_PUSH_OPTION_0 $GIT_PUSH_OPTION_1\" >> '{}'\n",
            log.display()
        ),
    );
    let refuses = env.bare_repo("refuses.git");
    fs::write(
        upstream.join("push-mirror.toml"),
        format!(
            "[mirror.takes]\nurl = \"{}\"\npush_options = [\"notify=none\"]\nfirst_sync_push_options = [\"ci.skip\", \"first\"]\n\n\
             [mirror.refuses]\nurl = \"{}\"\npush_options = [\"ci.skip\"]\n",
            path_str(&takes),
            path_str(&refuses)
        ),
    )
    .unwrap();
    gpm_ok(&env, &["sync", path_str(&upstream)]);
    env.commit(&work, "c.txt", "three", "three");
    env.git(&work, &["push", "-q", "origin", "HEAD:refs/heads/develop"]);
    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert!(out.status.success(), "{}", stdout(&out));
    let pushes = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = pushes.lines().collect();
    assert_eq!(lines, ["push: 2 ci.skip first", "push: 1 notify=none "], "{pushes}");
    assert_eq!(env.refs(&refuses), env.refs(&upstream), "pushed without the options");
    let statuses = status_of(&env, &upstream);
    let by_name = |name: &str| statuses.iter().find(|s| s["mirror"] == name).unwrap().clone();
    assert_eq!(by_name("refuses")["update_status"], "finished");
    let warning = by_name("refuses")["push_options_warning"].as_str().unwrap().to_string();
    assert!(warning.contains("does not accept push options"), "{warning}");
    assert!(by_name("takes")["push_options_warning"].is_null());
    let human = gpm_ok(&env, &["status", path_str(&upstream)]);
    assert_eq!(human.matches("push_options_warning").count(), 1, "one warning: {human}");
    // Options removed from the configuration: nothing left to warn about.
    let config = upstream.join("push-mirror.toml");
    let text = fs::read_to_string(&config)
        .unwrap()
        .replace("push_options = [\"ci.skip\"]\n", "");
    fs::write(&config, text).unwrap();
    gpm_ok(&env, &["sync", path_str(&upstream)]);
    let human = gpm_ok(&env, &["status", path_str(&upstream)]);
    assert!(!human.contains("push_options_warning"), "{human}");
}

#[test]
fn a_mirror_whose_repository_is_gone_or_renamed_shows_in_status_and_metrics_and_keeps_its_refs() {
    let env = TestEnv::new();
    let root = env.path("repos");
    fs::create_dir_all(root.join("acme")).unwrap();
    let upstream = root.join("acme/app.git");
    env.git(env.root(), &["init", "-q", "--bare", path_str(&upstream)]);
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "one");
    env.git(&work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    for name in ["app", "renamed"] {
        let mirror = env.path(format!("mirrors/acme/{name}.git"));
        fs::create_dir_all(&mirror).unwrap();
        env.git(&mirror, &["init", "-q", "--bare"]);
    }
    write_global_config(
        &env,
        &format!(
            "repos_root = \"{}\"\n[mirror.backup]\nrepos = [\"acme/*\"]\nurl = \"file://{}/mirrors/{{name}}.git\"\n",
            path_str(&root),
            path_str(env.root())
        ),
    );
    gpm_ok(&env, &["run", "--wait"]);
    let old_mirror = env.path("mirrors/acme/app.git");
    let pushed = env.refs(&old_mirror);
    assert!(!pushed.is_empty());

    fs::rename(&upstream, root.join("acme/renamed.git")).unwrap();
    let out = gpm_output(&env, &["status"]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "an orphan is no failure: {said}");
    assert!(said.contains("orphaned: the local repository is gone"), "{said}");
    assert!(
        said.contains(&format!("git-push-mirror forget {}", upstream.display())),
        "{said}"
    );
    let json: Vec<serde_json::Value> = serde_json::from_str(&stdout(&gpm_output(&env, &["status", "--json"]))).unwrap();
    let orphan = json
        .iter()
        .find(|s| s["repo"] == path_str(&upstream))
        .expect("the orphan in --json");
    assert!(orphan["orphaned_since"].is_string());
    assert!(
        orphan["url"].as_str().unwrap().ends_with("mirrors/acme/app.git"),
        "{orphan:#}"
    );
    let metrics = stdout(&gpm_output(&env, &["metrics"]));
    assert!(
        metrics.contains(&format!(
            "git_push_mirror_mirror_orphaned{{repo=\"{}\",mirror=\"backup\"}} 1",
            upstream.display()
        )),
        "{metrics}"
    );
    assert!(metrics.contains("git_push_mirror_orphaned_mirrors 1"), "{metrics}");
    assert_eq!(env.refs(&old_mirror), pushed, "nothing is deleted on the mirror");

    // The renamed repository is mirrored under its new name; the old mirror stays reported until forgotten.
    gpm_ok(&env, &["run", "--wait"]);
    assert_eq!(env.refs(&env.path("mirrors/acme/renamed.git")), pushed);
    gpm_ok(&env, &["forget", path_str(&upstream)]);
    let metrics = stdout(&gpm_output(&env, &["metrics"]));
    assert!(metrics.contains("git_push_mirror_orphaned_mirrors 0"), "{metrics}");
    assert_eq!(env.refs(&old_mirror), pushed);
}
