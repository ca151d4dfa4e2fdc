//! A real Git LFS server for the tests: the batch API and the basic transfer
//! adapter, served on the smart-HTTP test server ([`super::HttpGitServer`]).
//!
//! It follows git-lfs's `docs/api/batch.md` and `basic-transfers.md`, so the
//! real `git lfs` client can push and fetch through it:
//!
//! - `POST {endpoint}/objects/batch` answers which objects to upload or
//!   download, with absolute `href`s back to this server;
//! - `PUT {endpoint}/objects/{oid}` stores an object after checking that its
//!   sha256 is the oid; `GET` reads it back;
//! - `POST {endpoint}/verify` confirms an upload;
//! - the locks API answers 404, which git-lfs takes as "locking unsupported".
//!
//! `{endpoint}` is the path up to and including `/info/lfs` (what git-lfs
//! derives from a remote URL) or a `/lfs/...` prefix (for an explicit
//! `lfs.url`). LFS requests carry their own Basic credentials, separate from
//! the git ones, so a test can break one and not the other.

use super::http::{Auth, Request, basic_credentials, check_basic, read_body, write_response};
use super::log_line;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The media type of every LFS API request and JSON response.
const LFS_JSON: &str = "application/vnd.git-lfs+json";

/// Seconds an action's `href` stays valid; nothing here expires, but
/// git-lfs expects the field.
const EXPIRES_IN: u64 = 3600;

/// The objects an LFS server holds, its credentials, and what it was asked.
/// Shared between the test and the server's connection threads.
pub struct LfsStore {
    /// One file per object, named by its oid.
    dir: PathBuf,
    user: String,
    /// `base64(user:password)` that LFS requests must carry.
    credentials: Mutex<String>,
    /// Accepted `PUT` uploads per oid.
    uploads: Mutex<BTreeMap<String, usize>>,
    /// Batch requests per operation (`upload`, `download`).
    batches: Mutex<BTreeMap<String, usize>>,
    auth_failures: AtomicUsize,
    unauthenticated: AtomicUsize,
    /// Makes temporary upload names unique across concurrent uploads.
    temp_counter: AtomicU64,
}

impl LfsStore {
    /// A store in `dir` (created) accepting `user`/`password`.
    pub(super) fn new(dir: &Path, user: &str, password: &str) -> LfsStore {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create LFS store {}: {e}", dir.display()));
        LfsStore {
            dir: dir.to_path_buf(),
            user: user.to_owned(),
            credentials: Mutex::new(basic_credentials(user, password)),
            uploads: Mutex::default(),
            batches: Mutex::default(),
            auth_failures: AtomicUsize::new(0),
            unauthenticated: AtomicUsize::new(0),
            temp_counter: AtomicU64::new(0),
        }
    }

    /// From now on only `password` is accepted for LFS requests; git
    /// requests keep the git server's password.
    pub fn set_password(&self, password: &str) {
        *self.credentials.lock().expect("LFS credentials lock") = basic_credentials(&self.user, password);
    }

    /// Every stored object: oid → size in bytes.
    pub fn objects(&self) -> BTreeMap<String, u64> {
        let entries = std::fs::read_dir(&self.dir).unwrap_or_else(|e| panic!("read {}: {e}", self.dir.display()));
        entries
            .flatten()
            .filter_map(|entry| {
                // Skips temporary files of uploads in flight.
                let name = entry.file_name().into_string().ok().filter(|n| is_oid(n))?;
                Some((name, entry.metadata().ok()?.len()))
            })
            .collect()
    }

    /// Where the object `oid` is (or would be) stored.
    pub fn object_path(&self, oid: &str) -> PathBuf {
        self.dir.join(oid)
    }

    /// Accepted uploads (`PUT`s whose content matched the oid) per oid.
    pub fn uploads(&self) -> BTreeMap<String, usize> {
        self.uploads.lock().expect("LFS uploads lock").clone()
    }

    /// Batch requests received for `operation` (`upload` or `download`).
    pub fn batch_requests(&self, operation: &str) -> usize {
        let batches = self.batches.lock().expect("LFS batches lock");
        batches.get(operation).copied().unwrap_or(0)
    }

