//! The delivery channels: a webhook's JSON over HTTP, HTTPS and a proxy, a notify command's stdin
//! and environment, and `notify-test` saying what happened on each.

use super::*;

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
