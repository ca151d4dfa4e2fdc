//! Configuration: the global file and each repository's `push-mirror.toml`, read strictly into checked,
//! ready-to-use settings (README: "Configuration", "Security"). This file holds the settings types the
//! rest of the program uses; the parts are:
//!
//! - `raw.rs`: the files as TOML has them, rejecting unknown keys;
//! - `load.rs`: where the files are looked for and how they are read;
//! - `validate.rs`: defaults applied, relative paths resolved against the file's directory, the
//!   security rules on secrets enforced, fleet mirrors expanded;
//! - [`edit`]: in-place edits for `add`, `set` and `remove`; [`fleet`], [`fleet_override`],
//!   [`mirror_path`], [`live`]: fleets, local mirror paths, the worker's live view of the file;
//! - [`keys`]: every key with its default and meaning, for the man page, checked against the parser.
//!
//! Every error names the file, and where the TOML parser knows a position, `file:line:column`.

pub mod edit;
pub mod fleet;
pub mod fleet_override;
pub mod keys;
pub mod live;
mod load;
mod mirror_files;
pub mod mirror_path;
pub mod mirror_side;
pub mod notify;
mod raw;
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

use crate::mirror::lfs::{LfsMode, LfsSettings};
use crate::mirror::plan::{MirrorRules, TagSelection};
use crate::util::size::ByteSize;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
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

/// The values `allowed_protocols` may contain (README: "Transports").
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

/// `tags = true | false | ["v*", ...]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TagSetting {
    #[default]
    All,
    None,
    Matching(Vec<String>),
}

impl TagSetting {
    pub fn to_selection(&self) -> TagSelection {
        match self {
            TagSetting::All => TagSelection::All,
            TagSetting::None => TagSelection::None,
            TagSetting::Matching(patterns) => TagSelection::Matching(patterns.clone()),
        }
    }
}

impl<'de> Deserialize<'de> for TagSetting {
    // By hand rather than `#[serde(untagged)]`, whose error ("did not match any
    // variant") does not say what is expected.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TagsVisitor;
        impl<'de> Visitor<'de> for TagsVisitor {
            type Value = TagSetting;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or an array of tag patterns")
            }
            fn visit_bool<E: de::Error>(self, all: bool) -> Result<TagSetting, E> {
                Ok(if all { TagSetting::All } else { TagSetting::None })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TagSetting, A::Error> {
                let mut patterns = Vec::new();
                while let Some(pattern) = seq.next_element::<String>()? {
                    patterns.push(pattern);
                }
                Ok(TagSetting::Matching(patterns))
            }
        }
        deserializer.deserialize_any(TagsVisitor)
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
    pub tags: Option<TagSetting>,
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
    /// `false`: nobody is told about this mirror (README: "Notifications").
    pub notify: Option<bool>,
    /// Create the repository on the mirror when it is missing (README: "The mirror's side").
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
    pub tags: TagSetting,
    pub refs: Vec<String>,
    pub ssh_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// An explicit wait after the first pending change; `None`: the default timing (README: "Timing").
    pub delay: Option<Duration>,
    pub min_interval: Duration,
    pub timeout: Duration,
    pub verify_interval: Duration,
    pub lfs: LfsMode,
    pub lfs_required: bool,
    pub lfs_store: Option<PathBuf>,
    pub push_limits: PushLimits,
    pub notify: bool,
    /// `create`, `visibility` and the push options (README: "The mirror's side").
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
            tags: TagSetting::All,
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

/// `[retry]`: backoff after a failed mirror update (README: "Failure behaviour").
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
    /// configuration with the worker's user (README: "Security"); `None`: nobody else may write them.
    pub shared_group: Option<crate::util::users::Group>,
    /// How long a worker stays around for retries and debounce before leaving the rest to cron.
    pub worker_linger: Duration,
    /// How long claimed spool entries and pair locks of a host stay its own unrenewed before
    /// another host sharing the spool and state takes them over (README: "Scale-out").
    pub claim_timeout: Duration,
    pub defaults: MirrorDefaults,
    pub retry: RetryPolicy,
    pub fleet_mirrors: Vec<FleetMirror>,
    /// `[notify]`: who is told when a mirror fails or recovers.
    pub notify: NotifySettings,
    /// Whether the hook tells the pusher about failing mirrors of the repository.
    pub warn_pushers: bool,
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
            claim_timeout: Duration::from_secs(600),
            defaults: MirrorDefaults::default(),
            retry: RetryPolicy::default(),
            fleet_mirrors: Vec::new(),
            notify: NotifySettings::default(),
            warn_pushers: true,
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
    /// An explicit wait after the first pending change; `None`: the default timing (README: "Timing").
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
    /// it alone is faulted, its repository's other mirrors go on (README: "Security").
    pub fault: Option<String>,
    /// Whether notices about this mirror are sent (`notify = false`: never).
    pub notify: bool,
    /// Creating the repository on the mirror, its API, push options (README: "The mirror's side").
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
    use super::load::{Env, hook_settings_with, load_global_with, locate_global_in};
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use tempfile::TempDir;

