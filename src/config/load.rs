//! Finding and reading the configuration: where the global file is looked for, the default state and spool
//! directories, reading a file with its permissions, the hook's lenient spool lookup, and TOML errors with
//! `file:line:column`.

use crate::config::raw::toml_error;
use crate::config::validate::{apply_fleet_mirrors, file_dir, parse_global, parse_repo_owned};
use crate::config::{
    APP_DIR, CONFIG_ENV, ConfigError, GlobalConfig, REPO_CONFIG_FILE, RepoConfig, SYSTEM_CONFIG_ENV, SYSTEM_CONFIG_FILE,
};
use crate::util::regular_file::{MAX_CONFIG_FILE_SIZE, read_regular_text};
use crate::util::trust::{Trusted, check_file};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

fn real_env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// A non-empty absolute path from the environment (XDG: relative values are ignored).
fn env_dir(env: Env<'_>, name: &str) -> Option<PathBuf> {
    env(name).map(PathBuf::from).filter(|p| p.is_absolute())
}

pub(super) fn home(env: Env<'_>) -> Option<PathBuf> {
    env_dir(env, "HOME").or_else(|| {
        // No usable $HOME (some hook environments): ask the password database.
        std::env::home_dir().filter(|p| p.is_absolute())
    })
}

/// Finds the global configuration file: `explicit` (`--config`), then
/// `$GIT_PUSH_MIRROR_CONFIG` (both must exist), then
/// `$XDG_CONFIG_HOME/git-push-mirror/config.toml` (default `~/.config`), then the system file
/// (`/etc/git-push-mirror/config.toml`, or `$GIT_PUSH_MIRROR_SYSTEM_CONFIG`), if they exist.
/// `None`: use the embedded defaults.
pub fn locate_global(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Option<PathBuf>, ConfigError> {
    locate_global_in(explicit, env, Path::new(SYSTEM_CONFIG_FILE))
}

/// The system-wide file: `$GIT_PUSH_MIRROR_SYSTEM_CONFIG` when set (as git's `GIT_CONFIG_SYSTEM`
/// replaces `/etc/gitconfig`: a container's or a test suite's own "system" file), else `default`.
/// Unlike `$GIT_PUSH_MIRROR_CONFIG`, the file it names need not exist.
fn system_file(env: Env<'_>, default: &Path) -> PathBuf {
    env(SYSTEM_CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| default.to_path_buf(), |v| absolute(Path::new(&v)))
}

/// The system-wide file this process would read (see [`locate_global`]).
pub fn system_config_file() -> PathBuf {
    system_file(&real_env, Path::new(SYSTEM_CONFIG_FILE))
}

/// [`locate_global`] with the environment and the default system file given.
pub(super) fn locate_global_in(
    explicit: Option<&Path>,
    env: Env<'_>,
    system_default: &Path,
) -> Result<Option<PathBuf>, ConfigError> {
    let named = explicit
        .map(Path::to_path_buf)
        .or_else(|| env(CONFIG_ENV).filter(|v| !v.is_empty()).map(PathBuf::from));
    if let Some(path) = named {
        return match fs::metadata(&path) {
            Ok(_) => Ok(Some(path)),
            Err(source) => Err(ConfigError::Io { path, source }),
        };
    }
    let user_file = env_dir(env, "XDG_CONFIG_HOME")
        .or_else(|| home(env).map(|h| h.join(".config")))
        .map(|dir| dir.join(APP_DIR).join("config.toml"));
    // A file we cannot even stat counts as present, so reading it reports why
    // instead of silently falling back to other settings.
    let present = |path: &Path| path.try_exists().unwrap_or(true);
    Ok(user_file
        .into_iter()
        .chain([system_file(env, system_default)])
        .find(|path| present(path)))
}

/// Where spool, state and log live by default: `$XDG_STATE_HOME/git-push-mirror`,
/// else `~/.local/state/git-push-mirror`.
pub fn state_base(env: &dyn Fn(&str) -> Option<OsString>) -> PathBuf {
    env_dir(env, "XDG_STATE_HOME")
        .or_else(|| home(env).map(|h| h.join(".local").join("state")))
        // No home directory at all: somewhere that fails loudly rather than a
        // world-writable temporary directory.
        .unwrap_or_else(|| PathBuf::from("/var/lib"))
        .join(APP_DIR)
}

/// Loads the global configuration (see [`locate_global`]), or the embedded
/// defaults when there is no file.
pub fn load_global(explicit: Option<&Path>) -> Result<GlobalConfig, ConfigError> {
    load_global_with(explicit, &real_env, Path::new(SYSTEM_CONFIG_FILE))
}

pub(super) fn load_global_with(
    explicit: Option<&Path>,
    env: Env<'_>,
    system_default: &Path,
) -> Result<GlobalConfig, ConfigError> {
    let base = state_base(env);
    match locate_global_in(explicit, env, system_default)? {
        None => Ok(GlobalConfig::embedded(&base)),
        Some(path) => {
            let path = absolute(&path);
            let (text, meta) = read_regular_text(&path, MAX_CONFIG_FILE_SIZE).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            let config = parse_global(&text, &path, meta.mode(), &base)?;
            // It names the spool, the state and fleet mirrors with their credentials.
            let trusted = Trusted::worker(config.shared_group.clone());
            match check_file(&path, "the global configuration", &meta, &trusted) {
                Some(untrusted) => Err(ConfigError::Invalid {
                    path,
                    message: untrusted.problem(),
                }),
                None => Ok(config),
            }
        }
    }
}

/// The spool directory of the embedded defaults, where hooks spool while the
/// global configuration cannot be read (the worker adopts entries from it).
pub fn default_spool_dir() -> PathBuf {
    state_base(&real_env).join("spool")
}

/// What the hook reads of the global configuration: where to spool, the group that may share
/// the spool (`shared_group`, unresolved), where the state (and its per-repository summary of
/// failing mirrors) is, and whether to warn pushers about them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookSettings {
    pub spool_dir: PathBuf,
    pub shared_group: Option<String>,
    pub state_dir: PathBuf,
    pub warn_pushers: bool,
    /// Why the defaults are used instead of the file (a one-line warning for the pusher).
    pub warning: Option<String>,
}

