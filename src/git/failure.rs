//! What kind of failure a failed mirror update is, which decides when trying again is worth it:
//! `permanent` (a person must act: credentials refused, the repository missing, a changed host
//! key, other object formats, a ref refused by the mirror's rules), `transient` (timeouts,
//! connections refused or reset, server errors, a dropped pack: the next attempt may work) or
//! `rate_limited` (HTTP 429 or 503: the mirror asked us to wait).

use super::trace::HttpFacts;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The kind of a failure (see the module documentation). Stored in the pair's state and shown
/// by `status --json` as `failure_class`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    Permanent,
    Transient,
    RateLimited,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Permanent => "permanent",
            FailureClass::Transient => "transient",
            FailureClass::RateLimited => "rate_limited",
        }
    }
}

/// Why a mirror could not be reached or updated as a whole: the words (redacted), their class,
/// and how long the mirror asked to be left alone (`Retry-After`), when it said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub class: FailureClass,
    pub retry_after: Option<Duration>,
    /// The mirror said the repository does not exist (see [`says_repository_missing`]): one
    /// with `create` set is created (docs/mirror-side.md).
    pub repository_missing: bool,
}

impl Failure {
    pub fn new(message: impl Into<String>, class: FailureClass) -> Failure {
        Failure {
            message: message.into(),
            class,
            retry_after: None,
            repository_missing: false,
        }
    }
}

/// A failure with nothing known about it is transient: retried with the usual backoff.
impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::new(message, FailureClass::Transient)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Words of git, ssh and forges that mean a person must act before anything can work, besides a
/// refused login ([`AUTHENTICATION_SIGNS`]) and a missing repository ([`MISSING_SIGNS`]).
const PERMANENT_SIGNS: &[&str] = &[
    // git daemon, for a path it does not serve.
    "no such repository",
    "repository not exported",
    // Object formats (SHA-1 / SHA-256) differ.
    "does not support this repository's hash algorithm",
    "protocol error: unexpected capabilities^{}",
    "git cannot push between object formats",
    // TLS certificates git refuses.
    "server certificate verification failed",
    "SSL certificate problem",
    "certificate subject name",
    "no alternative certificate subject name matches",
    // Our own refusals.
    "' not allowed",
];

/// Words that mean a login was refused or a host is not trusted.
const AUTHENTICATION_SIGNS: &[&str] = &[
    // Credentials refused or missing (HTTP).
    "Authentication failed",
    "terminal prompts disabled",
    "could not read Username",
    "could not read Password",
    "Invalid username or password",
    // SSH: key refused, host key unknown or changed.
    "Permission denied (publickey",
    "Host key verification failed",
    "REMOTE HOST IDENTIFICATION HAS CHANGED",
];

/// The words of git, ssh hosts and forges for a repository that is not there.
const MISSING_SIGNS: &[&str] = &[
    // GitHub (SSH and HTTPS), Bitbucket, git over HTTP: `remote: Repository not found.`
    "Repository not found",
    "repository not found",
    // A plain SSH host or a local path: `fatal: '/srv/x.git' does not appear to be a git repository`.
    "does not appear to be a git repository",
    // GitLab (SSH and HTTPS).
    "The project you were looking for could not be found",
    // Gitea and Forgejo.
    "either does not exist or you are not authorized",
    "either does not exist or you do not have access",
    // Dumb HTTP.
    "not found: did you run git update-server-info",
];

/// git over HTTP: `fatal: repository 'https://h/a.git/' not found`.
fn says_http_repository_not_found(stderr: &str) -> bool {
    stderr
        .lines()
        .any(|line| line.contains("repository '") && line.trim_end().ends_with("' not found"))
}

