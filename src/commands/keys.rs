//! `keygen` and `known-hosts`: an SSH mirror's key pair, and its host keys scanned, shown and recorded; where
//! the state directory keeps them when the configuration names no file.

use crate::commands::{
    EXIT_OK, EXIT_USAGE, Exit, ExitContext, MissingMirror, fleet_mirror_setting, io, load_repo_config, no_such_mirror,
    repo_path,
};
use crate::config::GlobalConfig;
use crate::config::edit::{self as config_edit, MirrorEdit};
use crate::mirror::state::StateStore;
use crate::util::remote_url::{Transport, split_credentials};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Create an ed25519 key pair for an SSH mirror and print the public key
/// (a deploy key to paste on the mirror's host).
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Create an ed25519 key pair (mode 600, no passphrase) for an SSH mirror, set the \
mirror's ssh_key, and print the public key: add it on the mirror's host as a deploy key with write access, \
or to the account's authorized_keys. The key is created where ssh_key already points, else in the state \
directory. An existing key is never overwritten."
)]
pub struct KeygenArgs {
    /// The bare repository (e.g. /srv/git/app.git).
    pub repo: PathBuf,
    /// The SSH mirror's name.
    pub name: String,
}

/// Show an SSH host's key fingerprints (SHA256); with --accept, record the keys for a mirror.
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Ask the SSH host of URL for its host keys (ssh-keyscan) and print their SHA256 \
fingerprints. Compare them with the fingerprints the host's admin publishes; then run again with --accept \
to record the keys in the mirror's known_hosts file (created, and set in its configuration, if it has none) \
or in --file FILE. Nothing is recorded without --accept."
)]
pub struct KnownHostsArgs {
    /// The mirror's SSH URL: ssh://[user@]host[:port]/path or [user@]host:path.
    pub url: String,
    /// Record the keys (without it, only show them).
    #[arg(long)]
    pub accept: bool,
    /// The repository of --mirror.
    #[arg(long, value_name = "REPO", requires = "mirror", conflicts_with = "file")]
    pub repo: Option<PathBuf>,
    /// The mirror whose known_hosts file gets the keys.
    #[arg(long, value_name = "NAME", requires = "repo")]
    pub mirror: Option<String>,
    /// A known_hosts file to record the keys in.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// How long to wait for the host.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub timeout: String,
}

impl KnownHostsArgs {
    /// Where the keys are compared and recorded: a mirror's file, a file given, or nowhere.
    fn target(&self) -> Option<HostKeysTarget> {
        match (&self.repo, &self.mirror, &self.file) {
            (Some(repo), Some(name), None) => Some(HostKeysTarget::Mirror {
                repo: repo.clone(),
                name: name.clone(),
            }),
            (None, None, Some(file)) => Some(HostKeysTarget::File(file.clone())),
            _ => None,
        }
    }
}

pub fn cmd_keygen(
    global: &GlobalConfig,
    args: &KeygenArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    let (repo, name) = (&args.repo, &args.name[..]);
    let repo = repo_path(repo)?;
    let cfg = load_repo_config(global, &repo)?;
    let mirror = cfg
        .mirror(name)
        .ok_or_else(|| no_such_mirror(&repo, name, &cfg, MissingMirror::MayBeAdded))?;
    if crate::util::remote_url::transport_of(&mirror.url) != Transport::Ssh {
        return Err(Exit(
            EXIT_USAGE,
            anyhow::anyhow!(
                "mirror `{name}` does not use SSH ({}): keygen makes keys for ssh://… and user@host:path \
                 mirrors; nothing was created",
                mirror.shown_url()
            ),
        ));
    }
    let store = StateStore::new(&global.state_dir);
    let (key, configure) = match &mirror.ssh_key {
        Some(key) => (key.clone(), false),
        None if cfg.fleet_mirrors.iter().any(|m| m == name) => {
            return Err(fleet_mirror_setting(name, "ssh_key"));
        }
        None => (default_key_path(&store, &repo, name), true),
    };
    if key.symlink_metadata().is_ok() {
        return Err(Exit(
            EXIT_USAGE,
            anyhow::anyhow!(
                "mirror {name} already has the SSH key {}; keygen never overwrites a key \
                 (to replace it, delete it and {} first)",
                key.display(),
                crate::access::ssh::public_key_path(&key).display()
            ),
        ));
    }
    let repo_name = repo
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let public = crate::access::ssh::generate_key(&key, &format!("git-push-mirror:{repo_name}:{name}"))?;
    if configure {
        let edit = MirrorEdit {
            ssh_key: Some(key.clone()),
            ..Default::default()
        };
        config_edit::edit_repo_file(&repo, global, |text| config_edit::set_mirror(text, name, &edit)).usage()?;
    }
    writeln!(out, "{public}").map_err(io)?;
    let _ = writeln!(
        err,
        "created the SSH key {} (mode 600, no passphrase) for mirror {name}{}.\n\
         Add the public key above on the mirror's host: as a deploy key with write access \
         (GitHub, GitLab, Gitea/Forgejo), or in the account's ~/.ssh/authorized_keys.",
        key.display(),
        if configure { " and set it as its ssh_key" } else { "" }
    );
    Ok(EXIT_OK)
}