    /// An environment made of exactly these variables.
    fn env_of(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    fn write(path: &Path, text: &str, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn no_system_file(dir: &TempDir) -> PathBuf {
        dir.path().join("etc/git-push-mirror/config.toml")
    }

    fn global_from(text: &str) -> Result<GlobalConfig, ConfigError> {
        let dir = TempDir::new().unwrap();
        let file = dir.path().join("config.toml");
        write(&file, text, 0o600);
        let env = env_of(&[("HOME", dir.path())]);
        load_global_with(Some(&file), &env, &no_system_file(&dir))
    }

    /// Loads `text` as `<tmp>/repo.git/push-mirror.toml`; the TempDir keeps it alive.
    fn repo_from(text: &str, mode: u32) -> (TempDir, Result<RepoConfig, ConfigError>) {
        let dir = TempDir::new().unwrap();
        let repo = dir.path().join("repo.git");
        write(&repo.join(REPO_CONFIG_FILE), text, mode);
        let global = GlobalConfig::embedded(&dir.path().join("state"));
        let loaded = load_repo(&repo, &global);
        (dir, loaded)
    }

    fn repo_ok(text: &str) -> RepoConfig {
        let (_dir, loaded) = repo_from(text, 0o600);
        loaded.unwrap()
    }

    fn repo_err(text: &str, mode: u32) -> ConfigError {
        let (_dir, loaded) = repo_from(text, mode);
        loaded.unwrap_err()
    }

    #[track_caller]
    fn assert_syntax(err: ConfigError, want_line: usize, want_column: usize, needle: &str) {
        let shown = err.to_string();
        match err {
            ConfigError::Syntax {
                ref path,
                line,
                column,
                ref message,
            } => {
                assert_eq!((line, column), (want_line, want_column), "{shown}");
                assert!(message.contains(needle), "{shown}");
                assert!(!message.contains('\n'), "{shown}");
                let prefix = format!("{}:{want_line}:{want_column}: ", path.display());
                assert!(shown.starts_with(&prefix), "{shown}");
            }
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[track_caller]
    fn assert_invalid(err: ConfigError, needle: &str) {
        match &err {
            ConfigError::Invalid { message, .. } => assert!(message.contains(needle), "{err}"),
            other => panic!("expected an invalid-config error, got {other:?}"),
        }
    }

    #[test]
    fn embedded_defaults_without_any_file() {
        let dir = TempDir::new().unwrap();
        let env = env_of(&[("HOME", dir.path())]);
        let config = load_global_with(None, &env, &no_system_file(&dir)).unwrap();
        let base = dir.path().join(".local/state/git-push-mirror");
        assert_eq!(config, GlobalConfig::embedded(&base));
        assert_eq!(config.source, None);
        assert_eq!(config.spool_dir, base.join("spool"));
        assert_eq!(config.state_dir, base.join("state"));
        assert_eq!(config.log_file, base.join("git-push-mirror.log"));
        assert_eq!(config.log_level, log::LevelFilter::Info);
        assert!(!config.silent_mode);
        assert_eq!(config.max_parallel, 4);
        assert_eq!(config.allowed_protocols, KNOWN_PROTOCOLS);
        assert_eq!(config.worker_linger, Duration::from_secs(60));
        assert_eq!(config.retry, RetryPolicy::default());
        assert_eq!(config.retry.initial, Duration::from_secs(5));
        assert_eq!(config.retry.max, Duration::from_secs(600));
        assert_eq!(config.retry.fail_after, 5);
        assert_eq!(config.retry.permanent_retry, Duration::from_secs(3600));
        assert!(config.retry.jitter);
        let d = &config.defaults;
        assert!(d.enabled && !d.only_protected_branches && !d.keep_divergent_refs);
        assert_eq!((d.branches.clone(), d.tags.clone()), (None, TagSetting::All));
        assert_eq!(d.delay, None, "no explicit wait: the default timing");
        assert_eq!(d.min_interval, Duration::ZERO);
        assert_eq!(d.timeout, Duration::from_secs(600));
        assert!(config.fleet_mirrors.is_empty());
    }

    #[test]
    fn state_base_follows_xdg_and_ignores_relative_values() {
        let home = Path::new("/home/git");
        let state = Path::new("/var/state");
        assert_eq!(
            state_base(&env_of(&[("HOME", home), ("XDG_STATE_HOME", state)])),
            Path::new("/var/state/git-push-mirror")
        );
        for ignored in ["", "relative/state"] {
            let env = env_of(&[("HOME", home), ("XDG_STATE_HOME", Path::new(ignored))]);
            assert_eq!(state_base(&env), Path::new("/home/git/.local/state/git-push-mirror"));
        }
    }

    #[test]
    fn global_file_lookup_order() {
        let dir = TempDir::new().unwrap();
        let explicit = dir.path().join("explicit.toml");
        let from_env = dir.path().join("env.toml");
        let xdg = dir.path().join("xdg");
        let xdg_file = xdg.join("git-push-mirror/config.toml");
        let home_file = dir.path().join(".config/git-push-mirror/config.toml");
        let system = dir.path().join("etc/git-push-mirror/config.toml");
        let env = env_of(&[("HOME", dir.path()), ("XDG_CONFIG_HOME", &xdg), (CONFIG_ENV, &from_env)]);
        let env_no_var = env_of(&[("HOME", dir.path()), ("XDG_CONFIG_HOME", &xdg)]);
        let env_home_only = env_of(&[("HOME", dir.path())]);
        let locate = |explicit: Option<&Path>, env: Env<'_>| locate_global_in(explicit, env, &system).unwrap();

        assert_eq!(locate(None, &env_no_var), None);
        write(&system, "", 0o644);
        assert_eq!(locate(None, &env_no_var), Some(system.clone()));
        write(&home_file, "", 0o644);
        // XDG_CONFIG_HOME set: ~/.config is not looked at.
        assert_eq!(locate(None, &env_no_var), Some(system.clone()));
        assert_eq!(locate(None, &env_home_only), Some(home_file.clone()));
        write(&xdg_file, "", 0o644);
        assert_eq!(locate(None, &env_no_var), Some(xdg_file.clone()));
        write(&from_env, "", 0o644);
        assert_eq!(locate(None, &env), Some(from_env.clone()));
        write(&explicit, "", 0o644);
        assert_eq!(locate(Some(&explicit), &env), Some(explicit.clone()));

        // $GIT_PUSH_MIRROR_SYSTEM_CONFIG replaces the system file, which need not exist.
        let other_system = dir.path().join("other-etc/config.toml");
        let env_other_system = env_of(&[("HOME", dir.path()), (SYSTEM_CONFIG_ENV, &other_system)]);
        let env_empty_system = env_of(&[("HOME", dir.path()), (SYSTEM_CONFIG_ENV, Path::new(""))]);
        fs::remove_file(&home_file).unwrap();
        assert_eq!(locate(None, &env_home_only), Some(system.clone()));
        assert_eq!(locate(None, &env_other_system), None, "not /etc's file");
        write(&other_system, "", 0o644);
        assert_eq!(locate(None, &env_other_system), Some(other_system.clone()));
        assert_eq!(locate(None, &env_empty_system), Some(system.clone()), "empty: unset");

        // Named files must exist: no silent fallback to another file.
        let missing = dir.path().join("missing.toml");
        let err = locate_global_in(Some(&missing), &env, &system).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Io { path, .. } if *path == missing),
            "{err}"
        );
        let env_missing = env_of(&[("HOME", dir.path()), (CONFIG_ENV, &missing)]);
        let err = locate_global_in(None, &env_missing, &system).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!("{}: ", missing.display())),
            "{err}"
        );
    }

