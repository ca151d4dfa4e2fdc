//! Helpers for driving the `git-push-mirror` binary in integration tests.

use super::{HttpGitServer, TestEnv, assert_success, path_str, require_or_skip, wait_until};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// How long a mirror may take to converge before a test gives up (a deadline, not a measurement).
pub const CONVERGE: Duration = Duration::from_secs(60);

/// A command running the project binary with the test's environment.
pub fn gpm(env: &TestEnv) -> Command {
    env.cmd(env!("CARGO_BIN_EXE_git-push-mirror"))
}

/// Runs the binary with `args`; returns its output whatever the status.
pub fn gpm_output(env: &TestEnv, args: &[&str]) -> Output {
    gpm(env).args(args).output().expect("run git-push-mirror")
}

/// Runs the binary, asserts success, returns stdout.
pub fn gpm_ok(env: &TestEnv, args: &[&str]) -> String {
    let out = gpm_output(env, args);
    assert_success(&out, &format!("git-push-mirror {}", args.join(" ")));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmd` and returns its output, failing the test if it has not finished within `limit`
/// (it is killed then): for commands that must never hang. A deadline, not a measurement.
pub fn output_within(cmd: &mut Command, limit: Duration, what: &str) -> Output {
    Running::start(cmd, what).finish_within(limit)
}

/// A command started with its stdout and stderr read as it runs (a full pipe never blocks it),
/// for a test that acts on it (signals it) before collecting its output.
pub struct Running {
    pub child: std::process::Child,
    what: String,
    out: std::thread::JoinHandle<Vec<u8>>,
    err: std::thread::JoinHandle<Vec<u8>>,
}

impl Running {
    pub fn start(cmd: &mut Command, what: &str) -> Running {
        use std::io::Read;
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let read_all = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        };
        let out = read_all(Box::new(child.stdout.take().expect("piped stdout")));
        let err = read_all(Box::new(child.stderr.take().expect("piped stderr")));
        Running {
            child,
            what: what.to_string(),
            out,
            err,
        }
    }

    /// Waits for it, failing the test if it has not finished within `limit` (it is killed then).
    pub fn finish_within(mut self, limit: Duration) -> Output {
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the command") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not finish within {limit:?}: it hangs", self.what);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            status,
            stdout: self.out.join().unwrap_or_default(),
            stderr: self.err.join().unwrap_or_default(),
        }
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The global configuration file the binary finds through `XDG_CONFIG_HOME`.
pub fn write_global_config(env: &TestEnv, text: &str) {
    let dir = env.home().join(".config/git-push-mirror");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), text).unwrap();
}

/// The embedded default state base.
pub fn state_base(env: &TestEnv) -> PathBuf {
    env.home().join(".local/state/git-push-mirror")
}

pub fn spool_dir(env: &TestEnv) -> PathBuf {
    state_base(env).join("spool")
}

/// Files in a spool subdirectory (`new`, `claimed`, `bad`, `tmp`), including
/// those in per-worker subdirectories (`claimed/<host>.<pid>/`).
pub fn spool_files(env: &TestEnv, sub: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, files)
            } else {
                files.push(path)
            }
        }
    }
    let mut files = Vec::new();
    walk(&spool_dir(env).join(sub), &mut files);
    files
}

/// An upstream bare repository with the hook installed and one mirror, and a work clone.
pub struct Setup {
    pub upstream: PathBuf,
    pub mirror: PathBuf,
    pub work: PathBuf,
}

impl Setup {
    /// `upstream.git` mirrored to `mirror.git` over `file://` (extra `add` flags allowed).
    pub fn file(env: &TestEnv, add_flags: &[&str]) -> Setup {
        let upstream = env.bare_repo("upstream.git");
        let mirror = env.bare_repo("mirror.git");
        let url = format!("file://{}", path_str(&mirror));
        Setup::with_url(env, upstream, mirror, &url, add_flags)
    }

    pub fn with_url(env: &TestEnv, upstream: PathBuf, mirror: PathBuf, url: &str, add_flags: &[&str]) -> Setup {
        let (setup, _) = Setup::add_and_install(env, upstream, &mirror, url, add_flags);
        setup
    }

    /// `add` (returning its output, for tests of its warnings) and `install`.
    pub fn add_and_install(
        env: &TestEnv,
        upstream: PathBuf,
        mirror: &Path,
        url: &str,
        add_flags: &[&str],
    ) -> (Setup, Output) {
        let mut args = vec!["add", path_str(&upstream), "backup", url];
        args.extend_from_slice(add_flags);
        let added = gpm_output(env, &args);
        assert_success(&added, &format!("git-push-mirror {}", args.join(" ")));
        gpm_ok(env, &["install", path_str(&upstream)]);
        let work = env.clone_work(&upstream, "work");
        (
            Setup {
                upstream,
                mirror: mirror.to_path_buf(),
                work,
            },
            added,
        )
    }

    /// `<name>.git` mirrored to `<name>-mirror.git` over `file://` (mirror `backup`, no delay),
    /// with a work clone `<name>-work` and a hook that spools without starting a worker, so the
    /// test decides when workers run.
    pub fn spooling_only(env: &TestEnv, name: &str) -> Setup {
        let upstream = env.bare_repo(&format!("{name}.git"));
        let mirror = env.bare_repo(&format!("{name}-mirror.git"));
        let url = format!("file://{}", path_str(&mirror));
        gpm_ok(env, &["add", path_str(&upstream), "backup", &url, "--delay", "0s"]);
        let hook = format!(
            "#!/bin/sh\nexec '{}' hook post-receive --no-worker\n",
            env!("CARGO_BIN_EXE_git-push-mirror")
        );
        write_hook(&upstream, "post-receive", &hook);
        let work = env.clone_work(&upstream, &format!("{name}-work"));
        Setup { upstream, mirror, work }
    }

    pub fn push(&self, env: &TestEnv, args: &[&str]) {
        let mut all = vec!["push", "--quiet", "origin"];
        all.extend_from_slice(args);
        env.git(&self.work, &all);
    }

    /// Waits until the mirror's branches and tags equal `expected`.
    pub fn wait_for_mirror(&self, env: &TestEnv, expected: &BTreeMap<String, String>) {
        let mut last = BTreeMap::new();
        let converged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until("the mirror converges", CONVERGE, || {
                last = env.refs(&self.mirror);
                &last == expected
            })
        }));
        if converged.is_err() {
            let status = gpm_output(env, &["status", path_str(&self.upstream)]);
            panic!(
                "mirror did not converge\nexpected {expected:#?}\nmirror {last:#?}\nstatus:\n{}{}\nlog:\n{}",
                stdout(&status),
                stderr(&status),
                std::fs::read_to_string(state_base(env).join("git-push-mirror.log")).unwrap_or_default()
            );
        }
    }

    /// Waits until the mirror equals the upstream (branches and tags).
    pub fn wait_converged(&self, env: &TestEnv) {
        let expected = env.refs(&self.upstream);
        self.wait_for_mirror(env, &expected);
    }

    /// The first mirror's `last_error` ("" when none).
    pub fn last_error(&self, env: &TestEnv) -> String {
        self.status_json(env)[0]["last_error"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// `status --json` of the upstream's mirrors.
    pub fn status_json(&self, env: &TestEnv) -> Vec<serde_json::Value> {
        let out = gpm_output(env, &["status", "--json", path_str(&self.upstream)]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("status --json: {e}\n{}", stderr(&out)))
    }
}

/// How a test's mirror is reached, for tests that run over several transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    /// `file://`.
    File,
    /// Smart HTTP with Basic auth (`git http-backend`), user [`HTTP_USER`].
    Http,
}

