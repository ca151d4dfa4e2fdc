//! The files a mirror names (`password_file`, `ssh_key`, `known_hosts`, `ca_file`), checked when
//! its configuration is read: one that is insecure or unusable faults its mirror alone, and the
//! repository's other mirrors keep mirroring (docs/security.md). Only the files the mirror's
//! transports use are checked: a `[defaults]` SSH key does not fault an HTTPS mirror.
//!
//! What is checked, with `stat` only (nothing is opened here; the worker reads the files with
//! the same limits when it uses them):
//! - a regular file (after symbolic links) of bounded size, never a FIFO or a device;
//! - a secret (password file, SSH key) readable by nobody but its owner;
//! - written only by users the worker trusts: root, the worker's user, the `shared_group` and
//!   the repository's owner; and a secret named by a configuration that belongs to someone else
//!   than root, the worker's user or the shared group (a repository owner who is not the
//!   worker's user) must be that owner's own: a configuration may send its owner's secrets,
//!   never the worker's.
//!
//! A file that does not exist yet is not a fault here: the update reports it with what to do.

use crate::config::{GlobalConfig, MirrorConfig, SecretSource};
use crate::util::regular_file::{MAX_CONFIG_FILE_SIZE, regular_file_problem};
use crate::util::remote_url::{Transport, http_origin, transport_of};
use crate::util::trust::{Ownership, Trusted, exposure};
use crate::util::users;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Who may have written the files a configuration file names.
pub(crate) struct Writers {
    /// The users trusted to write the configuration file itself.
    trusted: Trusted,
    /// The owner of the configuration file that names the files.
    config_owner: u32,
    /// That configuration file, for messages.
    config_file: String,
}

impl Writers {
    /// For the files a repository's `push-mirror.toml` (owned by `config_owner`) names.
    pub(crate) fn for_repo(global: &GlobalConfig, repo: &Path, config_file: &Path, config_owner: u32) -> Writers {
        let trusted = Trusted::worker(global.shared_group.clone());
        let trusted = match std::fs::metadata(repo) {
            Ok(meta) => trusted.and_user(meta.uid()),
            Err(_) => trusted,
        };
        Writers {
            trusted,
            config_owner,
            config_file: config_file.display().to_string(),
        }
    }

    /// For the files the global configuration (fleet mirrors, `[defaults]`) names.
    pub(crate) fn for_global(global: &GlobalConfig) -> Writers {
        let trusted = Trusted::worker(global.shared_group.clone());
        let file = global.source.as_deref();
        let config_owner = file
            .and_then(|file| std::fs::metadata(file).ok())
            .map_or(trusted.me, |meta| meta.uid());
        Writers {
            trusted,
            config_owner,
            config_file: file.map_or_else(|| "the global configuration".to_string(), |f| f.display().to_string()),
        }
    }

    /// Why `mirror` cannot use the files it names, if it cannot.
    pub(crate) fn fault(&self, mirror: &MirrorConfig) -> Option<String> {
        let origins: Vec<String> = [Some(mirror.url.as_str()), mirror.lfs.url.as_deref()]
            .into_iter()
            .flatten()
            .filter_map(http_origin)
            .collect();
        let ssh = transport_of(&mirror.url) == Transport::Ssh;
        let https = origins.iter().any(|origin| origin.starts_with("https://"));
        let password_file = match &mirror.password {
            Some(SecretSource::File(file)) if !origins.is_empty() => Some(file.as_path()),
            _ => None,
        };
        let api_token_file = match &mirror.side.api_token {
            Some(SecretSource::File(file)) if mirror.side.create.is_some_and(|kind| kind.is_forge()) => {
                Some(file.as_path())
            }
            _ => None,
        };
        let files = [
            ("password file", password_file, true),
            ("SSH key", mirror.ssh_key.as_deref().filter(|_| ssh), true),
            ("known_hosts file", mirror.known_hosts.as_deref().filter(|_| ssh), false),
            ("ca_file", mirror.ca_file.as_deref().filter(|_| https), false),
            ("API token file", api_token_file, true),
        ];
        files
            .into_iter()
            .find_map(|(what, path, secret)| self.file_fault(what, path?, secret))
    }