    #[test]
    fn a_claim_timeout_too_short_to_renew_is_refused_with_the_default_named() {
        assert_eq!(global_from("").unwrap().claim_timeout, Duration::from_secs(600));
        let err = global_from("claim_timeout = \"500ms\"\n").unwrap_err().to_string();
        assert!(
            err.contains("claim_timeout") && err.contains("\"1s\"") && err.contains("\"10m\""),
            "{err}"
        );
    }

    #[test]
    fn global_file_values_and_relative_paths() {
        let config = global_from(
            r#"
spool_dir = "spool"
state_dir = "/var/lib/gpm/state"
log_file = "logs/gpm.log"
log_level = "Debug"
silent_mode = true
max_parallel = 8
allowed_protocols = ["https", "ssh"]
repos_root = "../repos"
worker_linger = "2m"
claim_timeout = "90s"

[defaults]
only_protected_branches = true
branches = ["main"]
tags = ["v*"]
refs = ["refs/notes/*"]
ssh_key = "keys/id_ed25519"
ca_file = "certs/corp-ca.pem"
delay = "500ms"
min_interval = "1m"
timeout = "1h"

[retry]
initial = "1s"
max = "30s"
fail_after = 2
jitter = false
permanent_retry = "2h"
"#,
        )
        .unwrap();
        let dir = config.source.as_ref().unwrap().parent().unwrap().to_path_buf();
        assert_eq!(config.spool_dir, dir.join("spool"));
        assert_eq!(config.state_dir, Path::new("/var/lib/gpm/state"));
        assert_eq!(config.log_file, dir.join("logs/gpm.log"));
        assert_eq!(config.repos_root, Some(dir.join("../repos")));
        assert_eq!(config.log_level, log::LevelFilter::Debug);
        assert!(config.silent_mode);
        assert_eq!(config.max_parallel, 8);
        assert_eq!(config.allowed_protocols, ["https", "ssh"]);
        assert_eq!(config.worker_linger, Duration::from_secs(120));
        assert_eq!(config.claim_timeout, Duration::from_secs(90));
        let d = &config.defaults;
        assert!(d.only_protected_branches);
        assert_eq!(d.branches, Some(vec!["main".to_string()]));
        assert_eq!(d.tags, TagSetting::Matching(vec!["v*".into()]));
        assert_eq!(d.refs, ["refs/notes/*"]);
        assert_eq!(d.ssh_key, Some(dir.join("keys/id_ed25519")));
        assert_eq!(d.ca_file, Some(dir.join("certs/corp-ca.pem")));
        assert_eq!(d.delay, Some(Duration::from_millis(500)));
        assert_eq!(d.min_interval, Duration::from_secs(60));
        assert_eq!(d.timeout, Duration::from_secs(3600));
        assert_eq!(
            config.retry,
            RetryPolicy {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(30),
                fail_after: 2,
                jitter: false,
                permanent_retry: Duration::from_secs(7200),
            }
        );
    }

    #[test]
    fn global_file_relative_to_cwd_is_made_absolute() {
        let dir = TempDir::new().unwrap();
        let file = dir.path().join("config.toml");
        write(&file, "spool_dir = \"spool\"\n", 0o644);
        let env = env_of(&[("HOME", dir.path())]);
        let cwd = std::env::current_dir().unwrap();
        // A path relative to the working directory, without changing it.
        let relative = pathdiff(&file, &cwd);
        let config = load_global_with(Some(&relative), &env, &no_system_file(&dir)).unwrap();
        assert!(config.spool_dir.is_absolute(), "{:?}", config.spool_dir);
        assert_eq!(
            fs::canonicalize(config.spool_dir.parent().unwrap()).unwrap(),
            fs::canonicalize(dir.path()).unwrap()
        );
    }

    /// `path` relative to `base` (both absolute), with `..` as needed.
    fn pathdiff(path: &Path, base: &Path) -> PathBuf {
        let common = path
            .components()
            .zip(base.components())
            .take_while(|(a, b)| a == b)
            .count();
        let ups = base.components().count() - common;
        let mut out = PathBuf::new();
        for _ in 0..ups {
            out.push("..");
        }
        out.extend(path.components().skip(common));
        out
    }

    #[test]
    fn unknown_keys_are_syntax_errors_naming_the_key() {
        let err = global_from("max_parallel = 2\nspool_dri = \"/x\"\n").unwrap_err();
        assert_syntax(err, 2, 1, "unknown key `spool_dri`; did you mean `spool_dir`?");

        let err = global_from("[defaults]\ndelay = \"1s\"\n  brnaches = [\"main\"]\n").unwrap_err();
        assert_syntax(
            err,
            3,
            3,
            "unknown key `brnaches` in `[defaults]`; did you mean `branches`?",
        );

        let err = global_from("[retry]\nintial = \"1s\"\n").unwrap_err();
        assert_syntax(err, 2, 1, "unknown key `intial` in `[retry]`; did you mean `initial`?");

        let err = repo_err(
            "protected_branches = [\"main\"]\n\n[mirror.github]\nurl = \"https://h/x.git\"\nbrnaches = [\"main\"]\n",
            0o644,
        );
        assert_syntax(
            err,
            5,
            1,
            "unknown key `brnaches` in `[mirror.github]`; did you mean `branches`?",
        );

        let err = repo_err("protected = [\"main\"]\n", 0o644);
        assert_syntax(err, 1, 1, "unknown key `protected`; did you mean `protected_branches`?");

        let err = repo_err("[mirrors.github]\nurl = \"https://h/x.git\"\n", 0o644);
        assert_syntax(err, 1, 2, "unknown key `mirrors`; did you mean `mirror`?");

        // A top-level key appended below the last table.
        let err = repo_err(
            "[mirror.github]\nurl = \"https://h/x.git\"\nprotected_branches = [\"main\"]\n",
            0o644,
        );
        assert_syntax(err, 3, 1, "`protected_branches` belongs at the top of the file");

        // A misspelled transport.
        let err = repo_err("[mirror.github]\nurl = \"htps://h/x.git\"\n", 0o644);
        assert_invalid(
            err,
            "`url` uses `htps://`, which git does not know: did you mean https://h/x.git?",
        );
    }

