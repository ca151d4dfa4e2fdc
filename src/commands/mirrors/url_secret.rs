//! A password given in a mirror's URL (`https://user:password@…`), taken out of the URL that
//! `add` and `set` store and kept in a mode-600 file in the state directory instead.

use crate::commands::{EXIT_USAGE, Exit};
use crate::config::GlobalConfig;
use crate::config::edit::{self as config_edit, MirrorEdit};
use crate::mirror::state::StateStore;
use crate::util::remote_url::{Transport, split_credentials};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A password taken out of a `user:password@` URL: written to a temporary
/// file next to where it belongs, moved there only once the configuration
/// that points at it is saved, so a refused edit never replaces a stored secret.
pub(super) struct PendingSecret {
    tmp: PathBuf,
    file: PathBuf,
}

impl PendingSecret {
    fn commit(self, err: &mut dyn Write) -> Result<(), Exit> {
        std::fs::rename(&self.tmp, &self.file)
            .with_context(|| format!("storing the password in {}", self.file.display()))?;
        if let Some(dir) = self.file.parent() {
            crate::util::fsutil::fsync_dir(dir).context("storing the password")?;
        }
        let _ = writeln!(
            err,
            "the password in the URL was stored in {} (mode 600)",
            self.file.display()
        );
        Ok(())
    }

    fn discard(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// The file `add` stores a URL's password in: `<state>/repos/<repo>/secrets/<mirror>.password`.
pub(super) fn url_password_path(global: &GlobalConfig, repo: &Path, name: &str) -> PathBuf {
    StateStore::new(&global.state_dir)
        .repo_dir(repo)
        .join("secrets")
        .join(format!("{name}.password"))
}

/// Turns an HTTP(S) URL with `user:password@` into a clean URL and a username, and
/// stages its password in a mode-600 file the configuration will point to. Other URLs
/// keep their user (`ssh://git@host/…`: the SSH user is part of the address).
pub(super) fn split_url_secret(
    global: &GlobalConfig,
    repo: &Path,
    name: &str,
    url: &str,
    edit: &mut MirrorEdit,
) -> Result<(String, Option<PendingSecret>), Exit> {
    if !matches!(
        crate::util::remote_url::transport_of(url),
        Transport::Https | Transport::Http
    ) {
        return Ok((url.to_string(), None));
    }
    let split = split_credentials(url);
    if split.username.is_some() && edit.username.is_none() {
        edit.username = split.username.clone();
    }
    let Some(password) = &split.password else {
        return Ok((split.url, None));
    };
    if edit.password_file.is_some() || edit.password_env.is_some() {
        return Err(Exit(
            EXIT_USAGE,
            anyhow::anyhow!(
                "the URL contains a password and --password-file/--password-env is given too: use only one"
            ),
        ));
    }
    let file = url_password_path(global, repo, name);
    let dir = file.parent().expect("the secrets file has a directory");
    crate::access::ssh::create_private_dir(dir).context("creating the secrets directory")?;
    let tmp = crate::util::fsutil::write_synced(
        dir,
        &crate::util::fsutil::unique_name(&format!(".{name}.password."), ".tmp"),
        password.as_bytes(),
        0o600,
    )
    .context("storing the password")?;
    edit.password_file = Some(file.clone());
    Ok((split.url, Some(PendingSecret { tmp, file })))
}

/// Runs a configuration edit and then stores or drops the staged secret.
pub(super) fn edit_with_secret(
    repo: &Path,
    global: &GlobalConfig,
    secret: Option<PendingSecret>,
    err: &mut dyn Write,
    edit: impl FnOnce(&str) -> Result<String, config_edit::EditError>,
) -> Result<(), Exit> {
    match config_edit::edit_repo_file(repo, global, edit) {
        Ok(()) => secret.map_or(Ok(()), |s| s.commit(err)),
        Err(e) => {
            if let Some(secret) = secret {
                secret.discard();
            }
            Err(Exit(EXIT_USAGE, e.into()))
        }
    }
}
