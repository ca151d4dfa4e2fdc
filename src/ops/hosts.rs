//! Installing the hook the way each git host expects: Gitea/Forgejo (a script in
//! `hooks/post-receive.d/`, run by Gitea's own dispatcher) and gitolite (a common hook under
//! `LOCAL_CODE` or a repo-specific hook, both propagated by `gitolite setup`). Plain bare
//! repositories are [`crate::ops::install`]'s.

use crate::git::hooks_dir;
use crate::ops::install::{BinaryChoice, Chain, Installed, hook_script, is_ours, rewrite_ours, write_executable};
use anyhow::{Context, Result, bail};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Our file in a Gitea repository's `hooks/post-receive.d/`, and our
/// repo-specific hook's name under gitolite's `LOCAL_CODE/hooks/repo-specific/`.
pub const HOOK_NAME: &str = "git-push-mirror";
/// Where an existing common gitolite `post-receive` is kept (beside
/// `hooks/common/`, not in it, so gitolite does not link it into every repository).
pub const GITOLITE_CHAINED: &str = "post-receive.before-push-mirror";

// ---------------------------------------------------------------------------
// Gitea / Forgejo

/// Gitea's dispatcher directory of a repository.
fn gitea_hook_dir(repo: &Path) -> Result<PathBuf> {
    let dir = hooks_dir(repo).map_err(|e| anyhow::anyhow!("{}: {e}", repo.display()))?;
    Ok(dir.join("post-receive.d"))
}

/// Adds our script to a Gitea/Forgejo repository's `hooks/post-receive.d/`.
/// Gitea's `post-receive` (which replays the push's input to every executable
/// there) and its `post-receive.d/gitea` are never touched.
pub fn install_gitea(repo: &Path, choice: BinaryChoice<'_>, config: Option<&Path>) -> Result<Installed> {
    let dir = gitea_hook_dir(repo)?;
    if !dir.is_dir() {
        bail!(
            "{}: there is no hooks/post-receive.d/, so this is not a repository Gitea or Forgejo manages \
             (use `install` without --gitea), or Gitea has not written its hooks yet \
             (Site Administration → Dashboard → \"Resynchronize pre-receive, update and post-receive hooks\")",
            repo.display()
        );
    }
    let hook = dir.join(HOOK_NAME);
    let about = "# Gitea's post-receive runs every executable in post-receive.d/ with the push's\n\
                 # input; this one records the push for mirroring and returns at once.\n";
    let script = |exe: &Path| {
        hook_script(
            exe,
            config,
            Chain::Nothing,
            about,
            "git-push-mirror uninstall --gitea REPO",
        )
    };
    if hook.exists() || hook.is_symlink() {
        if !is_ours(&hook) {
            bail!("{} exists and is not ours; move it away first", hook.display());
        }
        return rewrite_ours(&hook, choice, script);
    }
    write_executable(&hook, &script(choice.binary))?;
    Ok(Installed::Fresh(hook))
}

/// Removes our script from `hooks/post-receive.d/`. `false` when it was not there.
pub fn uninstall_gitea(repo: &Path) -> Result<bool> {
    let hook = gitea_hook_dir(repo)?.join(HOOK_NAME);
    if !is_ours(&hook) {
        return Ok(false);
    }
    fs::remove_file(&hook).with_context(|| format!("removing {}", hook.display()))?;
    Ok(true)
}

// ---------------------------------------------------------------------------
// gitolite

/// How the hook reaches gitolite's repositories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GitoliteRoute {
    /// `$LOCAL_CODE/hooks/common/post-receive`: gitolite links it into every repository.
    Common,
    /// `$LOCAL_CODE/hooks/repo-specific/git-push-mirror`, for the repositories
    /// whose gitolite.conf says `option hook.post-receive = git-push-mirror`.
    RepoSpecific,
}

/// The gitolite instance of the current user (`$HOME/.gitolite.rc`), as gitolite itself reports it.
#[derive(Debug)]
pub struct Gitolite {
    pub rc_file: PathBuf,
    pub repo_base: PathBuf,
    pub local_code: Option<PathBuf>,
}

