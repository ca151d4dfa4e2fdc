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

mod backend;
mod wire;

use backend::serve_git;
pub use wire::basic_credentials;
pub(super) use wire::{Auth, Request, check_basic, read_body, write_response};
use wire::{lingering_close, read_head};

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
