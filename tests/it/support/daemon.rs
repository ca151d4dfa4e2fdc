//! `git://` server: a listener on `127.0.0.1:0` that spawns one
//! `git daemon --inetd` per connection, with pushes enabled.
//!
//! It can be stopped (connections are refused, in-flight ones are killed) and
//! restarted on the same port, so tests can simulate an outage of a mirror.

use super::{ChildEnv, append_log, git_exec_path, kill_group, log_line, path_str};
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running (or stopped) `git daemon` serving every repository under a base
/// directory. Drop stops it.
pub struct GitDaemon {
    base: PathBuf,
    port: u16,
    log: PathBuf,
    env: ChildEnv,
    children: Arc<Mutex<Vec<Child>>>,
    running: Option<Running>,
}

/// The accept thread of a started daemon.
struct Running {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl GitDaemon {
    /// Whether `git daemon` is installed.
    pub fn available() -> Result<(), String> {
        git_exec_path("git-daemon").map(drop)
    }

    /// Serves every repository under `base_path` (exported, receive-pack
    /// enabled) on a fresh port of 127.0.0.1. Server-side git reads no user
    /// or system config. Daemon stderr goes to `<base_path>/../git-daemon.log`.
    pub fn start(base_path: &Path) -> GitDaemon {
        let base = base_path
            .canonicalize()
            .unwrap_or_else(|e| panic!("git daemon base {}: {e}", base_path.display()));
        let log = base.parent().unwrap_or(&base).join("git-daemon.log");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for git daemon");
        let port = listener.local_addr().expect("git daemon listener address").port();
        let mut daemon = GitDaemon {
            base,
            port,
            log,
            env: ChildEnv::isolated_server(),
            children: Arc::default(),
            running: None,
        };
        daemon.serve(listener);
        daemon
    }

    /// The port, the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `git://127.0.0.1:PORT/<repo_rel>` (relative to the base path).
    pub fn url(&self, repo_rel: &str) -> String {
        format!("git://127.0.0.1:{}/{}", self.port, repo_rel.trim_start_matches('/'))
    }

    /// Whether the daemon is accepting connections.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Closes the listener (new connections are refused) and kills every
    /// daemon still serving a connection. Does nothing if already stopped.
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop.store(true, Ordering::SeqCst);
            // Wake the blocked accept(); the thread then drops the listener.
            let _ = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(2));
            running.thread.join().expect("git daemon accept thread panicked");
        }
        let mut children = self.children.lock().expect("git daemon children lock");
        for child in children.iter_mut() {
            kill_group(child);
        }
        children.clear();
    }

    /// Starts serving again on the same port (stopping first if running).
    /// Panics if the port cannot be bound again within a few seconds.
    pub fn restart(&mut self) {
        self.stop();
        let addr = self.addr();
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(addr) {
                Ok(listener) => break listener,
                Err(e) if e.kind() == ErrorKind::AddrInUse && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("git daemon cannot bind {addr} again: {e}"),
            }
        };
        self.serve(listener);
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let accept = Acceptor {
            listener,
            stop: Arc::clone(&stop),
            base: self.base.clone(),
            log: self.log.clone(),
            env: self.env.clone(),
            children: Arc::clone(&self.children),
        };
        let thread = std::thread::Builder::new()
            .name(format!("git-daemon-{}", self.port))
            .spawn(move || accept.run())
            .expect("spawn git daemon accept thread");
        self.running = Some(Running { stop, thread });
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// State moved into the accept thread.
struct Acceptor {
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    base: PathBuf,
    log: PathBuf,
    env: ChildEnv,
    children: Arc<Mutex<Vec<Child>>>,
}

impl Acceptor {
    fn run(self) {
        for conn in self.listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            match conn {
                Ok(stream) => {
                    if let Err(e) = self.spawn_daemon(stream) {
                        log_line(&self.log, &format!("harness: cannot start git daemon: {e}"));
                    }
                }
                Err(e) => log_line(&self.log, &format!("harness: accept failed: {e}")),
            }
        }
    }

    /// Runs `git daemon --inetd` with the connection as its stdin and stdout.
    fn spawn_daemon(&self, stream: TcpStream) -> std::io::Result<()> {
        let stdin = stream.try_clone()?;
        let base = path_str(&self.base);
        let mut cmd = Command::new("git");
        self.env.apply(&mut cmd);
        cmd.args([
            "daemon",
            "--inetd",
            "--verbose",
            "--informative-errors",
            "--log-destination=stderr",
            "--export-all",
            "--enable=receive-pack",
        ])
        .arg(format!("--base-path={base}"))
        .arg(base)
        .current_dir(&self.base)
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(stdin)))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(stream)))
        .stderr(append_log(&self.log))
        // Own process group, so stop() also kills the upload/receive-pack.
        .process_group(0);
        let child = cmd.spawn()?;
        let mut children = self.children.lock().expect("git daemon children lock");
        // Reap finished daemons so a long test does not collect zombies.
        children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        children.push(child);
        Ok(())
    }
}
