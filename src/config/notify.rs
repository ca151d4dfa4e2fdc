//! `[notify]` of the global file: who is told when a mirror fails, recovers or needs a person
//! (docs/notifications.md): a command, a webhook, mail through sendmail, and the events, digest
//! window, hourly limit and reminders that shape what they get.

use crate::util::remote_url::{Transport, split_credentials, transport_of};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a notice is about.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A mirror reached `failed` (once per incident; again with `remind_every`).
    Failed,
    /// A mirror told about as failed finished an update again.
    Recovered,
    /// The mirror refused refs it had not refused before.
    Refused,
    /// Refs newly diverged on the mirror (`keep_divergent_refs`).
    Divergent,
    /// A corrupt state or spool file was moved aside to `bad/`.
    Quarantined,
    /// A repository's configuration cannot be read.
    ConfigError,
}

impl Event {
    pub const ALL: [Event; 6] = [
        Event::Failed,
        Event::Recovered,
        Event::Refused,
        Event::Divergent,
        Event::Quarantined,
        Event::ConfigError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Failed => "failed",
            Event::Recovered => "recovered",
            Event::Refused => "refused",
            Event::Divergent => "divergent",
            Event::Quarantined => "quarantined",
            Event::ConfigError => "config_error",
        }
    }

    pub fn parse(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|event| event.as_str() == name)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the webhook's URL comes from: inline, or a file (a Slack-style URL is itself the secret).
#[derive(Clone, PartialEq, Eq)]
pub enum WebhookUrl {
    Inline(String),
    /// The first line of the file (not group/world readable).
    File(PathBuf),
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebhookUrl::Inline(url) => f.debug_tuple("Inline").field(&shown_webhook_url(url)).finish(),
            WebhookUrl::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// A webhook URL as it may be shown or logged: scheme and host only, since the path of a Slack,
/// Mattermost or Rocket.Chat incoming webhook is its secret.
pub fn shown_webhook_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}/…")
}

/// The webhook channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSettings {
    pub url: WebhookUrl,
    /// Sent as `Authorization: Bearer <token>`.
    pub token_file: Option<PathBuf>,
    /// CA certificates (PEM) trusted besides the system's, as a mirror's `ca_file`.
    pub ca_file: Option<PathBuf>,
}

/// The mail channel: plain text through `sendmail -t`, as cron and smartd send theirs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailSettings {
    pub to: Vec<String>,
    /// `From:`; without it the MTA sets its own (the worker's user).
    pub from: Option<String>,
    /// The program and its arguments; it reads the message, headers first, on stdin.
    pub sendmail_command: Vec<String>,
}

/// Where mail goes by default: the sendmail every MTA installs (postfix, exim, msmtp-mta).
pub const DEFAULT_SENDMAIL: [&str; 3] = ["/usr/sbin/sendmail", "-t", "-oi"];

/// `[notify]`, checked; with no channel, nobody is told (the default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifySettings {
    /// A program given each notice as one JSON object on stdin.
    pub command: Option<PathBuf>,
    pub webhook: Option<WebhookSettings>,
    pub email: Option<MailSettings>,
    /// The events told; the others are not.
    pub events: BTreeSet<Event>,
    /// Wall-clock limit of one delivery (the command and sendmail are killed with their process group).
    pub timeout: Duration,
    /// How long notices wait for others with the same cause, to go out as one digest.
    pub digest_window: Duration,
    /// Notices per hour; more wait in the outbox and go out, digested, when the hour allows.
    pub max_per_hour: u32,
    /// Tell a mirror still failing again after this long; `None`: once per incident.
    pub remind_every: Option<Duration>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            command: None,
            webhook: None,
            email: None,
            events: Event::ALL.into_iter().collect(),
            timeout: Duration::from_secs(30),
            digest_window: Duration::from_secs(30),
            max_per_hour: 20,
            remind_every: None,
        }
    }
}

impl NotifySettings {
    /// Whether any channel is configured.
    pub fn is_configured(&self) -> bool {
        self.command.is_some() || self.webhook.is_some() || self.email.is_some()
    }

    /// Whether notices of `event` are wanted.
    pub fn tells(&self, event: Event) -> bool {
        self.is_configured() && self.events.contains(&event)
    }
}

