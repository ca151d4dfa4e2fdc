//! Mirrors with limits still converge: a repository ten times larger than what the mirror
//! accepts in one push (`receive.maxInputSize`) arrives in steps, each under the limit, learned
//! from the mirror's refusals or set with `max_push_size`; and over a slow link whose whole
//! push outlives `timeout`, with the worker killed at random moments, every run after the
//! first continues from what the mirror has instead of starting from zero.

use crate::support::binary::*;
use crate::support::{HttpGitServer, Sshd, TestEnv, path_str, require_or_skip, wait_until};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const MB: u64 = 1_000_000;
/// The test repository: about 100 MB of incompressible blobs.
const BLOB: usize = 330_000;
const MAIN_COMMITS: usize = 200;
const SIDE_COMMITS: usize = 50;

/// Pseudo-random bytes: zlib cannot shrink them, so sizes on disk are what is sent.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// A bare repository of about 100 MB: `main` (200 commits), `feature` and `release` (50 each,
/// branching off `main`), tags `v1`..`v4` along `main`; one new incompressible blob per commit.
fn big_repository(env: &TestEnv, name: &str) -> PathBuf {
    repository_of(env, name, BLOB)
}

/// [`big_repository`] with blobs of `blob` bytes.
fn repository_of(env: &TestEnv, name: &str, blob_size: usize) -> PathBuf {
    let repo = env.bare_repo(name);
    let mut child = env
        .cmd("git")
        .args(["--git-dir", path_str(&repo), "fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import");
    let mut input = std::io::BufWriter::new(child.stdin.take().unwrap());
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut blob = vec![0u8; blob_size];
    let mut mark = 0;
    let mut commit = |input: &mut dyn Write, branch: &str, from: Option<usize>, file: &str| -> usize {
        noise.fill(&mut blob);
        mark += 1;
        let at = 1_700_000_000 + mark;
        write!(
            input,
            "commit refs/heads/{branch}\nmark :{mark}\ncommitter T <t@example.com> {at} +0000\n"
        )
        .unwrap();
        write!(input, "data 2\nc\n").unwrap();
        if let Some(parent) = from {
            writeln!(input, "from :{parent}").unwrap();
        }
        write!(input, "M 644 inline {file}\ndata {}\n", blob.len()).unwrap();
        input.write_all(&blob).unwrap();
        input.write_all(b"\n").unwrap();
        mark
    };
    let mut main = Vec::new();
    for i in 0..MAIN_COMMITS {
        let parent = main.last().copied();
        main.push(commit(&mut input, "main", parent, &format!("main/{i}")));
    }
    for (branch, fork) in [("feature", 99), ("release", 149)] {
        let mut parent = main[fork];
        for i in 0..SIDE_COMMITS {
            parent = commit(&mut input, branch, Some(parent), &format!("{branch}/{i}"));
        }
    }
    for (i, at) in [40, 90, 140, 199].iter().enumerate() {
        writeln!(input, "reset refs/tags/v{}\nfrom :{}\n", i + 1, main[*at]).unwrap();
    }
    drop(input);
    assert!(child.wait().unwrap().success(), "fast-import failed");
    repo
}

/// Bytes of the repository's objects.
fn repository_bytes(env: &TestEnv, repo: &Path) -> u64 {
    let out = env.git(repo, &["count-objects", "-v"]);
    let kib = |key: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (kib("size:") + kib("size-pack:")) * 1024
}

/// A mirror that keeps every pack it receives as a pack and logs its size from `pre-receive`
/// (`packs.log`, one line per push that reached the hook), optionally as slow as a link of
/// `bytes_per_second`.
fn measured_mirror(env: &TestEnv, name: &str, bytes_per_second: Option<u64>) -> (PathBuf, PathBuf) {
    let mirror = env.bare_repo(name);
    env.git(&mirror, &["config", "receive.unpackLimit", "1"]);
    let log = mirror.join("packs.log");
    let slow = match bytes_per_second {
        Some(rate) => format!("sleep $(awk -v s=\"$size\" 'BEGIN {{ printf \"%.3f\", s / {rate} }}')\n"),
        None => String::new(),
    };
    write_hook(
        &mirror,
        "pre-receive",
        &format!(
            "#!/bin/sh\ncat >/dev/null\nsize=0\nfor p in \"$GIT_QUARANTINE_PATH\"/pack/*.pack; do\n  \
             [ -f \"$p\" ] && size=$((size + $(stat -c %s \"$p\")))\ndone\necho \"$size\" >> '{}'\n{slow}",
            log.display()
        ),
    );
    (mirror, log)
}

fn pack_sizes(log: &Path) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn add(env: &TestEnv, upstream: &Path, name: &str, mirror: &Path, flags: &[&str]) {
    let url = format!("file://{}", path_str(mirror));
    let mut args = vec!["add", path_str(upstream), name, &url];
    args.extend_from_slice(flags);
    gpm_ok(env, &args);
}

#[test]
fn a_repository_ten_times_the_mirror_s_limit_arrives_in_steps() {
    let env = TestEnv::new();
    let upstream = big_repository(&env, "upstream.git");
    let total = repository_bytes(&env, &upstream);
    assert!(total > 95 * MB, "the test repository has {total} bytes");

    // Learned from the mirror's refusals (`pack exceeds maximum allowed size`).
    let (learning, learning_log) = measured_mirror(&env, "learning.git", None);
    env.git(&learning, &["config", "receive.maxInputSize", &(10 * MB).to_string()]);
    add(&env, &upstream, "learning", &learning, &[]);
    // And set by the admin who knows the limit.
    let (told, told_log) = measured_mirror(&env, "told.git", None);
    env.git(&told, &["config", "receive.maxInputSize", &(10 * MB).to_string()]);
    add(&env, &upstream, "told", &told, &["--max-push-size", "9MB"]);

    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let expected = env.refs(&upstream);
    assert_eq!(expected.len(), 7);
    // `main` reaches each mirror through several states of its history; it is reported as what
    // its first step did: created.
    let main_created = stdout(&out)
        .lines()
        .filter(|l| l.trim_start().starts_with("refs/heads/main ") && l.trim_end().ends_with("created"))
        .count();
    assert_eq!(main_created, 2, "{}", stdout(&out));
    for (mirror, log) in [(&learning, &learning_log), (&told, &told_log)] {
        assert_eq!(env.refs(mirror), expected, "{} converged exactly", mirror.display());
        let packs = pack_sizes(log);
        assert!(packs.len() >= 10, "about ten steps or more: {packs:?}");
        assert!(
            packs.iter().all(|p| *p <= 10 * MB),
            "every pack under the limit: {packs:?}"
        );
        let sent: u64 = packs.iter().sum();
        assert!(
            sent >= total * 9 / 10 && sent <= total + total / 5,
            "{sent} bytes received for {total}"
        );
    }
    let statuses = gpm_output(&env, &["status", "--json", path_str(&upstream)]);
    let statuses: Vec<serde_json::Value> = serde_json::from_slice(&statuses.stdout).unwrap();
    let learned = statuses.iter().find(|s| s["mirror"] == "learning").unwrap()["learned_max_push_size"]
        .as_u64()
        .expect("the learning mirror's limit is remembered");
    assert!(learned < 10 * MB, "{learned}");

    // The next update of a learned mirror is refused no more: 30 MB more go in steps.
    let before = pack_sizes(&learning_log).len();
    let work = env.clone_work(&upstream, "work");
    let mut noise = Noise(7);
    for i in 0..10 {
        let mut blob = vec![0u8; 3 * MB as usize];
        noise.fill(&mut blob);
        std::fs::write(work.join(format!("more{i}")), &blob).unwrap();
        env.git(&work, &["add", "."]);
        env.git(&work, &["commit", "--quiet", "-m", &format!("more {i}")]);
    }
    env.git(&work, &["push", "--quiet", "origin", "HEAD:refs/heads/main"]);
    let out = gpm_output(&env, &["sync", path_str(&upstream), "--mirror", "learning"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(env.refs(&learning), env.refs(&upstream));
    let later = &pack_sizes(&learning_log)[before..];
    assert!(later.len() >= 3 && later.iter().all(|p| *p <= 10 * MB), "{later:?}");
}

/// The transports a limited mirror is reached over, besides `file://`.
#[derive(Clone, Copy, Debug)]
enum Transport {
    Http,
    Ssh,
}

/// A 20 MB repository to a mirror limited to 2 MB per push over smart HTTP or SSH: it converges
/// in steps, learned from the refusals the transport brings back.
fn a_limited_mirror_over(transport: Transport) {
    let env = TestEnv::new();
    let upstream = repository_of(&env, "upstream.git", 66_000);
    let (mirror, log) = measured_mirror(&env, "srv/mirror.git", None);
    env.git(&mirror, &["config", "receive.maxInputSize", &(2 * MB).to_string()]);
    let (url, flags, _server): (String, Vec<String>, Box<dyn std::any::Any>) = match transport {
        Transport::Http => {
            if !require_or_skip("git http-backend", HttpGitServer::available()) {
                return;
            }
            let server = HttpGitServer::start(&env, &env.path("srv"), "bot", "token-limits");
            let secret = secret_file(&env, "token", "token-limits", 0o600);
            let flags = vec![
                "--username".into(),
                "bot".into(),
                "--password-file".into(),
                path_str(&secret).into(),
            ];
            (server.url("mirror.git"), flags, Box::new(server))
        }
        Transport::Ssh => {
            if !require_or_skip("sshd", Sshd::available()) {
                return;
            }
            let server = Sshd::start(&env);
            let flags = ssh_mirror_flags(&env, &server);
            (server.url(&mirror), flags, Box::new(server))
        }
    };
    let mut args = vec!["add", path_str(&upstream), "limited", url.as_str()];
    args.extend(flags.iter().map(String::as_str));
    gpm_ok(&env, &args);
    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert!(out.status.success(), "{transport:?}\n{}{}", stdout(&out), stderr(&out));
    assert_eq!(env.refs(&mirror), env.refs(&upstream));
    let packs = pack_sizes(&log);
    assert!(packs.len() >= 10 && packs.iter().all(|p| *p <= 2 * MB), "{packs:?}");
}

#[test]
fn a_proxy_answering_413_is_met_with_smaller_steps() {
    let env = TestEnv::new();
    if !require_or_skip(
        "nginx, fcgiwrap and openssl",
        crate::support::HttpsGitServer::available(),
    ) {
        return;
    }
    let upstream = repository_of(&env, "upstream.git", 66_000);
    let (mirror, log) = measured_mirror(&env, "srv/mirror.git", None);
    env.git(&mirror, &["config", "http.receivepack", "true"]);
    let server = crate::support::HttpsGitServer::start_limited(&env, &env.path("srv"), None, "2m");
    let url = server.url("mirror.git");
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&upstream),
            "proxied",
            &url,
            "--ca-file",
            path_str(server.ca_file()),
        ],
    );
    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert!(
        out.status.success(),
        "{}{}\n{}",
        stdout(&out),
        stderr(&out),
        server.logs()
    );
    assert!(
        stderr(&out).contains("too large"),
        "the 413 was taken for a size limit:\n{}",
        stderr(&out)
    );
    assert_eq!(env.refs(&mirror), env.refs(&upstream));
    let packs = pack_sizes(&log);
    assert!(packs.len() >= 10 && packs.iter().all(|p| *p <= 2 << 20), "{packs:?}");
}

