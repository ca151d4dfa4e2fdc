//! The default timing, by the order of events (never by durations): a lone push is pushed by
//! the worker the hook starts, without waiting for a debounce; what arrives while a mirror push
//! runs goes out in exactly one following push; an explicit `delay` still waits.

use crate::support::binary::*;
use crate::support::{TestEnv, path_str, wait_until};
use git_push_mirror::pipeline::schedule::COALESCE_WINDOW;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A worker that lingers for nothing: it leaves at once whatever is not due at once. So the
/// mirror having a push when the hook's worker has gone shows the push was due at once.
const NO_LINGER: &str = "worker_linger = \"0s\"\n";

/// Waits until no worker is running: nothing waits in the spool (the hook's entry is claimed
/// only by a worker holding the lock) and nobody holds the worker lock.
fn wait_for_workers_to_leave(env: &TestEnv) {
    let lock = spool_dir(env).join("worker.lock");
    wait_until("the workers have left", CONVERGE, || {
        spool_files(env, "new").is_empty()
            && fs::File::open(&lock).is_ok_and(|file| {
                fs2::FileExt::try_lock_exclusive(&file).is_ok() && fs2::FileExt::unlock(&file).is_ok()
            })
    });
}

/// One line per push the mirror received, naming the refs it updated (from its `pre-receive`).
fn pushes_received(log: &Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A `pre-receive` that logs each push's refs to `log`, then holds the push (in flight, as
/// a slow mirror would) for as long as the gate file exists (at most a minute).
fn hold_pushes_while_the_gate_exists(mirror: &Path, log: &Path, gate: &Path) {
    write_hook(
        mirror,
        "pre-receive",
        &format!(
            "#!/bin/sh\nrefs=$(cut -d' ' -f3 | sort | tr '\\n' ' ')\necho \"$refs\" >> '{log}'\n\
             n=0\nwhile [ -e '{gate}' ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n + 1)); done\n",
            log = log.display(),
            gate = gate.display(),
        ),
    );
}

/// Removes the gate when dropped, so a failing test never leaves a push held.
struct Gate(PathBuf);

impl Gate {
    fn close(path: PathBuf) -> Gate {
        fs::write(&path, "").unwrap();
        Gate(path)
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn a_lone_push_is_pushed_at_once_by_the_worker_the_hook_starts() {
    let env = TestEnv::new();
    write_global_config(&env, NO_LINGER);
    let setup = Setup::file(&env, &[]);
    let pushes = count_mirror_pushes(&setup.mirror);

    // The first push to a mirror never updated.
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    wait_for_workers_to_leave(&env);
    assert_eq!(lines_in(&pushes), 1, "the hook's worker left the push to a later run");
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));

    // A push after a quiet period, to a mirror pushed before: at once again. (Sleeping past
    // the window is how the test makes the period quiet; nothing is timed.)
    std::thread::sleep(COALESCE_WINDOW + Duration::from_millis(200));
    env.commit(&setup.work, "a.txt", "two", "second");
    setup.push(&env, &["main"]);
    wait_for_workers_to_leave(&env);
    assert_eq!(lines_in(&pushes), 2, "the hook's worker left the push to a later run");
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    let status = &setup.status_json(&env)[0];
    assert_eq!(status["update_status"], "finished", "{status:#}");
}

#[test]
fn pushes_arriving_while_a_mirror_push_runs_are_carried_by_exactly_one_following_push() {
    let env = TestEnv::new();
    let setup = Setup::file(&env, &[]);
    let received = env.path("received.log");
    let gate = Gate::close(env.path("gate"));
    hold_pushes_while_the_gate_exists(&setup.mirror, &received, &gate.0);
    let pushes = count_mirror_pushes(&setup.mirror);

    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    wait_until("the first mirror push is in flight", CONVERGE, || {
        pushes_received(&received).len() == 1
    });

    // While it is held: a new commit on main and three new branches, in four pushes.
    env.commit(&setup.work, "a.txt", "two", "second");
    setup.push(&env, &["main"]);
    for branch in ["b1", "b2", "b3"] {
        env.git(&setup.work, &["checkout", "--quiet", "-b", branch, "main"]);
        env.commit(&setup.work, &format!("{branch}.txt"), branch, branch);
        setup.push(&env, &[branch]);
    }
    // The running worker has taken all four from the spool, and started no second push.
    wait_until("the worker has taken the pushes", CONVERGE, || {
        spool_files(&env, "new").is_empty()
    });
    assert_eq!(
        pushes_received(&received).len(),
        1,
        "a second push started while one was in flight"
    );

    drop(gate);
    setup.wait_converged(&env);
    wait_for_workers_to_leave(&env);
    let received = pushes_received(&received);
    assert_eq!(received.len(), 2, "mirror pushes: {received:#?}");
    assert_eq!(
        received[1].trim(),
        "refs/heads/b1 refs/heads/b2 refs/heads/b3 refs/heads/main",
        "the following push carries everything that arrived meanwhile"
    );
    assert_eq!(lines_in(&pushes), 2);
}

#[test]
fn an_explicit_delay_still_waits_and_removing_it_restores_the_default() {
    let env = TestEnv::new();
    write_global_config(&env, NO_LINGER);
    let setup = Setup::file(&env, &["--delay", "1h"]);
    let pushes = count_mirror_pushes(&setup.mirror);
    let upstream = path_str(&setup.upstream);

    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    wait_for_workers_to_leave(&env);
    // Neither the hook's worker nor a cron run pushes before the delay ends.
    gpm_ok(&env, &["run"]);
    assert_eq!(lines_in(&pushes), 0, "pushed before the explicit delay ended");
    assert!(env.refs(&setup.mirror).is_empty());
    let status = &setup.status_json(&env)[0];
    assert_eq!(
        status["pending_refs"],
        serde_json::json!(["refs/heads/main"]),
        "{status:#}"
    );

    // `--delay ""` removes the setting: the default pushes at once.
    gpm_ok(&env, &["set", upstream, "backup", "--delay", ""]);
    let config = fs::read_to_string(setup.upstream.join("push-mirror.toml")).unwrap();
    assert!(!config.contains("delay"), "{config}");
    gpm_ok(&env, &["run"]);
    assert_eq!(lines_in(&pushes), 1);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
}
