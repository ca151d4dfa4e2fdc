//! Mirror URLs: which transport a URL uses, whether it is allowed, and how to show it without secrets.

use std::fmt;

/// The transport a mirror URL selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    Https,
    Http,
    Ssh,
    Git,
    File,
    /// `ext::`, `fd::` or any other `<helper>::` remote helper, or an unknown scheme.
    Refused(String),
}

impl Transport {
    /// The name used in `allowed_protocols` and `GIT_ALLOW_PROTOCOL`.
    pub fn protocol_name(&self) -> &str {
        match self {
            Transport::Https => "https",
            Transport::Http => "http",
            Transport::Ssh => "ssh",
            Transport::Git => "git",
            Transport::File => "file",
            Transport::Refused(what) => what,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protocol_name())
    }
}

/// Classifies a URL the way git would pick a transport for it.
pub fn transport_of(url: &str) -> Transport {
    if let Some(pos) = url.find("::") {
        // `<helper>::<address>` runs git-remote-<helper>: refused, whatever the helper.
        let helper = &url[..pos];
        if !helper.contains('/') && !helper.contains(':') {
            return Transport::Refused(format!("{helper}::"));
        }
    }
    if let Some(pos) = url.find("://") {
        let scheme = url[..pos].to_ascii_lowercase();
        return match scheme.as_str() {
            "https" => Transport::Https,
            "http" => Transport::Http,
            "ssh" | "git+ssh" | "ssh+git" => Transport::Ssh,
            "git" => Transport::Git,
            "file" => Transport::File,
            other => Transport::Refused(format!("{other}://")),
        };
    }
    // scp-like `[user@]host:path`: a colon before any slash.
    match (url.find(':'), url.find('/')) {
        (Some(colon), slash) if slash.is_none_or(|s| colon < s) && colon > 0 => Transport::Ssh,
        _ => Transport::File,
    }
}

/// The URL the admin probably meant when `url` misspells a transport's `scheme://`: a scheme one
/// typo away from a known one (`htps://`, `shh://`), or a known scheme with a mangled separator
/// (`https:/host`, `ssh:/host`, `http//host`, `https:host`), which git would otherwise take for
/// an scp-like address of a host named `https` or for a local path.
pub fn scheme_typo(url: &str) -> Option<String> {
    const SCHEMES: [&str; 5] = ["https", "http", "ssh", "git", "file"];
    let word_end = url
        .find(|c: char| !c.is_ascii_alphabetic() && c != '+')
        .unwrap_or(url.len());
    let (word, rest) = url.split_at(word_end);
    let lower = word.to_ascii_lowercase();
    let known = SCHEMES.contains(&lower.as_str());
    // The address after a separator that was meant to be `://`.
    let address = if let Some(address) = rest.strip_prefix("://") {
        if known || lower.contains('+') {
            return None;
        }
        address
    } else if let Some(address) = rest.strip_prefix(":/").or_else(|| rest.strip_prefix("//")) {
        // `git:/path` may be an scp-like address of an SSH host alias named `git`: only the
        // other schemes, which are no host names anyone uses.
        if lower == "git" && rest.starts_with(':') {
            return None;
        }
        address
    } else {
        rest.strip_prefix(':').filter(|_| lower.starts_with("http"))?
    };
    // Scheme names are too short for a similarity score: one typo (a letter wrong, missing,
    // extra, or two swapped) away, as `htps`, `shh`, `fiel` are.
    let scheme = if known {
        lower
    } else {
        SCHEMES
            .into_iter()
            .map(|scheme| (strsim::osa_distance(&lower, scheme), scheme))
            .filter(|(typos, _)| *typos == 1)
            .min()?
            .1
            .to_string()
    };
    let address = address.trim_start_matches('/');
    // A file URL's address is an absolute path.
    let root = if scheme == "file" { "/" } else { "" };
    Some(format!("{scheme}://{root}{address}"))
}

/// A URL with any `user:password@` removed, and what was removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitUrl {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Splits credentials out of a `scheme://user:password@host/...` URL.
/// Percent-encoded user names and passwords are decoded.
pub fn split_credentials(url: &str) -> SplitUrl {
    let none = || SplitUrl {
        url: url.to_string(),
        username: None,
        password: None,
    };
    let Some(scheme_end) = url.find("://") else {
        return none();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else { return none() };
    let userinfo = &authority[..at];
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    SplitUrl {
        url: format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]),
        username: (!user.is_empty()).then(|| percent_decode(user)),
        password: password.map(percent_decode),
    }
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL as shown to people: the userinfo in `scheme://userinfo@` becomes `*****:*****`
/// when it may hold a secret (any userinfo of an HTTP(S) URL, where a lone "user" is often a
/// token; a `user:password` of any other). The user of an SSH URL (`ssh://git@host/…`), like
/// scp-like `user@host:path`, is part of the address and is kept.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let http = matches!(transport_of(url), Transport::Https | Transport::Http);
    match rest[..authority_end].rfind('@') {
        Some(at) if http || rest[..at].contains(':') => {
            format!("{}*****:*****@{}", &url[..scheme_end + 3], &rest[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// A mirror's URL as shown in `list`, `status` and reports: userinfo
/// redacted, and `*****:*****@` when the mirror authenticates over HTTP(S)
/// with a password, as GitLab shows it.
pub fn display_url(url: &str, has_password: bool) -> String {
    let redacted = redact_url(url);
    if !has_password || !matches!(transport_of(url), Transport::Https | Transport::Http) || redacted != url {
        return redacted;
    }
    match url.find("://") {
        Some(pos) => format!("{}*****:*****@{}", &url[..pos + 3], &url[pos + 3..]),
        None => redacted,
    }
}

/// The host a mirror URL reaches (`host[:port]`; user names and paths dropped), which is what
/// hangs when a server does. Local paths and `file://` URLs share one host, `file`.
pub fn host_of(url: &str) -> String {
    match transport_of(url) {
        Transport::File => "file".to_string(),
        _ => {
            let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
            // scp-like `user@host:path`: the host ends at the colon.
            let scp_like = !url.contains("://");
            let end = rest
                .find(|c: char| c == '/' || (scp_like && c == ':'))
                .unwrap_or(rest.len());
            let authority = &rest[..end];
            authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host)
                .to_ascii_lowercase()
        }
    }
}

/// `scheme://host[:port]` of an HTTP(S) URL, without user info or path: the scope of the
/// credentials given for it (`credential.<origin>.helper`). `None` for other transports.
pub fn http_origin(url: &str) -> Option<String> {
    if !matches!(transport_of(url), Transport::Https | Transport::Http) {
        return None;
    }
    let scheme_end = url.find("://")?;
    let rest = &url[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority.rfind('@').map_or(authority, |at| &authority[at + 1..]);
    (!host.is_empty()).then(|| format!("{}://{host}", url[..scheme_end].to_ascii_lowercase()))
}

#[cfg(test)]
mod tests;
