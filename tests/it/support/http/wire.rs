//! HTTP/1.1 on the wire for the test servers: reading a request's head and body (with `Content-
//! Length` or chunked), checking Basic auth, and writing a response and closing without losing it.

use super::*;

/// Upper bound on a request head, to fail loudly instead of eating memory.
const MAX_HEAD: usize = 64 * 1024;

/// The parts of a request the server uses.
pub(in crate::support) struct Request {
    pub(in crate::support) method: String,
    pub(in crate::support) path: String,
    pub(super) query: String,
    headers: Vec<(String, String)>,
}

impl Request {
    pub(in crate::support) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn is_chunked(&self) -> bool {
        self.header("Transfer-Encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }
}

/// Whether a request's credentials match.
pub(in crate::support) enum Auth {
    Ok,
    Missing,
    Wrong,
}

/// Reads the request line and headers; `None` if the peer closed first.
pub(super) fn read_head(reader: &mut impl BufRead) -> Result<Option<Request>, String> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).map_err(|e| format!("read request: {e}"))?;
        if n == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err("connection closed inside the request head".into());
        }
        total += n;
        if total > MAX_HEAD {
            return Err("request head too large".into());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let request_line = &lines[0];
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("bad request line {request_line:?}"));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = lines[1..]
        .iter()
        .map(|l| {
            let (name, value) = l.split_once(':').ok_or_else(|| format!("bad header {l:?}"))?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect::<Result<_, String>>()?;
    Ok(Some(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
    }))
}

/// Checks the request's `Authorization: Basic` token against `expected`
/// (a [`basic_credentials`] token).
pub(in crate::support) fn check_basic(req: &Request, expected: &str) -> Auth {
    let Some(value) = req.header("Authorization") else {
        return Auth::Missing;
    };
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("basic") => {
            if token.trim() == expected {
                Auth::Ok
            } else {
                Auth::Wrong
            }
        }
        _ => Auth::Wrong,
    }
}

/// Reads the request body whole, from `Content-Length` or chunked (`None`
/// if it has neither), first answering `Expect: 100-continue`.
pub(in crate::support) fn read_body(
    req: &Request,
    reader: &mut impl BufRead,
    writer: &mut TcpStream,
) -> Result<Option<Vec<u8>>, String> {
    if req
        .header("Expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        writer
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|e| format!("write 100 Continue: {e}"))?;
    }
    if req.is_chunked() {
        return read_chunked(reader).map(Some);
    }
    let Some(len) = req.header("Content-Length") else {
        return Ok(None);
    };
    let len: usize = len.parse().map_err(|_| format!("bad Content-Length {len:?}"))?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body).map_err(|e| format!("read body: {e}"))?;
    Ok(Some(body))
}

/// Decodes a chunked body (chunk extensions and trailers are ignored).
fn read_chunked(reader: &mut impl BufRead) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("read chunk size: {e}"))?;
        let size = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size.trim(), 16).map_err(|_| format!("bad chunk size line {line:?}"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                let n = reader.read_line(&mut line).map_err(|e| format!("read trailer: {e}"))?;
                if n == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .map_err(|e| format!("read chunk: {e}"))?;
        let mut crlf = [0; 2];
        reader
            .read_exact(&mut crlf)
            .map_err(|e| format!("read chunk end: {e}"))?;
        if &crlf != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
    }
}

pub(in crate::support) fn write_response(
    writer: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), String> {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    writer
        .write_all(head.as_bytes())
        .and_then(|()| writer.write_all(body))
        .and_then(|()| writer.flush())
        .map_err(|e| format!("write response: {e}"))
}

/// Half-closes and drains what the client still sends, so unread request
/// bytes do not turn our close into a reset that loses the response.
pub(super) fn lingering_close(reader: &mut impl Read, writer: &TcpStream) {
    let _ = writer.shutdown(Shutdown::Write);
    let _ = writer.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = std::io::copy(&mut reader.take(64 << 20), &mut std::io::sink());
}

/// The token of an `Authorization: Basic` header for `user:password`.
pub fn basic_credentials(user: &str, password: &str) -> String {
    base64(format!("{user}:{password}").as_bytes())
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let bytes = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
