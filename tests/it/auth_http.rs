//! Authenticated HTTP mirrors against a real smart-HTTP server with Basic auth (`git http-backend`):
//! the right token converges, a wrong one is retried and reported usefully, and the secret never
//! reaches any process's argv, a file of ours or our output. Also the transport allowlist at push
//! time, and the HTTPS examples (`examples/github.toml`, `gitlab.toml`, `codecommit.toml`).

use crate::support::binary::*;
use crate::support::procs::SecretWatcher;
use crate::support::{HttpGitServer, TestEnv, path_str, require_or_skip, wait_until};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod credentials;
mod examples;
mod password_sources;
mod protocols;

const USER: &str = "mirror-bot";

/// Retries fast and gives up lingering soon, so failure tests take seconds.
const FAST_RETRY: &str = "worker_linger = \"2s\"\n\
                          [retry]\ninitial = \"100ms\"\nmax = \"200ms\"\nfail_after = 3\njitter = false\n";

fn http_available() -> bool {
    require_or_skip("git http-backend", HttpGitServer::available())
}

/// A token no other test uses, so a leak check finds only this test's secret.
fn unique_token(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("tok{tag}{}x{nanos}", std::process::id())
}

/// An empty bare `mirror.git` served over smart HTTP to `user`/`password`.
struct HttpMirror {
    server: HttpGitServer,
    repo: PathBuf,
    url: String,
}

fn http_mirror(env: &TestEnv, user: &str, password: &str) -> HttpMirror {
    let repo = env.bare_repo("srv/mirror.git");
    let server = HttpGitServer::start(env, &env.path("srv"), user, password);
    let url = server.url("mirror.git");
    HttpMirror { server, repo, url }
}

/// `add` (capturing its output) and `install` into a new `upstream.git`.
fn add_and_install(env: &TestEnv, mirror: &Path, url: &str, flags: &[&str]) -> (Setup, std::process::Output) {
    Setup::add_and_install(env, env.bare_repo("upstream.git"), mirror, url, flags)
}

#[test]
fn the_argv_watcher_sees_a_secret_in_argv() {
    // The leak checks below are only as good as the watcher: it must see this.
    let secret = unique_token("visible");
    let watcher = SecretWatcher::in_argv(&secret);
    let mut child = std::process::Command::new("sh")
        .args(["-c", "sleep 0.3", &secret])
        .spawn()
        .unwrap();
    child.wait().unwrap();
    let hits = watcher.stop();
    assert!(hits.iter().any(|h| h.contains(&secret)), "{hits:?}");
}
