//! The command line: flags are parsed once here, turned into checked settings, and each command
//! writes to the `out`/`err` it is given. Exit codes: 0 ok, 1 a mirror or check failed, 2 usage or
//! configuration error.

use crate::access::auth::check_transport;
use crate::access::remote_url::{Transport, display_url, split_credentials};
use crate::config::edit::{self as config_edit, MirrorEdit};
use crate::config::{self, GlobalConfig, MirrorConfig, TagSetting};
use crate::mirror::lfs::LfsMode;
use crate::mirror::state::StateStore;
use crate::mirror::update::{UpdateReport, update_mirror_showing};
use crate::ops::{install, status};
use crate::pipeline::{hook, worker};
use crate::util::fsutil::{FileLock, now_ms};
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
        /// The bare repository (e.g. /srv/git/app.git).
        repo: PathBuf,
        /// Only this mirror.
        #[arg(long, value_name = "NAME")]
        mirror: Option<String>,
    },
    /// Add a mirror to a repository.
    Add {
        /// The bare repository pushes go to (e.g. /srv/git/app.git).
        repo: PathBuf,
        /// A name for the mirror: letters, digits, '.', '_' and '-' (e.g. github, backup).
        name: String,
        /// Where to push: https://…, ssh://[user@]host/…, user@host:path, git://…, or a local path
        /// (stored absolute: a relative path is taken from the current directory, ~ from HOME).
        url: String,
        #[command(flatten)]
        settings: MirrorFlags,
        /// Add it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Change a mirror's settings (on a fleet mirror: give the repository its own copy of it).
    #[command(
        long_about = "Change a mirror's settings; the flags given are changed, the others kept.\n\n\
A fleet mirror (from the global configuration) is shared by many repositories: `set` on one of them first \
copies the fleet mirror into the repository's own push-mirror.toml, says so, and changes the copy, which \
then replaces the fleet mirror for that repository only (`remove` hands it back to the fleet mirror)."
    )]
    Set {
        /// The bare repository (e.g. /srv/git/app.git).
        repo: PathBuf,
        /// The mirror's name (`git-push-mirror list REPO` shows them).
        name: String,
        /// A new URL (a local path is stored absolute, as with `add`).
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        settings: MirrorFlags,
        #[command(flatten)]
        set_only: SetOnlyFlags,
        /// Enable or disable the mirror.
        #[arg(long, value_name = "BOOL")]
        enabled: Option<bool>,
    },
    /// Remove a mirror and its state.
    Remove {
        /// The bare repository (e.g. /srv/git/app.git).
        repo: PathBuf,
        /// The mirror's name (`git-push-mirror list REPO` shows them).
        name: String,
    },
    /// Forget a repository that was deleted or moved: its registration and mirror state.
    #[command(
        long_about = "Forget a repository: remove its registration and its mirrors' state (including \
secrets and keys git-push-mirror stored for it in the state directory), so `run`, `status`, `check` and \
`metrics` no longer cover it. A registered repository that no longer exists is also forgotten by the first \
command that finds it gone, which reports it once. A repository that still has mirrors is refused: remove \
them first."
    )]
    Forget {
        /// The repository's path, as it was registered (it may no longer exist).
        repo: PathBuf,
    },
    /// List configured mirrors, one line each (URLs redacted).
    List {
        /// Only these repositories (default: every registered one and every mirrored one under repos_root).
        repos: Vec<PathBuf>,
    },
    /// Show each mirror's status; exits 1 if any mirror is failed.
    Status {
        /// Only these repositories (default: every registered one and every mirrored one under repos_root).
        repos: Vec<PathBuf>,
        /// One JSON array of objects with stable field names.
        #[arg(long)]
        json: bool,
    },
    /// Install the post-receive hook (an existing hook is kept and still runs).
    #[command(
        long_about = "Install the post-receive hook the way the repository's host expects.\n\n\
Plain bare repositories: REPO/hooks/post-receive (an existing hook is kept as \
post-receive.before-push-mirror and still runs with the same input); --all ROOT does every bare \
repository under ROOT.\n\n\
--gitea: REPO/hooks/post-receive.d/git-push-mirror, which Gitea's (or Forgejo's) own post-receive \
runs; Gitea's files are not touched.\n\n\
--gitolite (run as the gitolite user): a common hook, LOCAL_CODE/hooks/common/post-receive, that \
gitolite links into every repository, new ones included; `gitolite setup` keeps it. With \
--repo-specific: LOCAL_CODE/hooks/repo-specific/git-push-mirror, for repositories whose \
gitolite.conf has `option hook.post-receive = git-push-mirror`. LOCAL_CODE (and \
'repo-specific-hooks') are switched on in ~/.gitolite.rc if they are off."
    )]
    Install {
        /// Bare repositories (none with --all; with --gitolite, optional: checked to be gitolite's).
        #[arg(required_unless_present_any = ["all", "gitolite"])]
        repos: Vec<PathBuf>,
        #[command(flatten)]
        host: HostFlags,
    },
    /// Remove the hook and restore the one it replaced.
    Uninstall {
        /// Bare repositories (none with --all; with --gitolite, optional: checked to be gitolite's).
        #[arg(required_unless_present_any = ["all", "gitolite"])]
        repos: Vec<PathBuf>,
        #[command(flatten)]
        host: HostFlags,
    },
    /// Write per-mirror and spool metrics in the Prometheus text format (node_exporter textfile
    /// collector); exits 1 if any mirror is failed, like `status`, and 2 if the file cannot be written.
    Metrics {
        /// Only these repositories (default: every registered one and every mirrored one under repos_root).
        repos: Vec<PathBuf>,
        /// Write to FILE atomically (temp file and rename), e.g.
        /// /var/lib/prometheus/node-exporter/git-push-mirror.prom; default: stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(hide = true)]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write it and a page per subcommand into a directory.
    #[command(hide = true)]
    Man {
        /// Write git-push-mirror.1 and git-push-mirror-SUBCOMMAND.1 for every subcommand into DIR.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Validate the configuration and reach each mirror (ls-remote); says which configuration,
    /// state and spool it used.
    Check {
        /// Only these repositories (default: every registered one and every mirrored one under repos_root).
        repos: Vec<PathBuf>,
    },
    /// Create an ed25519 key pair for an SSH mirror and print the public key
    /// (a deploy key to paste on the mirror's host).
    #[command(
        long_about = "Create an ed25519 key pair (mode 600, no passphrase) for an SSH mirror, set the \
mirror's ssh_key, and print the public key: add it on the mirror's host as a deploy key with write access, \
or to the account's authorized_keys. The key is created where ssh_key already points, else in the state \
directory. An existing key is never overwritten."
    )]
    Keygen {
        /// The bare repository (e.g. /srv/git/app.git).
        repo: PathBuf,
        /// The SSH mirror's name.
        name: String,
    },
    /// Show an SSH host's key fingerprints (SHA256); with --accept, record the keys for a mirror.
    #[command(
        long_about = "Ask the SSH host of URL for its host keys (ssh-keyscan) and print their SHA256 \
fingerprints. Compare them with the fingerprints the host's admin publishes; then run again with --accept \
to record the keys in the mirror's known_hosts file (created, and set in its configuration, if it has none) \
or in --file FILE. Nothing is recorded without --accept."
    )]
    KnownHosts {
        /// The mirror's SSH URL: ssh://[user@]host[:port]/path or [user@]host:path.
        url: String,
        /// Record the keys (without it, only show them).
        #[arg(long)]
        accept: bool,
        /// The repository of --mirror.
        #[arg(long, value_name = "REPO", requires = "mirror", conflicts_with = "file")]
        repo: Option<PathBuf>,
        /// The mirror whose known_hosts file gets the keys.
        #[arg(long, value_name = "NAME", requires = "repo")]
        mirror: Option<String>,
        /// A known_hosts file to record the keys in.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// How long to wait for the host.
        #[arg(long, value_name = "DURATION", default_value = "10s")]
        timeout: String,
    },
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

