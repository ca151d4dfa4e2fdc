//! Operator chaos: 200 pushes to three repositories with two fleet mirrors, while an operator
//! script keeps editing the global configuration (URLs, enabled, filters, silent mode),
//! corrupts state files and kills workers, and cron runs beside the hooks' workers. At the end,
//! under the final configuration, every mirror equals its repository exactly.

use crate::support::binary::*;
use crate::support::procs::Reaper;
use crate::support::{TestEnv, path_str};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const REPOS: usize = 3;
const PUSHES: usize = 200;

/// A small deterministic generator (xorshift): the same chaos on every run, seeded per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the operator can change in the global configuration.
#[derive(Clone, Copy, Debug)]
struct Knobs {
    alpha_variant: u8,
    beta_variant: u8,
    alpha_enabled: bool,
    beta_enabled: bool,
    beta_main_only: bool,
    alpha_tags: bool,
    silent: bool,
}

/// The configuration the test ends with: what the mirrors must equal.
const FINAL: Knobs = Knobs {
    alpha_variant: 2,
    beta_variant: 1,
    alpha_enabled: true,
    beta_enabled: true,
    beta_main_only: false,
    alpha_tags: true,
    silent: false,
};

fn global_text(env: &TestEnv, knobs: Knobs) -> String {
    let base = path_str(env.root());
    let mut text = format!(
        "repos_root = \"{base}/repos\"\nworker_linger = \"1s\"\nsilent_mode = {}\n\
         [defaults]\ndelay = \"100ms\"\n\
         [retry]\ninitial = \"200ms\"\nmax = \"1s\"\njitter = false\nfail_after = 1000\n\
         [mirror.alpha]\nrepos = [\"r*\"]\nurl = \"file://{base}/alpha-{}/{{name}}.git\"\nenabled = {}\ntags = {}\n\
         [mirror.beta]\nrepos = [\"r*\"]\nurl = \"file://{base}/beta-{}/{{name}}.git\"\nenabled = {}\n",
        knobs.silent,
        knobs.alpha_variant,
        knobs.alpha_enabled,
        knobs.alpha_tags,
        knobs.beta_variant,
        knobs.beta_enabled,
    );
    if knobs.beta_main_only {
        text.push_str("branches = [\"main\", \"release/*\"]\n");
    }
    text
}

/// One repository's pushes: mostly `main`, a release branch, topic branches created at `main`
/// and deleted later (merged work), annotated tags.
fn push_all(env: &TestEnv, work: &Path, count: usize, seed: u64) {
    let mut rng = Rng(seed);
    let mut topics: Vec<String> = Vec::new();
    for i in 0..count {
        let push = |refspecs: &[&str]| {
            let mut args = vec!["push", "--quiet", "origin"];
            args.extend_from_slice(refspecs);
            env.git(work, &args);
        };
        match rng.below(10) {
            0..=5 => {
                env.commit(work, "main.txt", &format!("{seed}-{i}"), "main");
                push(&["main"]);
            }
            6 => {
                // Rebuilt on the newest main each time: a forced update.
                env.git(work, &["checkout", "-q", "-B", "release/1", "main"]);
                env.commit(work, "release.txt", &format!("{seed}-{i}"), "release");
                env.git(work, &["checkout", "-q", "main"]);
                push(&["+refs/heads/release/1"]);
            }
            7 => {
                let topic = format!("topic/{i}");
                push(&[&format!("main:refs/heads/{topic}")]);
                topics.push(topic);
            }
            8 if !topics.is_empty() => {
                let topic = topics.remove(0);
                push(&[&format!(":refs/heads/{topic}")]);
            }
            _ => {
                let tag = format!("v{i}");
                env.git(work, &["tag", "-a", "-m", &tag, &tag]);
                push(&[&format!("refs/tags/{tag}")]);
            }
        }
    }
}

/// Every state file of the fleet (records, pair states, known refs).
fn state_files(env: &TestEnv) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let repos = state_base(env).join("state/repos");
    for repo in std::fs::read_dir(repos).into_iter().flatten().flatten() {
        files.push(repo.path().join("repo.json"));
        for file in std::fs::read_dir(repo.path().join("mirrors"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = file.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") || name.ends_with(".known") {
                files.push(file.path());
            }
        }
    }
    files.sort();
    files
}

