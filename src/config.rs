//! Configuration: the global file and each repository's `push-mirror.toml`, read strictly into checked,
//! ready-to-use settings (docs/configuration.md, docs/security.md). This file holds the settings types the
//! rest of the program uses; the parts are:
//!
//! - `raw.rs`: the files as TOML has them, rejecting unknown keys;
//! - `load.rs`: where the files are looked for and how they are read;
//! - `validate.rs`: defaults applied, relative paths resolved against the file's directory, the
//!   security rules on secrets enforced, fleet mirrors expanded;
//! - [`edit`]: in-place edits for `add`, `set` and `remove`; [`fleet`], [`fleet_override`],
//!   [`mirror_path`], [`live`]: fleets, local mirror paths, the worker's live view of the file;
//! - [`keys`]: every key with its default and meaning, for the man page, checked against the parser;
//! - [`rules`]: the refs a mirror carries, as the planner reads them; [`lfs`]: its LFS settings.
//!
//! Every error names the file, and where the TOML parser knows a position, `file:line:column`.

pub mod edit;
pub mod fleet;
pub mod fleet_override;
pub mod keys;
pub mod lfs;
pub mod live;
mod load;
mod mirror_files;
pub mod mirror_path;
pub mod mirror_side;
pub mod notify;
mod raw;
pub mod rules;
mod unknown_key;
mod validate;

pub(crate) use load::untrusted_repo_file;
pub use load::{
    HookSettings, default_spool_dir, hook_settings, load_global, load_repo, locate_global, state_base,
    system_config_file,
};
pub use notify::NotifySettings;
pub(crate) use raw::line_column;
pub(crate) use validate::parse_repo;

use crate::config::lfs::{LfsMode, LfsSettings};
use crate::config::rules::{MirrorRules, TagSelection};
use crate::util::size::ByteSize;
use serde::Deserialize;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The per-repository configuration file, inside the bare repository.
pub const REPO_CONFIG_FILE: &str = "push-mirror.toml";

/// Environment variable naming the global configuration file.
pub const CONFIG_ENV: &str = "GIT_PUSH_MIRROR_CONFIG";

/// The system-wide global configuration file.
pub const SYSTEM_CONFIG_FILE: &str = "/etc/git-push-mirror/config.toml";

/// Environment variable naming another file to use in place of [`SYSTEM_CONFIG_FILE`].
pub const SYSTEM_CONFIG_ENV: &str = "GIT_PUSH_MIRROR_SYSTEM_CONFIG";

/// The values `allowed_protocols` may contain (docs/authentication.md: "Transports").
pub const KNOWN_PROTOCOLS: [&str; 5] = ["https", "ssh", "git", "file", "http"];

const APP_DIR: &str = "git-push-mirror";
const LOG_LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
const MAX_MIRROR_NAME: usize = 64;

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// Anything the TOML parser or the typed reader rejected at a known place:
    /// syntax, unknown keys, wrong types, bad values.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// Well-formed but not acceptable (missing `url`, bad mirror name, insecure secret, ...).
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl ConfigError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ConfigError::Io { path, .. } | ConfigError::Syntax { path, .. } | ConfigError::Invalid { path, .. } => path,
        }
    }
}

/// An inline secret as read from a file; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: String) -> Secret {
        Secret(secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"*****\"")
    }
}

/// How [`MirrorKeys`] holds the values written as text, durations and sizes: read from a
/// file they are checked ([`Checked`]: [`MirrorSettings`]); given to `add` or `set` they are
/// kept as typed ([`AsTyped`]: [`edit::MirrorEdit`]), so the file gets exactly what the admin wrote.
pub trait SettingForm: Clone + fmt::Debug + Default + PartialEq + Eq {
    type Duration: Clone + fmt::Debug + PartialEq + Eq;
    type Size: Clone + fmt::Debug + PartialEq + Eq;
}

/// Durations and sizes parsed and checked, as a configuration file is read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked;

impl SettingForm for Checked {
    type Duration = Duration;
    type Size = ByteSize;
}

/// Durations and sizes as the admin typed them (`"5m"`, `"1900MiB"`), for writing back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AsTyped;

impl SettingForm for AsTyped {
    type Duration = String;
    type Size = String;
}

/// Per-mirror settings exactly as written in a `[mirror.NAME]` or `[defaults]`
/// table: every key optional, nothing resolved yet.
pub type MirrorSettings = MirrorKeys<Checked>;

