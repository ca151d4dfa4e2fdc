//! The command line: flags are parsed once here, turned into checked settings, and each command
//! writes to the `out`/`err` it is given. Exit codes: 0 ok, 1 a mirror or check failed, 2 usage or
//! configuration error.

use crate::auth::check_transport;
use crate::config::{self, GlobalConfig, MirrorConfig, TagSetting};
use crate::config_edit::{self, MirrorEdit};
use crate::fsutil::{FileLock, now_ms, write_atomic};
use crate::remote_url::{Transport, redact_url, split_credentials};
use crate::state::StateStore;
use crate::update::{UpdateReport, update_mirror};
use crate::{git, hook, install, status, worker};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Everything went as asked.
pub const EXIT_OK: u8 = 0;
/// A mirror update failed or a check found a problem.
pub const EXIT_FAILED: u8 = 1;
/// Bad usage or broken configuration.
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "git-push-mirror",
    version,
    about = "GitLab-style push mirroring for self-hosted bare git repositories",
    long_about = "GitLab-style push mirroring for self-hosted bare git repositories.\n\n\
A post-receive hook records each push in a spool and returns at once; a worker \
pushes the changed refs to every configured mirror, with GitLab's mirror rules.\n\n\
Quick start:\n  git-push-mirror add /srv/git/app.git backup file:///backup/app.git\n  \
git-push-mirror install /srv/git/app.git\n  git-push-mirror status",
    after_help = "Exit status: 0 success, 1 a mirror update failed or a check found a problem, 2 usage or configuration error."
)]
pub struct Cli {
    /// Global configuration file (default: $GIT_PUSH_MIRROR_CONFIG, then
    /// $XDG_CONFIG_HOME/git-push-mirror/config.toml, then /etc/git-push-mirror/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log more (debug); twice for trace.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Hook bodies, as git runs them (`hook post-receive`).
    Hook {
        #[command(subcommand)]
        hook: HookCommand,
    },
    /// Drain the spool and update due mirrors, then exit (for cron and the hook).
    Run {
        /// Only update mirrors of these repositories.
        #[arg(long = "repo", value_name = "REPO")]
        repos: Vec<PathBuf>,
        /// If another worker is draining, wait for it and then drain (default: leave it the work).
        #[arg(long)]
        wait: bool,
        /// Started by the hook: log to the log file only.
        #[arg(long, hide = true)]
        detached: bool,
    },
    /// Update now: full reconciliation in the foreground, with a per-ref table.
    Sync {
        repo: PathBuf,
        /// Only this mirror.
        #[arg(long, value_name = "NAME")]
        mirror: Option<String>,
    },
    /// Add a mirror to a repository.
    Add {
        repo: PathBuf,
        name: String,
        url: String,
        #[command(flatten)]
        settings: MirrorFlags,
        /// Add it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Change a mirror's settings.
    Set {
        repo: PathBuf,
        name: String,
        /// A new URL.
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        settings: MirrorFlags,
        /// Enable or disable the mirror.
        #[arg(long, value_name = "BOOL")]
        enabled: Option<bool>,
    },
    /// Remove a mirror and its state.
    Remove { repo: PathBuf, name: String },
    /// List configured mirrors, one line each (URLs redacted).
    List { repos: Vec<PathBuf> },
    /// Show each mirror's status; exits 1 if any mirror is failed.
    Status {
        repos: Vec<PathBuf>,
        /// One JSON array of objects with stable field names.
        #[arg(long)]
        json: bool,
    },
    /// Install the post-receive hook (an existing hook is kept and still runs).
    Install {
        #[arg(required = true)]
        repos: Vec<PathBuf>,
    },
    /// Remove the hook and restore the one it replaced.
    Uninstall {
        #[arg(required = true)]
        repos: Vec<PathBuf>,
    },
    /// Validate the configuration and reach each mirror (ls-remote).
    Check { repos: Vec<PathBuf> },
}

#[derive(Subcommand, Debug)]
pub enum HookCommand {
    /// The post-receive hook: record the pushed refs, start a worker, exit 0.
    PostReceive {
        /// A previous post-receive hook to run afterwards with the same input.
        #[arg(long, value_name = "HOOK")]
        chain: Option<PathBuf>,
        /// Don't start a worker (cron's `run` will push).
        #[arg(long)]
        no_worker: bool,
        /// Arguments passed on to the chained hook.
        #[arg(last = true)]
        args: Vec<String>,
    },
}

/// Mirror settings shared by `add` and `set`.
#[derive(Args, Debug, Default)]
pub struct MirrorFlags {
    /// Mirror only the repository's protected_branches.
    #[arg(long)]
    only_protected_branches: Option<Option<bool>>,
    /// Never overwrite or delete refs that differ on the mirror.
    #[arg(long)]
    keep_divergent_refs: Option<Option<bool>>,
    /// Mirror only branches matching PATTERN (`*` matches anything, `/` too); repeatable.
    #[arg(long = "branch", value_name = "PATTERN")]
    branches: Vec<String>,
    /// Mirror all branches again (clears --branch patterns).
    #[arg(long, conflicts_with = "branches")]
    all_branches: bool,
    /// Don't mirror tags.
    #[arg(long)]
    no_tags: bool,
    /// Mirror only tags matching PATTERN; repeatable.
    #[arg(long = "tag", value_name = "PATTERN", conflicts_with = "no_tags")]
    tags: Vec<String>,
    /// Mirror all tags (the default).
    #[arg(long, conflicts_with_all = ["no_tags", "tags"])]
    all_tags: bool,
    /// User name for HTTPS.
    #[arg(long)]
    username: Option<String>,
    /// File holding the HTTPS password or token (must be mode 600).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Environment variable holding the HTTPS password or token.
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,
    /// SSH private key for this mirror.
    #[arg(long, value_name = "FILE")]
    ssh_key: Option<PathBuf>,
    /// known_hosts file for this mirror's SSH host.
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// Debounce: wait this long after a change to collect others (e.g. "1s").
    #[arg(long, value_name = "DURATION")]
    delay: Option<String>,
    /// At most one update per this interval (e.g. "5m").
    #[arg(long, value_name = "DURATION")]
    min_interval: Option<String>,
    /// Wall-clock limit for each git process (e.g. "10m").
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
}

impl MirrorFlags {
    fn to_edit(&self) -> Result<MirrorEdit> {
        let flag = |v: Option<Option<bool>>| v.map(|inner| inner.unwrap_or(true));
        let absolute = |p: &Option<PathBuf>| -> Result<Option<PathBuf>> {
            p.as_ref()
                .map(|p| std::path::absolute(p).context("resolving a path"))
                .transpose()
        };
        let tags = if self.no_tags {
            Some(TagSetting::None)
        } else if !self.tags.is_empty() {
            Some(TagSetting::Matching(self.tags.clone()))
        } else if self.all_tags {
            Some(TagSetting::All)
        } else {
            None
        };
        for duration in [&self.delay, &self.min_interval, &self.timeout].into_iter().flatten() {
            humantime::parse_duration(duration)
                .with_context(|| format!("invalid duration {duration:?} (try \"2s\", \"5m\", \"1h\")"))?;
        }
        Ok(MirrorEdit {
            only_protected_branches: flag(self.only_protected_branches),
            keep_divergent_refs: flag(self.keep_divergent_refs),
            branches: if self.all_branches {
                Some(Vec::new())
            } else {
                (!self.branches.is_empty()).then(|| self.branches.clone())
            },
            tags,
            username: self.username.clone(),
            password_file: absolute(&self.password_file)?,
            password_env: self.password_env.clone(),
            ssh_key: absolute(&self.ssh_key)?,
            known_hosts: absolute(&self.known_hosts)?,
            delay: self.delay.clone(),
            min_interval: self.min_interval.clone(),
            timeout: self.timeout.clone(),
            ..Default::default()
        })
    }
}

/// A failure with the exit code it deserves.
#[derive(Debug)]
pub struct Exit(pub u8, pub anyhow::Error);

trait ExitContext<T> {
    fn usage(self) -> Result<T, Exit>;
}

impl<T, E: Into<anyhow::Error>> ExitContext<T> for Result<T, E> {
    fn usage(self) -> Result<T, Exit> {
        self.map_err(|e| Exit(EXIT_USAGE, e.into()))
    }
}

impl From<anyhow::Error> for Exit {
    fn from(e: anyhow::Error) -> Exit {
        Exit(EXIT_FAILED, e)
    }
}

/// The program: `post-receive` when invoked under that name, the CLI otherwise.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args
        .first()
        .map(Path::new)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or("");
    if invoked_as == "post-receive" {
        let mut stdin = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut stdin);
        let options = hook::HookOptions {
            config: None,
            chain: None,
            chain_args: &[],
            no_worker: false,
        };
        return ExitCode::from(hook::run_hook(&stdin, &options, &mut std::io::stderr()) as u8);
    }
    let cli = Cli::parse_from(args);
    // Not locked for the whole run: worker threads log while a command runs.
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    match run(cli, &mut out, &mut err) {
        Ok(code) => ExitCode::from(code),
        Err(Exit(code, e)) => {
            let _ = writeln!(err, "git-push-mirror: {e:#}");
            ExitCode::from(code)
        }
    }
}