/// Where `known-hosts` compares and records host keys.
#[derive(Debug)]
enum HostKeysTarget {
    /// A mirror's `known_hosts` (created in the state directory if it has none).
    Mirror {
        repo: PathBuf,
        name: String,
    },
    File(PathBuf),
}

/// A [`HostKeysTarget`] resolved to a file.
struct HostKeysFile {
    path: PathBuf,
    /// `(repo, mirror)` whose configuration must be pointed at `path` once it is written.
    configure: Option<(PathBuf, String)>,
    /// `(repo, mirror)` the keys are for, when a mirror was named.
    mirror: Option<(PathBuf, String)>,
}

fn resolve_host_keys_target(
    global: &GlobalConfig,
    target: HostKeysTarget,
    host: &crate::access::ssh::known_hosts::SshHost,
) -> Result<HostKeysFile, Exit> {
    let (repo, name) = match target {
        HostKeysTarget::File(path) => {
            let path = std::path::absolute(&path).context("resolving --file").usage()?;
            return Ok(HostKeysFile {
                path,
                configure: None,
                mirror: None,
            });
        }
        HostKeysTarget::Mirror { repo, name } => (repo_path(&repo)?, name),
    };
    let cfg = load_repo_config(global, &repo)?;
    let usage = |message: String| Exit(EXIT_USAGE, anyhow::anyhow!(message));
    let mirror = cfg
        .mirror(&name)
        .ok_or_else(|| no_such_mirror(&repo, &name, &cfg, MissingMirror::MayBeAdded))?;
    let mirror_host = crate::access::ssh::known_hosts::SshHost::from_url(&mirror.url)
        .map_err(|e| usage(format!("mirror {name} does not use SSH: {e}")))?;
    if &mirror_host != host {
        return Err(usage(format!(
            "mirror {name} pushes to {}, not to {}; give the mirror's URL ({})",
            mirror_host.known_hosts_name(),
            host.known_hosts_name(),
            split_credentials(&mirror.url).url
        )));
    }
    Ok(match &mirror.known_hosts {
        Some(path) => HostKeysFile {
            path: path.clone(),
            configure: None,
            mirror: Some((repo, name)),
        },
        None if cfg.fleet_mirrors.contains(&name) => return Err(fleet_mirror_setting(&name, "known_hosts")),
        None => {
            let store = StateStore::new(&global.state_dir);
            HostKeysFile {
                path: default_known_hosts_path(&store, &repo, &name),
                configure: Some((repo.clone(), name.clone())),
                mirror: Some((repo, name)),
            }
        }
    })
}