/// The user name and password the HTTP mirror of [`Setup::over`] accepts.
pub const HTTP_USER: &str = "mirror-bot";
pub const HTTP_PASSWORD: &str = "over-http-s3cret";

impl Over {
    /// Whether the transport's server can run here (see [`require_or_skip`]).
    pub fn usable(self) -> bool {
        match self {
            Over::File => true,
            Over::Http => require_or_skip("git http-backend", HttpGitServer::available()),
        }
    }
}

/// A [`Setup`] and the server its mirror is reached through (stopped when this is dropped).
pub struct Mirrored {
    pub setup: Setup,
    _server: Option<HttpGitServer>,
}

impl std::ops::Deref for Mirrored {
    type Target = Setup;
    fn deref(&self) -> &Setup {
        &self.setup
    }
}

impl Setup {
    /// `upstream.git` mirrored to `srv/mirror.git` `over` file:// or smart HTTP (with a user name
    /// and a password file), hook installed, and a work clone (extra `add` flags allowed).
    pub fn over(env: &TestEnv, over: Over, add_flags: &[&str]) -> Mirrored {
        let upstream = env.bare_repo("upstream.git");
        let mirror = env.bare_repo("srv/mirror.git");
        match over {
            Over::File => {
                let url = format!("file://{}", path_str(&mirror));
                Mirrored {
                    setup: Setup::with_url(env, upstream, mirror, &url, add_flags),
                    _server: None,
                }
            }
            Over::Http => {
                let server = HttpGitServer::start(env, &env.path("srv"), HTTP_USER, HTTP_PASSWORD);
                let token = secret_file(env, "mirror.token", HTTP_PASSWORD, 0o600);
                let mut flags = vec!["--username", HTTP_USER, "--password-file", path_str(&token)];
                flags.extend_from_slice(add_flags);
                let url = server.url("mirror.git");
                Mirrored {
                    setup: Setup::with_url(env, upstream, mirror, &url, &flags),
                    _server: Some(server),
                }
            }
        }
    }
}

/// An LFS object committed in a work tree: its sha256 and contents.
#[derive(Clone, Debug)]
pub struct LfsFile {
    pub oid: String,
    pub content: Vec<u8>,
}