fn init_logging(global: &GlobalConfig, verbose: u8, to_log_file: bool) {
    let level = match verbose {
        0 => global.log_level,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    if to_log_file {
        redirect_stderr_to(&global.log_file);
    }
    let _ = simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_utc_timestamps()
        .env()
        .init();
}

/// Points stderr (where the logger writes) at the log file, appending.
fn redirect_stderr_to(log_file: &Path) {
    use std::os::fd::AsRawFd;
    if let Some(dir) = log_file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let opened = std::fs::OpenOptions::new().create(true).append(true).open(log_file);
    if let Ok(file) = opened {
        // SAFETY: dup2 onto fd 2 replaces stderr for the rest of the process.
        unsafe { libc::dup2(file.as_raw_fd(), 2) };
    }
}

fn stderr_is_terminal() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(2) == 1 }
}

/// Runs one parsed command line.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, Exit> {
    if let Command::Hook {
        hook: HookCommand::PostReceive { chain, no_worker, args },
    } = &cli.command
    {
        let mut stdin = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut stdin);
        let options = hook::HookOptions {
            config: cli.config.as_deref(),
            chain: chain.as_deref(),
            chain_args: args,
            no_worker: *no_worker,
        };
        return Ok(hook::run_hook(&stdin, &options, err) as u8);
    }
    let global = config::load_global(cli.config.as_deref()).usage()?;
    let to_log_file = matches!(cli.command, Command::Run { detached: true, .. })
        || (matches!(cli.command, Command::Run { .. }) && !stderr_is_terminal());
    init_logging(&global, cli.verbose, to_log_file);
    match cli.command {
        Command::Hook { .. } => unreachable!("handled above"),
        Command::Run { repos, wait, detached } => cmd_run(&global, &repos, wait, detached),
        Command::Sync { repo, mirror } => cmd_sync(&global, &repo, mirror.as_deref(), out),
        Command::Add {
            repo,
            name,
            url,
            settings,
            disabled,
        } => cmd_add(&global, &repo, &name, &url, &settings, disabled, out, err),
        Command::Set {
            repo,
            name,
            url,
            settings,
            enabled,
        } => cmd_set(&global, &repo, &name, url, &settings, enabled, out, err),
        Command::Remove { repo, name } => cmd_remove(&global, &repo, &name, out),
        Command::List { repos } => cmd_list(&global, &repos, out),
        Command::Status { repos, json } => cmd_status(&global, &repos, json, out, err),
        Command::Install { repos } => cmd_install(&global, cli.config.as_deref(), &repos, out),
        Command::Uninstall { repos } => cmd_uninstall(&repos, out),
        Command::Check { repos } => cmd_check(&global, &repos, out),
    }
}

