//! Git over smart HTTP: `git http-backend` run as a CGI per request, and the misbehaviours a test
//! asks for, made by rewriting its pkt-lines.

use super::*;

/// A git request: Basic auth against the git credentials, then the CGI.
pub(super) fn serve_git(
    req: &Request,
    peer: SocketAddr,
    reader: &mut impl BufRead,
    writer: &mut TcpStream,
    shared: &Shared,
) -> Result<(), String> {
    let misbehaviour = shared.misbehaviour.lock().expect("HTTP misbehaviour lock").clone();
    if let Some(Misbehaviour::Answer { status, headers }) = &misbehaviour {
        let mut headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        headers.push(("Content-Type", "text/plain"));
        return write_response(writer, status, &headers, format!("{status}\n").as_bytes());
    }
    if let Some(Misbehaviour::RedirectTo(base)) = &misbehaviour {
        let location = format!("{base}{}?{}", req.path, req.query);
        return write_response(writer, "301 Moved Permanently", &[("Location", &location)], b"moved\n");
    }
    let expected = shared.credentials.lock().expect("HTTP credentials lock").clone();
    match check_basic(req, &expected) {
        Auth::Ok => serve_authorized(req, peer, reader, writer, shared),
        failed => {
            let counter = match failed {
                Auth::Wrong => &shared.auth_failures,
                _ => &shared.unauthenticated,
            };
            counter.fetch_add(1, Ordering::SeqCst);
            write_response(
                writer,
                "401 Unauthorized",
                &[
                    ("WWW-Authenticate", "Basic realm=\"git\""),
                    ("Content-Type", "text/plain"),
                ],
                b"authentication required\n",
            )
        }
    }
}

fn serve_authorized(
    req: &Request,
    peer: SocketAddr,
    reader: &mut impl BufRead,
    writer: &mut TcpStream,
    shared: &Shared,
) -> Result<(), String> {
    if req.is_chunked() {
        shared.chunked_requests.fetch_add(1, Ordering::SeqCst);
    }
    let body = read_body(req, reader, writer)?;
    let dropping = matches!(
        *shared.misbehaviour.lock().expect("HTTP misbehaviour lock"),
        Some(Misbehaviour::AcknowledgeAndDrop)
    );
    if dropping && req.method == "POST" && req.path.ends_with("/git-receive-pack") {
        shared.dropped_pushes.fetch_add(1, Ordering::SeqCst);
        let report = acknowledge_everything(body.as_deref().unwrap_or_default());
        return write_response(
            writer,
            "200 OK",
            &[("Content-Type", "application/x-git-receive-pack-result")],
            &report,
        );
    }
    let output = run_backend(req, peer, body.as_deref(), shared)?;
    let response = parse_cgi_output(&output)?;
    let headers: Vec<(&str, &str)> = response.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let advertises_receive_pack = req.method == "GET" && req.query.contains("service=git-receive-pack");
    if advertises_receive_pack && shared.hide_report_status.load(Ordering::SeqCst) {
        let body = without_report_status(response.body);
        return write_response(writer, &response.status, &headers, &body);
    }
    write_response(writer, &response.status, &headers, response.body)
}

/// The length a pkt-line at the start of `bytes` announces (0 for a flush or an unreadable one).
fn pkt_len(bytes: &[u8]) -> usize {
    std::str::from_utf8(&bytes[..4])
        .ok()
        .and_then(|hex| usize::from_str_radix(hex, 16).ok())
        .unwrap_or(0)
}

/// `payload` as a pkt-line.
fn pkt_line(payload: &[u8]) -> Vec<u8> {
    let mut line = format!("{:04x}", payload.len() + 4).into_bytes();
    line.extend_from_slice(payload);
    line
}

/// receive-pack's report for a push request (pkt-line commands `<old> <new> <ref>`, the first
/// with `\0<capabilities>`, then a flush and the pack) saying every ref was updated, without
/// looking at the pack: `unpack ok`, `ok <ref>` per command, in side-band 1 when asked.
fn acknowledge_everything(request: &[u8]) -> Vec<u8> {
    let mut refs = Vec::new();
    let mut side_band = false;
    let mut rest = request;
    while rest.len() >= 4 {
        let len = pkt_len(rest);
        if len < 4 || len > rest.len() {
            break; // the flush before the pack
        }
        let payload = &rest[4..len];
        let (command, capabilities) = match payload.iter().position(|b| *b == 0) {
            Some(nul) => (&payload[..nul], &payload[nul + 1..]),
            None => (payload, &b""[..]),
        };
        side_band |= String::from_utf8_lossy(capabilities).contains("side-band");
        let command = String::from_utf8_lossy(command);
        if let Some(name) = command.trim_end().split(' ').nth(2) {
            refs.push(name.to_string());
        }
        rest = &rest[len..];
    }
    let mut report = pkt_line(b"unpack ok\n");
    for name in refs {
        report.extend(pkt_line(format!("ok {name}\n").as_bytes()));
    }
    report.extend_from_slice(b"0000");
    if !side_band {
        return report;
    }
    let mut banded = Vec::new();
    for chunk in report.chunks(65000) {
        let mut payload = vec![1u8];
        payload.extend_from_slice(chunk);
        banded.extend(pkt_line(&payload));
    }
    banded.extend_from_slice(b"0000");
    banded
}

