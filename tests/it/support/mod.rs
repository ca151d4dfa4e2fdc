//! Integration-test harness: isolated git environments and real git servers.
//!
//! Every test builds one [`TestEnv`]: a temporary directory with its own
//! `HOME`, a fixed identity and clock for commits, and no inherited git
//! configuration or location variables. Everything runs the real `git`.
//!
//! The servers cover the transports the mirror pushes over, each bound to
//! `127.0.0.1:0` by the harness itself so tests never race for a port:
//!
//! - [`GitDaemon`]: `git daemon --inetd` spawned per connection (`git://`);
//! - [`HttpGitServer`]: smart HTTP with Basic auth, `git http-backend` as CGI,
//!   optionally with a Git LFS server ([`lfs`]) beside it;
//! - [`HttpsGitServer`]: nginx + fcgiwrap + `git http-backend` over TLS, with a
//!   certificate from a CA made in the test;
//! - [`Sshd`]: a real OpenSSH server run as the current user.
//!
//! For time: [`FakeClock`] (libfaketime, for the binary alone). For a network that drops
//! pushes mid-pack: [`CuttingProxy`].
//! For the mirror's side: [`ForgeServer`], a GitHub, GitLab or Gitea API over HTTPS held to the
//! forge's own description, serving the repositories it creates over smart HTTP.
//!
//! For notifications: [`WebhookReceiver`] (HTTP or HTTPS, recording what is posted) and
//! [`SmtpServer`] (aiosmtpd, behind msmtp's sendmail).

pub mod binary;
mod clock;
mod daemon;
mod forge;
mod http;
pub mod lfs;
mod nginx;
pub mod procs;
mod proxy;
mod smtp;
mod sshd;
mod users;
mod webhook;

pub use {
    clock::FakeClock,
    daemon::GitDaemon,
    forge::{ForgeKind, ForgeServer, ForgeSetup},
    http::{HttpGitServer, Misbehaviour, basic_credentials},
    nginx::{HttpsGitServer, ServerCertificate, TestCa},
    proxy::CuttingProxy,
    smtp::SmtpServer,
    sshd::Sshd,
    users::TestUser,
    webhook::WebhookReceiver,
};

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Author and committer date of the first commit; later commits add seconds.
const BASE_DATE: u64 = 1_700_000_000;

/// The environment of server-side git (daemon, ssh sessions): no user or
/// system config, and no automatic gc or maintenance, which `receive-pack`
/// would otherwise start detached after a push, outliving the test.
pub const SERVER_GIT_ENV: &[(&str, &str)] = &[
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_CONFIG_COUNT", "2"),
    ("GIT_CONFIG_KEY_0", "gc.auto"),
    ("GIT_CONFIG_VALUE_0", "0"),
    ("GIT_CONFIG_KEY_1", "maintenance.auto"),
    ("GIT_CONFIG_VALUE_1", "false"),
    ("LC_ALL", "C"),
];

/// Variables removed from every child even though they do not start with
/// `GIT_`: they would let a developer's agent, proxy or prompt leak into a test.
const REMOVED_VARS: &[&str] = &[
    "SSH_AUTH_SOCK",
    "SSH_ASKPASS",
    "SSH_ASKPASS_REQUIRE",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "LANGUAGE",
];

/// The environment given to a child process: variables to set, and every
/// inherited `GIT_*` variable (plus [`REMOVED_VARS`]) that is not set here
/// removed. Cheap to clone, so servers can apply it from their own threads.
#[derive(Clone, Debug, Default)]
pub struct ChildEnv {
    vars: BTreeMap<OsString, OsString>,
    removed: BTreeSet<OsString>,
}

impl ChildEnv {
    /// An environment for server-side git that reads no user or system
    /// configuration, and never detaches background gc or maintenance
    /// after a push (see [`SERVER_GIT_ENV`]).
    pub fn isolated_server() -> ChildEnv {
        let mut env = ChildEnv::default();
        for (key, value) in SERVER_GIT_ENV {
            env.set(key, value);
        }
        env
    }

    /// Sets `key` for every child (overriding an earlier value).
    pub fn set(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) {
        let key = key.as_ref().to_os_string();
        self.removed.remove(&key);
        self.vars.insert(key, value.as_ref().to_os_string());
    }

    /// Removes `key` from every child's environment.
    pub fn remove(&mut self, key: impl AsRef<OsStr>) {
        let key = key.as_ref().to_os_string();
        self.vars.remove(&key);
        self.removed.insert(key);
    }

