//! The mail channel: a plain-text RFC 5322 message handed to `sendmail -t` (or `sendmail_command`),
//! as cron and smartd send theirs, so the host's MTA (postfix, exim, msmtp) decides how it travels.

use crate::config::notify::MailSettings;
use crate::notify::process;
use crate::util::redact::base64;
use serde_json::Value;
use std::time::Duration;

/// The message: headers (`To`, `From` when set, `Subject`, `Date`, `Message-ID`, MIME and
/// `Auto-Submitted`), a blank line, the body. Header values never carry a line break.
pub fn render(settings: &MailSettings, subject: &str, body: &str, host: &str, now_ms: u64) -> String {
    let mut message = String::new();
    let mut header = |name: &str, value: &str| {
        message.push_str(name);
        message.push_str(": ");
        message.push_str(&one_line(value));
        message.push('\n');
    };
    header("To", &settings.to.join(", "));
    if let Some(from) = &settings.from {
        header("From", from);
    }
    header("Subject", &encode_header(subject));
    header("Date", &rfc5322_date(now_ms));
    let id_host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .collect();
    let id_host = if id_host.is_empty() {
        "localhost".to_string()
    } else {
        id_host
    };
    header(
        "Message-ID",
        &format!(
            "<git-push-mirror.{now_ms}.{}.{}@{id_host}>",
            std::process::id(),
            unique()
        ),
    );
    header("MIME-Version", "1.0");
    header("Content-Type", "text/plain; charset=UTF-8");
    header("Content-Transfer-Encoding", "8bit");
    // RFC 3834: vacation responders and the like do not answer it.
    header("Auto-Submitted", "auto-generated");
    message.push('\n');
    for line in body.lines() {
        message.push_str(line);
        message.push('\n');
    }
    message
}

/// A counter, so two messages of one process in one millisecond get different ids.
fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `text` with control characters (line breaks above all) turned into spaces.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// RFC 2047 base64 encoded-words for a header holding non-ASCII text (repository paths may).
fn encode_header(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    // Words of at most 45 bytes of UTF-8 (60 of base64), cut at character boundaries.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words
        .iter()
        .map(|w| format!("=?UTF-8?B?{}?=", base64(w.as_bytes())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `Tue, 14 Nov 2023 22:13:20 +0000` (RFC 5322 §3.3, UTC).
pub fn rfc5322_date(ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms / 1000;
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {h:02}:{m:02}:{s:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize]
    )
}

/// The body: the summary, every field, and each member of a digest.
pub fn body(payload: &Value) -> String {
    let field = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    };
    let mut out = format!("{}\n\n", field(&payload["text"]));
    let members = payload["mirrors"].as_array().cloned().unwrap_or_default();
    for (i, member) in members.iter().enumerate() {
        if members.len() > 1 {
            out.push_str(&format!("{}.\n", i + 1));
        }
        for key in ["repo", "mirror", "url", "refs", "since", "failures", "failure_class"] {
            let value = field(&member[key]);
            let nothing = value.is_empty() || (key == "failures" && value == "0");
            if !nothing {
                out.push_str(&format!("  {key:<9} {value}\n"));
            }
        }
        if let Some(error) = member["error"].as_str() {
            out.push_str("  error:\n");
            for line in error.lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "event: {}, host: {}, time: {}\n-- \nSent by git-push-mirror; `git-push-mirror status` shows every mirror.\n",
        field(&payload["event"]),
        field(&payload["host"]),
        field(&payload["time"]),
    ));
    out
}

/// Hands the message to sendmail; returns why it was not taken.
pub fn send(settings: &MailSettings, message: &str, timeout: Duration) -> Result<(), String> {
    let Some((program, args)) = settings.sendmail_command.split_first() else {
        return Err("sendmail_command is empty".to_string());
    };
    let mut cmd = process::command(program);
    cmd.args(args);
    process::run(cmd, message.as_bytes(), timeout).map_err(|e| format!("{}: {e}", settings.sendmail_command.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> MailSettings {
        MailSettings {
            to: vec!["ops@example.com".into(), "dev@example.com".into()],
            from: Some("mirror@git.example.com".into()),
            sendmail_command: vec!["/usr/sbin/sendmail".into(), "-t".into()],
        }
    }

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(1_700_000_000_000), "Tue, 14 Nov 2023 22:13:20 +0000");
        assert_eq!(rfc5322_date(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn headers_are_standard_and_cannot_be_injected() {
        let message = render(
            &settings(),
            "git1: mirror gh of /srv/x.git failed\nBcc: evil@example.com",
            "line one\nline two",
            "git1.example.com",
            1_700_000_000_000,
        );
        let (headers, body) = message.split_once("\n\n").unwrap();
        let names: Vec<&str> = headers.lines().map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(
            names,
            [
                "To",
                "From",
                "Subject",
                "Date",
                "Message-ID",
                "MIME-Version",
                "Content-Type",
                "Content-Transfer-Encoding",
                "Auto-Submitted"
            ]
        );
        assert!(headers.contains("To: ops@example.com, dev@example.com\n"));
        assert!(headers.contains("Date: Tue, 14 Nov 2023 22:13:20 +0000\n"));
        assert!(!headers.lines().any(|l| l.starts_with("Bcc")), "{headers}");
        assert!(headers.contains("@git1.example.com>"));
        assert_eq!(body, "line one\nline two\n");
    }

    #[test]
    fn non_ascii_subjects_are_encoded() {
        let subject = encode_header("mirror of /srv/git/größe.git failed");
        assert!(subject.is_ascii() && subject.starts_with("=?UTF-8?B?"), "{subject}");
    }
}
