//! Why a mirror's TLS certificate was refused: signed by a CA git does not trust, made for
//! another host name, expired, or not valid yet. Each needs another fix, and only the first is
//! fixed by a CA file.
//!
//! curl built with OpenSSL names the cause; curl built with GnuTLS (Debian's and Ubuntu's git)
//! says only "server certificate verification failed" for all but the host name. For that case
//! [`probe`] looks at the certificate once more with verification off, as an anonymous
//! `ls-remote` that carries no credentials, no configured headers and follows no redirect, and
//! reads curl's own checks of the dates from its trace. Nothing it receives is used but those
//! lines.

use super::RemoteAccess;
use super::process::run_with_timeout;
use super::trace::{CertificateFacts, Trace};
use std::time::Duration;

/// What is wrong with a certificate git refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertificateProblem {
    /// Its chain does not end at a CA git trusts.
    UnknownCa {
        issuer: Option<String>,
    },
    /// It names other hosts: curl's words.
    NameMismatch(String),
    Expired,
    NotYetValid,
}

/// Whether git says the certificate names another host (curl with GnuTLS, and with OpenSSL).
pub fn names_another_host(stderr: &str) -> bool {
    host_mismatch_words(stderr).is_some()
}

fn host_mismatch_words(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .find(|line| {
            line.contains("does not match target host name")
                || line.contains("no alternative certificate subject name matches")
        })
        .map(|line| {
            let line = line.trim();
            // `fatal: unable to access 'URL': SSL: certificate subject name (x) does not match …`
            line.rsplit_once("': ").map_or(line, |(_, words)| words).to_string()
        })
}

/// The problem git's words (and, when they are not specific, a [`probe`]'s facts) show. GnuTLS
/// checks the host name only after the chain and the dates: "verification failed" with valid
/// dates is the CA, whatever names the certificate holds.
pub fn diagnose(stderr: &str, facts: &CertificateFacts) -> CertificateProblem {
    if let Some(words) = host_mismatch_words(stderr) {
        return CertificateProblem::NameMismatch(words);
    }
    if facts.expired || stderr.contains("certificate has expired") {
        return CertificateProblem::Expired;
    }
    if facts.not_yet_valid || stderr.contains("certificate is not yet valid") {
        return CertificateProblem::NotYetValid;
    }
    CertificateProblem::UnknownCa {
        issuer: facts.issuer.clone(),
    }
}

/// Whether git's words leave the cause open (GnuTLS's one message for every chain problem).
pub fn needs_probe(stderr: &str) -> bool {
    stderr.contains("server certificate verification failed")
}

/// How long the second look at a certificate may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Looks at the mirror's certificate with verification off and reads what curl found wrong with
/// its dates and names (see the module documentation). Empty facts when it cannot look.
pub fn probe(access: &RemoteAccess) -> CertificateFacts {
    let mut cmd = super::git_command();
    // No configuration but git's defaults: the admin's headers (`http.extraHeader`), cookies
    // and credential helpers must not reach a server nobody verified.
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_ALLOW_PROTOCOL", "https")
        .env_remove("GIT_SSL_CAINFO")
        .current_dir("/")
        .args([
            "-c",
            "http.sslVerify=false",
            "-c",
            "http.followRedirects=false",
            "-c",
            "credential.helper=",
            "-c",
            "http.extraHeader=",
            "ls-remote",
            "--heads",
            "--",
        ])
        .arg(&access.url);
    let Some(trace) = Trace::start(&mut cmd, &access.url, false) else {
        return CertificateFacts::default();
    };
    let _ = run_with_timeout(cmd, PROBE_TIMEOUT.min(access.timeout));
    trace.http().certificate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_words_that_name_the_cause_are_enough() {
        // Captured from git 2.47 with libcurl-gnutls, and git with libcurl-openssl.
        let gnutls_name = "fatal: unable to access 'https://127.0.0.1:1/x.git/': SSL: certificate subject name (x) \
                           does not match target host name '127.0.0.1'\n";
        assert!(names_another_host(gnutls_name) && !needs_probe(gnutls_name));
        assert_eq!(
            diagnose(gnutls_name, &CertificateFacts::default()),
            CertificateProblem::NameMismatch(
                "SSL: certificate subject name (x) does not match target host name '127.0.0.1'".into()
            )
        );
        let openssl_expired =
            "fatal: unable to access 'https://h/': SSL certificate problem: certificate has expired\n";
        assert_eq!(
            diagnose(openssl_expired, &CertificateFacts::default()),
            CertificateProblem::Expired
        );
        let openssl_future =
            "fatal: unable to access 'https://h/': SSL certificate problem: certificate is not yet valid\n";
        assert_eq!(
            diagnose(openssl_future, &CertificateFacts::default()),
            CertificateProblem::NotYetValid
        );
    }

    #[test]
    fn gnutls_generic_words_are_resolved_by_the_probes_facts() {
        let generic = "fatal: unable to access 'https://h/x.git/': server certificate verification failed. \
                       CAfile: /ca.pem CRLfile: none\n";
        assert!(needs_probe(generic));
        let expired = CertificateFacts {
            expired: true,
            ..Default::default()
        };
        assert_eq!(diagnose(generic, &expired), CertificateProblem::Expired);
        let issued = CertificateFacts {
            issuer: Some("CN=corp CA".into()),
            ..Default::default()
        };
        assert_eq!(
            diagnose(generic, &issued),
            CertificateProblem::UnknownCa {
                issuer: Some("CN=corp CA".into())
            }
        );
    }
}
