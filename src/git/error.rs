//! Why a git process failed, said briefly: the useful lines of its stderr, recognised causes (too large, dropped connection), and a hint on how to fix each common one.

use super::RemoteAccess;
use super::certificate::{self, CertificateProblem};
use super::failure::{Failure, FailureClass};
use super::trace::HttpFacts;
use crate::util::remote_url::split_credentials;
use std::time::Duration;

/// Why talking to a mirror failed as a whole. Messages are already redacted.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum GitError {
    #[error("could not run git: {0}")]
    Spawn(String),
    #[error("timed out after {}s; the git process group was killed", .0.as_secs())]
    TimedOut(Duration),
    #[error("{0}")]
    Failed(String),
    /// The mirror refused the push as too large: its pack size limit, or an HTTP 413.
    #[error("{0}")]
    TooLarge(String),
    /// The connection dropped while the pack was being sent: a limit of the mirror or of a
    /// proxy in front of it as often as the network.
    #[error("{0}")]
    Dropped(String),
    /// Talking to the mirror failed as a whole, for a reason of the class it carries.
    #[error("{0}")]
    Remote(Failure),
}

impl GitError {
    /// What kind of failure this is: a remote failure's own class; a timeout, a dropped or too
    /// large pack and local trouble are transient.
    pub fn class(&self) -> FailureClass {
        match self {
            GitError::Remote(failure) => failure.class,
            _ => FailureClass::Transient,
        }
    }
}

impl From<GitError> for Failure {
    fn from(error: GitError) -> Failure {
        match error {
            GitError::Remote(failure) => failure,
            other => Failure::from(other.to_string()),
        }
    }
}

/// Lines git adds to every failed connection; they push the real cause out of a summary.
const GENERIC_LINES: &[&str] = &[
    "Please make sure you have the correct access rights",
    "and the repository exists.",
];

