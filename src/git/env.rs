//! The environment of git, ssh and git-lfs children: built from an allowlist of the worker's
//! variables, never the worker's environment minus a denylist, so a secret in an environment
//! variable (`password_env`), an agent socket or a hook's location variables reach no child.
//!
//! The worker itself keeps its whole environment (it reads `password_env` variables and hands
//! their values to the credential plumbing alone, see [`super::credential`]).

use std::ffi::OsStr;
use std::process::Command;

/// Variables a git child may inherit, by exact name: where the user's files and configuration
/// are, the locale, temporary files, proxies and CA certificates.
const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "TMPDIR",
    "TZ",
    "LANG",
    "XDG_CONFIG_HOME",
    // git's configuration and CA certificates, as the admin set them up.
    "GIT_CONFIG_NOSYSTEM",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    // TLS trust for curl and OpenSSL.
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    // Proxies (curl reads both spellings).
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
];

/// Whether a variable of the worker's environment may reach a git, ssh or git-lfs child.
/// `LC_*` locale categories may, except `LC_ALL`, which would override the `LC_MESSAGES=C`
/// that keeps git's output parseable. Nothing else does: not `SSH_AUTH_SOCK` (mirrors use the
/// key they are configured with), not `LD_*`, not a `password_env` variable.
pub fn is_inherited(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    INHERITED.contains(&name) || (name.starts_with("LC_") && name != "LC_ALL")
}

/// Replaces `cmd`'s environment with the allowed part of this process's environment.
pub fn inherit_allowed_only(cmd: &mut Command) {
    cmd.env_clear();
    cmd.envs(std::env::vars_os().filter(|(name, _)| is_inherited(name)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_variables_are_inherited() {
        for kept in [
            "PATH",
            "HOME",
            "LANG",
            "LC_CTYPE",
            "LC_MESSAGES",
            "TMPDIR",
            "https_proxy",
            "NO_PROXY",
            "SSL_CERT_FILE",
            "GIT_CONFIG_GLOBAL",
            "GIT_SSL_CAINFO",
            "XDG_CONFIG_HOME",
        ] {
            assert!(is_inherited(OsStr::new(kept)), "{kept}");
        }
        for dropped in [
            "MIRROR_TOKEN",
            "GITHUB_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "SSH_AUTH_SOCK",
            "SSH_ASKPASS",
            "LC_ALL",
            "LANGUAGE",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "GIT_DIR",
            "GIT_QUARANTINE_PATH",
            "GIT_PUSH_OPTION_0",
            "GIT_OBJECT_DIRECTORY",
            "GIT_CONFIG_PARAMETERS",
            "GIT_SSH_COMMAND",
            "GIT_EXEC_PATH",
            "GIT_SSL_NO_VERIFY",
        ] {
            assert!(!is_inherited(OsStr::new(dropped)), "{dropped}");
        }
    }

    #[test]
    fn a_command_gets_nothing_else() {
        let mut cmd = Command::new("env");
        inherit_allowed_only(&mut cmd);
        let names: Vec<_> = cmd.get_envs().map(|(name, _)| name.to_os_string()).collect();
        assert!(names.iter().all(|name| is_inherited(name)), "{names:?}");
    }
}