    /// Applies the environment to `cmd`: inherited `GIT_*` variables and the
    /// usual leaks are removed, then this environment's variables are set.
    pub fn apply(&self, cmd: &mut Command) {
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            let leaky = name.starts_with("GIT_") || REMOVED_VARS.contains(&name.as_ref());
            if leaky && !self.vars.contains_key(&key) {
                cmd.env_remove(&key);
            }
        }
        for key in &self.removed {
            cmd.env_remove(key);
        }
        cmd.envs(&self.vars);
    }
}

/// The object format and ref storage of the repositories a test creates: every `git init`
/// and `git clone` of a [`TestEnv::with_format`] gets them (a clone of an existing
/// repository keeps its object format, as git does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepoFormat {
    /// `sha1` or `sha256` (`--object-format`).
    pub object: &'static str,
    /// `files` or `reftable` (`--ref-format`).
    pub refs: &'static str,
}

impl RepoFormat {
    pub fn sha1() -> RepoFormat {
        RepoFormat {
            object: "sha1",
            refs: "files",
        }
    }

    pub fn sha256() -> RepoFormat {
        RepoFormat {
            object: "sha256",
            refs: "files",
        }
    }

    pub fn reftable() -> RepoFormat {
        RepoFormat {
            object: "sha1",
            refs: "reftable",
        }
    }

    pub fn sha256_reftable() -> RepoFormat {
        RepoFormat {
            object: "sha256",
            refs: "reftable",
        }
    }

    /// Asserts that `repo` has this format (a test of a format must really run on it).
    pub fn assert_of(self, env: &TestEnv, repo: &Path) {
        let object = env.git(repo, &["rev-parse", "--show-object-format"]);
        assert_eq!(object, self.object, "{}: object format", repo.display());
        // `--show-ref-format` is git 2.45's, like reftable.
        let reftable = repo.join("reftable").is_dir();
        assert_eq!(reftable, self.refs == "reftable", "{}: ref format", repo.display());
    }

    /// Whether the git on PATH can create these repositories (reftable: git 2.45); a test
    /// that needs it runs, is skipped with a reason, or fails under CI (see [`require_or_skip`]).
    pub fn usable(self) -> bool {
        if self.refs == "files" {
            return true;
        }
        require_or_skip("git 2.45 or newer (reftable)", git_at_least(2, 45))
    }
}

/// Whether the git on PATH is at least `major.minor`.
pub fn git_at_least(major: u32, minor: u32) -> Result<(), String> {
    let out = Command::new("git")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version: Vec<u32> = text
        .trim()
        .trim_start_matches("git version ")
        .split(['.', ' '])
        .take(2)
        .map_while(|part| part.parse().ok())
        .collect();
    match version[..] {
        [a, b] if (a, b) >= (major, minor) => Ok(()),
        _ => Err(format!("{} is older than {major}.{minor}", text.trim())),
    }
}

/// Runs a test function once per listed variant, each as a test of its own, `NAME::VARIANT`:
/// `in_each_format!(NAME: sha256_http => sha256 over Over::Http, ...)` calls `NAME(format, over)`
/// and `in_each_format!(NAME: sha256 => sha256, ...)` calls `NAME(format)`. The format is a
/// [`RepoFormat`] constructor; `over` is the transport for the test to use (`Over::usable`).
#[macro_export]
macro_rules! in_each_format {
    ($($name:ident: $($variant:ident => $format:ident $(over $over:expr)?),+ $(,)?);+ $(;)?) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $variant() {
                    let format = $crate::support::RepoFormat::$format();
                    if format.usable() $(&& $over.usable())? {
                        super::$name(format $(, $over)?);
                    }
                }
            )+
        }
    )+};
}

/// One test's private world: a temporary root, a `home/` inside it, and the
/// environment every child process gets: whatever the machine's or the user's
/// git-push-mirror configuration says, the binary finds only the test's (`HOME`,
/// `XDG_*`, and the system file in `etc/` of the root). Dropping it deletes the directory.
pub struct TestEnv {
    root: tempfile::TempDir,
    env: ChildEnv,
    commits: AtomicU64,
}

impl Default for TestEnv {
    fn default() -> TestEnv {
        TestEnv::new()
    }
}

