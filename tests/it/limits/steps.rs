//! A repository larger than what the mirror accepts arrives in steps: over file://, smart HTTP and
//! SSH, and through a proxy answering 413.

use super::*;

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
