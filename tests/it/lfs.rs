//! Git LFS: the objects that mirrored refs reference reach the mirror's LFS store before the
//! refs do, once each, through the real git-lfs client: to a real LFS server (batch API, Basic
//! auth) behind the smart-HTTP test server, and to a file:// mirror's own store. Wrong LFS
//! credentials, objects missing from the repository and `lfs_required = false` are reported
//! distinctly and lose nothing; a clone of the mirror gets the real contents with `git lfs pull`.

use crate::support::binary::*;
use crate::support::lfs::sha256_hex;
use crate::support::procs::SecretWatcher;
use crate::support::{HttpGitServer, RepoFormat, Sshd, TestEnv, path_str, require_or_skip, wait_until};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const USER: &str = "mirror-bot";
const PASSWORD: &str = "lfs-s3cret-token";

/// Fails fast: one failed update makes the status `failed`.
const FAIL_FAST: &str = "worker_linger = \"2s\"\n\
                         [retry]\ninitial = \"100ms\"\nmax = \"200ms\"\nfail_after = 1\njitter = false\n";

fn lfs_available() -> bool {
    require_or_skip("git-lfs", crate::support::lfs::available())
}

fn lfs_and_http_available() -> bool {
    lfs_available() && require_or_skip("git http-backend", HttpGitServer::available())
}

/// The objects in a bare repository's LFS store: oid → size.
fn local_store(repo: &Path) -> BTreeMap<String, u64> {
    let mut objects = BTreeMap::new();
    let mut dirs = vec![repo.join("lfs/objects")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Some(name) = path.file_name().and_then(|n| n.to_str())
                && name.len() == 64
            {
                objects.insert(name.to_string(), entry.metadata().unwrap().len());
            }
        }
    }
    objects
}

fn expected_objects(files: &[&LfsFile]) -> BTreeMap<String, u64> {
    files.iter().map(|f| (f.oid.clone(), f.content.len() as u64)).collect()
}

fn status_of(setup: &Setup, env: &TestEnv) -> serde_json::Value {
    setup.status_json(env).remove(0)
}

/// Waits until the mirror's status has `value` at `key` (the status is written after the push).
fn wait_for_status(setup: &Setup, env: &TestEnv, key: &str, value: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    wait_until(&format!("status {key} = {value}"), CONVERGE, || {
        last = status_of(setup, env);
        field(&last, key) == value
    });
    last
}

fn field<'a>(status: &'a serde_json::Value, key: &str) -> &'a str {
    status[key].as_str().unwrap_or("")
}

in_each_format! {
    a_file_mirror_gets_the_lfs_objects_of_every_branch_into_its_own_store:
        sha1 => sha1,
        sha256 => sha256,
        reftable => reftable;
    lfs_objects_reach_an_http_mirror_once_and_a_clone_of_the_mirror_gets_the_contents:
        sha1 => sha1,
        sha256 => sha256,
        reftable => reftable;
}

fn a_file_mirror_gets_the_lfs_objects_of_every_branch_into_its_own_store(format: RepoFormat) {
    if !lfs_available() {
        return;
    }
    let env = TestEnv::with_format(format);
    let setup = Setup::file(&env, &[]);
    format.assert_of(&env, &setup.upstream);
    track_lfs(&env, &setup.work);
    let a = commit_lfs_file(&env, &setup.work, "a.bin", "a");
    env.commit(&setup.work, "README", "plain text, not LFS\n", "readme");
    env.git(&setup.work, &["checkout", "--quiet", "-b", "feature"]);
    let b = commit_lfs_file(&env, &setup.work, "assets/b.bin", "b");
    setup.push(&env, &["main", "feature"]);
    assert_eq!(
        local_store(&setup.upstream),
        expected_objects(&[&a, &b]),
        "the upstream holds the objects"
    );

    setup.wait_converged(&env);
    wait_until("the mirror's LFS store fills", CONVERGE, || {
        local_store(&setup.mirror) == expected_objects(&[&a, &b])
    });
    let status = wait_for_status(&setup, &env, "update_status", "finished");
    assert_eq!(field(&status, "lfs_status"), "ok");
    assert!(status["lfs_error"].is_null());
}

