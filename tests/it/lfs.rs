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

mod credentials;
mod missing_objects;
mod stores;

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