/// The hook's lenient reading of the global configuration: never fails, never blocks (a FIFO
/// or a device named as the file is refused unread), reads no more than it must (the file's
/// top-level keys, no mirror configuration). On any problem it returns the default directories
/// and a one-line warning, so a broken config never loses a push.
pub fn hook_settings(explicit: Option<&Path>) -> HookSettings {
    hook_settings_with(explicit, &real_env, Path::new(SYSTEM_CONFIG_FILE))
}

pub(super) fn hook_settings_with(explicit: Option<&Path>, env: Env<'_>, system_default: &Path) -> HookSettings {
    let base = state_base(env);
    let defaults = HookSettings {
        spool_dir: base.join("spool"),
        shared_group: None,
        state_dir: base.join("state"),
        warn_pushers: true,
        warning: None,
    };
    let fallback = |problem: String| HookSettings {
        warning: Some(format!(
            "{problem}; spooling to {} instead",
            defaults.spool_dir.display()
        )),
        ..defaults.clone()
    };
    let path = match locate_global_in(explicit, env, system_default) {
        Ok(Some(path)) => absolute(&path),
        Ok(None) => return defaults,
        Err(e) => return fallback(e.to_string()),
    };
    let text = match read_regular_text(&path, MAX_CONFIG_FILE_SIZE) {
        Ok((text, _)) => text,
        Err(source) => return fallback(ConfigError::Io { path, source }.to_string()),
    };
    let table = match toml::from_str::<toml::Table>(&text) {
        Ok(table) => table,
        Err(e) => return fallback(toml_error(&path, &text, &e).to_string()),
    };
    let shared_group = match table.get("shared_group") {
        None => None,
        Some(toml::Value::String(group)) => Some(group.clone()),
        Some(_) => return fallback(format!("{}: `shared_group` is not a group name", path.display())),
    };
    let dir_key = |key: &str, default: &Path| match table.get(key) {
        None => Ok(default.to_path_buf()),
        Some(toml::Value::String(dir)) if !dir.is_empty() => Ok(file_dir(&path).join(dir)),
        Some(_) => Err(format!("{}: `{key}` is not a path", path.display())),
    };
    let spool_dir = match dir_key("spool_dir", &defaults.spool_dir) {
        Ok(dir) => dir,
        Err(problem) => return fallback(problem),
    };
    // The state directory only serves the pusher's warning: a bad value costs the warning, never the push.
    let state_dir = dir_key("state_dir", &defaults.state_dir).unwrap_or_else(|_| defaults.state_dir.clone());
    let warn_pushers = !matches!(table.get("warn_pushers"), Some(toml::Value::Boolean(false)));
    HookSettings {
        spool_dir,
        shared_group,
        state_dir,
        warn_pushers,
        warning: None,
    }
}

/// Loads `<repo>/push-mirror.toml`; a missing file means no mirrors. The file decides where
/// the repository is pushed, with which credentials: one that users the worker does not trust
/// can write is refused (see [`untrusted_repo_file`]).
pub fn load_repo(repo: &Path, global: &GlobalConfig) -> Result<RepoConfig, ConfigError> {
    let file = repo.join(REPO_CONFIG_FILE);
    match read_regular_text(&file, MAX_CONFIG_FILE_SIZE) {
        Ok((text, meta)) => match untrusted_repo_file(repo, &file, &meta, global) {
            Some(message) => Err(ConfigError::Invalid { path: file, message }),
            None => parse_repo_owned(&text, &file, meta.mode(), meta.uid(), global),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RepoConfig {
            file,
            protected_branches: Vec::new(),
            mirrors: Vec::new(),
            fleet_mirrors: Vec::new(),
        }),
        Err(source) => Err(ConfigError::Io { path: file, source }),
    }
    .and_then(|mut config| {
        apply_fleet_mirrors(repo, global, &mut config)?;
        Ok(config)
    })
}

/// Why a repository's `push-mirror.toml` (`meta`: as read) must not be used: it, or the
/// repository directory holding it, can be written by users the worker does not trust. The
/// users it trusts are root, itself, the `shared_group` and the repository's owner.
pub(crate) fn untrusted_repo_file(
    repo: &Path,
    file: &Path,
    meta: &std::fs::Metadata,
    global: &GlobalConfig,
) -> Option<String> {
    let mut trusted = Trusted::worker(global.shared_group.clone());
    if let Ok(repo_meta) = fs::metadata(repo) {
        // Any user could replace the file (a group writing the repository is git's own sharing).
        if repo_meta.mode() & 0o1002 == 0o002 {
            return Some(format!(
                "the repository {} can be written by every user (mode {:o}), who could replace this file, which \
                 decides what is pushed where with which credentials, so it is refused; fix: chmod o-w {}",
                repo.display(),
                repo_meta.mode() & 0o7777,
                repo.display()
            ));
        }
        trusted = trusted.and_user(repo_meta.uid());
    }
    check_file(file, "the repository's configuration", meta, &trusted).map(|untrusted| untrusted.problem())
}

pub(super) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
pub(super) mod tests;
