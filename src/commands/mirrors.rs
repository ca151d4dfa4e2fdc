//! `add`, `set`, `remove`, `list` and `forget`: a repository's mirrors, edited in its `push-mirror.toml` (a password given in a URL is moved into a mode-600 file).

use crate::access::auth::check_transport;
use crate::commands::{
    EXIT_FAILED, EXIT_OK, EXIT_USAGE, Exit, ExitContext, MissingMirror, empty_state_hint, io, known_or_given,
    no_such_mirror, repo_path,
};
use crate::config::edit::{self as config_edit, MirrorEdit};
use crate::config::{self, GlobalConfig, MirrorConfig};
use crate::mirror::state::StateStore;
use crate::util::fsutil::now_ms;
use crate::util::remote_url::{Transport, display_url, split_credentials};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

mod flags;
mod url_secret;

pub use flags::{MirrorFlags, SetOnlyFlags};
use url_secret::{edit_with_secret, split_url_secret, url_password_path};

/// Add a mirror to a repository.
#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// The bare repository pushes go to (e.g. /srv/git/app.git).
    pub repo: PathBuf,
    /// A name for the mirror: letters, digits, '.', '_' and '-' (e.g. github, backup).
    pub name: String,
    /// Where to push: https://…, ssh://[user@]host/…, user@host:path, git://…, or a local path
    /// (stored absolute: a relative path is taken from the current directory, ~ from HOME).
    pub url: String,
    #[command(flatten)]
    pub settings: MirrorFlags,
    /// Add it disabled.
    #[arg(long)]
    pub disabled: bool,
}

/// Change a mirror's settings (on a fleet mirror: give the repository its own copy of it).
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Change a mirror's settings; the flags given are changed, the others kept.\n\n\
A fleet mirror (from the global configuration) is shared by many repositories: `set` on one of them first \
copies the fleet mirror into the repository's own push-mirror.toml, says so, and changes the copy, which \
then replaces the fleet mirror for that repository only (`remove` hands it back to the fleet mirror)."
)]
pub struct SetArgs {
    /// The bare repository (e.g. /srv/git/app.git).
    pub repo: PathBuf,
    /// The mirror's name (`git-push-mirror list REPO` shows them).
    pub name: String,
    /// A new URL (a local path is stored absolute, as with `add`).
    #[arg(long)]
    pub url: Option<String>,
    #[command(flatten)]
    pub settings: MirrorFlags,
    #[command(flatten)]
    pub set_only: SetOnlyFlags,
    /// Enable or disable the mirror.
    #[arg(long, value_name = "BOOL")]
    pub enabled: Option<bool>,
}

/// Remove a mirror and its state.
#[derive(clap::Args, Debug)]
pub struct RemoveArgs {
    /// The bare repository (e.g. /srv/git/app.git).
    pub repo: PathBuf,
    /// The mirror's name (`git-push-mirror list REPO` shows them).
    pub name: String,
}

/// List configured mirrors, one line each (URLs redacted).
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only these repositories (default: every registered one and every mirrored one under repos_root).
    pub repos: Vec<PathBuf>,
}

/// Forget a repository that was deleted or moved: its registration and mirror state.
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Forget a repository: remove its registration and its mirrors' state (including \
secrets and keys git-push-mirror stored for it in the state directory), so `run`, `status`, `check` and \
`metrics` no longer cover it. A registered repository that no longer exists is also forgotten by the first \
command that finds it gone, which reports it once. A repository that still has mirrors is refused: remove \
them first."
)]
pub struct ForgetArgs {
    /// The repository's path, as it was registered (it may no longer exist).
    pub repo: PathBuf,
}

/// The mirror URL to store: a local path made absolute (relative to the current directory, `~`
/// to HOME), since the worker runs elsewhere.
fn stored_url(url: &str) -> Result<String, Exit> {
    let cwd = std::env::current_dir()
        .context("finding the current directory")
        .usage()?;
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    crate::config::mirror_path::absolute_url(url, &cwd, home.as_deref()).usage()
}

