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

/// A `pre-receive` hook on the mirror that records, while a push is being
/// received (so the pushing processes are alive), every process's argv:
/// `ps -eo args` and each `/proc/*/cmdline`.
fn record_argv_while_receiving(mirror: &Path, log: &Path) {
    write_hook(
        mirror,
        "pre-receive",
        &format!(
            "#!/bin/sh\ncat >/dev/null\n{{\n  echo '== ps -eo args'\n  ps -eo args\n  echo '== /proc/*/cmdline'\n  \
             for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\" 2>/dev/null; echo; done\n}} >> '{}'\n",
            log.display()
        ),
    );
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

#[test]
fn the_right_token_converges_through_the_hook_and_sync_and_the_secret_never_leaks() {
    if !http_available() {
        return;
    }
    let env = TestEnv::new();
    let token = unique_token("right");
    let http = http_mirror(&env, USER, &token);
    let argv_log = env.path("argv-while-receiving.txt");
    record_argv_while_receiving(&http.repo, &argv_log);
    let token_file = secret_file(&env, "github.token", &token, 0o600);
    let watcher = SecretWatcher::in_argv(&token);

    let flags = [
        "--username",
        USER,
        "--password-file",
        path_str(&token_file),
        "--delay",
        "0s",
    ];
    let (setup, added) = add_and_install(&env, &http.repo, &http.url, &flags);
    assert!(
        stderr(&added).contains("clear text over http"),
        "a password over plain http warns: {}",
        stderr(&added)
    );
    env.commit(&setup.work, "a.txt", "one", "first");
    env.git(&setup.work, &["tag", "-a", "v1", "-m", "v1"]);
    setup.push(&env, &["main", "v1"]);
    setup.wait_converged(&env);

    // `sync` authenticates the same way, without the hook.
    gpm_ok(&env, &["uninstall", path_str(&setup.upstream)]);
    env.commit(&setup.work, "a.txt", "two", "second");
    setup.push(&env, &["main"]);
    let table = gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert!(
        table.contains("refs/heads/main") && table.contains("updated"),
        "{table}"
    );
    assert!(table.contains("result: ok"), "{table}");
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    watcher.assert_never_seen();

    let argv = std::fs::read_to_string(&argv_log).unwrap();
    assert!(
        argv.contains(&http.url),
        "the hook saw the pushing git processes (their argv has the URL):\n{argv}"
    );
    assert!(argv.contains("== ps -eo args") && argv.contains("== /proc/*/cmdline"));
    assert!(!argv.contains(&token), "a process's argv held the token:\n{argv}");
    assert_eq!(http.server.auth_failures(), 0);
    assert_secret_nowhere(&env, &setup.upstream, &token);
    let list = gpm_ok(&env, &["list", path_str(&setup.upstream)]);
    assert!(list.contains("http://*****:*****@127.0.0.1:"), "{list}");
}

#[test]
fn a_password_under_4_characters_is_refused_and_a_4_letter_one_never_blanks_part_of_a_word() {
    if !http_available() {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, FAST_RETRY);
    let http = http_mirror(&env, USER, &unique_token("good"));
    let upstream = env.bare_repo("upstream.git");
    let repo = path_str(&upstream);

    let add_with = |secret: &str| {
        let file = secret_file(&env, "token", secret, 0o600);
        let args = [
            "add",
            repo,
            "backup",
            &http.url,
            "--username",
            USER,
            "--password-file",
            path_str(&file),
        ];
        gpm_output(&env, &args)
    };

    // Too short to tell apart from ordinary words: refused, without showing it.
    let refused = add_with("ent");
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("shorter than 4 characters"),
        "{}",
        stderr(&refused)
    );
    assert!(!upstream.join("push-mirror.toml").exists());

    // "word", refused by the host: the error's own words ("password_file", "password/token")
    // are intact (the password stands alone nowhere in them).
    let added = add_with("word");
    assert_eq!(added.status.code(), Some(0), "{}", stderr(&added));
    let sync = gpm_output(&env, &["sync", repo]);
    assert_eq!(sync.status.code(), Some(1), "{}", stdout(&sync));
    let status = gpm_output(&env, &["status", "--json", repo]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let error = status[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("the secret in password_file, password_env or password; the token"),
        "{error}"
    );
    assert!(!error.contains("*****"), "nothing of the words was blanked: {error}");
    assert!(http.server.auth_failures() > 0);
}

#[test]
fn a_wrong_token_fails_at_once_as_permanent_with_a_redacted_useful_error() {
    if !http_available() {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, FAST_RETRY);
    let token = unique_token("good");
    let wrong = unique_token("wrong");
    let http = http_mirror(&env, USER, &token);
    let token_file = secret_file(&env, "token", &wrong, 0o600);
    let flags = [
        "--username",
        USER,
        "--password-file",
        path_str(&token_file),
        "--delay",
        "0s",
    ];
    let (setup, _) = add_and_install(&env, &http.repo, &http.url, &flags);
    env.commit(&setup.work, "a.txt", "one", "first");

    // One attempt: refused credentials need a person, so `failed` at once (permanent), with
    // what failed and how to fix it.
    let sync = gpm_output(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(sync.status.code(), Some(1), "{}", stdout(&sync));
    assert!(stdout(&sync).contains("Authentication failed"), "{}", stdout(&sync));
    let status = &setup.status_json(&env)[0];
    assert_eq!(status["update_status"], "failed", "{status:#}");
    assert_eq!(status["failure_class"], "permanent", "{status:#}");
    let error = status["last_error"].as_str().unwrap();
    assert!(error.contains("Authentication failed"), "{error}");
    assert!(
        error.contains("check `username`") && error.contains("password_file"),
        "{error}"
    );
    assert!(!error.contains(&wrong) && !error.contains(&token), "{error}");
    assert!(http.server.auth_failures() > 0);

    // A push tries again at once (and fails again); nothing lands.
    setup.push(&env, &["main"]);
    wait_until("the push's attempt has failed", CONVERGE, || {
        let status = &setup.status_json(&env)[0];
        status["update_status"] == "failed" && status["consecutive_failures"] == 2
    });
    assert!(setup.last_error(&env).contains("Authentication failed"));
    assert!(
        env.refs(&setup.mirror).is_empty(),
        "nothing is pushed with a wrong token"
    );
    let human = gpm_output(&env, &["status", path_str(&setup.upstream)]);
    assert_eq!(human.status.code(), Some(1), "status exits 1 when a mirror failed");
    assert_secret_nowhere(&env, &setup.upstream, &wrong);

    // Fixing the token is enough: the next sync converges.
    secret_file(&env, "token", &token, 0o600);
    gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    // The hook's worker may still be on a retry of its own (`started`): wait for the last word.
    let mut status = serde_json::Value::Null;
    wait_until("the mirror is finished", CONVERGE, || {
        status = setup.status_json(&env).remove(0);
        status["update_status"] == "finished"
    });
    assert_eq!(status["last_error"], serde_json::Value::Null, "{status:#}");
    assert_secret_nowhere(&env, &setup.upstream, &token);
}

#[test]
fn a_mirror_without_credentials_is_told_how_to_set_them() {
    if !http_available() {
        return;
    }
    let env = TestEnv::new();
    let http = http_mirror(&env, USER, &unique_token("unused"));
    let (setup, _) = add_and_install(&env, &http.repo, &http.url, &[]);
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    let sync = gpm_output(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(sync.status.code(), Some(1));
    let error = setup.last_error(&env);
    assert!(error.contains("--username USER --password-file FILE"), "{error}");
}

#[test]
fn a_password_in_the_url_is_split_out_stored_privately_and_shown_masked() {
    if !http_available() {
        return;
    }
    let env = TestEnv::new();
    let token = unique_token("inurl");
    let http = http_mirror(&env, USER, &token);
    let with_secret = http.url.replacen("http://", &format!("http://{USER}:{token}@"), 1);
    let (setup, added) = add_and_install(&env, &http.repo, &with_secret, &["--delay", "0s"]);
    let (out, err) = (stdout(&added), stderr(&added));
    assert!(
        out.contains("http://*****:*****@127.0.0.1:") && !out.contains(&token),
        "{out}"
    );
    assert!(
        err.contains("clear text over http") && err.contains("(mode 600)"),
        "{err}"
    );
    assert!(!err.contains(&token), "{err}");

    let config = std::fs::read_to_string(setup.upstream.join("push-mirror.toml")).unwrap();
    assert!(!config.contains(&token), "{config}");
    assert!(config.contains(&format!("username = \"{USER}\"")), "{config}");
    let table: toml::Table = config.parse().unwrap();
    let file = PathBuf::from(table["mirror"]["backup"]["password_file"].as_str().unwrap());
    assert!(file.starts_with(state_base(&env)), "{}", file.display());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), token);
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777,
        0o700
    );

    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    let list = gpm_ok(&env, &["list", path_str(&setup.upstream)]);
    assert!(
        list.contains(&format!("http://*****:*****@{}", &http.url["http://".len()..])),
        "{list}"
    );
    let status = &setup.status_json(&env)[0];
    assert!(
        status["url"].as_str().unwrap().starts_with("http://*****:*****@"),
        "{status:#}"
    );
    // Only its own mode-600 file holds the secret.
    let stored = files_containing(&state_base(&env), &token);
    assert_eq!(stored, vec![file.clone()]);

    // A refused `add` never replaces the stored secret.
    let other = with_secret.replace(&token, "another-secret");
    let again = gpm_output(&env, &["add", path_str(&setup.upstream), "backup", &other]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("already exists"), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), token);
    let leftovers: Vec<_> = std::fs::read_dir(file.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no staged secret is left behind");

    // A password in the URL and a password file at once is ambiguous.
    let both = gpm_output(
        &env,
        &[
            "add",
            path_str(&setup.upstream),
            "other",
            &other,
            "--password-file",
            path_str(&file),
        ],
    );
    assert_eq!(both.status.code(), Some(2));
    assert!(stderr(&both).contains("use only one"), "{}", stderr(&both));

    // Removing the mirror removes the secret it stored.
    let removed = gpm_ok(&env, &["remove", path_str(&setup.upstream), "backup"]);
    assert!(removed.contains(&format!("deleted {}", file.display())), "{removed}");
    assert!(!file.exists());
}