/// The class of a failure of git talking to a mirror, from its stderr and the HTTP answers.
pub fn classify(stderr: &str, http: &HttpFacts) -> FailureClass {
    match http.error_status() {
        Some(429 | 503) => return FailureClass::RateLimited,
        Some(401 | 403 | 404 | 410) => return FailureClass::Permanent,
        _ => {}
    }
    if ["error: 429", "error: 503"].iter().any(|s| stderr.contains(s)) {
        return FailureClass::RateLimited;
    }
    let signs = AUTHENTICATION_SIGNS.iter().chain(MISSING_SIGNS).chain(PERMANENT_SIGNS);
    if ["error: 401", "error: 403", "error: 404"]
        .iter()
        .chain(signs)
        .any(|s| stderr.contains(s))
        || says_http_repository_not_found(stderr)
    {
        return FailureClass::Permanent;
    }
    FailureClass::Transient
}

/// Whether a failed git command says the mirror's repository does not exist (and not that the
/// login was refused): HTTP 404, or the words of git, GitHub, GitLab, Gitea and plain SSH hosts for
/// a missing repository. Never when the last answer was HTTP 401 or 403, a login was refused or a
/// host key is not trusted.
pub fn says_repository_missing(stderr: &str, http: &HttpFacts) -> bool {
    // The last refusal decides: git asks without credentials first (401), then with them (404).
    if matches!(http.error_status(), Some(401 | 403 | 407))
        || AUTHENTICATION_SIGNS.iter().any(|sign| stderr.contains(sign))
    {
        return false;
    }
    http.error_status() == Some(404)
        || says_http_repository_not_found(stderr)
        || MISSING_SIGNS.iter().any(|sign| stderr.contains(sign))
}