/// Where `install` and `uninstall` act: which host's conventions, and over which repositories.
#[derive(Args, Debug, Default)]
pub struct HostFlags {
    /// Every bare repository under ROOT (hidden directories are skipped).
    #[arg(long, value_name = "ROOT", conflicts_with_all = ["repos", "gitolite"])]
    all: Option<PathBuf>,
    /// Gitea/Forgejo: a script in REPO/hooks/post-receive.d/, run by Gitea's own hook.
    #[arg(long, conflicts_with = "gitolite")]
    gitea: bool,
    /// gitolite: a common hook under LOCAL_CODE that gitolite links into every repository
    /// (run as the gitolite user).
    #[arg(long)]
    gitolite: bool,
    /// With --gitolite: a repo-specific hook (`option hook.post-receive = git-push-mirror` in gitolite.conf).
    #[arg(long, requires = "gitolite")]
    repo_specific: bool,
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
    /// Don't mirror tags.
    #[arg(long)]
    no_tags: bool,
    /// Mirror only tags matching PATTERN; repeatable.
    #[arg(long = "tag", value_name = "PATTERN", conflicts_with = "no_tags")]
    tags: Vec<String>,
    /// User name for HTTPS (an SSH user goes in the URL: ssh://USER@host/… or USER@host:path).
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
    /// CA certificates (PEM) to trust for HTTPS to this mirror's host, e.g. a company CA
    /// ("" to use the system's again).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<std::ffi::OsString>,
    /// Wait this long after the first change before pushing, to gather others (e.g. "5s"); "" for
    /// the default: a change is pushed at once unless a push of this mirror is running or has
    /// just ended.
    #[arg(long, value_name = "DURATION")]
    delay: Option<String>,
    /// At most one update per this interval (e.g. "5m").
    #[arg(long, value_name = "DURATION")]
    min_interval: Option<String>,
    /// Wall-clock limit for each git process (e.g. "10m"), LFS uploads included.
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// How often `run` checks the mirror still has what it was given (default "1d"; "0s": never).
    #[arg(long, value_name = "DURATION")]
    verify_interval: Option<String>,
    /// Upload Git LFS objects before pushing: auto (when the repository has LFS objects), on, off.
    #[arg(long, value_name = "MODE", value_parser = ["auto", "on", "off"])]
    lfs: Option<String>,
    /// Whether a failed LFS upload fails the update, so its refs wait (default true).
    #[arg(long, value_name = "BOOL")]
    lfs_required: Option<Option<bool>>,
    /// The mirror's LFS endpoint, when not <url>/info/lfs ("" to derive it again).
    #[arg(long, value_name = "URL")]
    lfs_url: Option<String>,
    /// Largest pack one push may carry (e.g. "1900MiB" for GitHub's 2 GiB limit; "" for no limit):
    /// bigger updates are pushed in steps.
    #[arg(long, value_name = "SIZE")]
    max_push_size: Option<String>,
    /// Most refs one push may update (0 for no limit): bigger updates are pushed in batches.
    #[arg(long, value_name = "N")]
    max_refs_per_push: Option<usize>,
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
        } else {
            None
        };
        // "" removes the key: the setting goes back to its default.
        let durations = [&self.delay, &self.min_interval, &self.timeout, &self.verify_interval];
        for duration in durations.into_iter().flatten().filter(|d| !d.is_empty()) {
            humantime::parse_duration(duration)
                .with_context(|| format!("invalid duration {duration:?} (try \"2s\", \"5m\", \"1h\")"))?;
        }
        Ok(MirrorEdit {
            only_protected_branches: flag(self.only_protected_branches),
            keep_divergent_refs: flag(self.keep_divergent_refs),
            branches: (!self.branches.is_empty()).then(|| self.branches.clone()),
            tags,
            username: self.username.clone(),
            password_file: absolute(&self.password_file)?,
            password_env: self.password_env.clone(),
            ssh_key: absolute(&self.ssh_key)?,
            known_hosts: absolute(&self.known_hosts)?,
            // An empty path removes the setting.
            ca_file: match &self.ca_file {
                Some(path) if path.is_empty() => Some(PathBuf::new()),
                other => absolute(&other.as_ref().map(PathBuf::from))?,
            },
            delay: self.delay.clone(),
            min_interval: self.min_interval.clone(),
            timeout: self.timeout.clone(),
            verify_interval: self.verify_interval.clone(),
            lfs: self.lfs.as_deref().and_then(LfsMode::parse),
            lfs_required: flag(self.lfs_required),
            lfs_url: self.lfs_url.clone(),
            max_push_size: self.max_push_size.clone(),
            max_refs_per_push: self.max_refs_per_push,
            ..Default::default()
        })
    }
}

/// Flags of `set` that undo a setting, so they mean nothing to `add`.
#[derive(Args, Debug, Default)]
pub struct SetOnlyFlags {
    /// Mirror all branches again (clears --branch patterns).
    #[arg(long, conflicts_with = "branches")]
    all_branches: bool,
    /// Mirror all tags again (clears --tag patterns and --no-tags).
    #[arg(long, conflicts_with_all = ["no_tags", "tags"])]
    all_tags: bool,
}