#[test]
fn lfs_off_pushes_refs_without_objects() {
    if !lfs_available() {
        return;
    }
    let env = TestEnv::new();
    let setup = Setup::file(&env, &["--lfs", "off"]);
    track_lfs(&env, &setup.work);
    commit_lfs_file(&env, &setup.work, "a.bin", "a");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    let status = wait_for_status(&setup, &env, "update_status", "finished");
    assert!(local_store(&setup.mirror).is_empty());
    assert_eq!(field(&status, "lfs_status"), "none");
}

/// Pushes without git-lfs's pre-push hook, as a client without git-lfs does: the refs arrive,
/// their LFS objects never reach the upstream's store.
fn push_without_lfs_objects(env: &TestEnv, work: &Path, refs: &[&str]) {
    let mut args = vec!["push", "--quiet", "--no-verify", "origin"];
    args.extend_from_slice(refs);
    env.git(work, &args);
}

#[test]
fn a_ref_needing_an_object_missing_locally_is_held_and_the_others_are_mirrored() {
    if !lfs_available() {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, FAIL_FAST);
    let setup = Setup::file(&env, &[]);
    track_lfs(&env, &setup.work);
    let a = commit_lfs_file(&env, &setup.work, "a.bin", "a");
    env.git(&setup.work, &["checkout", "--quiet", "-b", "broken"]);
    let lost = commit_lfs_file(&env, &setup.work, "lost.bin", "lost");
    setup.push(&env, &["main"]);
    push_without_lfs_objects(&env, &setup.work, &["broken"]);
    assert!(!local_store(&setup.upstream).contains_key(&lost.oid));
    let sync = gpm_output(&env, &["sync", path_str(&setup.upstream)]);
    let report = stdout(&sync);
    assert_eq!(sync.status.code(), Some(1), "a held ref fails the update:\n{report}");
    assert!(
        report.contains("refs/heads/broken") && report.contains("held"),
        "{report}"
    );
    assert!(
        report.contains(&lost.oid),
        "the report names the missing object:\n{report}"
    );

    let mirror_refs = env.refs(&setup.mirror);
    let upstream_refs = env.refs(&setup.upstream);
    assert_eq!(mirror_refs.get("refs/heads/main"), upstream_refs.get("refs/heads/main"));
    assert!(
        !mirror_refs.contains_key("refs/heads/broken"),
        "pointers without their object are not mirrored"
    );
    assert_eq!(local_store(&setup.mirror), expected_objects(&[&a]));
    let status = status_of(&setup, &env);
    assert_eq!(field(&status, "lfs_status"), "failed");
    assert!(field(&status, "lfs_error").contains(&lost.oid), "{status}");
    assert!(field(&status, "lfs_error").contains("git lfs fetch --all"), "{status}");
    assert_eq!(status["pending_refs"], serde_json::json!(["refs/heads/broken"]));

    // The object comes back (here: pushed again from the work tree); the next run mirrors the ref.
    env.git(&setup.work, &["lfs", "push", "--all", "origin", "broken"]);
    gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    assert_eq!(local_store(&setup.mirror), expected_objects(&[&a, &lost]));
    // (A worker the hook started may still be retrying: wait for the last word.)
    let status = wait_for_status(&setup, &env, "update_status", "finished");
    assert_eq!(field(&status, "lfs_status"), "ok");
}