/// The keys of a `[mirror.NAME]` or `[defaults]` table, every one optional: read from a file
/// ([`MirrorSettings`]) or written by `add` and `set` ([`edit::MirrorEdit`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(
    deny_unknown_fields,
    bound(deserialize = "F: SettingForm<Duration = Duration, Size = ByteSize>")
)]
pub struct MirrorKeys<F: SettingForm> {
    pub url: Option<String>,
    pub enabled: Option<bool>,
    pub only_protected_branches: Option<bool>,
    pub keep_divergent_refs: Option<bool>,
    /// Delete on the mirror a ref deleted locally even when its work is not merged.
    pub prune_unmerged: Option<bool>,
    pub branches: Option<Vec<String>>,
    pub tags: Option<TagSelection>,
    pub refs: Option<Vec<String>>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    pub password: Option<Secret>,
    pub ssh_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    /// CA certificates (PEM) that HTTPS connections to the mirror's host trust.
    pub ca_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "raw::duration")]
    pub delay: Option<F::Duration>,
    #[serde(default, deserialize_with = "raw::duration")]
    pub min_interval: Option<F::Duration>,
    #[serde(default, deserialize_with = "raw::duration")]
    pub timeout: Option<F::Duration>,
    #[serde(default, deserialize_with = "raw::duration")]
    pub verify_interval: Option<F::Duration>,
    pub lfs: Option<LfsMode>,
    pub lfs_required: Option<bool>,
    pub lfs_url: Option<String>,
    pub lfs_store: Option<PathBuf>,
    pub max_push_size: Option<F::Size>,
    #[serde(default, deserialize_with = "raw::max_refs_per_push")]
    pub max_refs_per_push: Option<usize>,
    /// `false`: nobody is told about this mirror (docs/notifications.md).
    pub notify: Option<bool>,
    /// Create the repository on the mirror when it is missing (docs/mirror-side.md).
    pub create: Option<mirror_side::CreateSetting>,
    /// The forge API's base URL, when not derived from the mirror's host.
    pub api_url: Option<String>,
    /// The forge API token's file, when not the mirror's password.
    pub api_token_file: Option<PathBuf>,
    pub visibility: Option<mirror_side::Visibility>,
    pub push_options: Option<Vec<String>>,
    pub first_sync_push_options: Option<Vec<String>>,
    /// Fleet mirrors only: which repositories the mirror applies to.
    pub repos: Option<Vec<String>>,
}

impl MirrorSettings {
    /// The keys that are set, by name, in file order of the struct.
    fn set_keys(&self) -> Vec<&'static str> {
        let keys = [
            ("url", self.url.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("password_file", self.password_file.is_some()),
            ("password_env", self.password_env.is_some()),
            ("lfs_url", self.lfs_url.is_some()),
            ("api_url", self.api_url.is_some()),
            ("api_token_file", self.api_token_file.is_some()),
            ("repos", self.repos.is_some()),
        ];
        keys.into_iter().filter(|(_, set)| *set).map(|(key, _)| key).collect()
    }

    /// Makes relative paths relative to `dir` (the configuration file's directory).
    fn resolve_paths(&mut self, dir: &Path) -> Result<(), String> {
        let paths = [
            ("password_file", &mut self.password_file),
            ("ssh_key", &mut self.ssh_key),
            ("known_hosts", &mut self.known_hosts),
            ("ca_file", &mut self.ca_file),
            ("lfs_store", &mut self.lfs_store),
            ("api_token_file", &mut self.api_token_file),
        ];
        for (key, path) in paths {
            if let Some(path) = path {
                *path = in_dir(dir, key, path)?;
            }
        }
        Ok(())
    }
}

/// `path` relative to `dir`; an empty path (which would mean `dir` itself) is refused.
fn in_dir(dir: &Path, key: &str, path: &Path) -> Result<PathBuf, String> {
    if path.as_os_str().is_empty() {
        return Err(format!("`{key}` must not be empty"));
    }
    Ok(dir.join(path))
}

/// `[defaults]` of the global file, with the built-in defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorDefaults {
    pub enabled: bool,
    pub only_protected_branches: bool,
    pub keep_divergent_refs: bool,
    pub prune_unmerged: bool,
    pub branches: Option<Vec<String>>,
    pub tags: TagSelection,
    pub refs: Vec<String>,
    pub ssh_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// An explicit wait after the first pending change; `None`: the default timing (docs/mirroring.md: "Timing").
    pub delay: Option<Duration>,
    pub min_interval: Duration,
    pub timeout: Duration,
    pub verify_interval: Duration,
    pub lfs: LfsMode,
    pub lfs_required: bool,
    pub lfs_store: Option<PathBuf>,
    pub push_limits: PushLimits,
    pub notify: bool,
    /// `create`, `visibility` and the push options (docs/mirror-side.md).
    pub side: mirror_side::MirrorSide,
}

