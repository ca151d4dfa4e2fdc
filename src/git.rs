//! The one module that runs git: a clean environment for every child, wall-clock timeouts that kill
//! the whole process group, `ls-remote` to observe a mirror, `push --porcelain` to update it.

pub mod credential;
pub mod env;
pub mod history;
pub mod lfs;
pub mod local_refs;
pub mod orphans;
pub mod remote_words;
pub mod tls;

use crate::access::redact::redact;
use crate::mirror::plan::RefChange;
use crate::util::oid::{ObjectFormat, Oid};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Inherited variables that git children may keep: they point git at the
/// admin's configuration and CA certificates, never at another repository.
const KEPT_GIT_VARIABLES: &[&str] = &[
    "GIT_CONFIG_NOSYSTEM",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
];

/// Whether an inherited environment variable must not reach a git child.
/// A hook runs with `GIT_DIR=.`, `GIT_QUARANTINE_PATH`, `GIT_PUSH_OPTION_*`,
/// object-directory variables and more; leaking them into a push of another
/// repository corrupts data.
pub fn is_unsafe_inherited_variable(name: &str) -> bool {
    (name.starts_with("GIT_") && !KEPT_GIT_VARIABLES.contains(&name))
        || matches!(name, "LC_ALL" | "LANGUAGE" | "SSH_ASKPASS" | "SSH_AUTH_SOCK")
}

/// Removes every unsafe inherited variable from `cmd` and sets the ones git
/// children always get. Also used for the detached worker the hook starts.
pub fn scrub_environment(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_none_or(is_unsafe_inherited_variable) {
            cmd.env_remove(&name);
        }
    }
}

/// A git command with the clean environment (only allowed variables, see [`env`]: no hook
/// location variables, no secrets), no prompts, C messages, null stdin; it dies with this
/// process (see [`orphans`]).
pub fn git_command() -> Command {
    let mut cmd = Command::new("git");
    env::inherit_allowed_only(&mut cmd);
    orphans::die_with_this_process(&mut cmd);
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_MESSAGES", "C")
        .env("GCM_INTERACTIVE", "never")
        .stdin(Stdio::null());
    cmd
}

/// How to reach one mirror.
#[derive(Clone)]
pub struct RemoteAccess {
    /// The mirror's name, for messages (empty when unknown).
    pub mirror: String,
    /// The URL git is given (never holds credentials).
    pub url: String,
    /// Wall-clock limit for one git process talking to the mirror.
    pub timeout: Duration,
    /// `GIT_ALLOW_PROTOCOL`.
    pub allowed_protocols: Vec<String>,
    /// Extra environment for the child: credential plumbing, ssh command.
    pub env: Vec<(String, OsString)>,
    /// Extra environment for git-lfs only: the password, when only the LFS endpoint may have
    /// it (a file:// push would hand it to the mirror's hooks).
    pub lfs_env: Vec<(String, OsString)>,
    /// Strings that must never be stored or shown (redacted from all output).
    pub secrets: Vec<String>,
    /// The mirror's own CA certificates (`ca_file`), given to git in [`env`](Self::env); an
    /// inherited `GIT_SSL_CAINFO`, which git would let win, is removed.
    pub ca_file: Option<std::path::PathBuf>,
    /// Where the credential helper marks a password as rejected, one marker per command: see
    /// [`RemoteAccess::remember_rejections`].
    rejections: Option<std::sync::Arc<Rejections>>,
    /// Serves the credentials to the helper while the access lives (see [`credential`]).
    credentials: Option<std::sync::Arc<credential::CredentialPipe>>,
}

/// A private directory for the credential helper's rejection markers, removed with the access.
struct Rejections {
    dir: tempfile::TempDir,
    next: std::sync::atomic::AtomicUsize,
}

/// The variable naming the marker file the credential helper creates on `erase` and honours on `get`.
pub const REJECTION_MARKER_VARIABLE: &str = "GIT_PUSH_MIRROR_CREDENTIAL_REJECTED";

impl RemoteAccess {
    pub fn new(url: &str, timeout: Duration, allowed_protocols: &[String]) -> RemoteAccess {
        RemoteAccess {
            mirror: String::new(),
            url: url.to_string(),
            timeout,
            allowed_protocols: allowed_protocols.to_vec(),
            env: Vec::new(),
            lfs_env: Vec::new(),
            secrets: Vec::new(),
            ca_file: None,
            rejections: None,
            credentials: None,
        }
    }

    /// Starts serving `username` and `password` to the credential helper (see [`credential`])
    /// from the private directory of [`Self::remember_rejections`]; returns the variable that
    /// tells the helper where, for the environment of the commands that may use them.
    pub fn serve_credentials(&mut self, username: &str, password: &str) -> std::io::Result<(String, OsString)> {
        if self.rejections.is_none() {
            self.remember_rejections()?;
        }
        let dir = self
            .rejections
            .as_ref()
            .map(|r| r.dir.path().to_path_buf())
            .unwrap_or_default();
        let pipe = credential::CredentialPipe::serve(&dir, username, password)?;
        let variable = (
            credential::PIPE_VARIABLE.to_string(),
            pipe.path().as_os_str().to_os_string(),
        );
        self.credentials = Some(std::sync::Arc::new(pipe));
        Ok(variable)
    }

    /// Gives each command a fresh file in which the credential helper records that its
    /// password was rejected, so the helper stops offering it. git gives up after one
    /// rejection, but git-lfs asks again after each, for ever, while a helper answers.
    pub fn remember_rejections(&mut self) -> std::io::Result<()> {
        let dir = crate::util::fsutil::private_temp_dir("cred")?;
        self.rejections = Some(std::sync::Arc::new(Rejections {
            dir,
            next: std::sync::atomic::AtomicUsize::new(0),
        }));
        Ok(())
    }

