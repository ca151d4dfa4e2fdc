//! Tests of where the configuration files are looked for and how they are read (`load.rs`), and the
//! helpers that load a file for the tests of what it may hold (`validate/tests.rs`).

use super::{Env, hook_settings_with, load_global_with, locate_global_in};
use crate::config::*;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use tempfile::TempDir;

/// An environment made of exactly these variables.
pub(crate) fn env_of(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> + use<> {
    let vars: HashMap<String, OsString> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
        .collect();
    move |name| vars.get(name).cloned()
}

pub(crate) fn write(path: &Path, text: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub(crate) fn no_system_file(dir: &TempDir) -> PathBuf {
    dir.path().join("etc/git-push-mirror/config.toml")
}

pub(crate) fn global_from(text: &str) -> Result<GlobalConfig, ConfigError> {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("config.toml");
    write(&file, text, 0o600);
    let env = env_of(&[("HOME", dir.path())]);
    load_global_with(Some(&file), &env, &no_system_file(&dir))
}

/// Loads `text` as `<tmp>/repo.git/push-mirror.toml`; the TempDir keeps it alive.
pub(crate) fn repo_from(text: &str, mode: u32) -> (TempDir, Result<RepoConfig, ConfigError>) {
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo.git");
    write(&repo.join(REPO_CONFIG_FILE), text, mode);
    let global = GlobalConfig::embedded(&dir.path().join("state"));
    let loaded = load_repo(&repo, &global);
    (dir, loaded)
}

pub(crate) fn repo_ok(text: &str) -> RepoConfig {
    let (_dir, loaded) = repo_from(text, 0o600);
    loaded.unwrap()
}

pub(crate) fn repo_err(text: &str, mode: u32) -> ConfigError {
    let (_dir, loaded) = repo_from(text, mode);
    loaded.unwrap_err()
}

#[track_caller]
pub(crate) fn assert_syntax(err: ConfigError, want_line: usize, want_column: usize, needle: &str) {
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
pub(crate) fn assert_invalid(err: ConfigError, needle: &str) {
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
    assert_eq!((d.branches.clone(), d.tags.clone()), (None, TagSelection::All));
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
fn repo_without_file_has_no_mirrors() {
    let dir = TempDir::new().unwrap();
    let global = GlobalConfig::embedded(dir.path());
    let config = load_repo(dir.path(), &global).unwrap();
    assert_eq!(config.file, dir.path().join(REPO_CONFIG_FILE));
    assert!(config.mirrors.is_empty() && config.protected_branches.is_empty());
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
