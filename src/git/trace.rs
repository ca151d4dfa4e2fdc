//! git's own traces of one command, read back for what git's one-line errors do not say: whether
//! the mirror was asked for a `report-status` (the packet trace), and for HTTP(S) mirrors the
//! answers' status codes, `Retry-After` and redirects, and what curl found wrong with a TLS
//! certificate (the curl trace).
//!
//! The traces live in a private directory (0700, files created 0600 before git opens them) for
//! as long as the command runs, and are removed with it. git redacts `Authorization` and
//! cookies from the curl trace (`GIT_TRACE_REDACT`, set explicitly) and traces no bodies
//! (`GIT_TRACE_CURL_NO_DATA`); of what is left only the response headers named above and curl's
//! certificate lines are read back, never the request headers.

use crate::util::remote_url::{Transport, http_origin, transport_of};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// The traces of one git command (see the module documentation).
pub struct Trace {
    dir: tempfile::TempDir,
    packets: bool,
    http: bool,
    /// The mirror's `scheme://host[:port]`, to tell a redirect elsewhere from one on the same host.
    origin: Option<String>,
}

const PACKETS: &str = "packets";
const CURL: &str = "curl";

impl Trace {
    /// Asks git for the traces that tell something about a command talking to `url`: packets
    /// when `packets` and the mirror is on the network (a local mirror runs our own git's
    /// receive-pack, which always offers a report, and its hooks would be traced too), HTTP
    /// headers when it is an HTTP(S) mirror. `None` when there is nothing to trace or the
    /// private directory cannot be made (the command then runs untraced).
    pub fn start(cmd: &mut Command, url: &str, packets: bool) -> Option<Trace> {
        let transport = transport_of(url);
        let packets = packets && transport != Transport::File;
        let http = matches!(transport, Transport::Http | Transport::Https);
        if !packets && !http {
            return None;
        }
        let dir = crate::util::fsutil::private_temp_dir("trace").ok()?;
        let trace = Trace {
            dir,
            packets,
            http,
            origin: http_origin(url),
        };
        if packets {
            cmd.env("GIT_TRACE_PACKET", trace.private_file(PACKETS).ok()?);
        }
        if http {
            cmd.env("GIT_TRACE_CURL", trace.private_file(CURL).ok()?)
                .env("GIT_TRACE_CURL_NO_DATA", "1")
                .env("GIT_TRACE_REDACT", "1");
        }
        Some(trace)
    }

    /// Creates an empty trace file only its owner can read, for git to append to (git creates
    /// a missing one with mode 644).
    fn private_file(&self, name: &str) -> std::io::Result<PathBuf> {
        let path = self.dir.path().join(name);
        crate::util::fsutil::write_private(&path, b"")?;
        Ok(path)
    }

    /// The directory holding the traces (for tests of their modes).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the commands git sent asked for a report; `None` when it sent none or packets
    /// were not traced.
    pub fn report_requested(&self) -> Option<bool> {
        if !self.packets {
            return None;
        }
        let file = std::fs::File::open(self.dir.path().join(PACKETS)).ok()?;
        report_requested_in(std::io::BufReader::new(file))
    }

    /// What the HTTP answers said; empty for a mirror that is not HTTP(S).
    pub fn http(&self) -> HttpFacts {
        if !self.http {
            return HttpFacts::default();
        }
        match std::fs::File::open(self.dir.path().join(CURL)) {
            Ok(file) => http_facts_in(std::io::BufReader::new(file), self.origin.as_deref(), SystemTime::now()),
            Err(_) => HttpFacts::default(),
        }
    }
}

/// Reads a packet trace up to the first command git sent (`<old> <new> <ref>\0<capabilities>`).
pub(super) fn report_requested_in(trace: impl BufRead) -> Option<bool> {
    for line in trace.split(b'\n').map_while(Result::ok) {
        let line = String::from_utf8_lossy(&line);
        let Some((_, packet)) = line.split_once("packet:") else {
            continue;
        };
        let packet = packet.trim_start();
        let Some(at) = packet.find(['>', '<']) else { continue };
        let (identity, rest) = packet.split_at(at);
        if !rest.starts_with("> ") || identity == "receive-pack" {
            continue;
        }
        let Some((command, capabilities)) = rest[2..].split_once("\\0") else {
            continue;
        };
        if command.split(' ').count() != 3 {
            continue;
        }
        return Some(capabilities.split(' ').any(|c| c.starts_with("report-status")));
    }
    None
}