/// Workers of this test (`run`, started by hooks or by the cron thread).
fn workers(reaper: &Reaper) -> Vec<libc::pid_t> {
    reaper
        .ours()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("git-push-mirror") && c.contains("\0run")
            })
        })
        .collect()
}

/// What the operator did, for the failure message.
#[derive(Default, Debug)]
struct Chaos {
    config_edits: usize,
    corruptions: usize,
    kills: usize,
    cron_runs: usize,
}

/// `run --wait`, killed at `deadline` if it has not ended (a worker that never leaves fails the
/// test instead of hanging it); returns what it printed, or that it was killed.
fn run_until(env: &TestEnv, deadline: Instant) -> String {
    let err = env.path("final-run.err");
    let mut child = gpm(env)
        .args(["run", "--wait"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            return std::fs::read_to_string(&err).unwrap_or_default();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return "still running at the deadline: killed".to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mirror_of(env: &TestEnv, fleet: &str, variant: u8, repo: usize) -> PathBuf {
    env.path(format!("{fleet}-{variant}/r{repo}.git"))
}

#[test]
fn operator_chaos_ends_with_every_mirror_equal_to_what_the_final_configuration_says() {
    let env = TestEnv::new();
    let reaper = Reaper::new(&env);
    let mut upstreams = Vec::new();
    let mut works = Vec::new();
    for i in 0..REPOS {
        let upstream = env.path(format!("repos/r{i}.git"));
        std::fs::create_dir_all(&upstream).unwrap();
        env.git(&upstream, &["init", "--quiet", "--bare"]);
        for fleet in ["alpha", "beta"] {
            for variant in [1, 2] {
                env.bare_repo(&format!("{fleet}-{variant}/r{i}.git"));
            }
        }
        gpm_ok(&env, &["install", path_str(&upstream)]);
        let work = env.clone_work(&upstream, &format!("work{i}"));
        env.commit(&work, "main.txt", "start", "start");
        env.git(&work, &["push", "--quiet", "origin", "main"]);
        upstreams.push(upstream);
        works.push(work);
    }
    write_global_config(&env, &global_text(&env, FINAL));

    /// Stops the operator and cron threads however the pushers end (a failed push panics).
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let done = Arc::new(AtomicBool::new(false));
    let chaos = std::thread::scope(|scope| {
        let stop = StopOnDrop(Arc::clone(&done));
        let pushers: Vec<_> = works
            .iter()
            .enumerate()
            .map(|(i, work)| {
                let env = &env;
                let count = PUSHES / REPOS + usize::from(i < PUSHES % REPOS);
                scope.spawn(move || push_all(env, work, count, 0x9E37_79B9 + i as u64))
            })
            .collect();
        let cron = {
            let (env, done) = (&env, Arc::clone(&done));
            scope.spawn(move || {
                let mut runs = 0;
                while !done.load(Ordering::SeqCst) {
                    let _ = gpm(env).arg("run").output();
                    runs += 1;
                    std::thread::sleep(Duration::from_millis(300));
                }
                runs
            })
        };
        let operator = {
            let (env, reaper, done) = (&env, &reaper, Arc::clone(&done));
            scope.spawn(move || {
                let mut rng = Rng(0xC4A0_5EED);
                let mut chaos = Chaos::default();
                while !done.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(40 + rng.below(80)));
                    match rng.below(10) {
                        0..=5 => {
                            let knobs = Knobs {
                                alpha_variant: 1 + rng.below(2) as u8,
                                beta_variant: 1 + rng.below(2) as u8,
                                alpha_enabled: rng.below(4) != 0,
                                beta_enabled: rng.below(4) != 0,
                                beta_main_only: rng.below(2) == 0,
                                alpha_tags: rng.below(3) != 0,
                                silent: rng.below(5) == 0,
                            };
                            write_global_config(env, &global_text(env, knobs));
                            chaos.config_edits += 1;
                        }
                        6 => {
                            let files = state_files(env);
                            if !files.is_empty() {
                                let victim = &files[rng.below(files.len() as u64) as usize];
                                if victim.exists() {
                                    let _ = std::fs::write(victim, "{\"repo\": tru");
                                    chaos.corruptions += 1;
                                }
                            }
                        }
                        _ => {
                            let pids = workers(reaper);
                            if !pids.is_empty() {
                                let pid = pids[rng.below(pids.len() as u64) as usize];
                                // SAFETY: kill(2) has no memory-safety preconditions; the pid is a worker of this test.
                                unsafe { libc::kill(pid, libc::SIGKILL) };
                                chaos.kills += 1;
                            }
                        }
                    }
                }
                chaos
            })
        };
        let pushed: Vec<_> = pushers.into_iter().map(|p| p.join()).collect();
        drop(stop);
        for result in pushed {
            if let Err(panic) = result {
                std::panic::resume_unwind(panic);
            }
        }
        let mut chaos = operator.join().unwrap();
        chaos.cron_runs = cron.join().unwrap();
        chaos
    });
    assert!(
        chaos.config_edits > 0 && chaos.corruptions > 0 && chaos.kills > 0,
        "the operator did too little: {chaos:?}"
    );

    // The final configuration; cron runs until everything converges.
    write_global_config(&env, &global_text(&env, FINAL));
    let converged = || {
        (0..REPOS).all(|i| {
            let expected = env.refs(&upstreams[i]);
            env.refs(&mirror_of(&env, "alpha", FINAL.alpha_variant, i)) == expected
                && env.refs(&mirror_of(&env, "beta", FINAL.beta_variant, i)) == expected
        })
    };
    let deadline = Instant::now() + CONVERGE;
    loop {
        let out = run_until(&env, deadline);
        if converged() {
            break;
        }
        if Instant::now() > deadline {
            let mut report = String::new();
            for (i, upstream) in upstreams.iter().enumerate() {
                let expected = env.refs(upstream);
                for (fleet, variant) in [("alpha", FINAL.alpha_variant), ("beta", FINAL.beta_variant)] {
                    let got = env.refs(&mirror_of(&env, fleet, variant, i));
                    let differ: Vec<_> = expected
                        .keys()
                        .chain(got.keys())
                        .filter(|k| expected.get(*k) != got.get(*k))
                        .collect();
                    report.push_str(&format!("r{i} {fleet}-{variant}: differ {differ:?}\n"));
                    let locks = std::process::Command::new("find")
                        .args([
                            path_str(&mirror_of(&env, fleet, variant, i)),
                            "-name",
                            "*.lock",
                            "-printf",
                            "%p %TT\n",
                        ])
                        .output()
                        .unwrap();
                    report.push_str(&String::from_utf8_lossy(&locks.stdout));
                }
            }
            let status = gpm_output(&env, &["status", "--json"]);
            let log = std::fs::read_to_string(state_base(&env).join("git-push-mirror.log")).unwrap_or_default();
            let _ = std::fs::write(std::env::temp_dir().join("chaos-failure.log"), &log);
            panic!(
                "the mirrors did not converge after {chaos:?}\n{report}\nlast run: {out}\nstatus: {}",
                stdout(&status)
            );
        }
    }
    let left: Vec<_> = spool_files(&env, "new")
        .into_iter()
        .chain(spool_files(&env, "claimed"))
        .collect();
    if !left.is_empty() {
        let log = std::fs::read_to_string(state_base(&env).join("git-push-mirror.log")).unwrap_or_default();
        let _ = std::fs::write(std::env::temp_dir().join("chaos-failure.log"), &log);
        let owners: Vec<String> = left
            .iter()
            .filter_map(|f| f.parent()?.file_name()?.to_str()?.split('.').nth(1).map(String::from))
            .map(|pid| {
                format!(
                    "{pid}: {}",
                    std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default()
                )
            })
            .collect();
        panic!("spool entries left: {left:#?}\nclaimed by {owners:#?}");
    }
    let out = gpm_output(&env, &["status", "--json"]);
    let statuses: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(statuses.len(), REPOS * 2, "{statuses:#?}");
    for s in &statuses {
        assert_eq!(s["update_status"], "finished", "{s:#}");
        assert_eq!(s["pending_refs"], serde_json::json!([]), "{s:#}");
        assert_eq!(s["state_error"], Value::Null, "{s:#}");
    }
    eprintln!("chaos: {chaos:?}");
}