    /// [`command`](Self::command) for git-lfs, with [`lfs_env`](Self::lfs_env) too.
    fn lfs_command(&self) -> Command {
        let mut cmd = self.command();
        for (name, value) in &self.lfs_env {
            cmd.env(name, value);
        }
        cmd
    }

    fn command(&self) -> Command {
        let mut cmd = git_command();
        cmd.env("GIT_ALLOW_PROTOCOL", self.allowed_protocols.join(":"));
        if self.ca_file.is_some() {
            cmd.env_remove("GIT_SSL_CAINFO");
        }
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        if let Some(rejections) = &self.rejections {
            let n = rejections.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            cmd.env(
                REJECTION_MARKER_VARIABLE,
                rejections.dir.path().join(format!("rejected.{n}")),
            );
        }
        cmd
    }

    /// Redacts this mirror's secrets and any URL userinfo from `text`.
    pub fn redact(&self, text: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        redact(text, &secrets)
    }

    /// The error for a git process that failed as a whole: the useful lines
    /// of its stderr and, when the cause is recognisable, how to fix it; redacted.
    fn failure(&self, stderr: &str) -> GitError {
        let summary = summarize_stderr(stderr);
        let message = match crate::access::auth::failure_hint(self, stderr) {
            Some(hint) => format!("{summary} (hint: {hint})"),
            None => summary,
        };
        GitError::Failed(self.redact(&message))
    }
}

impl std::fmt::Debug for RemoteAccess {
    // By hand: the environment carries the password, which must never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<&str> = self.env.iter().map(|(name, _)| name.as_str()).collect();
        let lfs_env: Vec<&str> = self.lfs_env.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("RemoteAccess")
            .field("mirror", &self.mirror)
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("allowed_protocols", &self.allowed_protocols)
            .field("env", &env)
            .field("lfs_env", &lfs_env)
            .field("secrets", &format_args!("[{} redacted]", self.secrets.len()))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Why talking to a mirror failed as a whole. Messages are already redacted.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum GitError {
    #[error("could not run git: {0}")]
    Spawn(String),
    #[error("timed out after {}s; the git process group was killed", .0.as_secs())]
    TimedOut(Duration),
    #[error("{0}")]
    Failed(String),
    /// The mirror refused the push as too large: its pack size limit, or an HTTP 413.
    #[error("{0}")]
    TooLarge(String),
    /// The connection dropped while the pack was being sent: a limit of the mirror or of a
    /// proxy in front of it as often as the network.
    #[error("{0}")]
    Dropped(String),
}

/// What a finished git process left behind.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` in its own process group, capturing its output; after
/// `timeout` the whole group (ssh, https helpers, hooks) is killed.
pub fn run_with_timeout(cmd: Command, timeout: Duration) -> Result<Finished, GitError> {
    let (success, stdout, stderr) = run_with_input(cmd, None, timeout)?;
    Ok(Finished {
        success,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr,
    })
}

/// [`run_with_timeout`] with `input` written to the child's stdin (stdin stays
/// as `cmd` has it when `None`); stdout comes back as bytes.
fn run_with_input(
    mut cmd: Command,
    input: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<(bool, Vec<u8>, String), GitError> {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = cmd.spawn().map_err(|e| GitError::Spawn(e.to_string()))?;
    let group = child.id() as libc::pid_t;
    let writer = match (input, child.stdin.take()) {
        // From a thread: the child may write a lot before it reads all its input.
        (Some(input), Some(mut stdin)) => Some(std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })),
        _ => None,
    };
    let stdout = child.stdout.take().map(read_in_background);
    let stderr = child.stderr.take().map(read_in_background);
    let watchdog = Watchdog::start(group, timeout);
    let status = child.wait();
    let timed_out = watchdog.stop();
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let stdout = stdout.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
    let stderr = stderr.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
    let status = status.map_err(|e| GitError::Spawn(e.to_string()))?;
    if timed_out {
        return Err(GitError::TimedOut(timeout));
    }
    let success = status.success() && status.signal().is_none();
    Ok((success, stdout, String::from_utf8_lossy(&stderr).into_owned()))
}

/// How long a process group whose time is up gets to end after SIGTERM before SIGKILL: git
/// removes its lock files on SIGTERM (a push to a `file://` mirror killed outright could leave
/// the mirror's ref locked).
const TERM_GRACE: Duration = Duration::from_secs(2);