impl TestEnv {
    /// Creates the temporary root, `home/` and the global git config
    /// (`user.name`, `user.email`, `init.defaultBranch=main`,
    /// `protocol.file.allow=always`, and no automatic gc or maintenance:
    /// git would otherwise detach background processes that outlive the
    /// command and may still be writing when the directory is removed).
    pub fn new() -> TestEnv {
        let root = tempfile::Builder::new()
            .prefix("git-push-mirror-test.")
            .tempdir()
            .expect("create the test's temporary directory");
        let home = root.path().join("home");
        for dir in [".config", ".local/state"] {
            fs::create_dir_all(home.join(dir)).expect("create the test's home directory");
        }
        let gitconfig = home.join(".gitconfig");
        fs::write(
            &gitconfig,
            "[user]\n\tname = Test User\n\temail = test@example.com\n\
             [init]\n\tdefaultBranch = main\n\
             [protocol \"file\"]\n\tallow = always\n\
             [maintenance]\n\tauto = false\n\
             [gc]\n\tauto = 0\n",
        )
        .expect("write the test's global git config");

        let mut env = ChildEnv::default();
        env.set("HOME", &home);
        env.set("XDG_CONFIG_HOME", home.join(".config"));
        env.set("XDG_STATE_HOME", home.join(".local/state"));
        // The system-wide global configuration is the test's too (a file it may create), never
        // the machine's /etc/git-push-mirror/config.toml (`.ci/sentinel` checks it).
        env.set(
            "GIT_PUSH_MIRROR_SYSTEM_CONFIG",
            root.path().join("etc/git-push-mirror/config.toml"),
        );
        env.set("GIT_CONFIG_NOSYSTEM", "1");
        env.set("GIT_CONFIG_GLOBAL", &gitconfig);
        env.set("GIT_AUTHOR_NAME", "Test Author");
        env.set("GIT_AUTHOR_EMAIL", "author@example.com");
        env.set("GIT_COMMITTER_NAME", "Test Committer");
        env.set("GIT_COMMITTER_EMAIL", "committer@example.com");
        let date = format!("{BASE_DATE} +0000");
        env.set("GIT_AUTHOR_DATE", &date);
        env.set("GIT_COMMITTER_DATE", &date);
        env.set("LC_ALL", "C");
        TestEnv {
            root,
            env,
            commits: AtomicU64::new(0),
        }
    }

    /// [`TestEnv::new`] whose `git init` and `git clone` create repositories of `format`.
    pub fn with_format(format: RepoFormat) -> TestEnv {
        let mut env = TestEnv::new();
        env.set_env("GIT_DEFAULT_HASH", format.object);
        env.set_env("GIT_DEFAULT_REF_FORMAT", format.refs);
        env
    }

    /// The temporary root directory.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `rel` under the temporary root (not created).
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.path().join(rel)
    }

    /// The test's `HOME`.
    pub fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// Adds (or overrides) a variable for every child started from now on.
    pub fn set_env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) {
        self.env.set(key, value);
    }

    /// Removes a variable from every child started from now on.
    pub fn remove_env(&mut self, key: impl AsRef<OsStr>) {
        self.env.remove(key);
    }

    /// The environment applied to children, for servers that run git.
    pub fn child_env(&self) -> &ChildEnv {
        &self.env
    }

    /// A command for `program` with the test's environment, stdin null and
    /// the temporary root as working directory (so nothing ever finds the
    /// project's own repository by discovery). Override as needed.
    pub fn cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        self.env.apply(&mut cmd);
        cmd.current_dir(self.root()).stdin(Stdio::null());
        cmd
    }

    /// Runs `git args` in `dir` and returns its output, whatever the status.
    pub fn git_output(&self, dir: &Path, args: &[&str]) -> Output {
        self.cmd("git")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("run git (is it on PATH?)")
    }

    /// Runs `git args` in `dir`, panics with its stderr unless it succeeds,
    /// and returns its trimmed stdout.
    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.git_output(dir, args);
        assert_success(&out, &format!("git {} (in {})", args.join(" "), dir.display()));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// [`git`](Self::git) with `input` on its stdin.
    pub fn git_with_input(&self, dir: &Path, args: &[&str], input: &str) -> String {
        use std::io::Write;
        let mut child = self
            .cmd("git")
            .current_dir(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run git (is it on PATH?)");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("write git's input");
        let out = child.wait_with_output().expect("wait for git");
        assert_success(&out, &format!("git {} (in {})", args.join(" "), dir.display()));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `git init --bare <root>/<name>`; returns the repository's path.
    pub fn bare_repo(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        fs::create_dir_all(&path).expect("create the bare repository's directory");
        self.git(&path, &["init", "--quiet", "--bare"]);
        path
    }

    /// `git clone <bare> <root>/<name>`; returns the work tree's path.
    pub fn clone_work(&self, bare: &Path, name: &str) -> PathBuf {
        let path = self.path(name);
        let (src, dst) = (path_str(bare), path_str(&path));
        self.git(self.root(), &["clone", "--quiet", src, dst]);
        path
    }

    /// Writes `file` (relative to `work`) with `content`, adds and commits it
    /// with a date one second after the previous commit of this test, and
    /// returns the new commit's full id.
    pub fn commit(&self, work: &Path, file: &str, content: &str, msg: &str) -> String {
        let target = work.join(file);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).expect("create the committed file's directory");
        }
        fs::write(&target, content).expect("write the committed file");
        self.git(work, &["add", "--", file]);
        let n = self.commits.fetch_add(1, Ordering::Relaxed) + 1;
        let date = format!("{} +0000", BASE_DATE + n);
        let out = self
            .cmd("git")
            .current_dir(work)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .args(["commit", "--quiet", "-m", msg])
            .output()
            .expect("run git commit");
        assert_success(&out, &format!("git commit -m {msg:?} (in {})", work.display()));
        self.git(work, &["rev-parse", "HEAD"])
    }

    /// The repository's branches and tags: full ref name → object id
    /// (annotated tags map to the tag object, not the commit).
    pub fn refs(&self, repo: &Path) -> BTreeMap<String, String> {
        let out = self.git(
            repo,
            &[
                "for-each-ref",
                "--format=%(refname) %(objectname)",
                "refs/heads",
                "refs/tags",
            ],
        );
        out.lines()
            .map(|line| {
                let (name, oid) = line.split_once(' ').expect("for-each-ref prints `refname objectname`");
                (name.to_owned(), oid.to_owned())
            })
            .collect()
    }
}

