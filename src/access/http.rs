//! The one HTTP client of our own, for what git does not carry: forge APIs
//! (docs/mirror-side.md) and webhooks (docs/notifications.md). Small and blocking (the worker is synchronous):
//! TLS trusts the system's CA certificates plus a `ca_file`, as git does for a mirror; proxies come
//! from the usual variables (`https_proxy`, `no_proxy`, …); redirects are never followed (they
//! would carry a token elsewhere) but returned; answers are read up to a bound. Nothing here logs
//! a URL, a header or a body: callers redact what they show.

use crate::util::regular_file::{MAX_CONFIG_FILE_SIZE, read_regular};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// The request methods used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
        }
    }
}

/// What a server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `Location`, for a redirect.
    pub location: Option<String>,
    /// The body, at most the bound the request gave.
    pub body: Vec<u8>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status)
    }

    /// The body as one line of text (whitespace runs made single spaces), for messages.
    pub fn one_line(&self) -> String {
        String::from_utf8_lossy(&self.body)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A client with one timeout and one set of trusted CAs.
pub struct HttpClient {
    agent: ureq::Agent,
}

impl HttpClient {
    /// A client whose every request ends within `timeout`, trusting the system's CAs and
    /// `ca_file`'s (a PEM file).
    pub fn new(timeout: Duration, ca_file: Option<&Path>) -> Result<HttpClient, String> {
        let tls = TlsConfig::builder().root_certs(root_certs(ca_file)?).build();
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(concat!("git-push-mirror/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build()
            .new_agent();
        Ok(HttpClient { agent })
    }

    /// Sends one request with `headers` and, for methods that carry one, `body`; reads at most
    /// `max_answer` bytes of the answer. An error is a failure to talk at all (DNS, TCP, TLS,
    /// a timeout), in ureq's words: it may hold the URL, so callers redact it.
    pub fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        max_answer: u64,
    ) -> Result<Answer, String> {
        let response = match method {
            Method::Get => {
                let mut request = self.agent.get(url);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request.call()
            }
            Method::Post | Method::Put | Method::Patch => {
                let mut request = match method {
                    Method::Post => self.agent.post(url),
                    Method::Put => self.agent.put(url),
                    _ => self.agent.patch(url),
                };
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request.send(body.unwrap_or_default())
            }
        };
        let mut response = response.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        let _ = std::io::Read::read_to_end(
            &mut std::io::Read::take(response.body_mut().as_reader(), max_answer),
            &mut body,
        );
        Ok(Answer { status, location, body })
    }
}

/// The CA certificates HTTPS trusts: the system's, plus `ca_file`'s.
fn root_certs(ca_file: Option<&Path>) -> Result<RootCerts, String> {
    let mut certs: Vec<Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    if let Some(file) = ca_file {
        let (pem, _) =
            read_regular(file, MAX_CONFIG_FILE_SIZE).map_err(|e| format!("reading ca_file {}: {e}", file.display()))?;
        let before = certs.len();
        for item in ureq::tls::parse_pem(&pem) {
            if let Ok(PemItem::Certificate(cert)) = item {
                certs.push(cert.to_owned());
            }
        }
        if certs.len() == before {
            return Err(format!("ca_file {} holds no PEM certificate", file.display()));
        }
    }
    Ok(RootCerts::Specific(Arc::new(certs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "not a certificate\n").unwrap();
        let err = HttpClient::new(Duration::from_secs(1), Some(&file)).err().unwrap();
        assert!(err.contains("holds no PEM certificate"), "{err}");
    }

    #[test]
    fn answers_are_shown_on_one_line() {
        let answer = Answer {
            status: 422,
            location: None,
            body: b"{\n  \"message\":   \"x\"\n}".to_vec(),
        };
        assert_eq!(answer.one_line(), "{ \"message\": \"x\" }");
        assert!(!answer.is_success() && !answer.is_redirect());
    }
}
