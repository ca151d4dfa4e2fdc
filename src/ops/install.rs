//! Installing the `post-receive` hook into plain bare repositories without clobbering an existing one.

use crate::git::hooks_dir;
use crate::ops::hook_binary::hook_call;
use anyhow::{Context, Result, bail};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The line that marks a hook as ours.
pub(crate) const MARKER: &str = "# installed by git-push-mirror";
/// Where an existing `post-receive` is kept; ours runs it after spooling.
pub const CHAINED_SUFFIX: &str = ".before-push-mirror";

/// What `install` did to one repository.
#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    Fresh(PathBuf),
    /// An existing hook was kept and is chained after ours.
    Chained {
        hook: PathBuf,
        previous: PathBuf,
    },
    /// Ours was already there, running the binary asked for; it was rewritten.
    Refreshed(PathBuf),
    /// Ours was already there, running another binary, which it keeps (no `--rebind`).
    Kept {
        hook: PathBuf,
        binary: PathBuf,
    },
    /// Ours was already there; it now runs the binary asked for instead of `previous`.
    Rebound {
        hook: PathBuf,
        previous: PathBuf,
    },
}

/// The binary a hook is to run, and whether a hook of ours that runs another one is switched to
/// it (`--rebind`) or keeps its own.
#[derive(Clone, Copy, Debug)]
pub struct BinaryChoice<'a> {
    pub binary: &'a Path,
    pub rebind: bool,
}

/// Rewrites `hook`, ours already, with `script(binary)`: the binary it runs unless asked to rebind,
/// so that installing again (by hand, `--all` from cron, another copy of the program first on
/// `PATH`) never silently moves a hook to another binary.
pub(crate) fn rewrite_ours(
    hook: &Path,
    choice: BinaryChoice<'_>,
    script: impl Fn(&Path) -> String,
) -> Result<Installed> {
    let hook = hook.to_path_buf();
    let current = fs::read_to_string(&hook)
        .ok()
        .and_then(|text| hook_call(&text))
        .map(|call| PathBuf::from(call.program));
    let Some(current) = current.filter(|current| current.as_path() != choice.binary) else {
        write_executable(&hook, &script(choice.binary))?;
        return Ok(Installed::Refreshed(hook));
    };
    if choice.rebind {
        write_executable(&hook, &script(choice.binary))?;
        return Ok(Installed::Rebound {
            hook,
            previous: current,
        });
    }
    write_executable(&hook, &script(&current))?;
    let same_file = std::fs::canonicalize(&current).is_ok_and(|c| c == choice.binary);
    Ok(if same_file {
        Installed::Refreshed(hook)
    } else {
        Installed::Kept { hook, binary: current }
    })
}

pub(crate) fn single_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The hook a hook script runs after ours, with the same input.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Chain<'a> {
    Nothing,
    /// The plain hook kept beside ours as `post-receive.before-push-mirror`, found from `$0`
    /// (so the repository may move).
    BesideIt,
    /// A hook at this absolute path.
    At(&'a Path),
}

/// Every host's hook script: the marker line with the command that removes it (`uninstall`),
/// `about` (comment lines), and the command that runs this binary's `hook post-receive`, then
/// `chain` with the same input.
pub(crate) fn hook_script(exe: &Path, config: Option<&Path>, chain: Chain<'_>, about: &str, uninstall: &str) -> String {
    let mut command = format!("exec {}", single_quote(&exe.to_string_lossy()));
    if let Some(config) = config {
        command.push_str(&format!(" --config {}", single_quote(&config.to_string_lossy())));
    }
    command.push_str(" hook post-receive");
    match chain {
        Chain::Nothing => {}
        Chain::BesideIt => command.push_str(&format!(" --chain \"$0{CHAINED_SUFFIX}\"")),
        Chain::At(hook) => command.push_str(&format!(" --chain {}", single_quote(&hook.to_string_lossy()))),
    }
    command.push_str(" -- \"$@\"");
    format!("#!/bin/sh\n{MARKER}; `{uninstall}` removes it.\n{about}{command}\n")
}

/// The plain repository's hook script, chained to the hook it replaced when there was one.
fn plain_hook_script(exe: &Path, config: Option<&Path>, chained: bool) -> String {
    let (chain, about) = if chained {
        (
            Chain::BesideIt,
            format!(
                "# It records each push for mirroring, then runs the previous hook,\n# post-receive{CHAINED_SUFFIX}, with the same input.\n"
            ),
        )
    } else {
        (
            Chain::Nothing,
            "# It records each push for mirroring and returns at once.\n".to_string(),
        )
    };
    hook_script(exe, config, chain, &about, "git-push-mirror uninstall")
}

pub(crate) fn is_ours(hook: &Path) -> bool {
    fs::read(hook).is_ok_and(|bytes| String::from_utf8_lossy(&bytes).contains(MARKER))
}

pub(crate) fn write_executable(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("git-push-mirror-tmp");
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
    fs::rename(&tmp, path).with_context(|| format!("installing {}", path.display()))
}

/// Installs the hook into `repo`, keeping any existing `post-receive`.
pub fn install(repo: &Path, choice: BinaryChoice<'_>, config: Option<&Path>) -> Result<Installed> {
    let dir = hooks_dir(repo).map_err(|e| anyhow::anyhow!("{}: {e}", repo.display()))?;
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let hook = dir.join("post-receive");
    let previous = dir.join(format!("post-receive{CHAINED_SUFFIX}"));
    if is_ours(&hook) {
        let chained = previous.exists();
        return rewrite_ours(&hook, choice, |exe| plain_hook_script(exe, config, chained));
    }
    let exe = choice.binary;
    if hook.exists() || hook.is_symlink() {
        if previous.exists() {
            bail!(
                "{} and {} both exist; move one away first",
                hook.display(),
                previous.display()
            );
        }
        fs::rename(&hook, &previous).with_context(|| format!("keeping {}", hook.display()))?;
        write_executable(&hook, &plain_hook_script(exe, config, true))?;
        return Ok(Installed::Chained { hook, previous });
    }
    write_executable(&hook, &plain_hook_script(exe, config, false))?;
    Ok(Installed::Fresh(hook))
}

/// Removes our hook and puts back the one it replaced. `false` when ours was not installed.
pub fn uninstall(repo: &Path) -> Result<bool> {
    let dir = hooks_dir(repo).map_err(|e| anyhow::anyhow!("{}: {e}", repo.display()))?;
    let hook = dir.join("post-receive");
    if !is_ours(&hook) {
        return Ok(false);
    }
    let previous = dir.join(format!("post-receive{CHAINED_SUFFIX}"));
    if previous.exists() || previous.is_symlink() {
        fs::rename(&previous, &hook).with_context(|| format!("restoring {}", previous.display()))?;
    } else {
        fs::remove_file(&hook).with_context(|| format!("removing {}", hook.display()))?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_quotes_paths_and_chains_with_the_same_arguments() {
        let script = plain_hook_script(
            Path::new("/opt/it's here/git-push-mirror"),
            Some(Path::new("/etc/c.toml")),
            true,
        );
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains(MARKER));
        assert!(script.contains("exec '/opt/it'\\''s here/git-push-mirror' --config '/etc/c.toml' hook post-receive"));
        assert!(script.contains("--chain \"$0.before-push-mirror\" -- \"$@\""));
    }
}