    #[test]
    fn syntax_errors_point_at_the_right_place() {
        let err = repo_err(
            "# comment\n[mirror.a]\nurl = \"https://h/x.git\"\nenabled = tru\n",
            0o644,
        );
        assert_syntax(err, 4, 11, "");

        let err = repo_err("[mirror.a]\nurl = \"https://h/x.git\n", 0o644);
        let ConfigError::Syntax { line, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!(line, 2);

        // Columns count characters, not bytes.
        let err = repo_err("# é\nprotected_branches = [\"é\", 1]\n", 0o644);
        assert_syntax(err, 2, 28, "expected a string");
    }

    #[test]
    fn wrong_types_and_bad_values_are_syntax_errors() {
        let err = repo_err("[mirror.a]\nurl = \"https://h/x.git\"\ndelay = \"5x\"\n", 0o644);
        assert_syntax(err, 3, 9, "invalid duration \"5x\"");
        let err = repo_err("[mirror.a]\nurl = \"https://h/x.git\"\ntimeout = 30\n", 0o644);
        assert_syntax(err, 3, 11, "invalid type");
        let err = repo_err("[mirror.a]\nurl = \"https://h/x.git\"\nenabled = \"yes\"\n", 0o644);
        assert_syntax(err, 3, 11, "invalid type");
        let err = repo_err("[mirror.a]\nurl = \"https://h/x.git\"\ntags = \"v*\"\n", 0o644);
        assert_syntax(err, 3, 8, "true, false or an array of tag patterns");

        assert_syntax(global_from("max_parallel = 0\n").unwrap_err(), 1, 16, "at least 1");
        assert_syntax(global_from("max_parallel = -1\n").unwrap_err(), 1, 16, "");
        assert_syntax(
            global_from("[retry]\nfail_after = 0\n").unwrap_err(),
            2,
            14,
            "`fail_after` must be at least 1",
        );
        assert_syntax(global_from("log_level = \"loud\"\n").unwrap_err(), 1, 13, "log_level");
        assert_syntax(
            global_from("allowed_protocols = [\"https\", \"ext\"]\n").unwrap_err(),
            1,
            21,
            "\"ext\"",
        );
        assert_syntax(global_from("worker_linger = \"soon\"\n").unwrap_err(), 1, 17, "soon");
    }

    #[test]
    fn defaults_must_not_name_a_mirror_or_its_secrets() {
        for key in [
            "url",
            "username",
            "password",
            "password_file",
            "password_env",
            "lfs_url",
            "repos",
        ] {
            let value = if key == "repos" { "[\"x\"]" } else { "\"x\"" };
            let err = global_from(&format!("[defaults]\n{key} = {value}\n")).unwrap_err();
            assert_invalid(err, &format!("`{key}`"));
        }
    }

    #[test]
    fn prune_unmerged_is_off_by_default_and_set_per_mirror_or_in_defaults() {
        let config = repo_ok(
            "[mirror.a]\nurl = \"https://h/a.git\"\n[mirror.b]\nurl = \"https://h/b.git\"\nprune_unmerged = true\n",
        );
        assert!(!config.mirrors[0].rules.prune_unmerged);
        assert!(config.mirrors[1].rules.prune_unmerged);
        let global = global_from("[defaults]\nprune_unmerged = true\n").unwrap();
        assert!(global.defaults.prune_unmerged);
        assert!(!GlobalConfig::embedded(Path::new("/s")).defaults.prune_unmerged);
        let dir = TempDir::new().unwrap();
        let repo = dir.path().join("repo.git");
        write(
            &repo.join(REPO_CONFIG_FILE),
            "[mirror.a]\nurl = \"https://h/a.git\"\n[mirror.b]\nurl = \"https://h/b.git\"\nprune_unmerged = false\n",
            0o600,
        );
        let config = load_repo(&repo, &global).unwrap();
        assert!(config.mirrors[0].rules.prune_unmerged, "from [defaults]");
        assert!(!config.mirrors[1].rules.prune_unmerged, "the mirror's own setting wins");
    }

    #[test]
    fn lfs_settings_default_to_auto_and_required_and_are_checked() {
        let config = repo_ok("[mirror.a]\nurl = \"https://h/a.git\"\n");
        assert_eq!(config.mirrors[0].lfs, LfsSettings::default());
        assert_eq!(LfsSettings::default().mode, LfsMode::Auto);
        assert!(LfsSettings::default().required);

        let config = repo_ok(
            "[mirror.a]\nurl = \"git@h:a.git\"\nlfs = \"on\"\nlfs_required = false\n\
             lfs_url = \"https://lfs.h/a.git/info/lfs\"\n",
        );
        let lfs = &config.mirrors[0].lfs;
        assert_eq!(lfs.mode, LfsMode::On);
        assert!(!lfs.required);
        assert_eq!(lfs.url.as_deref(), Some("https://lfs.h/a.git/info/lfs"));

        let global =
            global_from("[defaults]\nlfs = \"off\"\nlfs_required = false\nlfs_store = \"/srv/gitea/data/lfs\"\n")
                .unwrap();
        assert_eq!(global.defaults.lfs, LfsMode::Off);
        assert!(!global.defaults.lfs_required);
        assert_eq!(
            global.defaults.lfs_store.as_deref(),
            Some(Path::new("/srv/gitea/data/lfs"))
        );

        let err = repo_err("[mirror.a]\nurl = \"https://h/a.git\"\nlfs = \"yes\"\n", 0o644);
        assert_syntax(err, 3, 7, "unknown variant `yes`");
        for (url, needle) in [
            ("ssh://h/a.git", "must be an https://"),
            (
                "https://u:p@h/a.git/info/lfs",
                "must not contain a user name or password",
            ),
        ] {
            let err = repo_err(
                &format!("[mirror.a]\nurl = \"https://h/a.git\"\nlfs_url = \"{url}\"\n"),
                0o600,
            );
            assert_invalid(err, needle);
        }
    }

    #[test]
    fn empty_paths_are_refused() {
        assert_invalid(
            global_from("spool_dir = \"\"\n").unwrap_err(),
            "`spool_dir` must not be empty",
        );
        assert_invalid(global_from("[defaults]\nssh_key = \"\"\n").unwrap_err(), "`ssh_key`");
        assert_invalid(
            repo_err("[mirror.a]\nurl = \"https://h/a.git\"\nknown_hosts = \"\"\n", 0o644),
            "[mirror.a] `known_hosts` must not be empty",
        );
    }

    #[test]
    fn retry_policy_is_checked() {
        assert_invalid(global_from("[retry]\ninitial = \"0s\"\n").unwrap_err(), "initial");
        assert_invalid(
            global_from("[retry]\ninitial = \"1h\"\nmax = \"1m\"\n").unwrap_err(),
            "`max`",
        );
        assert_invalid(
            global_from("[retry]\npermanent_retry = \"0s\"\n").unwrap_err(),
            "permanent_retry",
        );
    }

    #[test]
    fn fleet_mirrors_are_kept_parsed() {
        let config = global_from(
            "repos_root = \"/srv/git\"\n[mirror.github]\nrepos = [\"acme/*\"]\nurl = \"git@github.com:acme/{name}.git\"\nssh_key = \"k\"\n",
        )
        .unwrap();
        let dir = config.source.as_ref().unwrap().parent().unwrap();
        assert_eq!(config.fleet_mirrors.len(), 1);
        let fleet = &config.fleet_mirrors[0];
        assert_eq!(fleet.name, "github");
        assert_eq!(fleet.repos, ["acme/*"]);
        assert_eq!(fleet.settings.url.as_deref(), Some("git@github.com:acme/{name}.git"));
        assert_eq!(fleet.settings.ssh_key, Some(dir.join("k")));
        assert_eq!(fleet.settings.repos, None);

        let err = global_from("[mirror.github]\nurl = \"https://h/{name}.git\"\n").unwrap_err();
        assert_invalid(err, "repos");
        let err = global_from("[mirror.github]\nrepos = [\"*\"]\n").unwrap_err();
        assert_invalid(err, "url");
        let err = global_from("[mirror.\"bad name\"]\nrepos = [\"*\"]\nurl = \"x\"\n").unwrap_err();
        assert_invalid(err, "invalid mirror name");
    }

    #[test]
    fn fleet_mirrors_need_repos_root_a_name_placeholder_and_a_real_pattern() {
        let err = global_from("[mirror.g]\nrepos = [\"*\"]\nurl = \"file:///m/{name}.git\"\n").unwrap_err();
        assert_invalid(err, "repos_root");
        let err = global_from("repos_root = \"/srv\"\n[mirror.g]\nrepos = [\"*\"]\nurl = \"file:///m/one.git\"\n")
            .unwrap_err();
        assert_invalid(err, "{name}");
        let err = global_from("repos_root = \"/srv\"\n[mirror.g]\nrepos = [\"!x\"]\nurl = \"file:///m/{name}\"\n")
            .unwrap_err();
        assert_invalid(err, "exclusion");
    }

    /// A fleet root with `acme/app.git`, a global config whose fleet mirror
    /// matches `acme/*`, and the repository's path.
    fn fleet(global_text: &str, repo_text: Option<&str>) -> (TempDir, PathBuf, Result<RepoConfig, ConfigError>) {
        let dir = TempDir::new().unwrap();
        let repo = dir.path().join("srv/acme/app.git");
        fs::create_dir_all(&repo).unwrap();
        if let Some(text) = repo_text {
            write(&repo.join(REPO_CONFIG_FILE), text, 0o600);
        }
        let file = dir.path().join("config.toml");
        write(&file, &format!("repos_root = \"srv\"\n{global_text}"), 0o600);
        let env = env_of(&[("HOME", dir.path())]);
        let global = load_global_with(Some(&file), &env, &no_system_file(&dir)).unwrap();
        let loaded = load_repo(&repo, &global);
        (dir, repo, loaded)
    }

    #[test]
    fn fleet_mirrors_apply_to_matching_repositories_with_the_name_substituted() {
        let global = "[defaults]\ndelay = \"3s\"\n[mirror.github]\nrepos = [\"acme/*\"]\nurl = \"git@github.com:acme-mirror/{name}.git\"\nbranches = [\"main\"]\n[mirror.other]\nrepos = [\"other/*\"]\nurl = \"file:///m/{name}\"\n";
        let (_dir, _repo, loaded) = fleet(global, None);
        let config = loaded.unwrap();
        assert_eq!(config.mirrors.len(), 1, "{config:#?}");
        let mirror = &config.mirrors[0];
        assert_eq!(mirror.name, "github");
        assert_eq!(mirror.url, "git@github.com:acme-mirror/acme/app.git");
        assert_eq!(mirror.rules.branch_patterns, Some(vec!["main".to_string()]));
        assert_eq!(mirror.delay, Some(Duration::from_secs(3)), "global defaults apply");
        assert_eq!(config.fleet_mirrors, ["github"]);

        // The repository's own mirrors come first; protected_branches are the repository's.
        let (_dir, _repo, loaded) = fleet(
            "[mirror.github]\nrepos = [\"acme/*\"]\nurl = \"file:///m/{name}\"\nonly_protected_branches = true\n",
            Some("protected_branches = [\"rel/*\"]\n[mirror.backup]\nurl = \"file:///b.git\"\n"),
        );
        let config = loaded.unwrap();
        let names: Vec<_> = config.mirrors.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["backup", "github"]);
        assert_eq!(config.mirrors[1].rules.protected_only, Some(vec!["rel/*".to_string()]));
    }

