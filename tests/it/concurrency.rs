//! Concurrent `run`s and hooks racing a finishing worker: nothing stranded, never two pushes at
//! once to one mirror.

use crate::support::TestEnv;
use crate::support::binary::*;

#[test]
fn concurrent_runs_and_racing_hooks_strand_nothing_and_never_overlap() {
    let env = TestEnv::new();
    let setup = Setup::file(&env, &["--delay", "0s"]);
    // The mirror records any push that starts while another is still inside receive-pack.
    let overlaps = env.path("overlaps.log");
    let inflight = env.path("inflight");
    write_hook(
        &setup.mirror,
        "pre-receive",
        &format!(
            "#!/bin/sh\nmkdir '{0}' 2>/dev/null || echo overlap >> '{1}'\nsleep 0.05\nrmdir '{0}' 2>/dev/null\nexit 0\n",
            inflight.display(),
            overlaps.display()
        ),
    );
    std::thread::scope(|scope| {
        // One runner leaves the work to a busy worker (cron's way), one waits for it.
        let runners: Vec<_> = [&["run"][..], &["run", "--wait"][..]]
            .into_iter()
            .map(|args| {
                let env = &env;
                scope.spawn(move || {
                    for _ in 0..15 {
                        let out = gpm_output(env, args);
                        assert!(out.status.success(), "{}", stderr(&out));
                    }
                })
            })
            .collect();
        for i in 0..20 {
            env.commit(&setup.work, "a.txt", &i.to_string(), &format!("push {i}"));
            let branch = format!("HEAD:refs/heads/b{}", i % 4);
            setup.push(&env, &["main", &branch]);
        }
        for runner in runners {
            runner.join().unwrap();
        }
    });
    setup.wait_converged(&env);
    // Once converged, no entry may be left for cron to find.
    gpm_ok(&env, &["run", "--wait"]);
    assert!(spool_files(&env, "new").is_empty(), "entries stranded in the spool");
    assert!(spool_files(&env, "claimed").is_empty(), "entries stranded in claimed/");
    assert!(!overlaps.exists(), "two pushes to one mirror overlapped");
    let status = &setup.status_json(&env)[0];
    assert_eq!(status["pending_refs"], serde_json::json!([]), "{status:#}");
}
