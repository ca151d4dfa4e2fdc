//! The command line: `main`, which parses the arguments once (the top-level [`Cli`] and its
//! subcommands, each command's flags defined next to the command in `commands`), sets up logging
//! and hands each command to its module in `commands`; and how a command's result becomes the
//! process's exit status.

use crate::commands::docs::{CompletionsArgs, ManArgs};
use crate::commands::hook::{HookArgs, HookCommand, PostReceiveArgs};
use crate::commands::install::{InstallArgs, UninstallArgs};
use crate::commands::keys::{KeygenArgs, KnownHostsArgs};
use crate::commands::metrics::MetricsArgs;
use crate::commands::mirrors::{AddArgs, ForgetArgs, ListArgs, RemoveArgs, SetArgs};
use crate::commands::protected::{ProtectArgs, UnprotectArgs};
use crate::commands::run::RunArgs;
use crate::commands::status::StatusArgs;
use crate::commands::sync::SyncArgs;
use crate::commands::{self, Exit, ExitContext};
use crate::config::{self, GlobalConfig};
use clap::{CommandFactory, Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// $XDG_CONFIG_HOME/git-push-mirror/config.toml, then /etc/git-push-mirror/config.toml or the
    /// file $GIT_PUSH_MIRROR_SYSTEM_CONFIG names; see `man 5 git-push-mirror.toml`).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log more (debug); twice for trace.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands, in the order `--help` lists them; each one's flags and help are its `Args`.
#[derive(Subcommand, Debug)]
pub enum Command {
    Hook(HookArgs),
    Run(RunArgs),
    Sync(SyncArgs),
    Add(AddArgs),
    Set(SetArgs),
    Remove(RemoveArgs),
    Protect(ProtectArgs),
    Unprotect(UnprotectArgs),
    Forget(ForgetArgs),
    List(ListArgs),
    Status(StatusArgs),
    Install(InstallArgs),
    Uninstall(UninstallArgs),
    Metrics(MetricsArgs),
    NotifyTest(commands::notify_test::NotifyTestArgs),
    Completions(CompletionsArgs),
    Man(ManArgs),
    Check(commands::check::CheckArgs),
    Keygen(KeygenArgs),
    KnownHosts(KnownHostsArgs),
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
        let code = commands::hook::cmd_post_receive(None, &PostReceiveArgs::default(), &mut std::io::stderr());
        return ExitCode::from(code);
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
        Command::Sync(SyncArgs {
            repo, dry_run: false, ..
        }) => Some((Some(repo), "sync")),
        Command::Add(AddArgs { repo, .. }) => Some((Some(repo), "add")),
        Command::Set(SetArgs { repo, .. }) => Some((Some(repo), "set")),
        Command::Remove(RemoveArgs { repo, .. }) => Some((Some(repo), "remove")),
        Command::Keygen(KeygenArgs { repo, .. }) => Some((Some(repo), "keygen")),
        Command::KnownHosts(KnownHostsArgs {
            accept: true,
            repo: Some(repo),
            ..
        }) => Some((Some(repo), "known-hosts")),
        Command::Forget(_) => Some((None, "forget")),
        Command::Install(_) => Some((None, "install")),
        _ => None,
    }
}

fn stderr_is_terminal() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(2) == 1 }
}

/// Runs one parsed command line.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, Exit> {
    let config_file = cli.config.as_deref();
    // What needs no configuration runs before it is read: the hook reads its own (and never
    // fails a push), the generated documentation none.
    match &cli.command {
        Command::Hook(HookArgs {
            hook: HookCommand::PostReceive(args),
        }) => return Ok(commands::hook::cmd_post_receive(config_file, args, err)),
        Command::Completions(args) => return commands::docs::cmd_completions(args, Cli::command(), out),
        Command::Man(args) => return commands::docs::cmd_man(args, Cli::command(), out),
        _ => {}
    }
    let global = config::load_global(config_file).usage()?;
    crate::util::fsutil::share_with_group(global.shared_group.is_some());
    if let Some((repo, name)) = state_writer(&cli.command) {
        // Whom to run as first: as another user, the directories are someone else's anyway.
        if let Some(repo) = repo {
            commands::refuse_other_user(&commands::repo_path(repo)?, name)?;
        }
        commands::refuse_untrusted_dirs(&global)?;
    }
    let to_log_file = matches!(&cli.command, Command::Run(args) if args.detached)
        || (matches!(cli.command, Command::Run(_)) && !stderr_is_terminal());
    init_logging(&global, cli.verbose, to_log_file);
    let global = &global;
    match &cli.command {
        Command::Hook(_) | Command::Completions(_) | Command::Man(_) => unreachable!("handled above"),
        Command::Run(args) => commands::run::cmd_run(global, config_file, args),
        Command::Sync(args) => commands::sync::cmd_sync(global, args, out),
        Command::Add(args) => commands::mirrors::cmd_add(global, args, out, err),
        Command::Set(args) => commands::mirrors::cmd_set(global, args, out, err),
        Command::Remove(args) => commands::mirrors::cmd_remove(global, args, out, err),
        Command::Protect(args) => commands::protected::cmd_protect(global, args, out, err),
        Command::Unprotect(args) => commands::protected::cmd_unprotect(global, args, out, err),
        Command::Forget(args) => commands::mirrors::cmd_forget(global, args, out),
        Command::List(args) => commands::mirrors::cmd_list(global, args, out, err),
        Command::Status(args) => commands::status::cmd_status(global, args, out, err),
        Command::Install(args) => commands::install::cmd_install(global, config_file, args, out),
        Command::Uninstall(args) => commands::install::cmd_uninstall(args, out),
        Command::Metrics(args) => commands::metrics::cmd_metrics(global, args, out, err),
        Command::Check(args) => commands::check::cmd_check(global, args, out, err),
        Command::NotifyTest(_) => commands::notify_test::cmd_notify_test(global, out, err),
        Command::Keygen(args) => commands::keys::cmd_keygen(global, args, out, err),
        Command::KnownHosts(args) => commands::keys::cmd_known_hosts(global, args, out, err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