    #[test]
    fn a_repository_mirror_of_the_same_name_replaces_the_fleet_mirror_entirely() {
        let (_dir, _repo, loaded) = fleet(
            "[mirror.github]\nrepos = [\"acme/*\"]\nurl = \"file:///m/{name}\"\nbranches = [\"main\"]\nkeep_divergent_refs = true\n",
            Some("[mirror.github]\nurl = \"file:///override.git\"\n"),
        );
        let config = loaded.unwrap();
        assert_eq!(config.mirrors.len(), 1);
        assert_eq!(config.mirrors[0].url, "file:///override.git");
        assert_eq!(
            config.mirrors[0].rules.branch_patterns, None,
            "nothing is merged from the fleet mirror"
        );
        assert!(!config.mirrors[0].rules.keep_divergent_refs);
        assert!(config.fleet_mirrors.is_empty());
    }

    #[test]
    fn fleet_mirrors_skip_excluded_and_outside_repositories() {
        let (_dir, _repo, loaded) = fleet(
            "[mirror.g]\nrepos = [\"acme/*\", \"!acme/app\"]\nurl = \"file:///m/{name}\"\n",
            None,
        );
        assert!(loaded.unwrap().mirrors.is_empty());
        let (dir, _repo, _) = fleet("[mirror.g]\nrepos = [\"*\"]\nurl = \"file:///m/{name}\"\n", None);
        let outside = dir.path().join("elsewhere.git");
        let file = dir.path().join("config.toml");
        let env = env_of(&[("HOME", dir.path())]);
        let global = load_global_with(Some(&file), &env, &no_system_file(&dir)).unwrap();
        assert!(load_repo(&outside, &global).unwrap().mirrors.is_empty());
    }

