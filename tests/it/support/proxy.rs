//! A TCP proxy to a local port that cuts both connections once a client has sent more than a
//! given number of bytes, as a network or a proxy in front of a mirror may: a push dropped
//! mid-pack. It cuts until told to pass everything, or a given number of times.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A running proxy (its threads end with the test process).
pub struct CuttingProxy {
    pub port: u16,
    /// Set to pass everything from now on.
    pub pass: Arc<AtomicBool>,
    /// Connections cut so far.
    pub cuts: Arc<AtomicUsize>,
}

impl CuttingProxy {
    /// Cuts every connection that sends more than `limit` bytes to `target_port`, until `pass`.
    pub fn start(target_port: u16, limit: usize) -> CuttingProxy {
        CuttingProxy::cutting(target_port, limit, usize::MAX)
    }

    /// Cuts the first `times` connections that send more than `limit` bytes, then passes
    /// everything.
    pub fn cutting(target_port: u16, limit: usize, times: usize) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let pass = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        let (pass2, cuts2) = (Arc::clone(&pass), Arc::clone(&cuts));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                let (pass, cuts) = (Arc::clone(&pass2), Arc::clone(&cuts2));
                let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut sent = 0usize;
                    let mut buf = [0u8; 8192];
                    loop {
                        let n = match c_read.read(&mut buf) {
                            Ok(0) | Err(_) => {
                                let _ = s_write.shutdown(Shutdown::Write);
                                return;
                            }
                            Ok(n) => n,
                        };
                        let cutting = !pass.load(Ordering::SeqCst) && cuts.load(Ordering::SeqCst) < times;
                        if cutting && sent + n > limit {
                            let _ = s_write.write_all(&buf[..limit - sent]);
                            let _ = s_write.shutdown(Shutdown::Both);
                            let _ = c_read.shutdown(Shutdown::Both);
                            cuts.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        if s_write.write_all(&buf[..n]).is_err() {
                            let _ = c_read.shutdown(Shutdown::Both);
                            return;
                        }
                        sent += n;
                    }
                });
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(Shutdown::Write);
                });
            }
        });
        CuttingProxy { port, pass, cuts }
    }
}