#[test]
fn a_limited_mirror_over_smart_http_converges_in_steps() {
    a_limited_mirror_over(Transport::Http);
}

#[test]
fn a_limited_mirror_over_ssh_converges_in_steps() {
    a_limited_mirror_over(Transport::Ssh);
}

/// Pids of the processes of this test's runs (the binary and the git children it started):
/// everything that carries the test's `HOME`.
fn processes_of(env: &TestEnv) -> Vec<i32> {
    let marker = format!("HOME={}", path_str(&env.home()));
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            environ.split(|b| *b == 0).any(|v| v == marker.as_bytes())
        })
        .collect()
}

/// Bytes under a directory (files only), recursively.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Bytes of the packs a mirror kept (pushes that landed; `receive.unpackLimit = 1`).
fn landed_bytes(mirror: &Path) -> u64 {
    std::fs::read_dir(mirror.join("objects/pack"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pack"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn a_slow_link_converges_across_timeouts_and_kills_without_starting_over() {
    let env = TestEnv::new();
    write_global_config(
        &env,
        "worker_linger = \"0s\"\n[retry]\ninitial = \"10ms\"\nmax = \"10ms\"\njitter = false\n",
    );
    let upstream = big_repository(&env, "upstream.git");
    let total = repository_bytes(&env, &upstream);
    // 25 MB/s: the whole repository takes 4 s, the time limit is 3 s, a quarter of it takes 1 s.
    let (mirror, log) = measured_mirror(&env, "slow.git", Some(25 * MB));
    add(&env, &upstream, "slow", &mirror, &["--timeout", "3s", "--delay", "0s"]);
    let expected = env.refs(&upstream);

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    println!("kill schedule seed {seed}");
    let mut runs = 0;
    let mut kills_after_progress = 0;
    let mut runs_after_progress = 0;
    while env.refs(&mirror) != expected {
        runs += 1;
        assert!(runs <= 40, "no convergence after {runs} runs");
        // What reaches the mirror, landed or not: the packs it kept and the quarantine
        // directories that pushes cut off (by the time limit or a kill) leave behind.
        let received_before = dir_bytes(&mirror.join("objects"));
        let had = landed_bytes(&mirror);
        let mut run = gpm(&env).args(["run", "--wait"]).spawn().unwrap();
        // Every other run is killed with SIGKILL at a random moment once a step of it has landed,
        // and every run until one has been: on a loaded machine a run may end by itself (two
        // timeouts in a row) before its kill, and the next one may then finish the mirror.
        if runs % 2 == 1 || kills_after_progress == 0 {
            wait_until("a step lands", Duration::from_secs(60), || {
                landed_bytes(&mirror) > had || run.try_wait().unwrap().is_some()
            });
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            std::thread::sleep(Duration::from_millis((seed >> 33) % 600));
            if run.try_wait().unwrap().is_none() {
                for pid in processes_of(&env) {
                    // SAFETY: kill(2) on a process of this test (the run, or git children it started).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                kills_after_progress += usize::from(landed_bytes(&mirror) > 0);
            }
        }
        let _ = run.wait();
        wait_until("the run's processes end", Duration::from_secs(30), || {
            processes_of(&env).is_empty()
        });
        let received = dir_bytes(&mirror.join("objects")) - received_before;
        if runs == 1 {
            let logged = std::fs::read_to_string(state_base(&env).join("git-push-mirror.log")).unwrap_or_default();
            assert!(logged.contains("did not finish within the time limit"), "{logged}");
        }
        // Once steps have landed, no run sends the whole repository again.
        if had > 0 {
            runs_after_progress += 1;
            assert!(received < total, "run {runs} started over: {received} of {total} bytes");
        }
    }
    assert!(kills_after_progress >= 1, "no run was killed during the stepped push");
    assert!(
        runs_after_progress >= 1,
        "no run continued from what an earlier one left"
    );
    let out = gpm_output(&env, &["status", "--json", path_str(&upstream)]);
    let status: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let logged = std::fs::read_to_string(state_base(&env).join("git-push-mirror.log")).unwrap_or_default();
    // What the timeouts taught is a hypothesis: kept while it spares the next runs the same
    // timeout, raised by the clean updates that follow.
    let source = &status[0]["learned_max_push_size_source"];
    assert!(
        source.is_null() || source == "timed_out",
        "{status:?}\n{logged}\npacks: {:?}",
        pack_sizes(&log)
    );
    // The next run agrees that nothing is left.
    let before = pack_sizes(&log).len();
    gpm_output(&env, &["run", "--wait"]);
    assert_eq!(env.refs(&mirror), expected);
    assert!(pack_sizes(&log)[before..].iter().all(|p| *p == 0));
}

/// The files of mirror `name`'s state (`NAME.json`, `NAME.known`, `NAME.lock`), wherever its
/// repository's state directory is.
fn state_files_of(env: &TestEnv, name: &str) -> Vec<PathBuf> {
    let repos = state_base(env).join("state/repos");
    std::fs::read_dir(&repos)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|entry| {
            std::fs::read_dir(entry.path().join("mirrors"))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_stem().and_then(|s| s.to_str()) == Some(name) && path.extension().is_some_and(|e| e != "tmp")
        })
        .collect()
}

/// A 20 MB repository pushed in steps of at most 2 MB to a mirror that takes 2 s per step, by
/// `run` (the worker) or by `sync`; the mirror is changed on disk once a step has reached it.
fn stepped_update_interrupted_by(
    command: &str,
    change: impl FnOnce(&TestEnv, &Path),
) -> (TestEnv, PathBuf, PathBuf, usize) {
    let env = TestEnv::new();
    write_global_config(&env, "worker_linger = \"0s\"\n");
    let upstream = repository_of(&env, "upstream.git", 66_000);
    let (mirror, log) = measured_mirror(&env, "stepped.git", Some(MB));
    add(&env, &upstream, "m", &mirror, &["--max-push-size", "2MB"]);
    let mut update = match command {
        "run" => gpm(&env).args(["run", "--wait"]).spawn().unwrap(),
        _ => gpm(&env).args(["sync", path_str(&upstream)]).spawn().unwrap(),
    };
    wait_until("a step reaches the mirror", Duration::from_secs(60), || {
        !pack_sizes(&log).is_empty()
    });
    let reached = pack_sizes(&log).len();
    change(&env, &upstream);
    let ended = wait_for_exit(&mut update, Duration::from_secs(120));
    assert!(ended, "the {command} ended");
    (env, upstream, log, reached)
}

fn wait_for_exit(child: &mut std::process::Child, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

#[test]
fn a_mirror_removed_between_two_steps_gets_no_more_steps_and_no_state() {
    for command in ["run", "sync"] {
        let (env, upstream, log, reached) = stepped_update_interrupted_by(command, |env, upstream| {
            gpm_ok(env, &["remove", path_str(upstream), "m"]);
        });
        let steps = pack_sizes(&log).len();
        // The step on its way when `remove` ran may land; no other step is started.
        assert!(
            steps <= reached + 1,
            "{command}: {steps} steps reached the mirror, {reached} when it was removed"
        );
        assert!(steps < 10, "{command}: the update went on: {steps} steps");
        assert!(
            state_files_of(&env, "m").is_empty(),
            "{command}: the removed mirror's state came back: {:?}",
            state_files_of(&env, "m")
        );
        let status = gpm_output(&env, &["status", "--json", path_str(&upstream)]);
        assert_eq!(stdout(&status).trim(), "[]", "{command}");
        // A later run does not bring it back either.
        gpm_output(&env, &["run", "--wait"]);
        assert!(state_files_of(&env, "m").is_empty(), "{command}");
    }
}

#[test]
fn a_mirror_re_pointed_between_two_steps_gets_no_more_steps_at_its_old_url() {
    let mut new_mirror = PathBuf::new();
    let (env, upstream, log, reached) = stepped_update_interrupted_by("run", |env, upstream| {
        new_mirror = env.bare_repo("elsewhere.git");
        let url = format!("file://{}", path_str(&new_mirror));
        gpm_ok(env, &["set", path_str(upstream), "m", "--url", &url]);
    });
    let steps = pack_sizes(&log).len();
    assert!(
        steps <= reached + 1,
        "{steps} steps reached the old URL, {reached} when it was re-pointed"
    );
    // The worker went on with the mirror as configured now: the new URL, reconciled in full.
    gpm_output(&env, &["run", "--wait"]);
    assert_eq!(env.refs(&new_mirror), env.refs(&upstream));
    assert_eq!(pack_sizes(&log).len(), steps, "nothing more went to the old URL");
    let status = gpm_output(&env, &["status", "--json", path_str(&upstream)]);
    let status: Vec<serde_json::Value> = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status[0]["update_status"], "finished", "{status:#?}");
}

fn mirror_status(env: &TestEnv, upstream: &Path) -> serde_json::Value {
    let out = gpm_output(env, &["status", "--json", path_str(upstream)]);
    let mut all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.remove(0)
}

/// Commits `files` new incompressible files of `size` bytes each to `main` of `upstream`, one
/// commit each.
fn commit_noise(env: &TestEnv, upstream: &Path, work: &Path, seed: u64, files: usize, size: usize) {
    let mut noise = Noise(seed);
    for i in 0..files {
        let mut blob = vec![0u8; size];
        noise.fill(&mut blob);
        std::fs::write(work.join(format!("noise-{seed}-{i}")), &blob).unwrap();
        env.git(work, &["add", "."]);
        env.git(work, &["commit", "--quiet", "-m", &format!("noise {seed} {i}")]);
    }
    env.git(work, &["push", "--quiet", "origin", "HEAD:refs/heads/main"]);
    assert_eq!(
        env.refs(upstream)["refs/heads/main"],
        env.git(work, &["rev-parse", "HEAD"]).trim()
    );
}

#[test]
fn a_limit_taught_by_dropped_connections_is_lifted_by_clean_updates() {
    if !require_or_skip("git daemon", crate::support::GitDaemon::available()) {
        return;
    }
    let env = TestEnv::new();
    let upstream = repository_of(&env, "upstream.git", 80_000);
    let total = repository_bytes(&env, &upstream);
    let served = env.path("served");
    let (mirror, log) = measured_mirror(&env, "served/m.git", None);
    let daemon = crate::support::GitDaemon::start(&served);
    // The network drops the first three pushes after 1 MB, then recovers.
    let proxy = crate::support::CuttingProxy::cutting(daemon.port(), 1_000_000, 3);
    let url = format!("git://127.0.0.1:{}/m.git", proxy.port);
    gpm_ok(&env, &["add", path_str(&upstream), "m", &url]);
    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(env.refs(&mirror), env.refs(&upstream));
    assert_eq!(proxy.cuts.load(std::sync::atomic::Ordering::SeqCst), 3);
    let status = mirror_status(&env, &upstream);
    let learned = status["learned_max_push_size"].as_u64().expect("a limit is suspected");
    assert!(
        learned < total / 4,
        "{learned} after three drops of {total} bytes: {status:#}"
    );
    assert_eq!(status["learned_max_push_size_source"], "dropped", "{status:#}");
    assert!(status["learned_max_push_size_at"].is_string(), "{status:#}");
    let human = stdout(&gpm_output(&env, &["status", path_str(&upstream)]));
    assert!(
        human.contains("lost its connection; clean updates raise it again"),
        "{human}"
    );

    // Clean updates, small ones: each doubles the suspicion until it reaches what failed.
    let work = env.clone_work(&upstream, "work");
    let mut clean_runs = 0;
    while mirror_status(&env, &upstream)["learned_max_push_size"].is_u64() {
        clean_runs += 1;
        assert!(clean_runs <= 4, "still limited after {} clean updates", clean_runs - 1);
        env.commit(&work, "small.txt", &format!("clean {clean_runs}"), "small");
        env.git(&work, &["push", "--quiet", "origin", "HEAD:refs/heads/main"]);
        let out = gpm_output(&env, &["sync", path_str(&upstream)]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    }
    assert_eq!(env.refs(&mirror), env.refs(&upstream));

    // Unlimited again: a 12 MB update goes in one push.
    let before = pack_sizes(&log).len();
    commit_noise(&env, &upstream, &work, 12, 4, 3 * MB as usize);
    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(env.refs(&mirror), env.refs(&upstream));
    let later = &pack_sizes(&log)[before..];
    assert!(
        later.len() == 1 && later[0] >= 12 * MB,
        "the 12 MB update went in one push: {later:?}"
    );
}

#[test]
fn a_refused_size_is_kept_until_reset_learned_limit_forgets_it() {
    let env = TestEnv::new();
    let upstream = repository_of(&env, "upstream.git", 66_000);
    let (mirror, log) = measured_mirror(&env, "limited.git", None);
    env.git(&mirror, &["config", "receive.maxInputSize", &(2 * MB).to_string()]);
    add(&env, &upstream, "limited", &mirror, &[]);
    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let status = mirror_status(&env, &upstream);
    assert_eq!(status["learned_max_push_size_source"], "refused", "{status:#}");
    let human = stdout(&gpm_output(&env, &["status", path_str(&upstream)]));
    assert!(
        human.contains("the mirror refused bigger pushes as too large"),
        "{human}"
    );
    // A clean update keeps a refusal (it is the mirror's word, not a guess).
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "small.txt", "one", "small");
    env.git(&work, &["push", "--quiet", "origin", "HEAD:refs/heads/main"]);
    gpm_ok(&env, &["sync", path_str(&upstream)]);
    assert_eq!(
        mirror_status(&env, &upstream)["learned_max_push_size"],
        status["learned_max_push_size"]
    );

    let out = gpm_ok(&env, &["set", path_str(&upstream), "limited", "--reset-learned-limit"]);
    assert!(out.contains("forgot the push size limit of mirror limited"), "{out}");
    let status = mirror_status(&env, &upstream);
    assert!(status["learned_max_push_size"].is_null(), "{status:#}");
    let out = gpm_ok(&env, &["set", path_str(&upstream), "limited", "--reset-learned-limit"]);
    assert!(out.contains("had no learned push size limit"), "{out}");
    // Forgotten: the next big update is tried whole, refused (refused pushes never reach the
    // mirror's hook), and learns again.
    let before = pack_sizes(&log).len();
    commit_noise(&env, &upstream, &work, 5, 4, MB as usize);
    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("was too large for the mirror"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.refs(&mirror), env.refs(&upstream));
    assert!(pack_sizes(&log)[before..].iter().all(|p| *p <= 2 * MB));
    assert_eq!(
        mirror_status(&env, &upstream)["learned_max_push_size_source"],
        "refused"
    );
    let refused = gpm_output(&env, &["set", path_str(&upstream), "nosuch", "--reset-learned-limit"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
}