    fn file_fault(&self, what: &str, path: &Path, secret: bool) -> Option<String> {
        let shown = path.display();
        let meta = std::fs::metadata(path).ok()?;
        if let Some(problem) = regular_file_problem(&meta, MAX_CONFIG_FILE_SIZE) {
            return Some(format!("the {what} {shown} {problem}"));
        }
        let of = Ownership::of(&meta);
        if secret && of.mode & 0o077 != 0 {
            return Some(format!(
                "the {what} {shown} is readable by group/others (mode {:o}); run: chmod 600 {shown}",
                of.mode & 0o777
            ));
        }
        if secret && !self.trusted.as_worker(self.config_owner) {
            // A secret named by the configuration of a user the worker does not trust as itself
            // (a repository's owner): it must be that user's own.
            let shared = self.trusted.shared.as_ref().map(|group| group.gid);
            if exposure(of, of.uid == self.config_owner, shared, false).is_some() {
                let (user, config_owner) = (users::user_label(of.uid), users::user_label(self.config_owner));
                return Some(format!(
                    "the {what} {shown} (owner {user}, mode {:o}) is named by {}, which belongs to {config_owner}: \
                     a configuration may name only secrets of its own owner, which nobody else can write, so the \
                     worker's secrets never go where another user says; use a file of {config_owner}'s \
                     (chown {config_owner} {shown}; chmod 600 {shown})",
                    of.mode & 0o7777,
                    self.config_file
                ));
            }
            return None;
        }
        crate::util::trust::check_file(path, &format!("the {what}"), &meta, &self.trusted)
            .map(|untrusted| untrusted.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mirror(url: &str, password_file: &Path) -> MirrorConfig {
        MirrorConfig {
            username: Some("bot".into()),
            password: Some(SecretSource::File(password_file.to_path_buf())),
            timeout: std::time::Duration::from_secs(60),
            ..MirrorConfig::example(url)
        }
    }

    #[test]
    fn an_insecure_or_odd_secret_file_is_a_fault_and_a_private_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let global = GlobalConfig::embedded(dir.path());
        let token = dir.path().join("token");
        std::fs::write(&token, "t0ken\n").unwrap();
        let writers = Writers::for_repo(
            &global,
            dir.path(),
            &dir.path().join("push-mirror.toml"),
            users::effective_uid(),
        );
        let set_mode = |mode| std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
        set_mode(0o600);
        assert_eq!(writers.fault(&mirror("https://h/a.git", &token)), None);
        set_mode(0o644);
        let fault = writers.fault(&mirror("https://h/a.git", &token)).unwrap();
        assert!(fault.contains(&format!("chmod 600 {}", token.display())), "{fault}");
        assert_eq!(
            writers.fault(&mirror("ssh://h/a.git", &token)),
            None,
            "a password is never used over ssh: its file does not fault the mirror"
        );
        set_mode(0o602);
        let fault = writers.fault(&mirror("https://h/a.git", &token)).unwrap();
        assert!(fault.contains("readable by group/others"), "{fault}");
        set_mode(0o600);
        std::fs::remove_file(&token).unwrap();
        assert_eq!(
            writers.fault(&mirror("https://h/a.git", &token)),
            None,
            "missing: the update says so"
        );
        std::os::unix::fs::symlink("/dev/zero", &token).unwrap();
        let fault = writers.fault(&mirror("https://h/a.git", &token)).unwrap();
        assert!(fault.contains("character device"), "{fault}");
    }

    #[test]
    fn a_configuration_of_an_untrusted_owner_may_not_name_the_workers_files() {
        let dir = tempfile::tempdir().unwrap();
        let global = GlobalConfig::embedded(dir.path());
        let token = dir.path().join("token");
        std::fs::write(&token, "t0ken\n").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        // A uid nobody has: the owner of a repository and its configuration, not trusted as the worker.
        let stranger = 4_000_000_000;
        let writers = Writers {
            trusted: Trusted::worker(None).and_user(stranger),
            config_owner: stranger,
            config_file: "/srv/theirs.git/push-mirror.toml".into(),
        };
        let fault = writers.fault(&mirror("https://h/a.git", &token)).unwrap();
        assert!(
            fault.contains("is named by /srv/theirs.git/push-mirror.toml"),
            "{fault}"
        );
        let ours = Writers::for_repo(
            &global,
            dir.path(),
            &dir.path().join("push-mirror.toml"),
            users::effective_uid(),
        );
        assert_eq!(ours.fault(&mirror("https://h/a.git", &token)), None);
    }
}