#[test]
fn a_password_is_never_handed_to_a_mirror_that_is_not_http() {
    // Over file:// the mirror's hooks run in the pushing git's environment:
    // a password given to git there would reach them.
    let env = TestEnv::new();
    let token = unique_token("file");
    let token_file = secret_file(&env, "token", &token, 0o600);
    let mirror = env.bare_repo("mirror.git");
    let seen = env.path("mirror-hook-env.txt");
    write_hook(
        &mirror,
        "pre-receive",
        &format!(
            "#!/bin/sh
cat >/dev/null
env > '{}'
",
            seen.display()
        ),
    );
    let url = format!("file://{}", path_str(&mirror));
    let credentials = ["--username", USER, "--password-file", path_str(&token_file)];

    // `add` refuses credentials a file:// mirror never sends (and so does `set`).
    let upstream = env.bare_repo("upstream.git");
    let mut args = vec!["add", path_str(&upstream), "backup", &url];
    args.extend_from_slice(&credentials);
    let refused = gpm_output(&env, &args);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(
            "mirror backup: `username` and `password_file` set, but a local (file://) mirror is never sent a \
             user name or password"
        ),
        "{}",
        stderr(&refused)
    );
    assert!(!upstream.join("push-mirror.toml").exists(), "nothing was added");
    let (setup, _) = Setup::add_and_install(&env, upstream, &mirror, &url, &["--delay", "0s"]);
    let mut args = vec!["set", path_str(&setup.upstream), "backup"];
    args.extend_from_slice(&credentials);
    let refused = gpm_output(&env, &args);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("never sent a user name or password"));

    // Written by hand, they are ignored (`check` says so) and never reach the mirror's hooks.
    let file = setup.upstream.join("push-mirror.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!(
            "{text}username = \"{USER}\"\npassword_file = \"{}\"\n",
            path_str(&token_file)
        ),
    )
    .unwrap();
    let check = gpm_ok(&env, &["check", path_str(&setup.upstream)]);
    assert!(
        check.contains("note: `username` and `password_file` set, but a local (file://) mirror is never sent"),
        "{check}"
    );
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    let hook_env = std::fs::read_to_string(&seen).unwrap();
    assert!(hook_env.contains("GIT_DIR="), "the hook ran: {hook_env}");
    assert!(!hook_env.contains(&token), "the mirror's hook saw the password");
    assert!(
        !hook_env.contains("GIT_PUSH_MIRROR_CREDENTIALS"),
        "nor where to read it"
    );
}

