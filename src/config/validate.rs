//! From raw files to checked settings: defaults applied, relative paths resolved against the file's
//! directory, the security rules on secrets enforced, fleet mirrors expanded, each error naming the file.

use crate::config::lfs::LfsSettings;
use crate::config::mirror_files::Writers;
use crate::config::mirror_side::SideKeys;
use crate::config::raw::{RawGlobal, RawRepo};
use crate::config::rules::MirrorRules;
use crate::config::unknown_key::toml_error_of;
use crate::config::{
    ConfigError, FleetMirror, GlobalConfig, MAX_MIRROR_NAME, MirrorConfig, MirrorDefaults, MirrorSettings, PushLimits,
    RepoConfig, SecretSource, in_dir, valid_mirror_name,
};
use crate::util::remote_url::{Transport, split_credentials, transport_of};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(super) fn parse_global(text: &str, path: &Path, mode: u32, state_base: &Path) -> Result<GlobalConfig, ConfigError> {
    let raw: RawGlobal = toml::from_str(text).map_err(|e| toml_error_of::<RawGlobal>(path, text, &e))?;
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let dir = file_dir(path);
    let at = |key: &str, p: PathBuf| in_dir(&dir, key, &p).map_err(invalid);
    let mut config = GlobalConfig::embedded(state_base);
    config.source = Some(path.to_path_buf());
    if let Some(p) = raw.spool_dir {
        config.spool_dir = at("spool_dir", p)?;
    }
    if let Some(p) = raw.state_dir {
        config.state_dir = at("state_dir", p)?;
    }
    if let Some(p) = raw.log_file {
        config.log_file = at("log_file", p)?;
    }
    config.repos_root = raw.repos_root.map(|p| at("repos_root", p)).transpose()?;
    if let Some(name) = raw.shared_group {
        config.shared_group = Some(crate::util::users::Group::by_name(&name).ok_or_else(|| {
            invalid(format!(
                "shared_group \"{name}\" is not a group of this machine (`getent group {name}` finds none): \
                 create it (groupadd {name}) or name an existing group"
            ))
        })?);
    }
    config.log_level = raw.log_level.unwrap_or(config.log_level);
    config.silent_mode = raw.silent_mode.unwrap_or(config.silent_mode);
    config.max_parallel = raw.max_parallel.unwrap_or(config.max_parallel);
    config.allowed_protocols = raw.allowed_protocols.unwrap_or(config.allowed_protocols);
    config.worker_linger = raw.worker_linger.unwrap_or(config.worker_linger);
    if let Some(timeout) = raw.claim_timeout {
        if timeout < Duration::from_secs(1) {
            return Err(invalid(format!(
                "claim_timeout = \"{}\" is too short: a live worker could not renew its claims in time; \
                 use at least \"1s\" (the default is \"10m\")",
                humantime::format_duration(timeout)
            )));
        }
        config.claim_timeout = timeout;
    }
    config.warn_pushers = raw.warn_pushers.unwrap_or(config.warn_pushers);
    config.metrics_mirrors = raw.metrics_mirrors.unwrap_or(config.metrics_mirrors);
    if let Some(notify) = raw.notify {
        config.notify = crate::config::notify::resolve(notify, &dir).map_err(|m| invalid(format!("[notify] {m}")))?;
    }

    if let Some(retry) = raw.retry {
        let policy = &mut config.retry;
        policy.initial = retry.initial.unwrap_or(policy.initial);
        policy.max = retry.max.unwrap_or(policy.max);
        policy.fail_after = retry.fail_after.unwrap_or(policy.fail_after);
        policy.jitter = retry.jitter.unwrap_or(policy.jitter);
        policy.permanent_retry = retry.permanent_retry.unwrap_or(policy.permanent_retry);
        if policy.permanent_retry.is_zero() {
            return Err(invalid(
                "[retry] `permanent_retry` must be more than 0s (a push or `sync` always tries at once)".into(),
            ));
        }
        if policy.initial.is_zero() {
            return Err(invalid("[retry] `initial` must be more than 0s".into()));
        }
        if policy.initial > policy.max {
            return Err(invalid("[retry] `initial` must not be longer than `max`".into()));
        }
    }

    if let Some(mut settings) = raw.defaults {
        if let Some(key) = settings.set_keys().first() {
            return Err(invalid(format!(
                "[defaults] cannot set `{key}`: it belongs in a [mirror.NAME] table"
            )));
        }
        settings
            .resolve_paths(&dir)
            .map_err(|m| invalid(format!("[defaults] {m}")))?;
        config.defaults = resolve_defaults(settings).map_err(|m| invalid(format!("[defaults] {m}")))?;
    }

    for (name, mut settings) in raw.mirror.0 {
        let context = |m: String| invalid(format!("[mirror.{name}] {m}"));
        if !valid_mirror_name(&name) {
            return Err(invalid(bad_name_message(&name)));
        }
        let repos = match settings.repos.take() {
            Some(repos) if !repos.is_empty() => repos,
            _ => {
                return Err(context("needs `repos`, the repository patterns it applies to".into()));
            }
        };
        if settings.url.as_deref().is_none_or(str::is_empty) {
            return Err(context("needs a `url`".into()));
        }
        if let Some(url) = &settings.url {
            crate::config::fleet::check_url_template(url).map_err(context)?;
        }
        let repos = crate::config::fleet::normalize_patterns(repos).map_err(context)?;
        check_one_password(&settings).map_err(context)?;
        let url_password = settings
            .url
            .as_deref()
            .is_some_and(|url| split_credentials(url).password.is_some());
        if (settings.password.is_some() || url_password) && readable_by_others(mode) {
            return Err(invalid(format!(
                "contains an inline password (mirror `{name}`) but is readable by group/others; run: chmod 600 {}",
                path.display()
            )));
        }
        settings.resolve_paths(&dir).map_err(context)?;
        config.fleet_mirrors.push(FleetMirror { name, repos, settings });
    }
    if let Some(fleet) = config.fleet_mirrors.first()
        && config.repos_root.is_none()
    {
        return Err(invalid(format!(
            "[mirror.{}] is a fleet mirror: set `repos_root`, the directory its `repos` patterns and {{name}} are relative to",
            fleet.name
        )));
    }
    Ok(config)
}

