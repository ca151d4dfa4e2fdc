//! What is told: one failed and one recovered notice across kill -9, quarantined state and spool
//! files, reminders, and the pusher's warning about a failing mirror.

use super::*;

const FAILPOINT: &str = git_push_mirror::util::failpoint::ENV;

#[test]
fn a_mirror_failing_for_twenty_runs_mails_one_failed_and_one_recovered_across_kill_9() {
    if !require_or_skip("aiosmtpd and msmtp's sendmail", SmtpServer::available()) {
        return;
    }
    let env = TestEnv::new();
    let smtp = SmtpServer::start(&env);
    // Notices wait for the worker to leave (a long digest window), so the kills below are exact.
    configure(
        &env,
        3,
        &format!(
            "email_to = [\"ops@example.com\"]\nemail_from = \"git-push-mirror@test.example\"\n\
             sendmail_command = {}\ndigest_window = \"1h\"\n",
            smtp.sendmail_command(&env)
        ),
    );
    let setup = failing(&env, "app");
    for run in 1..=20 {
        push(&env, &setup, run);
        // A missing repository is a permanent failure: run 1 reaches `failed` at once and is
        // killed right after recording it (its notice queued, not sent); run 2 is killed as its
        // notifier is about to send it; run 3 sends it.
        let failpoint = match run {
            1 => Some("update.after_outcome"),
            2 => Some("notify.before_send"),
            _ => None,
        };
        let mut cmd = gpm(&env);
        cmd.arg("run");
        if let Some(failpoint) = failpoint {
            cmd.env(FAILPOINT, failpoint);
        }
        let status = cmd.status().unwrap();
        match failpoint {
            Some(failpoint) => assert_eq!(status.signal(), Some(9), "run {run} did not reach {failpoint}"),
            None => assert_eq!(
                status.code(),
                Some(1),
                "run {run}: the update fails\n{}",
                log_text(&env)
            ),
        }
        let mails = smtp.messages().len();
        let expected = usize::from(run >= 3);
        assert_eq!(mails, expected, "after run {run}\n{}", log_text(&env));
    }
    assert_eq!(setup.status_json(&env)[0]["update_status"], "failed");

    heal(&env, &setup);
    push(&env, &setup, 21);
    assert!(gpm(&env).arg("run").status().unwrap().success(), "{}", log_text(&env));
    setup.wait_converged(&env);
    push(&env, &setup, 22);
    assert!(gpm(&env).arg("run").status().unwrap().success());

    let messages = smtp.messages();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let (failed, recovered) = (&messages[0], &messages[1]);
    let upstream = fs::canonicalize(&setup.upstream).unwrap();
    let failed_subject = format!("mirror backup of {} failed since ", upstream.display());
    assert!(subject(failed).contains(&failed_subject), "{failed}");
    assert!(subject(recovered).contains(" recovered (failing since "), "{recovered}");
    for message in [failed, recovered] {
        let (headers, body) = message.split_once("\n\n").unwrap();
        for header in [
            "To: ops@example.com",
            "From: git-push-mirror@test.example",
            "Date: ",
            "Message-ID: <",
            "Content-Type: text/plain; charset=UTF-8",
        ] {
            assert!(
                headers.lines().any(|l| l.starts_with(header)),
                "no {header:?} in\n{headers}"
            );
        }
        assert!(body.contains(&format!("repo      {}", upstream.display())), "{body}");
    }
    assert!(failed.contains("does not appear to be a git repository"), "{failed}");
    assert!(failed.contains("failures  1"), "{failed}");
    assert!(recovered.contains("failures  20"), "the incident's count: {recovered}");
}