#[test]
fn without_lfs_required_a_missing_object_is_reported_and_the_refs_are_mirrored() {
    if !lfs_available() {
        return;
    }
    let env = TestEnv::new();
    // `on`: with `auto` a repository whose store is still empty is not an LFS repository.
    let setup = Setup::file(&env, &["--lfs", "on", "--lfs-required", "false"]);
    track_lfs(&env, &setup.work);
    let lost = commit_lfs_file(&env, &setup.work, "lost.bin", "lost");
    push_without_lfs_objects(&env, &setup.work, &["main"]);
    assert!(local_store(&setup.upstream).is_empty());
    let sync = gpm_output(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(sync.status.code(), Some(0), "{}", stdout(&sync));
    assert!(stdout(&sync).contains("lfs: failed"), "{}", stdout(&sync));
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    let status = wait_for_status(&setup, &env, "update_status", "finished");
    assert_eq!(field(&status, "lfs_status"), "failed");
    assert!(field(&status, "lfs_error").contains(&lost.oid));
    let metrics = gpm_ok(&env, &["metrics"]);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("git_push_mirror_mirror_lfs_failed{") && l.ends_with(" 1")),
        "{metrics}"
    );

    // Once the object is back, the next update (a push of something else) sends the owed
    // object too: refs pushed without their objects are checked again in full.
    env.git(&setup.work, &["lfs", "push", "--all", "origin", "main"]);
    env.commit(&setup.work, "README", "more\n", "unrelated change");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    wait_until("the owed object reaches the mirror", CONVERGE, || {
        local_store(&setup.mirror).contains_key(&lost.oid)
    });
    wait_for_status(&setup, &env, "lfs_status", "ok");
}

/// An upstream mirrored over smart HTTP to `srv/mirror.git`, whose server also serves the
/// LFS API at `mirror.git/info/lfs`, with the right credentials.
fn http_lfs_setup(env: &TestEnv, extra_flags: &[&str]) -> (Setup, HttpGitServer) {
    let mirror = env.bare_repo("srv/mirror.git");
    let server = HttpGitServer::start_with_lfs(env, &env.path("srv"), USER, PASSWORD);
    let token = secret_file(env, "mirror.token", PASSWORD, 0o600);
    let mut flags = vec!["--username", USER, "--password-file", path_str(&token)];
    flags.extend_from_slice(extra_flags);
    let setup = Setup::with_url(
        env,
        env.bare_repo("upstream.git"),
        mirror,
        &server.url("mirror.git"),
        &flags,
    );
    (setup, server)
}

/// The token of `Authorization: Basic` for USER:PASSWORD (coreutils' base64). The password goes
/// on stdin: in argv, the argv watcher of a test running beside this one would see it.
fn basic_token(env: &TestEnv) -> String {
    use std::io::Write;
    let mut child = env
        .cmd("base64")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{USER}:{PASSWORD}").as_bytes()).unwrap();
    drop(stdin);
    stdout(&child.wait_with_output().unwrap()).trim().to_string()
}

/// The password, and the Basic-auth token made from it, are in no stored file and no output
/// (see [`assert_secret_nowhere`]).
fn assert_password_not_stored(env: &TestEnv, setup: &Setup) {
    assert_secret_nowhere(env, &setup.upstream, PASSWORD);
    assert_secret_nowhere(env, &setup.upstream, &basic_token(env));
}