    /// LFS requests that carried wrong credentials.
    pub fn auth_failures(&self) -> usize {
        self.auth_failures.load(Ordering::SeqCst)
    }

    /// LFS requests that carried no credentials. git-lfs sends its first
    /// batch request without any until it learns the server needs them.
    pub fn unauthenticated_requests(&self) -> usize {
        self.unauthenticated.load(Ordering::SeqCst)
    }

    /// The size of the stored object `oid`, if there is one.
    fn stored_size(&self, oid: &str) -> Option<u64> {
        std::fs::metadata(self.object_path(oid)).ok().map(|m| m.len())
    }

    /// Stores `content` as `oid`: written to a temporary file, then renamed
    /// into place so a concurrent download never sees a partial object.
    fn store(&self, oid: &str, content: &[u8]) -> Result<(), String> {
        let n = self.temp_counter.fetch_add(1, Ordering::SeqCst);
        let temp = self.dir.join(format!("{oid}.tmp.{n}"));
        std::fs::write(&temp, content).map_err(|e| format!("write {}: {e}", temp.display()))?;
        std::fs::rename(&temp, self.object_path(oid)).map_err(|e| format!("rename {}: {e}", temp.display()))?;
        *self
            .uploads
            .lock()
            .expect("LFS uploads lock")
            .entry(oid.to_owned())
            .or_default() += 1;
        Ok(())
    }

    fn count_batch(&self, operation: &str) {
        *self
            .batches
            .lock()
            .expect("LFS batches lock")
            .entry(operation.to_owned())
            .or_default() += 1;
    }
}

/// Whether a request path is for the LFS API rather than git.
pub(super) fn is_lfs_path(path: &str) -> bool {
    path.contains("/info/lfs/") || path.starts_with("/lfs/")
}

/// Serves one LFS request: authenticates it against the store's
/// credentials, then answers the endpoint it names. `addr` is the server's,
/// for absolute `href`s; refused requests are noted in `log`.
pub(super) fn serve(
    req: &Request,
    reader: &mut impl BufRead,
    writer: &mut TcpStream,
    store: &LfsStore,
    addr: SocketAddr,
    log: &Path,
) -> Result<(), String> {
    let expected = store.credentials.lock().expect("LFS credentials lock").clone();
    match check_basic(req, &expected) {
        Auth::Ok => {}
        Auth::Missing => {
            store.unauthenticated.fetch_add(1, Ordering::SeqCst);
            return unauthorized().write(writer);
        }
        Auth::Wrong => {
            store.auth_failures.fetch_add(1, Ordering::SeqCst);
            return unauthorized().write(writer);
        }
    }
    let body = read_body(req, reader, writer)?.unwrap_or_default();
    let (endpoint, route) = split_path(&req.path);
    let base = format!("http://{addr}{endpoint}");
    let reply = match (req.method.as_str(), route) {
        ("POST", Route::Batch) => batch(store, &body, &base, req.header("Authorization")),
        ("PUT", Route::Object(oid)) => upload(store, oid, &body),
        ("GET", Route::Object(oid)) => download(store, oid),
        ("POST", Route::Verify) => verify(store, &body),
        // 404 tells git-lfs the server does not implement locking.
        (_, Route::Locks) => Reply::error("404 Not Found", "locking is not supported"),
        (_, Route::Unknown) => Reply::error("404 Not Found", "no such LFS endpoint"),
        _ => Reply::error("405 Method Not Allowed", "method not allowed here"),
    };
    if !reply.status.starts_with('2') && route != Route::Locks {
        log_line(
            log,
            &format!(
                "lfs: {} {} -> {}: {}",
                req.method,
                req.path,
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ),
        );
    }
    reply.write(writer)
}

/// What an LFS request path asks for, after its endpoint.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Batch,
    Object(&'a str),
    Verify,
    Locks,
    Unknown,
}

