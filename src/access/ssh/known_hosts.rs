//! Host keys of SSH mirrors, GitLab's "Detect host keys": scan a host with `ssh-keyscan`, show
//! SHA256 fingerprints with `ssh-keygen -l`, record the keys an admin accepted in a known_hosts file.

use super::openssh_tool;
use crate::util::fsutil::write_atomic;
use crate::util::regular_file::{MAX_CONFIG_FILE_SIZE, read_regular_text};
use crate::util::remote_url::{RemoteUrl, Transport};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// The SSH server a mirror URL points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshHost {
    /// Lower case, as ssh looks it up in known_hosts; IPv6 without brackets.
    pub host: String,
    pub port: u16,
}

impl SshHost {
    /// The host of `ssh://[user@]host[:port]/path` or scp-like `[user@]host:path` (and git's
    /// bracketed `[host:port]:path`), as [`RemoteUrl`] reads it.
    pub fn from_url(url: &str) -> Result<SshHost, String> {
        let parsed = RemoteUrl::parse(url);
        if parsed.transport() != &Transport::Ssh {
            return Err(format!(
                "{} is not an SSH URL (expected ssh://[user@]host[:port]/path or [user@]host:path)",
                parsed.redacted()
            ));
        }
        let host = parsed
            .host()
            .ok_or_else(|| format!("cannot read a host and port in {}", parsed.redacted()))?;
        if host.starts_with('-') || host.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(format!("invalid host {host:?} in {}", parsed.redacted()));
        }
        let port = match parsed.port() {
            None => 22,
            Some(0) => return Err(format!("invalid port 0 in {}", parsed.redacted())),
            Some(port) => port,
        };
        Ok(SshHost {
            host: host.to_string(),
            port,
        })
    }

    /// The name ssh looks up in known_hosts: `host`, or `[host]:port` off port 22.
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }
}

/// One host key: its type (`ssh-ed25519`) and base64 blob.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostKey {
    pub key_type: String,
    pub blob: String,
}

impl HostKey {
    /// `name type blob`, a known_hosts line.
    pub fn line(&self, name: &str) -> String {
        format!("{name} {} {}", self.key_type, self.blob)
    }
}

/// Asks the host for its keys (`ssh-keyscan`, every key type it offers).
pub fn scan(host: &SshHost, timeout: Duration) -> Result<Vec<HostKey>> {
    let mut cmd = openssh_tool("ssh-keyscan");
    cmd.arg("-T")
        .arg(timeout.as_secs().max(1).to_string())
        .arg("-p")
        .arg(host.port.to_string())
        .arg("--")
        .arg(&host.host);
    // ssh-keyscan tries each key type in turn; leave it time for all of them.
    let finished = crate::git::run_with_timeout(cmd, timeout * 4 + Duration::from_secs(5))
        .map_err(|e| anyhow::anyhow!("running ssh-keyscan (is openssh-client installed?): {e}"))?;
    let keys = parse_keyscan(&finished.stdout);
    if keys.is_empty() {
        let detail = finished
            .stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| format!(": {l}"))
            .unwrap_or_default();
        bail!(
            "no SSH host key received from {} port {} (is an SSH server listening there?){detail}",
            host.host,
            host.port
        );
    }
    Ok(keys)
}

/// The keys of `ssh-keyscan` output, sorted, without duplicates.
fn parse_keyscan(output: &str) -> Vec<HostKey> {
    let mut keys: Vec<HostKey> = output
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_name, key_type, blob) = (fields.next()?, fields.next()?, fields.next()?);
            Some(HostKey {
                key_type: key_type.to_string(),
                blob: blob.to_string(),
            })
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// `256 SHA256:… (ED25519)`, from `ssh-keygen -l -E sha256`.
pub fn fingerprint(key: &HostKey) -> Result<String> {
    let mut cmd = openssh_tool("ssh-keygen");
    cmd.args(["-l", "-E", "sha256", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .context("running ssh-keygen (is openssh-client installed?)")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error shows up as ssh-keygen's failure below.
        let _ = writeln!(stdin, "{} {}", key.key_type, key.blob);
    }
    let output = child.wait_with_output().context("running ssh-keygen")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().next().unwrap_or("").trim();
    // `256 SHA256:xyz no comment (ED25519)`: keep size, fingerprint and type.
    let mut fields = line.split_whitespace();
    match (fields.next(), fields.next(), line.rsplit_once(' ')) {
        (Some(bits), Some(fp), Some((_, kind))) if output.status.success() && fp.starts_with("SHA256:") => {
            Ok(format!("{bits} {fp} {kind}"))
        }
        _ => bail!(
            "ssh-keygen cannot read the {} host key: {}",
            key.key_type,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }
}

/// The keys recorded for `host` in a known_hosts file (plain entries; a missing file has none).
pub fn recorded(file: &Path, host: &SshHost) -> Result<Vec<HostKey>> {
    let text = match read_regular_text(file, MAX_CONFIG_FILE_SIZE) {
        Ok((text, _)) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let name = host.known_hosts_name();
    let mut keys: Vec<HostKey> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let names = fields.next()?;
            if !names.split(',').any(|n| n == name) {
                return None;
            }
            Some(HostKey {
                key_type: fields.next()?.to_string(),
                blob: fields.next()?.to_string(),
            })
        })
        .collect();
    keys.sort();
    Ok(keys)
}

/// What [`record`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Exactly these keys were already recorded.
    Unchanged,
    /// `removed` old keys of the host were replaced by `added` keys.
    Written { removed: usize, added: usize },
}