/// What a gitolite install did.
#[derive(Debug)]
pub struct GitoliteInstalled {
    pub hook: PathBuf,
    /// Whether the hook is new, or was ours already (and which binary it runs).
    pub outcome: Installed,
    /// An existing common hook, kept and chained after ours.
    pub chained: Option<PathBuf>,
    /// `.gitolite.rc` settings this install switched on.
    pub rc_changes: Vec<String>,
    /// What `gitolite setup` printed.
    pub setup_output: String,
}

fn gitolite_command() -> Command {
    let mut cmd = Command::new("gitolite");
    cmd.stdin(Stdio::null());
    cmd
}

/// `gitolite query-rc VAR`: `None` when the variable is not set.
fn query_rc(var: &str) -> Result<Option<String>> {
    let out = gitolite_command()
        .args(["query-rc", var])
        .output()
        .context("running `gitolite query-rc` (is gitolite installed and on the PATH?)")?;
    let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match out.status.code() {
        Some(0) => Ok(Some(value)),
        Some(1) if value.is_empty() => Ok(None),
        _ => bail!(
            "`gitolite query-rc {var}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

fn home() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .or_else(std::env::home_dir)
        .context("no home directory: run this as the gitolite hosting user")
}

impl Gitolite {
    /// Reads the current user's gitolite settings through `gitolite query-rc`.
    pub fn locate() -> Result<Gitolite> {
        let rc_file = home()?.join(".gitolite.rc");
        if !rc_file.is_file() {
            bail!(
                "{} does not exist: run this as the user gitolite runs as (e.g. `sudo -u git -H git-push-mirror install --gitolite`), after `gitolite setup`",
                rc_file.display()
            );
        }
        let repo_base = query_rc("GL_REPO_BASE")?.context("gitolite does not report GL_REPO_BASE")?;
        Ok(Gitolite {
            rc_file,
            repo_base: PathBuf::from(repo_base),
            local_code: query_rc("LOCAL_CODE")?.filter(|v| !v.is_empty()).map(PathBuf::from),
        })
    }

    fn hook_path(&self, local_code: &Path, route: GitoliteRoute) -> PathBuf {
        match route {
            GitoliteRoute::Common => local_code.join("hooks/common/post-receive"),
            GitoliteRoute::RepoSpecific => local_code.join("hooks/repo-specific").join(HOOK_NAME),
        }
    }

    /// Switches on what the route needs in `.gitolite.rc` (by uncommenting
    /// the lines gitolite's default rc has for it), re-reading the result.
    fn prepare_rc(&mut self, route: GitoliteRoute) -> Result<Vec<String>> {
        let mut changes = Vec::new();
        if self.local_code.is_none() {
            uncomment_rc_line(&self.rc_file, &RC_LOCAL_CODE)?;
            self.local_code = query_rc("LOCAL_CODE")?.filter(|v| !v.is_empty()).map(PathBuf::from);
            if self.local_code.is_none() {
                bail!(
                    "{}: LOCAL_CODE is still not set after editing it",
                    self.rc_file.display()
                );
            }
            changes.push("LOCAL_CODE => \"$ENV{HOME}/local\"".to_string());
        }
        if route == GitoliteRoute::RepoSpecific && !repo_specific_hooks_enabled()? {
            uncomment_rc_line(&self.rc_file, &RC_REPO_SPECIFIC)?;
            if !repo_specific_hooks_enabled()? {
                bail!(
                    "{}: 'repo-specific-hooks' is still not enabled after editing it",
                    self.rc_file.display()
                );
            }
            changes.push("ENABLE 'repo-specific-hooks'".to_string());
        }
        Ok(changes)
    }
}

/// The `.gitolite.rc` lines this installer may switch on, as the default rc has them commented out.
struct RcLine {
    /// What the line sets, for messages.
    what: &'static str,
    /// The line without its comment marker, whitespace-insensitively.
    line: &'static str,
}

const RC_LOCAL_CODE: RcLine = RcLine {
    what: "LOCAL_CODE => \"$ENV{HOME}/local\", in the %RC section",
    line: "LOCAL_CODE => \"$ENV{HOME}/local\",",
};

const RC_REPO_SPECIFIC: RcLine = RcLine {
    what: "'repo-specific-hooks', in the ENABLE list",
    line: "'repo-specific-hooks',",
};

fn squeeze(s: &str) -> String {
    s.split_whitespace().collect()
}

/// Uncomments the one line of `text` that is `wanted.line` behind a `#`.
fn uncomment(text: &str, wanted: &RcLine) -> Option<String> {
    let target = squeeze(wanted.line);
    let mut done = false;
    let lines: Vec<String> = text
        .split_inclusive('\n')
        .map(|line| {
            let trimmed = line.trim_start();
            match trimmed.strip_prefix('#') {
                Some(rest) if !done && squeeze(rest) == target => {
                    done = true;
                    let indent = &line[..line.len() - trimmed.len()];
                    format!("{indent}{}", rest.trim_start())
                }
                _ => line.to_string(),
            }
        })
        .collect();
    done.then(|| lines.concat())
}

fn uncomment_rc_line(rc_file: &Path, wanted: &RcLine) -> Result<()> {
    let text = fs::read_to_string(rc_file).with_context(|| format!("reading {}", rc_file.display()))?;
    let Some(changed) = uncomment(&text, wanted) else {
        bail!(
            "{}: add {} (see examples/gitolite/gitolite.rc), then run this again",
            rc_file.display(),
            wanted.what
        );
    };
    let mode = fs::metadata(rc_file)?.permissions().mode() & 0o7777;
    crate::util::fsutil::write_atomic(rc_file, changed.as_bytes(), mode)
        .with_context(|| format!("writing {}", rc_file.display()))
}

fn repo_specific_hooks_enabled() -> Result<bool> {
    let out = gitolite_command()
        .args(["query-rc", "POST_COMPILE"])
        .output()
        .context("running `gitolite query-rc`")?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("repo-specific-hooks"))
}

/// Runs `gitolite setup` with `args`; its output, or an error with it.
fn gitolite_setup(args: &[&str]) -> Result<String> {
    let out = gitolite_command()
        .arg("setup")
        .args(args)
        .output()
        .context("running `gitolite setup`")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("`gitolite setup {}` failed ({}):\n{text}", args.join(" "), out.status);
    }
    Ok(text)
}

