//! Isolation between mirrors and from the worker: hung mirrors cannot starve a healthy one of
//! `max_parallel` slots; git children die with the worker that started them (`kill -9`
//! included) and what they leave is killed by the next worker; a `password_env` secret is in no
//! child's environment (git, ssh, another mirror's hooks, the credential helper).

use crate::support::binary::*;
use crate::support::procs::{HangingProxy, HungListener, Reaper, SecretWatcher, processes};
use crate::support::{HttpGitServer, TestEnv, path_str, require_or_skip, wait_until};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

fn log_text(env: &TestEnv) -> String {
    std::fs::read_to_string(state_base(env).join("git-push-mirror.log")).unwrap_or_default()
}

/// A bare repository `name` with one commit on `main` (pushed without any hook) and a mirror
/// named `m` at `url` with the extra `settings` (TOML lines); returns the repository's path.
/// The configuration is written as an admin would: `add` would first ask a hung mirror for its
/// object format, and wait for that.
fn repo_with_mirror(env: &TestEnv, seed: &Path, name: &str, url: &str, settings: &[&str]) -> PathBuf {
    let repo = env.bare_repo(name);
    env.git(seed, &["push", "--quiet", path_str(&repo), "main"]);
    let mut text = format!("[mirror.m]\nurl = \"{url}\"\ndelay = \"0s\"\n");
    for line in settings {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(repo.join("push-mirror.toml"), text).unwrap();
    repo
}

/// A work clone with one commit, to seed repositories from.
fn seed(env: &TestEnv) -> PathBuf {
    let origin = env.bare_repo("seed.git");
    let work = env.clone_work(&origin, "seed");
    env.commit(&work, "a.txt", "one", "first");
    work
}

/// Records a push of `main` as the hook does, without starting a worker.
fn spool_main(env: &TestEnv, repo: &Path) {
    let head = env.git(repo, &["rev-parse", "main"]);
    let mut hook = gpm(env)
        .args(["hook", "post-receive", "--no-worker"])
        .current_dir(repo)
        .env("GIT_DIR", ".")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let line = format!("{} {head} refs/heads/main\n", "0".repeat(40));
    hook.stdin.take().unwrap().write_all(line.as_bytes()).unwrap();
    assert!(hook.wait().unwrap().success());
}

/// Starts `git-push-mirror run` in the background.
fn start_run(env: &TestEnv, args: &[&str]) -> Child {
    gpm(env)
        .arg("run")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn status_of(env: &TestEnv, repo: &Path) -> Value {
    let out = gpm_output(env, &["status", "--json", path_str(repo)]);
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    all[0].clone()
}

#[test]
fn four_hung_mirrors_cannot_hold_every_slot_a_healthy_mirror_lands_while_they_hang() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    write_global_config(
        &env,
        "max_parallel = 4\nworker_linger = \"0s\"\n[retry]\ninitial = \"10m\"\nmax = \"10m\"\n",
    );
    let seed = seed(&env);
    // Four mirror hosts that accept connections and never answer, each on its own port.
    let hung: Vec<HungListener> = (0..4).map(|_| HungListener::start()).collect();
    let hung_repos: Vec<PathBuf> = hung
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let url = format!("git://127.0.0.1:{}/x.git", h.port);
            repo_with_mirror(&env, &seed, &format!("a-hung-{i}.git"), &url, &["timeout = \"10m\""])
        })
        .collect();
    let healthy_mirror = env.bare_repo("healthy-mirror.git");
    let healthy = repo_with_mirror(
        &env,
        &seed,
        "z-healthy.git",
        &format!("file://{}", path_str(&healthy_mirror)),
        &[],
    );
    // The hung repositories come first: they take all four slots before the healthy one is due.
    for repo in hung_repos.iter().chain([&healthy]) {
        spool_main(&env, repo);
    }
    let mut worker = start_run(&env, &[]);

    wait_until("the healthy mirror lands", CONVERGE, || {
        env.refs(&healthy_mirror) == env.refs(&healthy)
    });
    for (listener, repo) in hung.iter().zip(&hung_repos) {
        assert!(listener.accepted() >= 1, "every hung mirror was being updated");
        let status = status_of(&env, repo);
        assert_eq!(
            status["update_status"], "started",
            "the healthy mirror landed while the hung ones still hang, not after a timeout: {status:#}"
        );
    }
    let _ = worker.kill();
    let _ = worker.wait();
}

/// Processes started by the git-push-mirror process `pid` (their environment names it): its git
/// children and what they started, as `pid: cmdline`.
fn started_by(worker: u32) -> Vec<String> {
    let mark = format!("GIT_PUSH_MIRROR_WORKER={worker}.");
    processes()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|e| e.split(|b| *b == 0).any(|v| v.starts_with(mark.as_bytes())))
        })
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            format!("{pid}: {}", String::from_utf8_lossy(&cmdline).replace('\0', " "))
        })
        .collect()
}

fn is_git(line: &str) -> bool {
    line.split_once(": ")
        .is_some_and(|(_, cmd)| cmd.starts_with("git ") || cmd.starts_with("git\0"))
}