/// A repository argument, as the absolute path the hook will report.
fn repo_path(repo: &Path) -> Result<PathBuf, Exit> {
    let path = std::fs::canonicalize(repo)
        .with_context(|| format!("{}: no such repository", repo.display()))
        .usage()?;
    crate::refs::LocalRepo::open(&path).usage()?;
    Ok(path)
}

fn repo_paths(repos: &[PathBuf]) -> Result<Vec<PathBuf>, Exit> {
    repos.iter().map(|r| repo_path(r)).collect()
}

fn io(e: std::io::Error) -> Exit {
    Exit(EXIT_FAILED, e.into())
}

fn cmd_run(global: &GlobalConfig, repos: &[PathBuf], wait: bool, detached: bool) -> Result<u8, Exit> {
    let options = worker::RunOptions {
        repos: repo_paths(repos)?,
        wait,
        drift_scan: !detached,
    };
    let summary = worker::run(global, &options)?;
    log::debug!("run finished: {summary:?}");
    Ok(if summary.failed_updates > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

fn load_repo_config(global: &GlobalConfig, repo: &Path) -> Result<config::RepoConfig, Exit> {
    config::load_repo(repo, global).usage()
}

fn cmd_sync(global: &GlobalConfig, repo: &Path, only: Option<&str>, out: &mut dyn Write) -> Result<u8, Exit> {
    let repo = repo_path(repo)?;
    let cfg = load_repo_config(global, &repo)?;
    let mirrors: Vec<&MirrorConfig> = match only {
        Some(name) => match cfg.mirrors.iter().find(|m| m.name == name) {
            Some(m) => vec![m],
            None => {
                return Err(Exit(
                    EXIT_USAGE,
                    anyhow::anyhow!("{}: no mirror named {name:?}", repo.display()),
                ));
            }
        },
        None => cfg.mirrors.iter().filter(|m| m.enabled).collect(),
    };
    if mirrors.is_empty() {
        writeln!(out, "{}: no enabled mirrors", repo.display()).map_err(io)?;
        return Ok(EXIT_OK);
    }
    let store = StateStore::new(&global.state_dir);
    store.register(&repo)?;
    let mut failed = false;
    for mirror in mirrors {
        let _push_lock =
            FileLock::acquire(&store.push_lock_path(&repo, &mirror.name)?).context("locking the mirror")?;
        let report = update_mirror(&store, global, &repo, mirror, true)?;
        print_report(&mirror.name, &redact_url(&mirror.url), &report, out).map_err(io)?;
        failed |= report.is_failure();
    }
    Ok(if failed { EXIT_FAILED } else { EXIT_OK })
}

/// The per-ref table of one update.
pub fn print_report(name: &str, url: &str, report: &UpdateReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "mirror {name} ({url})")?;
    for warning in &report.warnings {
        writeln!(out, "  warning: {warning}")?;
    }
    let width = report.refs.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in &report.refs {
        let detail = r.outcome.detail();
        let line = format!("  {:<width$}  {:<10}  {detail}", r.name, r.outcome.label());
        writeln!(out, "{}", line.trim_end())?;
    }
    match report.error_summary() {
        Some(error) if report.is_failure() => writeln!(out, "  result: failed: {error}"),
        _ => writeln!(out, "  result: ok"),
    }
}

/// Turns a URL with `user:password@` into a clean URL, a username and a
/// secret file (mode 600) the configuration points to.
fn split_url_secret(
    global: &GlobalConfig,
    repo: &Path,
    name: &str,
    url: &str,
    edit: &mut MirrorEdit,
    err: &mut dyn Write,
) -> Result<String, Exit> {
    let split = split_credentials(url);
    if split.username.is_some() && edit.username.is_none() {
        edit.username = split.username.clone();
    }
    if let Some(password) = &split.password {
        let store = StateStore::new(&global.state_dir);
        let dir = store.repo_dir(repo).join("secrets");
        std::fs::create_dir_all(&dir).context("creating the secrets directory")?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .context("securing the secrets directory")?;
        let file = dir.join(format!("{name}.password"));
        write_atomic(&file, password.as_bytes(), 0o600).context("storing the password")?;
        edit.password_file = Some(file.clone());
        let _ = writeln!(
            err,
            "the password in the URL was stored in {} (mode 600)",
            file.display()
        );
    }
    Ok(split.url)
}

fn check_url(global: &GlobalConfig, url: &str, has_password: bool, err: &mut dyn Write) -> Result<(), Exit> {
    let transport = check_transport(url, &global.allowed_protocols).usage()?;
    if transport == Transport::Http && has_password {
        let _ = writeln!(
            err,
            "warning: {}: the password will travel in clear text over http; use https",
            redact_url(url)
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn cmd_add(
    global: &GlobalConfig,
    repo: &Path,
    name: &str,
    url: &str,
    flags: &MirrorFlags,
    disabled: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    let repo = repo_path(repo)?;
    if !config::valid_mirror_name(name) {
        return Err(Exit(
            EXIT_USAGE,
            anyhow::anyhow!("invalid mirror name {name:?}: use letters, digits, '.', '_' and '-'"),
        ));
    }
    let mut edit = flags.to_edit().usage()?;
    check_transport(url, &global.allowed_protocols).usage()?;
    let clean_url = split_url_secret(global, &repo, name, url, &mut edit, err)?;
    let has_password = edit.password_file.is_some() || edit.password_env.is_some();
    check_url(global, &clean_url, has_password, err)?;
    edit.url = Some(clean_url.clone());
    if disabled {
        edit.enabled = Some(false);
    }
    config_edit::edit_repo_file(&repo, global, |text| config_edit::add_mirror(text, name, &edit)).usage()?;
    let store = StateStore::new(&global.state_dir);
    store.register(&repo)?;
    store.update_mirror(&repo, name, |state| state.request_full_sync(now_ms()))?;
    writeln!(
        out,
        "added mirror {name} -> {} to {}",
        redact_url(&clean_url),
        repo.display()
    )
    .map_err(io)?;
    Ok(EXIT_OK)
}

#[allow(clippy::too_many_arguments)]
fn cmd_set(
    global: &GlobalConfig,
    repo: &Path,
    name: &str,
    url: Option<String>,
    flags: &MirrorFlags,
    enabled: Option<bool>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    let repo = repo_path(repo)?;
    let mut edit = flags.to_edit().usage()?;
    if let Some(url) = url {
        check_transport(&url, &global.allowed_protocols).usage()?;
        let clean = split_url_secret(global, &repo, name, &url, &mut edit, err)?;
        check_url(global, &clean, edit.password_file.is_some(), err)?;
        edit.url = Some(clean);
    }
    edit.enabled = enabled;
    config_edit::edit_repo_file(&repo, global, |text| config_edit::set_mirror(text, name, &edit)).usage()?;
    // Settings may widen what is mirrored: reconcile everything at the next update.
    StateStore::new(&global.state_dir).update_mirror(&repo, name, |state| state.request_full_sync(now_ms()))?;
    writeln!(out, "updated mirror {name} of {}", repo.display()).map_err(io)?;
    Ok(EXIT_OK)
}

fn cmd_remove(global: &GlobalConfig, repo: &Path, name: &str, out: &mut dyn Write) -> Result<u8, Exit> {
    let repo = repo_path(repo)?;
    config_edit::edit_repo_file(&repo, global, |text| config_edit::remove_mirror(text, name)).usage()?;
    StateStore::new(&global.state_dir).remove_mirror(&repo, name)?;
    writeln!(out, "removed mirror {name} of {}", repo.display()).map_err(io)?;
    Ok(EXIT_OK)
}

fn known_or_given(global: &GlobalConfig, repos: &[PathBuf]) -> Result<Vec<PathBuf>, Exit> {
    if repos.is_empty() {
        Ok(StateStore::new(&global.state_dir).known_repos()?)
    } else {
        repo_paths(repos)
    }
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
        crate::plan::TagSelection::All => {}
        crate::plan::TagSelection::None => parts.push("no-tags".to_string()),
        crate::plan::TagSelection::Matching(p) => parts.push(format!("tags={}", p.join(","))),
    }
    if rules.keep_divergent_refs {
        parts.push("keep-divergent-refs".to_string());
    }
    parts.join(" ")
}

fn cmd_list(global: &GlobalConfig, repos: &[PathBuf], out: &mut dyn Write) -> Result<u8, Exit> {
    for repo in known_or_given(global, repos)? {
        let cfg = load_repo_config(global, &repo)?;
        for mirror in &cfg.mirrors {
            let enabled = if mirror.enabled { "enabled" } else { "disabled" };
            let line = format!(
                "{}\t{}\t{}\t{enabled}\t{}",
                repo.display(),
                mirror.name,
                redact_url(&mirror.url),
                describe_filters(mirror)
            );
            writeln!(out, "{}", line.trim_end()).map_err(io)?;
        }
    }
    Ok(EXIT_OK)
}

fn cmd_status(
    global: &GlobalConfig,
    repos: &[PathBuf],
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    let collected = status::collect(global, &known_or_given(global, repos)?)?;
    let statuses = &collected.statuses;
    if json {
        status::print_json(statuses, out)
    } else {
        status::print_human(statuses, out)
    }
    .map_err(io)?;
    for error in &collected.config_errors {
        writeln!(err, "git-push-mirror: {error}").map_err(io)?;
    }
    Ok(if !collected.config_errors.is_empty() {
        EXIT_USAGE
    } else if status::any_failed(statuses) {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

fn cmd_install(
    global: &GlobalConfig,
    config: Option<&Path>,
    repos: &[PathBuf],
    out: &mut dyn Write,
) -> Result<u8, Exit> {
    let exe = std::env::current_exe().context("finding this program's path")?;
    let config = config
        .map(std::path::absolute)
        .transpose()
        .context("resolving --config")?;
    let store = StateStore::new(&global.state_dir);
    for repo in repo_paths(repos)? {
        let installed = install::install(&repo, &exe, config.as_deref())?;
        store.register(&repo)?;
        let line = match installed {
            install::Installed::Fresh(hook) => format!("installed {}", hook.display()),
            install::Installed::Chained { hook, previous } => {
                format!(
                    "installed {}; the existing hook was kept as {} and still runs",
                    hook.display(),
                    previous.display()
                )
            }
            install::Installed::Refreshed(hook) => format!("refreshed {}", hook.display()),
        };
        writeln!(out, "{line}").map_err(io)?;
    }
    Ok(EXIT_OK)
}

fn cmd_uninstall(repos: &[PathBuf], out: &mut dyn Write) -> Result<u8, Exit> {
    for repo in repo_paths(repos)? {
        let line = if install::uninstall(&repo)? {
            format!("uninstalled the hook of {}", repo.display())
        } else {
            format!("{}: the git-push-mirror hook is not installed", repo.display())
        };
        writeln!(out, "{line}").map_err(io)?;
    }
    Ok(EXIT_OK)
}

fn cmd_check(global: &GlobalConfig, repos: &[PathBuf], out: &mut dyn Write) -> Result<u8, Exit> {
    match &global.source {
        Some(path) => writeln!(out, "global configuration {}: ok", path.display()),
        None => writeln!(out, "global configuration: embedded defaults"),
    }
    .map_err(io)?;
    let mut problems = 0;
    for repo in known_or_given(global, repos)? {
        let cfg = load_repo_config(global, &repo)?;
        writeln!(
            out,
            "{}: configuration ok, {} mirror(s)",
            repo.display(),
            cfg.mirrors.len()
        )
        .map_err(io)?;
        for mirror in &cfg.mirrors {
            let result = crate::auth::remote_access(mirror, global)
                .and_then(|access| git::ls_remote(&access, &["refs/heads/*".to_string()]).map_err(anyhow::Error::from));
            let line = match result {
                Ok(refs) => format!(
                    "  {} {}: reachable ({} branches)",
                    mirror.name,
                    redact_url(&mirror.url),
                    refs.direct.len()
                ),
                Err(e) => {
                    problems += 1;
                    format!("  {} {}: FAILED: {e:#}", mirror.name, redact_url(&mirror.url))
                }
            };
            writeln!(out, "{line}").map_err(io)?;
        }
    }
    Ok(if problems > 0 { EXIT_FAILED } else { EXIT_OK })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_durations_are_refused_before_editing() {
        let flags = MirrorFlags {
            delay: Some("soon".into()),
            ..Default::default()
        };
        assert!(flags.to_edit().unwrap_err().to_string().contains("invalid duration"));
    }
}
