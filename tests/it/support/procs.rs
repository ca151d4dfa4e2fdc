//! Processes and network peers for fault tests: finding and reaping a test's processes, a
//! server that accepts connections and never answers, a proxy that can start hanging, and a
//! watcher of every process's environment.

use super::{TestEnv, path_str};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Kills, when the test ends, every process still running with this test's
/// `HOME`: workers the hooks started detached, and their git children. They
/// are ours (started by this test's pushes), and none may outlive its files.
pub struct Reaper {
    marker: Vec<u8>,
}

impl Reaper {
    pub fn new(env: &TestEnv) -> Reaper {
        Reaper {
            marker: format!("HOME={}", path_str(&env.home())).into_bytes(),
        }
    }

    pub fn ours(&self) -> Vec<libc::pid_t> {
        processes()
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|environ| environ.split(|b| *b == 0).any(|var| var == self.marker.as_slice()))
            })
            .collect()
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in self.ours() {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid carries this test's HOME.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Every process id in /proc except our own.
pub fn processes() -> Vec<libc::pid_t> {
    let me = std::process::id() as libc::pid_t;
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok())
                .filter(|pid| *pid != me)
                .collect()
        })
        .unwrap_or_default()
}

/// Live processes whose command line contains `needle`, as `pid: cmdline`.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    processes()
        .into_iter()
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(needle).then(|| format!("{pid}: {cmdline}"))
        })
        .collect()
}

/// A TCP listener that accepts connections and never answers (nor closes them).
pub struct HungListener {
    pub port: u16,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl HungListener {
    pub fn start() -> HungListener {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let keep = Arc::clone(&held);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                keep.lock().unwrap().push(stream);
            }
        });
        HungListener { port, held }
    }

    pub fn accepted(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

/// A TCP proxy to a local port that forwards everything until told to hang: from then on it
/// accepts connections and never answers (a mirror host that stopped responding).
pub struct HangingProxy {
    pub port: u16,
    hang: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl HangingProxy {
    pub fn start(target_port: u16) -> HangingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hang = Arc::new(AtomicBool::new(false));
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (hang2, held2) = (Arc::clone(&hang), Arc::clone(&held));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if hang2.load(Ordering::SeqCst) {
                    held2.lock().unwrap().push(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut s_write);
                    let _ = s_write.shutdown(Shutdown::Write);
                });
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(Shutdown::Write);
                });
            }
        });
        HangingProxy { port, hang, held }
    }

    /// From now on, new connections hang.
    pub fn hang(&self) {
        self.hang.store(true, Ordering::SeqCst);
    }

    /// Connections accepted while hanging.
    pub fn hung(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

/// Scans every process's `/proc/PID/cmdline` or `/proc/PID/environ` for a secret, continuously,
/// from another thread: catches short-lived children (credential helpers, `ls-remote`, ssh, a
/// mirror's hooks) that a hook on the mirror cannot see.
pub struct SecretWatcher {
    /// What it looks in, for messages: "argv" or "environment".
    what: &'static str,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(usize, Vec<String>)>,
}

impl SecretWatcher {
    /// Watches every process's argv.
    pub fn in_argv(secret: &str) -> SecretWatcher {
        SecretWatcher::start(secret, "cmdline", "argv", |_| false)
    }

    /// Watches every process's environment but this one's, its direct children's (the test gives
    /// those the secret: the worker it starts) and those of processes running `exempt` (the
    /// worker's forks before they exec their program still show the worker's environment).
    pub fn in_environment(secret: &str, exempt: &std::path::Path) -> SecretWatcher {
        let exempt = exempt.to_path_buf();
        let me = std::process::id() as libc::pid_t;
        SecretWatcher::start(secret, "environ", "environment", move |pid| {
            pid == me
                || parent_of(pid) == Some(me)
                || std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == exempt)
        })
    }

    fn start(
        secret: &str,
        file: &'static str,
        what: &'static str,
        skip: impl Fn(libc::pid_t) -> bool + Send + 'static,
    ) -> SecretWatcher {
        let stop = Arc::new(AtomicBool::new(false));
        let secret = secret.as_bytes().to_vec();
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let (mut scans, mut hits) = (0, Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    for pid in processes() {
                        if skip(pid) {
                            continue;
                        }
                        let Ok(content) = std::fs::read(format!("/proc/{pid}/{file}")) else {
                            continue;
                        };
                        if content.windows(secret.len()).any(|w| w == secret.as_slice()) {
                            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                            let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                            let hit = format!("{pid}: {shown}");
                            if !hits.contains(&hit) {
                                hits.push(hit);
                            }
                        }
                    }
                    scans += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                (scans, hits)
            })
        };
        SecretWatcher { what, stop, thread }
    }

    /// Stops and returns the processes (`pid: cmdline`) that had the secret.
    pub fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        let (scans, hits) = self.thread.join().unwrap();
        assert!(scans > 0, "the {} watcher never scanned", self.what);
        hits
    }

    /// Stops and asserts that no process ever had the secret.
    pub fn assert_never_seen(self) {
        let what = self.what;
        let hits = self.stop();
        assert!(
            hits.is_empty(),
            "the secret was in a process's {what}:\n{}",
            hits.join("\n")
        );
    }
}

/// A process's parent, from `/proc/PID/stat`.
pub fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()
}
