//! A webhook receiver: an HTTP server on `127.0.0.1:0` that records every request (method, path,
//! headers, body) and answers with the status the test chooses; plain HTTP, or HTTPS with a
//! certificate from the test's CA ([`TestCa`]) through rustls.

use super::TestCa;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

struct Shared {
    requests: Mutex<Vec<Received>>,
    status: AtomicU16,
    /// `Location` of a redirect answer.
    location: Mutex<Option<String>>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// A running receiver; dropping it stops it.
pub struct WebhookReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WebhookReceiver {
    /// Plain HTTP.
    pub fn start() -> WebhookReceiver {
        WebhookReceiver::serve(None)
    }

    /// HTTPS with the CA's server certificate (for 127.0.0.1).
    pub fn start_tls(ca: &TestCa) -> WebhookReceiver {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs =
            CertificateDer::pem_slice_iter(&std::fs::read(ca.server_cert()).expect("read the server certificate"))
                .collect::<Result<Vec<_>, _>>()
                .expect("parse the server certificate");
        let key = PrivateKeyDer::from_pem_slice(&std::fs::read(ca.server_key()).expect("read the server key"))
            .expect("parse the server key");
        // ring, as ureq's client uses (aws-lc-rs would need a C toolchain and CMake).
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("the server certificate and key");
        WebhookReceiver::serve(Some(Arc::new(config)))
    }

    fn serve(tls: Option<Arc<rustls::ServerConfig>>) -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            status: AtomicU16::new(200),
            location: Mutex::new(None),
            tls,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = Arc::clone(&shared);
                    std::thread::spawn(move || {
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                        match &shared.tls {
                            None => handle(stream, &shared),
                            Some(config) => {
                                let Ok(conn) = rustls::ServerConnection::new(Arc::clone(config)) else {
                                    return;
                                };
                                handle(rustls::StreamOwned::new(conn, stream), &shared);
                            }
                        }
                    });
                }
            })
        };
        WebhookReceiver {
            addr,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// `http(s)://127.0.0.1:PORT/<path>`.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.shared.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/{path}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Received> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Answer the next requests with `status` (200 at first).
    pub fn answer_with(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Answer the next requests with a redirect (302) to `location`.
    pub fn redirect_to(&self, location: &str) {
        *self.shared.location.lock().unwrap() = Some(location.to_string());
        self.answer_with(302);
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request (head and a `Content-Length` body), records it, answers, closes. A
/// `CONNECT` (a client using the receiver as its proxy) is recorded, accepted, and the request
/// that follows through the tunnel is handled the same way.
fn handle(stream: impl Read + Write, shared: &Shared) {
    let mut reader = BufReader::new(stream);
    let Some(mut request) = read_request(&mut reader) else {
        return;
    };
    if request.method == "CONNECT" {
        shared.requests.lock().unwrap().push(request);
        let _ = reader
            .get_mut()
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
        let _ = reader.get_mut().flush();
        match read_request(&mut reader) {
            Some(tunnelled) => request = tunnelled,
            None => return,
        }
    }
    shared.requests.lock().unwrap().push(request);
    let status = shared.status.load(Ordering::SeqCst);
    let answer = if status == 200 { "ok" } else { "refused by the test" };
    let location = match shared.location.lock().unwrap().as_deref() {
        Some(location) if (300..400).contains(&status) => format!("Location: {location}\r\n"),
        _ => String::new(),
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} Test\r\n{location}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = stream.flush();
}

fn read_request(reader: &mut impl BufRead) -> Option<Received> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        method,
        path,
        headers,
        body,
    })
}
