//! What one notice says: queued notices of the same cause grouped into one digest, the JSON
//! object every channel gets, and its one-line human summary (`text`). Pure.
//!
//! Same cause: the same event about mirrors on the same host, with the same error once the
//! parts that name one repository are left out (URLs, paths, quoted names). 400 mirrors on
//! GitHub failing with "Could not resolve host: github.com" are one cause; a refused token and
//! a missing repository are two.

use crate::config::notify::Event;
use crate::mirror::state::Notice;
use serde_json::{Value, json};
use std::time::{Duration, UNIX_EPOCH};

/// A queued notice with what the channels add: the mirror's URL (redacted) and host.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub notice: Notice,
    /// As `list` shows it; `None` when the mirror is no longer configured or not a mirror notice.
    pub url: Option<String>,
    /// The mirror's host (`host[:port]`, `file`), part of the cause.
    pub mirror_host: String,
}

/// Groups notices by cause (as indices into `notices`), in the order their first notice came.
pub fn group(notices: &[Resolved]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, notice) in notices.iter().enumerate() {
        let key = cause(notice);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// The cause of a notice: event, reminder or not, mirror host, and the error's first line with
/// what names one repository left out.
fn cause(resolved: &Resolved) -> String {
    let notice = &resolved.notice;
    let first_line = notice.error.as_deref().and_then(|e| e.lines().next()).unwrap_or("");
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}",
        notice.event,
        notice.reminder,
        resolved.mirror_host,
        generic(first_line)
    )
}

