//! Live configuration: a worker that lingers (a debounced mirror is due within its linger, and
//! each push gives a failing mirror new attempts) applies every change of the global configuration to the next update it starts: a fleet
//! mirror disabled, re-pointed, and silent mode turned on. Nothing is ever pushed with a
//! configuration that is no longer on disk.

use crate::support::binary::*;
use crate::support::procs::Reaper;
use crate::support::{TestEnv, path_str, wait_until};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn log_text(env: &TestEnv) -> String {
    std::fs::read_to_string(state_base(env).join("git-push-mirror.log")).unwrap_or_default()
}

/// The worker the hooks started (`run --detached`) for this test, if one runs.
fn lingering_worker(reaper: &Reaper) -> Option<libc::pid_t> {
    reaper.ours().into_iter().find(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains("--detached"))
    })
}

fn status_of(env: &TestEnv, upstream: &Path, mirror: &str) -> Value {
    let out = gpm_output(env, &["status", "--json", path_str(upstream)]);
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.into_iter().find(|s| s["mirror"] == mirror).unwrap()
}

fn failures(env: &TestEnv, upstream: &Path) -> u64 {
    status_of(env, upstream, "broken")["consecutive_failures"]
        .as_u64()
        .unwrap()
}

/// Waits until the lingering worker has taken the push in (recorded it as pending for `fleet`)
/// and has tried the failing mirror twice more than the `before` failures it had before the
/// push (a push earns it new attempts): had it wanted to push to `fleet`, it had every chance.
fn wait_push_handled(env: &TestEnv, upstream: &Path, branch_tip: &str, before: u64) {
    let upstream_tip = env.git(upstream, &["rev-parse", "main"]);
    assert_eq!(upstream_tip, branch_tip);
    wait_until("the worker recorded the push", CONVERGE, || {
        spool_files(env, "new").is_empty()
            && spool_files(env, "claimed").is_empty()
            && status_of(env, upstream, "fleet")["pending_refs"]
                .as_array()
                .is_some_and(|p| p.iter().any(|r| r == "refs/heads/main"))
    });
    wait_until("the worker went on retrying the failing mirror", CONVERGE, || {
        failures(env, upstream) >= before + 2
    });
}

fn reloads(env: &TestEnv) -> usize {
    log_text(env).matches("the global configuration changed").count()
}

#[test]
fn a_lingering_worker_never_pushes_with_a_global_configuration_that_is_no_longer_on_disk() {
    let env = TestEnv::new();
    let reaper = Reaper::new(&env);
    let root = env.path("repos");
    let upstream = root.join("app.git");
    std::fs::create_dir_all(&upstream).unwrap();
    env.git(&upstream, &["init", "--quiet", "--bare"]);
    let fleet_a: PathBuf = env.bare_repo("fleet-a/app.git");
    let fleet_b: PathBuf = env.bare_repo("fleet-b/app.git");
    let global = |extra: &str, fleet: &str| {
        format!(
            "repos_root = \"{}\"\nworker_linger = \"10m\"\n{extra}\n\
             [defaults]\ndelay = \"0s\"\n\
             [retry]\ninitial = \"200ms\"\nmax = \"200ms\"\njitter = false\nfail_after = 1000\n\
             [mirror.fleet]\nrepos = [\"app\"]\n{fleet}\n",
            path_str(&root)
        )
    };
    let url = |variant: &str| format!("url = \"file://{}/fleet-{variant}/{{name}}.git\"", path_str(env.root()));
    write_global_config(&env, &global("", &url("a")));
    // A mirror of the repository's own that never works (nothing listens there): each push
    // gives it new attempts, which show that the worker handled the push.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://127.0.0.1:{}/missing.git", closed.local_addr().unwrap().port());
    drop(closed);
    gpm_ok(&env, &["add", path_str(&upstream), "broken", &nowhere]);
    // A mirror debounced for 9 minutes: due within the 10-minute linger, so the worker lingers.
    let keeper = env.bare_repo("keeper.git");
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&upstream),
            "keeper",
            &format!("file://{}", path_str(&keeper)),
            "--delay",
            "9m",
        ],
    );
    gpm_ok(&env, &["install", path_str(&upstream)]);
    let work = env.clone_work(&upstream, "work");
    let push = |content: &str| {
        let tip = env.commit(&work, "a.txt", content, content);
        env.git(&work, &["push", "--quiet", "origin", "main"]);
        tip
    };

    let one = push("one");
    wait_until("the fleet mirror has the first push", CONVERGE, || {
        env.refs(&fleet_a) == env.refs(&upstream)
    });
    let worker = lingering_worker(&reaper).expect("a worker lingers for the failing mirror");

    // 1. The fleet mirror is disabled in the global file.
    write_global_config(&env, &global("", &format!("{}\nenabled = false", url("a"))));
    let before = failures(&env, &upstream);
    let two = push("two");
    wait_push_handled(&env, &upstream, &two, before);
    assert_eq!(
        env.git(&fleet_a, &["rev-parse", "main"]),
        one,
        "the disabled fleet mirror got nothing\n{}",
        log_text(&env)
    );
    assert_eq!(lingering_worker(&reaper), Some(worker), "the same worker handled it");

    // 2. Enabled again, at another URL: the new mirror gets everything, the old one nothing.
    write_global_config(&env, &global("", &url("b")));
    let three = push("three");
    wait_until("the re-pointed fleet mirror converges", CONVERGE, || {
        env.refs(&fleet_b) == env.refs(&upstream)
    });
    assert_eq!(env.git(&fleet_b, &["rev-parse", "main"]), three);
    assert_eq!(
        env.git(&fleet_a, &["rev-parse", "main"]),
        one,
        "the old URL is left alone"
    );
    assert_eq!(lingering_worker(&reaper), Some(worker), "the same worker handled it");

    // 3. Silent mode: the worker pushes nothing more and leaves.
    write_global_config(&env, &global("silent_mode = true", &url("b")));
    let four = push("four");
    wait_until("the silent worker leaves", CONVERGE, || {
        lingering_worker(&reaper).is_none()
    });
    assert_eq!(
        env.git(&fleet_b, &["rev-parse", "main"]),
        three,
        "nothing is pushed in silent mode\n{}",
        log_text(&env)
    );
    let status = status_of(&env, &upstream, "fleet");
    assert!(
        status["note"].as_str().unwrap_or("").contains("silent_mode"),
        "{status:#}"
    );
    assert!(
        reloads(&env) >= 3,
        "the worker said it applied each change\n{}",
        log_text(&env)
    );

    // Silent mode off: everything drains (a cron run, which does not linger for the failing mirror).
    write_global_config(&env, &global("", &url("b")).replace("\"10m\"", "\"0s\""));
    let out = gpm_output(&env, &["run", "--wait"]);
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", stderr(&out));
    assert_eq!(env.git(&fleet_b, &["rev-parse", "main"]), four);
    assert_eq!(env.refs(&fleet_b), env.refs(&upstream));
}

