//! The command line: `main`, which parses the arguments once (their definition is in `cli/args.rs`),
//! sets up logging and hands each command to its module in `commands`; and how a command's result
//! becomes the process's exit status.

pub mod args;

pub use args::{Cli, Command, HookCommand, HostFlags, MirrorFlags, SetOnlyFlags};

use crate::commands::keys::HostKeysTarget;
use crate::commands::{self, Exit, ExitContext};
use crate::config::{self, GlobalConfig};
use crate::pipeline::hook;
use clap::{CommandFactory, Parser};
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

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

/// Whether `command` writes into the spool or state directories, and the repository it writes
/// about when it must be run as the user pushes to that repository run as (`install` and
/// `forget` may be run by an admin: they only register or forget).
fn state_writer(command: &Command) -> Option<(Option<&Path>, &'static str)> {
    match command {
        Command::Sync {
            repo, dry_run: false, ..
        } => Some((Some(repo), "sync")),
        Command::Add { repo, .. } => Some((Some(repo), "add")),
        Command::Set { repo, .. } => Some((Some(repo), "set")),
        Command::Remove { repo, .. } => Some((Some(repo), "remove")),
        Command::Keygen { repo, .. } => Some((Some(repo), "keygen")),
        Command::KnownHosts {
            accept: true,
            repo: Some(repo),
            ..
        } => Some((Some(repo), "known-hosts")),
        Command::Forget { .. } => Some((None, "forget")),
        Command::Install { .. } => Some((None, "install")),
        _ => None,
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
        Command::Completions { shell } => return commands::docs::cmd_completions(*shell, Cli::command(), out),
        Command::Man { dir, section } => {
            return commands::docs::cmd_man(dir.as_deref(), *section, Cli::command(), out);
        }
        _ => {}
    }
    let global = config::load_global(cli.config.as_deref()).usage()?;
    crate::util::fsutil::share_with_group(global.shared_group.is_some());
    if let Some((repo, name)) = state_writer(&cli.command) {
        // Whom to run as first: as another user, the directories are someone else's anyway.
        if let Some(repo) = repo {
            commands::refuse_other_user(&commands::repo_path(repo)?, name)?;
        }
        commands::refuse_untrusted_dirs(&global)?;
    }
    let to_log_file = matches!(cli.command, Command::Run { detached: true, .. })
        || (matches!(cli.command, Command::Run { .. }) && !stderr_is_terminal());
    init_logging(&global, cli.verbose, to_log_file);
    match cli.command {
        Command::Hook { .. } | Command::Completions { .. } | Command::Man { .. } => unreachable!("handled above"),
        Command::Run { repos, wait, detached } => {
            commands::run::cmd_run(&global, cli.config.as_deref(), &repos, wait, detached)
        }
        Command::Sync {
            repo,
            mirror,
            dry_run: true,
            json,
        } => commands::preview::cmd_dry_run(&global, &repo, mirror.as_deref(), json, out),
        Command::Sync { repo, mirror, .. } => commands::sync::cmd_sync(&global, &repo, mirror.as_deref(), out),
        Command::Add {
            repo,
            name,
            url,
            settings,
            disabled,
        } => commands::mirrors::cmd_add(&global, &repo, &name, &url, &settings, disabled, out, err),
        Command::Set {
            repo,
            name,
            url,
            settings,
            set_only,
            enabled,
        } => commands::mirrors::cmd_set(&global, &repo, &name, url, (&settings, &set_only), enabled, out, err),
        Command::Remove { repo, name } => commands::mirrors::cmd_remove(&global, &repo, &name, out, err),
        Command::Protect { repo, patterns } => commands::protected::cmd_protect(
            &global,
            &repo,
            &patterns,
            commands::protected::Protection::Protect,
            out,
            err,
        ),
        Command::Unprotect { repo, patterns } => commands::protected::cmd_protect(
            &global,
            &repo,
            &patterns,
            commands::protected::Protection::Unprotect,
            out,
            err,
        ),
        Command::Forget { repo } => commands::mirrors::cmd_forget(&global, &repo, out),
        Command::List { repos } => commands::mirrors::cmd_list(&global, &repos, out, err),
        Command::Status {
            repos,
            json,
            refs: true,
        } => commands::preview::cmd_status_refs(&global, &repos, json, out, err),
        Command::Status { repos, json, .. } => commands::status::cmd_status(&global, &repos, json, out, err),
        Command::Install { repos, host, rebind } => {
            commands::install::cmd_install_on_host(&global, cli.config.as_deref(), &repos, (&host, rebind), out)
        }
        Command::Uninstall { repos, host } => commands::install::cmd_uninstall_on_host(&repos, &host, out),
        Command::Metrics { repos, output } => {
            commands::metrics::cmd_metrics(&global, &repos, output.as_deref(), out, err)
        }
        Command::Check { repos } => commands::check::cmd_check(&global, &repos, out, err),
        Command::NotifyTest => commands::notify_test::cmd_notify_test(&global, out, err),
        Command::Keygen { repo, name } => commands::keys::cmd_keygen(&global, &repo, &name, out, err),
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
            commands::keys::cmd_known_hosts(&global, &url, accept, target, &timeout, out, err)
        }
    }
}
