//! The test LFS server (`tests/it/support/lfs.rs`) against the real `git lfs` client: pushes store each
//! object once with the right content, a second push uploads nothing, a fresh clone pulls the real
//! bytes back, and wrong LFS credentials fail while git's still work. Also the API's error answers
//! for requests the client never makes (malformed batch, bad content, no credentials).

use crate::support::lfs::{self, sha256_hex};
use crate::support::{HttpGitServer, TestEnv, assert_success, path_str, require_or_skip};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "lfs-bot";
const PASSWORD: &str = "lfs-pass";

/// How long one `git-lfs` command may take before the test kills it (a deadline, not a measurement).
const LFS_DEADLINE: Duration = Duration::from_secs(120);

/// Both servers' tools; under CI a missing one fails the test instead of skipping it.
fn lfs_available() -> bool {
    require_or_skip("git http-backend", HttpGitServer::available()) && require_or_skip("git-lfs", lfs::available())
}

/// An empty bare `mirror.git` served over smart HTTP with LFS, and a [`CredentialHelper`] in the
/// test's global git config (for git and git-lfs alike).
struct LfsRemote {
    server: HttpGitServer,
    bare: PathBuf,
    url: String,
    helper: CredentialHelper,
}

fn lfs_remote(env: &mut TestEnv) -> LfsRemote {
    // No terminal prompt: a refused credential must fail the command, not wait for a human.
    env.set_env("GIT_TERMINAL_PROMPT", "0");
    let helper = CredentialHelper::install(env);
    let bare = env.bare_repo("srv/mirror.git");
    let server = HttpGitServer::start_with_lfs(env, &env.path("srv"), USER, PASSWORD);
    let url = server.url("mirror.git");
    LfsRemote {
        server,
        bare,
        url,
        helper,
    }
}

/// A credential helper answering `USER`/`PASSWORD` until git or git-lfs rejects the credential
/// once (`erase`), then nothing, as a helper that stores credentials would. It must stop: git-lfs
/// 3.3 retries a rejected credential for as long as the helper supplies it again, without end.
struct CredentialHelper {
    /// Exists once the credential was rejected.
    rejected: PathBuf,
}

impl CredentialHelper {
    fn install(env: &TestEnv) -> CredentialHelper {
        let (script, rejected) = (env.path("credential-helper.sh"), env.path("credential-rejected"));
        let body = format!(
            "#!/bin/sh\ncat >/dev/null\ncase \"$1\" in\n  \
             get) [ -e '{rejected}' ] || printf 'username=%s\\npassword=%s\\n' '{USER}' '{PASSWORD}' ;;\n  \
             erase) : > '{rejected}' ;;\nesac\n",
            rejected = rejected.display()
        );
        std::fs::write(&script, body).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        env.git(
            env.root(),
            &["config", "--global", "credential.helper", path_str(&script)],
        );
        CredentialHelper { rejected }
    }

    fn was_rejected(&self) -> bool {
        self.rejected.exists()
    }

    /// Answers again after a rejection.
    fn reset(&self) {
        let _ = std::fs::remove_file(&self.rejected);
    }
}