fn lfs_objects_reach_an_http_mirror_once_and_a_clone_of_the_mirror_gets_the_contents(format: RepoFormat) {
    if !lfs_and_http_available() {
        return;
    }
    let env = TestEnv::with_format(format);
    let watcher = SecretWatcher::in_argv(PASSWORD);
    let (setup, server) = http_lfs_setup(&env, &[]);
    format.assert_of(&env, &setup.upstream);
    let config_before = std::fs::read_to_string(setup.upstream.join("config")).unwrap();
    let store = server.lfs();
    track_lfs(&env, &setup.work);
    let a = commit_lfs_file(&env, &setup.work, "a.bin", "a");
    env.commit(&setup.work, "README", "not in LFS\n", "readme");
    let b = commit_lfs_file(&env, &setup.work, "media/b.bin", "b");
    env.git(&setup.work, &["tag", "-a", "v1", "-m", "v1"]);
    env.git(&setup.work, &["checkout", "--quiet", "-b", "feature"]);
    let c = commit_lfs_file(&env, &setup.work, "c.bin", "c");
    setup.push(&env, &["main", "feature", "v1"]);

    setup.wait_converged(&env);
    let expected = expected_objects(&[&a, &b, &c]);
    assert_eq!(
        store.objects(),
        expected,
        "every object of every mirrored ref is on the LFS server"
    );
    for file in [&a, &b, &c] {
        let stored = std::fs::read(store.object_path(&file.oid)).unwrap();
        assert_eq!(sha256_hex(&stored), file.oid, "stored bytes hash to the oid");
        assert_eq!(stored, file.content);
    }
    let once: BTreeMap<String, usize> = expected.keys().map(|oid| (oid.clone(), 1)).collect();
    assert_eq!(store.uploads(), once, "each object uploaded once");
    assert_eq!(
        store.unauthenticated_requests(),
        0,
        "git-lfs was told to send the credentials at once"
    );
    wait_for_status(&setup, &env, "lfs_status", "ok");

    // A second run asks the server (a full sync checks every object) and uploads nothing.
    let asked_before = store.batch_requests("upload");
    let sync = gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert!(sync.contains("lfs: ok: 3 object(s)"), "{sync}");
    assert!(
        store.batch_requests("upload") > asked_before,
        "sync asked the batch API"
    );
    assert_eq!(store.uploads(), once, "nothing uploaded again");

    // New commits that reuse an object and add one: only the new one travels.
    env.git(&setup.work, &["checkout", "--quiet", "main"]);
    std::fs::copy(setup.work.join("a.bin"), setup.work.join("a-copy.bin")).unwrap();
    env.git(&setup.work, &["add", "a-copy.bin"]);
    env.git(&setup.work, &["commit", "--quiet", "-m", "copy a"]);
    let d = commit_lfs_file(&env, &setup.work, "d.bin", "d");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    let mut uploads = once.clone();
    uploads.insert(d.oid.clone(), 1);
    assert_eq!(store.uploads(), uploads);

    let check = gpm_ok(&env, &["check", path_str(&setup.upstream)]);
    assert!(
        check.contains(&format!("lfs: objects go to {}/info/lfs", server.url("mirror.git"))),
        "{check}"
    );

    // Done when: a clone of the mirror with `git lfs pull` gets the real file contents. (The
    // test's own client gets the password from a helper script, to keep it out of every argv.)
    env.git(env.root(), &["lfs", "install"]);
    let helper = env.path("client-credentials");
    std::fs::write(
        &helper,
        format!("#!/bin/sh\necho username={USER}\necho password={PASSWORD}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o700)).unwrap();
    let client = |dir: &Path, args: &[&str]| {
        let out = env
            .cmd("git")
            .current_dir(dir)
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "credential.helper")
            .env("GIT_CONFIG_VALUE_0", &helper)
            .env("GIT_LFS_SKIP_SMUDGE", "1")
            .args(args)
            .output()
            .unwrap();
        crate::support::assert_success(&out, &format!("git {args:?}"));
    };
    let clone = env.path("mirror-clone");
    client(
        env.root(),
        &["clone", "--quiet", &server.url("mirror.git"), path_str(&clone)],
    );
    assert_ne!(
        std::fs::read(clone.join("d.bin")).unwrap(),
        d.content,
        "a fresh clone has pointers"
    );
    client(&clone, &["lfs", "pull"]);
    for (path, file) in [("a.bin", &a), ("media/b.bin", &b), ("a-copy.bin", &a), ("d.bin", &d)] {
        assert_eq!(std::fs::read(clone.join(path)).unwrap(), file.content, "{path}");
    }
    client(&clone, &["checkout", "--quiet", "feature"]);
    client(&clone, &["lfs", "pull"]);
    assert_eq!(std::fs::read(clone.join("c.bin")).unwrap(), c.content);
    watcher.assert_never_seen();
    assert_password_not_stored(&env, &setup);
    assert_eq!(
        std::fs::read_to_string(setup.upstream.join("config")).unwrap(),
        config_before,
        "git-lfs left the repository's configuration alone"
    );
}

#[test]
fn a_wrong_lfs_credential_fails_the_update_with_a_redacted_error_and_the_refs_wait() {
    if !lfs_and_http_available() {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, FAIL_FAST);
    let (setup, server) = http_lfs_setup(&env, &[]);
    // The git credential is right; the LFS server wants another one.
    server.lfs().set_password("the-lfs-servers-own-password");
    track_lfs(&env, &setup.work);
    let a = commit_lfs_file(&env, &setup.work, "a.bin", "a");
    setup.push(&env, &["main"]);

    let status = wait_for_status(&setup, &env, "update_status", "failed");
    assert!(
        field(&status, "last_error")
            .starts_with("LFS upload failed: the LFS endpoint refused the user name and password"),
        "{status}"
    );
    assert_eq!(field(&status, "lfs_status"), "failed");
    assert!(
        field(&status, "lfs_error").starts_with("LFS upload failed:"),
        "{status}"
    );
    assert_eq!(status["pending_refs"], serde_json::json!(["refs/heads/main"]));
    assert!(
        server.lfs().auth_failures() > 0,
        "git-lfs offered the mirror's credential"
    );
    assert!(
        env.refs(&setup.mirror).is_empty(),
        "no ref reaches the mirror without its objects"
    );
    assert!(server.lfs().objects().is_empty());
    let human = gpm_output(&env, &["status", path_str(&setup.upstream)]);
    assert_eq!(human.status.code(), Some(1));
    assert!(stdout(&human).contains("lfs_status: failed"), "{}", stdout(&human));
    assert_password_not_stored(&env, &setup);

    // Fixed on the server: the next run mirrors objects and refs.
    server.lfs().set_password(PASSWORD);
    gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    assert_eq!(server.lfs().objects(), expected_objects(&[&a]));
    wait_for_status(&setup, &env, "lfs_status", "ok");
}

#[test]
fn without_lfs_required_a_wrong_lfs_credential_still_mirrors_the_refs_and_says_so() {
    if !lfs_and_http_available() {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, FAIL_FAST);
    let (setup, server) = http_lfs_setup(&env, &["--lfs-required=false"]);
    server.lfs().set_password("the-lfs-servers-own-password");
    track_lfs(&env, &setup.work);
    commit_lfs_file(&env, &setup.work, "a.bin", "a");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    let status = wait_for_status(&setup, &env, "update_status", "finished");
    assert_eq!(field(&status, "lfs_status"), "failed", "{status}");
    assert!(
        field(&status, "lfs_error").starts_with("LFS upload failed:"),
        "{status}"
    );
    assert!(status["last_error"].is_null(), "{status}");
    assert_password_not_stored(&env, &setup);
}

#[test]
fn lfs_url_sends_a_file_mirrors_objects_to_an_http_lfs_server_with_the_mirrors_password() {
    if !lfs_and_http_available() {
        return;
    }
    let env = TestEnv::new();
    std::fs::create_dir_all(env.path("srv")).unwrap();
    let server = HttpGitServer::start_with_lfs(&env, &env.path("srv"), USER, PASSWORD);
    let token = secret_file(&env, "mirror.token", PASSWORD, 0o600);
    let lfs_url = format!("http://127.0.0.1:{}/lfs/backup", server.port());
    let mirror = env.bare_repo("mirror.git");
    let url = format!("file://{}", path_str(&mirror));
    let (setup, added) = Setup::add_and_install(
        &env,
        env.bare_repo("upstream.git"),
        &mirror,
        &url,
        &[
            "--username",
            USER,
            "--password-file",
            path_str(&token),
            "--lfs-url",
            &lfs_url,
        ],
    );
    assert!(
        !stderr(&added).contains("never sent a user name or password"),
        "{}",
        stderr(&added)
    );
    // The password is for the LFS endpoint only: the file:// push runs the mirror's hooks.
    let hook_env = env.path("mirror-hook.env");
    write_hook(
        &mirror,
        "pre-receive",
        &format!("#!/bin/sh\ncat >/dev/null\nenv > '{}'\n", hook_env.display()),
    );
    track_lfs(&env, &setup.work);
    let a = commit_lfs_file(&env, &setup.work, "a.bin", "a");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    assert_eq!(
        server.lfs().objects(),
        expected_objects(&[&a]),
        "the objects went to lfs_url"
    );
    assert!(
        local_store(&setup.mirror).is_empty(),
        "not to the file mirror's own store"
    );
    let seen_by_hook = std::fs::read_to_string(&hook_env).expect("the mirror's hook ran");
    assert!(
        !seen_by_hook.contains(PASSWORD),
        "the mirror's hook saw the password:\n{seen_by_hook}"
    );
    let check = gpm_ok(&env, &["check", path_str(&setup.upstream)]);
    assert!(
        check.contains(&format!("lfs: objects go to {lfs_url} (lfs_url)")),
        "{check}"
    );
}

#[test]
fn an_lfs_url_that_asks_for_credentials_the_mirror_lacks_is_told_so_not_that_they_were_refused() {
    if !lfs_and_http_available() {
        return;
    }
    let env = TestEnv::new();
    write_global_config(&env, FAIL_FAST);
    std::fs::create_dir_all(env.path("srv")).unwrap();
    let server = HttpGitServer::start_with_lfs(&env, &env.path("srv"), USER, PASSWORD);
    let lfs_url = format!("http://127.0.0.1:{}/lfs/backup", server.port());
    let mirror = env.bare_repo("mirror.git");
    let url = format!("file://{}", path_str(&mirror));
    let setup = Setup::with_url(
        &env,
        env.bare_repo("upstream.git"),
        mirror,
        &url,
        &["--lfs-url", &lfs_url],
    );
    track_lfs(&env, &setup.work);
    let a = commit_lfs_file(&env, &setup.work, "a.bin", "a");
    setup.push(&env, &["main"]);

    // No user name or password was offered: the error says the endpoint wants some.
    let status = wait_for_status(&setup, &env, "update_status", "failed");
    let error = field(&status, "last_error");
    assert!(
        error.contains(&format!(
            "the LFS endpoint (http://127.0.0.1:{}) asks for a user name and password, and the mirror has none: \
             set them with `git-push-mirror set {} backup --username USER --password-file FILE`",
            server.port(),
            setup.upstream.display()
        )),
        "{status}"
    );
    assert!(
        !error.contains("refused"),
        "nothing was offered, nothing refused: {error}"
    );

    // Given them (the file:// mirror takes them, for its lfs_url), it mirrors.
    let token = secret_file(&env, "mirror.token", PASSWORD, 0o600);
    let upstream = path_str(&setup.upstream);
    gpm_ok(
        &env,
        &[
            "set",
            upstream,
            "backup",
            "--username",
            USER,
            "--password-file",
            path_str(&token),
        ],
    );
    gpm_ok(&env, &["sync", upstream]);
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    assert_eq!(server.lfs().objects(), expected_objects(&[&a]));

    // Without the lfs_url, nothing would send them: `set` refuses to drop it.
    let refused = gpm_output(&env, &["set", upstream, "backup", "--lfs-url", ""]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("a local (file://) mirror is never sent a user name or password"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn an_ssh_mirror_gets_its_lfs_objects_where_the_hosts_git_lfs_authenticate_says() {
    if !lfs_and_http_available() || !require_or_skip("sshd", Sshd::available()) {
        return;
    }
    let env = TestEnv::new();
    let sshd = Sshd::start(&env);
    let mirror = env.bare_repo("srv/mirror.git");
    let server = HttpGitServer::start_with_lfs(&env, &env.path("srv"), USER, PASSWORD);
    let known_hosts = env.path("known_hosts");
    std::fs::write(&known_hosts, format!("{}\n", sshd.known_hosts_line())).unwrap();
    let key = env.path("deploy_key");
    let keygen = env
        .cmd("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f", path_str(&key)])
        .output()
        .unwrap();
    crate::support::assert_success(&keygen, "ssh-keygen");

    // As on GitHub, GitLab and Gitea: the deploy key's sessions answer `git-lfs-authenticate`
    // with the LFS endpoint and a token, and run git's own commands.
    let asked = env.path("lfs-authenticate.log");
    let dispatch = env.path("ssh-dispatch");
    let href = format!("{}/info/lfs", server.url("mirror.git"));
    std::fs::write(
        &dispatch,
        format!(
            "#!/bin/sh\ncase \"$SSH_ORIGINAL_COMMAND\" in\n\
             git-lfs-authenticate\\ *)\n  echo \"$SSH_ORIGINAL_COMMAND\" >> '{asked}'\n  \
             printf '{{\"href\": \"%s\", \"header\": {{\"Authorization\": \"Basic %s\"}}, \"expires_in\": 3600}}\\n' \
             '{href}' \"$(printf '%s' '{USER}:{PASSWORD}' | base64)\";;\n\
             git-lfs-transfer\\ *) echo 'git-lfs-transfer: not here' >&2; exit 1;;\n\
             *) exec sh -c \"$SSH_ORIGINAL_COMMAND\";;\nesac\n",
            asked = asked.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&dispatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    sshd.authorize_key(&format!("command=\"{}\" {}", dispatch.display(), public.trim()));

    let flags = ["--ssh-key", path_str(&key), "--known-hosts", path_str(&known_hosts)];
    let setup = Setup::with_url(
        &env,
        env.bare_repo("upstream.git"),
        mirror,
        &sshd.url(&env.path("srv/mirror.git")),
        &flags,
    );
    let config_before = std::fs::read_to_string(setup.upstream.join("config")).unwrap();
    track_lfs(&env, &setup.work);
    let a = commit_lfs_file(&env, &setup.work, "a.bin", "a");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    assert_eq!(server.lfs().objects(), expected_objects(&[&a]));
    let asked = std::fs::read_to_string(&asked).unwrap_or_default();
    assert!(
        asked.contains("git-lfs-authenticate") && asked.contains("upload"),
        "{asked}"
    );
    assert_eq!(
        std::fs::read_to_string(setup.upstream.join("config")).unwrap(),
        config_before
    );
    wait_for_status(&setup, &env, "lfs_status", "ok");
}

#[test]
fn objects_kept_outside_the_repository_by_gitea_or_gitlab_are_found_through_lfs_store() {
    if !lfs_available() {
        return;
    }
    let env = TestEnv::new();
    let shared = env.path("gitea/data/lfs");
    write_global_config(&env, &format!("[defaults]\nlfs_store = \"{}\"\n", shared.display()));
    let setup = Setup::file(&env, &["--lfs-required=true"]);
    track_lfs(&env, &setup.work);
    let a = commit_lfs_file(&env, &setup.work, "a.bin", "a");
    // Pushed with the worker's help only after the objects are where Gitea keeps them:
    // `<data>/lfs/ab/cd/<rest of the oid>`, nothing in the repository.
    gpm_ok(
        &env,
        &["set", path_str(&setup.upstream), "backup", "--enabled", "false"],
    );
    setup.push(&env, &["main"]);
    for (oid, _) in local_store(&setup.upstream) {
        let to = shared.join(&oid[..2]).join(&oid[2..4]).join(&oid[4..]);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let from = setup
            .upstream
            .join("lfs/objects")
            .join(&oid[..2])
            .join(&oid[2..4])
            .join(&oid);
        std::fs::rename(from, to).unwrap();
    }
    std::fs::remove_dir_all(setup.upstream.join("lfs")).unwrap();
    gpm_ok(&env, &["set", path_str(&setup.upstream), "backup", "--enabled", "true"]);
    let sync = gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert!(sync.contains("lfs: ok: 1 object(s)"), "{sync}");
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    assert_eq!(local_store(&setup.mirror), expected_objects(&[&a]));
    let mirrored = std::fs::read(
        setup
            .mirror
            .join("lfs/objects")
            .join(&a.oid[..2])
            .join(&a.oid[2..4])
            .join(&a.oid),
    )
    .unwrap();
    assert_eq!(mirrored, a.content, "the mirror got the object's bytes, not a link");
}
