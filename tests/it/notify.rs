//! Telling people (docs/notifications.md), against real receivers: mail through msmtp's
//! sendmail to aiosmtpd, webhooks over HTTP and HTTPS, a notify command; once per incident across
//! kill -9, one digest for many mirrors failing for one cause, an hourly limit, a notifier that
//! hangs without delaying anyone, `notify-test`, and the pusher warned by the hook.

use crate::support::binary::*;
use crate::support::{SmtpServer, TestCa, TestEnv, WebhookReceiver, path_str, require_or_skip, wait_until};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FAILPOINT: &str = git_push_mirror::util::failpoint::ENV;

/// The global configuration: `fail_after` failed updates make a mirror `failed`, retries are an
/// hour away (so each `run` makes one attempt, for the push it follows), the worker leaves as
/// soon as it is idle, and `[notify]` holds `notify`.
fn configure(env: &TestEnv, fail_after: u32, notify: &str) {
    write_global_config(
        env,
        &format!(
            "worker_linger = \"0s\"\n\n[retry]\ninitial = \"1h\"\nmax = \"1h\"\nfail_after = {fail_after}\njitter = false\n\n\
             [notify]\n{notify}"
        ),
    );
}

/// `<name>.git` whose mirror `backup` (`<name>-mirror.git`) does not exist: every update fails
/// until [`heal`] creates it. The hook spools without starting a worker.
fn failing(env: &TestEnv, name: &str) -> Setup {
    let setup = Setup::spooling_only(env, name);
    fs::remove_dir_all(&setup.mirror).unwrap();
    setup
}

fn heal(env: &TestEnv, setup: &Setup) {
    env.git(env.root(), &["init", "--quiet", "--bare", path_str(&setup.mirror)]);
}

/// Commits and pushes (spooled by the hook); returns the push's stderr (the pusher's `remote:` lines).
fn push(env: &TestEnv, setup: &Setup, n: usize) -> String {
    env.commit(
        &setup.work,
        "file.txt",
        &format!("change {n}\n"),
        &format!("change {n}"),
    );
    let out = env.git_output(&setup.work, &["push", "origin", "main"]);
    assert!(out.status.success(), "push: {}", stderr(&out));
    stderr(&out)
}

fn log_text(env: &TestEnv) -> String {
    fs::read_to_string(state_base(env).join("git-push-mirror.log")).unwrap_or_default()
}

/// The value of one sample of `metrics` (the line's name and labels as written).
fn metric(env: &TestEnv, series: &str) -> Option<f64> {
    let out = gpm_output(env, &["metrics"]);
    stdout(&out)
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// An executable script in the test's root.
fn script(env: &TestEnv, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = env.path(name);
    fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A notify command that keeps each notice's stdin and environment in `<dir>/<n>.json` and `<n>.env`.
fn recording_command(env: &TestEnv) -> (PathBuf, PathBuf) {
    let dir = env.path("told");
    fs::create_dir_all(&dir).unwrap();
    let command = script(
        env,
        "record-notice",
        &format!(
            "n=$(mktemp '{dir}/XXXXXX')\nenv > \"$n.env\"\ncat > \"$n.json\"\n",
            dir = dir.display()
        ),
    );
    (command, dir)
}

/// The notices a [`recording_command`] got, oldest first.
fn recorded(dir: &Path) -> Vec<(serde_json::Value, String)> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok());
    files
        .iter()
        .map(|json| {
            let text = fs::read_to_string(json).unwrap();
            let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            (
                value,
                fs::read_to_string(json.with_extension("env")).unwrap_or_default(),
            )
        })
        .collect()
}

