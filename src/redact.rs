//! The one redaction function: everything git prints passes through it before it is stored, logged or shown.

/// Replaces every known secret (and its percent-encoded form) with `*****`,
/// and the userinfo of every `scheme://user:pass@host` in `text` with `*****:*****`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, "*****");
        let encoded = percent_encode(secret);
        if encoded != *secret {
            out = out.replace(&encoded, "*****");
        }
    }
    redact_userinfo(&out)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("*****:*****");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_everywhere() {
        let text = "fatal: Authentication failed for token hunter2 (hunter2)";
        assert_eq!(
            redact(text, &["hunter2"]),
            "fatal: Authentication failed for token ***** (*****)"
        );
    }

    #[test]
    fn percent_encoded_secrets_are_replaced() {
        assert_eq!(redact("https://host/?p=a%40b", &["a@b"]), "https://host/?p=*****");
    }

    #[test]
    fn userinfo_in_urls_is_replaced() {
        let text = "fatal: unable to access 'https://bob:pw@example.com/a.git/': 403\nTo https://x@h/y";
        assert_eq!(
            redact(text, &[]),
            "fatal: unable to access 'https://*****:*****@example.com/a.git/': 403\nTo https://*****:*****@h/y"
        );
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        let text = "To git://127.0.0.1:9418/m.git\n!\trefs/heads/a:refs/heads/a\t[rejected] (stale info)";
        assert_eq!(redact(text, &["", "nothere"]), text);
    }
}
