//! Mirror URLs: which transport a URL uses, whether it is allowed, its parts ([`RemoteUrl`]), and
//! how to show it without secrets.

use std::fmt;
use std::ops::Range;

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
        // git reads a helper name as it reads a scheme: a letter, then letters, digits, `+`, `-`, `.`.
        let helper = &url[..pos];
        let mut chars = helper.chars();
        let scheme_like = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if scheme_like {
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

/// A mirror URL, parsed once: the one reading of a URL's user, password, host and port that
/// credentials, the worker's per-host slots, SSH host keys and what is shown all use.
///
/// Hosts and ports come from `gix-url`, the parser gix itself uses, which knows git's forms
/// (`scheme://`, scp-like `[user@]host:path`, local paths). What it cannot express is done here:
/// the scp-like forms with brackets that git reads a port from (`[host:port]:path`,
/// `[user@host:port]:path`, `user@[host:port]:path`), which are rewritten to the `ssh://` URL they
/// mean before parsing; and where in the text the userinfo is (gix-url gives values, not
/// positions), which showing a URL as the admin wrote it, with only its secret masked, needs. The
/// userinfo is found in the text, so even a URL no parser accepts never shows its password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteUrl<'a> {
    text: &'a str,
    transport: Transport,
    /// Where `scheme://`'s authority (`[userinfo@]host[:port]`) is in `text`.
    authority: Option<Range<usize>>,
    /// Where the userinfo (`user[:password]`, without its `@`) is in `text`.
    userinfo: Option<Range<usize>>,
    /// Lower case; IPv6 without brackets.
    host: Option<String>,
    port: Option<u16>,
}