fn resolve_defaults(s: MirrorSettings) -> Result<MirrorDefaults, String> {
    let builtin = MirrorDefaults::default();
    let refs = s.refs.unwrap_or_default();
    check_ref_patterns(&refs)?;
    let timeout = s.timeout.unwrap_or(builtin.timeout);
    check_timeout(timeout)?;
    Ok(MirrorDefaults {
        enabled: s.enabled.unwrap_or(builtin.enabled),
        only_protected_branches: s.only_protected_branches.unwrap_or(builtin.only_protected_branches),
        keep_divergent_refs: s.keep_divergent_refs.unwrap_or(builtin.keep_divergent_refs),
        prune_unmerged: s.prune_unmerged.unwrap_or(builtin.prune_unmerged),
        branches: s.branches,
        tags: s.tags.unwrap_or(builtin.tags),
        refs,
        ssh_key: s.ssh_key,
        known_hosts: s.known_hosts,
        ca_file: s.ca_file,
        delay: s.delay.or(builtin.delay),
        min_interval: s.min_interval.unwrap_or(builtin.min_interval),
        timeout,
        verify_interval: s.verify_interval.unwrap_or(builtin.verify_interval),
        lfs: s.lfs.unwrap_or(builtin.lfs),
        lfs_required: s.lfs_required.unwrap_or(builtin.lfs_required),
        lfs_store: s.lfs_store,
        push_limits: PushLimits {
            max_bytes: s.max_push_size.map(|size| size.0),
            max_refs: s.max_refs_per_push,
        },
        notify: s.notify.unwrap_or(builtin.notify),
        side: crate::config::mirror_side::resolve_defaults(SideKeys {
            create: s.create,
            api_url: None,
            api_token_file: None,
            visibility: s.visibility,
            push_options: s.push_options,
            first_sync_push_options: s.first_sync_push_options,
        })?,
    })
}

/// Parses the text of a repository file (`file` is the name used in errors
/// and the base of relative paths; `mode` its permission bits), as a file of this user's.
pub(crate) fn parse_repo(text: &str, file: &Path, mode: u32, global: &GlobalConfig) -> Result<RepoConfig, ConfigError> {
    parse_repo_owned(text, file, mode, crate::util::users::effective_uid(), global)
}

/// [`parse_repo`] of a file owned by `owner`: the files its mirrors name are checked for who
/// may write them (see `mirror_files.rs`), and a mirror whose files cannot be used is faulted.
pub(super) fn parse_repo_owned(
    text: &str,
    file: &Path,
    mode: u32,
    owner: u32,
    global: &GlobalConfig,
) -> Result<RepoConfig, ConfigError> {
    let raw: RawRepo = toml::from_str(text).map_err(|e| toml_error_of::<RawRepo>(file, text, &e))?;
    let invalid = |message: String| ConfigError::Invalid {
        path: file.to_path_buf(),
        message,
    };
    let dir = file_dir(file);
    let writers = Writers::for_repo(global, &dir, file, owner);
    let mut mirrors = Vec::with_capacity(raw.mirror.0.len());
    for (name, mut settings) in raw.mirror.0 {
        if !valid_mirror_name(&name) {
            return Err(invalid(bad_name_message(&name)));
        }
        let mut mirror = settings
            .resolve_paths(&dir)
            .and_then(|()| resolve_mirror(&name, settings, global, &raw.protected_branches))
            .map_err(|m| invalid(format!("[mirror.{name}] {m}")))?;
        mirror.fault = if matches!(mirror.password, Some(SecretSource::Inline(_))) && readable_by_others(mode) {
            Some(insecure_file(file))
        } else {
            writers.fault(&mirror)
        };
        mirrors.push(mirror);
    }
    Ok(RepoConfig {
        file: file.to_path_buf(),
        protected_branches: raw.protected_branches,
        mirrors,
        fleet_mirrors: Vec::new(),
    })
}