/// Refuses what `add`/`set` would store but no push could use: a password in a non-HTTP URL, a
/// password too short to keep out of messages, a password file that is missing, unreadable or
/// not a usable secret. (Credentials no URL of the mirror would send are refused on the edited
/// file: see [`refuse_unused_credentials`].)
fn check_credentials_for(url: &str, edit: &MirrorEdit) -> Result<(), Exit> {
    let transport = crate::util::remote_url::transport_of(url);
    let usage = |message: String| Err(Exit(EXIT_USAGE, anyhow::anyhow!(message)));
    let http = matches!(transport, Transport::Https | Transport::Http);
    let url_password = split_credentials(url).password;
    if !http && url_password.is_some() {
        return usage(format!(
            "the URL holds a password, but only https (and http) mirrors use one; an {transport} mirror \
             authenticates otherwise (SSH: a key, see `git-push-mirror keygen`): remove it from the URL"
        ));
    }
    if let Some(password) = &url_password {
        crate::access::auth::check_secret_length(password)
            .context("the password in the URL")
            .usage()?;
    }
    if let Some(file) = edit.password_file.as_deref().filter(|f| !f.as_os_str().is_empty()) {
        if let Err(e) = std::fs::File::open(file) {
            let what = if e.kind() == std::io::ErrorKind::NotFound {
                "does not exist: create it (one line: the password or token, mode 600), then run this again".to_string()
            } else {
                format!(
                    "cannot be read ({e}); the worker must read it: run this as the user your hooks run as, \
                     with a file that user owns (mode 600)"
                )
            };
            return usage(format!("password file {} {what}", file.display()));
        }
        // What the worker will check before each push: mode 600, one line, long enough.
        let source = crate::config::SecretSource::File(file.to_path_buf());
        crate::access::auth::read_secret(&source).usage()?;
    }
    Ok(())
}

/// For `add` and `set`, on the edited file `text`: refuses a user name or password for mirror
/// `name` that none of its URLs would ever send (see [`crate::access::credential_use`]), so nobody
/// believes a local or SSH mirror is protected by them. A file that does not load is left to the
/// edit to report.
fn refuse_unused_credentials(
    repo: &Path,
    global: &GlobalConfig,
    name: &str,
    text: &str,
) -> Result<(), config_edit::EditError> {
    let file = repo.join(crate::config::REPO_CONFIG_FILE);
    let Ok(config) = crate::config::parse_repo(text, &file, 0o600, global) else {
        return Ok(());
    };
    match config
        .mirror(name)
        .and_then(crate::access::credential_use::unused_credentials)
    {
        Some(why) => Err(config_edit::EditError::InvalidValue(format!(
            "mirror {name}: {why}; nothing was changed"
        ))),
        None => Ok(()),
    }
}

/// Whether a `set` changes what the mirror's credentials are, or where they would go.
fn touches_credentials(edit: &MirrorEdit) -> bool {
    edit.url.is_some()
        || edit.lfs_url.is_some()
        || edit.username.is_some()
        || edit.password_file.is_some()
        || edit.password_env.is_some()
}

/// Refuses, before anything is written, a `--ca-file` that is no readable PEM certificate file.
fn check_ca_file_flag(edit: &MirrorEdit) -> Result<(), Exit> {
    match &edit.ca_file {
        Some(path) if !path.as_os_str().is_empty() => crate::access::auth::check_ca_file(path).usage(),
        _ => Ok(()),
    }
}

/// Refuses, before anything is written, an SSH key others can read.
fn check_ssh_key_flag(edit: &MirrorEdit) -> Result<(), Exit> {
    match edit.ssh_key.as_deref().map(crate::access::ssh::check_key_file) {
        None | Some(Ok(())) | Some(Err(crate::access::ssh::KeyFileError::Missing(_))) => Ok(()),
        Some(Err(e)) => Err(Exit(EXIT_USAGE, e.into())),
    }
}

/// The fault the edited text gives mirror `name` (a password file others can read, a file it
/// names that others can write, a FIFO: see [`MirrorConfig::fault`]), unless it had it before
/// the edit (`before`): an edit may leave a broken mirror as it is (to disable it, say), never
/// break one.
fn refuse_new_fault(
    repo: &Path,
    global: &GlobalConfig,
    name: &str,
    text: &str,
    before: Option<&str>,
) -> Result<(), config_edit::EditError> {
    let file = repo.join(config::REPO_CONFIG_FILE);
    let Ok(cfg) = config::parse_repo(text, &file, 0o600, global) else {
        return Ok(()); // the edit's own check reports it
    };
    match cfg.mirror(name).and_then(|m| m.fault.as_deref()) {
        Some(fault) if Some(fault) != before => Err(config_edit::EditError::InvalidValue(format!(
            "mirror {name} could not be updated: {fault}"
        ))),
        _ => Ok(()),
    }
}