/// Ends a process group when its time is up: SIGTERM, then SIGKILL after [`TERM_GRACE`].
struct Watchdog {
    group: libc::pid_t,
    done: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    fn start(group: libc::pid_t, timeout: Duration) -> Watchdog {
        let (done, done_rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(timeout) {
                // SAFETY: kill(2) with a negative pid signals the process group we created.
                unsafe { libc::kill(-group, libc::SIGTERM) };
                let deadline = std::time::Instant::now() + TERM_GRACE;
                // SAFETY: signal 0 only asks whether the group still has members.
                while unsafe { libc::kill(-group, 0) } == 0 && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                // SAFETY: as above.
                unsafe { libc::kill(-group, libc::SIGKILL) };
                true
            } else {
                false
            }
        });
        Watchdog { group, done, thread }
    }

    /// Call once the group's leader has been reaped; returns whether time ran out.
    fn stop(self) -> bool {
        let _ = self.done.send(());
        let timed_out = self.thread.join().unwrap_or(false);
        // Helpers of the group may outlive git itself and hold our pipes open.
        // SAFETY: as above; the group is ours and the leader has been reaped.
        unsafe { libc::kill(-self.group, libc::SIGKILL) };
        timed_out
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Lines git adds to every failed connection; they push the real cause out of a summary.
const GENERIC_LINES: &[&str] = &[
    "Please make sure you have the correct access rights",
    "and the repository exists.",
];

/// The most useful lines of git's stderr, for a stored error: the mirror's own words (its
/// `remote:` lines) first, then git's last lines.
fn summarize_stderr(stderr: &str) -> String {
    let words = crate::git::remote_words::remote_lines(stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:") && !GENERIC_LINES.contains(l))
        .filter(|l| !l.starts_with("remote:"))
        // ssh's advice to delete a changed host key; deleting without checking defeats the check.
        .filter(|l| !l.starts_with("ssh-keygen -f "))
        .collect();
    let start = lines.len().saturating_sub(4);
    let mut parts: Vec<String> = words.into_iter().map(|w| format!("remote: {w}")).collect();
    parts.extend(lines[start..].iter().map(|l| crate::git::remote_words::clean(l)));
    if parts.is_empty() {
        "git failed without a message".to_string()
    } else {
        parts.join(" / ")
    }
}

/// Whether a mirror's words or git's messages say a push was refused for its size: git's and
/// GitHub's `pack exceeds maximum allowed size`, or an HTTP 413 from the server or a proxy.
pub fn says_too_large(text: &str) -> bool {
    const SIGNS: &[&str] = &[
        "pack exceeds maximum allowed size",
        "HTTP 413",
        "error: 413",
        "Request Entity Too Large",
        "Payload Too Large",
    ];
    SIGNS.iter().any(|sign| text.contains(sign))
}

/// The limit a size refusal names, when it names one: GitHub and newer git print
/// `pack exceeds maximum allowed size (2.00 GiB)`.
pub fn size_limit_in(text: &str) -> Option<u64> {
    let at = text.find("maximum allowed size (")? + "maximum allowed size (".len();
    let inside = &text[at..at + text[at..].find(')')?];
    crate::util::size::ByteSize::parse(&inside.replace(' ', "").replace("bytes", "B"))
        .ok()
        .map(|size| size.0)
}

/// Whether git says the connection ended while it was sending (as opposed to never connecting).
fn says_dropped(stderr: &str) -> bool {
    const SIGNS: &[&str] = &[
        "the remote end hung up unexpectedly",
        "unexpected disconnect while reading sideband packet",
        "send-pack: unexpected disconnect",
        "Broken pipe",
        "Connection reset by peer",
        "RPC failed",
    ];
    const NEVER_CONNECTED: &[&str] = &[
        "Could not read from remote repository",
        "Could not resolve",
        "Connection refused",
        "Failed to connect",
        "Authentication failed",
        "Permission denied",
        "Host key verification failed",
        "SSL certificate problem",
        "server certificate verification failed",
    ];
    SIGNS.iter().any(|s| stderr.contains(s)) && !NEVER_CONNECTED.iter().any(|s| stderr.contains(s))
}

/// The refs observed on a mirror.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RemoteRefs {
    pub direct: BTreeMap<String, Oid>,
    pub symbolic: BTreeSet<String>,
}

/// Parses `git ls-remote --symref` output.
pub fn parse_ls_remote(output: &str) -> RemoteRefs {
    let mut refs = RemoteRefs::default();
    for line in output.lines() {
        let Some((left, name)) = line.split_once('\t') else {
            continue;
        };
        if let Some(_target) = left.strip_prefix("ref: ") {
            refs.symbolic.insert(name.to_string());
        } else if name.ends_with("^{}") {
            continue;
        } else if let Some(oid) = Oid::parse(left) {
            refs.direct.insert(name.to_string(), oid);
        }
    }
    for name in &refs.symbolic {
        refs.direct.remove(name);
    }
    refs
}

/// Lists the mirror's refs matching `patterns` (git's ls-remote patterns;
/// empty: all refs), as the repository at `git_dir` sees it: its own git
/// configuration applies (`http.sslCAInfo`, `http.<url>.*`, proxies). A mirror
/// whose ids are of another object format is an error: git cannot push to it.
pub fn ls_remote(git_dir: &Path, remote: &RemoteAccess, patterns: &[String]) -> Result<RemoteRefs, GitError> {
    let (refs, _) = list_remote(git_dir, remote, patterns, false)?;
    let local = crate::mirror::refs::object_format(git_dir);
    match refs.direct.values().next().map(ObjectFormat::of) {
        Some(mirror) if mirror != local => Err(GitError::Failed(format_mismatch(local, mirror))),
        _ => Ok(refs),
    }
}

/// What `check` and `add` learn about a mirror: its refs matching the patterns and the object
/// format it announces (known even for an empty mirror), next to the repository's.
#[derive(Debug)]
pub struct Probe {
    pub refs: RemoteRefs,
    pub object_format: Option<ObjectFormat>,
    pub local_format: ObjectFormat,
}

impl Probe {
    /// Why git cannot push from the repository to this mirror, if it cannot.
    pub fn format_mismatch(&self) -> Option<String> {
        self.object_format
            .filter(|mirror| *mirror != self.local_format)
            .map(|mirror| format_mismatch(self.local_format, mirror))
    }
}

/// [`ls_remote`] that also reads the object format the mirror announces (from git's packet
/// trace), so a mirror git cannot push to is named before the first push, even when empty.
pub fn probe(git_dir: &Path, remote: &RemoteAccess, patterns: &[String]) -> Result<Probe, GitError> {
    let (refs, trace) = list_remote(git_dir, remote, patterns, true)?;
    let object_format = announced_object_format(&trace).or_else(|| refs.direct.values().next().map(ObjectFormat::of));
    Ok(Probe {
        refs,
        object_format,
        local_format: crate::mirror::refs::object_format(git_dir),
    })
}

/// Why a mirror of another object format cannot be pushed to, and what to do.
pub fn format_mismatch(local: ObjectFormat, mirror: ObjectFormat) -> String {
    format!(
        "the mirror is a {mirror} repository and this repository is {local}: git cannot push between \
         object formats; recreate the mirror as {local} (`git init --bare --object-format={}`, or the \
         host's object format setting for new repositories) or push to another mirror",
        local.git_name()
    )
}

/// Runs `ls-remote`; with `trace`, also returns git's packet trace (its stderr).
fn list_remote(
    git_dir: &Path,
    remote: &RemoteAccess,
    patterns: &[String],
    trace: bool,
) -> Result<(RemoteRefs, String), GitError> {
    let mut cmd = remote.command();
    if trace {
        cmd.env("GIT_TRACE_PACKET", "1");
    }
    cmd.arg("--git-dir")
        .arg(git_dir)
        .args(["ls-remote", "--symref", "--"])
        .arg(&remote.url)
        .args(patterns);
    let finished = run_with_timeout(cmd, remote.timeout)?;
    let (trace, stderr): (Vec<&str>, Vec<&str>) = finished
        .stderr
        .lines()
        .partition(|line| trace && line.contains(" packet: "));
    if !finished.success {
        return Err(remote.failure(&stderr.join("\n")));
    }
    Ok((parse_ls_remote(&finished.stdout), trace.join("\n")))
}

/// The `object-format=` capability a server announced, in a `GIT_TRACE_PACKET` trace (protocol
/// v2 on a line of its own, v0 among the capabilities of the first ref).
fn announced_object_format(trace: &str) -> Option<ObjectFormat> {
    trace
        .lines()
        .filter(|line| line.contains("< "))
        // The trace shows v0's NUL before the capabilities as `\0`.
        .flat_map(|line| line.split(' ').filter_map(|word| word.rsplit("\\0").next()))
        .find_map(|word| word.strip_prefix("object-format=").and_then(ObjectFormat::parse))
}

/// The flag git prints for a ref in `push --porcelain` output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushFlag {
    /// ` ` a fast-forward.
    FastForward,
    /// `+` a forced update.
    Forced,
    /// `-` a deleted ref.
    Deleted,
    /// `*` a new ref.
    New,
    /// `!` rejected or failed.
    Rejected,
    /// `=` already up to date.
    UpToDate,
}