/// Splits an LFS path into its endpoint (`/repo.git/info/lfs`, `/lfs/...`)
/// and the route under it.
fn split_path(path: &str) -> (&str, Route<'_>) {
    let end = match path.find("/info/lfs/") {
        Some(i) => i + "/info/lfs".len(),
        // `/lfs/<prefix>`: the endpoint ends where a known route starts.
        None => ["/objects/", "/verify", "/locks"]
            .iter()
            .filter_map(|marker| path.get(4..)?.find(marker).map(|i| i + 4))
            .min()
            .unwrap_or(path.len()),
    };
    let (endpoint, rest) = path.split_at(end);
    let route = match rest {
        "/objects/batch" => Route::Batch,
        "/verify" => Route::Verify,
        _ if rest == "/locks" || rest.starts_with("/locks/") => Route::Locks,
        _ => match rest.strip_prefix("/objects/") {
            Some(oid) if !oid.contains('/') => Route::Object(oid),
            _ => Route::Unknown,
        },
    };
    (endpoint, route)
}

/// A response, written with [`write_response`].
struct Reply {
    status: &'static str,
    content_type: &'static str,
    extra_headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: &'static str, value: &Value) -> Reply {
        Reply {
            status,
            content_type: LFS_JSON,
            extra_headers: Vec::new(),
            body: value.to_string().into_bytes(),
        }
    }

    /// An error in the API's shape: `{"message": ...}`.
    fn error(status: &'static str, message: &str) -> Reply {
        Reply::json(status, &json!({ "message": message }))
    }

    fn write(&self, writer: &mut TcpStream) -> Result<(), String> {
        let mut headers = vec![("Content-Type", self.content_type)];
        headers.extend(self.extra_headers.iter().copied());
        write_response(writer, self.status, &headers, &self.body)
    }
}

/// 401 with the challenge git-lfs looks for (`LFS-Authenticate`), plus the
/// standard `WWW-Authenticate`.
fn unauthorized() -> Reply {
    let mut reply = Reply::error("401 Unauthorized", "Credentials needed");
    reply.extra_headers = vec![
        ("LFS-Authenticate", "Basic realm=\"git-lfs\""),
        ("WWW-Authenticate", "Basic realm=\"git-lfs\""),
    ];
    reply
}

/// The body of `POST {endpoint}/objects/batch`. Unknown fields (`ref`, ...)
/// are ignored, as the API allows.
#[derive(Deserialize)]
struct BatchRequest {
    operation: String,
    #[serde(default)]
    transfers: Vec<String>,
    objects: Vec<ObjectSpec>,
    #[serde(default)]
    hash_algo: Option<String>,
}

/// An object as the API names it; also the body of `verify`. A negative or
/// fractional size fails to parse, as it should.
#[derive(Deserialize)]
struct ObjectSpec {
    oid: String,
    size: u64,
}

/// Answers a batch request: per object, the actions the client must take.
/// `base` is the absolute endpoint URL; `authorization` is echoed into each
/// action's headers, so transfers authenticate like the batch did.
fn batch(store: &LfsStore, body: &[u8], base: &str, authorization: Option<&str>) -> Reply {
    let req: BatchRequest = match serde_json::from_slice(body) {
        Ok(req) => req,
        Err(e) => return Reply::error("422 Unprocessable Entity", &format!("malformed batch request: {e}")),
    };
    if let Err(message) = validate_batch(&req) {
        return Reply::error("422 Unprocessable Entity", &message);
    }
    if req.hash_algo.as_deref().is_some_and(|algo| algo != "sha256") {
        // The API's answer to a hash algorithm the server does not support.
        return Reply::error("409 Conflict", "only sha256 is supported");
    }
    store.count_batch(&req.operation);
    let header = match authorization {
        Some(value) => json!({ "Authorization": value }),
        None => json!({}),
    };
    let action = |href: String| json!({ "href": href, "header": header, "expires_in": EXPIRES_IN });
    let objects: Vec<Value> = req
        .objects
        .iter()
        .map(|obj| {
            let (oid, size) = (obj.oid.as_str(), obj.size);
            let stored = store.stored_size(oid);
            match req.operation.as_str() {
                // Already stored: no actions, so the client skips it.
                "upload" if stored == Some(size) => json!({ "oid": oid, "size": size }),
                "upload" => json!({
                    "oid": oid,
                    "size": size,
                    "actions": {
                        "upload": action(format!("{base}/objects/{oid}")),
                        "verify": action(format!("{base}/verify")),
                    },
                }),
                _ => match stored {
                    Some(stored) if stored == size => json!({
                        "oid": oid,
                        "size": size,
                        "actions": { "download": action(format!("{base}/objects/{oid}")) },
                    }),
                    Some(stored) => object_error(oid, size, 422, &format!("Object has size {stored}, not {size}")),
                    None => object_error(oid, size, 404, "Object does not exist"),
                },
            }
        })
        .collect();
    Reply::json(
        "200 OK",
        &json!({ "transfer": "basic", "objects": objects, "hash_algo": "sha256" }),
    )
}

