//! Smart-HTTP git server: a small HTTP/1.1 server on `127.0.0.1:0` that
//! requires Basic auth and runs `git http-backend` as a CGI per request.
//!
//! One thread per connection, one request per connection (`Connection:
//! close`). Request bodies may come with `Content-Length` or chunked (git
//! chunks large pushes); they are read whole, then given to the CGI with
//! `CONTENT_LENGTH` set. Harness errors and the CGI's stderr go to a log file.
//!
//! Started with [`HttpGitServer::start_with_lfs`], it also serves the Git LFS
//! API (see [`super::lfs`]) under `…/info/lfs/` and `/lfs/`, with its own
//! credentials, so a test can break LFS auth while git auth still works.

use super::lfs::{self, LfsStore};
use super::{ChildEnv, TestEnv, git_exec_path, log_line};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Upper bound on a request head, to fail loudly instead of eating memory.
const MAX_HEAD: usize = 64 * 1024;

/// A running smart-HTTP server. Drop stops it.
pub struct HttpGitServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// State shared with the connection threads.
struct Shared {
    /// The listening address, for the absolute URLs LFS answers with.
    addr: SocketAddr,
    backend: PathBuf,
    project_root: PathBuf,
    user: String,
    /// `base64(user:password)` that the Authorization header must carry.
    credentials: Mutex<String>,
    env: ChildEnv,
    log: PathBuf,
    requests: AtomicUsize,
    unauthenticated: AtomicUsize,
    auth_failures: AtomicUsize,
    chunked_requests: AtomicUsize,
    dropped_pushes: AtomicUsize,
    /// The LFS service, if the server was started with one.
    lfs: Option<Arc<LfsStore>>,
    /// Give the CGI the `Authorization` header as `HTTP_AUTHORIZATION` (Apache's `CGIPassAuth`).
    pass_authorization: AtomicBool,
    /// Take `report-status` out of receive-pack's capabilities, as a server that is not git
    /// may: git then reports every ref it sent as pushed without being told.
    hide_report_status: AtomicBool,
    /// How the server misbehaves, if it does (see [`Misbehaviour`]).
    misbehaviour: Mutex<Option<Misbehaviour>>,
}

/// Ways a git server fails that a test asks for.
#[derive(Clone, Debug)]
pub enum Misbehaviour {
    /// Every git request is answered with this status line (`"429 Too Many Requests"`) and
    /// headers, before any authentication, as a rate-limiting proxy does.
    Answer {
        status: String,
        headers: Vec<(String, String)>,
    },
    /// Every git request is redirected (301) to the same path and query on this base URL
    /// (`http://127.0.0.1:PORT`), as a server whose repositories moved.
    RedirectTo(String),
    /// Pushes are answered `ok` for every ref and nothing is stored, as a server that cannot
    /// keep the repository's objects may do; everything else is served as usual.
    AcknowledgeAndDrop,
}

impl HttpGitServer {
    /// Whether `git http-backend` is installed.
    pub fn available() -> Result<(), String> {
        git_exec_path("git-http-backend").map(drop)
    }

    /// Serves the repositories under `project_root` to `user`/`password`,
    /// running the backend with the test's environment. The log is
    /// `<env root>/http-server.log`.
    pub fn start(env: &TestEnv, project_root: &Path, user: &str, password: &str) -> HttpGitServer {
        HttpGitServer::start_inner(env, project_root, user, password, None)
    }

    /// [`start`](Self::start), plus a Git LFS server whose objects live in
    /// `<env root>/lfs-store` and which accepts `user`/`password` until
    /// [`LfsStore::set_password`] changes its password.
    pub fn start_with_lfs(env: &TestEnv, project_root: &Path, user: &str, password: &str) -> HttpGitServer {
        let store = LfsStore::new(&env.path("lfs-store"), user, password);
        HttpGitServer::start_inner(env, project_root, user, password, Some(Arc::new(store)))
    }

