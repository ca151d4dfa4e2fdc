//! Telling people (docs/notifications.md): the notices the state store queues in the outbox
//! (a mirror failed, recovered, refused or diverged refs; a file quarantined; a configuration
//! broken) go out through the `[notify]` channels: a command (JSON on stdin), a webhook (JSON with
//! `text`) and mail through sendmail. The worker sends from a thread of its own ([`Notifier`]),
//! so a notifier that fails or hangs never delays a mirror, and waits for it only a bounded time
//! when it leaves.
//!
//! - [`digest`]: grouping by cause, the JSON and its one-line summary;
//! - [`send`]: one pass over the outbox (digest window, hourly limit, retries);
//! - [`ledger`]: deliveries and failures per channel, kept for `metrics`;
//! - `process.rs`, `webhook.rs`, `mail.rs`: the channels.

pub mod digest;
pub mod ledger;
mod mail;
mod process;
pub mod send;
mod webhook;

use crate::config::GlobalConfig;
use crate::config::notify::{Event, NotifySettings};
use crate::mirror::state::{Notice, StateStore};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// A way of telling people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Command,
    Webhook,
    Email,
}

/// The channels `[notify]` configures.
pub fn channels(settings: &NotifySettings) -> Vec<Channel> {
    let mut channels = Vec::new();
    if settings.command.is_some() {
        channels.push(Channel::Command);
    }
    if settings.webhook.is_some() {
        channels.push(Channel::Webhook);
    }
    if settings.email.is_some() {
        channels.push(Channel::Email);
    }
    channels
}

/// The variable naming the event, for a notify command.
pub const EVENT_VARIABLE: &str = "GIT_PUSH_MIRROR_EVENT";

impl Channel {
    /// The channel's name in `metrics` and the outbox.
    pub fn name(&self) -> &'static str {
        match self {
            Channel::Command => "command",
            Channel::Webhook => "webhook",
            Channel::Email => "email",
        }
    }

    /// The channel as people may see it (a webhook by scheme and host only).
    pub fn describe(&self, settings: &NotifySettings) -> String {
        match self {
            Channel::Command => format!(
                "command {}",
                settings.command.as_deref().unwrap_or(Path::new("")).display()
            ),
            Channel::Webhook => format!(
                "webhook {}",
                settings.webhook.as_ref().map(webhook::shown).unwrap_or_default()
            ),
            Channel::Email => format!(
                "mail to {}",
                settings.email.as_ref().map(|m| m.to.join(", ")).unwrap_or_default()
            ),
        }
    }
}

/// Sends one notice (`payload`, with its `text`) through `channel`; returns why it failed.
pub fn deliver(channel: &Channel, settings: &NotifySettings, payload: &Value, now_ms: u64) -> Result<(), String> {
    let json = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
    match channel {
        Channel::Command => {
            let program = settings.command.as_deref().ok_or("no command configured")?;
            let mut cmd = process::command(&program.to_string_lossy());
            cmd.env(EVENT_VARIABLE, payload["event"].as_str().unwrap_or(""));
            // Killed with the worker even by kill -9; what it starts carries the worker's mark.
            crate::git::orphans::die_with_this_process(&mut cmd);
            let mut input = json;
            input.push(b'\n');
            process::run(cmd, &input, settings.timeout).map_err(|e| format!("{}: {e}", program.display()))
        }
        Channel::Webhook => {
            let webhook = settings.webhook.as_ref().ok_or("no webhook configured")?;
            webhook::post(webhook, &json, settings.timeout)
        }
        Channel::Email => {
            let mail = settings.email.as_ref().ok_or("no email_to configured")?;
            let text = payload["text"].as_str().unwrap_or("");
            let subject: String = format!("[git-push-mirror] {text}").chars().take(200).collect();
            let message = mail::render(mail, &subject, &mail::body(payload), &hostname(), now_ms);
            mail::send(mail, &message, settings.timeout)
        }
    }
}