/// `[notify]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotify {
    command: Option<PathBuf>,
    webhook_url: Option<String>,
    webhook_url_file: Option<PathBuf>,
    webhook_token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    email_to: Option<Vec<String>>,
    email_from: Option<String>,
    sendmail_command: Option<Vec<String>>,
    events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::raw::duration")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "super::raw::duration")]
    digest_window: Option<Duration>,
    max_per_hour: Option<u32>,
    #[serde(default, deserialize_with = "super::raw::duration")]
    remind_every: Option<Duration>,
}

/// Checks `[notify]`; relative paths are relative to `dir` (the global file's directory).
pub(super) fn resolve(raw: RawNotify, dir: &Path) -> Result<NotifySettings, String> {
    let path = |key: &str, p: PathBuf| crate::config::in_dir(dir, key, &p);
    let mut settings = NotifySettings {
        command: raw.command.map(|p| path("command", p)).transpose()?,
        ..NotifySettings::default()
    };
    let webhook_url = match (raw.webhook_url, raw.webhook_url_file) {
        (Some(_), Some(_)) => return Err("set only one of `webhook_url` and `webhook_url_file`".into()),
        (Some(url), None) => {
            check_webhook_url(&url)?;
            Some(WebhookUrl::Inline(url))
        }
        (None, Some(file)) => {
            let file = path("webhook_url_file", file)?;
            check_secret_file(&file, "webhook_url_file")?;
            Some(WebhookUrl::File(file))
        }
        (None, None) => None,
    };
    settings.webhook = match webhook_url {
        Some(url) => {
            let token_file = raw
                .webhook_token_file
                .map(|p| path("webhook_token_file", p))
                .transpose()?;
            if let Some(file) = &token_file {
                check_secret_file(file, "webhook_token_file")?;
            }
            let ca_file = raw.ca_file.map(|p| path("ca_file", p)).transpose()?;
            Some(WebhookSettings {
                url,
                token_file,
                ca_file,
            })
        }
        None => {
            for (key, set) in [
                ("webhook_token_file", raw.webhook_token_file.is_some()),
                ("ca_file", raw.ca_file.is_some()),
            ] {
                if set {
                    return Err(format!("`{key}` needs `webhook_url` or `webhook_url_file`"));
                }
            }
            None
        }
    };
    settings.email = match raw.email_to {
        Some(to) if !to.is_empty() => {
            for address in to.iter().chain(&raw.email_from) {
                check_address(address)?;
            }
            let sendmail_command = raw
                .sendmail_command
                .unwrap_or_else(|| DEFAULT_SENDMAIL.map(String::from).to_vec());
            if sendmail_command.first().is_none_or(|program| program.is_empty()) {
                return Err(
                    "`sendmail_command` needs a program, e.g. [\"/usr/sbin/sendmail\", \"-t\", \"-oi\"]".into(),
                );
            }
            Some(MailSettings {
                to,
                from: raw.email_from,
                sendmail_command,
            })
        }
        Some(_) => return Err("`email_to` is empty: give at least one address".into()),
        None => {
            for (key, set) in [
                ("email_from", raw.email_from.is_some()),
                ("sendmail_command", raw.sendmail_command.is_some()),
            ] {
                if set {
                    return Err(format!("`{key}` needs `email_to`"));
                }
            }
            None
        }
    };
    if let Some(events) = raw.events {
        settings.events = events
            .iter()
            .map(|name| {
                Event::parse(name).ok_or_else(|| {
                    let known: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
                    format!(
                        "unknown event \"{name}\" in `events`, expected some of {}",
                        known.join(", ")
                    )
                })
            })
            .collect::<Result<_, _>>()?;
    }
    settings.timeout = raw.timeout.unwrap_or(settings.timeout);
    if settings.timeout.is_zero() {
        return Err("`timeout` must be more than 0s".into());
    }
    settings.digest_window = raw.digest_window.unwrap_or(settings.digest_window);
    settings.max_per_hour = raw.max_per_hour.unwrap_or(settings.max_per_hour);
    if settings.max_per_hour == 0 {
        return Err("`max_per_hour` must be at least 1 (to tell nobody, leave out the channels)".into());
    }
    settings.remind_every = raw.remind_every.filter(|every| !every.is_zero());
    Ok(settings)
}

fn check_webhook_url(url: &str) -> Result<(), String> {
    if !matches!(transport_of(url), Transport::Https | Transport::Http) {
        return Err(format!(
            "`webhook_url` must be an https:// (or http://) URL, not {}",
            shown_webhook_url(url)
        ));
    }
    if split_credentials(url).password.is_some() {
        return Err("`webhook_url` must not hold a password: use `webhook_token_file`".into());
    }
    Ok(())
}