impl Default for MirrorDefaults {
    fn default() -> Self {
        MirrorDefaults {
            enabled: true,
            only_protected_branches: false,
            keep_divergent_refs: false,
            prune_unmerged: false,
            branches: None,
            tags: TagSelection::All,
            refs: Vec::new(),
            ssh_key: None,
            known_hosts: None,
            ca_file: None,
            delay: None,
            min_interval: Duration::ZERO,
            timeout: Duration::from_secs(10 * 60),
            verify_interval: DEFAULT_VERIFY_INTERVAL,
            lfs: LfsMode::Auto,
            lfs_required: true,
            lfs_store: None,
            push_limits: PushLimits::default(),
            notify: true,
            side: mirror_side::MirrorSide::default(),
        }
    }
}

/// How often `run` checks that a mirror still has what it was given (`verify_interval`).
pub const DEFAULT_VERIFY_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// What one push to a mirror may carry (`max_push_size`, `max_refs_per_push`); `None`: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushLimits {
    pub max_bytes: Option<u64>,
    pub max_refs: Option<usize>,
}

/// `[retry]`: backoff after a failed mirror update (docs/reliability.md: "Failure behaviour").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry; doubles on each failure.
    pub initial: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
    /// Consecutive failures after which the status says `failed` (retries go on).
    pub fail_after: u32,
    /// Randomise delays a little so many mirrors do not retry in lockstep.
    pub jitter: bool,
    /// Delay between attempts after a permanent failure (credentials refused, repository not
    /// found, host key changed, ...); a push or `sync` tries again at once.
    pub permanent_retry: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(10 * 60),
            fail_after: 5,
            jitter: true,
            permanent_retry: Duration::from_secs(60 * 60),
        }
    }
}

/// A `[mirror.NAME]` of the global file: applies to every repository matching
/// `repos`, with `{name}` in `settings.url` replaced by the repository's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetMirror {
    pub name: String,
    pub repos: Vec<String>,
    /// Relative paths already resolved; `repos` moved out.
    pub settings: MirrorSettings,
}

/// Which mirrors `metrics` gives series of their own (`metrics_mirrors`); every mirror counts in
/// the aggregates whichever is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricsMirrors {
    /// Every mirror (the default).
    #[default]
    All,
    /// Only mirrors that need attention (see [`crate::ops::metrics`]): a fleet's healthy mirrors
    /// are counted, not listed.
    Attention,
}

/// How long claimed spool entries and pair locks of a host stay its own unrenewed (`claim_timeout`).
pub const DEFAULT_CLAIM_TIMEOUT: Duration = Duration::from_secs(600);

/// The global configuration, ready to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalConfig {
    /// The file loaded; `None` means the embedded defaults.
    pub source: Option<PathBuf>,
    pub spool_dir: PathBuf,
    pub state_dir: PathBuf,
    pub log_file: PathBuf,
    pub log_level: log::LevelFilter,
    pub silent_mode: bool,
    pub max_parallel: usize,
    pub allowed_protocols: Vec<String>,
    pub repos_root: Option<PathBuf>,
    /// `shared_group`: the group whose members share the spool, the state and the repositories'
    /// configuration with the worker's user (docs/security.md); `None`: nobody else may write them.
    pub shared_group: Option<crate::util::users::Group>,
    /// How long a worker stays around for retries and debounce before leaving the rest to cron.
    pub worker_linger: Duration,
    /// How long claimed spool entries and pair locks of a host stay its own unrenewed before
    /// another host sharing the spool and state takes them over (docs/operations.md: "Scale-out").
    pub claim_timeout: Duration,
    pub defaults: MirrorDefaults,
    pub retry: RetryPolicy,
    pub fleet_mirrors: Vec<FleetMirror>,
    /// `[notify]`: who is told when a mirror fails or recovers.
    pub notify: NotifySettings,
    /// Whether the hook tells the pusher about failing mirrors of the repository.
    pub warn_pushers: bool,
    /// Which mirrors `metrics` gives series of their own.
    pub metrics_mirrors: MetricsMirrors,
}

impl GlobalConfig {
    /// The configuration used when there is no global file, with spool, state
    /// and log under `state_base` (see [`state_base`]).
    pub fn embedded(state_base: &Path) -> GlobalConfig {
        GlobalConfig {
            source: None,
            spool_dir: state_base.join("spool"),
            state_dir: state_base.join("state"),
            log_file: state_base.join("git-push-mirror.log"),
            log_level: log::LevelFilter::Info,
            silent_mode: false,
            max_parallel: 4,
            allowed_protocols: KNOWN_PROTOCOLS.iter().map(|p| p.to_string()).collect(),
            repos_root: None,
            shared_group: None,
            worker_linger: Duration::from_secs(60),
            claim_timeout: DEFAULT_CLAIM_TIMEOUT,
            defaults: MirrorDefaults::default(),
            retry: RetryPolicy::default(),
            fleet_mirrors: Vec::new(),
            notify: NotifySettings::default(),
            warn_pushers: true,
            metrics_mirrors: MetricsMirrors::All,
        }
    }
}

