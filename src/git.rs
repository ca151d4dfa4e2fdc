//! The one module that runs git: [`RemoteAccess`] (how to reach one mirror) is here; the children's
//! environment and timeouts are in [`process`] and [`env`](mod@env), `ls-remote` to observe a mirror in
//! [`ls_remote`](mod@ls_remote), `push --porcelain` to update it in [`push`](mod@push), failures and their hints in [`error`].

pub mod certificate;
pub mod credential;
pub mod env;
pub mod error;
pub mod failure;
pub mod head;
pub mod history;
pub mod lfs;
pub mod lfs_pointer;
pub mod local_refs;
pub mod ls_remote;
pub mod orphans;
pub mod process;
pub mod push;
pub mod ref_cache;
pub mod remote_words;
pub mod tls;
pub mod trace;

use error::summarize_stderr;
pub use error::{GitError, says_too_large, size_limit_in};
pub use failure::{Failure, FailureClass};
pub use ls_remote::{Probe, RemoteRefs, format_mismatch, ls_remote, parse_ls_remote, probe};
pub use process::{
    Finished, config_get, git_command, hooks_dir, is_unsafe_inherited_variable, run_with_timeout, scrub_environment,
};
use process::{Watchdog, read_in_background, run_with_input};
use push::view_config;
pub use push::{PushFlag, PushOutcome, PushedRef, means_remote_changed, parse_porcelain, push, split_by_argument_size};

use crate::util::redact::redact;
use std::ffi::OsString;
use std::process::Command;
use std::time::Duration;

/// How to reach one mirror.
#[derive(Clone)]
pub struct RemoteAccess {
    /// The mirror's name, for messages (empty when unknown).
    pub mirror: String,
    /// The repository pushed from, for the commands hints name (`REPO` when unknown).
    pub repo: Option<std::path::PathBuf>,
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
    /// The HTTP(S) origins the credential helper gives the mirror's user name and password to
    /// (empty: the mirror has none), so a hint about a refusal says what was really offered.
    pub credential_origins: Vec<String>,
    /// The mirror's own CA certificates (`ca_file`), given to git in [`env`](Self::env); an
    /// inherited `GIT_SSL_CAINFO`, which git would let win, is removed.
    pub ca_file: Option<std::path::PathBuf>,
    /// Where the credential helper marks a password as rejected, one marker per command: see
    /// [`RemoteAccess::remember_rejections`].
    rejections: Option<std::sync::Arc<Rejections>>,
    /// Serves the credentials to the helper while the access lives (see [`credential`]).
    credentials: Option<std::sync::Arc<credential::CredentialPipe>>,
    /// Push options (`git push --push-option`) for the pushes to the mirror
    /// (docs/mirror-side.md: "Push options").
    pub push_options: Vec<String>,
    /// Set once the mirror turned push options down (it does not advertise them): the push is
    /// made again without them, and so are the later ones.
    push_options_refused: std::sync::Arc<std::sync::atomic::AtomicBool>,
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
            repo: None,
            url: url.to_string(),
            timeout,
            allowed_protocols: allowed_protocols.to_vec(),
            env: Vec::new(),
            lfs_env: Vec::new(),
            secrets: Vec::new(),
            credential_origins: Vec::new(),
            ca_file: None,
            rejections: None,
            credentials: None,
            push_options: Vec::new(),
            push_options_refused: Default::default(),
        }
    }

    /// Whether the mirror turned the push options down (see [`RemoteAccess::push_options`]).
    pub fn push_options_refused(&self) -> bool {
        self.push_options_refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The push options the next push sends: none once the mirror turned them down.
    fn push_options_to_send(&self) -> &[String] {
        if self.push_options_refused() {
            &[]
        } else {
            &self.push_options
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

    /// The repository as a command line argument in hints: its path, or `REPO` when unknown.
    pub fn repo_arg(&self) -> String {
        self.repo
            .as_ref()
            .map_or_else(|| "REPO".to_string(), |repo| repo.display().to_string())
    }

    /// Redacts this mirror's secrets and any URL userinfo from `text`.
    pub fn redact(&self, text: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        redact(text, &secrets)
    }

    /// The error for a git process that failed as a whole: the useful lines of its stderr and,
    /// when the cause is recognisable (from them or from the HTTP answers in `http`), how to fix
    /// it; redacted, and classed (see [`failure`](mod@failure)).
    fn failure(&self, stderr: &str, http: &trace::HttpFacts) -> GitError {
        let summary = summarize_stderr(stderr);
        let mut http = http.clone();
        if certificate::needs_probe(stderr) {
            http.certificate = certificate::probe(self);
        }
        let message = match error::failure_hint(self, stderr, &http) {
            Some(hint) => format!("{summary} (hint: {hint})"),
            None => summary,
        };
        let class = failure::classify(stderr, &http);
        GitError::Remote(Failure {
            message: self.redact(&message),
            class,
            retry_after: http.retry_after.filter(|_| class == FailureClass::RateLimited),
            repository_missing: failure::says_repository_missing(stderr, &http),
        })
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
            .field("push_options", &self.push_options)
            .finish()
    }
}
