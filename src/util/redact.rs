//! The one redaction function: everything git prints passes through it before it is stored, logged or shown.

/// The shortest password or token the program accepts (see [`crate::access::auth::read_secret`]):
/// a shorter one is so likely to be part of ordinary text ("a", "to", "ent") that no rule could
/// keep it out of messages without hiding the messages themselves, and it protects nothing.
pub const MIN_SECRET_LEN: usize = 4;

/// Replaces every occurrence of a known secret (and of its percent-encoded form) that is not
/// part of a longer word with `*****`, the userinfo of every `scheme://user:pass@host` in
/// `text` with `*****:*****`, and the credentials of every `Authorization` header or variable a
/// server echoes (`Authorization: Basic …`, `HTTP_AUTHORIZATION=Bearer …`) with `*****`.
///
/// "Part of a longer word": a secret that begins (ends) with a letter, digit or `_` is left
/// alone where a letter, digit or `_` comes right before (after) it, so a password `ent` never
/// turns "credentials" into "cred*****ials". Every real occurrence of a secret is still
/// replaced: in a URL (`https://u:TOKEN@h`, `?token=TOKEN&…`), after `password=` or `:`, in
/// quotes, as a word of its own, and as the Basic encoding `base64(user:password)` that
/// [`basic_credentials`] gives the caller to add to `secrets`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = replace_unless_inside_a_word(&out, secret);
        let encoded = percent_encode(secret);
        if encoded != *secret {
            out = replace_unless_inside_a_word(&out, &encoded);
        }
    }
    redact_authorization(&redact_userinfo(&out))
}

/// Letters, digits and `_`: the characters that make two adjacent strings one word.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `text` with each occurrence of `secret` replaced by `*****`, except those that continue a
/// word of `text`: a word character of the secret's edge touching a word character of the text.
fn replace_unless_inside_a_word(text: &str, secret: &str) -> String {
    let starts_a_word = secret.chars().next().is_some_and(is_word_char);
    let ends_a_word = secret.chars().next_back().is_some_and(is_word_char);
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find(secret) {
        let start = from + found;
        let end = start + secret.len();
        let glued_before = starts_a_word && text[..start].chars().next_back().is_some_and(is_word_char);
        let glued_after = ends_a_word && text[end..].chars().next().is_some_and(is_word_char);
        if glued_before || glued_after {
            // Look again from the next character: an occurrence may overlap this one.
            from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str("*****");
        copied = end;
        from = end;
    }
    out.push_str(&text[copied..]);
    out
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

/// `s` with every byte but RFC 3986's unreserved characters percent-encoded: how a secret may
/// appear in a URL, and how a forge API's path parameters are written.
pub fn percent_encode(s: &str) -> String {
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
    fn a_short_secret_never_blanks_part_of_a_word() {
        // The password `ent` of issue 21.
        let text = "fatal: Git credentials for 'https://h/a.git/' not found; entire entry: ent";
        assert_eq!(
            redact(text, &["ent"]),
            "fatal: Git credentials for 'https://h/a.git/' not found; entire entry: *****"
        );
        assert_eq!(redact("update_ref ent_x", &["ref", "ent"]), "update_ref ent_x");
        assert_eq!(
            redact("cafés", &["caf"]),
            "cafés",
            "letters beyond ASCII are letters too"
        );
    }

    #[test]
    fn every_real_occurrence_of_a_secret_is_replaced() {
        let secret = "ent1";
        let basic = basic_credentials("bot", secret);
        let cases = [
            ("https://bot:ent1@h/a.git", "https://*****:*****@h/a.git"),
            (
                "https://h/a.git?access_token=ent1&x=1",
                "https://h/a.git?access_token=*****&x=1",
            ),
            ("password=ent1\nusername=bot", "password=*****\nusername=bot"),
            (
                "token 'ent1' (\"ent1\") [ent1] ent1.",
                "token '*****' (\"*****\") [*****] *****.",
            ),
            ("x-access-token:ent1@github.com", "x-access-token:*****@github.com"),
            ("ent1", "*****"),
        ];
        for (text, want) in cases {
            assert_eq!(redact(text, &[secret, &basic]), want, "{text}");
        }
        let echoed = format!("got Basic {basic} and {basic}");
        assert_eq!(redact(&echoed, &[secret, &basic]), "got Basic ***** and *****");
        // A secret with non-word characters at its edges cannot continue a word: replaced anywhere.
        assert_eq!(redact("abc-s3cr3t!def", &["-s3cr3t!"]), "abc*****def");
        // Its percent-encoded form too.
        assert_eq!(redact("p=a%40bc&", &["a@bc"]), "p=*****&");
    }

    proptest::proptest! {
        /// Text made of ordinary lower-case words: only the words that are the secret are
        /// replaced, whatever part of other words the secret is.
        #[test]
        fn words_are_replaced_whole_or_not_at_all(
            words in proptest::collection::vec("[a-z]{1,10}", 1..12),
            separators in proptest::collection::vec(proptest::sample::select(SEPARATORS.to_vec()), 12),
            pick in 0usize..12,
            (from, len) in (0usize..10, 4usize..10),
        ) {
            // The secret: part of one of the words (when long enough), or the whole of it.
            let word = &words[pick % words.len()];
            let start = from.min(word.len().saturating_sub(MIN_SECRET_LEN));
            let secret: String = word.chars().skip(start).take(len).collect();
            proptest::prop_assume!(secret.len() >= MIN_SECRET_LEN);
            let text = join(&words, &separators, |w| w.to_string());
            let want = join(&words, &separators, |w| if w == secret { "*****".into() } else { w.to_string() });
            proptest::prop_assert_eq!(redact(&text, &[&secret]), want);
        }

        /// A random token placed anywhere a value goes is never left in the output.
        #[test]
        fn a_token_among_words_is_always_replaced(
            words in proptest::collection::vec("[a-z]{1,10}", 0..8),
            separators in proptest::collection::vec(proptest::sample::select(SEPARATORS.to_vec()), 9),
            token in "[A-Z0-9][A-Za-z0-9_.~-]{2,30}[A-Z0-9]",
            at in 0usize..9,
        ) {
            let mut parts = words.clone();
            parts.insert(at.min(words.len()), token.clone());
            let text = join(&parts, &separators, |w| w.to_string());
            let redacted = redact(&text, &[&token]);
            proptest::prop_assert!(!redacted.contains(&token), "{} -> {}", text, redacted);
        }
    }

    /// What separates a value from the words around it in git's and servers' messages.
    const SEPARATORS: [&str; 12] = [" ", "\n", "/", "=", "'", "\"", "&", ", ", ": ", "(", ")", "?token="];

    fn join(words: &[String], separators: &[&str], show: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for (i, word) in words.iter().enumerate() {
            out.push_str(&show(word));
            out.push_str(separators[i % separators.len()]);
        }
        out
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        let text = "To git://127.0.0.1:9418/m.git\n!\trefs/heads/a:refs/heads/a\t[rejected] (stale info)";
        assert_eq!(redact(text, &["", "nothere"]), text);
    }
}