pub fn cmd_known_hosts(
    global: &GlobalConfig,
    args: &KnownHostsArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    let (url, accept, target, timeout) = (&args.url[..], args.accept, args.target(), &args.timeout[..]);
    use crate::access::ssh::known_hosts::{self, Recorded, SshHost};
    let host = SshHost::from_url(url).map_err(|e| Exit(EXIT_USAGE, anyhow::anyhow!(e)))?;
    let timeout = humantime::parse_duration(timeout)
        .with_context(|| format!("invalid --timeout {timeout:?} (try \"10s\")"))
        .usage()?;
    if accept && target.is_none() {
        return Err(Exit(
            EXIT_USAGE,
            anyhow::anyhow!("--accept needs where to record the keys: --repo REPO --mirror NAME, or --file FILE"),
        ));
    }
    let file = target.map(|t| resolve_host_keys_target(global, t, &host)).transpose()?;
    let keys = known_hosts::scan(&host, timeout)?;
    let recorded = match &file {
        Some(file) => known_hosts::recorded(&file.path, &host)?,
        None => Vec::new(),
    };
    let name = host.known_hosts_name();
    // --accept without a target was refused above.
    let has_target = file.is_some();
    let Some(file) = file.filter(|_| accept) else {
        // Only shown: each key's state is the file's state now.
        let labels = match has_target {
            true => [
                "recorded",
                "not recorded",
                "recorded, but no longer offered by the host",
            ],
            false => [""; 3],
        };
        print_host_keys(&name, &keys, &recorded, labels, out)?;
        let target = if has_target {
            ""
        } else {
            " --repo REPO --mirror NAME (or --file FILE)"
        };
        let _ = writeln!(
            err,
            "nothing recorded: compare these fingerprints with the ones the host's admin publishes, \
             then run again with --accept{target}"
        );
        return Ok(EXIT_OK);
    };
    if file.configure.is_some()
        && let Some(dir) = file.path.parent()
    {
        crate::access::ssh::create_private_dir(dir)?;
    }
    // Recorded first, so each key's line says what is true once the command is done.
    let outcome = known_hosts::record(&file.path, &host, &keys)?;
    let labels = [
        "already recorded",
        "recorded now",
        "removed: no longer offered by the host",
    ];
    print_host_keys(&name, &keys, &recorded, labels, out)?;
    match outcome {
        Recorded::Unchanged => writeln!(out, "all of them were already recorded in {}", file.path.display()),
        Recorded::Written { removed, added } => {
            let replaced = if removed > 0 {
                format!(", replacing {removed} old one(s)")
            } else {
                String::new()
            };
            writeln!(
                out,
                "recorded {added} key(s) of {name} in {}{replaced}",
                file.path.display()
            )
        }
    }
    .map_err(io)?;
    if let Some((repo, mirror)) = &file.configure {
        let edit = MirrorEdit {
            known_hosts: Some(file.path.clone()),
            ..Default::default()
        };
        config_edit::edit_repo_file(repo, global, |text| config_edit::set_mirror(text, mirror, &edit)).usage()?;
        writeln!(out, "set known_hosts of mirror {mirror} to {}", file.path.display()).map_err(io)?;
    }
    match &file.mirror {
        Some((repo, mirror)) => crate::commands::retry_after_fix(global, repo, mirror, |_| {}, err)?,
        None if matches!(outcome, Recorded::Written { .. }) => {
            let _ = writeln!(
                err,
                "mirrors that use {} retry at their next attempt; to retry one now: git-push-mirror sync REPO \
                 --mirror NAME",
                file.path.display()
            );
        }
        None => {}
    }
    Ok(EXIT_OK)
}

/// The host's keys, one line each, labelled `[recorded, not recorded, recorded but no longer
/// offered]` (empty labels: fingerprints only).
fn print_host_keys(
    name: &str,
    keys: &[crate::access::ssh::known_hosts::HostKey],
    recorded: &[crate::access::ssh::known_hosts::HostKey],
    [known, new, old]: [&str; 3],
    out: &mut dyn Write,
) -> Result<(), Exit> {
    use crate::access::ssh::known_hosts::fingerprint;
    writeln!(out, "host keys of {name}:").map_err(io)?;
    for key in keys {
        let state = if recorded.contains(key) { known } else { new };
        let line = format!("  {}  {state}", fingerprint(key)?);
        writeln!(out, "{}", line.trim_end()).map_err(io)?;
    }
    for gone in recorded.iter().filter(|k| !keys.contains(k)) {
        writeln!(out, "  {}  {old}", fingerprint(gone)?).map_err(io)?;
    }
    Ok(())
}

/// Where `keygen` puts a mirror's key pair when its configuration names none:
/// `<state>/repos/<repo>/ssh/<mirror>_ed25519` (and `.pub`).
pub fn default_key_path(store: &StateStore, repo: &Path, mirror: &str) -> PathBuf {
    store.repo_dir(repo).join("ssh").join(format!("{mirror}_ed25519"))
}

/// Where `known-hosts --accept` records a mirror's host keys when its
/// configuration names no `known_hosts` file.
pub fn default_known_hosts_path(store: &StateStore, repo: &Path, mirror: &str) -> PathBuf {
    store.repo_dir(repo).join("ssh").join(format!("{mirror}.known_hosts"))
}