impl<'a> RemoteUrl<'a> {
    pub fn parse(text: &'a str) -> RemoteUrl<'a> {
        let transport = transport_of(text);
        let authority = text.find("://").map(|scheme_end| {
            let start = scheme_end + 3;
            start..text[start..].find('/').map_or(text.len(), |end| start + end)
        });
        let userinfo = authority
            .as_ref()
            .and_then(|a| text[a.clone()].rfind('@').map(|at| a.start..a.start + at));
        let (host, port) = match transport {
            Transport::File | Transport::Refused(_) => (None, None),
            _ => host_and_port(text),
        };
        RemoteUrl {
            text,
            transport,
            authority,
            userinfo,
            host,
            port,
        }
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    fn is_http(&self) -> bool {
        matches!(self.transport, Transport::Https | Transport::Http)
    }

    /// The host, lower case, IPv6 without brackets; `None` for local paths and `file://`, and
    /// for a URL whose host cannot be read.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The port the URL names, if it names one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// What identifies the server a mirror is on, for the worker's per-host slots and notices:
    /// `host[:port]` (the port when the URL names one), or `file` for every local mirror.
    pub fn host_identity(&self) -> String {
        let Some(host) = &self.host else {
            return if self.transport == Transport::File {
                "file".to_string()
            } else {
                String::new()
            };
        };
        match self.port {
            Some(port) if host.contains(':') => format!("[{host}]:{port}"),
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        }
    }

    /// The user name of a `scheme://user[:password]@` URL, percent-decoded.
    pub fn username(&self) -> Option<String> {
        let userinfo = &self.text[self.userinfo.clone()?];
        let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
        (!user.is_empty()).then(|| percent_decode(user))
    }

    /// The password of a `scheme://user:password@` URL, percent-decoded.
    pub fn password(&self) -> Option<String> {
        let userinfo = &self.text[self.userinfo.clone()?];
        userinfo.split_once(':').map(|(_, password)| percent_decode(password))
    }

    /// The URL as written with its `userinfo@` replaced (removed when `with` is `None`).
    fn with_userinfo(&self, with: Option<&str>) -> String {
        let Some(userinfo) = &self.userinfo else {
            return self.text.to_string();
        };
        let after_at = &self.text[userinfo.end + 1..];
        let before = &self.text[..userinfo.start];
        match with {
            Some(shown) => format!("{before}{shown}@{after_at}"),
            None => format!("{before}{after_at}"),
        }
    }

    /// The URL without its `user:password@`.
    pub fn without_credentials(&self) -> String {
        self.with_userinfo(None)
    }

    /// The URL as shown to people: see [`redact_url`].
    pub fn redacted(&self) -> String {
        match &self.userinfo {
            Some(userinfo) if self.is_http() || self.text[userinfo.clone()].contains(':') => {
                self.with_userinfo(Some(MASKED))
            }
            _ => self.text.to_string(),
        }
    }

    /// A mirror's URL as shown: see [`display_url`].
    pub fn shown(&self, has_password: bool) -> String {
        match &self.authority {
            Some(authority) if has_password && self.is_http() && self.userinfo.is_none() => {
                format!(
                    "{}{MASKED}@{}",
                    &self.text[..authority.start],
                    &self.text[authority.start..]
                )
            }
            _ => self.redacted(),
        }
    }

    /// `scheme://host[:port]` of an HTTP(S) URL: see [`http_origin`].
    pub fn http_origin(&self) -> Option<String> {
        let authority = self.authority.clone().filter(|_| self.is_http())?;
        let host_start = self
            .userinfo
            .as_ref()
            .map_or(authority.start, |userinfo| userinfo.end + 1);
        let host_port = &self.text[host_start..authority.end];
        let host_port = &host_port[..host_port.find(['?', '#']).unwrap_or(host_port.len())];
        let scheme = &self.text[..authority.start - 3];
        (!host_port.is_empty()).then(|| format!("{}://{host_port}", scheme.to_ascii_lowercase()))
    }
}

/// What stands for a userinfo that may hold a secret.
const MASKED: &str = "*****:*****";

/// The host (lower case, IPv6 without brackets) and port of a remote URL, as gix-url reads them
/// once the forms it does not know are rewritten.
fn host_and_port(text: &str) -> (Option<String>, Option<u16>) {
    let rewritten = bracketed_scp_as_ssh_url(text);
    let mut candidate = rewritten.as_deref().unwrap_or(text).to_string();
    // gix-url wants a path after an SSH or git host; a host without one still names the host.
    if let Some(scheme_end) = candidate.find("://")
        && !candidate[scheme_end + 3..].contains('/')
    {
        candidate.push('/');
    }
    let Ok(url) = gix_url::parse(candidate.as_str()) else {
        return (None, None);
    };
    let host = url.host().map(|host| {
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        host.to_ascii_lowercase()
    });
    (host.filter(|h| !h.is_empty()), url.port)
}

/// git's scp-like forms with brackets, `[host:port]:path`, `[user@host:port]:path` and
/// `user@[host:port]:path` (and `[::1]:path`), as the `ssh://` URL they mean, which gix-url reads:
/// git takes a port from the brackets when what follows the first colon is a number.
fn bracketed_scp_as_ssh_url(text: &str) -> Option<String> {
    if text.contains("://") {
        return None;
    }
    let open = if text.starts_with('[') { 0 } else { text.find("@[")? + 1 };
    let close = open + text[open..].find(']')?;
    let path = text[close + 1..].strip_prefix(':')?;
    let user_outside = &text[..open];
    let inside = &text[open + 1..close];
    let (user_inside, host_port) = inside.rsplit_once('@').map_or(("", inside), |(u, h)| (u, h));
    let user = if user_outside.is_empty() {
        if user_inside.is_empty() {
            String::new()
        } else {
            format!("{user_inside}@")
        }
    } else {
        user_outside.to_string()
    };
    let (host, port) = match host_port.split_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => (host, Some(port)),
        _ => (host_port, None),
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    Some(format!("ssh://{user}{host}{port}/{path}"))
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
    let parsed = RemoteUrl::parse(url);
    SplitUrl {
        url: parsed.without_credentials(),
        username: parsed.username(),
        password: parsed.password(),
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
    RemoteUrl::parse(url).redacted()
}

/// A mirror's URL as shown in `list`, `status` and reports: userinfo
/// redacted, and `*****:*****@` when the mirror authenticates over HTTP(S)
/// with a password, as GitLab shows it.
pub fn display_url(url: &str, has_password: bool) -> String {
    RemoteUrl::parse(url).shown(has_password)
}

/// The host a mirror URL reaches (`host[:port]`; user names and paths dropped), which is what
/// hangs when a server does. Local paths and `file://` URLs share one host, `file`.
pub fn host_of(url: &str) -> String {
    RemoteUrl::parse(url).host_identity()
}

/// `scheme://host[:port]` of an HTTP(S) URL, without user info or path: the scope of the
/// credentials given for it (`credential.<origin>.helper`). `None` for other transports.
pub fn http_origin(url: &str) -> Option<String> {
    RemoteUrl::parse(url).http_origin()
}

#[cfg(test)]
mod tests;
