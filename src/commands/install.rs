//! `install` and `uninstall`: the hook in plain repositories, every repository under a root, Gitea/Forgejo or gitolite.

use crate::commands::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, Exit, ExitContext, io, repo_paths};
use crate::config::GlobalConfig;
use crate::mirror::state::StateStore;
use crate::ops::hook_binary;
use crate::ops::install::{self, BinaryChoice};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Install the post-receive hook (an existing hook is kept and still runs).
#[derive(clap::Args, Debug)]
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
'repo-specific-hooks') are switched on in ~/.gitolite.rc if they are off.\n\n\
The hook runs this binary by its absolute path: /usr/bin/git-push-mirror (the package's) when that \
is this same program, else this one. A hook already installed keeps the binary it runs unless \
--rebind is given, so installing again with another copy (say /usr/local/bin's, first on PATH) \
never moves hooks to it silently; `install` says when several binaries are installed."
)]
pub struct InstallArgs {
    /// Bare repositories (none with --all; with --gitolite, optional: checked to be gitolite's).
    #[arg(required_unless_present_any = ["all", "gitolite"])]
    pub repos: Vec<PathBuf>,
    #[command(flatten)]
    pub host: HostFlags,
    /// Make hooks already installed run this binary (by default each keeps the binary it runs).
    #[arg(long)]
    pub rebind: bool,
}

/// Remove the hook and restore the one it replaced.
#[derive(clap::Args, Debug)]
pub struct UninstallArgs {
    /// Bare repositories (none with --all; with --gitolite, optional: checked to be gitolite's).
    #[arg(required_unless_present_any = ["all", "gitolite"])]
    pub repos: Vec<PathBuf>,
    #[command(flatten)]
    pub host: HostFlags,
}

/// Where `install` and `uninstall` act: which host's conventions, and over which repositories.
#[derive(clap::Args, Debug, Default)]
pub struct HostFlags {
    /// Every bare repository under ROOT (hidden directories are skipped).
    #[arg(long, value_name = "ROOT", conflicts_with_all = ["repos", "gitolite"])]
    pub all: Option<PathBuf>,
    /// Gitea/Forgejo: a script in REPO/hooks/post-receive.d/, run by Gitea's own hook.
    #[arg(long, conflicts_with = "gitolite")]
    pub gitea: bool,
    /// gitolite: a common hook under LOCAL_CODE that gitolite links into every repository
    /// (run as the gitolite user).
    #[arg(long)]
    pub gitolite: bool,
    /// With --gitolite: a repo-specific hook (`option hook.post-receive = git-push-mirror` in gitolite.conf).
    #[arg(long, requires = "gitolite")]
    pub repo_specific: bool,
}

/// The binary hooks are to run: the package's when it is this program, else this program (see
/// [`hook_binary::stable_binary`]).
fn chosen_binary() -> Result<PathBuf> {
    let running = hook_binary::running_binary().context("finding this program's path")?;
    Ok(hook_binary::stable_binary(
        &running,
        Path::new(hook_binary::PACKAGE_BINARY),
    ))
}

/// The line `install` prints for one hook, and whether it is a problem (a hook kept on a binary
/// that is gone).
fn installed_line(installed: install::Installed, chosen: &Path) -> (String, bool) {
    match installed {
        install::Installed::Fresh(hook) => (format!("installed {}", hook.display()), false),
        install::Installed::Chained { hook, previous } => (
            format!(
                "installed {}; the existing hook was kept as {} and still runs",
                hook.display(),
                previous.display()
            ),
            false,
        ),
        install::Installed::Refreshed(hook) => (format!("refreshed {}", hook.display()), false),
        install::Installed::Kept { hook, binary } if binary.is_file() => (
            format!(
                "refreshed {}, which keeps running {} (not this {}; --rebind switches it)",
                hook.display(),
                binary.display(),
                chosen.display()
            ),
            false,
        ),
        install::Installed::Kept { hook, binary } => (
            format!(
                "FAILED: {} runs {}, which does not exist, so pushes are not recorded; --rebind points it at {}",
                hook.display(),
                binary.display(),
                chosen.display()
            ),
            true,
        ),
        install::Installed::Rebound { hook, previous } => (
            format!(
                "rebound {}: it runs {} instead of {}",
                hook.display(),
                chosen.display(),
                previous.display()
            ),
            false,
        ),
    }
}

/// Installs the plain hook into one repository; the line to print and whether it is a problem.
fn install_plain(
    store: &StateStore,
    repo: &Path,
    choice: BinaryChoice<'_>,
    config: Option<&Path>,
) -> Result<(String, bool)> {
    let installed = install::install(repo, choice, config)?;
    store.register(repo)?;
    Ok(installed_line(installed, choice.binary))
}