/// A ref advertisement whose capability list (after the NUL of its first ref line) has no
/// `report-status` or `report-status-v2`; pkt-line lengths adjusted.
fn without_report_status(advertisement: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(advertisement.len());
    let mut rest = advertisement;
    let mut done = false;
    while rest.len() >= 4 {
        let len = pkt_len(rest);
        if len < 4 || len > rest.len() {
            out.extend_from_slice(&rest[..4]); // a flush packet
            rest = &rest[4..];
            continue;
        }
        let payload = &rest[4..len];
        match payload.iter().position(|b| *b == 0) {
            Some(nul) if !done => {
                let capabilities = String::from_utf8_lossy(&payload[nul + 1..]);
                let kept: Vec<&str> = capabilities
                    .trim_end_matches('\n')
                    .split(' ')
                    .filter(|c| !c.starts_with("report-status"))
                    .collect();
                let mut line = payload[..=nul].to_vec();
                line.extend_from_slice(kept.join(" ").as_bytes());
                line.push(b'\n');
                out.extend(pkt_line(&line));
                done = true;
            }
            _ => out.extend_from_slice(&rest[..len]),
        }
        rest = &rest[len..];
    }
    out.extend_from_slice(rest);
    out
}

/// Runs `git http-backend` for the request and returns its whole stdout.
fn run_backend(req: &Request, peer: SocketAddr, body: Option<&[u8]>, shared: &Shared) -> Result<Vec<u8>, String> {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&shared.log)
        .map_err(|e| format!("open log: {e}"))?;
    let mut cmd = Command::new(&shared.backend);
    shared.env.apply(&mut cmd);
    cmd.env("GIT_PROJECT_ROOT", &shared.project_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REMOTE_USER", &shared.user)
        .env("REMOTE_ADDR", peer.ip().to_string())
        .env("REQUEST_METHOD", &req.method)
        .env("PATH_INFO", &req.path)
        .env("QUERY_STRING", &req.query)
        .current_dir(&shared.project_root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr);
    for (var, header) in [
        ("CONTENT_TYPE", "Content-Type"),
        ("HTTP_CONTENT_ENCODING", "Content-Encoding"),
        ("GIT_PROTOCOL", "Git-Protocol"),
    ] {
        match req.header(header) {
            Some(value) => cmd.env(var, value),
            None => cmd.env_remove(var),
        };
    }
    if let Some(body) = body {
        cmd.env("CONTENT_LENGTH", body.len().to_string());
    }
    match req.header("Authorization") {
        Some(value) if shared.pass_authorization.load(Ordering::SeqCst) => cmd.env("HTTP_AUTHORIZATION", value),
        _ => cmd.env_remove("HTTP_AUTHORIZATION"),
    };
    let mut child = cmd.spawn().map_err(|e| format!("spawn git http-backend: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let body = body.unwrap_or_default().to_vec();
    // Write from another thread: the backend may answer before reading all.
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let output = child
        .wait_with_output()
        .map_err(|e| format!("wait for http-backend: {e}"))?;
    if let Ok(Err(e)) = writer.join() {
        log_line(&shared.log, &format!("harness: writing the body to http-backend: {e}"));
    }
    if !output.status.success() {
        log_line(
            &shared.log,
            &format!("harness: git http-backend exited with {}", output.status),
        );
    }
    Ok(output.stdout)
}

/// A CGI response: status line text, headers (without `Status` and
/// `Content-Length`, which the server writes itself) and body.
struct CgiResponse<'a> {
    status: String,
    headers: Vec<(String, String)>,
    body: &'a [u8],
}

/// Splits CGI output into status, headers and body.
fn parse_cgi_output(out: &[u8]) -> Result<CgiResponse<'_>, String> {
    let (head_len, sep_len) = find(out, b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| find(out, b"\n\n").map(|i| (i, 2)))
        .ok_or_else(|| {
            let shown = String::from_utf8_lossy(&out[..out.len().min(200)]).into_owned();
            format!("CGI output without a header block: {shown:?}")
        })?;
    let head = String::from_utf8_lossy(&out[..head_len]);
    let mut status = "200 OK".to_owned();
    let mut headers = Vec::new();
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        let (name, value) = line.split_once(':').ok_or_else(|| format!("bad CGI header {line:?}"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("Status") {
            status = value.to_owned();
        } else if !name.eq_ignore_ascii_case("Content-Length") {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    Ok(CgiResponse {
        status,
        headers,
        body: &out[head_len + sep_len..],
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
