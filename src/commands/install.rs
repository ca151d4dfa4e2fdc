//! `install` and `uninstall`: the hook in plain repositories, every repository under a root, Gitea/Forgejo or gitolite.

use crate::cli::args::HostFlags;
use crate::commands::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, Exit, ExitContext, io, repo_paths};
use crate::config::GlobalConfig;
use crate::mirror::state::StateStore;
use crate::ops::install;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

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

/// `install` per host: `--gitea`, `--gitolite`, `--all ROOT`, or plain repositories.
pub fn cmd_install_on_host(
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

pub fn cmd_install_gitolite(
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

pub fn cmd_uninstall_on_host(repos: &[PathBuf], host: &HostFlags, out: &mut dyn Write) -> Result<u8, Exit> {
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
