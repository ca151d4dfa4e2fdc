//! The webhook channel: an HTTP POST of the notice's JSON (with `text`, which Slack, Mattermost
//! and Rocket.Chat incoming webhooks show as is). The URL may come from a file (a Slack-style URL
//! is itself the secret) and a bearer token from another; neither is ever logged or shown: errors
//! name the webhook by scheme and host only. It goes through the project's HTTP client
//! ([`crate::access::http`]): TLS trusts the system's CA certificates plus the `ca_file`, as git
//! does for a mirror; redirects are not followed (they would carry the token elsewhere) but reported.

use crate::access::auth::refuse_if_readable_by_others;
use crate::access::http::Method;
use crate::config::notify::{WebhookSettings, WebhookUrl, shown_webhook_url};
use crate::util::redact::redact;
use crate::util::regular_file::{MAX_CONFIG_FILE_SIZE, read_regular_text};
use std::path::Path;
use std::time::Duration;

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
    let client = crate::access::http::HttpClient::new(timeout, settings.ca_file.as_deref()).map_err(hide)?;
    let bearer = token.as_ref().map(|token| format!("Bearer {token}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer));
    }
    let response = client
        .send(Method::Post, &url, &headers, Some(body), MAX_ANSWER)
        .map_err(|e| hide(format!("posting to {shown}: {e}")))?;
    let status = response.status;
    if response.is_success() {
        return Ok(());
    }
    if response.is_redirect() {
        let target = response
            .location
            .as_deref()
            .map(shown_webhook_url)
            .unwrap_or_else(|| "another URL".to_string());
        return Err(hide(format!(
            "{shown} answered with a redirect (HTTP {status}) to {target}; redirects are not followed \
             (they would take the token elsewhere): give the webhook's final URL"
        )));
    }
    let answer = response.one_line();
    Err(hide(format!(
        "{shown} answered HTTP {status}{}",
        if answer.is_empty() {
            String::new()
        } else {
            format!(": {answer}")
        }
    )))
}