#[test]
fn a_password_file_others_can_read_is_refused_at_add_with_the_fix() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("upstream.git");
    let token_file = secret_file(&env, "token", "s3cret-token", 0o644);
    let out = gpm_output(
        &env,
        &[
            "add",
            path_str(&upstream),
            "github",
            "https://github.com/acme/app.git",
            "--username",
            USER,
            "--password-file",
            path_str(&token_file),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&format!("chmod 600 {}", token_file.display())), "{err}");
    assert!(!upstream.join("push-mirror.toml").exists(), "nothing was added");

    // Private, it is accepted; without a user name, with a warning.
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let url = "https://github.com/acme/app.git";
    let out = gpm_output(
        &env,
        &[
            "add",
            path_str(&upstream),
            "github",
            url,
            "--password-file",
            path_str(&token_file),
        ],
    );
    crate::support::assert_success(&out, "add with a private password file");
    assert!(
        stderr(&out).contains("a password without a user name"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("https://*****:*****@github.com/acme/app.git"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn password_env_supplies_the_token_to_the_hooks_worker() {
    if !http_available() {
        return;
    }
    let mut env = TestEnv::new();
    let token = unique_token("env");
    let http = http_mirror(&env, USER, &token);
    // The worker inherits it from the git server that runs the hook.
    env.set_env("MIRROR_TOKEN", &token);
    let flags = ["--username", USER, "--password-env", "MIRROR_TOKEN", "--delay", "0s"];
    let (setup, added) = add_and_install(&env, &http.repo, &http.url, &flags);
    assert!(stderr(&added).contains("clear text over http"), "{}", stderr(&added));
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    assert_secret_nowhere(&env, &setup.upstream, &token);

    let without = gpm(&env)
        .args(["sync", path_str(&setup.upstream)])
        .env_remove("MIRROR_TOKEN")
        .output()
        .unwrap();
    assert_eq!(without.status.code(), Some(1));
    assert!(
        stdout(&without).contains("MIRROR_TOKEN (password_env) is not set"),
        "{}",
        stdout(&without)
    );

    let git_named = gpm_output(
        &env,
        &[
            "set",
            path_str(&setup.upstream),
            "backup",
            "--password-env",
            "GIT_TOKEN",
        ],
    );
    assert!(
        stderr(&git_named).contains("variables named GIT_* are removed"),
        "{}",
        stderr(&git_named)
    );
}

#[test]
fn a_transport_outside_allowed_protocols_fails_at_push_time_and_runs_nothing() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("upstream.git");
    let mirror = env.bare_repo("mirror.git");
    let marker = env.path("mirror-hook-ran");
    write_hook(
        &mirror,
        "pre-receive",
        &format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    );
    let url = format!("file://{}", path_str(&mirror));
    // Allowed when added; the admin then narrows the allowlist.
    let setup = Setup::with_url(&env, upstream, mirror, &url, &["--delay", "0s"]);
    write_global_config(&env, &format!("allowed_protocols = [\"https\"]\n{FAST_RETRY}"));
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    wait_until("the refusal is recorded", CONVERGE, || {
        setup.last_error(&env).contains("allowed_protocols")
    });
    let error = setup.last_error(&env);
    assert!(
        error.contains("the transport file is not in allowed_protocols (https)"),
        "{error}"
    );
    let status = &setup.status_json(&env)[0];
    assert!(
        ["to_retry", "failed"].contains(&status["update_status"].as_str().unwrap()),
        "{status:#}"
    );

    let sync = gpm_output(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(sync.status.code(), Some(1));
    assert!(stdout(&sync).contains("not in allowed_protocols"), "{}", stdout(&sync));
    let check = gpm_output(&env, &["check", path_str(&setup.upstream)]);
    assert_eq!(check.status.code(), Some(1));
    assert!(stdout(&check).contains("FAILED"), "{}", stdout(&check));
    assert!(env.refs(&setup.mirror).is_empty(), "nothing was pushed");
    assert!(!marker.exists(), "nothing ran on the mirror");
}

#[test]
fn git_itself_refuses_a_transport_outside_the_allowlist() {
    // GIT_ALLOW_PROTOCOL, below our own check: git refuses too.
    let env = TestEnv::new();
    let upstream = env.bare_repo("upstream.git");
    let mirror = env.bare_repo("mirror.git");
    let url = format!("file://{}", path_str(&mirror));
    let access = git_push_mirror::git::RemoteAccess::new(&url, Duration::from_secs(60), &["https".to_string()]);
    let err = git_push_mirror::git::ls_remote(&upstream, &access, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("transport 'file' not allowed"), "{err}");
    assert!(err.contains("allowed_protocols"), "{err}");
    let allowed = git_push_mirror::git::RemoteAccess::new(&url, Duration::from_secs(60), &["file".to_string()]);
    assert!(git_push_mirror::git::ls_remote(&upstream, &allowed, &[]).is_ok());
}

#[test]
fn remote_helper_urls_in_a_hand_written_config_are_never_run() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("upstream.git");
    gpm_ok(&env, &["install", path_str(&upstream)]);
    let marker = env.path("pwned");
    for url in [format!("ext::sh -c touch% {}", marker.display()), "fd::3".to_string()] {
        std::fs::write(
            upstream.join("push-mirror.toml"),
            format!("[mirror.evil]\nurl = {url:?}\n"),
        )
        .unwrap();
        let work = env.clone_work(&upstream, "work");
        env.commit(&work, "a.txt", &url, "a push the hook records");
        env.git(&work, &["push", "--quiet", "origin", "main"]);
        let sync = gpm_output(&env, &["sync", path_str(&upstream)]);
        assert_eq!(sync.status.code(), Some(2));
        assert!(stderr(&sync).contains("never allowed"), "{}", stderr(&sync));
        let run = gpm_output(&env, &["run", "--wait"]);
        assert!(!stderr(&run).contains("panicked"), "{}", stderr(&run));
        let check = gpm_output(&env, &["check", path_str(&upstream)]);
        assert_eq!(check.status.code(), Some(2));
        std::fs::remove_dir_all(&work).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(!marker.exists(), "a remote helper URL was executed");
}

// ---------------------------------------------------------------- examples

/// An example file with its mirror's `url` and `password_file` pointed at
/// the local server and token; every other key is kept as it is.
fn localize_example(example: &str, url: &str, password_file: &Path) -> (String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(example);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
    let mirrors = doc["mirror"].as_table_mut().expect("the example has [mirror.NAME]");
    assert_eq!(mirrors.len(), 1, "{example} has one mirror");
    let (name, mirror) = mirrors.iter_mut().next().unwrap();
    let name = name.to_string();
    assert!(
        mirror["url"].as_str().unwrap().starts_with("https://"),
        "{example} uses https"
    );
    mirror["url"] = toml_edit::value(url);
    assert!(mirror.get("password_file").is_some(), "{example} uses a password file");
    mirror["password_file"] = toml_edit::value(path_str(password_file));
    (doc.to_string(), name)
}

/// Installs the localized example in a new upstream, checks it with the real
/// loader and `check`, pushes `branches` and a tag, and waits for the mirror
/// to hold exactly the refs `expect` keeps.
fn mirror_through_example(example: &str, expect: impl Fn(&str) -> bool) -> git_push_mirror::config::MirrorConfig {
    let env = TestEnv::new();
    let raw: toml::Table =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(example))
            .unwrap()
            .parse()
            .unwrap();
    let (_, mirror_table) = raw["mirror"].as_table().unwrap().iter().next().unwrap();
    let username = mirror_table["username"].as_str().unwrap().to_string();
    let token = unique_token("example");
    let http = http_mirror(&env, &username, &token);
    let token_file = secret_file(&env, "token", &token, 0o600);
    let (text, name) = localize_example(example, &http.url, &token_file);
    let upstream = env.bare_repo("upstream.git");
    std::fs::write(upstream.join("push-mirror.toml"), &text).unwrap();

    let global = git_push_mirror::config::GlobalConfig::embedded(&state_base(&env));
    let loaded = git_push_mirror::config::load_repo(&upstream, &global).unwrap_or_else(|e| panic!("{example}: {e}"));
    let mirror = loaded.mirror(&name).unwrap().clone();
    assert_eq!(mirror.username.as_deref(), Some(username.as_str()));
    gpm_ok(&env, &["install", path_str(&upstream)]);
    let check = gpm_ok(&env, &["check", path_str(&upstream)]);
    assert!(check.contains("reachable"), "{check}");

    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["branch", "release/1.0"]);
    env.git(&work, &["branch", "feature"]);
    env.git(&work, &["tag", "v1.0"]);
    env.git(
        &work,
        &["push", "--quiet", "origin", "main", "release/1.0", "feature", "v1.0"],
    );
    let setup = Setup {
        upstream: upstream.clone(),
        mirror: http.repo.clone(),
        work,
    };
    let expected: BTreeMap<String, String> = env.refs(&upstream).into_iter().filter(|(r, _)| expect(r)).collect();
    setup.wait_for_mirror(&env, &expected);
    assert_eq!(http.server.auth_failures(), 0);
    assert_secret_nowhere(&env, &upstream, &token);
    mirror
}

#[test]
fn the_github_example_mirrors_with_a_token_over_basic_auth() {
    if !http_available() {
        return;
    }
    let mirror = mirror_through_example("github.toml", |_| true);
    assert_eq!(mirror.username.as_deref(), Some("acme-bot"));
}

#[test]
fn the_gitlab_example_mirrors_with_oauth2_and_a_token() {
    if !http_available() {
        return;
    }
    let mirror = mirror_through_example("gitlab.toml", |_| true);
    assert_eq!(mirror.username.as_deref(), Some("oauth2"));
}

#[test]
fn the_codecommit_example_mirrors_only_protected_branches() {
    if !http_available() {
        return;
    }
    let protected =
        |r: &str| r == "refs/heads/main" || r.starts_with("refs/heads/release/") || r.starts_with("refs/tags/");
    let mirror = mirror_through_example("codecommit.toml", protected);
    assert!(mirror.rules.protected_only.is_some());
}