/// Installs the Gitea/Forgejo hook (`post-receive.d`) into one repository; the line to print.
fn install_gitea(
    store: &StateStore,
    repo: &Path,
    choice: BinaryChoice<'_>,
    config: Option<&Path>,
) -> Result<(String, bool)> {
    let installed = crate::ops::hosts::install_gitea(repo, choice, config)?;
    store.register(repo)?;
    Ok(installed_line(installed, choice.binary))
}

/// When more than one `git-push-mirror` is installed (the package's and cargo's), says which one
/// hooks run, since the next `install` from the other one keeps them (without `--rebind`).
fn note_other_binaries(chosen: &Path, out: &mut dyn Write) -> Result<(), Exit> {
    let installed = hook_binary::installed_binaries(std::env::var_os("PATH").as_deref());
    if installed.len() < 2 {
        return Ok(());
    }
    let list: Vec<String> = installed.iter().map(|p| p.display().to_string()).collect();
    writeln!(
        out,
        "note: {} git-push-mirror binaries are installed ({}); new hooks run {}, existing ones keep theirs (install --rebind moves them to this one); removing a binary breaks the hooks that run it (git-push-mirror check finds them)",
        installed.len(),
        list.join(", "),
        chosen.display()
    )
    .map_err(io)
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
    mut action: impl FnMut(&Path) -> Result<(String, bool)>,
) -> Result<u8, Exit> {
    let mut problems = 0;
    let Some(root) = &host.all else {
        for repo in repo_paths(repos)? {
            let (line, problem) = action(&repo).map_err(|e| Exit(EXIT_FAILED, e))?;
            problems += usize::from(problem);
            writeln!(out, "{line}").map_err(io)?;
        }
        return Ok(if problems > 0 { EXIT_FAILED } else { EXIT_OK });
    };
    let mut skipped = 0;
    for repo in discover_for_install(root)? {
        match crate::mirror::refs::LocalRepo::open(&repo).and_then(|_| action(&repo)) {
            Ok((line, problem)) => {
                problems += usize::from(problem);
                writeln!(out, "{line}")
            }
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
    Ok(if skipped > 0 || problems > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

/// `install` per host: `--gitea`, `--gitolite`, `--all ROOT`, or plain repositories.
pub fn cmd_install(
    global: &GlobalConfig,
    config: Option<&Path>,
    args: &InstallArgs,
    out: &mut dyn Write,
) -> Result<u8, Exit> {
    if args.host.gitolite {
        return install_gitolite(global, config, args, out);
    }
    let InstallArgs { repos, host, rebind } = args;
    let rebind = *rebind;
    let binary = chosen_binary()?;
    let choice = BinaryChoice {
        binary: &binary,
        rebind,
    };
    let config = config
        .map(std::path::absolute)
        .transpose()
        .context("resolving --config")?;
    let store = StateStore::new(&global.state_dir);
    let code = for_each_host_repo(host, repos, out, |repo| {
        if host.gitea {
            install_gitea(&store, repo, choice, config.as_deref())
        } else {
            install_plain(&store, repo, choice, config.as_deref())
        }
    })?;
    note_other_binaries(&binary, out)?;
    Ok(code)
}

/// Every bare repository under ROOT, for `--all`.
fn discover_for_install(root: &Path) -> Result<Vec<PathBuf>, Exit> {
    let repos = crate::pipeline::fleet::discover(root).usage()?;
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

/// `install --gitolite`: one hook for the whole gitolite.
fn install_gitolite(
    global: &GlobalConfig,
    config: Option<&Path>,
    args: &InstallArgs,
    out: &mut dyn Write,
) -> Result<u8, Exit> {
    let InstallArgs { repos, host, rebind } = args;
    let rebind = *rebind;
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
    let binary = chosen_binary()?;
    let choice = BinaryChoice {
        binary: &binary,
        rebind,
    };
    let config = config
        .map(std::path::absolute)
        .transpose()
        .context("resolving --config")?;
    let route = gitolite_route(host);
    let installed = crate::ops::hosts::install_gitolite(choice, config.as_deref(), route)?;
    for change in &installed.rc_changes {
        writeln!(out, "enabled in ~/.gitolite.rc: {change}").map_err(io)?;
    }
    let (line, problem) = installed_line(installed.outcome, &binary);
    writeln!(out, "{line}").map_err(io)?;
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
    note_other_binaries(&binary, out)?;
    Ok(if problem { EXIT_FAILED } else { EXIT_OK })
}

pub fn cmd_uninstall(args: &UninstallArgs, out: &mut dyn Write) -> Result<u8, Exit> {
    let UninstallArgs { repos, host } = args;
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
    for_each_host_repo(host, repos, out, |repo| {
        uninstall_one(repo, host.gitea).map(|line| (line, false))
    })
}