/// Warnings and next steps about a mirror just added or changed, from its saved configuration.
fn advise(global: &GlobalConfig, repo: &Path, name: &str, err: &mut dyn Write) {
    let Ok(cfg) = config::load_repo(repo, global) else {
        return;
    };
    if let Some(mirror) = cfg.mirror(name) {
        if let Some(fault) = &mirror.fault {
            let _ = writeln!(
                err,
                "warning: mirror {name} cannot be updated until this is fixed: {fault}"
            );
        }
        for note in crate::access::auth::setup_advice(mirror, global, repo) {
            let _ = writeln!(err, "{note}");
        }
        if let Some(note) = crate::config::mirror_path::missing_repository_note(&mirror.url) {
            let _ = writeln!(err, "{note}");
        }
        if let Some(warning) = crate::commands::protected::no_protected_branches(repo, mirror) {
            let _ = writeln!(err, "{warning}");
        }
    }
}

pub fn cmd_add(global: &GlobalConfig, args: &AddArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, Exit> {
    let AddArgs {
        repo,
        name,
        url,
        settings: flags,
        disabled,
    } = args;
    let (name, url) = (&name[..], &url[..]);
    let repo = repo_path(repo)?;
    if !config::valid_mirror_name(name) {
        return Err(Exit(
            EXIT_USAGE,
            anyhow::anyhow!("invalid mirror name {name:?}: use letters, digits, '.', '_' and '-'"),
        ));
    }
    let mut edit = flags.to_edit().usage()?;
    check_transport(url, &global.allowed_protocols).usage()?;
    let url = &stored_url(url)?;
    check_credentials_for(url, &edit)?;
    check_ssh_key_flag(&edit)?;
    check_ca_file_flag(&edit)?;
    let (clean_url, secret) = split_url_secret(global, &repo, name, url, &mut edit)?;
    edit.url = Some(clean_url.clone());
    if *disabled {
        edit.enabled = Some(false);
    }
    let mut unreachable = None;
    edit_with_secret(&repo, global, secret, err, |text| {
        let new = config_edit::add_mirror(text, name, &edit)?;
        refuse_new_fault(&repo, global, name, &new, None)?;
        refuse_unused_credentials(&repo, global, name, &new)?;
        unreachable = crate::commands::check::try_new_mirror(&repo, global, name, &new)?;
        Ok(new)
    })?;
    let store = StateStore::new(&global.state_dir);
    store.register(&repo)?;
    store.change_mirror_state(&repo, name, |state| state.request_full_sync(now_ms()))?;
    let has_password = edit.password_file.is_some() || edit.password_env.is_some();
    writeln!(
        out,
        "added mirror {name} -> {} to {}",
        display_url(&clean_url, has_password),
        repo.display()
    )
    .map_err(io)?;
    warn_unreachable(&repo, name, unreachable, "added", err);
    advise(global, &repo, name, err);
    Ok(EXIT_OK)
}

/// The warning for a mirror that could not be reached when it was added or re-pointed, in the
/// host's words: the change stands (the repository may be created later, or the host be out of
/// reach from here for now).
fn warn_unreachable(repo: &Path, name: &str, words: Option<String>, done: &str, err: &mut dyn Write) {
    if let Some(words) = words {
        let _ = writeln!(
            err,
            "warning: mirror {name} could not be reached: {words}\n\
             it was {done} anyway (its repository may be created later, or its host be out of reach from here \
             for now); `git-push-mirror check {}` tries it again",
            repo.display()
        );
    }
}

pub fn cmd_set(global: &GlobalConfig, args: &SetArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, Exit> {
    let SetArgs {
        repo,
        name,
        url,
        settings: flags,
        set_only,
        enabled,
    } = args;
    let (name, url, enabled) = (&name[..], url.clone(), *enabled);
    let repo = repo_path(repo)?;
    let mut edit = flags.to_edit().usage()?;
    set_only.apply(&mut edit);
    edit.enabled = enabled;
    let reset_learned = set_only.resets_learned_limit();
    if url.is_none() && edit == MirrorEdit::default() {
        if reset_learned {
            return reset_learned_limit(global, &repo, name, out);
        }
        return Err(Exit(
            EXIT_USAGE,
            anyhow::anyhow!("nothing to change: give the settings to change (`git-push-mirror set --help` lists them)"),
        ));
    }
    // A broken file is reported by the edit itself; only a loadable one can name the mirror.
    let cfg = config::load_repo(&repo, global).ok();
    let fleet_copy = match &cfg {
        Some(cfg) if cfg.mirror(name).is_none() => {
            return Err(no_such_mirror(&repo, name, cfg, MissingMirror::MayBeAdded));
        }
        Some(cfg) if cfg.fleet_mirrors.iter().any(|m| m == name) => {
            let repo_name = crate::config::fleet::repo_name(&repo, global).unwrap_or_default();
            Some(crate::config::fleet_override::copy_for_repo(global, name, &repo_name).usage()?)
        }
        _ => None,
    };
    let current_url = cfg.as_ref().and_then(|c| c.mirror(name)).map(|m| m.url.clone());
    let fault_before = cfg.as_ref().and_then(|c| c.mirror(name)).and_then(|m| m.fault.clone());
    let mut secret = None;
    if let Some(url) = url {
        check_transport(&url, &global.allowed_protocols).usage()?;
        let url = stored_url(&url)?;
        check_credentials_for(&url, &edit)?;
        let (clean, staged) = split_url_secret(global, &repo, name, &url, &mut edit)?;
        secret = staged;
        edit.url = Some(clean);
    } else if let Some(current) = &current_url {
        check_credentials_for(current, &edit)?;
    }
    check_ssh_key_flag(&edit)?;
    check_ca_file_flag(&edit)?;
    let copied = fleet_copy.is_some();
    let url_changed = edit.url.is_some();
    let credentials_touched = touches_credentials(&edit);
    let mut unreachable = None;
    edit_with_secret(&repo, global, secret, err, |text| {
        let text = match fleet_copy {
            Some(table) => config_edit::add_mirror_table(text, name, table)?,
            None => text.to_string(),
        };
        let new = config_edit::set_mirror(&text, name, &edit)?;
        refuse_new_fault(&repo, global, name, &new, fault_before.as_deref())?;
        // Another change leaves credentials set by hand alone (`advise` warns about them).
        if credentials_touched {
            refuse_unused_credentials(&repo, global, name, &new)?;
        }
        if url_changed {
            unreachable = crate::commands::check::try_new_mirror(&repo, global, name, &new)?;
        }
        Ok(new)
    })?;
    // Settings may widen what is mirrored: reconcile everything at the next update; and they may
    // fix what failed: no waiting out the backoff.
    crate::commands::retry_after_fix(global, &repo, name, |state| state.request_full_sync(now_ms()), err)?;
    if copied {
        let _ = writeln!(
            err,
            "{}",
            crate::config::fleet_override::copied_notice(global, &repo, name)
        );
    }
    writeln!(out, "updated mirror {name} of {}", repo.display()).map_err(io)?;
    if reset_learned {
        reset_learned_limit(global, &repo, name, out)?;
    }
    warn_unreachable(&repo, name, unreachable, "changed", err);
    advise(global, &repo, name, err);
    Ok(EXIT_OK)
}

/// `set --reset-learned-limit`: forgets what the mirror's failed pushes taught about its push
/// size; says what was forgotten.
fn reset_learned_limit(global: &GlobalConfig, repo: &Path, name: &str, out: &mut dyn Write) -> Result<u8, Exit> {
    let cfg = crate::commands::load_repo_config(global, repo)?;
    if cfg.mirror(name).is_none() {
        return Err(no_such_mirror(repo, name, &cfg, MissingMirror::MustExist));
    }
    let store = StateStore::new(&global.state_dir);
    let forgotten = store.change_mirror_state(repo, name, |state| {
        let learned = state.learned_limits().in_effect();
        state.set_learned_limits(Default::default());
        learned
    })?;
    match forgotten {
        Some(limit) => writeln!(
            out,
            "forgot the push size limit of mirror {name} ({}, {}); its next update pushes without it",
            crate::util::size::ByteSize(limit.bytes),
            limit.source.as_str()
        ),
        None => writeln!(
            out,
            "mirror {name} of {} had no learned push size limit",
            repo.display()
        ),
    }
    .map_err(io)?;
    Ok(EXIT_OK)
}

pub fn cmd_remove(
    global: &GlobalConfig,
    args: &RemoveArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    let (repo, name) = (&args.repo, &args.name[..]);
    let repo = repo_path(repo)?;
    let cfg = config::load_repo(&repo, global).ok();
    match &cfg {
        Some(cfg) if cfg.mirror(name).is_none() => {
            return Err(no_such_mirror(&repo, name, cfg, MissingMirror::MustExist));
        }
        Some(cfg) if cfg.fleet_mirrors.iter().any(|m| m == name) => {
            return Err(Exit(
                EXIT_USAGE,
                anyhow::anyhow!(crate::config::fleet_override::remove_refusal(global, &repo, name)),
            ));
        }
        _ => {}
    }
    config_edit::edit_repo_file(&repo, global, |text| config_edit::remove_mirror(text, name)).usage()?;
    let store = StateStore::new(&global.state_dir);
    store.remove_mirror(&repo, name)?;
    writeln!(out, "removed mirror {name} of {}", repo.display()).map_err(io)?;
    // Secrets this program created for the mirror go with it.
    let key = super::keys::default_key_path(&store, &repo, name);
    for file in [
        url_password_path(global, &repo, name),
        crate::access::ssh::public_key_path(&key),
        key,
        super::keys::default_known_hosts_path(&store, &repo, name),
    ] {
        if std::fs::remove_file(&file).is_ok() {
            writeln!(out, "deleted {}", file.display()).map_err(io)?;
        }
    }
    if crate::config::fleet_override::fleet_selects(global, &repo, name) {
        let _ = writeln!(
            err,
            "{}",
            crate::config::fleet_override::fleet_applies_again(global, &repo, name)
        );
    }
    Ok(EXIT_OK)
}

fn describe_filters(mirror: &MirrorConfig) -> String {
    let rules = &mirror.rules;
    let mut parts = Vec::new();
    if let Some(patterns) = &rules.branch_patterns {
        parts.push(format!("branches={}", patterns.join(",")));
    }
    if rules.protected_only.is_some() {
        parts.push("only-protected-branches".to_string());
    }
    match &rules.tags {
        crate::config::rules::TagSelection::All => {}
        crate::config::rules::TagSelection::None => parts.push("no-tags".to_string()),
        crate::config::rules::TagSelection::Matching(p) => parts.push(format!("tags={}", p.join(","))),
    }
    if rules.keep_divergent_refs {
        parts.push("keep-divergent-refs".to_string());
    }
    if rules.prune_unmerged {
        parts.push("prune-unmerged".to_string());
    }
    parts.join(" ")
}

pub fn cmd_list(global: &GlobalConfig, args: &ListArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, Exit> {
    let repos = &args.repos[..];
    let mut config_errors = 0;
    let mut listed = 0;
    for repo in known_or_given(global, repos, err)? {
        // A broken configuration is reported; the other repositories are still listed.
        let cfg = match config::load_repo(&repo, global) {
            Ok(cfg) => cfg,
            Err(e) => {
                config_errors += 1;
                writeln!(err, "git-push-mirror: {e}").map_err(io)?;
                continue;
            }
        };
        listed += cfg.mirrors.len();
        for mirror in &cfg.mirrors {
            let enabled = if mirror.enabled { "enabled" } else { "disabled" };
            let line = format!(
                "{}\t{}\t{}\t{enabled}\t{}",
                repo.display(),
                mirror.name,
                mirror.shown_url(),
                if cfg.fleet_mirrors.contains(&mirror.name) {
                    format!("fleet {}", describe_filters(mirror))
                } else {
                    describe_filters(mirror)
                }
            );
            writeln!(out, "{}", line.trim_end()).map_err(io)?;
        }
    }
    if listed == 0 && config_errors == 0 {
        // On stderr: list's output is for scripts.
        writeln!(err, "{}", empty_state_hint(global)).map_err(io)?;
    }
    Ok(if config_errors > 0 { EXIT_USAGE } else { EXIT_OK })
}

pub fn cmd_forget(global: &GlobalConfig, args: &ForgetArgs, out: &mut dyn Write) -> Result<u8, Exit> {
    let repo = &args.repo;
    use crate::pipeline::registrations::{ForgetError, forget};
    match forget(global, repo) {
        Ok(repo) => {
            writeln!(
                out,
                "forgot {}: its registration and its mirrors' state were removed",
                repo.display()
            )
            .map_err(io)?;
            Ok(EXIT_OK)
        }
        Err(e @ ForgetError::Failed { .. }) => Err(Exit(EXIT_FAILED, e.into())),
        Err(e) => Err(Exit(EXIT_USAGE, e.into())),
    }
}
