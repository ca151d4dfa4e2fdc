//! SSH mirrors: the fail-closed ssh command line, checks of key files, and per-mirror key pairs
//! (`keygen`). Host keys (`known-hosts`) live in [`known_hosts`].

pub mod known_hosts;
pub mod remote_shell;

use crate::config::MirrorConfig;
use anyhow::{Context, Result, bail};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The fail-closed ssh command git runs (`GIT_SSH_COMMAND`). It holds paths, never secrets.
///
/// Options given here win over any `~/.ssh/config`: no prompt, no host key
/// accepted or updated behind the admin's back, no shared connection, only the
/// mirror's key when it has one.
pub fn ssh_command(mirror: &MirrorConfig, timeout: Duration) -> String {
    let mut cmd = String::from("ssh");
    for option in fail_closed_options(timeout) {
        cmd.push_str(" -o ");
        cmd.push_str(&option);
    }
    if let Some(key) = &mirror.ssh_key {
        cmd.push_str(" -o IdentitiesOnly=yes -i ");
        cmd.push_str(&shell_quote(&ssh_path_argument(key)));
    }
    if let Some(known_hosts) = &mirror.known_hosts {
        cmd.push_str(" -o UserKnownHostsFile=");
        cmd.push_str(&shell_quote(&ssh_path_argument(known_hosts)));
    }
    cmd
}

/// [`ssh_command`] as arguments of `ssh` run directly (no shell), for commands of our own on the
/// mirror's host ([`remote_shell`]).
pub fn ssh_arguments(mirror: &MirrorConfig, timeout: Duration) -> Vec<String> {
    let mut args = Vec::new();
    for option in fail_closed_options(timeout) {
        args.extend(["-o".to_string(), option]);
    }
    if let Some(key) = &mirror.ssh_key {
        args.extend(["-o".to_string(), "IdentitiesOnly=yes".to_string(), "-i".to_string()]);
        args.push(ssh_path_argument(key));
    }
    if let Some(known_hosts) = &mirror.known_hosts {
        args.extend([
            "-o".to_string(),
            format!("UserKnownHostsFile={}", ssh_path_argument(known_hosts)),
        ]);
    }
    args
}

/// The `-o` options that make ssh fail closed: no prompt, no host key accepted or updated, no
/// shared connection, a bounded connect.
fn fail_closed_options(timeout: Duration) -> Vec<String> {
    let connect_timeout = timeout.as_secs().clamp(1, 30);
    [
        "BatchMode=yes".to_string(),
        "StrictHostKeyChecking=yes".to_string(),
        "UpdateHostKeys=no".to_string(),
        format!("ConnectTimeout={connect_timeout}"),
        "ServerAliveInterval=15".to_string(),
        "ServerAliveCountMax=2".to_string(),
        "ControlMaster=no".to_string(),
        "ControlPath=none".to_string(),
    ]
    .into()
}

/// A path as ssh takes it literally (ssh expands `%` tokens in key and known_hosts paths; `%%`
/// is a literal `%`).
fn ssh_path_argument(path: &Path) -> String {
    path.to_string_lossy().replace('%', "%%")
}

/// Quotes `s` as one word for the POSIX shell git runs `GIT_SSH_COMMAND` with.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Why an SSH private key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("the SSH key {} does not exist", .0.display())]
    Missing(PathBuf),
    #[error("the SSH key {} is readable by group/others (mode {mode:o}); ssh refuses such keys; run: chmod 600 {}", .path.display(), .path.display())]
    ReadableByOthers { path: PathBuf, mode: u32 },
    #[error("the SSH key {} is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error("cannot read the SSH key {}: {source}", .path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
}

