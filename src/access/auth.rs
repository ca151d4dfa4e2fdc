//! How git reaches a mirror: transport allowlist, HTTPS credentials through environment config
//! and a credential helper (never argv), fail-closed SSH (see [`crate::access::ssh`]), and advice on
//! a mirror's setup. The hints that turn git's authentication errors into what to do are in
//! [`crate::git::error`], next to the errors.

use crate::access::ssh;
use crate::config::{GlobalConfig, MirrorConfig, SecretSource};
use crate::git::RemoteAccess;
use crate::util::regular_file::{MAX_CONFIG_FILE_SIZE, read_regular, read_regular_text};
use crate::util::remote_url::{Transport, split_credentials, transport_of};
use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Refuses a URL whose transport is not in `allowed` (remote helpers always).
pub fn check_transport(url: &str, allowed: &[String]) -> Result<Transport> {
    if let Some(meant) = crate::util::remote_url::scheme_typo(url) {
        // The typed URL is not shown: a password in it would not be recognised as one.
        bail!(
            "the URL's scheme is misspelled: did you mean {}?",
            crate::util::remote_url::redact_url(&meant)
        );
    }
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
    let secret = match source {
        SecretSource::Inline(secret) => Ok(secret.clone()),
        SecretSource::Env(var) => match std::env::var(var) {
            Ok(value) if !value.is_empty() => Ok(value),
            _ => Err(anyhow::anyhow!(
                "the environment variable {var} (password_env) is not set or empty; the worker takes it \
                 from the process that starts it (the git server running the hook, cron, or your shell)"
            )),
        },
        SecretSource::File(path) => {
            // Never a blocking read (a FIFO) nor an endless one (a device): a regular file of bounded size.
            let (text, meta) = read_regular_text(path, MAX_CONFIG_FILE_SIZE)
                .with_context(|| format!("reading the password file {}", path.display()))?;
            refuse_if_readable_by_others(path, meta.permissions().mode(), "password file")?;
            let secret = text.trim_end_matches(['\n', '\r']).to_string();
            if secret.is_empty() {
                bail!("the password file {} is empty", path.display());
            }
            if secret.contains(['\n', '\r']) {
                bail!(
                    "the password file {} has more than one line; it must hold only the password or token",
                    path.display()
                );
            }
            Ok(secret)
        }
    }?;
    // git's credential protocol is line-based: a line break would let the
    // secret inject other credential fields.
    if secret.contains(['\n', '\r', '\0']) {
        bail!("the password contains a line break or NUL byte, which git's credential protocol cannot carry");
    }
    check_secret_length(&secret)?;
    Ok(secret)
}

/// Refuses a password shorter than [`MIN_SECRET_LEN`](crate::util::redact::MIN_SECRET_LEN)
/// characters: it could not be kept out of messages (see [`crate::util::redact::redact`]).
pub fn check_secret_length(secret: &str) -> Result<()> {
    let min = crate::util::redact::MIN_SECRET_LEN;
    if secret.chars().count() < min {
        bail!(
            "the password is shorter than {min} characters: so short a secret cannot be told apart from \
             ordinary words to keep it out of logs and status, and it protects nothing; use the host's access \
             token or a longer password"
        );
    }
    Ok(())
}