/// What the HTTP answers of one command said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpFacts {
    /// The status code of each answer, in order.
    pub statuses: Vec<u16>,
    /// How long the last answer with `Retry-After` asked to wait (a date is counted from now).
    pub retry_after: Option<Duration>,
    /// The `scheme://host[:port]` a redirect sent git to, when it is not the mirror's own.
    pub redirected_to: Option<String>,
    /// What curl found wrong with the server's certificate.
    pub certificate: CertificateFacts,
}

impl HttpFacts {
    /// The status of the last answer that was an error (4xx, 5xx), if any.
    pub fn error_status(&self) -> Option<u16> {
        self.statuses.iter().rev().copied().find(|s| *s >= 400)
    }
}

/// What curl says about a server certificate it checked (GnuTLS and OpenSSL builds word it
/// differently; both are read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertificateFacts {
    pub expired: bool,
    pub not_yet_valid: bool,
    /// Who issued it (`issuer: CN=…`), when curl showed it.
    pub issuer: Option<String>,
}

/// Reads a curl trace: response status lines and the `Retry-After` and `Location` headers of
/// each answer, and curl's certificate lines; nothing else is kept.
pub(super) fn http_facts_in(trace: impl BufRead, origin: Option<&str>, now: SystemTime) -> HttpFacts {
    let mut facts = HttpFacts::default();
    for line in trace.split(b'\n').map_while(Result::ok) {
        let line = String::from_utf8_lossy(&line);
        if let Some((_, header)) = line.split_once("<= Recv header: ") {
            read_response_header(header.trim_end(), origin, now, &mut facts);
        } else if let Some((_, info)) = line.split_once("== Info: ") {
            read_certificate_line(info.trim(), &mut facts.certificate);
        }
    }
    facts
}

fn read_response_header(header: &str, origin: Option<&str>, now: SystemTime, facts: &mut HttpFacts) {
    if let Some(status) = header.strip_prefix("HTTP/") {
        // `HTTP/1.1 429 Too Many Requests`, `HTTP/2 503`.
        if let Some(code) = status.split(' ').nth(1).and_then(|c| c.parse().ok()) {
            facts.statuses.push(code);
        }
        return;
    }
    let Some((name, value)) = header.split_once(':') else {
        return;
    };
    let value = value.trim();
    if name.eq_ignore_ascii_case("Retry-After") {
        facts.retry_after = parse_retry_after(value, now);
    } else if name.eq_ignore_ascii_case("Location")
        && let Some(target) = http_origin(value)
        && origin.is_none_or(|origin| !same_origin(origin, &target))
    {
        facts.redirected_to = Some(target);
    }
}

/// Whether two `scheme://host[:port]` name the same place (an explicit default port too).
fn same_origin(a: &str, b: &str) -> bool {
    let normal = |origin: &str| {
        let origin = origin.to_ascii_lowercase();
        origin
            .strip_suffix(":443")
            .filter(|o| o.starts_with("https://"))
            .or_else(|| origin.strip_suffix(":80").filter(|o| o.starts_with("http://")))
            .map(str::to_string)
            .unwrap_or(origin)
    };
    normal(a) == normal(b)
}