/// Moves an existing common hook out of `hooks/common/` so ours can take its
/// place and chain it. A relative symbolic link is re-pointed so it still
/// resolves from its new place.
fn keep_previous(hook: &Path, previous: &Path) -> Result<()> {
    if let Ok(target) = fs::read_link(hook)
        && target.is_relative()
    {
        let absolute = hook.parent().unwrap_or(Path::new("/")).join(target);
        std::os::unix::fs::symlink(&absolute, previous).with_context(|| format!("creating {}", previous.display()))?;
        return fs::remove_file(hook).with_context(|| format!("removing {}", hook.display()));
    }
    fs::rename(hook, previous).with_context(|| format!("keeping {}", hook.display()))
}

/// Writes `hook`: fresh, or, when ours is there, keeping or rebinding its binary.
fn write_or_rewrite(hook: &Path, choice: BinaryChoice<'_>, script: impl Fn(&Path) -> String) -> Result<Installed> {
    if is_ours(hook) {
        return rewrite_ours(hook, choice, script);
    }
    write_executable(hook, &script(choice.binary))?;
    Ok(Installed::Fresh(hook.to_path_buf()))
}

/// Installs the hook through gitolite's own mechanisms, so `gitolite setup`
/// (and gitolite's creation of new repositories) keeps it in place.
pub fn install_gitolite(
    choice: BinaryChoice<'_>,
    config: Option<&Path>,
    route: GitoliteRoute,
) -> Result<GitoliteInstalled> {
    let mut gitolite = Gitolite::locate()?;
    let rc_changes = gitolite.prepare_rc(route)?;
    let local_code = gitolite.local_code.clone().context("LOCAL_CODE is not set")?;
    let hook = gitolite.hook_path(&local_code, route);
    let dir = hook.parent().context("hook path has no directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut chained = None;
    let outcome;
    let setup_output = match route {
        GitoliteRoute::Common => {
            let previous = local_code.join("hooks").join(GITOLITE_CHAINED);
            let existing = hook.exists() || hook.is_symlink();
            if existing && !is_ours(&hook) {
                if previous.exists() || previous.is_symlink() {
                    bail!(
                        "{} and {} both exist; move one away first",
                        hook.display(),
                        previous.display()
                    );
                }
                keep_previous(&hook, &previous)?;
            }
            if previous.exists() || previous.is_symlink() {
                chained = Some(previous);
            }
            let about = "# gitolite links it into every repository (`gitolite setup` keeps it there).\n\
                         # It records each push for mirroring and returns at once.\n";
            let chain = chained.as_deref().map_or(Chain::Nothing, Chain::At);
            let script = |exe: &Path| hook_script(exe, config, chain, about, "git-push-mirror uninstall --gitolite");
            outcome = write_or_rewrite(&hook, choice, script)?;
            gitolite_setup(&["--hooks-only"])?
        }
        GitoliteRoute::RepoSpecific => {
            if (hook.exists() || hook.is_symlink()) && !is_ours(&hook) {
                bail!("{} exists and is not ours; move it away first", hook.display());
            }
            let about = "# gitolite runs it for repositories with `option hook.post-receive = git-push-mirror`.\n\
                         # It records each push for mirroring and returns at once.\n";
            let uninstall = "git-push-mirror uninstall --gitolite --repo-specific";
            let script = |exe: &Path| hook_script(exe, config, Chain::Nothing, about, uninstall);
            outcome = write_or_rewrite(&hook, choice, script)?;
            gitolite_setup(&[])?
        }
    };
    Ok(GitoliteInstalled {
        hook,
        outcome,
        chained,
        rc_changes,
        setup_output,
    })
}

/// Removes the gitolite hook (restoring a chained common hook). For the common
/// route, links gitolite made to it in repositories are removed unless a
/// restored hook now stands behind them. `None` when it was not installed.
pub fn uninstall_gitolite(route: GitoliteRoute) -> Result<Option<PathBuf>> {
    let gitolite = Gitolite::locate()?;
    let Some(local_code) = gitolite.local_code.clone() else {
        return Ok(None);
    };
    let hook = gitolite.hook_path(&local_code, route);
    if !is_ours(&hook) {
        return Ok(None);
    }
    let previous = local_code.join("hooks").join(GITOLITE_CHAINED);
    if route == GitoliteRoute::Common && (previous.exists() || previous.is_symlink()) {
        fs::rename(&previous, &hook).with_context(|| format!("restoring {}", previous.display()))?;
        return Ok(Some(hook));
    }
    fs::remove_file(&hook).with_context(|| format!("removing {}", hook.display()))?;
    if route == GitoliteRoute::Common {
        for repo in crate::pipeline::fleet::discover(&gitolite.repo_base)? {
            let link = repo.join("hooks/post-receive");
            if fs::read_link(&link).is_ok_and(|target| target == hook) {
                fs::remove_file(&link).with_context(|| format!("removing {}", link.display()))?;
            }
        }
    }
    Ok(Some(hook))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::install::MARKER;

    #[test]
    fn scripts_quote_paths_and_chain_an_absolute_previous_hook() {
        let script = hook_script(
            Path::new("/opt/it's/git-push-mirror"),
            Some(Path::new("/etc/c.toml")),
            Chain::At(Path::new("/home/git/local/hooks/post-receive.before-push-mirror")),
            "# about\n",
            "git-push-mirror uninstall --gitolite",
        );
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains(MARKER));
        assert!(script.contains(
            "exec '/opt/it'\\''s/git-push-mirror' --config '/etc/c.toml' hook post-receive \
             --chain '/home/git/local/hooks/post-receive.before-push-mirror' -- \"$@\"\n"
        ));
    }

    #[test]
    fn rc_lines_are_uncommented_once_keeping_indentation() {
        let rc = "%RC = (\n        # LOCAL_CODE                =>  \"$ENV{HOME}/local\",\n        # LOCAL_CODE                =>  \"$rc{GL_ADMIN_BASE}/local\",\n    ENABLE => [\n            # 'repo-specific-hooks',\n    ],\n);\n";
        let changed = uncomment(rc, &RC_LOCAL_CODE).unwrap();
        assert!(changed.contains("\n        LOCAL_CODE                =>  \"$ENV{HOME}/local\",\n"));
        assert!(changed.contains("# LOCAL_CODE                =>  \"$rc{GL_ADMIN_BASE}/local\""));
        let changed = uncomment(&changed, &RC_REPO_SPECIFIC).unwrap();
        assert!(changed.contains("\n            'repo-specific-hooks',\n"));
        assert_eq!(uncomment("nothing here\n", &RC_LOCAL_CODE), None);
    }
}