/// A file holding a secret must not be readable by group or others; one that does not exist
/// yet is reported when a notice is sent (and by `notify-test`).
fn check_secret_file(file: &Path, key: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(file) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => Err(format!(
            "`{key}` {} is readable by group/others; run: chmod 600 {}",
            file.display(),
            file.display()
        )),
        _ => Ok(()),
    }
}

/// A bare address (`ops@example.com`): one that could end a header line or add a recipient is
/// refused, since it goes into the mail's headers.
fn check_address(address: &str) -> Result<(), String> {
    let plain = !address.is_empty()
        && address.contains('@')
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | ';' | '<' | '>' | '"' | '(' | ')'));
    if plain {
        Ok(())
    } else {
        Err(format!(
            "\"{address}\" is not a mail address such as \"ops@example.com\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NotifySettings, String> {
        let raw: RawNotify = toml::from_str(text).map_err(|e| e.to_string())?;
        resolve(raw, Path::new("/etc/gpm"))
    }

    #[test]
    fn nothing_configured_tells_nobody() {
        let settings = parse("").unwrap();
        assert!(!settings.is_configured());
        assert!(!settings.tells(Event::Failed));
        assert_eq!(settings, NotifySettings::default());
    }

    #[test]
    fn channels_are_read_with_paths_relative_to_the_file() {
        let settings = parse(
            r#"
command = "bin/tell"
webhook_url = "https://chat.example.com/hooks/abc"
webhook_token_file = "webhook.token"
ca_file = "/etc/ssl/corp.pem"
email_to = ["ops@example.com", "dev@example.com"]
email_from = "mirror@git.example.com"
events = ["failed", "recovered"]
timeout = "5s"
digest_window = "10s"
max_per_hour = 3
remind_every = "1d"
"#,
        )
        .unwrap();
        assert_eq!(settings.command, Some(PathBuf::from("/etc/gpm/bin/tell")));
        let webhook = settings.webhook.as_ref().unwrap();
        assert_eq!(webhook.token_file, Some(PathBuf::from("/etc/gpm/webhook.token")));
        assert_eq!(webhook.ca_file, Some(PathBuf::from("/etc/ssl/corp.pem")));
        let mail = settings.email.as_ref().unwrap();
        assert_eq!(mail.to.len(), 2);
        assert_eq!(mail.sendmail_command, DEFAULT_SENDMAIL);
        assert!(settings.tells(Event::Recovered) && !settings.tells(Event::Refused));
        assert_eq!(settings.timeout, Duration::from_secs(5));
        assert_eq!(settings.max_per_hour, 3);
        assert_eq!(settings.remind_every, Some(Duration::from_secs(86400)));
        assert!(
            !format!("{settings:?}").contains("hooks/abc"),
            "the URL's path is a secret"
        );
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        for (text, needle) in [
            ("webhook_url = \"ftp://x/y\"", "https://"),
            ("webhook_url = \"https://u:p@x/y\"", "webhook_token_file"),
            ("webhook_url = \"https://x/\"\nwebhook_url_file = \"f\"", "only one"),
            ("webhook_token_file = \"t\"", "needs `webhook_url`"),
            ("email_to = []", "at least one address"),
            ("email_to = [\"ops@example.com\\nBcc: x@y\"]", "not a mail address"),
            ("email_to = [\"a@b\"]\nemail_from = \"me\"", "not a mail address"),
            ("email_from = \"a@b\"", "needs `email_to`"),
            ("email_to = [\"a@b\"]\nsendmail_command = []", "needs a program"),
            ("events = [\"failed\", \"exploded\"]", "unknown event \"exploded\""),
            ("timeout = \"0s\"", "more than 0s"),
            ("max_per_hour = 0", "at least 1"),
            ("comand = \"x\"", "unknown field `comand`"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn secret_files_readable_by_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("slack.url");
        std::fs::write(&file, "https://hooks.slack.com/services/T/B/secret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!("webhook_url_file = \"{}\"", file.display());
        assert!(parse(&text).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(parse(&text).unwrap().webhook.is_some());
    }

    #[test]
    fn webhook_urls_are_shown_without_their_path() {
        assert_eq!(
            shown_webhook_url("https://hooks.slack.com/services/T0/B0/XXXX"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            shown_webhook_url("http://u:p@127.0.0.1:8080/x?y"),
            "http://127.0.0.1:8080/…"
        );
    }
}
