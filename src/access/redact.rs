//! The one redaction function: everything git prints passes through it before it is stored, logged or shown.

/// Replaces every known secret (and its percent-encoded form) with `*****`, the userinfo of
/// every `scheme://user:pass@host` in `text` with `*****:*****`, and the credentials of every
/// `Authorization` header or variable a server echoes (`Authorization: Basic …`,
/// `HTTP_AUTHORIZATION=Bearer …`) with `*****`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, "*****");
        let encoded = percent_encode(secret);
        if encoded != *secret {
            out = out.replace(&encoded, "*****");
        }
    }
    redact_authorization(&redact_userinfo(&out))
}

/// `Authorization: <scheme> <credentials>` (or `=`) with the credentials replaced.
fn redact_authorization(text: &str) -> String {
    const KEY: &str = "authorization";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (at, _) in lower.match_indices(KEY) {
        if at < copied {
            continue;
        }
        let after_key = at + KEY.len();
        let rest = &text[after_key..];
        let separator = rest.len() - rest.trim_start().len();
        let Some(after_separator) = rest[separator..]
            .strip_prefix([':', '='])
            .map(|r| after_key + separator + 1 + (r.len() - r.trim_start().len()))
        else {
            continue;
        };
        // Keep a scheme word (`Basic`, `Bearer`, `token`) when a value follows it.
        let value = &text[after_separator..];
        let word_end = value.find(char::is_whitespace).unwrap_or(value.len());
        let after_scheme = value[word_end..].trim_start();
        let credentials_at = if word_end < value.len()
            && value[..word_end].chars().all(|c| c.is_ascii_alphabetic())
            && !after_scheme.is_empty()
        {
            after_separator + (value.len() - after_scheme.len())
        } else {
            after_separator
        };
        let credentials_end = text[credentials_at..]
            .find(|c: char| c.is_whitespace() || c == '\'' || c == '"')
            .map_or(text.len(), |end| credentials_at + end);
        if credentials_end > credentials_at {
            out.push_str(&text[copied..credentials_at]);
            out.push_str("*****");
            copied = credentials_end;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// The Basic credentials an HTTP client sends for `user`/`password` (`base64(user:password)`):
/// a server that echoes its request headers prints them, so they are a secret too.
pub fn basic_credentials(user: &str, password: &str) -> String {
    base64(format!("{user}:{password}").as_bytes())
}

/// Standard base64 with padding (RFC 4648).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let bytes = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63])
            } else {
                '='
            });
        }
    }
    out
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
    fn basic_credentials_are_encoded_as_http_clients_send_them() {
        // RFC 7617's example.
        assert_eq!(
            basic_credentials("Aladdin", "open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_credentials("a", "b"), "YTpi");
    }

    #[test]
    fn authorization_echoes_are_replaced() {
        assert_eq!(
            redact("HTTP_AUTHORIZATION=Basic dXNlcjpodW50ZXIy\nPATH=/bin", &[]),
            "HTTP_AUTHORIZATION=Basic *****\nPATH=/bin"
        );
        assert_eq!(
            redact("> authorization: Bearer ghp_abc123 and more", &[]),
            "> authorization: Bearer ***** and more"
        );
        assert_eq!(redact("Authorization: s3cr3t", &[]), "Authorization: *****");
        assert_eq!(redact("no authorization needed", &[]), "no authorization needed");
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        let text = "To git://127.0.0.1:9418/m.git\n!\trefs/heads/a:refs/heads/a\t[rejected] (stale info)";
        assert_eq!(redact(text, &["", "nothere"]), text);
    }
}