/// Panics with the command's status, stdout and stderr unless it succeeded.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// A path as `&str`; temporary paths are always UTF-8 here.
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Polls `f` every 20 ms until it returns true; panics naming `what` if it
/// has not within `timeout`. This is a deadline for convergence, not a
/// timing assertion: pick a generous timeout.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a test that needs `tool` should run. `Ok` → true. A missing tool
/// skips the test (false, reason on stderr, see [`report_skip`]) on a developer's
/// machine, but panics when `CI=true`: under CI a missing tool must fail the suite.
pub fn require_or_skip(tool: &str, available: Result<(), String>) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    match skip_reason(ci, tool, available) {
        None => true,
        Some(why) => {
            report_skip(&why);
            false
        }
    }
}

/// [`require_or_skip`]'s decision, with the CI decision made by the caller: `None` to run, the
/// reason to skip, or a panic under CI.
pub fn skip_reason(ci: bool, tool: &str, available: Result<(), String>) -> Option<String> {
    match available {
        Ok(()) => None,
        Err(why) if ci => panic!("{tool} is required under CI (CI=true): {why}"),
        Err(why) => Some(format!("{tool} is not available: {why}")),
    }
}

/// Says on the test process's own stderr, past the test harness's capture (which shows a passing
/// test's output to no one), that the running test was skipped and why: one `SKIPPED: TEST: why`
/// line, which `cargo test` shows beside the test's `ok` and `.ci/run` counts.
fn report_skip(why: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    // One write, so lines of tests running in parallel cannot cut it.
    let _ = std::io::stderr().write_all(format!("SKIPPED: {test}: {why}\n").as_bytes());
}

/// A python3 that can import `module`: the one on PATH, else Debian's (`/usr/bin/python3`), for
/// servers written in Python (aiosmtpd, the forge APIs).
pub fn python_importing(module: &str, install: &str) -> Result<String, String> {
    for python in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(python)
            .args(["-c", &format!("import {module}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(python.to_string());
        }
    }
    Err(format!("no python3 can import {module} ({install})"))
}

/// The path of one of git's helper programs (`git-daemon`,
/// `git-http-backend`), from `git --exec-path`.
fn git_exec_path(program: &str) -> Result<PathBuf, String> {
    let out = Command::new("git")
        .arg("--exec-path")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!("git --exec-path failed: {}", out.status));
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let path = dir.join(program);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} does not exist", path.display()))
    }
}

/// Kills a child's whole process group (children are started as group
/// leaders) and reaps the child.
fn kill_group(child: &mut std::process::Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) has no memory-safety preconditions; the group was
        // created for this child (process_group(0)) and not yet reaped.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Appends a line to a server's log file, ignoring errors (logging must
/// never take a server down).
fn log_line(path: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

/// Opens (creating) a log file in append mode, for a child's stderr.
fn append_log(path: &Path) -> fs::File {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open log file {}: {e}", path.display()))
}