/// This machine's name, as notices give it (`host`).
pub fn hostname() -> String {
    crate::util::lease::machine_name()
}

/// How often the notifier looks at the outbox.
const POLL: Duration = Duration::from_millis(250);

enum Message {
    /// The global configuration changed.
    Config(Arc<GlobalConfig>),
    /// The worker is leaving: send what waits, digest window or not, then stop.
    Leave,
}

/// The worker's notifier: a thread that sends the outbox's notices while the worker runs.
pub struct Notifier {
    messages: mpsc::Sender<Message>,
    finished: mpsc::Receiver<()>,
    timeout: Duration,
}

impl Notifier {
    /// Starts the thread; `None` (logged) when it cannot be started: the notices wait for the next run.
    pub fn start(global: Arc<GlobalConfig>, store: StateStore) -> Option<Notifier> {
        let (messages, inbox) = mpsc::channel::<Message>();
        let (done, finished) = mpsc::channel::<()>();
        let timeout = global.notify.timeout;
        let spawned = std::thread::Builder::new().name("notify".into()).spawn(move || {
            let mut global = global;
            loop {
                let leaving = match inbox.recv_timeout(POLL) {
                    Ok(Message::Config(new)) => {
                        global = new;
                        false
                    }
                    Ok(Message::Leave) | Err(mpsc::RecvTimeoutError::Disconnected) => true,
                    Err(mpsc::RecvTimeoutError::Timeout) => false,
                };
                if let Err(e) = send::send_waiting(&global, &store, leaving) {
                    log::warn!("notify: {e:#}");
                }
                if leaving {
                    let _ = done.send(());
                    return;
                }
            }
        });
        match spawned {
            Ok(_) => Some(Notifier {
                messages,
                finished,
                timeout,
            }),
            Err(e) => {
                log::error!("notify: cannot start the notifier thread ({e}); notices wait for the next run");
                None
            }
        }
    }

    /// Hands the notifier the global configuration as it now is.
    pub fn reconfigure(&self, global: Arc<GlobalConfig>) {
        let _ = self.messages.send(Message::Config(global));
    }

    /// Sends what waits and stops, waiting at most one delivery's `timeout` plus a little: a
    /// notifier still running then is killed, and what it did not send waits for the next run.
    pub fn finish(self) {
        let _ = self.messages.send(Message::Leave);
        let bound = self.timeout + Duration::from_secs(2);
        if self.finished.recv_timeout(bound).is_err() {
            process::kill_running();
            log::warn!(
                "notify: notices still being sent after {}; the rest wait for the next run",
                humantime::format_duration(bound)
            );
        }
    }
}

/// The sample notice `notify-test` sends.
pub fn sample(host: &str, now_ms: u64) -> Value {
    let mut notice = Notice::new(
        Event::Failed,
        Path::new("/srv/git/example.git"),
        Some("example"),
        now_ms,
    );
    notice.error = Some("this is a test notice from `git-push-mirror notify-test`; no mirror failed".into());
    notice.failures = 1;
    notice.since_ms = Some(now_ms);
    let resolved = digest::Resolved {
        notice,
        url: Some("https://git.example.com/acme/example.git".into()),
        mirror_host: "git.example.com".into(),
    };
    let mut payload = digest::payload(&[resolved], host);
    payload["test"] = Value::Bool(true);
    payload["text"] = Value::String(format!(
        "TEST from git-push-mirror notify-test on {host}: notifications work (no mirror failed)"
    ));
    payload
}

/// `notify-test`: the sample notice through every configured channel; what happened for each.
pub fn test_channels(settings: &NotifySettings) -> Vec<(String, Result<(), String>)> {
    let now = crate::util::fsutil::now_ms();
    let payload = sample(&hostname(), now);
    channels(settings)
        .iter()
        .map(|channel| (channel.describe(settings), deliver(channel, settings, &payload, now)))
        .collect()
}