impl PushFlag {
    fn from_char(c: char) -> Option<PushFlag> {
        Some(match c {
            ' ' => PushFlag::FastForward,
            '+' => PushFlag::Forced,
            '-' => PushFlag::Deleted,
            '*' => PushFlag::New,
            '!' => PushFlag::Rejected,
            '=' => PushFlag::UpToDate,
            _ => return None,
        })
    }
}

/// One ref's line of `git push --porcelain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedRef {
    /// The destination ref on the mirror.
    pub name: String,
    pub flag: PushFlag,
    /// e.g. `[new branch]`, `abc..def`, `[rejected]`, `[remote rejected]`.
    pub summary: String,
    /// e.g. `stale info`, `pre-receive hook declined`.
    pub reason: Option<String>,
}

impl PushedRef {
    /// Whether the ref now has the value that was pushed.
    pub fn landed(&self) -> bool {
        self.flag != PushFlag::Rejected
    }

    /// Whether the ref was refused because the mirror's value is not the one
    /// the change was planned for (a failed lease, or a new ref that exists).
    pub fn lease_failed(&self) -> bool {
        self.flag == PushFlag::Rejected && self.reason.as_deref().is_some_and(means_remote_changed)
    }
}

/// Whether a rejection reason says the mirror's ref is not what the change
/// expected: `stale info` (a lease), or `fetch first` / `non-fast-forward`
/// / `already exists` (a create, pushed without a lease, found the ref existing).
pub fn means_remote_changed(reason: &str) -> bool {
    matches!(
        reason,
        "stale info" | "fetch first" | "non-fast-forward" | "already exists"
    )
}