fn bad_name_message(name: &str) -> String {
    format!(
        "invalid mirror name \"{name}\": use letters, digits, `.`, `_` and `-` \
         (at most {MAX_MIRROR_NAME}, not starting with `.` or `-`)"
    )
}

/// The fault of a mirror whose inline password is in a file others can read.
fn insecure_file(file: &Path) -> String {
    format!(
        "its inline password is in {}, which is readable by group/others; run: chmod 600 {}",
        file.display(),
        file.display()
    )
}

fn check_one_password(s: &MirrorSettings) -> Result<(), String> {
    let sources = [
        s.password.is_some(),
        s.password_file.is_some(),
        s.password_env.is_some(),
    ];
    if sources.into_iter().filter(|set| *set).count() > 1 {
        return Err("set only one of `password`, `password_file` and `password_env`".into());
    }
    Ok(())
}

fn check_ref_patterns(patterns: &[String]) -> Result<(), String> {
    for pattern in patterns {
        if !pattern.starts_with("refs/") {
            return Err(format!(
                "`refs` pattern \"{pattern}\" must be a full ref name such as \"refs/notes/*\""
            ));
        }
        if pattern.starts_with("refs/heads/") || pattern.starts_with("refs/tags/") {
            return Err(format!(
                "`refs` pattern \"{pattern}\": select branches with `branches` and tags with `tags`"
            ));
        }
    }
    Ok(())
}

fn check_timeout(timeout: Duration) -> Result<(), String> {
    if timeout.is_zero() {
        return Err("`timeout` must be more than 0s".into());
    }
    Ok(())
}

fn resolve_mirror(
    name: &str,
    s: MirrorSettings,
    global: &GlobalConfig,
    protected_branches: &[String],
) -> Result<MirrorConfig, String> {
    let defaults = &global.defaults;
    if s.repos.is_some() {
        return Err("`repos` only applies to fleet mirrors in the global configuration".to_string());
    }
    check_one_password(&s)?;
    let url = match s.url {
        Some(url) if !url.trim().is_empty() => url,
        _ => return Err("needs a `url`".to_string()),
    };

    // A password inside the URL is an inline password: take it out, so the URL
    // can be shown, logged and passed to git as it is.
    let split = split_credentials(&url);
    let (url, mut username, mut password) = match split.password {
        Some(secret) => {
            if s.password.is_some() || s.password_file.is_some() || s.password_env.is_some() {
                return Err("has a password both in `url` and in a password setting".to_string());
            }
            if s.username.is_some() && split.username.is_some() {
                return Err("has a user name both in `url` and in `username`".to_string());
            }
            (split.url, split.username, Some(SecretSource::Inline(secret)))
        }
        None => (url, None, None),
    };
    username = s.username.or(username);

    // Remote helpers (`ext::`, `fd::`, ...) are never valid, so they are refused
    // here; whether an ordinary transport is in allowed_protocols is checked
    // per mirror when it is used, so changing that list fails only the
    // mirrors concerned.
    // (A misspelling git would take for another transport, `https:/host`, fails this mirror
    // alone when it is used: see `crate::access::auth::check_transport`.)
    if let Transport::Refused(what) = transport_of(&url) {
        return Err(match crate::util::remote_url::scheme_typo(&url) {
            Some(meant) => format!(
                "`url` uses `{what}`, which git does not know: did you mean {}?",
                crate::util::remote_url::redact_url(&meant)
            ),
            None => format!("`url` uses `{what}`, which is never allowed"),
        });
    }
    if let Some(problem) = crate::config::mirror_path::relative_path_problem(&url) {
        return Err(problem);
    }

    if let Some(secret) = s.password {
        password = Some(SecretSource::Inline(secret.0));
    } else if let Some(file) = s.password_file {
        password = Some(SecretSource::File(file));
    } else if let Some(var) = s.password_env {
        if var.is_empty() || var.contains(['=', '\0']) {
            return Err(format!("`password_env` \"{var}\" is not an environment variable name"));
        }
        password = Some(SecretSource::Env(var));
    }

    let refs = match s.refs {
        Some(refs) => {
            check_ref_patterns(&refs)?;
            refs
        }
        None => defaults.refs.clone(),
    };
    let only_protected = s.only_protected_branches.unwrap_or(defaults.only_protected_branches);
    let rules = MirrorRules {
        branch_patterns: s.branches.or_else(|| defaults.branches.clone()),
        protected_only: only_protected.then(|| protected_branches.to_vec()),
        tags: s.tags.as_ref().unwrap_or(&defaults.tags).clone(),
        extra_refs: refs,
        keep_divergent_refs: s.keep_divergent_refs.unwrap_or(defaults.keep_divergent_refs),
        prune_unmerged: s.prune_unmerged.unwrap_or(defaults.prune_unmerged),
    };
    let timeout = s.timeout.unwrap_or(defaults.timeout);
    check_timeout(timeout)?;
    let lfs_url = s.lfs_url.map(check_lfs_url).transpose()?;
    let side = crate::config::mirror_side::resolve(
        SideKeys {
            create: s.create,
            api_url: s.api_url,
            api_token_file: s.api_token_file,
            visibility: s.visibility,
            push_options: s.push_options,
            first_sync_push_options: s.first_sync_push_options,
        },
        &defaults.side,
        &url,
        password.as_ref(),
    )?;
    Ok(MirrorConfig {
        name: name.to_string(),
        url,
        enabled: s.enabled.unwrap_or(defaults.enabled),
        rules,
        username,
        password,
        ssh_key: s.ssh_key.or_else(|| defaults.ssh_key.clone()),
        known_hosts: s.known_hosts.or_else(|| defaults.known_hosts.clone()),
        ca_file: s.ca_file.or_else(|| defaults.ca_file.clone()),
        delay: s.delay.or(defaults.delay),
        min_interval: s.min_interval.unwrap_or(defaults.min_interval),
        timeout,
        verify_interval: s.verify_interval.unwrap_or(defaults.verify_interval),
        lfs: LfsSettings {
            mode: s.lfs.unwrap_or(defaults.lfs),
            required: s.lfs_required.unwrap_or(defaults.lfs_required),
            url: lfs_url,
            store: s.lfs_store.or_else(|| defaults.lfs_store.clone()),
        },
        push_limits: PushLimits {
            max_bytes: s.max_push_size.map(|size| size.0).or(defaults.push_limits.max_bytes),
            max_refs: s.max_refs_per_push.or(defaults.push_limits.max_refs),
        },
        fault: None,
        notify: s.notify.unwrap_or(defaults.notify),
        side,
    })
}