/// Fails when a file of mode `mode` can be read by its group or by others.
pub(crate) fn refuse_if_readable_by_others(path: &Path, mode: u32, what: &str) -> Result<()> {
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

/// A credential helper given through environment config: it prints the user name and
/// password it reads from the pipe the worker serves (see [`crate::git::credential`]), so the
/// secret is in no process's argv or environment (`printf` is a shell builtin, `dd`'s
/// arguments name only the pipe).
/// After an `erase` (the password was refused) it answers nothing more in that command, so the
/// command fails instead of retrying the same password (see [`RemoteAccess::remember_rejections`]);
/// the marker it leaves is mode 600, as everything in that private directory.
const CREDENTIAL_HELPER: &str = "!f() { case \"$1\" in \
get) test -e \"$GIT_PUSH_MIRROR_CREDENTIAL_REJECTED\" && return 0; \
dd if=\"$GIT_PUSH_MIRROR_CREDENTIALS\" bs=4096 count=1 2>/dev/null | \
{ IFS= read -r u && IFS= read -r p && printf 'username=%s\\npassword=%s\\n' \"$u\" \"$p\"; };; \
erase) umask 077; : > \"$GIT_PUSH_MIRROR_CREDENTIAL_REJECTED\";; esac; }; f";

/// Everything git (and git-lfs) needs to reach `mirror`, or why it can't.
pub fn remote_access(mirror: &MirrorConfig, global: &GlobalConfig) -> Result<RemoteAccess> {
    if let Some(fault) = &mirror.fault {
        bail!("mirror {}: {fault}", mirror.name);
    }
    let transport = check_transport(&mirror.url, &global.allowed_protocols)?;
    let mut access = RemoteAccess::new(&mirror.url, mirror.timeout, &global.allowed_protocols);
    access.mirror = mirror.name.clone();
    let mut config: Vec<(String, String)> = Vec::new();
    // The mirror is a copy: the locks of its LFS server are not ours to check.
    config.push(("lfs.locksverify".into(), "false".into()));
    if let Some(lfs_url) = &mirror.lfs.url {
        check_transport(lfs_url, &global.allowed_protocols).context("lfs_url")?;
        config.push(("lfs.url".into(), lfs_url.clone()));
    }
    // A password goes only to the HTTP(S) origins of the mirror and its LFS
    // endpoint: over file:// or ssh it would reach the mirror's hooks or the
    // ssh client through the environment, and a scoped helper never answers
    // another host (an LFS server's redirect, say).
    let origins = crate::access::credential_use::credential_origins(&mirror.url, mirror.lfs.url.as_deref());
    if let Some(ca_file) = &mirror.ca_file {
        config.extend(ca_file_config(mirror, ca_file, &origins)?);
        access.ca_file = Some(ca_file.clone());
    }
    if let (Some(source), false) = (&mirror.password, origins.is_empty()) {
        let secret = read_secret(source).with_context(|| format!("mirror {}", mirror.name))?;
        let username = mirror.username.clone().unwrap_or_default();
        // An empty helper first resets the admin's helpers: no credential store ever sees the secret.
        config.push(("credential.helper".into(), String::new()));
        for origin in &origins {
            config.push((format!("credential.{origin}.helper"), CREDENTIAL_HELPER.to_string()));
            // Tells git-lfs up front that the host wants Basic auth: it sends the password at
            // once instead of learning it from a 401 and writing `lfs.<url>.access` into the
            // repository's own config.
            config.push((format!("lfs.{origin}.access"), "basic".to_string()));
        }
        // The password itself is in no environment: the helper reads it from a pipe the
        // worker serves (see `git::credential`); only the pipe's name travels.
        let pipe = access
            .serve_credentials(&username, &secret)
            .context("creating a private pipe for the credential helper")?;
        if matches!(transport, Transport::Https | Transport::Http) {
            access.env.push(pipe);
        } else {
            // Only the LFS endpoint may have it: a file:// push would hand the environment
            // (the pipe's name) to the mirror's hooks, an ssh one to the ssh client.
            access.lfs_env.push(pipe);
        }
        access
            .secrets
            .push(crate::util::redact::basic_credentials(&username, &secret));
        access.secrets.push(secret);
        access.credential_origins = origins;
    }
    if transport == Transport::Ssh {
        check_ssh_files(mirror)?;
        access.env.push((
            "GIT_SSH_COMMAND".into(),
            ssh::ssh_command(mirror, mirror.timeout).into(),
        ));
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

/// Fails unless `path` is a readable file holding at least one PEM certificate.
pub fn check_ca_file(path: &Path) -> Result<()> {
    let (bytes, _) = read_regular(path, MAX_CONFIG_FILE_SIZE)
        .with_context(|| format!("cannot read the ca_file {}", path.display()))?;
    if !bytes.windows(CERTIFICATE_PEM.len()).any(|w| w == CERTIFICATE_PEM) {
        bail!(
            "the ca_file {} holds no PEM certificate (a `-----BEGIN CERTIFICATE-----` block): give the \
             CA's certificate in PEM form",
            path.display()
        );
    }
    Ok(())
}

const CERTIFICATE_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// Environment configuration that makes git and git-lfs trust `ca_file` for HTTPS to the
/// mirror's origins (its URL's and its `lfs_url`'s), and only there: a redirect to another
/// host (an LFS store on a CDN) keeps the system's CAs. `http.<origin>/` is a URL match that
/// both git and git-lfs understand, and wins over the repository's plain `http.sslCAInfo`.
fn ca_file_config(mirror: &MirrorConfig, ca_file: &Path, origins: &[String]) -> Result<Vec<(String, String)>> {
    check_ca_file(ca_file).with_context(|| format!("mirror {}", mirror.name))?;
    let path = ca_file.to_str().with_context(|| {
        format!(
            "mirror {}: the ca_file path {} is not valid UTF-8",
            mirror.name,
            ca_file.display()
        )
    })?;
    Ok(origins
        .iter()
        .filter(|origin| origin.starts_with("https://"))
        .map(|origin| (format!("http.{origin}/.sslCAInfo"), path.to_string()))
        .collect())
}

/// The mirror's SSH key must be private and its known_hosts file must exist,
/// checked before any connection so the error says what to do.
fn check_ssh_files(mirror: &MirrorConfig) -> Result<()> {
    let name = &mirror.name;
    if let Some(key) = &mirror.ssh_key {
        match ssh::check_key_file(key) {
            Ok(()) => {}
            Err(ssh::KeyFileError::Missing(_)) => bail!(
                "mirror {name}: the SSH key {} does not exist; create it with `git-push-mirror keygen REPO {name}` \
                 or point ssh_key at an existing key",
                key.display()
            ),
            Err(e) => bail!("mirror {name}: {e}"),
        }
    }
    if let Some(known_hosts) = &mirror.known_hosts
        && !known_hosts.exists()
    {
        bail!(
            "mirror {name}: the known_hosts file {} does not exist; check the host's key fingerprints with \
             `git-push-mirror known-hosts {}` and record them with `--accept --repo REPO --mirror {name}`",
            known_hosts.display(),
            split_credentials(&mirror.url).url
        );
    }
    Ok(())
}

/// Warnings and next steps for the admin about a mirror just added or changed:
/// a password that would travel in clear or not at all, SSH files still to create.
pub fn setup_advice(mirror: &MirrorConfig, global: &GlobalConfig, repo: &Path) -> Vec<String> {
    let name = &mirror.name;
    let url = mirror.shown_url();
    let transport = transport_of(&mirror.url);
    let mut notes = Vec::new();
    let origins = crate::access::credential_use::credential_origins(&mirror.url, mirror.lfs.url.as_deref());
    if mirror.password.is_some()
        && let Some(clear) = origins.iter().find(|origin| origin.starts_with("http://"))
    {
        notes.push(format!(
            "warning: {url}: the password will travel in clear text over http (to {clear}); use https"
        ));
    }
    if let Some(why) = crate::access::credential_use::unused_credentials(mirror) {
        notes.push(format!("warning: {url}: {why}"));
    }
    if mirror.password.is_some() && mirror.username.is_none() && matches!(transport, Transport::Https | Transport::Http)
    {
        notes.push(format!(
            "warning: {url}: a password without a user name; most hosts need one \
             (GitHub: the token's owner, GitLab: oauth2): add --username USER"
        ));
    }
    if let Some(SecretSource::Env(var)) = &mirror.password
        && var.starts_with("GIT_")
    {
        notes.push(format!(
            "warning: password_env {var}: variables named GIT_* are removed from the environment of the \
             worker a hook starts; use another name"
        ));
    }
    // Settings of the mirror itself, not inherited from [defaults].
    let own_ssh_settings = (mirror.ssh_key.is_some() && mirror.ssh_key != global.defaults.ssh_key)
        || (mirror.known_hosts.is_some() && mirror.known_hosts != global.defaults.known_hosts);
    let https_somewhere = [Some(mirror.url.as_str()), mirror.lfs.url.as_deref()]
        .into_iter()
        .flatten()
        .any(|url| transport_of(url) == Transport::Https);
    if mirror.ca_file.is_some() && mirror.ca_file != global.defaults.ca_file && !https_somewhere {
        notes.push(format!(
            "note: {url} is not an https URL (nor is its lfs_url): ca_file is used only with https"
        ));
    }
    if transport != Transport::Ssh && own_ssh_settings {
        notes.push(format!(
            "note: {url} is not an SSH URL: ssh_key and known_hosts are used only with SSH"
        ));
    }
    if transport == Transport::Ssh {
        let repo_arg = repo.display();
        match &mirror.ssh_key {
            Some(key) if !key.exists() => notes.push(format!(
                "note: the SSH key {} does not exist yet; create it with: git-push-mirror keygen {repo_arg} {name}",
                key.display()
            )),
            None => notes.push(format!(
                "note: the mirror uses the default SSH keys of the user the worker runs as; \
                 for a key of its own (a deploy key), run: git-push-mirror keygen {repo_arg} {name}"
            )),
            Some(_) => {}
        }
        let known = mirror.known_hosts.as_deref().is_some_and(Path::exists);
        if !known {
            notes.push(format!(
                "note: SSH host keys are checked strictly; to record this host's keys, run: \
                 git-push-mirror known-hosts {} --accept --repo {repo_arg} --mirror {name}",
                split_credentials(&mirror.url).url
            ));
        }
    }
    notes
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
    fn misspelled_schemes_are_refused_with_the_url_that_was_meant() {
        for (typed, meant) in [
            ("htps://u:s3cret@h/a.git", "https://*****:*****@h/a.git"),
            ("https:/h/a.git", "https://h/a.git"),
            ("ssh:/git@h/a.git", "ssh://git@h/a.git"),
            ("http//h/a.git", "http://h/a.git"),
        ] {
            let err = check_transport(typed, &allowed()).unwrap_err().to_string();
            assert_eq!(err, format!("the URL's scheme is misspelled: did you mean {meant}?"));
        }
    }

    #[test]
    fn transports_outside_the_allowlist_are_refused() {
        let only_https = vec!["https".to_string()];
        assert!(check_transport("https://h/a.git", &only_https).is_ok());
        let err = check_transport("git://h/a.git", &only_https).unwrap_err().to_string();
        assert!(err.contains("allowed_protocols"), "{err}");
    }

    fn mirror(url: &str, password: Option<SecretSource>) -> MirrorConfig {
        MirrorConfig {
            username: Some("bot".into()),
            password,
            timeout: std::time::Duration::from_secs(60),
            ..MirrorConfig::example(url)
        }
    }

    fn env_value<'a>(access: &'a RemoteAccess, name: &str) -> Option<&'a OsString> {
        access.env.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The environment config given to git, as (key, value) pairs in order.
    fn config_of(access: &RemoteAccess) -> Vec<(String, String)> {
        let count: usize = env_value(access, "GIT_CONFIG_COUNT")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        (0..count)
            .map(|i| {
                let get = |what: &str| env_value(access, &format!("GIT_CONFIG_{what}_{i}")).unwrap();
                (
                    get("KEY").to_string_lossy().into_owned(),
                    get("VALUE").to_string_lossy().into_owned(),
                )
            })
            .collect()
    }

    fn helpers_of(access: &RemoteAccess) -> Vec<(String, String)> {
        config_of(access)
            .into_iter()
            .filter(|(key, _)| key.starts_with("credential.") && key.ends_with(".helper"))
            .map(|(key, value)| (key, if value.is_empty() { "reset" } else { "ours" }.to_string()))
            .collect()
    }

    /// What the credential helper reads from the pipe an access serves.
    fn read_pipe(pipe: &std::ffi::OsStr) -> String {
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                &format!(
                    "{} | {{ IFS= read -r u && IFS= read -r p && printf '%s|%s' \"$u\" \"$p\"; }}",
                    crate::git::credential::HELPER_READ
                ),
            ])
            .env(crate::git::credential::PIPE_VARIABLE, pipe)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_password_reaches_the_helper_through_a_pipe_and_only_over_http() {
        let global = GlobalConfig::embedded(Path::new("/nonexistent"));
        let secret = || Some(SecretSource::Inline("t0ken".into()));
        let https = remote_access(&mirror("https://h:8443/a.git", secret()), &global).unwrap();
        assert!(CREDENTIAL_HELPER.contains(crate::git::credential::HELPER_READ));
        let pipe = env_value(&https, "GIT_PUSH_MIRROR_CREDENTIALS").expect("the helper is told where to read");
        assert_eq!(read_pipe(pipe), "bot|t0ken");
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            helpers_of(&https),
            vec![
                pair("credential.helper", "reset"),
                pair("credential.https://h:8443.helper", "ours")
            ],
            "helpers are reset first, and ours answers only the mirror's host"
        );
        assert!(
            !https.env.iter().any(|(_, v)| v.to_string_lossy().contains("t0ken")),
            "the password is in no variable"
        );
        assert!(!format!("{https:?}").contains("t0ken"), "Debug hides the secret");
        assert_eq!(https.redact("token t0ken"), "token *****");
        for url in ["file:///srv/a.git", "git://h/a.git", "ssh://h/a.git"] {
            let access = remote_access(&mirror(url, secret()), &global).unwrap();
            assert!(env_value(&access, "GIT_PUSH_MIRROR_CREDENTIALS").is_none(), "{url}");
            assert!(helpers_of(&access).is_empty(), "{url}");
        }
    }

    #[test]
    fn an_lfs_url_gets_the_lfs_endpoint_and_the_password_scoped_to_its_host() {
        let global = GlobalConfig::embedded(Path::new("/nonexistent"));
        let mut ssh = mirror("ssh://git@h/a.git", Some(SecretSource::Inline("t0ken".into())));
        ssh.known_hosts = None;
        ssh.lfs.url = Some("https://lfs.example/a.git/info/lfs".into());
        let access = remote_access(&ssh, &global).unwrap();
        let config = config_of(&access);
        assert!(config.contains(&("lfs.url".into(), "https://lfs.example/a.git/info/lfs".into())));
        assert!(config.contains(&("lfs.locksverify".into(), "false".into())));
        let helpers: Vec<String> = helpers_of(&access).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            helpers,
            vec!["credential.helper", "credential.https://lfs.example.helper"]
        );
        assert!(
            env_value(&access, "GIT_PUSH_MIRROR_CREDENTIALS").is_none(),
            "git itself (the ssh push) is never told where the password is"
        );
        let lfs_pipe = access.lfs_env.iter().find(|(n, _)| n == "GIT_PUSH_MIRROR_CREDENTIALS");
        assert_eq!(lfs_pipe.map(|(_, v)| read_pipe(v)).as_deref(), Some("bot|t0ken"));

        let mut refused = mirror("https://h/a.git", None);
        refused.lfs.url = Some("http://lfs.example/x".into());
        let only_https = GlobalConfig {
            allowed_protocols: vec!["https".into()],
            ..global
        };
        let err = remote_access(&refused, &only_https).unwrap_err();
        assert!(format!("{err:#}").contains("lfs_url"), "{err:#}");
    }

    #[test]
    fn a_ca_file_is_given_to_the_https_origins_of_the_mirror_and_its_lfs_endpoint_only() {
        let global = GlobalConfig::embedded(Path::new("/nonexistent"));
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
        let mut https = mirror("https://gitlab.corp.example/acme/app.git", None);
        https.ca_file = Some(ca.clone());
        https.lfs.url = Some("https://lfs.corp.example:8443/app".into());
        let access = remote_access(&https, &global).unwrap();
        let ca_keys: Vec<(String, String)> = config_of(&access)
            .into_iter()
            .filter(|(key, _)| key.ends_with(".sslCAInfo"))
            .collect();
        let path = ca.to_str().unwrap().to_string();
        assert_eq!(
            ca_keys,
            vec![
                ("http.https://gitlab.corp.example/.sslCAInfo".to_string(), path.clone()),
                ("http.https://lfs.corp.example:8443/.sslCAInfo".to_string(), path),
            ]
        );
        assert_eq!(access.ca_file.as_deref(), Some(ca.as_path()));

        let mut ssh = mirror("ssh://git@h/a.git", None);
        ssh.ca_file = Some(ca.clone());
        let access = remote_access(&ssh, &global).unwrap();
        assert!(!config_of(&access).iter().any(|(key, _)| key.ends_with(".sslCAInfo")));

        https.ca_file = Some(dir.path().join("missing.pem"));
        let err = format!("{:#}", remote_access(&https, &global).unwrap_err());
        assert!(err.contains("cannot read the ca_file"), "{err}");
        std::fs::write(&ca, "not a certificate").unwrap();
        https.ca_file = Some(ca);
        let err = format!("{:#}", remote_access(&https, &global).unwrap_err());
        assert!(err.contains("holds no PEM certificate"), "{err}");
    }

    #[test]
    fn advice_warns_about_passwords_in_clear_and_ssh_steps_left() {
        let global = GlobalConfig::embedded(Path::new("/nonexistent"));
        let repo = Path::new("/srv/git/app.git");
        let secret = || Some(SecretSource::Env("GIT_TOKEN".into()));
        let http = setup_advice(&mirror("http://h/a.git", secret()), &global, repo).join("\n");
        assert!(http.contains("clear text over http"), "{http}");
        assert!(http.contains("GIT_* are removed"), "{http}");
        let mut nameless = mirror("https://h/a.git", Some(SecretSource::Inline("t".into())));
        nameless.username = None;
        let advice = setup_advice(&nameless, &global, repo).join("\n");
        assert!(advice.contains("without a user name"), "{advice}");
        assert!(setup_advice(&mirror("https://h/a.git", None), &global, repo).is_empty());

        let ssh = setup_advice(&mirror("ssh://git@h:2222/a.git", None), &global, repo).join("\n");
        assert!(ssh.contains("keygen /srv/git/app.git m"), "{ssh}");
        assert!(
            ssh.contains("known-hosts ssh://h:2222/a.git --accept --repo /srv/git/app.git --mirror m"),
            "{ssh}"
        );
        let mut keyed = mirror("https://h/a.git", None);
        keyed.ssh_key = Some("/k".into());
        let advice = setup_advice(&keyed, &global, repo).join("\n");
        assert!(advice.contains("not an SSH URL"), "{advice}");
    }

    #[test]
    fn secrets_that_could_inject_credential_fields_are_refused() {
        let err = read_secret(&SecretSource::Inline("a\nurl=https://evil".into())).unwrap_err();
        assert!(err.to_string().contains("line break"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "token\nurl=https://evil\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = read_secret(&SecretSource::File(path)).unwrap_err();
        assert!(err.to_string().contains("more than one line"), "{err}");
    }

    #[test]
    fn secrets_too_short_to_redact_are_refused() {
        for short in ["ent", "äöü", "xy"] {
            let err = read_secret(&SecretSource::Inline(short.into()))
                .unwrap_err()
                .to_string();
            assert!(err.contains("shorter than 4 characters"), "{err}");
            assert!(!err.contains(short), "the error does not show the secret: {err}");
        }
        assert_eq!(read_secret(&SecretSource::Inline("abcd".into())).unwrap(), "abcd");
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