    #[test]
    fn a_fleet_mirror_that_does_not_resolve_names_the_global_file_and_the_repository() {
        let (dir, _repo, loaded) = fleet("[mirror.g]\nrepos = [\"*\"]\nurl = \"ext::{name}\"\n", None);
        let err = loaded.unwrap_err();
        assert_eq!(err.path(), dir.path().join("config.toml"));
        assert!(err.to_string().contains("for repository acme/app"), "{err}");
    }

    #[test]
    fn global_file_with_inline_password_must_be_private() {
        let dir = TempDir::new().unwrap();
        let file = dir.path().join("config.toml");
        let text = "repos_root = \"/srv\"\n[mirror.g]\nrepos = [\"*\"]\nurl = \"https://h/{name}.git\"\npassword = \"s3cret\"\n";
        let env = env_of(&[("HOME", dir.path())]);
        write(&file, text, 0o644);
        let err = load_global_with(Some(&file), &env, &no_system_file(&dir)).unwrap_err();
        assert_invalid(err, "chmod 600");
        write(&file, text, 0o600);
        assert!(load_global_with(Some(&file), &env, &no_system_file(&dir)).is_ok());
        let in_url = "repos_root = \"/srv\"\n[mirror.g]\nrepos = [\"*\"]\nurl = \"https://u:s3cret@h/{name}.git\"\n";
        write(&file, in_url, 0o644);
        let err = load_global_with(Some(&file), &env, &no_system_file(&dir)).unwrap_err();
        assert_invalid(err, "chmod 600");
    }

    #[test]
    fn repo_without_file_has_no_mirrors() {
        let dir = TempDir::new().unwrap();
        let global = GlobalConfig::embedded(dir.path());
        let config = load_repo(dir.path(), &global).unwrap();
        assert_eq!(config.file, dir.path().join(REPO_CONFIG_FILE));
        assert!(config.mirrors.is_empty() && config.protected_branches.is_empty());
    }

    #[test]
    fn repo_mirror_with_defaults_applied() {
        let config = repo_ok("[mirror.github]\nurl = \"https://github.com/acme/app.git\"\n");
        let m = &config.mirrors[0];
        assert_eq!(m.name, "github");
        assert_eq!(m.url, "https://github.com/acme/app.git");
        assert!(m.enabled);
        assert_eq!(m.rules, MirrorRules::default());
        assert_eq!((m.username.clone(), m.password.clone()), (None, None));
        assert_eq!(m.delay, None);
        assert_eq!(m.min_interval, Duration::ZERO);
        assert_eq!(m.timeout, Duration::from_secs(600));
        assert_eq!(config.mirror("github"), Some(m));
        assert_eq!(config.mirror("gitlab"), None);
    }

    #[test]
    fn mirrors_keep_file_order() {
        let config = repo_ok(
            "[mirror.zeta]\nurl = \"https://h/z.git\"\n[mirror.alpha]\nurl = \"https://h/a.git\"\n[mirror.mid]\nurl = \"https://h/m.git\"\n",
        );
        let names: Vec<_> = config.mirrors.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha", "mid"]);
    }

    #[test]
    fn global_defaults_apply_to_repo_mirrors() {
        let dir = TempDir::new().unwrap();
        let mut global = GlobalConfig::embedded(dir.path());
        global.defaults.tags = TagSetting::None;
        global.defaults.branches = Some(vec!["main".into()]);
        global.defaults.delay = Some(Duration::from_secs(3));
        global.defaults.ssh_key = Some("/keys/id".into());
        global.defaults.ca_file = Some("/certs/corp.pem".into());
        global.defaults.enabled = false;
        let repo = dir.path().join("r.git");
        write(
            &repo.join(REPO_CONFIG_FILE),
            "[mirror.a]\nurl = \"https://h/a.git\"\n[mirror.b]\nurl = \"https://h/b.git\"\ntags = true\nbranches = [\"dev\"]\nenabled = true\ndelay = \"0s\"\nca_file = \"own.pem\"\n",
            0o644,
        );
        let config = load_repo(&repo, &global).unwrap();
        let (a, b) = (&config.mirrors[0], &config.mirrors[1]);
        assert_eq!(a.rules.tags, TagSelection::None);
        assert_eq!(a.rules.branch_patterns, Some(vec!["main".to_string()]));
        assert_eq!(a.delay, Some(Duration::from_secs(3)));
        assert_eq!(a.ssh_key, Some(PathBuf::from("/keys/id")));
        assert_eq!(a.ca_file, Some(PathBuf::from("/certs/corp.pem")));
        assert_eq!(b.ca_file, Some(repo.join("own.pem")), "relative to the repository");
        assert!(!a.enabled);
        assert_eq!(b.rules.tags, TagSelection::All);
        assert_eq!(b.rules.branch_patterns, Some(vec!["dev".to_string()]));
        assert_eq!(b.delay, Some(Duration::ZERO));
        assert!(b.enabled);
    }

    #[test]
    fn tags_accept_bool_and_list() {
        let config = repo_ok(
            "[mirror.a]\nurl = \"https://h/a.git\"\ntags = false\n\
             [mirror.b]\nurl = \"https://h/b.git\"\ntags = true\n\
             [mirror.c]\nurl = \"https://h/c.git\"\ntags = [\"v*\", \"release-*\"]\n",
        );
        let tags: Vec<_> = config.mirrors.iter().map(|m| m.rules.tags.clone()).collect();
        assert_eq!(
            tags,
            [
                TagSelection::None,
                TagSelection::All,
                TagSelection::Matching(vec!["v*".into(), "release-*".into()])
            ]
        );
    }

    #[test]
    fn protected_only_uses_the_repository_patterns() {
        let config = repo_ok(
            "protected_branches = [\"main\", \"release/*\"]\n\
             [mirror.a]\nurl = \"https://h/a.git\"\nonly_protected_branches = true\nkeep_divergent_refs = true\nrefs = [\"refs/notes/*\"]\n\
             [mirror.b]\nurl = \"https://h/b.git\"\n",
        );
        assert_eq!(config.protected_branches, ["main", "release/*"]);
        let a = &config.mirrors[0].rules;
        assert_eq!(
            a.protected_only,
            Some(vec!["main".to_string(), "release/*".to_string()])
        );
        assert!(a.keep_divergent_refs);
        assert_eq!(a.extra_refs, ["refs/notes/*"]);
        assert_eq!(config.mirrors[1].rules.protected_only, None);

        // No protected branches: protected-only selects nothing (the planner warns).
        let config = repo_ok("[mirror.a]\nurl = \"https://h/a.git\"\nonly_protected_branches = true\n");
        assert_eq!(config.mirrors[0].rules.protected_only, Some(vec![]));
    }