/// Parses `git push --porcelain` output: `<flag>\t<from>:<to>\t<summary> (<reason>)`.
pub fn parse_porcelain(output: &str) -> Vec<PushedRef> {
    let mut refs = Vec::new();
    for line in output.lines() {
        let mut chars = line.chars();
        let (Some(flag), Some('\t')) = (chars.next().and_then(PushFlag::from_char), chars.next()) else {
            continue;
        };
        let mut fields = line[2..].splitn(2, '\t');
        let (Some(spec), Some(rest)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((_, to)) = spec.rsplit_once(':') else { continue };
        let (summary, reason) = match rest.find(" (") {
            Some(pos) if rest.ends_with(')') => {
                (rest[..pos].to_string(), Some(rest[pos + 2..rest.len() - 1].to_string()))
            }
            _ => (rest.to_string(), None),
        };
        refs.push(PushedRef {
            name: to.to_string(),
            flag,
            summary,
            reason,
        });
    }
    refs
}

/// Refspec and lease arguments for one change. Updates and deletions carry
/// `--force-with-lease=<ref>:<observed>`; a create is pushed without force, so
/// git refuses it if the ref appeared meanwhile with unrelated history (and
/// git's lease bookkeeping, quadratic in the number of leases, is spared for
/// the thousands of creates of a first sync).
fn change_args(name: &str, change: &RefChange) -> Vec<String> {
    match change {
        RefChange::Create { new } => vec![format!("{new}:{name}")],
        RefChange::Update { old, new, .. } => {
            vec![format!("--force-with-lease={name}:{old}"), format!("{new}:{name}")]
        }
        RefChange::Delete { old } => vec![format!("--force-with-lease={name}:{old}"), format!(":{name}")],
    }
}

/// Above this many changes, push through a [`PushView`].
const VIEW_THRESHOLD: usize = 32;

/// A temporary git directory whose object store is the repository's (through
/// `objects/info/alternates`) and whose only refs are the new values of the
/// refs being created or updated (in `packed-refs`): `refs/*:refs/*` then
/// pushes exactly those, in time linear in their number. It has the
/// repository's object format and includes its configuration (`http.sslCAInfo`,
/// proxies, `http.<url>.*`), so the push behaves as one from the repository.
struct PushView {
    dir: tempfile::TempDir,
}

impl PushView {
    fn new(git_dir: &Path, changes: &[(&str, &RefChange)]) -> std::io::Result<PushView> {
        let dir = crate::util::fsutil::private_temp_dir("view")?;
        let git_dir = std::path::absolute(git_dir)?;
        let objects = git_dir.join("objects");
        let format = changes
            .iter()
            .find_map(|(_, change)| change.new_value().or(change.expected_remote()))
            .map_or(ObjectFormat::Sha1, ObjectFormat::of);
        std::fs::write(dir.path().join("config"), view_config(&git_dir, format))?;
        std::fs::create_dir_all(dir.path().join("objects/info"))?;
        std::fs::create_dir_all(dir.path().join("refs"))?;
        std::fs::write(dir.path().join("HEAD"), "ref: refs/heads/none\n")?;
        let mut alternates = objects.as_os_str().as_encoded_bytes().to_vec();
        alternates.push(b'\n');
        std::fs::write(dir.path().join("objects/info/alternates"), alternates)?;
        let mut new_values: Vec<(&str, &Oid)> = changes
            .iter()
            .filter_map(|(name, change)| change.new_value().map(|oid| (*name, oid)))
            .collect();
        new_values.sort();
        let mut packed = String::from("# pack-refs with: sorted \n");
        for (name, oid) in new_values {
            packed.push_str(&format!("{oid} {name}\n"));
        }
        std::fs::write(dir.path().join("packed-refs"), packed)?;
        Ok(PushView { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The configuration of a temporary git directory standing in for the repository at `git_dir`:
/// its object format (git reads `extensions.*` from this file only), then the repository's own
/// configuration, included.
pub(crate) fn view_config(git_dir: &Path, format: ObjectFormat) -> Vec<u8> {
    let mut config = Vec::new();
    if format != ObjectFormat::Sha1 {
        config.extend_from_slice(
            format!(
                "[core]\n\trepositoryformatversion = 1\n[extensions]\n\tobjectformat = {}\n",
                format.git_name()
            )
            .as_bytes(),
        );
    }
    // A quoted value: the path may hold spaces, `"` or `\\` (a line break it cannot).
    let path = git_dir.join("config");
    if path.as_os_str().as_encoded_bytes().contains(&b'\n') {
        return config;
    }
    let mut quoted = Vec::new();
    for byte in path.as_os_str().as_encoded_bytes() {
        if matches!(byte, b'"' | b'\\') {
            quoted.push(b'\\');
        }
        quoted.push(*byte);
    }
    config.extend_from_slice(b"[include]\n\tpath = \"");
    config.extend_from_slice(&quoted);
    config.extend_from_slice(b"\"\n");
    config
}

/// Bytes of arguments per git process: far below ARG_MAX, which is the only
/// reason to split a push at all.
const MAX_ARGUMENT_BYTES: usize = 512 * 1024;

/// Splits `changes` into groups that each fit the arguments of one `git push` (see [`push`]).
pub fn split_by_argument_size<'a>(changes: &[(&'a str, &'a RefChange)]) -> Vec<Vec<(&'a str, &'a RefChange)>> {
    let mut groups = Vec::new();
    let mut group: Vec<(&str, &RefChange)> = Vec::new();
    let mut group_bytes = 0;
    for &(name, change) in changes {
        // Through a view (more than VIEW_THRESHOLD changes) creates cost no argument at all.
        let bytes = match change {
            RefChange::Create { .. } => 0,
            RefChange::Update { .. } | RefChange::Delete { .. } => 2 * name.len() + 64 + 24,
        };
        if !group.is_empty() && group_bytes + bytes > MAX_ARGUMENT_BYTES {
            groups.push(std::mem::take(&mut group));
            group_bytes = 0;
        }
        group.push((name, change));
        group_bytes += bytes;
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

/// What one `git push` did.
#[derive(Debug, Default)]
pub struct PushOutcome {
    /// git's per-ref results; their reasons are redacted.
    pub refs: Vec<PushedRef>,
    /// The mirror's own words (its `remote:` lines), cleaned and redacted.
    pub remote_lines: Vec<String>,
    /// `false` when the mirror did not offer `report-status`: git then reports every ref it sent
    /// as pushed without the mirror having said so.
    pub confirmed: bool,
}

/// Pushes `changes` from the local repository at `git_dir` to the mirror in one git process,
/// each update and deletion with `--force-with-lease=<ref>:<observed>`, and returns git's
/// per-ref results and the mirror's words. A failure of the push as a whole is an error;
/// per-ref rejections are results. Callers keep each push within [`split_by_argument_size`].
pub fn push(git_dir: &Path, remote: &RemoteAccess, changes: &[(&str, &RefChange)]) -> Result<PushOutcome, GitError> {
    if changes.len() <= VIEW_THRESHOLD {
        let args: Vec<String> = changes
            .iter()
            .flat_map(|(name, change)| change_args(name, change))
            .collect();
        return push_batch(git_dir, remote, &args);
    }
    // git matches every explicit refspec against every local and every
    // remote ref, formatting strings for each pair: quadratic. Large pushes
    // instead go from a view of the repository that shares its objects and
    // whose only refs are the new values, with one pattern refspec; only
    // leases and deletions remain as arguments.
    push_through_view(git_dir, remote, changes)
}

fn push_through_view(
    git_dir: &Path,
    remote: &RemoteAccess,
    changes: &[(&str, &RefChange)],
) -> Result<PushOutcome, GitError> {
    let view = PushView::new(git_dir, changes).map_err(|e| GitError::Spawn(format!("preparing the push: {e}")))?;
    let mut args = Vec::new();
    let mut has_new_values = false;
    for (name, change) in changes {
        match change {
            RefChange::Create { .. } => has_new_values = true,
            RefChange::Update { old, .. } => {
                has_new_values = true;
                args.push(format!("--force-with-lease={name}:{old}"));
            }
            RefChange::Delete { old } => {
                args.push(format!("--force-with-lease={name}:{old}"));
                args.push(format!(":{name}"));
            }
        }
    }
    if has_new_values {
        args.push("refs/*:refs/*".to_string());
    }
    push_batch(view.path(), remote, &args)
}

fn push_batch(git_dir: &Path, remote: &RemoteAccess, args: &[String]) -> Result<PushOutcome, GitError> {
    let (leases, refspecs): (Vec<&String>, Vec<&String>) =
        args.iter().partition(|a| a.starts_with("--force-with-lease="));
    let mut cmd = remote.command();
    cmd.arg("--git-dir")
        .arg(git_dir)
        .args([
            "push",
            "--porcelain",
            "--no-verify",
            "--no-follow-tags",
            "--no-recurse-submodules",
        ])
        .args(leases)
        .arg("--")
        .arg(&remote.url)
        .args(refspecs);
    let trace = PacketTrace::start(&mut cmd, &remote.url);
    let finished = run_with_timeout(cmd, remote.timeout)?;
    let pushed = parse_porcelain(&finished.stdout);
    if pushed.is_empty() && !finished.success {
        let failure = remote.failure(&finished.stderr);
        return Err(match failure {
            GitError::Failed(message) if says_too_large(&finished.stderr) => GitError::TooLarge(message),
            GitError::Failed(message) if says_dropped(&finished.stderr) => GitError::Dropped(message),
            other => other,
        });
    }
    let confirmed = trace.is_none_or(|trace| trace.report_requested() != Some(false));
    Ok(PushOutcome {
        refs: pushed
            .into_iter()
            .map(|mut r| {
                r.reason = r.reason.map(|reason| remote.redact(&reason));
                r
            })
            .collect(),
        remote_lines: crate::git::remote_words::remote_lines(&finished.stderr)
            .iter()
            .map(|line| remote.redact(line))
            .collect(),
        confirmed,
    })
}

/// git's packet trace of one push over the network, kept to learn whether the mirror was asked
/// for a `report-status`: git asks whenever the mirror offers it, and without it reports every
/// ref it sent as pushed. Local (`file://`) mirrors run our own git's receive-pack, which always
/// offers it, and are not traced (the trace would also follow the mirror's hooks).
struct PacketTrace {
    dir: tempfile::TempDir,
}

impl PacketTrace {
    fn start(cmd: &mut Command, url: &str) -> Option<PacketTrace> {
        if crate::access::remote_url::transport_of(url) == crate::access::remote_url::Transport::File {
            return None;
        }
        let dir = crate::util::fsutil::private_temp_dir("trace").ok()?;
        cmd.env("GIT_TRACE_PACKET", dir.path().join("packets"));
        Some(PacketTrace { dir })
    }

    /// Whether the commands git sent asked for a report; `None` when it sent none.
    fn report_requested(&self) -> Option<bool> {
        let file = std::fs::File::open(self.dir.path().join("packets")).ok()?;
        report_requested_in(std::io::BufReader::new(file))
    }
}

/// Reads a packet trace up to the first command git sent (`<old> <new> <ref>\0<capabilities>`).
fn report_requested_in(trace: impl std::io::BufRead) -> Option<bool> {
    for line in trace.split(b'\n').map_while(Result::ok) {
        let line = String::from_utf8_lossy(&line);
        let Some((_, packet)) = line.split_once("packet:") else {
            continue;
        };
        let packet = packet.trim_start();
        let Some(at) = packet.find(['>', '<']) else { continue };
        let (identity, rest) = packet.split_at(at);
        if !rest.starts_with("> ") || identity == "receive-pack" {
            continue;
        }
        let Some((command, capabilities)) = rest[2..].split_once("\\0") else {
            continue;
        };
        if command.split(' ').count() != 3 {
            continue;
        }
        return Some(capabilities.split(' ').any(|c| c.starts_with("report-status")));
    }
    None
}

/// The hooks directory git uses for a repository (honours `core.hooksPath`).
pub fn hooks_dir(git_dir: &Path) -> Result<std::path::PathBuf, GitError> {
    let mut cmd = git_command();
    cmd.arg("--git-dir")
        .arg(git_dir)
        .args(["rev-parse", "--path-format=absolute", "--git-path", "hooks"]);
    let finished = run_with_timeout(cmd, Duration::from_secs(30))?;
    if !finished.success {
        return Err(local_refs::local_failure(
            "finding the hooks directory",
            &finished.stderr,
        ));
    }
    Ok(std::path::PathBuf::from(finished.stdout.trim_end_matches('\n')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(c: char) -> Oid {
        Oid::parse(&c.to_string().repeat(40)).unwrap()
    }

    /// Captured from `git push --porcelain` (git 2.47) against a mirror with a
    /// pre-receive hook rejecting one ref and a stale lease on another.
    const CAPTURED_PORCELAIN: &str = "To git://127.0.0.1:40123/mirror.git\n\
=\trefs/heads/same:refs/heads/same\t[up to date]\n\
\x20\t1111111111111111111111111111111111111111:refs/heads/main\t4e1f0a2..9b7c3d1\n\
+\t2222222222222222222222222222222222222222:refs/heads/forced\t8a1b2c3...d4e5f60 (forced update)\n\
-\t:refs/heads/gone\t[deleted]\n\
*\t3333333333333333333333333333333333333333:refs/tags/v1.0\t[new tag]\n\
*\t4444444444444444444444444444444444444444:refs/heads/feature/x\t[new branch]\n\
!\t5555555555555555555555555555555555555555:refs/heads/stale\t[rejected] (stale info)\n\
!\t6666666666666666666666666666666666666666:refs/heads/hooked\t[remote rejected] (pre-receive hook declined)\n\
!\t7777777777777777777777777777777777777777:refs/heads/a\t[remote rejected] (failed to update ref)\n\
Done\n";

    #[test]
    fn porcelain_output_is_parsed_per_ref() {
        let refs = parse_porcelain(CAPTURED_PORCELAIN);
        let flags: Vec<(&str, PushFlag)> = refs.iter().map(|r| (r.name.as_str(), r.flag)).collect();
        assert_eq!(
            flags,
            vec![
                ("refs/heads/same", PushFlag::UpToDate),
                ("refs/heads/main", PushFlag::FastForward),
                ("refs/heads/forced", PushFlag::Forced),
                ("refs/heads/gone", PushFlag::Deleted),
                ("refs/tags/v1.0", PushFlag::New),
                ("refs/heads/feature/x", PushFlag::New),
                ("refs/heads/stale", PushFlag::Rejected),
                ("refs/heads/hooked", PushFlag::Rejected),
                ("refs/heads/a", PushFlag::Rejected),
            ]
        );
        assert_eq!(refs[2].reason.as_deref(), Some("forced update"));
        assert_eq!(refs[2].summary, "8a1b2c3...d4e5f60");
        assert!(refs[6].lease_failed());
        assert!(!refs[7].lease_failed());
        assert_eq!(refs[7].summary, "[remote rejected]");
        assert_eq!(refs[7].reason.as_deref(), Some("pre-receive hook declined"));
        assert!(refs[0].landed() && refs[3].landed() && !refs[8].landed());
    }

    #[test]
    fn summaries_keep_the_cause_and_drop_boilerplate() {
        // Captured from git push over ssh (OpenSSH 9.2) to a host whose key changed.
        let stderr = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n\
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n\
Offending ED25519 key in /state/ssh/backup.known_hosts:1\r\n\
  ssh-keygen -f \"/state/ssh/backup.known_hosts\" -R \"[127.0.0.1]:2222\"\r\n\
Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.\r\n\
Host key verification failed.\r\n\
fatal: Could not read from remote repository.\n\n\
Please make sure you have the correct access rights\nand the repository exists.\n";
        assert_eq!(
            summarize_stderr(stderr),
            "Offending ED25519 key in /state/ssh/backup.known_hosts:1 / \
             Host key for [127.0.0.1]:2222 has changed and you have requested strict checking. / \
             Host key verification failed. / fatal: Could not read from remote repository."
        );
    }

    #[test]
    fn porcelain_parser_ignores_noise() {
        assert!(parse_porcelain("").is_empty());
        assert!(parse_porcelain("To x\nDone\nerror: failed to push some refs\n").is_empty());
        assert!(parse_porcelain("?\tweird\tline\n!\tno-colon\t[rejected]\n").is_empty());
    }

    #[test]
    fn ls_remote_output_excludes_symrefs_and_peeled_tags() {
        let out = "ref: refs/heads/main\tHEAD\n\
1111111111111111111111111111111111111111\tHEAD\n\
1111111111111111111111111111111111111111\trefs/heads/main\n\
ref: refs/heads/main\trefs/heads/alias\n\
1111111111111111111111111111111111111111\trefs/heads/alias\n\
2222222222222222222222222222222222222222\trefs/tags/v1\n\
1111111111111111111111111111111111111111\trefs/tags/v1^{}\n";
        let refs = parse_ls_remote(out);
        assert_eq!(refs.direct.len(), 2);
        assert_eq!(refs.direct["refs/heads/main"], oid('1'));
        assert_eq!(refs.direct["refs/tags/v1"], oid('2'));
        assert!(refs.symbolic.contains("HEAD") && refs.symbolic.contains("refs/heads/alias"));
    }

    #[test]
    fn the_announced_object_format_is_read_from_the_packet_trace() {
        // Captured (git 2.47, GIT_TRACE_PACKET=1) from ls-remote over protocol v2 and v0.
        let v2 = "11:18:42.139795 pkt-line.c:86           packet:    ls-remote< version 2\n\
11:18:42.139915 pkt-line.c:86           packet:    ls-remote< object-format=sha256\n\
11:18:42.139943 pkt-line.c:86           packet:    ls-remote> object-format=sha256\n";
        assert_eq!(announced_object_format(v2), Some(ObjectFormat::Sha256));
        let v0 = "11:18:42.148944 pkt-line.c:86           packet:    ls-remote< \
0000000000000000000000000000000000000000 capabilities^{}\\0object-format=sha1 agent=git/2.47.3\n";
        assert_eq!(announced_object_format(v0), Some(ObjectFormat::Sha1));
        let old_server =
            "packet:    ls-remote< 1111111111111111111111111111111111111111 refs/heads/main\\0multi_ack ofs-delta\n";
        assert_eq!(announced_object_format(old_server), None);
    }

    #[test]
    fn ls_remote_output_of_a_sha256_mirror_is_parsed() {
        let sha256 = "c2f6722a36398972fd504337b69a3221be0f00cd0d48b45aec8b0d8036719595";
        let out = format!("ref: refs/heads/main\tHEAD\n{sha256}\tHEAD\n{sha256}\trefs/heads/main\n");
        let refs = parse_ls_remote(&out);
        assert_eq!(refs.direct["refs/heads/main"].as_str(), sha256);
        assert_eq!(ObjectFormat::of(&refs.direct["refs/heads/main"]), ObjectFormat::Sha256);
    }

    #[test]
    fn a_view_has_the_repositorys_object_format_and_includes_its_configuration() {
        let sha1 = String::from_utf8(view_config(Path::new("/srv/git/app.git"), ObjectFormat::Sha1)).unwrap();
        assert_eq!(sha1, "[include]\n\tpath = \"/srv/git/app.git/config\"\n");
        let sha256 = String::from_utf8(view_config(Path::new("/srv/a \"b\"\\c.git"), ObjectFormat::Sha256)).unwrap();
        assert_eq!(
            sha256,
            "[core]\n\trepositoryformatversion = 1\n[extensions]\n\tobjectformat = sha256\n\
             [include]\n\tpath = \"/srv/a \\\"b\\\"\\\\c.git/config\"\n"
        );
        let odd = view_config(Path::new("/srv/a\nb.git"), ObjectFormat::Sha1);
        assert!(odd.is_empty(), "a path git configuration cannot hold is left out");
    }

    #[test]
    fn every_update_and_deletion_carries_a_lease_on_the_observed_value() {
        let create = RefChange::Create { new: oid('a') };
        let update = RefChange::Update {
            old: oid('b'),
            new: oid('c'),
            forced: true,
        };
        let delete = RefChange::Delete { old: oid('d') };
        // A create is pushed without force: git refuses it if the ref appeared meanwhile.
        assert_eq!(
            change_args("refs/heads/n", &create),
            [format!("{}:refs/heads/n", oid('a'))]
        );
        assert_eq!(
            change_args("refs/heads/u", &update),
            [
                format!("--force-with-lease=refs/heads/u:{}", oid('b')),
                format!("{}:refs/heads/u", oid('c'))
            ]
        );
        assert_eq!(
            change_args("refs/heads/d", &delete),
            [
                format!("--force-with-lease=refs/heads/d:{}", oid('d')),
                ":refs/heads/d".to_string()
            ]
        );
    }

    #[test]
    fn hook_variables_never_reach_git_children() {
        for unsafe_name in [
            "GIT_DIR",
            "GIT_QUARANTINE_PATH",
            "GIT_PUSH_OPTION_0",
            "GIT_PUSH_OPTION_COUNT",
            "GIT_PROTOCOL",
            "GIT_OBJECT_DIRECTORY",
            "GIT_ALTERNATE_OBJECT_DIRECTORIES",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_CONFIG_PARAMETERS",
            "GIT_CONFIG_COUNT",
            "GIT_EXEC_PATH",
            "GIT_SSH_COMMAND",
            "LC_ALL",
            "LANGUAGE",
        ] {
            assert!(is_unsafe_inherited_variable(unsafe_name), "{unsafe_name}");
        }
        for kept in [
            "PATH",
            "HOME",
            "GIT_CONFIG_GLOBAL",
            "GIT_CONFIG_NOSYSTEM",
            "GIT_SSL_CAINFO",
            "LANG",
        ] {
            assert!(!is_unsafe_inherited_variable(kept), "{kept}");
        }
    }

    #[test]
    fn a_child_whose_time_is_up_may_clean_up_and_one_that_will_not_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let cleaned = dir.path().join("cleaned");
        // Like git: on SIGTERM, remove the lock files and leave.
        let mut polite = Command::new("sh");
        polite.args([
            "-c",
            "trap 'touch \"$0\"; exit 1' TERM; while :; do sleep 0.05; done",
            cleaned.to_str().unwrap(),
        ]);
        assert!(run_with_timeout(polite, Duration::from_millis(200)).is_err());
        assert!(cleaned.exists(), "SIGTERM came first");
        let mut stubborn = Command::new("sh");
        stubborn.args(["-c", "trap '' TERM; while :; do sleep 0.05; done"]);
        let started = std::time::Instant::now();
        assert!(run_with_timeout(stubborn, Duration::from_millis(200)).is_err());
        assert!(
            started.elapsed() < TERM_GRACE + Duration::from_secs(10),
            "SIGKILL followed"
        );
    }

    #[test]
    fn a_hung_child_is_killed_with_its_process_group() {
        let mut cmd = Command::new("sh");
        // The grandchild `sleep` holds stdout open: only killing the group ends it.
        cmd.args(["-c", "sleep 30 & sleep 30; echo never"]);
        let started = std::time::Instant::now();
        let result = run_with_timeout(cmd, Duration::from_millis(200));
        assert_eq!(result.unwrap_err(), GitError::TimedOut(Duration::from_millis(200)));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the process group was not killed"
        );
    }
}