impl SetOnlyFlags {
    fn apply(&self, edit: &mut MirrorEdit) {
        if self.all_branches {
            edit.branches = Some(Vec::new());
        }
        if self.all_tags {
            edit.tags = Some(TagSetting::All);
        }
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
        // A reader that went away (`status --json | head`) ends the output, quietly.
        Err(Exit(_, e)) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(Exit(code, e)) => {
            let _ = writeln!(err, "git-push-mirror: {e:#}");
            ExitCode::from(code)
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

fn init_logging(global: &GlobalConfig, verbose: u8, to_log_file: bool) {
    let level = match verbose {
        0 => global.log_level,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let logger = simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_utc_timestamps()
        .env();
    if to_log_file {
        // stderr goes to the log file, reopened after logrotate renames it.
        // A log file that cannot be opened is said on stderr (cron mails it); `check` reports it too.
        let _ = crate::ops::logfile::init(&global.log_file, logger);
    } else {
        let _ = logger.init();
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
    match &cli.command {
        Command::Completions { shell } => return cmd_completions(*shell, out),
        Command::Man { dir } => return cmd_man(dir.as_deref(), out),
        _ => {}
    }
    let global = config::load_global(cli.config.as_deref()).usage()?;
    let to_log_file = matches!(cli.command, Command::Run { detached: true, .. })
        || (matches!(cli.command, Command::Run { .. }) && !stderr_is_terminal());
    init_logging(&global, cli.verbose, to_log_file);
    match cli.command {
        Command::Hook { .. } | Command::Completions { .. } | Command::Man { .. } => unreachable!("handled above"),
        Command::Run { repos, wait, detached } => cmd_run(&global, cli.config.as_deref(), &repos, wait, detached),
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
            set_only,
            enabled,
        } => cmd_set(&global, &repo, &name, url, (&settings, &set_only), enabled, out, err),
        Command::Remove { repo, name } => cmd_remove(&global, &repo, &name, out, err),
        Command::Forget { repo } => cmd_forget(&global, &repo, out),
        Command::List { repos } => cmd_list(&global, &repos, out, err),
        Command::Status { repos, json } => cmd_status(&global, &repos, json, out, err),
        Command::Install { repos, host } => cmd_install_on_host(&global, cli.config.as_deref(), &repos, &host, out),
        Command::Uninstall { repos, host } => cmd_uninstall_on_host(&repos, &host, out),
        Command::Metrics { repos, output } => cmd_metrics(&global, &repos, output.as_deref(), out, err),
        Command::Check { repos } => cmd_check(&global, &repos, out, err),
        Command::Keygen { repo, name } => cmd_keygen(&global, &repo, &name, out, err),
        Command::KnownHosts {
            url,
            accept,
            repo,
            mirror,
            file,
            timeout,
        } => {
            let target = match (repo, mirror, file) {
                (Some(repo), Some(name), None) => Some(HostKeysTarget::Mirror { repo, name }),
                (None, None, Some(file)) => Some(HostKeysTarget::File(file)),
                _ => None,
            };
            cmd_known_hosts(&global, &url, accept, target, &timeout, out, err)
        }
    }
}

/// A repository argument, as the absolute path the hook will report.
fn repo_path(repo: &Path) -> Result<PathBuf, Exit> {
    let path = std::fs::canonicalize(repo)
        .with_context(|| format!("{}: no such repository", repo.display()))
        .usage()?;
    crate::commands::repo_arg::check(&path).usage()?;
    crate::mirror::refs::LocalRepo::open(&path).usage()?;
    Ok(path)
}

/// The refusal of a mirror name the repository does not have, with the closest one it has.
fn no_such_mirror(repo: &Path, name: &str, cfg: &config::RepoConfig) -> Exit {
    let names: Vec<&str> = cfg.mirrors.iter().map(|m| m.name.as_str()).collect();
    let add_it = format!("add it first: git-push-mirror add {} {name} URL", repo.display());
    let hint = match crate::util::suggest::closest(name, names.iter().copied()) {
        Some(close) => format!("; did you mean `{close}`?"),
        None if names.is_empty() => format!(" (it has no mirrors); {add_it}"),
        None => {
            let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            format!(" (its mirrors: {}); {add_it}", names.join(", "))
        }
    };
    Exit(
        EXIT_USAGE,
        anyhow::anyhow!("{}: there is no mirror named `{name}`{hint}", repo.display()),
    )
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

/// Refuses what `add`/`set` would store but no push could use: a password in a non-HTTP URL,
/// `--username` for an SSH URL, a password file that is missing or unreadable.
fn check_credentials_for(url: &str, edit: &MirrorEdit) -> Result<(), Exit> {
    let transport = crate::access::remote_url::transport_of(url);
    let usage = |message: String| Err(Exit(EXIT_USAGE, anyhow::anyhow!(message)));
    let http = matches!(transport, Transport::Https | Transport::Http);
    if !http && split_credentials(url).password.is_some() {
        return usage(format!(
            "the URL holds a password, but only https (and http) mirrors use one; an {transport} mirror \
             authenticates otherwise (SSH: a key, see `git-push-mirror keygen`): remove it from the URL"
        ));
    }
    if transport == Transport::Ssh && edit.username.as_deref().is_some_and(|u| !u.is_empty()) {
        return usage(
            "--username is the HTTPS user name; an SSH user goes in the URL: ssh://USER@host/path or \
             USER@host:path"
                .to_string(),
        );
    }
    if let Some(file) = edit.password_file.as_deref().filter(|f| !f.as_os_str().is_empty())
        && let Err(e) = std::fs::File::open(file)
    {
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
    Ok(())
}

fn cmd_forget(global: &GlobalConfig, repo: &Path, out: &mut dyn Write) -> Result<u8, Exit> {
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

fn repo_paths(repos: &[PathBuf]) -> Result<Vec<PathBuf>, Exit> {
    repos.iter().map(|r| repo_path(r)).collect()
}

fn io(e: std::io::Error) -> Exit {
    Exit(EXIT_FAILED, e.into())
}

fn cmd_run(
    global: &GlobalConfig,
    config_file: Option<&Path>,
    repos: &[PathBuf],
    wait: bool,
    detached: bool,
) -> Result<u8, Exit> {
    let options = worker::RunOptions {
        repos: repo_paths(repos)?,
        wait,
        scan_registered: !detached,
        config_file: config_file.map(Path::to_path_buf),
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
            None => return Err(no_such_mirror(&repo, name, &cfg)),
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
        let report = update_mirror_showing(&store, global, &repo, mirror, true, &|progress| {
            show_progress(&mirror.name, progress)
        })?;
        print_report(&mirror.name, &shown_url(mirror), &report, out).map_err(io)?;
        failed |= report.is_failure();
    }
    Ok(if failed { EXIT_FAILED } else { EXIT_OK })
}

/// A line per landed step of an update pushed in steps, for a person watching `sync`.
fn show_progress(mirror: &str, progress: &crate::mirror::state::PushProgress) {
    use std::io::IsTerminal;
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = writeln!(
            err,
            "mirror {mirror}: step {}/{} pushed ({} sent)",
            progress.done,
            progress.total,
            crate::util::size::ByteSize(progress.bytes_sent)
        );
    }
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
    if let Some(lfs) = &report.lfs {
        let scope = if lfs.full {
            "all mirrored refs"
        } else {
            "the new commits"
        };
        match lfs.error_summary() {
            None => writeln!(
                out,
                "  lfs: ok: {} object(s) referenced by {scope}, all on the mirror",
                lfs.objects
            )?,
            Some(error) => writeln!(out, "  lfs: failed: {error}")?,
        }
    }
    match report.error_summary() {
        Some(error) if report.is_failure() => writeln!(out, "  result: failed: {error}"),
        _ => writeln!(out, "  result: ok"),
    }
}

/// A password taken out of a `user:password@` URL: written to a temporary
/// file next to where it belongs, moved there only once the configuration
/// that points at it is saved, so a refused edit never replaces a stored secret.
struct PendingSecret {
    tmp: PathBuf,
    file: PathBuf,
}

impl PendingSecret {
    fn commit(self, err: &mut dyn Write) -> Result<(), Exit> {
        std::fs::rename(&self.tmp, &self.file)
            .with_context(|| format!("storing the password in {}", self.file.display()))?;
        if let Some(dir) = self.file.parent() {
            crate::util::fsutil::fsync_dir(dir).context("storing the password")?;
        }
        let _ = writeln!(
            err,
            "the password in the URL was stored in {} (mode 600)",
            self.file.display()
        );
        Ok(())
    }

    fn discard(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// The file `add` stores a URL's password in: `<state>/repos/<repo>/secrets/<mirror>.password`.
fn url_password_path(global: &GlobalConfig, repo: &Path, name: &str) -> PathBuf {
    StateStore::new(&global.state_dir)
        .repo_dir(repo)
        .join("secrets")
        .join(format!("{name}.password"))
}

/// Turns an HTTP(S) URL with `user:password@` into a clean URL and a username, and
/// stages its password in a mode-600 file the configuration will point to. Other URLs
/// keep their user (`ssh://git@host/…`: the SSH user is part of the address).
fn split_url_secret(
    global: &GlobalConfig,
    repo: &Path,
    name: &str,
    url: &str,
    edit: &mut MirrorEdit,
) -> Result<(String, Option<PendingSecret>), Exit> {
    if !matches!(
        crate::access::remote_url::transport_of(url),
        Transport::Https | Transport::Http
    ) {
        return Ok((url.to_string(), None));
    }
    let split = split_credentials(url);
    if split.username.is_some() && edit.username.is_none() {
        edit.username = split.username.clone();
    }
    let Some(password) = &split.password else {
        return Ok((split.url, None));
    };
    if edit.password_file.is_some() || edit.password_env.is_some() {
        return Err(Exit(
            EXIT_USAGE,
            anyhow::anyhow!(
                "the URL contains a password and --password-file/--password-env is given too: use only one"
            ),
        ));
    }
    let file = url_password_path(global, repo, name);
    let dir = file.parent().expect("the secrets file has a directory");
    crate::access::ssh::create_private_dir(dir).context("creating the secrets directory")?;
    let tmp = crate::util::fsutil::write_synced(
        dir,
        &crate::util::fsutil::unique_name(&format!(".{name}.password."), ".tmp"),
        password.as_bytes(),
        0o600,
    )
    .context("storing the password")?;
    edit.password_file = Some(file.clone());
    Ok((split.url, Some(PendingSecret { tmp, file })))
}

/// Runs a configuration edit and then stores or drops the staged secret.
fn edit_with_secret(
    repo: &Path,
    global: &GlobalConfig,
    secret: Option<PendingSecret>,
    err: &mut dyn Write,
    edit: impl FnOnce(&str) -> Result<String, config_edit::EditError>,
) -> Result<(), Exit> {
    match config_edit::edit_repo_file(repo, global, edit) {
        Ok(()) => secret.map_or(Ok(()), |s| s.commit(err)),
        Err(e) => {
            if let Some(secret) = secret {
                secret.discard();
            }
            Err(Exit(EXIT_USAGE, e.into()))
        }
    }
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

/// Warnings and next steps about a mirror just added or changed, from its saved configuration.
fn advise(global: &GlobalConfig, repo: &Path, name: &str, err: &mut dyn Write) {
    let Ok(cfg) = config::load_repo(repo, global) else {
        return;
    };
    if let Some(mirror) = cfg.mirror(name) {
        for note in crate::access::auth::setup_advice(mirror, global, repo) {
            let _ = writeln!(err, "{note}");
        }
        if let Some(note) = crate::config::mirror_path::missing_repository_note(&mirror.url) {
            let _ = writeln!(err, "{note}");
        }
    }
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
    let url = &stored_url(url)?;
    check_credentials_for(url, &edit)?;
    check_ssh_key_flag(&edit)?;
    check_ca_file_flag(&edit)?;
    let (clean_url, secret) = split_url_secret(global, &repo, name, url, &mut edit)?;
    edit.url = Some(clean_url.clone());
    if disabled {
        edit.enabled = Some(false);
    }
    edit_with_secret(&repo, global, secret, err, |text| {
        let new = config_edit::add_mirror(text, name, &edit)?;
        crate::commands::check::refuse_format_mismatch(&repo, global, name, &new)?;
        Ok(new)
    })?;
    let store = StateStore::new(&global.state_dir);
    store.register(&repo)?;
    store.update_mirror(&repo, name, |state| state.request_full_sync(now_ms()))?;
    let has_password = edit.password_file.is_some() || edit.password_env.is_some();
    writeln!(
        out,
        "added mirror {name} -> {} to {}",
        display_url(&clean_url, has_password),
        repo.display()
    )
    .map_err(io)?;
    advise(global, &repo, name, err);
    Ok(EXIT_OK)
}

#[allow(clippy::too_many_arguments)]
fn cmd_set(
    global: &GlobalConfig,
    repo: &Path,
    name: &str,
    url: Option<String>,
    (flags, set_only): (&MirrorFlags, &SetOnlyFlags),
    enabled: Option<bool>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    let repo = repo_path(repo)?;
    let mut edit = flags.to_edit().usage()?;
    set_only.apply(&mut edit);
    edit.enabled = enabled;
    if url.is_none() && edit == MirrorEdit::default() {
        return Err(Exit(
            EXIT_USAGE,
            anyhow::anyhow!("nothing to change: give the settings to change (`git-push-mirror set --help` lists them)"),
        ));
    }
    // A broken file is reported by the edit itself; only a loadable one can name the mirror.
    let cfg = config::load_repo(&repo, global).ok();
    let fleet_copy = match &cfg {
        Some(cfg) if cfg.mirror(name).is_none() => return Err(no_such_mirror(&repo, name, cfg)),
        Some(cfg) if cfg.fleet_mirrors.iter().any(|m| m == name) => {
            let repo_name = crate::config::fleet::repo_name(&repo, global).unwrap_or_default();
            Some(crate::config::fleet_override::copy_for_repo(global, name, &repo_name).usage()?)
        }
        _ => None,
    };
    let current_url = cfg.as_ref().and_then(|c| c.mirror(name)).map(|m| m.url.clone());
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
    edit_with_secret(&repo, global, secret, err, |text| {
        let text = match fleet_copy {
            Some(table) => config_edit::add_mirror_table(text, name, table)?,
            None => text.to_string(),
        };
        let new = config_edit::set_mirror(&text, name, &edit)?;
        if url_changed {
            crate::commands::check::refuse_format_mismatch(&repo, global, name, &new)?;
        }
        Ok(new)
    })?;
    // Settings may widen what is mirrored: reconcile everything at the next update.
    StateStore::new(&global.state_dir).update_mirror(&repo, name, |state| state.request_full_sync(now_ms()))?;
    if copied {
        let _ = writeln!(
            err,
            "{}",
            crate::config::fleet_override::copied_notice(global, &repo, name)
        );
    }
    writeln!(out, "updated mirror {name} of {}", repo.display()).map_err(io)?;
    advise(global, &repo, name, err);
    Ok(EXIT_OK)
}

fn cmd_remove(
    global: &GlobalConfig,
    repo: &Path,
    name: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    let repo = repo_path(repo)?;
    let cfg = config::load_repo(&repo, global).ok();
    match &cfg {
        Some(cfg) if cfg.mirror(name).is_none() => return Err(no_such_mirror(&repo, name, cfg)),
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
    let key = crate::access::ssh::default_key_path(&store, &repo, name);
    for file in [
        url_password_path(global, &repo, name),
        crate::access::ssh::public_key_path(&key),
        key,
        crate::access::ssh::default_known_hosts_path(&store, &repo, name),
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

/// A mirror's URL as every command shows it.
fn shown_url(mirror: &MirrorConfig) -> String {
    display_url(&mirror.url, mirror.password.is_some())
}

fn known_or_given(global: &GlobalConfig, repos: &[PathBuf], err: &mut dyn Write) -> Result<Vec<PathBuf>, Exit> {
    if repos.is_empty() {
        forget_gone_repos(global, err);
        // Registered repositories, and the mirrored ones under repos_root (the fleet).
        crate::config::fleet::all_repos(global, &StateStore::new(&global.state_dir)).usage()
    } else {
        repo_paths(repos)
    }
}

/// Registered repositories that were deleted are reported this once, then forgotten.
fn forget_gone_repos(global: &GlobalConfig, err: &mut dyn Write) {
    match crate::pipeline::registrations::forget_gone(&StateStore::new(&global.state_dir)) {
        Ok(gone) => {
            for repo in gone {
                let _ = writeln!(
                    err,
                    "git-push-mirror: {}",
                    crate::pipeline::registrations::gone_notice(&repo)
                );
            }
        }
        Err(e) => {
            let _ = writeln!(err, "git-push-mirror: warning: forgetting deleted repositories: {e:#}");
        }
    }
}

/// The repositories `status` and `metrics` report: those named, or all of them, with what kept
/// some from being found (reported; the others still are).
fn reported_repos(
    global: &GlobalConfig,
    repos: &[PathBuf],
    err: &mut dyn Write,
) -> Result<(Vec<PathBuf>, Vec<String>), Exit> {
    if repos.is_empty() {
        forget_gone_repos(global, err);
        Ok(status::all_repos(global))
    } else {
        Ok((repo_paths(repos)?, Vec::new()))
    }
}

/// Which global configuration, state and spool a command used: run as another user (or with
/// another HOME), it finds other ones.
fn where_used(global: &GlobalConfig) -> String {
    let config = match &global.source {
        Some(file) => file.display().to_string(),
        None => "none found, embedded defaults".to_string(),
    };
    format!(
        "global configuration: {config}; state: {}; spool: {}",
        global.state_dir.display(),
        global.spool_dir.display()
    )
}

/// What a command over "every repository" says when there is none: where it looked, and the next step.
fn empty_state_hint(global: &GlobalConfig) -> String {
    format!(
        "no mirrors configured ({})\nto start, add one: git-push-mirror add REPO NAME URL \
         (or, for many repositories, a fleet mirror in the global configuration)",
        where_used(global)
    )
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
        crate::mirror::plan::TagSelection::All => {}
        crate::mirror::plan::TagSelection::None => parts.push("no-tags".to_string()),
        crate::mirror::plan::TagSelection::Matching(p) => parts.push(format!("tags={}", p.join(","))),
    }
    if rules.keep_divergent_refs {
        parts.push("keep-divergent-refs".to_string());
    }
    parts.join(" ")
}

fn cmd_list(global: &GlobalConfig, repos: &[PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, Exit> {
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
                shown_url(mirror),
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

fn cmd_status(
    global: &GlobalConfig,
    repos: &[PathBuf],
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    let (repos, problems) = reported_repos(global, repos, err)?;
    let collected = status::collect(global, &repos);
    let statuses = &collected.statuses;
    if json {
        status::print_json(statuses, out)
    } else if statuses.is_empty() && collected.config_errors.is_empty() {
        writeln!(out, "{}", empty_state_hint(global))
    } else {
        status::print_human(statuses, out)
    }
    .map_err(io)?;
    if json && statuses.is_empty() && collected.config_errors.is_empty() {
        writeln!(err, "{}", empty_state_hint(global)).map_err(io)?;
    }
    for error in problems.iter().chain(&collected.config_errors) {
        writeln!(err, "git-push-mirror: {error}").map_err(io)?;
    }
    Ok(if !collected.config_errors.is_empty() || !problems.is_empty() {
        EXIT_USAGE
    } else if status::any_failed(statuses) {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

/// Installs the plain hook into one repository; the line to print.
fn install_plain(store: &StateStore, repo: &Path, exe: &Path, config: Option<&Path>) -> Result<String> {
    let installed = install::install(repo, exe, config)?;
    store.register(repo)?;
    Ok(match installed {
        install::Installed::Fresh(hook) => format!("installed {}", hook.display()),
        install::Installed::Chained { hook, previous } => {
            format!(
                "installed {}; the existing hook was kept as {} and still runs",
                hook.display(),
                previous.display()
            )
        }
        install::Installed::Refreshed(hook) => format!("refreshed {}", hook.display()),
    })
}

/// Installs the Gitea/Forgejo hook (`post-receive.d`) into one repository; the line to print.
fn install_gitea(store: &StateStore, repo: &Path, exe: &Path, config: Option<&Path>) -> Result<String> {
    let installed = crate::ops::hosts::install_gitea(repo, exe, config)?;
    store.register(repo)?;
    Ok(match installed {
        install::Installed::Refreshed(hook) => format!("refreshed {}", hook.display()),
        install::Installed::Fresh(hook) | install::Installed::Chained { hook, .. } => {
            format!("installed {}", hook.display())
        }
    })
}

/// Removes our hook (plain or Gitea's way) from one repository; the line to print.
fn uninstall_one(repo: &Path, gitea: bool) -> Result<String> {
    let removed = if gitea {
        crate::ops::hosts::uninstall_gitea(repo)?
    } else {
        install::uninstall(repo)?
    };
    Ok(if removed {
        format!("uninstalled the hook of {}", repo.display())
    } else {
        format!("{}: the git-push-mirror hook is not installed", repo.display())
    })
}

/// Runs `action` on each repository of `install`/`uninstall` and prints its line: the
/// repositories named (a bad argument is a usage error, a failure stops), or every bare
/// repository under `--all ROOT`, where one that git cannot open or that fails is reported as
/// skipped and the others are still done (exit 1 at the end).
fn for_each_host_repo(
    host: &HostFlags,
    repos: &[PathBuf],
    out: &mut dyn Write,
    mut action: impl FnMut(&Path) -> Result<String>,
) -> Result<u8, Exit> {
    let Some(root) = &host.all else {
        for repo in repo_paths(repos)? {
            let line = action(&repo).map_err(|e| Exit(EXIT_FAILED, e))?;
            writeln!(out, "{line}").map_err(io)?;
        }
        return Ok(EXIT_OK);
    };
    let mut skipped = 0;
    for repo in discover_for_install(root)? {
        match crate::mirror::refs::LocalRepo::open(&repo).and_then(|_| action(&repo)) {
            Ok(line) => writeln!(out, "{line}"),
            Err(e) => {
                skipped += 1;
                writeln!(out, "skipped {}: {e:#}", repo.display())
            }
        }
        .map_err(io)?;
    }
    if skipped > 0 {
        writeln!(
            out,
            "{skipped} repository(ies) under {} skipped (see above); the others were done",
            root.display()
        )
        .map_err(io)?;
    }
    Ok(if skipped > 0 { EXIT_FAILED } else { EXIT_OK })
}

fn cmd_check(global: &GlobalConfig, repos: &[PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, Exit> {
    match &global.source {
        Some(path) => writeln!(out, "global configuration {}: ok", path.display()),
        None => writeln!(out, "global configuration: none found, embedded defaults"),
    }
    .map_err(io)?;
    writeln!(out, "state: {}", global.state_dir.display()).map_err(io)?;
    writeln!(out, "spool: {}", global.spool_dir.display()).map_err(io)?;
    let mut problems = 0;
    let mut config_errors = 0;
    match crate::ops::logfile::writable_problem(&global.log_file) {
        None => writeln!(out, "log_file {}: writable", global.log_file.display()),
        Some(problem) => {
            problems += 1;
            writeln!(out, "log_file {}: FAILED: {problem}", global.log_file.display())
        }
    }
    .map_err(io)?;
    let repos = known_or_given(global, repos, err)?;
    if repos.is_empty() {
        writeln!(out, "{}", empty_state_hint(global)).map_err(io)?;
    }
    for repo in repos {
        // A repository that cannot be read, or whose configuration is broken, is reported; the
        // others are still checked.
        if let Err(e) = crate::mirror::refs::LocalRepo::open(&repo) {
            problems += 1;
            writeln!(out, "{}: FAILED: {e:#}", repo.display()).map_err(io)?;
            continue;
        }
        let cfg = match config::load_repo(&repo, global) {
            Ok(cfg) => cfg,
            Err(e) => {
                config_errors += 1;
                writeln!(out, "{}: FAILED: {e}", repo.display()).map_err(io)?;
                continue;
            }
        };
        writeln!(
            out,
            "{}: configuration ok, {} mirror(s)",
            repo.display(),
            cfg.mirrors.len()
        )
        .map_err(io)?;
        for mirror in &cfg.mirrors {
            let checked = crate::commands::check::check_mirror(&repo, mirror, global);
            problems += checked.problems;
            for line in checked.lines {
                writeln!(out, "{line}").map_err(io)?;
            }
        }
    }
    Ok(if config_errors > 0 {
        EXIT_USAGE
    } else if problems > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

fn cmd_keygen(
    global: &GlobalConfig,
    repo: &Path,
    name: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    let repo = repo_path(repo)?;
    let cfg = load_repo_config(global, &repo)?;
    let mirror = cfg.mirror(name).ok_or_else(|| no_such_mirror(&repo, name, &cfg))?;
    if crate::access::remote_url::transport_of(&mirror.url) != Transport::Ssh {
        return Err(Exit(
            EXIT_USAGE,
            anyhow::anyhow!(
                "mirror `{name}` does not use SSH ({}): keygen makes keys for ssh://… and user@host:path \
                 mirrors; nothing was created",
                shown_url(mirror)
            ),
        ));
    }
    let store = StateStore::new(&global.state_dir);
    let (key, configure) = match &mirror.ssh_key {
        Some(key) => (key.clone(), false),
        None if cfg.fleet_mirrors.iter().any(|m| m == name) => {
            return Err(fleet_mirror_setting(name, "ssh_key"));
        }
        None => (crate::access::ssh::default_key_path(&store, &repo, name), true),
    };
    if key.symlink_metadata().is_ok() {
        return Err(Exit(
            EXIT_USAGE,
            anyhow::anyhow!(
                "mirror {name} already has the SSH key {}; keygen never overwrites a key \
                 (to replace it, delete it and {} first)",
                key.display(),
                crate::access::ssh::public_key_path(&key).display()
            ),
        ));
    }
    let repo_name = repo
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let public = crate::access::ssh::generate_key(&key, &format!("git-push-mirror:{repo_name}:{name}"))?;
    if configure {
        let edit = MirrorEdit {
            ssh_key: Some(key.clone()),
            ..Default::default()
        };
        config_edit::edit_repo_file(&repo, global, |text| config_edit::set_mirror(text, name, &edit)).usage()?;
    }
    writeln!(out, "{public}").map_err(io)?;
    let _ = writeln!(
        err,
        "created the SSH key {} (mode 600, no passphrase) for mirror {name}{}.\n\
         Add the public key above on the mirror's host: as a deploy key with write access \
         (GitHub, GitLab, Gitea/Forgejo), or in the account's ~/.ssh/authorized_keys.",
        key.display(),
        if configure { " and set it as its ssh_key" } else { "" }
    );
    Ok(EXIT_OK)
}

/// A fleet mirror's settings live in the global file, which commands never rewrite.
fn fleet_mirror_setting(name: &str, key: &str) -> Exit {
    Exit(
        EXIT_USAGE,
        anyhow::anyhow!(
            "mirror {name} is a fleet mirror of the global configuration: set `{key}` in its [mirror.{name}] \
             table there (one file for all its repositories), then run this again"
        ),
    )
}

/// Where `known-hosts` compares and records host keys.
#[derive(Debug)]
enum HostKeysTarget {
    /// A mirror's `known_hosts` (created in the state directory if it has none).
    Mirror {
        repo: PathBuf,
        name: String,
    },
    File(PathBuf),
}

/// A [`HostKeysTarget`] resolved to a file.
struct HostKeysFile {
    path: PathBuf,
    /// `(repo, mirror)` whose configuration must be pointed at `path` once it is written.
    configure: Option<(PathBuf, String)>,
}

fn resolve_host_keys_target(
    global: &GlobalConfig,
    target: HostKeysTarget,
    host: &crate::access::ssh::known_hosts::SshHost,
) -> Result<HostKeysFile, Exit> {
    let (repo, name) = match target {
        HostKeysTarget::File(path) => {
            let path = std::path::absolute(&path).context("resolving --file").usage()?;
            return Ok(HostKeysFile { path, configure: None });
        }
        HostKeysTarget::Mirror { repo, name } => (repo_path(&repo)?, name),
    };
    let cfg = load_repo_config(global, &repo)?;
    let usage = |message: String| Exit(EXIT_USAGE, anyhow::anyhow!(message));
    let mirror = cfg.mirror(&name).ok_or_else(|| no_such_mirror(&repo, &name, &cfg))?;
    let mirror_host = crate::access::ssh::known_hosts::SshHost::from_url(&mirror.url)
        .map_err(|e| usage(format!("mirror {name} does not use SSH: {e}")))?;
    if &mirror_host != host {
        return Err(usage(format!(
            "mirror {name} pushes to {}, not to {}; give the mirror's URL ({})",
            mirror_host.known_hosts_name(),
            host.known_hosts_name(),
            split_credentials(&mirror.url).url
        )));
    }
    Ok(match &mirror.known_hosts {
        Some(path) => HostKeysFile {
            path: path.clone(),
            configure: None,
        },
        None if cfg.fleet_mirrors.contains(&name) => return Err(fleet_mirror_setting(&name, "known_hosts")),
        None => {
            let store = StateStore::new(&global.state_dir);
            HostKeysFile {
                path: crate::access::ssh::default_known_hosts_path(&store, &repo, &name),
                configure: Some((repo, name)),
            }
        }
    })
}

fn cmd_known_hosts(
    global: &GlobalConfig,
    url: &str,
    accept: bool,
    target: Option<HostKeysTarget>,
    timeout: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    use crate::access::ssh::known_hosts::{self, Recorded, SshHost};
    let host = SshHost::from_url(url).map_err(|e| Exit(EXIT_USAGE, anyhow::anyhow!(e)))?;
    let timeout = humantime::parse_duration(timeout)
        .with_context(|| format!("invalid --timeout {timeout:?} (try \"10s\")"))
        .usage()?;
    if accept && target.is_none() {
        return Err(Exit(
            EXIT_USAGE,
            anyhow::anyhow!("--accept needs where to record the keys: --repo REPO --mirror NAME, or --file FILE"),
        ));
    }
    let file = target.map(|t| resolve_host_keys_target(global, t, &host)).transpose()?;
    let keys = known_hosts::scan(&host, timeout)?;
    let recorded = match &file {
        Some(file) => known_hosts::recorded(&file.path, &host)?,
        None => Vec::new(),
    };
    let name = host.known_hosts_name();
    // --accept without a target was refused above.
    let has_target = file.is_some();
    let Some(file) = file.filter(|_| accept) else {
        // Only shown: each key's state is the file's state now.
        let labels = match has_target {
            true => [
                "recorded",
                "not recorded",
                "recorded, but no longer offered by the host",
            ],
            false => [""; 3],
        };
        print_host_keys(&name, &keys, &recorded, labels, out)?;
        let target = if has_target {
            ""
        } else {
            " --repo REPO --mirror NAME (or --file FILE)"
        };
        let _ = writeln!(
            err,
            "nothing recorded: compare these fingerprints with the ones the host's admin publishes, \
             then run again with --accept{target}"
        );
        return Ok(EXIT_OK);
    };
    if file.configure.is_some()
        && let Some(dir) = file.path.parent()
    {
        crate::access::ssh::create_private_dir(dir)?;
    }
    // Recorded first, so each key's line says what is true once the command is done.
    let outcome = known_hosts::record(&file.path, &host, &keys)?;
    let labels = [
        "already recorded",
        "recorded now",
        "removed: no longer offered by the host",
    ];
    print_host_keys(&name, &keys, &recorded, labels, out)?;
    match outcome {
        Recorded::Unchanged => writeln!(out, "all of them were already recorded in {}", file.path.display()),
        Recorded::Written { removed, added } => {
            let replaced = if removed > 0 {
                format!(", replacing {removed} old one(s)")
            } else {
                String::new()
            };
            writeln!(
                out,
                "recorded {added} key(s) of {name} in {}{replaced}",
                file.path.display()
            )
        }
    }
    .map_err(io)?;
    if let Some((repo, mirror)) = &file.configure {
        let edit = MirrorEdit {
            known_hosts: Some(file.path.clone()),
            ..Default::default()
        };
        config_edit::edit_repo_file(repo, global, |text| config_edit::set_mirror(text, mirror, &edit)).usage()?;
        writeln!(out, "set known_hosts of mirror {mirror} to {}", file.path.display()).map_err(io)?;
    }
    Ok(EXIT_OK)
}

/// The host's keys, one line each, labelled `[recorded, not recorded, recorded but no longer
/// offered]` (empty labels: fingerprints only).
fn print_host_keys(
    name: &str,
    keys: &[crate::access::ssh::known_hosts::HostKey],
    recorded: &[crate::access::ssh::known_hosts::HostKey],
    [known, new, old]: [&str; 3],
    out: &mut dyn Write,
) -> Result<(), Exit> {
    use crate::access::ssh::known_hosts::fingerprint;
    writeln!(out, "host keys of {name}:").map_err(io)?;
    for key in keys {
        let state = if recorded.contains(key) { known } else { new };
        let line = format!("  {}  {state}", fingerprint(key)?);
        writeln!(out, "{}", line.trim_end()).map_err(io)?;
    }
    for gone in recorded.iter().filter(|k| !keys.contains(k)) {
        writeln!(out, "  {}  {old}", fingerprint(gone)?).map_err(io)?;
    }
    Ok(())
}

/// `install` per host: `--gitea`, `--gitolite`, `--all ROOT`, or plain repositories.
fn cmd_install_on_host(
    global: &GlobalConfig,
    config: Option<&Path>,
    repos: &[PathBuf],
    host: &HostFlags,
    out: &mut dyn Write,
) -> Result<u8, Exit> {
    if host.gitolite {
        return cmd_install_gitolite(global, config, repos, host, out);
    }
    let exe = std::env::current_exe().context("finding this program's path")?;
    let config = config
        .map(std::path::absolute)
        .transpose()
        .context("resolving --config")?;
    let store = StateStore::new(&global.state_dir);
    for_each_host_repo(host, repos, out, |repo| {
        if host.gitea {
            install_gitea(&store, repo, &exe, config.as_deref())
        } else {
            install_plain(&store, repo, &exe, config.as_deref())
        }
    })
}

/// Every bare repository under ROOT, for `--all`.
fn discover_for_install(root: &Path) -> Result<Vec<PathBuf>, Exit> {
    let repos = crate::config::fleet::discover(root).usage()?;
    if repos.is_empty() {
        return Err(Exit(
            EXIT_USAGE,
            anyhow::anyhow!("{}: no bare repositories found", root.display()),
        ));
    }
    Ok(repos)
}

fn gitolite_route(host: &HostFlags) -> crate::ops::hosts::GitoliteRoute {
    if host.repo_specific {
        crate::ops::hosts::GitoliteRoute::RepoSpecific
    } else {
        crate::ops::hosts::GitoliteRoute::Common
    }
}

fn cmd_install_gitolite(
    global: &GlobalConfig,
    config: Option<&Path>,
    repos: &[PathBuf],
    host: &HostFlags,
    out: &mut dyn Write,
) -> Result<u8, Exit> {
    // The hook is gitolite-wide; repositories named are checked to be this gitolite's.
    let repos = repo_paths(repos)?;
    if !repos.is_empty() {
        let base = crate::ops::hosts::Gitolite::locate().usage()?.repo_base;
        let base = std::fs::canonicalize(&base).unwrap_or(base);
        if let Some(outside) = repos.iter().find(|r| !r.starts_with(&base)) {
            return Err(Exit(
                EXIT_USAGE,
                anyhow::anyhow!(
                    "{} is not a repository of this gitolite (its GL_REPO_BASE is {})",
                    outside.display(),
                    base.display()
                ),
            ));
        }
    }
    let exe = std::env::current_exe().context("finding this program's path")?;
    let config = config
        .map(std::path::absolute)
        .transpose()
        .context("resolving --config")?;
    let route = gitolite_route(host);
    let installed = crate::ops::hosts::install_gitolite(&exe, config.as_deref(), route)?;
    for change in &installed.rc_changes {
        writeln!(out, "enabled in ~/.gitolite.rc: {change}").map_err(io)?;
    }
    writeln!(out, "installed {}", installed.hook.display()).map_err(io)?;
    if let Some(previous) = &installed.chained {
        writeln!(
            out,
            "the existing common post-receive was kept as {} and still runs after it",
            previous.display()
        )
        .map_err(io)?;
    }
    match route {
        crate::ops::hosts::GitoliteRoute::Common => writeln!(
            out,
            "gitolite linked it into every repository (`gitolite setup` and new repositories keep it)"
        ),
        crate::ops::hosts::GitoliteRoute::RepoSpecific => writeln!(
            out,
            "now give the repositories to mirror this option in gitolite.conf and push gitolite-admin:\n    \
             repo acme/..*\n        option hook.post-receive = {}",
            crate::ops::hosts::HOOK_NAME
        ),
    }
    .map_err(io)?;
    let store = StateStore::new(&global.state_dir);
    for repo in &repos {
        store.register(repo)?;
        writeln!(out, "{}: covered", repo.display()).map_err(io)?;
    }
    if global.repos_root.is_none() && !global.fleet_mirrors.is_empty() {
        writeln!(
            out,
            "note: set repos_root in the global configuration to gitolite's GL_REPO_BASE"
        )
        .map_err(io)?;
    }
    Ok(EXIT_OK)
}

fn cmd_uninstall_on_host(repos: &[PathBuf], host: &HostFlags, out: &mut dyn Write) -> Result<u8, Exit> {
    if host.gitolite && !repos.is_empty() {
        return Err(Exit(
            EXIT_USAGE,
            anyhow::anyhow!(
                "uninstall --gitolite removes the hook from every repository and takes no REPO; to stop \
                 mirroring one repository, remove its mirrors or exclude it from the fleet mirror's `repos`"
            ),
        ));
    }
    if host.gitolite {
        let line = match crate::ops::hosts::uninstall_gitolite(gitolite_route(host))? {
            Some(hook) => format!("uninstalled {}", hook.display()),
            None => "the git-push-mirror gitolite hook is not installed".to_string(),
        };
        writeln!(out, "{line}").map_err(io)?;
        return Ok(EXIT_OK);
    }
    for_each_host_repo(host, repos, out, |repo| uninstall_one(repo, host.gitea))
}

/// `metrics`: the Prometheus text format, to stdout or atomically to a file.
/// Exit status as `status`: 1 if a mirror is failed, 2 if a configuration is broken.
fn cmd_metrics(
    global: &GlobalConfig,
    repos: &[PathBuf],
    output: Option<&Path>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    let (repos, problems) = reported_repos(global, repos, err)?;
    let collected = status::collect(global, &repos);
    let now = now_ms();
    let extras = crate::ops::metrics::extras(&collected.statuses, now);
    let text = crate::ops::metrics::render(&crate::ops::metrics::Snapshot {
        statuses: &collected.statuses,
        extras: &extras,
        spool: crate::ops::metrics::spool_stats(&global.spool_dir, std::time::SystemTime::now()),
        repositories: crate::pipeline::registrations::count_mirrored(global, &repos),
        config_errors: collected.config_errors.len(),
        silent_mode: global.silent_mode,
        state_files_quarantined: StateStore::new(&global.state_dir).bad_files(),
        discovery_errors: problems.len(),
        written_at_seconds: now as f64 / 1000.0,
    });
    match output {
        // Exit 2, not 1 ("a mirror failed"): a file that is not written leaves the collector
        // serving stale numbers, which must not pass for a mirror problem monitoring tolerates.
        Some(file) => crate::ops::metrics::write_file(file, &text)
            .with_context(|| {
                format!(
                    "writing {} (the user metrics runs as must be able to create files in its directory)",
                    file.display()
                )
            })
            .usage()?,
        None => out.write_all(text.as_bytes()).map_err(io)?,
    }
    for error in problems.iter().chain(&collected.config_errors) {
        writeln!(err, "git-push-mirror: {error}").map_err(io)?;
    }
    Ok(if !collected.config_errors.is_empty() || !problems.is_empty() {
        EXIT_USAGE
    } else if status::any_failed(&collected.statuses) {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

/// Writes generated text; a reader that went away (`| head`) is a normal end, not an error.
fn write_generated(text: &[u8], out: &mut dyn Write) -> Result<u8, Exit> {
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(io(e)),
        _ => Ok(EXIT_OK),
    }
}

fn cmd_completions(shell: clap_complete::Shell, out: &mut dyn Write) -> Result<u8, Exit> {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut command, "git-push-mirror", &mut text);
    write_generated(&text, out)
}

/// The man page on stdout, or with `dir` that page and one per subcommand (`git-push-mirror-add.1`,
/// …), which the main page's SUBCOMMANDS section refers to.
fn cmd_man(dir: Option<&Path>, out: &mut dyn Write) -> Result<u8, Exit> {
    let command = <Cli as clap::CommandFactory>::command();
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(command, dir))
            .with_context(|| format!("writing the man pages into {}", dir.display()))?;
        writeln!(out, "wrote the man pages into {}", dir.display()).map_err(io)?;
        return Ok(EXIT_OK);
    }
    let mut text = Vec::new();
    clap_mangen::Man::new(command).render(&mut text).map_err(io)?;
    write_generated(&text, out)
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