    #[test]
    fn semantic_errors_in_repo_files() {
        assert_invalid(
            repo_err("[mirror.a]\nenabled = true\n", 0o644),
            "[mirror.a] needs a `url`",
        );
        assert_invalid(repo_err("[mirror.a]\nurl = \"\"\n", 0o644), "url");
        assert_invalid(
            repo_err("[mirror.\"-a\"]\nurl = \"https://h/a.git\"\n", 0o644),
            "invalid mirror name \"-a\"",
        );
        assert_invalid(
            repo_err("[mirror.a]\nurl = \"https://h/a.git\"\nrepos = [\"*\"]\n", 0o644),
            "`repos`",
        );
        assert_invalid(
            repo_err(
                "[mirror.a]\nurl = \"https://h/a.git\"\npassword_env = \"T\"\npassword_file = \"/t\"\n",
                0o600,
            ),
            "only one of",
        );
        assert_invalid(
            repo_err("[mirror.a]\nurl = \"ext::sh -c touch% /tmp/pwned\"\n", 0o644),
            "ext::",
        );
        assert_invalid(
            repo_err("[mirror.a]\nurl = \"https://h/a.git\"\nrefs = [\"notes/*\"]\n", 0o644),
            "full ref name",
        );
        assert_invalid(
            repo_err(
                "[mirror.a]\nurl = \"https://h/a.git\"\nrefs = [\"refs/heads/*\"]\n",
                0o644,
            ),
            "`branches`",
        );
        assert_invalid(
            repo_err("[mirror.a]\nurl = \"https://h/a.git\"\ntimeout = \"0s\"\n", 0o644),
            "timeout",
        );
    }

    #[test]
    fn inline_password_needs_a_private_file() {
        let text = "[mirror.a]\nurl = \"https://h/a.git\"\nusername = \"bot\"\npassword = \"s3cret\"\n";
        let two = format!("{text}[mirror.b]\nurl = \"https://h/b.git\"\n");
        for mode in [0o644, 0o640, 0o604] {
            let (dir, loaded) = repo_from(&two, mode);
            // The mirror with the password is faulted; the other one goes on.
            let config = loaded.unwrap();
            let file = dir.path().join("repo.git").join(REPO_CONFIG_FILE);
            assert_eq!(
                config.mirrors[0].fault,
                Some(format!(
                    "its inline password is in {0}, which is readable by group/others; run: chmod 600 {0}",
                    file.display()
                ))
            );
            assert_eq!(config.mirrors[1].fault, None);
            assert!(!format!("{config:?}").contains("s3cret"));
        }
        let config = repo_ok(text);
        assert_eq!(config.mirrors[0].username.as_deref(), Some("bot"));
        assert_eq!(config.mirrors[0].password, Some(SecretSource::Inline("s3cret".into())));
    }

    #[test]
    fn password_in_url_is_split_out_and_treated_as_inline() {
        let text = "[mirror.a]\nurl = \"https://bot:s3cret@h/a.git\"\n";
        let (_dir, loaded) = repo_from(text, 0o644);
        assert!(loaded.unwrap().mirrors[0].fault.as_ref().unwrap().contains("chmod 600"));
        let config = repo_ok(text);
        let m = &config.mirrors[0];
        assert_eq!(m.url, "https://h/a.git");
        assert_eq!(m.username.as_deref(), Some("bot"));
        assert_eq!(m.password, Some(SecretSource::Inline("s3cret".into())));

        // A user name alone is no secret and stays in the URL.
        let config = repo_ok("[mirror.a]\nurl = \"https://bot@h/a.git\"\n");
        assert_eq!(config.mirrors[0].url, "https://bot@h/a.git");
        assert_eq!(config.mirrors[0].password, None);

        let err = repo_err(
            "[mirror.a]\nurl = \"https://bot:s3cret@h/a.git\"\npassword_env = \"T\"\n",
            0o600,
        );
        assert_invalid(err, "password both");
    }

    #[test]
    fn password_file_must_be_private_and_paths_are_relative_to_the_repo() {
        let dir = TempDir::new().unwrap();
        let repo = dir.path().join("repo.git");
        let token = repo.join("secrets/token");
        write(&token, "s3cret\n", 0o640);
        write(
            &repo.join(REPO_CONFIG_FILE),
            "[mirror.a]\nurl = \"https://h/a.git\"\npassword_file = \"secrets/token\"\nssh_key = \"keys/id\"\nknown_hosts = \"/etc/ssh/known\"\n",
            0o644,
        );
        let global = GlobalConfig::embedded(dir.path());
        let fault = load_repo(&repo, &global).unwrap().mirrors.remove(0).fault.unwrap();
        assert!(
            fault.contains(&format!("run: chmod 600 {}", token.display())),
            "{fault}"
        );

        fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
        let m = load_repo(&repo, &global).unwrap().mirrors.remove(0);
        assert_eq!(m.fault, None);
        assert_eq!(m.password, Some(SecretSource::File(token)));
        assert_eq!(m.ssh_key, Some(repo.join("keys/id")));
        assert_eq!(m.known_hosts, Some(PathBuf::from("/etc/ssh/known")));

        // A password file that does not exist yet is reported when it is used.
        write(
            &repo.join(REPO_CONFIG_FILE),
            "[mirror.a]\nurl = \"https://h/a.git\"\npassword_file = \"/nonexistent/token\"\npassword_env = \"X\"\n",
            0o644,
        );
        assert_invalid(load_repo(&repo, &global).unwrap_err(), "only one of");
    }