/// Why a single ref was not taken, said by the mirror or by git: a refusal by the mirror's
/// rules (a hook, protected branches, a size limit, fsck) is permanent; a lost race, a lock
/// held on the mirror, or a hook that could not reach its own service is transient.
pub fn refusal_class(reason: &str) -> FailureClass {
    const TRANSIENT: &[&str] = &[
        // git's own: the mirror moved meanwhile (a lease), or git did not say.
        "stale info",
        "fetch first",
        "already exists",
        "no result for this ref",
        // receive-pack's: a lock held by another push, a write that failed.
        "failed to lock",
        "cannot lock",
        "unable to lock",
        "failed to update ref",
        "failed to write",
        // A hook that failed for its own reasons (GitLab: "Internal API unreachable").
        "unreachable",
        "try again",
        "temporar",
        "timed out",
        "timeout",
    ];
    let lower = reason.to_ascii_lowercase();
    if TRANSIENT.iter().any(|sign| lower.contains(sign)) {
        FailureClass::Transient
    } else {
        FailureClass::Permanent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(statuses: &[u16]) -> HttpFacts {
        HttpFacts {
            statuses: statuses.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn a_missing_repository_is_told_from_a_refused_login() {
        // Captured from git 2.47 against a plain SSH host, GitHub, GitLab, Gitea and smart HTTP.
        for stderr in [
            "fatal: '/srv/mirrors/app.git' does not appear to be a git repository\nfatal: Could not read from remote repository.\n",
            "ERROR: Repository not found.\nfatal: Could not read from remote repository.\n",
            "remote: The project you were looking for could not be found or you don't have permission to view it.\nfatal: repository 'https://gitlab.example.com/a/b.git/' not found\n",
            "fatal: repository 'https://127.0.0.1:1/a/b.git/' not found\n",
        ] {
            assert!(says_repository_missing(stderr, &HttpFacts::default()), "{stderr}");
        }
        assert!(says_repository_missing("fatal: unable to access\n", &http(&[404])));
        // Asked without credentials first, then with them: the repository is missing.
        assert!(says_repository_missing(
            "fatal: repository 'https://h/a.git/' not found\n",
            &http(&[401, 404])
        ));
        for (stderr, statuses) in [
            ("fatal: Authentication failed for 'https://h/a.git/'\n", &[][..]),
            (
                "git@h: Permission denied (publickey).\r\nfatal: Could not read from remote repository.\n",
                &[],
            ),
            ("Host key verification failed.\r\n", &[]),
            (
                "remote: Repository not found.\nfatal: repository 'https://h/a.git/' not found\n",
                &[404, 401],
            ),
            (
                "fatal: unable to access 'https://h/a.git/': The requested URL returned error: 403\n",
                &[403],
            ),
            (
                "fatal: unable to access 'https://h/a.git/': Could not resolve host: h\n",
                &[],
            ),
        ] {
            assert!(!says_repository_missing(stderr, &http(statuses)), "{stderr}");
        }
    }

    #[test]
    fn failures_a_person_must_fix_are_permanent() {
        // Captured from git 2.47 and OpenSSH 9.2.
        for stderr in [
            "fatal: Authentication failed for 'http://127.0.0.1:1/a.git/'\n",
            "fatal: could not read Username for 'http://localhost:18702': terminal prompts disabled\n",
            "git@h: Permission denied (publickey).\r\nfatal: Could not read from remote repository.\n",
            "Host key verification failed.\r\nfatal: Could not read from remote repository.\n",
            "fatal: repository 'https://h/a.git/' not found\n",
            "fatal: '/srv/none.git' does not appear to be a git repository\n",
            "fatal: remote error: access denied or repository not exported: /none.git\n",
            "fatal: remote error: no such repository: /does-not-exist.git\n",
            "fatal: the receiving end does not support this repository's hash algorithm\n",
            "fatal: unable to access 'https://h/a.git/': server certificate verification failed. CAfile: none CRLfile: none\n",
            "fatal: unable to access 'https://h/': SSL: certificate subject name (x) does not match target host name 'h'\n",
            "fatal: transport 'ext' not allowed\n",
        ] {
            assert_eq!(
                classify(stderr, &HttpFacts::default()),
                FailureClass::Permanent,
                "{stderr}"
            );
        }
        assert_eq!(classify("fatal: x", &http(&[401])), FailureClass::Permanent);
        assert_eq!(classify("fatal: x", &http(&[301, 404])), FailureClass::Permanent);
    }

    #[test]
    fn rate_limits_are_429_and_503() {
        let stderr = "fatal: unable to access 'http://h/a.git/': The requested URL returned error: 429\n";
        assert_eq!(classify(stderr, &HttpFacts::default()), FailureClass::RateLimited);
        assert_eq!(classify("fatal: x", &http(&[503])), FailureClass::RateLimited);
        assert_eq!(
            classify("The requested URL returned error: 503", &HttpFacts::default()),
            FailureClass::RateLimited
        );
    }

    #[test]
    fn everything_else_is_transient() {
        for stderr in [
            "fatal: unable to access 'http://127.0.0.1:9/a.git/': Failed to connect to 127.0.0.1 port 9: Connection refused\n",
            "ssh: connect to host h port 22: Connection timed out\r\nfatal: Could not read from remote repository.\n",
            "error: RPC failed; curl 56 Recv failure: Connection reset by peer\nfatal: the remote end hung up unexpectedly\n",
            "fatal: unable to access 'https://h/a.git/': The requested URL returned error: 502\n",
        ] {
            assert_eq!(
                classify(stderr, &HttpFacts::default()),
                FailureClass::Transient,
                "{stderr}"
            );
        }
        assert_eq!(classify("fatal: x", &http(&[500])), FailureClass::Transient);
    }

    #[test]
    fn refusals_by_the_mirrors_rules_are_permanent_and_races_transient() {
        for reason in [
            "pre-receive hook declined: remote: GH006: Protected branch update failed for refs/heads/main.",
            "deny updating a hidden ref",
            "pack exceeds maximum allowed size (2.00 GiB)",
            "the mirror acknowledged refs/heads/main but does not have it",
        ] {
            assert_eq!(refusal_class(reason), FailureClass::Permanent, "{reason}");
        }
        for reason in [
            "stale info",
            "git reported no result for this ref",
            "failed to lock",
            "pre-receive hook declined: remote: GitLab: Internal API unreachable",
        ] {
            assert_eq!(refusal_class(reason), FailureClass::Transient, "{reason}");
        }
    }
}