/// The most useful lines of git's stderr, for a stored error: the mirror's own words (its
/// `remote:` lines) first, then git's last lines.
pub(super) fn summarize_stderr(stderr: &str) -> String {
    let words = crate::git::remote_words::remote_lines(stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:") && !GENERIC_LINES.contains(l))
        .filter(|l| !l.starts_with("remote:"))
        // ssh's advice to delete a changed host key; deleting without checking defeats the check.
        .filter(|l| !l.starts_with("ssh-keygen -f ") && *l != "remove with:")
        .collect();
    if let Some(changed) = changed_host_key(stderr) {
        return changed;
    }
    let start = lines.len().saturating_sub(4);
    let mut parts: Vec<String> = words.into_iter().map(|w| format!("remote: {w}")).collect();
    parts.extend(lines[start..].iter().map(|l| crate::git::remote_words::clean(l)));
    if parts.is_empty() {
        "git failed without a message".to_string()
    } else {
        parts.join(" / ")
    }
}

/// What ssh says about a host key that changed since it was recorded, in one sentence: the host,
/// the key it sends now and where the recorded one is. Its other lines (the warning banner, the
/// advice to delete the recorded key) are left out: deleting a key without checking the new one
/// defeats the check.
fn changed_host_key(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().map(str::trim).collect();
    let host = lines.iter().find_map(|l| {
        l.strip_prefix("Host key for ")?
            .split_once(" has changed")
            .map(|(host, _)| host)
    })?;
    let mut said = format!("the SSH host key of {host} has changed");
    // "The fingerprint for the ED25519 key sent by the remote host is" / "SHA256:…."
    let sent = lines.iter().enumerate().find_map(|(i, l)| {
        let kind = l
            .strip_prefix("The fingerprint for the ")?
            .strip_suffix(" key sent by the remote host is")?;
        Some((kind, lines.get(i + 1)?.trim_end_matches('.')))
    });
    if let Some((kind, fingerprint)) = sent {
        said.push_str(&format!(": it now sends the {kind} key {fingerprint}"));
    }
    if let Some(recorded) = lines.iter().find_map(|l| l.strip_prefix("Offending ")) {
        // "ED25519 key in /state/ssh/backup.known_hosts:1"
        said.push_str(&format!("; the recorded one is the {recorded}"));
    }
    Some(said)
}

/// Whether a mirror's words or git's messages say a push was refused for its size: git's and
/// GitHub's `pack exceeds maximum allowed size`, or an HTTP 413 from the server or a proxy.
pub fn says_too_large(text: &str) -> bool {
    const SIGNS: &[&str] = &[
        "pack exceeds maximum allowed size",
        "HTTP 413",
        "error: 413",
        "Request Entity Too Large",
        "Payload Too Large",
    ];
    SIGNS.iter().any(|sign| text.contains(sign))
}

/// The limit a size refusal names, when it names one: GitHub and newer git print
/// `pack exceeds maximum allowed size (2.00 GiB)`.
pub fn size_limit_in(text: &str) -> Option<u64> {
    let at = text.find("maximum allowed size (")? + "maximum allowed size (".len();
    let inside = &text[at..at + text[at..].find(')')?];
    crate::util::size::ByteSize::parse(&inside.replace(' ', "").replace("bytes", "B"))
        .ok()
        .map(|size| size.0)
}

/// Whether git says the connection ended while it was sending (as opposed to never connecting).
pub(super) fn says_dropped(stderr: &str) -> bool {
    const SIGNS: &[&str] = &[
        "the remote end hung up unexpectedly",
        "unexpected disconnect while reading sideband packet",
        "send-pack: unexpected disconnect",
        "Broken pipe",
        "Connection reset by peer",
        "RPC failed",
    ];
    const NEVER_CONNECTED: &[&str] = &[
        "Could not read from remote repository",
        "Could not resolve",
        "Connection refused",
        "Failed to connect",
        "Authentication failed",
        "Permission denied",
        "Host key verification failed",
        "SSL certificate problem",
        "server certificate verification failed",
    ];
    SIGNS.iter().any(|s| stderr.contains(s)) && !NEVER_CONNECTED.iter().any(|s| stderr.contains(s))
}

/// How to fix a failure git reported, when its stderr (or, for HTTP(S), the answers' headers in
/// `http`) says what went wrong.
pub fn failure_hint(access: &RemoteAccess, stderr: &str, http: &HttpFacts) -> Option<String> {
    let has = |needle: &str| stderr.contains(needle);
    let name = if access.mirror.is_empty() {
        "NAME"
    } else {
        access.mirror.as_str()
    };
    let url = split_credentials(&access.url).url;
    let repo = access.repo_arg();
    let asked_for_credentials = has("terminal prompts disabled")
        || has("could not read Username")
        || has("Authentication failed")
        || http.error_status() == Some(401);
    let hint = if let Some(elsewhere) = http.redirected_to.as_deref().filter(|_| asked_for_credentials) {
        format!(
            "the mirror redirected to {elsewhere}, which the credentials are not sent to (they go to the mirror's \
             own host only): if that is where the repository now is, point the mirror there with \
             `git-push-mirror set {repo} {name} --url URL`"
        )
    } else if let Some(status @ (429 | 503)) = http.error_status() {
        let asked = match http.retry_after {
            Some(wait) => format!(
                "it asked to wait {}s (Retry-After); the next attempt waits that long",
                wait.as_secs()
            ),
            None => "the next attempts wait longer than after other failures".to_string(),
        };
        format!("the mirror is limiting requests (HTTP {status}): {asked}, up to `[retry] max`")
    } else if has("REMOTE HOST IDENTIFICATION HAS CHANGED") || (has("Host key for") && has("has changed")) {
        format!(
            "the mirror's SSH host key changed since it was accepted, which may be an attack; nothing was \
             pushed. Only if the host's admin confirms the change: `git-push-mirror known-hosts {url} --repo \
             {repo} --mirror {name}` shows the new fingerprints beside the recorded ones, and with `--accept` \
             records them"
        )
    } else if has("Host key verification failed") {
        format!(
            "the mirror's SSH host key is not known: compare its fingerprints from \
             `git-push-mirror known-hosts {url}` with the ones the host publishes, then record them with \
             `--accept --repo {repo} --mirror {name}`"
        )
    } else if has("Permission denied (publickey") {
        format!(
            "the SSH server refused the key: add the mirror's public key (the ssh_key file + .pub; \
             `git-push-mirror keygen {repo} {name}` creates a key pair) to the account's authorized_keys or as a \
             deploy key with write access"
        )
    } else if has("Authentication failed") || has("error: 401") || has("terminal prompts disabled") {
        credentials_hint(access, "the mirror", &access.url)
    } else if has("error: 403") {
        "the mirror accepted the credentials but refused access: give the token write access to this \
         repository (GitHub: Contents read/write, and Workflows if it has .github/workflows; GitLab: \
         write_repository)"
            .to_string()
    } else if is_certificate_failure(stderr) || certificate::names_another_host(stderr) {
        certificate_hint(access, &certificate::diagnose(stderr, &http.certificate), name, &repo)
    } else if has("the receiving end does not support this repository's hash algorithm")
        // What git before 2.41 says pushing SHA-256 to an empty SHA-1 repository.
        || has("protocol error: unexpected capabilities^{}")
    {
        "the mirror and this repository have different object formats (SHA-1 and SHA-256): git cannot push \
         between them; recreate the mirror with this repository's format (`git rev-parse --show-object-format` \
         in the repository; `git init --bare --object-format=…`) or push to another mirror"
            .to_string()
    } else if has("transport '") && has("' not allowed") {
        "the transport is not in allowed_protocols of the global configuration".to_string()
    } else {
        return None;
    };
    Some(hint)
}

/// What to do when `who` (the mirror, its LFS endpoint) at `url` asked for a user name and
/// password: they were offered to its origin and refused, or none was offered to it (the mirror
/// has none, or they go only to other hosts).
pub fn credentials_hint(access: &RemoteAccess, who: &str, url: &str) -> String {
    let name = if access.mirror.is_empty() {
        "NAME"
    } else {
        access.mirror.as_str()
    };
    let repo = access.repo_arg();
    let origin = crate::util::remote_url::http_origin(url);
    let offered = origin.as_ref().is_some_and(|o| access.credential_origins.contains(o));
    let origin = origin.unwrap_or_else(|| split_credentials(url).url);
    if offered {
        format!(
            "{who} refused the user name and password/token: check `username` and the secret in \
             password_file, password_env or password; the token may have expired or been revoked"
        )
    } else if access.credential_origins.is_empty() {
        format!(
            "{who} ({origin}) asks for a user name and password, and the mirror has none: set them with \
             `git-push-mirror set {repo} {name} --username USER --password-file FILE`"
        )
    } else {
        format!(
            "{who} ({origin}) asks for a user name and password; the mirror's are offered only to {} \
             (its url and lfs_url), never to another host",
            access.credential_origins.join(" and ")
        )
    }
}

/// The hint for a certificate git refused, naming its real problem.
fn certificate_hint(access: &RemoteAccess, problem: &CertificateProblem, name: &str, repo: &str) -> String {
    match problem {
        CertificateProblem::NameMismatch(words) => format!(
            "the mirror's TLS certificate is for another host name ({words}): use a host name the certificate \
             names in the mirror's url (`git-push-mirror set {repo} {name} --url URL`), or have the host's admin \
             give it a certificate for this name; a CA file does not change this"
        ),
        CertificateProblem::Expired => "the mirror's TLS certificate has expired: the host's admin must renew it \
             (a CA file does not change this)"
            .to_string(),
        CertificateProblem::NotYetValid => "the mirror's TLS certificate is not valid yet: check this machine's \
             clock (`date`); otherwise the host's admin installed a certificate whose validity starts later"
            .to_string(),
        CertificateProblem::UnknownCa { issuer } => {
            let in_use = match &access.ca_file {
                Some(ca_file) => format!("the mirror's ca_file {}", ca_file.display()),
                None => "http.sslCAInfo of the repository's git configuration if set, else the system's CA \
                         certificates (`git-push-mirror check` says which)"
                    .to_string(),
            };
            let issuer = issuer
                .as_deref()
                .map(|issuer| format!(", issued by {issuer}"))
                .unwrap_or_default();
            format!(
                "the mirror's TLS certificate{issuer} is not signed by a CA that git trusts (CA in use: {in_use}); \
                 if the host has a CA of its own (a company GitLab), give the CA's certificate (PEM) to the mirror \
                 with `git-push-mirror set {repo} {name} --ca-file FILE`"
            )
        }
    }
}

/// Whether git (curl with GnuTLS or OpenSSL) or git-lfs (Go) says the server's certificate
/// chain could not be verified.
pub fn is_certificate_failure(stderr: &str) -> bool {
    [
        "server certificate verification failed",
        "SSL certificate problem",
        "certificate signed by unknown authority",
        "certificate verify failed",
    ]
    .iter()
    .any(|needle| stderr.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_keep_the_cause_and_drop_boilerplate() {
        let stderr = "fatal: unable to access 'https://h/a.git/': Could not resolve host: h\n\
Please make sure you have the correct access rights\nand the repository exists.\n";
        assert_eq!(
            summarize_stderr(stderr),
            "fatal: unable to access 'https://h/a.git/': Could not resolve host: h"
        );
    }

    #[test]
    fn a_changed_host_key_is_said_in_one_clean_sentence() {
        // Captured from git push over ssh (OpenSSH 9.2) to a host whose key changed.
        let stderr = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n\
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n\
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r\n\
Someone could be eavesdropping on you right now (man-in-the-middle attack)!\r\n\
It is also possible that a host key has just been changed.\r\n\
The fingerprint for the ED25519 key sent by the remote host is\r\n\
SHA256:uF1zJwZS7LI8ZMHYk1bXd9+NI5hLxUESl4VROHXwC7A.\r\n\
Please contact your system administrator.\r\n\
Add correct host key in /state/ssh/backup.known_hosts to get rid of this message.\r\n\
Offending ED25519 key in /state/ssh/backup.known_hosts:1\r\n\
  remove with:\r\n\
  ssh-keygen -f \"/state/ssh/backup.known_hosts\" -R \"[127.0.0.1]:2222\"\r\n\
Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.\r\n\
Host key verification failed.\r\n\
fatal: Could not read from remote repository.\n\n\
Please make sure you have the correct access rights\nand the repository exists.\n";
        assert_eq!(
            summarize_stderr(stderr),
            "the SSH host key of [127.0.0.1]:2222 has changed: it now sends the ED25519 key \
             SHA256:uF1zJwZS7LI8ZMHYk1bXd9+NI5hLxUESl4VROHXwC7A; the recorded one is the ED25519 key in \
             /state/ssh/backup.known_hosts:1"
        );
        // Older OpenSSH: "remove with:" alone would have started the summary.
        let older = "Offending ED25519 key in /k:3\n  remove with:\n  ssh-keygen -f \"/k\" -R \"h\"\n\
                     Host key for h has changed and you have requested strict checking.\n\
                     Host key verification failed.\n";
        assert_eq!(
            summarize_stderr(older),
            "the SSH host key of h has changed; the recorded one is the ED25519 key in /k:3"
        );

        let mut access = RemoteAccess::new("ssh://git@h:2222/a.git", std::time::Duration::from_secs(1), &[]);
        access.mirror = "backup".into();
        access.repo = Some("/srv/git/app.git".into());
        let hint = failure_hint(&access, stderr, &HttpFacts::default()).unwrap();
        assert!(
            hint.contains(
                "`git-push-mirror known-hosts ssh://h:2222/a.git --repo /srv/git/app.git --mirror backup` shows \
                 the new fingerprints beside the recorded ones, and with `--accept` records them"
            ),
            "{hint}"
        );
    }

    #[test]
    fn tls_and_object_format_failures_say_what_to_do() {
        let mut access = RemoteAccess::new("https://h/a.git", std::time::Duration::from_secs(1), &[]);
        access.mirror = "gitlab".into();
        // Captured from git 2.47 (libcurl-gnutls) and git-lfs 3.3 (Go).
        for stderr in [
            "fatal: unable to access 'https://h/a.git/': server certificate verification failed. CAfile: none CRLfile: none\n",
            "fatal: unable to access 'https://h/a.git/': SSL certificate problem: unable to get local issuer certificate\n",
            "batch response: Post \"https://h/a.git/info/lfs/objects/batch\": tls: failed to verify certificate: x509: certificate signed by unknown authority\n",
        ] {
            let hint = failure_hint(&access, stderr, &HttpFacts::default()).unwrap();
            assert!(
                hint.contains("not signed by a CA that git trusts") && hint.contains("set REPO gitlab --ca-file"),
                "{hint}"
            );
            assert!(hint.contains("the system's CA certificates"), "{hint}");
        }
        access.ca_file = Some("/etc/corp-ca.pem".into());
        let hint = failure_hint(&access, "server certificate verification failed", &HttpFacts::default()).unwrap();
        assert!(
            hint.contains("CA in use: the mirror's ca_file /etc/corp-ca.pem"),
            "{hint}"
        );
        for mismatch in [
            "fatal: the receiving end does not support this repository's hash algorithm\n",
            // git 2.39, SHA-256 to an empty SHA-1 repository.
            "fatal: protocol error: unexpected capabilities^{}\nfatal: the remote end hung up unexpectedly\n",
        ] {
            assert!(
                failure_hint(&access, mismatch, &HttpFacts::default())
                    .unwrap()
                    .contains("different object formats")
            );
        }
    }

    #[test]
    fn failures_come_with_a_hint_saying_what_to_do() {
        let mut access = RemoteAccess::new("ssh://git@h:2222/a.git", std::time::Duration::from_secs(1), &[]);
        access.mirror = "backup".into();
        let unknown = "No ED25519 host key is known for [h]:2222 and you have requested strict checking.\r\n\
                       Host key verification failed.\r\nfatal: Could not read from remote repository.\n";
        let hint = failure_hint(&access, unknown, &HttpFacts::default()).unwrap();
        assert!(
            hint.contains("known-hosts ssh://h:2222/a.git") && hint.contains("--mirror backup"),
            "{hint}"
        );
        let changed =
            "@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\nHost key verification failed.\r\n";
        assert!(
            failure_hint(&access, changed, &HttpFacts::default())
                .unwrap()
                .contains("changed")
        );
        let denied = "git@h: Permission denied (publickey).\r\nfatal: Could not read from remote repository.\n";
        assert!(
            failure_hint(&access, denied, &HttpFacts::default())
                .unwrap()
                .contains("deploy key")
        );

        let mut http = RemoteAccess::new("http://h/a.git", std::time::Duration::from_secs(1), &[]);
        http.mirror = "gh".into();
        let failed = "fatal: Authentication failed for 'http://h/a.git/'\n";
        let prompt = "fatal: could not read Username for 'http://h': terminal prompts disabled\n";
        for stderr in [failed, prompt] {
            // No credentials: the hint says none was offered, not that they were refused.
            let hint = failure_hint(&http, stderr, &HttpFacts::default()).unwrap();
            assert!(
                hint.contains("the mirror (http://h) asks for a user name and password, and the mirror has none")
                    && hint.contains("set REPO gh --username USER --password-file FILE"),
                "{hint}"
            );
        }
        http.credential_origins = vec!["http://lfs.h".into()];
        let hint = failure_hint(&http, failed, &HttpFacts::default()).unwrap();
        assert!(hint.contains("offered only to http://lfs.h"), "{hint}");
        http.secrets.push("s".into());
        http.credential_origins = vec!["http://h".into()];
        assert!(
            failure_hint(&http, failed, &HttpFacts::default())
                .unwrap()
                .contains("refused the user name and password")
        );
        let forbidden = "fatal: unable to access 'http://h/a.git/': The requested URL returned error: 403\n";
        assert!(
            failure_hint(&http, forbidden, &HttpFacts::default())
                .unwrap()
                .contains("write access")
        );
        assert_eq!(
            failure_hint(&http, "fatal: repository not found\n", &HttpFacts::default()),
            None
        );
    }

    #[test]
    fn certificate_hints_name_the_real_cause() {
        let mut access = RemoteAccess::new("https://127.0.0.1:1/a.git", std::time::Duration::from_secs(1), &[]);
        access.mirror = "corp".into();
        access.ca_file = Some("/etc/corp-ca.pem".into());
        // Captured from git 2.47 (libcurl-gnutls): a certificate from the mirror's own CA, for another name.
        let other_name = "fatal: unable to access 'https://127.0.0.1:1/a.git/': SSL: certificate subject name (x) \
                          does not match target host name '127.0.0.1'\n";
        let hint = failure_hint(&access, other_name, &HttpFacts::default()).unwrap();
        assert!(
            hint.contains("is for another host name") && hint.contains("subject name (x)"),
            "{hint}"
        );
        assert!(!hint.contains("not signed by a CA"), "{hint}");
        let generic = "fatal: unable to access 'https://127.0.0.1:1/a.git/': server certificate verification failed. \
                       CAfile: /etc/corp-ca.pem CRLfile: none\n";
        let probed = |certificate| HttpFacts {
            certificate,
            ..Default::default()
        };
        let expired = probed(crate::git::trace::CertificateFacts {
            expired: true,
            ..Default::default()
        });
        let hint = failure_hint(&access, generic, &expired).unwrap();
        assert!(
            hint.contains("has expired") && !hint.contains("not signed by a CA"),
            "{hint}"
        );
        let future = probed(crate::git::trace::CertificateFacts {
            not_yet_valid: true,
            ..Default::default()
        });
        assert!(
            failure_hint(&access, generic, &future)
                .unwrap()
                .contains("not valid yet")
        );
    }

    #[test]
    fn a_redirect_elsewhere_and_a_rate_limit_are_named() {
        let mut access = RemoteAccess::new("http://127.0.0.1:18701/x.git", std::time::Duration::from_secs(1), &[]);
        access.mirror = "moved".into();
        access.secrets.push("s".into());
        let redirected = HttpFacts {
            statuses: vec![301, 401],
            redirected_to: Some("http://localhost:18702".into()),
            ..Default::default()
        };
        // Captured from git 2.47: a redirect to a host the credential helper does not answer for.
        let stderr = "fatal: could not read Username for 'http://localhost:18702': terminal prompts disabled\n";
        let hint = failure_hint(&access, stderr, &redirected).unwrap();
        assert!(hint.contains("redirected to http://localhost:18702"), "{hint}");
        assert!(!hint.contains("expired"), "{hint}");
        let limited = HttpFacts {
            statuses: vec![429],
            retry_after: Some(Duration::from_secs(30)),
            ..Default::default()
        };
        let stderr = "fatal: unable to access 'http://127.0.0.1:18701/x.git/': The requested URL returned error: 429\n";
        let hint = failure_hint(&access, stderr, &limited).unwrap();
        assert!(hint.contains("HTTP 429") && hint.contains("wait 30s"), "{hint}");
    }
}
