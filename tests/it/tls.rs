//! Mirrors behind a private CA (a company GitLab with its own certificate authority): a real
//! nginx terminates TLS with a certificate from a CA made in the test, `git http-backend`
//! serves behind it through fcgiwrap. The mirror is reached with its `ca_file`, or with
//! `http.sslCAInfo` in the upstream repository's own git configuration, git-lfs included; without
//! either every update fails with a message that says what to do, and `check` names the CA in use.

use crate::support::binary::*;
use crate::support::{HttpGitServer, HttpsGitServer, TestEnv, path_str, require_or_skip, wait_until};
use std::path::Path;

const LFS_USER: &str = "lfs-bot";
const LFS_PASSWORD: &str = "lfs-over-tls-s3cret";

/// Fails fast: one failed update makes the status `failed`.
const FAIL_FAST: &str = "worker_linger = \"2s\"\n\
                         [retry]\ninitial = \"100ms\"\nmax = \"200ms\"\nfail_after = 1\njitter = false\n";

fn tls_available() -> bool {
    require_or_skip("nginx, fcgiwrap and openssl", HttpsGitServer::available())
}

fn lfs_available() -> bool {
    require_or_skip("git-lfs", crate::support::lfs::available())
}

/// `upstream.git` with the hook, `srv/mirror.git` served over HTTPS (its LFS API behind the
/// same TLS, with its own user name and password) added as mirror `backup` without a CA, and a
/// work clone that tracks `*.bin` with LFS and has committed `a.bin` (not pushed yet).
struct TlsSetup {
    setup: Setup,
    https: HttpsGitServer,
    lfs: HttpGitServer,
    a: LfsFile,
}

fn tls_setup(env: &TestEnv) -> TlsSetup {
    write_global_config(env, FAIL_FAST);
    let mirror = env.bare_repo("srv/mirror.git");
    let lfs = HttpGitServer::start_with_lfs(env, &env.path("srv"), LFS_USER, LFS_PASSWORD);
    let https = HttpsGitServer::start(env, &env.path("srv"), Some(&lfs));
    let token = secret_file(env, "lfs.token", LFS_PASSWORD, 0o600);
    let flags = ["--username", LFS_USER, "--password-file", path_str(&token)];
    let setup = Setup::with_url(
        env,
        env.bare_repo("upstream.git"),
        mirror,
        &https.url("mirror.git"),
        &flags,
    );
    track_lfs(env, &setup.work);
    let a = commit_lfs_file(env, &setup.work, "a.bin", "a");
    TlsSetup { setup, https, lfs, a }
}

fn wait_failed(env: &TestEnv, setup: &Setup) -> String {
    wait_until("the update fails", CONVERGE, || {
        setup.status_json(env)[0]["update_status"] == "failed"
    });
    setup.last_error(env)
}