/// An upstream with the hook, mirrored to a slow mirror (each push takes 3 s once it reached it),
/// and a work clone whose first push is reaching the mirror when this returns.
fn slow_push_under_way(env: &TestEnv) -> (PathBuf, PathBuf, PathBuf) {
    let upstream = env.bare_repo("upstream.git");
    let mirror = env.bare_repo("mirror.git");
    let started = env.path("started");
    write_hook(
        &mirror,
        "pre-receive",
        &format!("#!/bin/sh\ncat >/dev/null\ntouch '{}'\nsleep 3\n", path_str(&started)),
    );
    let url = format!("file://{}", path_str(&mirror));
    gpm_ok(env, &["add", path_str(&upstream), "m", &url]);
    gpm_ok(env, &["install", path_str(&upstream)]);
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    wait_until("the slow push reaches the mirror", CONVERGE, || started.exists());
    (upstream, mirror, work)
}

/// The state a configuration names, read as `status --json` reads it.
fn status_with_config(env: &TestEnv, config: &Path, upstream: &Path) -> Vec<Value> {
    let out = gpm(env)
        .args(["--config", path_str(config), "status", "--json", path_str(upstream)])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

#[test]
fn pushes_made_while_the_state_directory_moves_end_on_the_mirror_recorded_in_the_new_state() {
    pushes_made_while_the_directories_move(false);
}

#[test]
fn pushes_left_in_a_spool_that_moved_are_taken_to_the_new_one() {
    pushes_made_while_the_directories_move(true);
}

/// A slow push runs when the global configuration moves the state directory (and the spool, when
/// `spool_too`), and two more pushes arrive: every ref ends on the mirror, recorded in the new
/// state, with nothing left in either spool and no push to that repository afterwards. When the
/// spool moves, the two pushes are spooled the old way (hooks that read the configuration
/// before it changed) once the worker stopped claiming: they are moved to the new spool.
fn pushes_made_while_the_directories_move(spool_too: bool) {
    let env = TestEnv::new();
    let reaper = Reaper::new(&env);
    let config = env.home().join(".config/git-push-mirror/config.toml");
    let global = |dirs: &str| {
        format!(
            "spool_dir = \"{}\"\nstate_dir = \"{}\"\nworker_linger = \"2s\"\n[defaults]\ndelay = \"0s\"\n",
            path_str(&env.path(format!("spool-{dirs}"))),
            path_str(&env.path(format!("state-{dirs}")))
        )
    };
    write_global_config(&env, &global("a"));
    let old_config = env.path("old-config.toml");
    std::fs::write(&old_config, global("a")).unwrap();
    let (upstream, mirror, work) = slow_push_under_way(&env);
    let pushes = count_mirror_pushes(&mirror);

    // While it pushes: the directories move, and two more pushes arrive.
    write_global_config(
        &env,
        &global(if spool_too { "b" } else { "a" }).replace("state-a", "state-b"),
    );
    let push = |args: &[&str]| {
        let mut cmd = env.cmd("git");
        cmd.current_dir(&work).args(args);
        if spool_too {
            cmd.env("GIT_PUSH_MIRROR_CONFIG", &old_config);
        }
        assert!(cmd.status().unwrap().success());
    };
    if spool_too {
        wait_until("the worker stops claiming", CONVERGE, || {
            log_text(&env).contains("claims nothing more")
        });
    }
    env.git(&work, &["tag", "v1"]);
    push(&["push", "--quiet", "origin", "v1"]);
    env.commit(&work, "b.txt", "two", "second");
    push(&["push", "--quiet", "origin", "main"]);

    wait_until("every ref is on the mirror", CONVERGE, || {
        env.refs(&mirror) == env.refs(&upstream)
    });
    wait_until("the workers end", CONVERGE, || reaper.ours().is_empty());
    assert_eq!(env.refs(&mirror), env.refs(&upstream), "{}", log_text(&env));
    // Recorded in the new state: finished, nothing pending, nothing left in either spool.
    let status = status_with_config(&env, &config, &upstream);
    assert_eq!(status.len(), 1, "{status:#?}");
    assert_eq!(
        status[0]["update_status"],
        "finished",
        "{:#}\n{}",
        status[0],
        log_text(&env)
    );
    assert_eq!(status[0]["pending_refs"], serde_json::json!([]), "{:#}", status[0]);
    for spool in ["spool-a", "spool-b"] {
        for sub in ["new", "claimed"] {
            let left = spool_files_under(&env.path(spool), sub);
            assert!(left.is_empty(), "{spool}/{sub}: {left:?}");
        }
    }
    if spool_too {
        assert!(
            log_text(&env).contains("entries from the old spool"),
            "{}",
            log_text(&env)
        );
    }
    // And nothing more goes to the mirror: a cron run on the new state finds nothing to do.
    let before = lines_in(&pushes);
    let out = gpm_output(&env, &["run", "--wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(lines_in(&pushes), before, "no push to the mirror afterwards");
    assert_eq!(env.refs(&mirror), env.refs(&upstream));
}

/// Files under a spool's subdirectory (`new`, `claimed`), in per-worker subdirectories too.
fn spool_files_under(spool: &Path, sub: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![spool.join(sub)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                dirs.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files
}

#[test]
fn a_worker_whose_global_configuration_breaks_claims_nothing_more() {
    let env = TestEnv::new();
    let reaper = Reaper::new(&env);
    let spool = env.path("spool");
    let good = format!(
        "spool_dir = \"{}\"\nworker_linger = \"2s\"\n[defaults]\ndelay = \"0s\"\n",
        path_str(&spool)
    );
    write_global_config(&env, &good);
    let good_copy = env.path("good-config.toml");
    std::fs::write(&good_copy, &good).unwrap();
    let (upstream, mirror, work) = slow_push_under_way(&env);

    // The global file breaks while the worker pushes; a hook that read it before spools a push.
    write_global_config(&env, "spool_dir = [\n");
    wait_until("the worker sees the broken file", CONVERGE, || {
        log_text(&env).contains("cannot be used")
    });
    env.commit(&work, "b.txt", "two", "second");
    let pushed = env
        .cmd("git")
        .current_dir(&work)
        .env("GIT_PUSH_MIRROR_CONFIG", &good_copy)
        .args(["push", "--quiet", "origin", "main"])
        .status()
        .unwrap();
    assert!(pushed.success());
    wait_until("the worker ends", CONVERGE, || reaper.ours().is_empty());
    let waiting = spool_files_under(&spool, "new");
    assert_eq!(
        waiting.len(),
        1,
        "the push waits, unclaimed: {waiting:?}\n{}",
        log_text(&env)
    );
    assert!(spool_files_under(&spool, "claimed").is_empty());

    // Fixed: the next worker takes it.
    write_global_config(&env, &good);
    let out = gpm_output(&env, &["run", "--wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.refs(&mirror), env.refs(&upstream));
    assert!(spool_files_under(&spool, "new").is_empty());
}