/// Runs `git-lfs args` in `dir` (the binary itself, so a kill reaches it) and returns its output,
/// whatever the status; panics if it runs past [`LFS_DEADLINE`] rather than hang the suite.
fn git_lfs(env: &TestEnv, dir: &Path, args: &[&str]) -> Output {
    let mut child = env
        .cmd("git-lfs")
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run git-lfs");
    // Drain both pipes from threads, so a chatty child never blocks on a full pipe.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + LFS_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("git-lfs {} ran past {LFS_DEADLINE:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// `git clone <url> <root>/<name>` with LFS hooks and filters installed in the clone only.
fn lfs_clone(env: &TestEnv, url: &str, name: &str) -> PathBuf {
    let path = env.path(name);
    env.git(env.root(), &["clone", "--quiet", url, path_str(&path)]);
    env.git(&path, &["lfs", "install", "--local"]);
    path
}

/// Deterministic binary content of `len` bytes (zeros and high bytes included), distinct per `seed`.
fn binary(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

/// Writes and stages `files` in `work`, commits them, and returns oid → size of each.
fn commit_files(env: &TestEnv, work: &Path, files: &[(&str, &[u8])], msg: &str) -> BTreeMap<String, u64> {
    for (name, content) in files {
        std::fs::write(work.join(name), content).unwrap();
        env.git(work, &["add", "--", name]);
    }
    env.git(work, &["commit", "--quiet", "-m", msg]);
    files
        .iter()
        .map(|(_, content)| (sha256_hex(content), content.len() as u64))
        .collect()
}

fn run(env: &TestEnv, dir: &Path, args: &[&str]) -> Output {
    env.git_output(dir, args)
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every stored object's content hashes to its name, and has the size the store reports.
fn assert_store_consistent(remote: &LfsRemote) {
    for (oid, size) in remote.server.lfs().objects() {
        let content = std::fs::read(remote.server.lfs().object_path(&oid)).unwrap();
        assert_eq!(
            sha256_hex(&content),
            oid,
            "stored object content does not match its oid"
        );
        assert_eq!(content.len() as u64, size);
    }
}

#[test]
fn git_lfs_pushes_each_object_once_pulls_it_back_and_fails_on_wrong_lfs_credentials() {
    if !lfs_available() {
        return;
    }
    let mut env = TestEnv::new();
    let remote = lfs_remote(&mut env);
    let store = remote.server.lfs();

    // 1. Three binary files over two commits, pushed by the real client through the pre-push hook.
    let work = lfs_clone(&env, &remote.url, "work");
    env.git(&work, &["lfs", "track", "*.bin"]);
    env.git(&work, &["add", ".gitattributes"]);
    let (a, b, c) = (binary(1, 1000), binary(2, 70_000), binary(3, 300_000));
    let mut expected = commit_files(&env, &work, &[("a.bin", &a), ("b.bin", &b)], "first");
    expected.extend(commit_files(&env, &work, &[("c.bin", &c)], "second"));
    assert_eq!(expected.len(), 3);
    let pushed = run(&env, &work, &["push", "origin", "main"]);
    assert_success(&pushed, "git push with LFS objects");
    assert_eq!(store.objects(), expected, "the store holds exactly the pushed objects");
    assert_store_consistent(&remote);
    let once: BTreeMap<String, usize> = expected.keys().map(|oid| (oid.clone(), 1)).collect();
    assert_eq!(store.uploads(), once, "each object is uploaded exactly once");
    assert!(store.batch_requests("upload") >= 1);
    assert_eq!(store.auth_failures(), 0);
    // The git objects reached the bare repository, with pointers instead of contents.
    let blob = env.git(&remote.bare, &["cat-file", "-p", "main:c.bin"]);
    assert!(blob.starts_with("version https://git-lfs.github.com/spec/v1"), "{blob}");
    assert!(blob.contains(&sha256_hex(&c)), "{blob}");

    // 2. Pushing again uploads nothing: the batch answers "already there" for every object.
    let batches = store.batch_requests("upload");
    assert_success(&run(&env, &work, &["push", "origin", "main"]), "second git push");
    let all = git_lfs(&env, &work, &["push", "--all", "origin"]);
    assert_success(&all, "git lfs push --all");
    assert!(
        store.batch_requests("upload") > batches,
        "lfs push --all asked the server"
    );
    assert_eq!(store.uploads(), once, "nothing is uploaded twice");

    // 3. A fresh clone gets pointer files; `git lfs pull` replaces them with the real bytes.
    let fresh = lfs_clone(&env, &remote.url, "fresh");
    assert_success(&git_lfs(&env, &fresh, &["pull"]), "git lfs pull");
    for (name, content) in [("a.bin", &a), ("b.bin", &b), ("c.bin", &c)] {
        let pulled = std::fs::read(fresh.join(name)).unwrap();
        assert!(
            pulled == *content,
            "{name}: pulled {} bytes, not the pushed content",
            pulled.len()
        );
    }
    assert!(store.batch_requests("download") >= 1);

    // 4. A wrong LFS password (git's is still right) fails the upload of a new object.
    store.set_password("other");
    let d = binary(4, 5000);
    let new = commit_files(&env, &work, &[("d.bin", &d)], "third");
    let refused = git_lfs(&env, &work, &["push", "--all", "origin"]);
    assert!(
        !refused.status.success(),
        "git lfs push succeeded with a wrong password:\n{}",
        text(&refused)
    );
    assert!(store.auth_failures() > 0, "{}", text(&refused));
    assert!(
        remote.helper.was_rejected(),
        "git-lfs did not reject the credential:\n{}",
        text(&refused)
    );
    let new_oid = new.keys().next().unwrap();
    assert!(!store.objects().contains_key(new_oid), "the object was stored anyway");
    // Git itself still authenticates with the same credential: only LFS refused it.
    remote.helper.reset();
    env.git(&work, &["ls-remote", "origin"]);
    assert_eq!(remote.server.auth_failures(), 0, "git never saw a wrong password");
}

/// One raw HTTP/1.1 request to the test server; returns the status code, head and body.
fn http(server: &HttpGitServer, method: &str, path: &str, auth: Option<&str>, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some((user, password)) = auth.and_then(|a| a.split_once(':')) {
        head.push_str(&format!(
            "Authorization: Basic {}\r\n",
            base64(&format!("{user}:{password}"))
        ));
    }
    head.push_str("Content-Type: application/vnd.git-lfs+json\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, head, response[split + 4..].to_vec())
}

/// Standard base64, for the test's own Authorization headers.
fn base64(input: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63])
            } else {
                '='
            });
        }
    }
    out
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