#[test]
fn an_https_mirror_behind_a_private_ca_fails_clearly_then_works_with_ca_file_for_git_and_git_lfs() {
    if !tls_available() || !lfs_available() {
        return;
    }
    let env = TestEnv::new();
    let TlsSetup { setup, https, lfs, a } = tls_setup(&env);
    setup.push(&env, &["main"]);

    // No CA configured: the system's CAs do not know this one.
    let error = wait_failed(&env, &setup);
    assert!(
        error.contains("not signed by a CA that git trusts") && error.contains("--ca-file"),
        "the update's error says what to do: {error}"
    );
    assert!(env.refs(&setup.mirror).is_empty());
    let check = gpm_output(&env, &["check", path_str(&setup.upstream)]);
    let text = stdout(&check);
    assert_eq!(check.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED"), "{text}");
    assert!(
        text.contains("CA in use: the system's default CA certificates"),
        "check names the CA in use:\n{text}"
    );

    // Another CA than the server's: check names the mirror's ca_file.
    let other = crate::support::TestCa::create(&env, &env.path("other-ca"));
    gpm_ok(
        &env,
        &[
            "set",
            path_str(&setup.upstream),
            "backup",
            "--ca-file",
            path_str(&other.ca_file),
        ],
    );
    let check = gpm_output(&env, &["check", path_str(&setup.upstream)]);
    assert!(
        stdout(&check).contains(&format!(
            "CA in use: {} (the mirror's ca_file)",
            path_str(&other.ca_file)
        )),
        "{}",
        stdout(&check)
    );

    // The server's CA: the refs and the LFS objects (through git-lfs) arrive.
    gpm_ok(
        &env,
        &[
            "set",
            path_str(&setup.upstream),
            "backup",
            "--ca-file",
            path_str(https.ca_file()),
        ],
    );
    let sync = gpm_output(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(sync.status.code(), Some(0), "{}\n{}", stdout(&sync), https.logs());
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    assert!(lfs.lfs().objects().contains_key(&a.oid), "git-lfs trusted the CA too");
    let config = std::fs::read_to_string(setup.upstream.join("push-mirror.toml")).unwrap();
    assert!(
        config.contains(&format!("ca_file = {:?}", path_str(https.ca_file()))),
        "{config}"
    );
    let check = gpm_ok(&env, &["check", path_str(&setup.upstream)]);
    assert!(check.contains("reachable (1 branches)"), "{check}");

    // And through the hook.
    let b = commit_lfs_file(&env, &setup.work, "b.bin", "b");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    wait_until("b's LFS object lands", CONVERGE, || {
        lfs.lfs().objects().contains_key(&b.oid)
    });
}

#[test]
fn http_ssl_ca_info_in_the_upstreams_own_git_configuration_reaches_every_git_call() {
    if !tls_available() || !lfs_available() {
        return;
    }
    let env = TestEnv::new();
    let TlsSetup { setup, https, lfs, a } = tls_setup(&env);
    // The way an admin configures git for one host, in the repository's own configuration.
    let key = format!("http.{}.sslCAInfo", https.url(""));
    env.git(&setup.upstream, &["config", &key, path_str(https.ca_file())]);
    // Enough branches to be pushed through a view of the repository (see `git::push`).
    for i in 0..40 {
        env.git(&setup.work, &["branch", &format!("b{i:02}")]);
    }
    setup.push(&env, &["--all"]);
    setup.wait_converged(&env);
    assert!(
        lfs.lfs().objects().contains_key(&a.oid),
        "git-lfs read the repository's configuration"
    );
    let check = gpm_ok(&env, &["check", path_str(&setup.upstream)]);
    assert!(check.contains("reachable (41 branches)"), "{check}");

    // The observation (`ls-remote`) sees it too: a sync lists the mirror first.
    let sync = gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert!(sync.contains("result: ok"), "{sync}");

    // Without it, check says which CA git used instead.
    env.git(&setup.upstream, &["config", "--unset", &key]);
    env.git(
        &setup.upstream,
        &["config", "http.sslCAInfo", "/etc/ssl/certs/ca-certificates.crt"],
    );
    let check = gpm_output(&env, &["check", path_str(&setup.upstream)]);
    let expected = format!(
        "CA in use: /etc/ssl/certs/ca-certificates.crt (http.sslCAInfo in {})",
        path_str(&setup.upstream.join("config"))
    );
    assert!(stdout(&check).contains(&expected), "{}", stdout(&check));
}

#[test]
fn a_ca_file_that_is_missing_or_not_a_certificate_is_refused_at_add_and_set() {
    if !tls_available() {
        return;
    }
    let env = TestEnv::new();
    let upstream = env.bare_repo("upstream.git");
    let url = "https://gitlab.example.com/acme/app.git";
    let add = |ca_file: &Path| {
        gpm_output(
            &env,
            &[
                "add",
                path_str(&upstream),
                "gitlab",
                url,
                "--ca-file",
                path_str(ca_file),
            ],
        )
    };
    let out = add(&env.path("missing.pem"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read the ca_file"), "{}", stderr(&out));
    let not_pem = env.path("ca.der");
    std::fs::write(&not_pem, [0x30, 0x82, 0x01, 0x0a]).unwrap();
    let out = add(&not_pem);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("holds no PEM certificate"), "{}", stderr(&out));
    assert!(!upstream.join("push-mirror.toml").exists(), "nothing was written");

    let ca = crate::support::TestCa::create(&env, &env.path("ca"));
    let out = add(&ca.ca_file);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = gpm_output(
        &env,
        &["set", path_str(&upstream), "gitlab", "--ca-file", path_str(&not_pem)],
    );
    assert_eq!(out.status.code(), Some(2));
    // Removed later, the update and check say so.
    std::fs::remove_file(&ca.ca_file).unwrap();
    let check = gpm_output(&env, &["check", path_str(&upstream)]);
    assert_eq!(check.status.code(), Some(1));
    assert!(stdout(&check).contains("cannot read the ca_file"), "{}", stdout(&check));
    // `--ca-file ""` removes the setting.
    gpm_ok(&env, &["set", path_str(&upstream), "gitlab", "--ca-file", ""]);
    let config = std::fs::read_to_string(upstream.join("push-mirror.toml")).unwrap();
    assert!(!config.contains("ca_file"), "{config}");
}

/// A mirror given the CA's certificate (`ca_file`), whose server presents a certificate of
/// `kind` signed by that CA: the update fails at once (permanent) with the hint for the real
/// cause, never "not signed by a CA that git trusts", and `check` says the same.
fn certificate_problem_is_named(kind: crate::support::ServerCertificate, expected: &str) {
    let env = TestEnv::new();
    write_global_config(&env, FAIL_FAST);
    let mirror = env.bare_repo("srv/mirror.git");
    let https = HttpsGitServer::start_with_certificate(&env, &env.path("srv"), kind);
    let setup = Setup::with_url(
        &env,
        env.bare_repo("upstream.git"),
        mirror,
        &https.url("mirror.git"),
        &["--ca-file", path_str(https.ca_file())],
    );
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    let error = wait_failed(&env, &setup);
    assert!(error.contains(expected), "{kind:?}: {error}");
    assert!(!error.contains("not signed by a CA"), "{kind:?}: {error}");
    let status = &setup.status_json(&env)[0];
    assert_eq!(status["failure_class"], "permanent", "{status:#}");
    assert!(env.refs(&setup.mirror).is_empty());
    let check = gpm_output(&env, &["check", path_str(&setup.upstream)]);
    assert_eq!(check.status.code(), Some(1));
    assert!(stdout(&check).contains(expected), "{kind:?}: {}", stdout(&check));
}

#[test]
fn a_certificate_from_the_mirrors_own_ca_for_another_host_name_gets_its_own_hint() {
    if tls_available() {
        certificate_problem_is_named(
            crate::support::ServerCertificate::ForAnotherHost,
            "is for another host name",
        );
    }
}

#[test]
fn an_expired_certificate_gets_its_own_hint() {
    if tls_available() {
        certificate_problem_is_named(crate::support::ServerCertificate::Expired, "has expired");
    }
}

#[test]
fn a_certificate_not_valid_yet_gets_its_own_hint() {
    if tls_available() {
        certificate_problem_is_named(crate::support::ServerCertificate::NotYetValid, "not valid yet");
    }
}
