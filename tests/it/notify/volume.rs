//! Notices in bulk and notifiers that misbehave: one digest for many mirrors failing for one cause,
//! the hourly limit, and a hanging notifier that delays nothing.

use super::*;

#[test]
fn forty_fleet_mirrors_failing_for_one_cause_send_one_digest_not_forty() {
    let env = TestEnv::new();
    let (command, told) = recording_command(&env);
    let template = env.bare_repo("template.git");
    let work = env.clone_work(&template, "template-work");
    env.commit(&work, "a.txt", "a", "a");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    let root = env.path("repos");
    for i in 0..40 {
        let repo = root.join(format!("acme/app{i:02}.git"));
        env.git(
            env.root(),
            &["clone", "--quiet", "--bare", path_str(&template), path_str(&repo)],
        );
    }
    write_global_config(
        &env,
        &format!(
            "worker_linger = \"0s\"\nrepos_root = \"{}\"\n\n[retry]\ninitial = \"1h\"\nmax = \"1h\"\nfail_after = 1\n\n\
             [mirror.backup]\nrepos = [\"acme/*\"]\nurl = \"file://{}/gone/{{name}}.git\"\n\n\
             [notify]\ncommand = \"{}\"\ndigest_window = \"1h\"\n",
            root.display(),
            env.root().display(),
            command.display()
        ),
    );
    assert_eq!(gpm(&env).arg("run").status().unwrap().code(), Some(1));
    let statuses: Vec<serde_json::Value> =
        serde_json::from_slice(&gpm_output(&env, &["status", "--json"]).stdout).unwrap();
    assert_eq!(statuses.len(), 40);
    assert!(statuses.iter().all(|s| s["update_status"] == "failed"), "{statuses:#?}");
    let notices = recorded(&told);
    assert_eq!(notices.len(), 1, "one digest, not {}", notices.len());
    let digest = &notices[0].0;
    assert_eq!(digest["event"], "failed");
    assert_eq!(digest["count"], 40);
    let repos: std::collections::BTreeSet<&str> = digest["mirrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["repo"].as_str().unwrap())
        .collect();
    assert_eq!(repos.len(), 40);
    let text = digest["text"].as_str().unwrap();
    assert!(text.contains(": 40 mirrors failed since "), "{text}");
    assert!(text.ends_with("and 37 more)"), "{text}");
}

#[test]
fn over_the_hourly_limit_notices_wait_counted_and_logged() {
    let env = TestEnv::new();
    let (command, told) = recording_command(&env);
    configure(
        &env,
        1,
        &format!(
            "command = \"{}\"\nmax_per_hour = 1\ndigest_window = \"1h\"\n",
            command.display()
        ),
    );
    // Two causes: a mirror that does not exist, and one whose hook refuses every push.
    let gone = failing(&env, "gone");
    let refusing = Setup::spooling_only(&env, "refusing");
    write_hook(
        &refusing.mirror,
        "pre-receive",
        "#!/bin/sh\necho 'policy: no pushes today' >&2\nexit 1\n",
    );
    push(&env, &gone, 1);
    push(&env, &refusing, 1);
    assert_eq!(gpm(&env).arg("run").status().unwrap().code(), Some(1));
    assert_eq!(recorded(&told).len(), 1, "{}", log_text(&env));
    assert_eq!(metric(&env, "git_push_mirror_notify_waiting"), Some(1.0));
    assert!(log_text(&env).contains("the limit of 1 notices per hour is reached; 1 notice(s) wait"));
    assert_eq!(gpm(&env).arg("run").status().unwrap().code(), Some(0));
    assert_eq!(recorded(&told).len(), 1, "still within the hour");
    assert_eq!(metric(&env, "git_push_mirror_notify_waiting"), Some(1.0), "not lost");
}

#[test]
fn a_notifier_that_hangs_never_delays_a_healthy_mirror_and_the_worker_leaves_in_bounded_time() {
    let env = TestEnv::new();
    let started = env.path("notifier-started");
    let hang = script(
        &env,
        "hang",
        &format!("echo $$ > '{}'\nexec sleep 100000\n", started.display()),
    );
    // Retries of the broken mirror keep the worker draining for about 10 s.
    write_global_config(
        &env,
        &format!(
            "worker_linger = \"10s\"\n\n[retry]\ninitial = \"3s\"\nmax = \"1h\"\npermanent_retry = \"3s\"\nfail_after = 1\njitter = false\n\n\
             [notify]\ncommand = \"{}\"\ntimeout = \"20s\"\ndigest_window = \"0s\"\n",
            hang.display()
        ),
    );
    let broken = failing(&env, "broken");
    let healthy = Setup::spooling_only(&env, "healthy");
    push(&env, &broken, 1);
    let mut worker = gpm(&env).arg("run").spawn().unwrap();
    wait_until("the notifier runs (and hangs)", CONVERGE, || started.exists());
    let pid: i32 = fs::read_to_string(&started).unwrap().trim().parse().unwrap();
    // The worker is still draining (retrying the broken mirror): a push now is taken by it while
    // its notifier hangs.
    push(&env, &healthy, 1);
    healthy.wait_converged(&env);
    // SAFETY: signal 0 only asks whether the process exists.
    assert_eq!(
        unsafe { libc::kill(pid, 0) },
        0,
        "the notifier still hangs when the mirror converged"
    );
    assert!(worker.try_wait().unwrap().is_none(), "the same worker pushed it");
    wait_until("the worker leaves", Duration::from_secs(120), || {
        worker.try_wait().unwrap().is_some()
    });
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "the hung notifier was killed");
    let log = log_text(&env);
    assert!(log.contains("did not finish within 20s and was killed"), "{log}");
    assert_eq!(
        metric(&env, "git_push_mirror_notify_failures_total{channel=\"command\"}"),
        Some(1.0)
    );
}