    fn start_inner(
        env: &TestEnv,
        project_root: &Path,
        user: &str,
        password: &str,
        lfs: Option<Arc<LfsStore>>,
    ) -> HttpGitServer {
        let backend = git_exec_path("git-http-backend").unwrap_or_else(|e| panic!("{e}"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for HTTP");
        let addr = listener.local_addr().expect("HTTP listener address");
        let shared = Arc::new(Shared {
            addr,
            backend,
            project_root: project_root
                .canonicalize()
                .unwrap_or_else(|e| panic!("HTTP project root {}: {e}", project_root.display())),
            user: user.to_owned(),
            credentials: Mutex::new(basic_credentials(user, password)),
            env: env.child_env().clone(),
            log: env.path("http-server.log"),
            requests: AtomicUsize::new(0),
            unauthenticated: AtomicUsize::new(0),
            auth_failures: AtomicUsize::new(0),
            chunked_requests: AtomicUsize::new(0),
            dropped_pushes: AtomicUsize::new(0),
            lfs,
            pass_authorization: AtomicBool::new(false),
            hide_report_status: AtomicBool::new(false),
            misbehaviour: Mutex::new(None),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            std::thread::Builder::new()
                .name(format!("http-git-{}", addr.port()))
                .spawn(move || accept_loop(listener, &shared, &stop))
                .expect("spawn HTTP accept thread")
        };
        HttpGitServer {
            addr,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/<repo_rel>`, without credentials.
    pub fn url(&self, repo_rel: &str) -> String {
        format!("http://{}/{}", self.addr, repo_rel.trim_start_matches('/'))
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The LFS store; panics unless started with [`start_with_lfs`](Self::start_with_lfs).
    pub fn lfs(&self) -> &LfsStore {
        self.shared
            .lfs
            .as_deref()
            .expect("this HttpGitServer was started without LFS (use start_with_lfs)")
    }

    /// From now on only `password` is accepted for git requests (LFS
    /// requests have their own, see [`LfsStore::set_password`]).
    pub fn set_password(&self, password: &str) {
        let creds = basic_credentials(&self.shared.user, password);
        *self.shared.credentials.lock().expect("HTTP credentials lock") = creds;
    }

    /// From now on the backend (and the repositories' hooks) see the client's `Authorization`
    /// header in `HTTP_AUTHORIZATION`, as Apache's `CGIPassAuth On` gives it.
    pub fn pass_authorization_to_cgi(&self) {
        self.shared.pass_authorization.store(true, Ordering::SeqCst);
    }

    /// From now on receive-pack's advertisement offers no `report-status`: the server never
    /// says which refs it took.
    pub fn hide_report_status(&self) {
        self.shared.hide_report_status.store(true, Ordering::SeqCst);
    }

    /// From now on the server misbehaves so (`None`: it behaves again).
    pub fn misbehave(&self, misbehaviour: Option<Misbehaviour>) {
        *self.shared.misbehaviour.lock().expect("HTTP misbehaviour lock") = misbehaviour;
    }

    /// Pushes answered `ok` and dropped (see [`Misbehaviour::AcknowledgeAndDrop`]).
    pub fn dropped_pushes(&self) -> usize {
        self.shared.dropped_pushes.load(Ordering::SeqCst)
    }

    /// Requests received (each one fully parsed or not).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests that carried credentials which were wrong. Git's first
    /// request of each command carries none; those are counted by
    /// [`unauthenticated_requests`](Self::unauthenticated_requests) instead.
    pub fn auth_failures(&self) -> usize {
        self.shared.auth_failures.load(Ordering::SeqCst)
    }

    /// Requests answered 401 because they carried no Basic credentials.
    pub fn unauthenticated_requests(&self) -> usize {
        self.shared.unauthenticated.load(Ordering::SeqCst)
    }

    /// Requests whose body came with `Transfer-Encoding: chunked`.
    pub fn chunked_requests(&self) -> usize {
        self.shared.chunked_requests.load(Ordering::SeqCst)
    }
}

impl Drop for HttpGitServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocked accept(); the thread then drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: &Arc<Shared>, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match conn {
            Ok(stream) => {
                let conn_shared = Arc::clone(shared);
                let spawned = std::thread::Builder::new().name("http-git-conn".into()).spawn(move || {
                    if let Err(e) = serve_connection(stream, &conn_shared) {
                        log_line(&conn_shared.log, &format!("harness: {e}"));
                    }
                });
                if let Err(e) = spawned {
                    log_line(&shared.log, &format!("harness: cannot spawn thread: {e}"));
                }
            }
            Err(e) => log_line(&shared.log, &format!("harness: accept failed: {e}")),
        }
    }
}

/// The parts of a request the server uses.
pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    query: String,
    headers: Vec<(String, String)>,
}

impl Request {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn is_chunked(&self) -> bool {
        self.header("Transfer-Encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }
}

/// Whether a request's credentials match.
pub(super) enum Auth {
    Ok,
    Missing,
    Wrong,
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> Result<(), String> {
    let peer = stream.peer_addr().map_err(|e| format!("peer address: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| format!("set timeout: {e}"))?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| format!("clone socket: {e}"))?);
    let mut writer = stream;

    let Some(req) = read_head(&mut reader)? else {
        return Ok(()); // closed before a request: the shutdown wake-up, or a probe
    };
    shared.requests.fetch_add(1, Ordering::SeqCst);

    let result = if lfs::is_lfs_path(&req.path) {
        serve_lfs(&req, &mut reader, &mut writer, shared)
    } else {
        serve_git(&req, peer, &mut reader, &mut writer, shared)
    };
    lingering_close(&mut reader, &writer);
    result.map_err(|e| format!("{} {}: {e}", req.method, req.path))
}

/// An LFS request: handed to the store, or 404 when the server has none
/// (as a git host without LFS answers).
fn serve_lfs(req: &Request, reader: &mut impl BufRead, writer: &mut TcpStream, shared: &Shared) -> Result<(), String> {
    match &shared.lfs {
        Some(store) => lfs::serve(req, reader, writer, store, shared.addr, &shared.log),
        None => write_response(
            writer,
            "404 Not Found",
            &[("Content-Type", "text/plain")],
            b"no LFS here\n",
        ),
    }
}

/// A git request: Basic auth against the git credentials, then the CGI.
fn serve_git(
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

/// Reads the request line and headers; `None` if the peer closed first.
fn read_head(reader: &mut impl BufRead) -> Result<Option<Request>, String> {
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
pub(super) fn check_basic(req: &Request, expected: &str) -> Auth {
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

/// Reads the request body whole, from `Content-Length` or chunked (`None`
/// if it has neither), first answering `Expect: 100-continue`.
pub(super) fn read_body(
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

pub(super) fn write_response(
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
fn lingering_close(reader: &mut impl Read, writer: &TcpStream) {
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