    #[test]
    fn a_configuration_others_can_write_or_that_is_no_regular_file_faults_its_repository() {
        let text = "[mirror.a]\nurl = \"https://h/a.git\"\n";
        for mode in [0o666, 0o646, 0o664] {
            let (dir, loaded) = repo_from(text, mode);
            let err = loaded.unwrap_err().to_string();
            let file = dir.path().join("repo.git").join(REPO_CONFIG_FILE);
            assert!(
                err.starts_with(&format!("{}: can be written by", file.display())),
                "{err}"
            );
            assert!(err.contains(&format!("chmod go-w {}", file.display())), "{err}");
        }
        let dir = TempDir::new().unwrap();
        let repo = dir.path().join("repo.git");
        fs::create_dir_all(&repo).unwrap();
        let global = GlobalConfig::embedded(dir.path());
        let file = repo.join(REPO_CONFIG_FILE);
        crate::util::fsutil::make_fifo(&file, 0o600).unwrap();
        let err = load_repo(&repo, &global).unwrap_err().to_string();
        assert!(err.contains("FIFO"), "{err}");
        fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
        let err = load_repo(&repo, &global).unwrap_err().to_string();
        assert!(err.contains("character device"), "{err}");
        // A repository directory anyone can write: anyone could replace the file.
        fs::remove_file(&file).unwrap();
        write(&file, text, 0o644);
        fs::set_permissions(&repo, fs::Permissions::from_mode(0o777)).unwrap();
        let err = load_repo(&repo, &global).unwrap_err().to_string();
        assert!(err.contains(&format!("chmod o-w {}", repo.display())), "{err}");
    }

    #[test]
    fn a_global_configuration_others_can_write_is_refused() {
        let dir = TempDir::new().unwrap();
        let file = dir.path().join("config.toml");
        write(&file, "silent_mode = true\n", 0o666);
        let env = env_of(&[("HOME", dir.path())]);
        let err = load_global_with(Some(&file), &env, &no_system_file(&dir))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("chmod go-w {}", file.display())), "{err}");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_global_with(Some(&file), &env, &no_system_file(&dir)).is_ok());
    }

    #[test]
    fn shared_group_names_an_existing_group() {
        let config = global_from("shared_group = \"root\"\n").unwrap();
        assert_eq!(config.shared_group.map(|g| g.gid), Some(0));
        assert_invalid(
            global_from("shared_group = \"no-such-group-gpm\"\n").unwrap_err(),
            "groupadd no-such-group-gpm",
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let inline = SecretSource::Inline("s3cret".into());
        assert_eq!(format!("{inline:?}"), "Inline(\"*****\")");
        assert_eq!(format!("{:?}", SecretSource::Env("TOKEN".into())), "Env(\"TOKEN\")");
        let config = repo_ok("[mirror.a]\nurl = \"https://u:s3cret@h/a.git\"\n");
        assert!(!format!("{config:?}").contains("s3cret"));
        let settings = MirrorSettings {
            password: Some(Secret::new("s3cret".into())),
            ..MirrorSettings::default()
        };
        assert!(!format!("{settings:?}").contains("s3cret"));
    }

    #[test]
    fn mirror_names() {
        for good in ["github", "a", "GitLab_2", "back.up-1", &"x".repeat(64)] {
            assert!(valid_mirror_name(good), "{good}");
        }
        for bad in ["", ".hidden", "-x", "a b", "a/b", "ä", "a:b", &"x".repeat(65)] {
            assert!(!valid_mirror_name(bad), "{bad}");
        }
    }

    #[test]
    fn hook_reads_only_the_spool_dir_and_never_fails() {
        let dir = TempDir::new().unwrap();
        let env = env_of(&[("HOME", dir.path())]);
        let system = no_system_file(&dir);
        let default = dir.path().join(".local/state/git-push-mirror/spool");
        let file = dir.path().join("conf/config.toml");
        let hook = |explicit: Option<&Path>| {
            let settings = hook_settings_with(explicit, &env, &system);
            (settings.spool_dir, settings.warning)
        };

        assert_eq!(hook(None), (default.clone(), None));

        // Unknown keys do not matter to the hook; relative paths are resolved.
        write(&file, "spool_dir = \"q\"\nnot_a_key = 1\n", 0o644);
        assert_eq!(hook(Some(&file)), (dir.path().join("conf/q"), None));
        write(&file, "log_level = \"info\"\n", 0o644);
        assert_eq!(hook(Some(&file)), (default.clone(), None));

        for broken in ["spool_dir = \n", "spool_dir = 5\n"] {
            write(&file, broken, 0o644);
            let (spool, warning) = hook(Some(&file));
            assert_eq!(spool, default);
            let warning = warning.unwrap();
            assert!(warning.contains(&file.display().to_string()), "{warning}");
            assert!(!warning.contains('\n'), "{warning}");
        }
        let (spool, warning) = hook(Some(&dir.path().join("missing.toml")));
        assert_eq!(spool, default);
        assert!(warning.unwrap().contains("missing.toml"));

        // A FIFO is never opened for a blocking read (no writer ever comes: this would hang).
        let fifo = dir.path().join("fifo.toml");
        crate::util::fsutil::make_fifo(&fifo, 0o600).unwrap();
        let (spool, warning) = hook(Some(&fifo));
        assert_eq!(spool, default);
        assert!(warning.unwrap().contains("FIFO"));

        write(&file, "spool_dir = \"q\"\nshared_group = \"git\"\n", 0o644);
        let settings = hook_settings_with(Some(&file), &env, &system);
        assert_eq!(settings.shared_group.as_deref(), Some("git"));
    }

    #[test]
    fn hook_reads_the_state_dir_and_warn_pushers_leniently() {
        let dir = TempDir::new().unwrap();
        let env = env_of(&[("HOME", dir.path())]);
        let system = no_system_file(&dir);
        let base = dir.path().join(".local/state/git-push-mirror");
        let file = dir.path().join("conf/config.toml");
        let hook = |text: &str| {
            write(&file, text, 0o644);
            hook_settings_with(Some(&file), &env, &system)
        };
        let settings = hook("state_dir = \"st\"\n");
        assert_eq!(settings.state_dir, dir.path().join("conf/st"));
        assert_eq!(settings.spool_dir, base.join("spool"));
        assert!(settings.warn_pushers && settings.warning.is_none());
        let settings = hook("warn_pushers = false\n");
        assert_eq!(settings.state_dir, base.join("state"));
        assert!(!settings.warn_pushers);
        // A bad state_dir costs the pusher's warning, never the push or a warning of its own.
        let settings = hook("state_dir = 3\nspool_dir = \"q\"\n");
        assert_eq!(
            (settings.spool_dir, settings.warning),
            (dir.path().join("conf/q"), None)
        );
        assert!(
            hook("warn_pushers = \"no\"\n").warn_pushers,
            "only `false` turns it off"
        );
    }
}