#[test]
fn corrupt_state_and_spool_files_are_told_as_quarantined_and_a_failed_mirror_is_reminded() {
    let env = TestEnv::new();
    let (command, told) = recording_command(&env);
    configure(
        &env,
        1,
        &format!("command = \"{}\"\nremind_every = \"1s\"\n", command.display()),
    );
    let setup = Setup::spooling_only(&env, "app");
    push(&env, &setup, 1);
    assert!(gpm(&env).arg("run").status().unwrap().success());
    setup.wait_converged(&env);
    assert!(recorded(&told).is_empty(), "nothing to tell");

    let state = state_base(&env).join("state/repos");
    let repo_dir = fs::read_dir(&state).unwrap().flatten().next().unwrap().path();
    fs::write(repo_dir.join("mirrors/backup.json"), "{ not json").unwrap();
    fs::write(spool_dir(&env).join("new/0000-junk"), "junk").unwrap();
    push(&env, &setup, 2);
    gpm(&env).arg("run").status().unwrap();
    setup.wait_converged(&env);
    let notices = recorded(&told);
    let events: Vec<&str> = notices.iter().map(|(n, _)| n["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["quarantined", "quarantined"], "{}", log_text(&env));
    let errors: Vec<&str> = notices.iter().map(|(n, _)| n["error"].as_str().unwrap()).collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("backup.json was corrupt") && e.contains("/state/bad/")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("spool entry 0000-junk is unusable")),
        "{errors:?}"
    );

    // A mirror still failed is told again after remind_every, by a run.
    fs::remove_dir_all(&setup.mirror).unwrap();
    push(&env, &setup, 3);
    assert_eq!(gpm(&env).arg("run").status().unwrap().code(), Some(1));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(gpm(&env).arg("run").status().unwrap().code(), Some(0));
    let notices = recorded(&told);
    let last: Vec<&serde_json::Value> = notices.iter().skip(2).map(|(n, _)| n).collect();
    assert_eq!(last.len(), 2, "{}", log_text(&env));
    assert_eq!(
        (last[0]["event"].as_str(), last[0]["reminder"].as_bool()),
        (Some("failed"), Some(false))
    );
    assert_eq!(
        (last[1]["event"].as_str(), last[1]["reminder"].as_bool()),
        (Some("failed"), Some(true))
    );
    assert!(
        last[1]["text"].as_str().unwrap().contains("mirror backup of"),
        "{}",
        last[1]
    );
    assert!(
        last[1]["text"].as_str().unwrap().contains(" still failing since "),
        "{}",
        last[1]
    );
}

#[test]
fn a_push_to_a_repository_with_a_failing_mirror_warns_the_pusher_and_a_healthy_one_prints_nothing() {
    let env = TestEnv::new();
    configure(&env, 1, "");
    let setup = failing(&env, "app");
    let first = push(&env, &setup, 1);
    assert!(!first.contains("git-push-mirror:"), "nothing failed yet: {first}");
    assert_eq!(gpm(&env).arg("run").status().unwrap().code(), Some(1));

    let warned = push(&env, &setup, 2);
    let line = warned
        .lines()
        .find(|l| l.contains("git-push-mirror:"))
        .unwrap_or_else(|| panic!("no warning in:\n{warned}"));
    assert!(
        line.starts_with("remote: git-push-mirror: mirror backup is failing since "),
        "{line}"
    );
    assert!(line.contains("does not appear to be a git repository"), "{line}");
    assert!(
        line.trim_end().ends_with("; this push is recorded and will be retried"),
        "{line}"
    );
    assert_eq!(warned.lines().filter(|l| l.contains("git-push-mirror:")).count(), 1);

    heal(&env, &setup);
    assert!(gpm(&env).arg("run").status().unwrap().success());
    setup.wait_converged(&env);
    let quiet = push(&env, &setup, 3);
    assert!(
        !quiet.contains("remote:"),
        "a healthy repository's hook prints nothing: {quiet}"
    );

    // warn_pushers = false: no warning even while failing.
    fs::remove_dir_all(&setup.mirror).unwrap();
    push(&env, &setup, 4);
    assert_eq!(gpm(&env).arg("run").status().unwrap().code(), Some(1));
    assert!(push(&env, &setup, 5).contains("is failing since"));
    let config = fs::read_to_string(env.home().join(".config/git-push-mirror/config.toml")).unwrap();
    write_global_config(&env, &format!("warn_pushers = false\n{config}"));
    let silent = push(&env, &setup, 6);
    assert!(!silent.contains("git-push-mirror:"), "{silent}");
}