/// Where a mirror's password comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `password_file`: the first line of the file (checked at load: not group/world readable).
    File(PathBuf),
    /// `password_env`: the name of an environment variable of the worker.
    Env(String),
    /// `password`, or the password of a `user:password@` URL, in a file only its owner can read.
    Inline(String),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File(path) => f.debug_tuple("File").field(path).finish(),
            SecretSource::Env(name) => f.debug_tuple("Env").field(name).finish(),
            SecretSource::Inline(_) => f.write_str("Inline(\"*****\")"),
        }
    }
}

/// One mirror of one repository, ready to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorConfig {
    pub name: String,
    /// Never carries a password: a `user:password@` URL is split at load.
    pub url: String,
    pub enabled: bool,
    pub rules: MirrorRules,
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    pub ssh_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    /// CA certificates (PEM) for HTTPS to the mirror's (and its `lfs_url`'s) host.
    pub ca_file: Option<PathBuf>,
    /// An explicit wait after the first pending change; `None`: the default timing (docs/mirroring.md: "Timing").
    pub delay: Option<Duration>,
    pub min_interval: Duration,
    pub timeout: Duration,
    /// How often `run` lists the mirror's refs to catch changes made on the mirror itself
    /// (recreated empty, rewound); zero turns the check off.
    pub verify_interval: Duration,
    pub lfs: LfsSettings,
    pub push_limits: PushLimits,
    /// Why this mirror cannot be updated although its configuration reads (a password file
    /// others can read, a file it names that untrusted users can write, a FIFO named as a file):
    /// it alone is faulted, its repository's other mirrors go on (docs/security.md).
    pub fault: Option<String>,
    /// Whether notices about this mirror are sent (`notify = false`: never).
    pub notify: bool,
    /// Creating the repository on the mirror, its API, push options (docs/mirror-side.md).
    pub side: mirror_side::MirrorSide,
}

/// A repository's `push-mirror.toml`, ready to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoConfig {
    /// `<repo>/push-mirror.toml` (whether or not it exists).
    pub file: PathBuf,
    pub protected_branches: Vec<String>,
    /// The repository's own mirrors in file order, then the global file's
    /// fleet mirrors that apply to it (see [`crate::config::fleet`]).
    pub mirrors: Vec<MirrorConfig>,
    /// Names of the mirrors that come from fleet mirrors of the global file.
    pub fleet_mirrors: Vec<String>,
}

impl MirrorConfig {
    /// The mirror's URL as every report, command and notice shows it: userinfo masked, and
    /// `*****:*****@` when it authenticates over HTTP(S) with a password.
    pub fn shown_url(&self) -> String {
        crate::util::remote_url::display_url(&self.url, self.password.is_some())
    }
}

#[cfg(test)]
impl MirrorConfig {
    /// A mirror `m` of `url` with every setting at its default, for unit tests to adjust.
    pub(crate) fn example(url: &str) -> MirrorConfig {
        let defaults = MirrorDefaults::default();
        MirrorConfig {
            name: "m".into(),
            url: url.into(),
            enabled: true,
            rules: MirrorRules::default(),
            username: None,
            password: None,
            ssh_key: None,
            known_hosts: None,
            ca_file: None,
            delay: None,
            min_interval: Duration::ZERO,
            timeout: defaults.timeout,
            verify_interval: Duration::ZERO,
            lfs: LfsSettings::default(),
            push_limits: PushLimits::default(),
            fault: None,
            notify: true,
            side: mirror_side::MirrorSide::default(),
        }
    }
}

impl RepoConfig {
    pub fn mirror(&self, name: &str) -> Option<&MirrorConfig> {
        self.mirrors.iter().find(|m| m.name == name)
    }
}

/// Whether `name` can name a mirror: `[A-Za-z0-9._-]+`, at most 64
/// characters, not starting with `.` or `-` (it becomes part of file names and
/// command lines).
pub fn valid_mirror_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_MIRROR_NAME
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_names() {
        for good in ["github", "a", "GitLab_2", "back.up-1", &"x".repeat(64)] {
            assert!(valid_mirror_name(good), "{good}");
        }
        for bad in ["", ".hidden", "-x", "a b", "a/b", "ä", "a:b", &"x".repeat(65)] {
            assert!(!valid_mirror_name(bad), "{bad}");
        }
    }
}
