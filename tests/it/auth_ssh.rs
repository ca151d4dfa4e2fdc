//! SSH mirrors against a real OpenSSH server on 127.0.0.1: per-mirror keys and known_hosts, host
//! keys checked strictly (unknown or changed keys refused, nothing pushed), `known-hosts` to show and
//! accept host keys, `keygen` for deploy keys, private keys that others can read refused, and
//! `examples/ssh-server.toml`.

use crate::support::binary::*;
use crate::support::{Sshd, TestEnv, path_str, require_or_skip, wait_until};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Retries fast and gives up lingering soon, so failure tests take seconds.
const FAST_RETRY: &str = "worker_linger = \"2s\"\n\
                          [retry]\ninitial = \"100ms\"\nmax = \"200ms\"\nfail_after = 3\njitter = false\n";

fn sshd_available() -> bool {
    require_or_skip("sshd", Sshd::available())
}

/// An empty bare `mirror.git` behind a running sshd, and its `ssh://` URL.
struct SshMirror {
    sshd: Sshd,
    repo: PathBuf,
    url: String,
}

fn ssh_mirror(env: &TestEnv) -> SshMirror {
    let repo = env.bare_repo("srv/mirror.git");
    let sshd = Sshd::start(env);
    let url = sshd.url(&repo);
    SshMirror { sshd, repo, url }
}

/// `add` (capturing its output) and `install` into a new `upstream.git`.
fn add_and_install(env: &TestEnv, mirror: &Path, url: &str, flags: &[&str]) -> (Setup, std::process::Output) {
    Setup::add_and_install(env, env.bare_repo("upstream.git"), mirror, url, flags)
}

/// A known_hosts file that trusts the server's current host key.
fn trusting_known_hosts(env: &TestEnv, sshd: &Sshd) -> PathBuf {
    let path = env.path("known_hosts");
    std::fs::write(&path, format!("{}\n", sshd.known_hosts_line())).unwrap();
    path
}