/// The checks serde's types do not make: operation, transfer adapter, oids.
fn validate_batch(req: &BatchRequest) -> Result<(), String> {
    if !matches!(req.operation.as_str(), "upload" | "download") {
        return Err(format!("unknown operation {:?}", req.operation));
    }
    // No list means "basic"; a list must offer it, the only adapter here.
    if !req.transfers.is_empty() && !req.transfers.iter().any(|t| t == "basic") {
        return Err(format!("no supported transfer adapter in {:?}", req.transfers));
    }
    match req.objects.iter().find(|obj| !is_oid(&obj.oid)) {
        Some(obj) => Err(format!("invalid oid {:?}", obj.oid)),
        None => Ok(()),
    }
}

/// A per-object error in a batch response.
fn object_error(oid: &str, size: u64, code: u16, message: &str) -> Value {
    json!({ "oid": oid, "size": size, "error": { "code": code, "message": message } })
}

/// `PUT {endpoint}/objects/{oid}`: stores the body if its sha256 is `oid`.
fn upload(store: &LfsStore, oid: &str, body: &[u8]) -> Reply {
    if !is_oid(oid) {
        return Reply::error("422 Unprocessable Entity", &format!("invalid oid {oid:?}"));
    }
    let actual = sha256_hex(body);
    if actual != oid {
        let message = format!("content has sha256 {actual}, not {oid}");
        return Reply::error("422 Unprocessable Entity", &message);
    }
    match store.store(oid, body) {
        Ok(()) => Reply::json("200 OK", &json!({})),
        Err(e) => Reply::error("500 Internal Server Error", &e),
    }
}

/// `GET {endpoint}/objects/{oid}`: the object's bytes.
fn download(store: &LfsStore, oid: &str) -> Reply {
    let content = is_oid(oid)
        .then(|| std::fs::read(store.object_path(oid)).ok())
        .flatten();
    match content {
        Some(body) => Reply {
            status: "200 OK",
            content_type: "application/octet-stream",
            extra_headers: Vec::new(),
            body,
        },
        None => Reply::error("404 Not Found", "Object does not exist"),
    }
}

/// `POST {endpoint}/verify`: 200 if the object is stored with that size.
fn verify(store: &LfsStore, body: &[u8]) -> Reply {
    let obj: ObjectSpec = match serde_json::from_slice(body) {
        Ok(obj) => obj,
        Err(e) => return Reply::error("422 Unprocessable Entity", &format!("malformed verify request: {e}")),
    };
    if !is_oid(&obj.oid) {
        return Reply::error("422 Unprocessable Entity", &format!("invalid oid {:?}", obj.oid));
    }
    match store.stored_size(&obj.oid) {
        Some(size) if size == obj.size => Reply::json("200 OK", &json!({})),
        _ => Reply::error("404 Not Found", "Object does not exist"),
    }
}

/// Whether `s` is a sha256 oid as LFS writes it: 64 lowercase hex digits.
fn is_oid(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Lowercase hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the `git lfs` client is installed.
pub fn available() -> Result<(), String> {
    let out = std::process::Command::new("git")
        .args(["lfs", "version"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`git lfs version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