fn subject(message: &str) -> &str {
    message
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("")
}

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
fn a_webhook_gets_the_json_with_text_over_http_and_https_and_a_failed_delivery_is_counted_and_retried() {
    let openssl = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))
        .map(drop);
    if !require_or_skip("openssl", openssl) {
        return;
    }
    let env = TestEnv::new();
    let plain = WebhookReceiver::start();
    let token = secret_file(&env, "webhook.token", "hook-s3cret-token", 0o600);
    let webhook = |url: &str, ca_file: Option<&Path>| {
        let ca = ca_file
            .map(|f| format!("ca_file = \"{}\"\n", f.display()))
            .unwrap_or_default();
        configure(
            &env,
            1,
            &format!(
                "webhook_url = \"{url}\"\nwebhook_token_file = \"{}\"\n{ca}digest_window = \"1h\"\n",
                token.display()
            ),
        );
    };
    webhook(&plain.url("hooks/T0/B0/s3cretpath"), None);
    let setup = failing(&env, "app");
    push(&env, &setup, 1);
    assert_eq!(gpm(&env).arg("run").status().unwrap().code(), Some(1));

    let requests = plain.requests();
    assert_eq!(requests.len(), 1, "{}", log_text(&env));
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/hooks/T0/B0/s3cretpath")
    );
    assert_eq!(request.header("authorization"), Some("Bearer hook-s3cret-token"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    let notice = request.json();
    let upstream = fs::canonicalize(&setup.upstream).unwrap();
    assert_eq!(notice["event"], "failed");
    assert_eq!(notice["repo"], path_str(&upstream));
    assert_eq!(notice["mirror"], "backup");
    assert_eq!(notice["url"], format!("file://{}", setup.mirror.display()));
    assert_eq!(notice["failures"], 1);
    assert_eq!(notice["count"], 1);
    assert_eq!(notice["mirrors"].as_array().unwrap().len(), 1);
    assert!(notice["since"].as_str().unwrap().ends_with('Z'), "{notice}");
    assert!(
        notice["error"]
            .as_str()
            .unwrap()
            .contains("does not appear to be a git repository")
    );
    let host = notice["host"].as_str().unwrap();
    assert!(!host.is_empty());
    let text = notice["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "{host}: mirror backup of {} failed since ",
            upstream.display()
        )),
        "{text}"
    );

    // HTTPS with a CA of the test's own: without `ca_file` the delivery fails (counted, kept)...
    let ca = TestCa::create(&env, &env.path("tls"));
    let tls = WebhookReceiver::start_tls(&ca);
    webhook(&tls.url("hooks/T0/B0/s3cretpath"), None);
    heal(&env, &setup);
    push(&env, &setup, 2);
    assert!(gpm(&env).arg("run").status().unwrap().success());
    assert!(tls.requests().is_empty());
    assert_eq!(
        metric(&env, "git_push_mirror_notify_failures_total{channel=\"webhook\"}"),
        Some(1.0)
    );
    assert_eq!(metric(&env, "git_push_mirror_notify_waiting"), Some(1.0));
    let log = log_text(&env);
    let shown = tls.url("…");
    assert!(log.contains(&format!("webhook {shown} could not tell")), "{log}");

    // ...and with it, the next run delivers the notice that waited.
    webhook(&tls.url("hooks/T0/B0/s3cretpath"), Some(&ca.ca_file));
    assert!(gpm(&env).arg("run").status().unwrap().success());
    let requests = tls.requests();
    assert_eq!(requests.len(), 1, "{}", log_text(&env));
    assert_eq!(requests[0].json()["event"], "recovered");
    assert_eq!(requests[0].header("authorization"), Some("Bearer hook-s3cret-token"));
    assert_eq!(metric(&env, "git_push_mirror_notify_waiting"), Some(0.0));
    assert_eq!(
        metric(&env, "git_push_mirror_notify_sent_total{channel=\"webhook\"}"),
        Some(2.0)
    );

    for secret in ["hook-s3cret-token", "s3cretpath"] {
        let leaked = files_containing(&state_base(&env), secret);
        assert!(leaked.is_empty(), "{secret} is stored in {leaked:?}");
    }
}