#[test]
fn git_children_die_with_a_killed_worker_and_the_next_worker_kills_what_they_left() {
    if !require_or_skip("git daemon", crate::support::GitDaemon::available()) {
        return;
    }
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    let config = "worker_linger = \"0s\"\n[retry]\ninitial = \"10m\"\nmax = \"10m\"\n";
    write_global_config(&env, config);
    let seed = seed(&env);
    // A mirror behind a proxy that works, then hangs: its next update goes straight to `git push`.
    let served = env.path("served");
    std::fs::create_dir_all(&served).unwrap();
    env.git(&served, &["init", "--quiet", "--bare", "pushy.git"]);
    let daemon = crate::support::GitDaemon::start(&served);
    let proxy = HangingProxy::start(daemon.port());
    let pushy = repo_with_mirror(
        &env,
        &seed,
        "pushy.git",
        &format!("git://127.0.0.1:{}/pushy.git", proxy.port),
        &["timeout = \"10m\""],
    );
    spool_main(&env, &pushy);
    let out = gpm_output(&env, &["run", "--wait"]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), log_text(&env));
    proxy.hang();
    env.commit(&seed, "a.txt", "two", "second");
    env.git(&seed, &["push", "--quiet", path_str(&pushy), "main"]);
    spool_main(&env, &pushy);
    // A new SSH mirror whose host never answers: `git ls-remote` and, under it, ssh.
    let ssh_host = HungListener::start();
    let known_hosts = env.path("known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    let lister = repo_with_mirror(
        &env,
        &seed,
        "lister.git",
        &format!("ssh://git@127.0.0.1:{}/x.git", ssh_host.port),
        &[
            "timeout = \"10m\"",
            &format!("known_hosts = \"{}\"", path_str(&known_hosts)),
        ],
    );
    spool_main(&env, &lister);

    let mut worker = start_run(&env, &["--wait"]);
    let pid = worker.id();
    wait_until("a hung push and a hung ls-remote with its ssh run", CONVERGE, || {
        let children = started_by(pid);
        proxy.hung() >= 1
            && children.iter().any(|c| is_git(c) && c.contains(" push "))
            && children.iter().any(|c| is_git(c) && c.contains(" ls-remote "))
            && children.iter().any(|c| c.contains("ssh ") && !is_git(c))
    });
    // kill -9 of the worker alone, as the OOM killer would.
    worker.kill().unwrap();
    worker.wait().unwrap();
    wait_until(
        "the git children die with their worker",
        Duration::from_secs(10),
        || !started_by(pid).iter().any(|c| is_git(c)),
    );
    let left = started_by(pid);
    assert!(
        !left.is_empty(),
        "ssh, a child of git, is left running (nothing signals it): the next worker must kill it"
    );

    // The next worker (silent mode: it starts nothing of its own) kills what is left.
    write_global_config(&env, &format!("silent_mode = true\n{config}"));
    let out = gpm_output(&env, &["run", "--wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until("the leftovers are gone", Duration::from_secs(10), || {
        started_by(pid).is_empty()
    });
    assert!(
        log_text(&env).contains("left running by a worker that died"),
        "{}",
        log_text(&env)
    );
}

#[test]
fn a_password_env_secret_is_in_no_child_environment_git_ssh_hooks_or_credential_helper() {
    if !require_or_skip("git http-backend", HttpGitServer::available()) {
        return;
    }
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    write_global_config(
        &env,
        "worker_linger = \"0s\"\n[retry]\ninitial = \"10m\"\nmax = \"10m\"\n",
    );
    let token = format!("tok-environ-{}-{}", std::process::id(), 0x5eed);
    let seed = seed(&env);
    let served = env.bare_repo("srv/mirror.git");
    let server = HttpGitServer::start(&env, &env.path("srv"), "bot", &token);
    let upstream = repo_with_mirror(
        &env,
        &seed,
        "upstream.git",
        &server.url("mirror.git"),
        &["username = \"bot\"", "password_env = \"MIRROR_TOKEN\""],
    );
    // Another mirror of the same repository, whose hooks print their environment.
    let backup = env.bare_repo("backup.git");
    let hook_env = env.path("backup-hook-env.txt");
    write_hook(
        &backup,
        "pre-receive",
        &format!("#!/bin/sh\ncat >/dev/null\nenv > '{}'\n", hook_env.display()),
    );
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&upstream),
            "backup",
            &format!("file://{}", path_str(&backup)),
            "--delay",
            "0s",
        ],
    );
    // And an SSH mirror (its host never answers; the ssh client lives for its short timeout).
    let ssh_host = HungListener::start();
    let known_hosts = env.path("known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    let config = upstream.join("push-mirror.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}[mirror.ssh]\nurl = \"ssh://git@127.0.0.1:{}/x.git\"\nknown_hosts = \"{}\"\n\
             timeout = \"3s\"\ndelay = \"0s\"\n",
            ssh_host.port,
            path_str(&known_hosts)
        ),
    )
    .unwrap();
    spool_main(&env, &upstream);

    // The worker itself holds the secret (it reads password_env): only it may.
    let watcher = SecretWatcher::in_environment(&token, Path::new(env!("CARGO_BIN_EXE_git-push-mirror")));
    let mut worker = gpm(&env)
        .args(["run", "--wait"])
        .env("MIRROR_TOKEN", &token)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = worker.wait().unwrap();
    let hits = watcher.stop();

    assert!(status.code().is_some_and(|c| c <= 1), "{}", log_text(&env));
    assert_eq!(
        env.refs(&served),
        env.refs(&upstream),
        "the HTTPS mirror got the push\n{}",
        log_text(&env)
    );
    assert_eq!(env.refs(&backup), env.refs(&upstream));
    assert!(ssh_host.accepted() >= 1, "the ssh client ran");
    assert!(
        hits.is_empty(),
        "the secret was in the environment of:\n{}",
        hits.join("\n")
    );
    let seen = std::fs::read_to_string(&hook_env).unwrap();
    assert!(seen.contains("GIT_DIR="), "the mirror's hook ran: {seen}");
    assert!(!seen.contains(&token), "the other mirror's hook saw the secret");
    assert!(!seen.contains("MIRROR_TOKEN"), "nor even the variable's name");
    assert!(server.requests() > 0);
}