/// Makes `keys` the host's keys in `file` (created if missing, mode 644):
/// the host's earlier plain entries are removed, everything else is kept.
pub fn record(file: &Path, host: &SshHost, keys: &[HostKey]) -> Result<Recorded> {
    let mut wanted = keys.to_vec();
    wanted.sort();
    let before = recorded(file, host)?;
    if before == wanted {
        return Ok(Recorded::Unchanged);
    }
    let (text, mode) = match read_regular_text(file, MAX_CONFIG_FILE_SIZE) {
        Ok((text, meta)) => (text, meta.permissions().mode() & 0o7777),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), 0o644),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let (new_text, removed) = replace_host_entries(&text, &host.known_hosts_name(), &wanted);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_atomic(file, new_text.as_bytes(), mode).with_context(|| format!("writing {}", file.display()))?;
    Ok(Recorded::Written {
        removed,
        added: wanted.len(),
    })
}

/// `text` without `name` in any plain entry (a line naming only it goes),
/// with one line per key for `name` appended; and how many entries went.
fn replace_host_entries(text: &str, name: &str, keys: &[HostKey]) -> (String, usize) {
    let mut out = String::with_capacity(text.len() + keys.len() * 100);
    let mut removed = 0;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let (names, rest) = trimmed.split_once(char::is_whitespace).unwrap_or((trimmed, ""));
        // Comments, markers (`@revoked`, `@cert-authority`) and hashed names are kept as they are.
        let plain = !trimmed.is_empty() && !trimmed.starts_with(['#', '@', '|']);
        if plain && names.split(',').any(|n| n == name) {
            removed += 1;
            let others: Vec<&str> = names.split(',').filter(|n| *n != name).collect();
            if !others.is_empty() {
                out.push_str(&format!("{} {rest}\n", others.join(",")));
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    for key in keys {
        out.push_str(&key.line(name));
        out.push('\n');
    }
    (out, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(url: &str) -> SshHost {
        SshHost::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn hosts_and_ports_come_from_every_ssh_url_form() {
        let cases = [
            ("ssh://git@example.com/a.git", "example.com", 22),
            ("ssh://git@Example.COM:2222/a.git", "example.com", 2222),
            ("ssh://example.com:/a.git", "example.com", 22),
            ("git+ssh://h:29418/a", "h", 29418),
            ("ssh://git@[::1]:2222/a.git", "::1", 2222),
            ("git@github.com:acme/app.git", "github.com", 22),
            ("backup:/srv/git/a.git", "backup", 22),
            ("[git@h:2200]:a.git", "h", 2200),
        ];
        for (url, want_host, want_port) in cases {
            let h = host(url);
            assert_eq!((h.host.as_str(), h.port), (want_host, want_port), "{url}");
        }
    }

    #[test]
    fn non_ssh_urls_and_odd_hosts_are_refused() {
        for url in [
            "https://github.com/a.git",
            "/srv/a.git",
            "ext::ssh -oProxyCommand=x h",
            "ssh://-oProxyCommand=x/a",
            "ssh://h:99999/a",
        ] {
            assert!(SshHost::from_url(url).is_err(), "{url}");
        }
    }

    #[test]
    fn known_hosts_names_carry_the_port_off_22() {
        assert_eq!(host("ssh://h/a").known_hosts_name(), "h");
        assert_eq!(host("ssh://h:2222/a").known_hosts_name(), "[h]:2222");
    }

    #[test]
    fn keyscan_output_is_parsed_sorted_and_deduplicated() {
        let out = "# 127.0.0.1:2222 SSH-2.0-OpenSSH_9.2\n\
                   [127.0.0.1]:2222 ssh-rsa AAAArsa\n\
                   [127.0.0.1]:2222 ssh-ed25519 AAAAed\n\
                   [127.0.0.1]:2222 ssh-ed25519 AAAAed\n\
                   garbage\n";
        let keys = parse_keyscan(out);
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].key_type, "ssh-ed25519");
        assert_eq!(keys[1].blob, "AAAArsa");
    }

    #[test]
    fn recording_replaces_only_the_hosts_entries() {
        let text = "# managed by hand\n\
                    other ssh-ed25519 AAAAother\n\
                    [h]:2222 ssh-ed25519 AAAAold\n\
                    [h]:2222,10.0.0.1 ssh-rsa AAAAoldrsa\n\
                    |1|hashed= ssh-ed25519 AAAAhashed\n\
                    @revoked [h]:2222 ssh-rsa AAAArevoked\n";
        let new = [HostKey {
            key_type: "ssh-ed25519".into(),
            blob: "AAAAnew".into(),
        }];
        let (out, removed) = replace_host_entries(text, "[h]:2222", &new);
        assert_eq!(removed, 2);
        assert_eq!(
            out,
            "# managed by hand\n\
             other ssh-ed25519 AAAAother\n\
             10.0.0.1 ssh-rsa AAAAoldrsa\n\
             |1|hashed= ssh-ed25519 AAAAhashed\n\
             @revoked [h]:2222 ssh-rsa AAAArevoked\n\
             [h]:2222 ssh-ed25519 AAAAnew\n"
        );
    }

    #[test]
    fn record_creates_the_file_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/known_hosts");
        let h = host("ssh://h:2222/a");
        let keys = vec![HostKey {
            key_type: "ssh-ed25519".into(),
            blob: "AAAAk".into(),
        }];
        assert_eq!(
            record(&file, &h, &keys).unwrap(),
            Recorded::Written { removed: 0, added: 1 }
        );
        assert_eq!(recorded(&file, &h).unwrap(), keys);
        assert_eq!(record(&file, &h, &keys).unwrap(), Recorded::Unchanged);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }
}
