//! The webhook channel: an HTTP POST of the notice's JSON (with `text`, which Slack, Mattermost
//! and Rocket.Chat incoming webhooks show as is). The URL may come from a file (a Slack-style URL
//! is itself the secret) and a bearer token from another; neither is ever logged or shown: errors
//! name the webhook by scheme and host only. TLS trusts the system's CA certificates plus the
//! `ca_file`, as git does for a mirror; redirects are not followed (they would carry the token
//! elsewhere) but reported.

use crate::access::auth::refuse_if_readable_by_others;
use crate::access::redact::redact;
use crate::config::notify::{WebhookSettings, WebhookUrl, shown_webhook_url};
use crate::util::regular_file::{MAX_CONFIG_FILE_SIZE, read_regular, read_regular_text};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// How much of a refusing server's answer goes into the error.
const MAX_ANSWER: u64 = 300;

/// The first line of a secret file (refused when others may read it).
fn read_secret_file(path: &Path, what: &str) -> Result<String, String> {
    // A regular file of bounded size, read without blocking (never a FIFO that holds the notifier).
    let (text, meta) = read_regular_text(path, MAX_CONFIG_FILE_SIZE)
        .map_err(|e| format!("reading the {what} {}: {e}", path.display()))?;
    refuse_if_readable_by_others(path, std::os::unix::fs::PermissionsExt::mode(&meta.permissions()), what)
        .map_err(|e| format!("{e:#}"))?;
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if line.is_empty() {
        return Err(format!("the {what} {} is empty", path.display()));
    }
    Ok(line)
}

/// The webhook's URL (read from its file when it has one).
pub fn url(settings: &WebhookSettings) -> Result<String, String> {
    match &settings.url {
        WebhookUrl::Inline(url) => Ok(url.clone()),
        WebhookUrl::File(path) => read_secret_file(path, "webhook_url_file"),
    }
}

/// The webhook as people may see it (`https://hooks.slack.com/…`), or its file.
pub fn shown(settings: &WebhookSettings) -> String {
    match &settings.url {
        WebhookUrl::Inline(url) => shown_webhook_url(url),
        WebhookUrl::File(path) => match url(settings) {
            Ok(url) => shown_webhook_url(&url),
            Err(_) => format!("the URL in {}", path.display()),
        },
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

/// POSTs `body` (JSON); returns why it was not taken.
pub fn post(settings: &WebhookSettings, body: &[u8], timeout: Duration) -> Result<(), String> {
    let url = url(settings)?;
    let token = settings
        .token_file
        .as_deref()
        .map(|file| read_secret_file(file, "webhook_token_file"))
        .transpose()?;
    // Whatever an error says, the URL's path and the token stay out of it.
    let path = url
        .split_once("://")
        .map_or("", |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
    let secrets: Vec<&str> = [url.as_str(), path]
        .into_iter()
        .chain(token.as_deref())
        .filter(|s| s.len() > 1)
        .collect();
    let hide = |text: String| redact(&text, &secrets);
    let shown = shown_webhook_url(&url);
    let tls = TlsConfig::builder()
        .root_certs(root_certs(settings.ca_file.as_deref()).map_err(hide)?)
        .build();
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(concat!("git-push-mirror/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls)
        .build()
        .new_agent();
    let mut request = agent.post(&url).header("Content-Type", "application/json");
    if let Some(token) = &token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request
        .send(body)
        .map_err(|e| hide(format!("posting to {shown}: {e}")))?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    if (300..400).contains(&status) {
        let target = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(shown_webhook_url)
            .unwrap_or_else(|| "another URL".to_string());
        return Err(hide(format!(
            "{shown} answered with a redirect (HTTP {status}) to {target}; redirects are not followed \
             (they would take the token elsewhere): give the webhook's final URL"
        )));
    }
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(
        &mut std::io::Read::take(response.body_mut().as_reader(), MAX_ANSWER),
        &mut answer,
    );
    let answer = String::from_utf8_lossy(&answer)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    Err(hide(format!(
        "{shown} answered HTTP {status}{}",
        if answer.is_empty() {
            String::new()
        } else {
            format!(": {answer}")
        }
    )))
}