/// Checks that `path` is a private key file only its owner can read.
pub fn check_key_file(path: &Path) -> Result<(), KeyFileError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(KeyFileError::Missing(path.to_path_buf())),
        Err(source) => {
            return Err(KeyFileError::Unreadable {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if !meta.is_file() {
        return Err(KeyFileError::NotAFile(path.to_path_buf()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::ReadableByOthers {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// The public half of a key file.
pub fn public_key_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_os_string();
    name.push(".pub");
    PathBuf::from(name)
}

/// An OpenSSH tool (`ssh-keygen`, `ssh-keyscan`) with a clean environment:
/// only `PATH`, C messages, no agent, stdin null.
pub(crate) fn openssh_tool(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("LC_ALL", "C").stdin(Stdio::null());
    cmd
}

/// Creates a directory (and its parents) and makes the last one private (mode 700).
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("securing {}", dir.display()))
}

/// Creates an ed25519 key pair at `path` (mode 600, no passphrase: the worker
/// runs unattended) and `path.pub`; returns the public key line. Never
/// overwrites: an existing file at either path is an error.
pub fn generate_key(path: &Path, comment: &str) -> Result<String> {
    let public = public_key_path(path);
    for existing in [path, public.as_path()] {
        if existing.symlink_metadata().is_ok() {
            bail!(
                "{} already exists; keygen never overwrites a key (delete the key pair first to replace it)",
                existing.display()
            );
        }
    }
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        create_private_dir(dir)?;
    }
    let mut cmd = openssh_tool("ssh-keygen");
    cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path);
    let finished = crate::git::run_with_timeout(cmd, Duration::from_secs(60))
        .map_err(|e| anyhow::anyhow!("running ssh-keygen (is openssh-client installed?): {e}"))?;
    if !finished.success {
        bail!(
            "ssh-keygen could not create {}: {}",
            path.display(),
            finished.stderr.trim()
        );
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("securing {}", path.display()))?;
    let line = std::fs::read_to_string(&public).with_context(|| format!("reading {}", public.display()))?;
    Ok(line.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(key: Option<&str>, known_hosts: Option<&str>) -> MirrorConfig {
        MirrorConfig {
            ssh_key: key.map(PathBuf::from),
            known_hosts: known_hosts.map(PathBuf::from),
            timeout: Duration::from_secs(600),
            ..MirrorConfig::example("ssh://git@host/x.git")
        }
    }

    #[test]
    fn the_ssh_command_fails_closed() {
        let cmd = ssh_command(&mirror(None, None), Duration::from_secs(600));
        for option in [
            "BatchMode=yes",
            "StrictHostKeyChecking=yes",
            "UpdateHostKeys=no",
            "ConnectTimeout=30",
            "ControlPath=none",
        ] {
            assert!(cmd.contains(option), "{cmd}");
        }
        assert!(!cmd.contains("IdentitiesOnly"), "{cmd}");
        assert!(!cmd.contains("UserKnownHostsFile"), "{cmd}");
    }

    #[test]
    fn the_mirror_key_and_known_hosts_are_quoted_for_the_shell_and_ssh() {
        let cmd = ssh_command(
            &mirror(Some("/keys/it's 100%"), Some("/kh/known hosts")),
            Duration::from_secs(5),
        );
        assert!(
            cmd.contains(" -o IdentitiesOnly=yes -i '/keys/it'\\''s 100%%'"),
            "{cmd}"
        );
        assert!(cmd.contains(" -o UserKnownHostsFile='/kh/known hosts'"), "{cmd}");
        assert!(cmd.contains("ConnectTimeout=5"), "{cmd}");
    }

    #[test]
    fn key_files_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        assert!(matches!(check_key_file(&key), Err(KeyFileError::Missing(_))));
        std::fs::write(&key, "k").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = check_key_file(&key).unwrap_err().to_string();
        assert!(err.contains("chmod 600") && err.contains("mode 640"), "{err}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_key_file(&key).unwrap();
        assert!(matches!(check_key_file(dir.path()), Err(KeyFileError::NotAFile(_))));
    }

    #[test]
    fn public_key_path_appends_pub() {
        assert_eq!(
            public_key_path(Path::new("/a/b_ed25519")),
            Path::new("/a/b_ed25519.pub")
        );
    }
}