/// The server's host key fingerprint, `SHA256:…`, as `ssh-keygen -l` prints it.
fn host_fingerprint(env: &TestEnv, sshd: &Sshd) -> String {
    let out = env
        .cmd("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(sshd.host_public_key_path())
        .output()
        .unwrap();
    crate::support::assert_success(&out, "ssh-keygen -l");
    stdout(&out).split_whitespace().nth(1).unwrap().to_string()
}

/// A file (and its mode) with the content of the client key that sshd authorizes.
fn copy_of_client_key(env: &TestEnv, sshd: &Sshd, mode: u32) -> PathBuf {
    let path = env.path("keys/backup_key");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::copy(sshd.client_key(), &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// A `pre-receive` hook that leaves a marker: proof that a push reached the mirror.
fn mark_receives(env: &TestEnv, mirror: &Path) -> PathBuf {
    let marker = env.path("mirror-received");
    write_hook(
        mirror,
        "pre-receive",
        &format!("#!/bin/sh\ncat >/dev/null\ntouch '{}'\n", marker.display()),
    );
    marker
}

fn mirror_config(setup: &Setup) -> toml::Table {
    std::fs::read_to_string(setup.upstream.join("push-mirror.toml"))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_mirror_with_its_own_key_and_known_hosts_follows_pushes_through_the_hook() {
    if !sshd_available() {
        return;
    }
    let env = TestEnv::new();
    let m = ssh_mirror(&env);
    let known_hosts = trusting_known_hosts(&env, &m.sshd);
    let key = m.sshd.client_key();
    let flags = [
        "--ssh-key",
        path_str(&key),
        "--known-hosts",
        path_str(&known_hosts),
        "--delay",
        "0s",
    ];
    let (setup, added) = add_and_install(&env, &m.repo, &m.url, &flags);
    assert!(!stderr(&added).contains("note:"), "{}", stderr(&added));
    let work = &setup.work;
    env.commit(work, "a.txt", "one", "first");
    env.git(work, &["tag", "-a", "v1", "-m", "v1"]);
    env.git(work, &["branch", "feature"]);
    setup.push(&env, &["main", "v1", "feature"]);
    setup.wait_converged(&env);
    env.git(work, &["push", "--quiet", "origin", "--delete", "feature"]);
    setup.wait_converged(&env);

    let check = gpm_ok(&env, &["check", path_str(&setup.upstream)]);
    assert!(check.contains("reachable"), "{check}");
    let list = gpm_ok(&env, &["list", path_str(&setup.upstream)]);
    assert!(list.contains(&format!("127.0.0.1:{}", m.sshd.port())), "{list}");
    wait_until("the update is recorded", CONVERGE, || {
        setup.status_json(&env)[0]["update_status"] == "finished"
    });
}

#[test]
fn an_unknown_host_key_is_refused_until_accepted_and_a_changed_one_is_refused_again() {
    if !sshd_available() {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, FAST_RETRY);
    let mut m = ssh_mirror(&env);
    let marker = mark_receives(&env, &m.repo);
    let key = m.sshd.client_key();
    let (setup, added) = add_and_install(&env, &m.repo, &m.url, &["--ssh-key", path_str(&key), "--delay", "0s"]);
    let repo_arg = path_str(&setup.upstream).to_string();
    // Advice and errors name the URL without its user name (stored errors mask user names).
    let url_without_user = m.url.replacen(&format!("{}@", m.sshd.user()), "", 1);
    assert!(
        stderr(&added).contains(&format!(
            "known-hosts {url_without_user} --accept --repo {repo_arg} --mirror backup"
        )),
        "add says how to record the host key: {}",
        stderr(&added)
    );

    // Unknown host key: refused by ssh, with a clear error; nothing reaches the mirror.
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    wait_until("the host key refusal is recorded", CONVERGE, || {
        setup.last_error(&env).contains("Host key verification failed")
    });
    let error = setup.last_error(&env);
    assert!(error.contains("No ED25519 host key is known"), "{error}");
    assert!(
        error.contains(&format!("git-push-mirror known-hosts {url_without_user}")) && error.contains("--mirror backup"),
        "{error}"
    );
    assert!(env.refs(&setup.mirror).is_empty());
    assert!(!marker.exists(), "nothing was pushed");

    // `known-hosts` shows the fingerprint and records nothing without --accept.
    let fingerprint = host_fingerprint(&env, &m.sshd);
    let shown = gpm_output(
        &env,
        &["known-hosts", &m.url, "--repo", &repo_arg, "--mirror", "backup"],
    );
    crate::support::assert_success(&shown, "known-hosts");
    let out = stdout(&shown);
    assert!(
        out.contains(&format!("host keys of [127.0.0.1]:{}", m.sshd.port())),
        "{out}"
    );
    assert!(
        out.contains(&fingerprint) && out.contains("(ED25519)  not recorded"),
        "{out}"
    );
    assert!(stderr(&shown).contains("nothing recorded"), "{}", stderr(&shown));
    assert!(mirror_config(&setup)["mirror"]["backup"].get("known_hosts").is_none());

    // --accept records it in a known_hosts file of the mirror's own, makes the failing mirror due
    // at once (no waiting out its backoff: see the first-day tests) and says how to retry now; and
    // pushing works.
    let accepted = gpm_output(
        &env,
        &[
            "known-hosts",
            &m.url,
            "--accept",
            "--repo",
            &repo_arg,
            "--mirror",
            "backup",
        ],
    );
    crate::support::assert_success(&accepted, "known-hosts --accept");
    assert!(stdout(&accepted).contains("recorded 1 key(s)"), "{}", stdout(&accepted));
    assert!(
        stderr(&accepted).contains(&format!(
            "mirror backup was failing: it is retried at the next `run` (cron) or push instead of after its \
             backoff; to retry it now: git-push-mirror sync {repo_arg} --mirror backup"
        )),
        "{}",
        stderr(&accepted)
    );
    let config = mirror_config(&setup);
    let known_hosts = PathBuf::from(config["mirror"]["backup"]["known_hosts"].as_str().unwrap());
    assert!(known_hosts.starts_with(state_base(&env)), "{}", known_hosts.display());
    assert_eq!(
        std::fs::read_to_string(&known_hosts).unwrap(),
        format!("{}\n", m.sshd.known_hosts_line())
    );
    gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    assert!(marker.exists());
    let again = gpm_ok(
        &env,
        &[
            "known-hosts",
            &m.url,
            "--accept",
            "--repo",
            &repo_arg,
            "--mirror",
            "backup",
        ],
    );
    assert!(again.contains("already recorded"), "{again}");

    // A changed host key is refused again; the mirror keeps what it had.
    let before = env.refs(&setup.mirror);
    m.sshd.rotate_host_key();
    env.commit(&setup.work, "a.txt", "two", "second");
    setup.push(&env, &["main"]);
    wait_until("the changed host key is refused", CONVERGE, || {
        setup
            .last_error(&env)
            .contains("host key changed since it was accepted")
    });
    // One clean sentence (no "remove with:" of ssh's advice to delete the key), and the exact
    // command that shows the new keys beside the recorded ones.
    let error = setup.last_error(&env);
    let fingerprint = host_fingerprint(&env, &m.sshd);
    assert!(
        error.starts_with(&format!(
            "the SSH host key of [127.0.0.1]:{} has changed: it now sends the ED25519 key {fingerprint}; the \
             recorded one is the ED25519 key in ",
            m.sshd.port()
        )),
        "{error}"
    );
    assert!(
        !error.contains("remove with") && !error.contains("ssh-keygen"),
        "{error}"
    );
    assert!(
        error.contains(&format!(
            "`git-push-mirror known-hosts {url_without_user} --repo {repo_arg} --mirror backup` shows the new \
             fingerprints"
        )),
        "{error}"
    );
    assert_eq!(
        env.refs(&setup.mirror),
        before,
        "nothing was pushed to the changed host"
    );
    let shown = gpm_ok(
        &env,
        &["known-hosts", &m.url, "--repo", &repo_arg, "--mirror", "backup"],
    );
    assert!(
        shown.contains("not recorded") && shown.contains("no longer offered by the host"),
        "{shown}"
    );

    // Accepting the new key replaces the old one.
    let accepted = gpm_ok(
        &env,
        &[
            "known-hosts",
            &m.url,
            "--accept",
            "--repo",
            &repo_arg,
            "--mirror",
            "backup",
        ],
    );
    assert!(accepted.contains("replacing 1 old one(s)"), "{accepted}");
    gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
}

#[test]
fn keygen_creates_a_deploy_key_sets_it_and_never_overwrites_it() {
    if !sshd_available() {
        return;
    }
    let env = TestEnv::new();
    let m = ssh_mirror(&env);
    let known_hosts = trusting_known_hosts(&env, &m.sshd);
    let flags = ["--known-hosts", path_str(&known_hosts), "--delay", "0s"];
    let (setup, added) = add_and_install(&env, &m.repo, &m.url, &flags);
    let repo_arg = path_str(&setup.upstream).to_string();
    assert!(
        stderr(&added).contains(&format!("git-push-mirror keygen {repo_arg} backup")),
        "{}",
        stderr(&added)
    );

    let generated = gpm_output(&env, &["keygen", &repo_arg, "backup"]);
    crate::support::assert_success(&generated, "keygen");
    let public = stdout(&generated);
    assert_eq!(public.lines().count(), 1, "only the public key on stdout: {public}");
    assert!(
        public.starts_with("ssh-ed25519 AAAA") && public.trim_end().ends_with(":backup"),
        "{public}"
    );
    assert!(stderr(&generated).contains("deploy key"), "{}", stderr(&generated));
    let key = PathBuf::from(mirror_config(&setup)["mirror"]["backup"]["ssh_key"].as_str().unwrap());
    assert!(key.starts_with(state_base(&env)), "{}", key.display());
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let pub_file = PathBuf::from(format!("{}.pub", key.display()));
    assert_eq!(std::fs::read_to_string(&pub_file).unwrap(), public);
    let private = std::fs::read(&key).unwrap();
    assert!(
        !String::from_utf8_lossy(&private).contains("ENCRYPTED"),
        "no passphrase"
    );

    // Not yet a deploy key on the host: refused, and told what to do.
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    let sync = gpm_output(&env, &["sync", &repo_arg]);
    assert_eq!(sync.status.code(), Some(1), "{}", stdout(&sync));
    let error = setup.last_error(&env);
    assert!(
        error.contains("Permission denied (publickey") && error.contains("deploy key"),
        "{error}"
    );

    // Pasted on the host, it pushes.
    m.sshd.authorize_key(&public);
    gpm_ok(&env, &["sync", &repo_arg]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    env.commit(&setup.work, "a.txt", "two", "second");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);

    // Never overwritten.
    let again = gpm_output(&env, &["keygen", &repo_arg, "backup"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("never overwrites"), "{}", stderr(&again));
    assert_eq!(std::fs::read(&key).unwrap(), private);
    let unknown = gpm_output(&env, &["keygen", &repo_arg, "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("add it first"), "{}", stderr(&unknown));

    // Removing the mirror removes the key pair it generated.
    gpm_ok(&env, &["remove", &repo_arg, "backup"]);
    assert!(!key.exists() && !pub_file.exists());
}

#[test]
fn ssh_keys_others_can_read_are_refused_at_add_and_at_push_time() {
    if !sshd_available() {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, FAST_RETRY);
    let m = ssh_mirror(&env);
    let known_hosts = trusting_known_hosts(&env, &m.sshd);
    let upstream = env.bare_repo("upstream.git");
    let key = copy_of_client_key(&env, &m.sshd, 0o644);
    let add = |key: &Path| {
        gpm_output(
            &env,
            &[
                "add",
                path_str(&upstream),
                "backup",
                &m.url,
                "--ssh-key",
                path_str(key),
                "--known-hosts",
                path_str(&known_hosts),
            ],
        )
    };
    let refused = add(&key);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains(&format!("chmod 600 {}", key.display())),
        "{}",
        stderr(&refused)
    );
    assert!(!upstream.join("push-mirror.toml").exists());

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    crate::support::assert_success(&add(&key), "add with a private key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    let sync = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert_eq!(sync.status.code(), Some(1));
    assert!(stdout(&sync).contains("chmod 600"), "{}", stdout(&sync));
    assert!(env.refs(&m.repo).is_empty());
    let setup = Setup {
        upstream: upstream.clone(),
        mirror: m.repo.clone(),
        work,
    };
    assert!(setup.last_error(&env).contains("readable by group/others (mode 640)"));

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    gpm_ok(&env, &["sync", path_str(&upstream)]);
    assert_eq!(env.refs(&m.repo), env.refs(&upstream));
}

#[test]
fn known_hosts_records_into_a_file_and_explains_bad_requests() {
    if !sshd_available() {
        return;
    }
    let env = TestEnv::new();
    let m = ssh_mirror(&env);
    let file = env.path("hosts/known_hosts");
    let accepted = gpm_ok(&env, &["known-hosts", &m.url, "--accept", "--file", path_str(&file)]);
    assert!(accepted.contains(&host_fingerprint(&env, &m.sshd)), "{accepted}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{}\n", m.sshd.known_hosts_line())
    );
    let again = gpm_ok(&env, &["known-hosts", &m.url, "--file", path_str(&file)]);
    assert!(again.contains("(ED25519)  recorded"), "{again}");

    let no_target = gpm_output(&env, &["known-hosts", &m.url, "--accept"]);
    assert_eq!(no_target.status.code(), Some(2));
    assert!(stderr(&no_target).contains("--repo REPO --mirror NAME, or --file FILE"));
    let not_ssh = gpm_output(&env, &["known-hosts", "https://example.com/a.git"]);
    assert_eq!(not_ssh.status.code(), Some(2));
    assert!(stderr(&not_ssh).contains("is not an SSH URL"), "{}", stderr(&not_ssh));

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = gpm_output(&env, &["known-hosts", &format!("ssh://git@127.0.0.1:{closed}/a.git")]);
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(
        stderr(&unreachable).contains(&format!("no SSH host key received from 127.0.0.1 port {closed}")),
        "{}",
        stderr(&unreachable)
    );

    // The keys of one host never go to a mirror of another.
    let upstream = env.bare_repo("upstream.git");
    gpm_ok(
        &env,
        &["add", path_str(&upstream), "other", "ssh://git@elsewhere.example/a.git"],
    );
    let mismatch = gpm_output(
        &env,
        &[
            "known-hosts",
            &m.url,
            "--accept",
            "--repo",
            path_str(&upstream),
            "--mirror",
            "other",
        ],
    );
    assert_eq!(mismatch.status.code(), Some(2));
    assert!(
        stderr(&mismatch).contains("pushes to elsewhere.example"),
        "{}",
        stderr(&mismatch)
    );
}

#[test]
fn the_ssh_server_example_mirrors_with_keygen_and_known_hosts() {
    if !sshd_available() {
        return;
    }
    let env = TestEnv::new();
    let m = ssh_mirror(&env);
    // The example, with its URL and file paths pointed at this server and this test's directory.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ssh-server.toml");
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(&example).unwrap().parse().unwrap();
    let (name, mirror) = doc["mirror"].as_table_mut().unwrap().iter_mut().next().unwrap();
    let name = name.to_string();
    assert!(mirror["url"].as_str().unwrap().starts_with("ssh://"));
    let key = env.path("etc/keys/backup_ed25519");
    let known_hosts = env.path("etc/keys/backup.known_hosts");
    mirror["url"] = toml_edit::value(m.url.as_str());
    mirror["ssh_key"] = toml_edit::value(path_str(&key));
    mirror["known_hosts"] = toml_edit::value(path_str(&known_hosts));
    let upstream = env.bare_repo("upstream.git");
    std::fs::write(upstream.join("push-mirror.toml"), doc.to_string()).unwrap();
    let global = git_push_mirror::config::GlobalConfig::embedded(&state_base(&env));
    let loaded = git_push_mirror::config::load_repo(&upstream, &global).unwrap();
    assert_eq!(loaded.mirror(&name).unwrap().ssh_key.as_deref(), Some(key.as_path()));

    // The steps the example's comments give.
    let repo_arg = path_str(&upstream).to_string();
    let public = gpm_ok(&env, &["keygen", &repo_arg, &name]);
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    m.sshd.authorize_key(&public);
    gpm_ok(
        &env,
        &[
            "known-hosts",
            &m.url,
            "--accept",
            "--repo",
            &repo_arg,
            "--mirror",
            &name,
        ],
    );
    assert!(
        std::fs::read_to_string(&known_hosts)
            .unwrap()
            .contains(&m.sshd.known_hosts_line())
    );
    gpm_ok(&env, &["install", &repo_arg]);
    let check = gpm_ok(&env, &["check", &repo_arg]);
    assert!(check.contains("reachable"), "{check}");
    // The configuration still says what the example says, but for the paths.
    let text = std::fs::read_to_string(upstream.join("push-mirror.toml")).unwrap();
    assert_eq!(
        text,
        doc.to_string(),
        "keygen and known-hosts used the configured paths"
    );

    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["tag", "v1"]);
    env.git(&work, &["push", "--quiet", "origin", "main", "v1"]);
    let setup = Setup {
        upstream,
        mirror: m.repo.clone(),
        work,
    };
    setup.wait_converged(&env);
}

#[test]
fn keygen_and_known_hosts_leave_a_fleet_mirrors_settings_to_the_global_file() {
    let env = TestEnv::new();
    let root = env.path("git");
    let upstream = env.bare_repo("git/acme/app.git");
    let key = env.path("fleet/backup_ed25519");
    let global = format!(
        "repos_root = {root:?}\n\n[mirror.backup]\nrepos = [\"acme/*\"]\nurl = \"ssh://git@backup.example/{{name}}.git\"\n"
    );
    write_global_config(&env, &global);
    let refused = gpm_output(&env, &["keygen", path_str(&upstream), "backup"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("fleet mirror of the global configuration: set `ssh_key`"),
        "{}",
        stderr(&refused)
    );
    let refused = gpm_output(
        &env,
        &[
            "known-hosts",
            "ssh://git@backup.example/acme/app.git",
            "--accept",
            "--repo",
            path_str(&upstream),
            "--mirror",
            "backup",
        ],
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("set `known_hosts`"), "{}", stderr(&refused));

    // Where the global file points, keygen creates the key for the whole fleet.
    write_global_config(&env, &format!("{global}ssh_key = {key:?}\n"));
    let public = gpm_ok(&env, &["keygen", path_str(&upstream), "backup"]);
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(
        !upstream.join("push-mirror.toml").exists(),
        "the repository's file is not touched"
    );
}
