//! How git reaches a mirror: transport allowlist, HTTPS credentials through environment config
//! and a credential helper (never argv), fail-closed SSH options.

use crate::config::{GlobalConfig, MirrorConfig, SecretSource};
use crate::git::RemoteAccess;
use crate::remote_url::{Transport, transport_of};
use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// Refuses a URL whose transport is not in `allowed` (remote helpers always).
pub fn check_transport(url: &str, allowed: &[String]) -> Result<Transport> {
    let transport = transport_of(url);
    if let Transport::Refused(what) = &transport {
        bail!(
            "the transport {what} is not allowed for mirrors (allowed: {})",
            allowed.join(", ")
        );
    }
    if !allowed.iter().any(|p| p == transport.protocol_name()) {
        bail!(
            "the transport {transport} is not in allowed_protocols ({}); add it there to use this URL",
            allowed.join(", ")
        );
    }
    Ok(transport)
}

/// Reads a secret from its source. Files must not be group/world readable.
pub fn read_secret(source: &SecretSource) -> Result<String> {
    match source {
        SecretSource::Inline(secret) => Ok(secret.clone()),
        SecretSource::Env(var) => {
            std::env::var(var).with_context(|| format!("the environment variable {var} (password_env) is not set"))
        }
        SecretSource::File(path) => {
            refuse_if_readable_by_others(path, "password file")?;
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let secret = text.trim_end_matches(['\n', '\r']).to_string();
            if secret.is_empty() {
                bail!("the password file {} is empty", path.display());
            }
            Ok(secret)
        }
    }
}

/// Fails when `path` can be read by its group or by others.
pub fn refuse_if_readable_by_others(path: &Path, what: &str) -> Result<()> {
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {what} {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "the {what} {} is readable by group/others (mode {:o}); run: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

/// A credential helper given through environment config: it prints the
/// username and password from its own environment, so the secret is never in
/// any process's argv (`printf` is a shell builtin).
const CREDENTIAL_HELPER: &str = "!f() { test \"$1\" = get || return 0; \
printf 'username=%s\\npassword=%s\\n' \"$GIT_PUSH_MIRROR_USERNAME\" \"$GIT_PUSH_MIRROR_PASSWORD\"; }; f";

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Everything git needs to reach `mirror`, or why it can't.
pub fn remote_access(mirror: &MirrorConfig, global: &GlobalConfig) -> Result<RemoteAccess> {
    let transport = check_transport(&mirror.url, &global.allowed_protocols)?;
    let mut access = RemoteAccess::new(&mirror.url, mirror.timeout, &global.allowed_protocols);
    let mut config: Vec<(&str, String)> = Vec::new();
    if let Some(source) = &mirror.password {
        let secret = read_secret(source).with_context(|| format!("mirror {}", mirror.name))?;
        let username = mirror.username.clone().unwrap_or_default();
        // An empty helper first resets the admin's helpers: no credential store ever sees the secret.
        config.push(("credential.helper", String::new()));
        config.push(("credential.helper", CREDENTIAL_HELPER.to_string()));
        access.env.push(("GIT_PUSH_MIRROR_USERNAME".into(), username.into()));
        access
            .env
            .push(("GIT_PUSH_MIRROR_PASSWORD".into(), secret.clone().into()));
        access.secrets.push(secret);
    }
    if transport == Transport::Ssh {
        access
            .env
            .push(("GIT_SSH_COMMAND".into(), ssh_command(mirror, mirror.timeout).into()));
        access.env.push(("GIT_SSH_VARIANT".into(), OsString::from("ssh")));
    }
    access
        .env
        .push(("GIT_CONFIG_COUNT".into(), config.len().to_string().into()));
    for (i, (key, value)) in config.into_iter().enumerate() {
        access.env.push((format!("GIT_CONFIG_KEY_{i}"), key.into()));
        access.env.push((format!("GIT_CONFIG_VALUE_{i}"), value.into()));
    }
    Ok(access)
}

/// The fail-closed ssh command line (it holds paths, never secrets).
pub fn ssh_command(mirror: &MirrorConfig, timeout: Duration) -> String {
    let connect_timeout = timeout.as_secs().clamp(1, 30);
    let mut cmd = format!(
        "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout={connect_timeout} -o ServerAliveInterval=15 -o ServerAliveCountMax=2"
    );
    if let Some(key) = &mirror.ssh_key {
        cmd.push_str(&format!(
            " -o IdentitiesOnly=yes -i {}",
            shell_quote(&key.to_string_lossy())
        ));
    }
    if let Some(known_hosts) = &mirror.known_hosts {
        cmd.push_str(&format!(
            " -o UserKnownHostsFile={}",
            shell_quote(&known_hosts.to_string_lossy())
        ));
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        ["https", "ssh", "git", "file", "http"].map(String::from).to_vec()
    }

    #[test]
    fn remote_helpers_are_refused() {
        for url in ["ext::sh -c touch% /tmp/pwned", "fd::3", "foo::bar"] {
            let err = check_transport(url, &allowed()).unwrap_err().to_string();
            assert!(err.contains("not allowed"), "{err}");
        }
    }

    #[test]
    fn transports_outside_the_allowlist_are_refused() {
        let only_https = vec!["https".to_string()];
        assert!(check_transport("https://h/a.git", &only_https).is_ok());
        let err = check_transport("git://h/a.git", &only_https).unwrap_err().to_string();
        assert!(err.contains("allowed_protocols"), "{err}");
    }

    #[test]
    fn readable_password_files_are_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_secret(&SecretSource::File(path.clone())).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret(&SecretSource::File(path)).unwrap(), "s3cret");
    }
}