#[test]
fn the_server_answers_bad_requests_as_the_batch_api_says() {
    if !require_or_skip("git http-backend", HttpGitServer::available()) {
        return;
    }
    let env = TestEnv::new();
    env.bare_repo("srv/mirror.git");
    let server = HttpGitServer::start_with_lfs(&env, &env.path("srv"), USER, PASSWORD);
    let creds = Some(format!("{USER}:{PASSWORD}"));
    let auth = creds.as_deref();
    let batch = "/mirror.git/info/lfs/objects/batch";
    let content = b"hello lfs";
    let oid = sha256_hex(content);

    // No credentials, then wrong ones: 401 with the LFS challenge; only wrong ones are failures.
    let (status, head, body) = http(&server, "POST", batch, None, b"{}");
    assert_eq!(status, 401);
    assert!(head.contains("LFS-Authenticate: Basic realm=\"git-lfs\""), "{head}");
    assert_eq!(json(&body)["message"], "Credentials needed");
    assert_eq!(server.lfs().auth_failures(), 0);
    assert_eq!(http(&server, "POST", batch, Some("lfs-bot:nope"), b"{}").0, 401);
    assert_eq!(server.lfs().auth_failures(), 1);

    // Malformed batches: 422 with a message.
    for bad in [
        "not json".to_owned(),
        r#"{"operation":"delete","objects":[]}"#.to_owned(),
        format!(r#"{{"operation":"upload","objects":[{{"oid":"{oid}","size":-1}}]}}"#),
        r#"{"operation":"upload","objects":[{"oid":"ABC","size":1}]}"#.to_owned(),
        format!(r#"{{"operation":"upload","transfers":["tus"],"objects":[{{"oid":"{oid}","size":1}}]}}"#),
    ] {
        let (status, _, body) = http(&server, "POST", batch, auth, bad.as_bytes());
        assert_eq!(status, 422, "{bad}: {}", String::from_utf8_lossy(&body));
        assert!(json(&body)["message"].is_string());
    }

    // Upload: actions with absolute hrefs and the batch's Authorization echoed.
    let upload = format!(r#"{{"operation":"upload","transfers":["basic"],"objects":[{{"oid":"{oid}","size":9}}]}}"#);
    let (status, head, body) = http(&server, "POST", batch, auth, upload.as_bytes());
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: application/vnd.git-lfs+json"), "{head}");
    let answer = json(&body);
    assert_eq!(answer["transfer"], "basic");
    let actions = &answer["objects"][0]["actions"];
    let href = format!("http://127.0.0.1:{}/mirror.git/info/lfs/objects/{oid}", server.port());
    assert_eq!(actions["upload"]["href"], href);
    assert!(
        actions["upload"]["header"]["Authorization"]
            .as_str()
            .unwrap()
            .starts_with("Basic ")
    );
    assert!(
        actions["verify"]["href"]
            .as_str()
            .unwrap()
            .ends_with("/mirror.git/info/lfs/verify")
    );

    // A body that does not hash to the oid is refused; the right one is stored.
    let path = format!("/mirror.git/info/lfs/objects/{oid}");
    assert_eq!(http(&server, "PUT", &path, auth, b"other bytes").0, 422);
    assert!(server.lfs().objects().is_empty());
    assert_eq!(http(&server, "PUT", &path, auth, content).0, 200);
    assert_eq!(server.lfs().uploads().get(&oid), Some(&1));
    let verify = format!(r#"{{"oid":"{oid}","size":9}}"#);
    assert_eq!(
        http(&server, "POST", "/mirror.git/info/lfs/verify", auth, verify.as_bytes()).0,
        200
    );
    let wrong_size = format!(r#"{{"oid":"{oid}","size":8}}"#);
    assert_eq!(
        http(
            &server,
            "POST",
            "/mirror.git/info/lfs/verify",
            auth,
            wrong_size.as_bytes()
        )
        .0,
        404
    );

    // Stored now: an upload batch has no actions for it; a download batch has one, or an error.
    let (_, _, body) = http(&server, "POST", batch, auth, upload.as_bytes());
    assert!(json(&body)["objects"][0].get("actions").is_none());
    let missing = "0".repeat(64);
    let download =
        format!(r#"{{"operation":"download","objects":[{{"oid":"{oid}","size":9}},{{"oid":"{missing}","size":1}}]}}"#);
    let (_, _, body) = http(
        &server,
        "POST",
        "/lfs/anything/objects/batch",
        auth,
        download.as_bytes(),
    );
    let objects = &json(&body)["objects"];
    let href = format!("http://127.0.0.1:{}/lfs/anything/objects/{oid}", server.port());
    assert_eq!(objects[0]["actions"]["download"]["href"], href);
    assert_eq!(objects[1]["error"]["code"], 404);
    let (status, _, bytes) = http(&server, "GET", &path, auth, b"");
    assert_eq!((status, bytes.as_slice()), (200, &content[..]));
    assert_eq!(
        http(&server, "GET", &format!("/lfs/x/objects/{missing}"), auth, b"").0,
        404
    );

    // Locking is not supported: 404.
    assert_eq!(
        http(&server, "POST", "/mirror.git/info/lfs/locks/verify", auth, b"{}").0,
        404
    );
    assert_eq!(server.lfs().batch_requests("upload"), 2);
    assert_eq!(server.lfs().batch_requests("download"), 1);
}

#[test]
fn a_server_without_lfs_answers_404_to_lfs_requests() {
    if !require_or_skip("git http-backend", HttpGitServer::available()) {
        return;
    }
    let env = TestEnv::new();
    env.bare_repo("srv/mirror.git");
    let server = HttpGitServer::start(&env, &env.path("srv"), USER, PASSWORD);
    let creds = format!("{USER}:{PASSWORD}");
    let body = br#"{"operation":"upload","objects":[]}"#;
    assert_eq!(
        http(
            &server,
            "POST",
            "/mirror.git/info/lfs/objects/batch",
            Some(&creds),
            body
        )
        .0,
        404
    );
}