#[test]
fn a_notify_command_gets_one_json_object_on_stdin_and_only_the_allowlisted_environment() {
    let env = TestEnv::new();
    let (command, told) = recording_command(&env);
    configure(&env, 1, &format!("command = \"{}\"\n", command.display()));
    let setup = failing(&env, "app");
    push(&env, &setup, 1);
    let status = gpm(&env)
        .arg("run")
        .env("MIRROR_TOKEN", "do-not-leak-this")
        .env("SSH_AUTH_SOCK", "/tmp/agent.sock")
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let notices = recorded(&told);
    assert_eq!(notices.len(), 1, "{}", log_text(&env));
    let (notice, environment) = &notices[0];
    assert_eq!(notice["event"], "failed");
    assert_eq!(notice["mirror"], "backup");
    assert!(notice["text"].as_str().unwrap().contains("failed"));
    let json = fs::read_dir(&told)
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))
        .unwrap()
        .path();
    let raw = fs::read_to_string(json).unwrap();
    assert_eq!(raw.lines().count(), 1, "one JSON object, one line: {raw}");
    let vars: Vec<&str> = environment
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    assert!(environment.contains("GIT_PUSH_MIRROR_EVENT=failed\n"), "{environment}");
    for kept in ["PATH", "HOME"] {
        assert!(vars.contains(&kept), "{kept} missing: {environment}");
    }
    for dropped in ["MIRROR_TOKEN", "SSH_AUTH_SOCK"] {
        assert!(!vars.contains(&dropped), "{dropped} reached the command: {environment}");
    }
    assert!(!environment.contains("do-not-leak-this"));
    assert_eq!(
        metric(&env, "git_push_mirror_notify_failures_total{channel=\"command\"}"),
        Some(0.0)
    );

    // A broken configuration and a corrupt state file are told once each.
    fs::write(setup.upstream.join("push-mirror.toml"), "[mirror.backup\n").unwrap();
    for _ in 0..2 {
        assert_eq!(gpm(&env).arg("run").status().unwrap().code(), Some(0));
    }
    let events: Vec<String> = recorded(&told)
        .iter()
        .map(|(n, _)| n["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, ["failed", "config_error"], "{}", log_text(&env));
    let notice = &recorded(&told)[1].0;
    assert!(
        notice["error"].as_str().unwrap().contains("push-mirror.toml:1:"),
        "{notice}"
    );
    assert!(
        notice["text"]
            .as_str()
            .unwrap()
            .contains("the configuration cannot be read"),
        "{notice}"
    );
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

#[test]
fn notify_test_says_what_happened_for_each_channel() {
    if !require_or_skip("aiosmtpd and msmtp's sendmail", SmtpServer::available()) {
        return;
    }
    let env = TestEnv::new();
    let out = gpm_output(&env, &["notify-test"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no notification channel is configured"),
        "{}",
        stderr(&out)
    );

    let smtp = SmtpServer::start(&env);
    let receiver = WebhookReceiver::start();
    let (command, told) = recording_command(&env);
    configure(
        &env,
        1,
        &format!(
            "command = \"{}\"\nwebhook_url = \"{}\"\nemail_to = [\"ops@example.com\"]\nsendmail_command = {}\n",
            command.display(),
            receiver.url("hooks/secret-path"),
            smtp.sendmail_command(&env)
        ),
    );
    let out = gpm_output(&env, &["notify-test"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let shown = receiver.url("…");
    for line in [
        format!("command {}: sent", command.display()),
        format!("webhook {shown}: sent"),
        "mail to ops@example.com: sent".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(!text.contains("secret-path"));
    let sample = receiver.requests()[0].json();
    assert_eq!(sample["test"], true);
    assert!(
        sample["text"]
            .as_str()
            .unwrap()
            .starts_with("TEST from git-push-mirror notify-test")
    );
    assert_eq!(recorded(&told).len(), 1);
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert!(
        subject(&mails[0]).contains("TEST from git-push-mirror notify-test"),
        "{}",
        mails[0]
    );

    receiver.answer_with(500);
    let out = gpm_output(&env, &["notify-test"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "webhook {shown}: FAILED: {shown} answered HTTP 500: refused by the test"
        )),
        "{text}"
    );
    assert!(
        text.contains("mail to ops@example.com: sent"),
        "the other channels still go: {text}"
    );

    // A redirect is not followed (it would take the token elsewhere) and says where it pointed.
    let elsewhere = WebhookReceiver::start();
    receiver.redirect_to(&elsewhere.url("collect/secret-too"));
    let out = gpm_output(&env, &["notify-test"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let expected = format!(
        "webhook {shown}: FAILED: {shown} answered with a redirect (HTTP 302) to {}",
        elsewhere.url("…")
    );
    assert!(text.contains(&expected), "{text}");
    assert!(elsewhere.requests().is_empty(), "followed the redirect");
    assert!(!text.contains("secret"), "{text}");
}

#[test]
fn a_webhook_goes_through_the_proxy_the_environment_names() {
    let env = TestEnv::new();
    let proxy = WebhookReceiver::start();
    configure(&env, 1, "webhook_url = \"http://chat.example.invalid/hooks/abc\"\n");
    let out = gpm(&env)
        .arg("notify-test")
        .env("http_proxy", proxy.url(""))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    // ureq tunnels through the proxy (CONNECT), then posts.
    let requests = proxy.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("CONNECT", "chat.example.invalid:80")
    );
    assert_eq!(
        (requests[1].method.as_str(), requests[1].path.as_str()),
        ("POST", "/hooks/abc")
    );
    assert_eq!(requests[1].header("host"), Some("chat.example.invalid"));
    assert_eq!(requests[1].json()["test"], true);

    // A host in no_proxy is reached directly.
    let direct = WebhookReceiver::start();
    configure(&env, 1, &format!("webhook_url = \"{}\"\n", direct.url("hooks/abc")));
    let out = gpm(&env)
        .arg("notify-test")
        .env("http_proxy", proxy.url(""))
        .env("no_proxy", "127.0.0.1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert_eq!((direct.requests().len(), proxy.requests().len()), (1, 2));
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