/// `lfs_url` is an HTTP(S) endpoint without credentials (they come from the password settings).
fn check_lfs_url(url: String) -> Result<String, String> {
    if !matches!(transport_of(&url), Transport::Https | Transport::Http) {
        return Err(format!(
            "`lfs_url` \"{url}\" must be an https:// (or http://) URL, such as \"https://host/repo.git/info/lfs\""
        ));
    }
    let split = split_credentials(&url);
    if split.password.is_some() || split.username.is_some() {
        return Err("`lfs_url` must not contain a user name or password: set `username` and a password setting".into());
    }
    Ok(url)
}

/// Adds the fleet mirrors of the global file whose `repos` patterns match the
/// repository's name under `repos_root`, with `{name}` substituted in their
/// URL. A `[mirror.NAME]` of the repository's own file replaces the fleet
/// mirror of the same name entirely (nothing is merged).
pub(super) fn apply_fleet_mirrors(
    repo: &Path,
    global: &GlobalConfig,
    config: &mut RepoConfig,
) -> Result<(), ConfigError> {
    if global.fleet_mirrors.is_empty() {
        return Ok(());
    }
    let Some(name) = crate::config::fleet::repo_name(repo, global) else {
        return Ok(());
    };
    let writers = Writers::for_global(global);
    for fleet in &global.fleet_mirrors {
        if config.mirror(&fleet.name).is_some() || !crate::config::fleet::patterns_match(&fleet.repos, &name) {
            continue;
        }
        let mut settings = fleet.settings.clone();
        settings.url = settings.url.map(|url| crate::config::fleet::expand_url(&url, &name));
        settings.lfs_url = settings
            .lfs_url
            .map(|url| crate::config::fleet::expand_url(&url, &name));
        let mut mirror =
            resolve_mirror(&fleet.name, settings, global, &config.protected_branches).map_err(|message| {
                ConfigError::Invalid {
                    path: global.source.clone().unwrap_or_default(),
                    message: format!("[mirror.{}] for repository {name}: {message}", fleet.name),
                }
            })?;
        mirror.fault = writers.fault(&mirror);
        config.mirrors.push(mirror);
        config.fleet_mirrors.push(fleet.name.clone());
    }
    Ok(())
}

pub(super) fn file_dir(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

pub(super) fn readable_by_others(mode: u32) -> bool {
    mode & 0o077 != 0
}

#[cfg(test)]
mod tests;