/// `text` with URLs, absolute paths and quoted names replaced, so errors that differ only by
/// the repository they name compare equal.
fn generic(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' || c == '"' || c == '`' {
            // A quoted name: skip to the closing quote (or the end).
            for inner in chars.by_ref() {
                if inner == c {
                    break;
                }
            }
            out.push_str("'…'");
        } else {
            out.push(c);
        }
    }
    out.split_whitespace()
        .map(|word| {
            if word.contains("://") {
                "URL"
            } else if word.starts_with('/') {
                "PATH"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// RFC 3339 (UTC, seconds) of a time in milliseconds.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The JSON object of one notice about a group (one member: an ordinary notice), with its `text`.
pub fn payload(group: &[Resolved], host: &str) -> Value {
    let Some(first) = group.first() else {
        return json!({});
    };
    let notice = &first.notice;
    let member = |r: &Resolved| {
        let mut item = json!({
            "repo": r.notice.repo.to_string_lossy(),
            "mirror": r.notice.mirror,
            "url": r.url,
            "refs": r.notice.refs,
            "error": r.notice.error,
            "since": r.notice.since_ms.map(rfc3339),
            "failures": r.notice.failures,
        });
        if let Some(class) = &r.notice.failure_class {
            item["failure_class"] = json!(class);
        }
        item
    };
    let mut value = member(first);
    value["event"] = json!(notice.event.as_str());
    value["reminder"] = json!(notice.reminder);
    value["host"] = json!(host);
    value["time"] = json!(rfc3339(notice.at_ms));
    value["count"] = json!(group.len());
    value["mirrors"] = Value::Array(group.iter().map(member).collect());
    value["text"] = json!(text(group, host));
    value
}

/// How one member is named in a summary: `github of /srv/git/app.git`, or the repository alone.
fn named(r: &Resolved) -> String {
    match &r.notice.mirror {
        Some(mirror) => format!("mirror {mirror} of {}", r.notice.repo.display()),
        None => r.notice.repo.display().to_string(),
    }
}

/// The one-line human summary (Slack and the others show it as is; mail uses it as subject).
pub fn text(group: &[Resolved], host: &str) -> String {
    let Some(first) = group.first() else {
        return String::new();
    };
    let notice = &first.notice;
    let error = notice
        .error
        .as_deref()
        .and_then(|e| e.lines().map(str::trim).find(|l| !l.is_empty()))
        .map(|line| format!(": {line}"))
        .unwrap_or_default();
    let since = notice
        .since_ms
        .map(|t| format!(" since {}", rfc3339(t)))
        .unwrap_or_default();
    let refs = if notice.refs.is_empty() {
        String::new()
    } else {
        format!(" {}", notice.refs.join(", "))
    };
    // A failure's refs follow its count: "failed since … (5 failed updates; refs/heads/main)".
    let failed_refs = if notice.refs.is_empty() {
        String::new()
    } else {
        format!("; {}", notice.refs.join(", "))
    };
    let updates = match notice.failures {
        1 => "1 failed update".to_string(),
        n => format!("{n} failed updates"),
    };
    let what = |subject: &str| match notice.event {
        Event::Failed if notice.reminder => format!("{subject} still failing{since} ({updates}){error}"),
        Event::Failed => format!("{subject} failed{since} ({updates}{failed_refs}){error}"),
        Event::Recovered => format!("{subject} recovered (failing{since}, {updates})"),
        Event::Refused => format!("{subject} refused{refs}{error}"),
        Event::Divergent => format!("{subject}: diverged on the mirror, left alone:{refs}"),
        Event::Quarantined => format!("{subject}: a corrupt file was moved aside{error}"),
        Event::ConfigError => format!("{subject}: the configuration cannot be read{error}"),
    };
    let line = if group.len() == 1 {
        what(&named(first))
    } else {
        const NAMED: usize = 3;
        let mut names: Vec<String> = group.iter().take(NAMED).map(named).collect();
        if group.len() > NAMED {
            names.push(format!("and {} more", group.len() - NAMED));
        }
        let subject = match notice.mirror {
            Some(_) => format!("{} mirrors", group.len()),
            None => format!("{} repositories", group.len()),
        };
        format!("{} ({})", what(&subject), names.join(", "))
    };
    format!("{host}: {line}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn failed(repo: &str, error: &str, host: &str) -> Resolved {
        let mut notice = Notice::new(Event::Failed, Path::new(repo), Some("github"), 1_700_000_000_000);
        notice.error = Some(error.to_string());
        notice.failures = 5;
        notice.since_ms = Some(1_699_999_000_000);
        Resolved {
            notice,
            url: Some(format!("https://{host}/acme{repo}")),
            mirror_host: host.to_string(),
        }
    }

    #[test]
    fn errors_that_differ_only_by_the_repository_are_one_cause() {
        let notices: Vec<Resolved> = (0..40)
            .map(|i| {
                let repo = format!("/srv/git/app{i}.git");
                failed(
                    &repo,
                    &format!(
                        "fatal: unable to access 'https://github.com/acme{repo}/': Could not resolve host: github.com"
                    ),
                    "github.com",
                )
            })
            .chain([
                failed(
                    "/srv/git/x.git",
                    "fatal: Authentication failed for 'https://github.com/x/'",
                    "github.com",
                ),
                failed(
                    "/srv/git/y.git",
                    "fatal: unable to access 'https://gitlab.com/y/': Could not resolve host: gitlab.com",
                    "gitlab.com",
                ),
            ])
            .collect();
        let groups = group(&notices);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [40, 1, 1]);
        assert_eq!(groups[1], [40]);
        let first: Vec<Resolved> = groups[0].iter().map(|&i| notices[i].clone()).collect();
        let digest = payload(&first, "git1");
        assert_eq!(digest["count"], 40);
        assert_eq!(digest["mirrors"].as_array().unwrap().len(), 40);
        assert_eq!(digest["event"], "failed");
        let text = digest["text"].as_str().unwrap();
        assert!(text.starts_with("git1: 40 mirrors failed since 2023-11-14T"), "{text}");
        assert!(text.ends_with("and 37 more)"), "{text}");
    }

    #[test]
    fn a_single_notice_has_every_field() {
        let one = [failed("/srv/git/app.git", "fatal: boom\nmore", "github.com")];
        let value = payload(&one, "git1");
        for key in [
            "event", "repo", "mirror", "url", "refs", "error", "since", "failures", "host", "time", "count", "mirrors",
            "text",
        ] {
            assert!(value.get(key).is_some(), "{key} missing in {value}");
        }
        assert_eq!(value["since"], "2023-11-14T21:56:40Z");
        assert_eq!(
            value["text"],
            "git1: mirror github of /srv/git/app.git failed since 2023-11-14T21:56:40Z (5 failed updates): fatal: boom"
        );
        let mut recovered = one[0].clone();
        recovered.notice.event = Event::Recovered;
        recovered.notice.error = None;
        assert_eq!(
            text(&[recovered], "git1"),
            "git1: mirror github of /srv/git/app.git recovered (failing since 2023-11-14T21:56:40Z, 5 failed updates)"
        );
    }

    #[test]
    fn generic_errors_leave_out_names() {
        assert_eq!(
            generic("fatal: '/srv/a.git' does not appear to be a git repository at https://h/x"),
            "fatal: '…' does not appear to be a git repository at URL"
        );
        assert_eq!(generic("moved /var/lib/x to /var/lib/y"), "moved PATH to PATH");
    }
}