/// Makes `work` track `*.bin` with LFS; its pushes then upload LFS objects into the upstream
/// repository's own store (git-lfs's file:// transfer), as a git server with LFS would hold them.
pub fn track_lfs(env: &TestEnv, work: &Path) {
    env.git(work, &["lfs", "install", "--local"]);
    env.git(work, &["lfs", "track", "*.bin"]);
    env.git(work, &["add", ".gitattributes"]);
    env.git(work, &["commit", "--quiet", "-m", "track *.bin with LFS"]);
}

/// Commits `file` with contents unique to `seed` (several kilobytes, so not a pointer).
pub fn commit_lfs_file(env: &TestEnv, work: &Path, file: &str, seed: &str) -> LfsFile {
    let content = format!("{seed}: LFS payload line\n").repeat(300);
    env.commit(work, file, &content, &format!("add {file}"));
    LfsFile {
        oid: super::lfs::sha256_hex(content.as_bytes()),
        content: content.into_bytes(),
    }
}

/// Gitea's `hooks/post-receive` (modules/repository/hooks.go, ScriptType "bash"): it buffers
/// the push's input and replays it to every executable file in `post-receive.d/`.
pub const GITEA_POST_RECEIVE: &str = r#"#!/usr/bin/env bash
# AUTO GENERATED BY GITEA, DO NOT MODIFY
data=$(cat)
exitcodes=""
hookname=$(basename $0)
GIT_DIR=${GIT_DIR:-$(dirname $0)/..}

for hook in ${GIT_DIR}/hooks/${hookname}.d/*; do
  test -x "${hook}" && test -f "${hook}" || continue
  echo "${data}" | "${hook}"
  exitcodes="${exitcodes} $?"
done

for i in ${exitcodes}; do
  [ ${i} -eq 0 ] || exit ${i}
done
"#;

/// Installs a hook script into a bare repository.
pub fn write_hook(repo: &Path, name: &str, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = repo.join("hooks").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Makes the mirror count the pushes it receives (one line per receive-pack in `pushes.log`).
pub fn count_mirror_pushes(mirror: &Path) -> PathBuf {
    let log = mirror.join("pushes.log");
    write_hook(
        mirror,
        "post-receive",
        &format!("#!/bin/sh\necho push >> '{}'\n", log.display()),
    );
    log
}

pub fn lines_in(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

/// `app.git`, whose HEAD is `develop`, with `develop` (two commits), `main` (the first) and an
/// annotated tag `v1`, and its work clone `work`.
pub fn upstream_on_develop(env: &TestEnv) -> (PathBuf, PathBuf) {
    let upstream = env.bare_repo("app.git");
    env.git(&upstream, &["symbolic-ref", "HEAD", "refs/heads/develop"]);
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "one");
    env.git(
        &work,
        &[
            "push",
            "-q",
            "origin",
            "HEAD:refs/heads/develop",
            "HEAD:refs/heads/main",
        ],
    );
    env.commit(&work, "b.txt", "two", "two");
    env.git(&work, &["tag", "-a", "-m", "v1", "v1"]);
    env.git(&work, &["push", "-q", "origin", "HEAD:refs/heads/develop", "v1"]);
    (upstream, work)
}

/// A file holding `content` with `mode`.
pub fn secret_file(env: &TestEnv, name: &str, content: &str, mode: u32) -> PathBuf {
    let path = env.path(name);
    std::fs::write(&path, format!("{content}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// Every file under `dir` whose bytes contain `secret`.
pub fn files_containing(dir: &Path, secret: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path).is_ok_and(|b| b.windows(secret.len()).any(|w| w == secret.as_bytes())) {
                found.push(path);
            }
        }
    }
    found
}

/// The secret is in no file under the state base (spool, state, log), in
/// neither configuration file, and in no output of `status`, `status --json`,
/// `list` or `check`.
pub fn assert_secret_nowhere(env: &TestEnv, upstream: &Path, secret: &str) {
    let base = state_base(env);
    assert!(base.join("git-push-mirror.log").exists() || base.join("state").exists());
    let leaked = files_containing(&base, secret);
    assert!(leaked.is_empty(), "the secret is stored in {leaked:?}");
    let leaked = files_containing(upstream, secret);
    assert!(leaked.is_empty(), "the secret is in the repository: {leaked:?}");
    for args in [
        vec!["status", path_str(upstream)],
        vec!["status", "--json", path_str(upstream)],
        vec!["list"],
        vec!["check", path_str(upstream)],
    ] {
        let out = gpm_output(env, &args);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains(secret), "`{}` shows the secret:\n{all}", args.join(" "));
    }
}

/// `add` flags for a mirror behind `sshd`: a mode-600 copy of the key it authorizes and a
/// known_hosts file that trusts its host key.
pub fn ssh_mirror_flags(env: &TestEnv, sshd: &super::Sshd) -> Vec<String> {
    let key = env.path("keys/mirror_key");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::copy(sshd.client_key(), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let known_hosts = env.path("keys/known_hosts");
    std::fs::write(&known_hosts, format!("{}\n", sshd.known_hosts_line())).unwrap();
    ["--ssh-key", path_str(&key), "--known-hosts", path_str(&known_hosts)]
        .iter()
        .map(|flag| flag.to_string())
        .collect()
}