/// `Retry-After` (RFC 9110): a number of seconds, or an HTTP date counted from `now` (a date
/// already past means at once).
pub(super) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok()?;
    let at = SystemTime::from(at);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn read_certificate_line(info: &str, certificate: &mut CertificateFacts) {
    let lower = info.to_ascii_lowercase();
    if lower.contains("expiration date failed") || lower.contains("certificate has expired") {
        certificate.expired = true;
    } else if lower.contains("activation date failed") || lower.contains("certificate is not yet valid") {
        certificate.not_yet_valid = true;
    } else if let Some(issuer) = info.strip_prefix("issuer: ") {
        certificate.issuer.get_or_insert_with(|| issuer.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn facts(trace: &str, origin: &str) -> HttpFacts {
        http_facts_in(
            trace.as_bytes(),
            Some(origin),
            SystemTime::UNIX_EPOCH + Duration::from_secs(NOW),
        )
    }

    #[test]
    fn statuses_retry_after_and_redirects_elsewhere_are_read() {
        // Captured from git 2.47 (GIT_TRACE_CURL, GIT_TRACE_CURL_NO_DATA=1): a redirect to
        // another port, then a 401 there; the Authorization line as git redacts it.
        let trace = "22:47:14.1 http.c:664 => Send header: Authorization: Basic <redacted>\n\
22:47:14.1 http.c:664 <= Recv header, 0000000032 bytes (0x00000020)\n\
22:47:14.1 http.c:664 <= Recv header: HTTP/1.0 301 Moved Permanently\n\
22:47:14.1 http.c:664 <= Recv header: Location: http://localhost:18702/x.git/info/refs?service=git-upload-pack\n\
22:47:14.1 http.c:664 <= Recv header:\n\
22:47:14.1 http.c:664 == Info: Clear auth, redirects to port from 18701 to 18702\n\
22:47:14.1 http.c:664 <= Recv header: HTTP/1.0 401 Unauthorized\n\
22:47:14.1 http.c:664 <= Recv header: WWW-Authenticate: Basic realm=\"b\"\n";
        let read = facts(trace, "http://127.0.0.1:18701");
        assert_eq!(read.statuses, [301, 401]);
        assert_eq!(read.error_status(), Some(401));
        assert_eq!(read.redirected_to.as_deref(), Some("http://localhost:18702"));
        assert_eq!(read.retry_after, None);
        let same_host = "<= Recv header: HTTP/1.1 302 Found\n<= Recv header: Location: https://h/new/path.git\n";
        assert_eq!(facts(same_host, "https://h:443").redirected_to, None);
        let relative = "<= Recv header: HTTP/1.1 302 Found\n<= Recv header: Location: /new/path.git\n";
        assert_eq!(facts(relative, "https://h").redirected_to, None);
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let trace = "<= Recv header: HTTP/2 429\n<= Recv header: retry-after: 30\n";
        let read = facts(trace, "https://h");
        assert_eq!(
            (read.error_status(), read.retry_after),
            (Some(429), Some(Duration::from_secs(30)))
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW);
        // 2027-01-15T08:00:00Z is NOW + 3600 s.
        assert_eq!(
            parse_retry_after("Fri, 15 Jan 2027 09:00:00 GMT", now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn certificate_problems_are_read_from_curls_words() {
        // Captured from git 2.47 with libcurl-gnutls, with verification off (see `certificate`).
        let gnutls = "== Info:   common name: x (does not match '127.0.0.1')\n\
== Info:   server certificate expiration date FAILED\n\
== Info:   server certificate activation date OK\n\
== Info:   issuer: CN=test CA\n";
        let read = facts(gnutls, "https://127.0.0.1:1").certificate;
        assert!(read.expired && !read.not_yet_valid);
        assert_eq!(read.issuer.as_deref(), Some("CN=test CA"));
        let future = facts("== Info:   server certificate activation date FAILED\n", "https://h").certificate;
        assert!(future.not_yet_valid && !future.expired);
        let openssl = facts(
            "== Info: SSL certificate problem: certificate has expired\n",
            "https://h",
        )
        .certificate;
        assert!(openssl.expired);
    }

    #[test]
    fn a_report_request_is_read_from_the_first_command() {
        let with = "packet:         push> 0000 1111 refs/heads/a\\0 report-status side-band-64k\n";
        assert_eq!(report_requested_in(with.as_bytes()), Some(true));
        let without = "packet: receive-pack> ignored\npacket:         push> 0000 1111 refs/heads/a\\0 side-band-64k\n";
        assert_eq!(report_requested_in(without.as_bytes()), Some(false));
        assert_eq!(report_requested_in("".as_bytes()), None);
    }
}
