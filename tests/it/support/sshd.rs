//! A real OpenSSH server on 127.0.0.1, run as the current user, for pushes
//! over `ssh://`.
//!
//! Host key, client key, `authorized_keys` and `sshd_config` live in
//! `<test root>/sshd/`. Sessions run the client's command (`git-receive-pack
//! '/path'`) through the user's shell; `SetEnv` gives them the test
//! process's `PATH` and the isolated server-side git environment
//! ([`SERVER_GIT_ENV`]).

use super::{ChildEnv, SERVER_GIT_ENV, TestEnv, append_log, kill_group, path_str};
use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// How long sshd may take to say it is listening.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running sshd. Drop kills it.
pub struct Sshd {
    dir: PathBuf,
    port: u16,
    user: String,
    /// Other users who may log in (sshd must run as root for them).
    others: Vec<String>,
    env: ChildEnv,
    child: Option<Child>,
}

impl Sshd {
    /// Whether sshd (at /usr/sbin/sshd), ssh and ssh-keygen are installed.
    pub fn available() -> Result<(), String> {
        if !Path::new(SSHD).is_file() {
            return Err(format!("{SSHD} does not exist (install openssh-server)"));
        }
        for tool in ["ssh", "ssh-keygen"] {
            let found = Command::new(tool)
                .arg("-V")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok();
            if !found {
                return Err(format!("{tool} is not on PATH (install openssh-client)"));
            }
        }
        Ok(())
    }

    /// Generates keys and config under `<env root>/sshd/` and starts sshd on
    /// a free port of 127.0.0.1, retrying with another port if it loses the
    /// port to someone else between the probe and sshd's bind.
    pub fn start(env: &TestEnv) -> Sshd {
        Sshd::start_allowing(env, &[])
    }

    /// [`Sshd::start`] that also lets `others` log in (with the same key; as root only).
    pub fn start_allowing(env: &TestEnv, others: &[&str]) -> Sshd {
        ensure_privsep_dir();
        let dir = env.path("sshd");
        fs::create_dir_all(&dir).expect("create the sshd directory");
        let mut sshd = Sshd {
            dir,
            port: 0,
            user: current_user(),
            others: others.iter().map(|u| u.to_string()).collect(),
            env: ChildEnv::isolated_server(),
            child: None,
        };
        keygen(&sshd.host_key(), "test-host-key");
        keygen(&sshd.client_key(), "test-client-key");
        fs::copy(
            sshd.client_key().with_extension("pub"),
            sshd.dir.join("authorized_keys"),
        )
        .expect("write authorized_keys");
        let mut last_error = String::new();
        for _ in 0..5 {
            sshd.port = probe_free_port();
            match sshd.launch() {
                Ok(()) => return sshd,
                Err(e) => last_error = e,
            }
        }
        panic!("sshd did not start after 5 attempts: {last_error}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user sessions log in as (the current user).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The client's private key (mode 0600), authorized for [`user`](Self::user).
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client_ed25519_key")
    }

    /// Authorizes one more public key (an `ssh-ed25519 AAAA… comment` line)
    /// for [`user`](Self::user); sshd reads the file at every login.
    pub fn authorize_key(&self, public_key_line: &str) {
        use std::io::Write;
        let path = self.dir.join("authorized_keys");
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        writeln!(file, "{}", public_key_line.trim()).expect("append to authorized_keys");
    }

    /// The host's public key file (`ssh-ed25519 AAAA… comment`).
    pub fn host_public_key_path(&self) -> PathBuf {
        self.host_key().with_extension("pub")
    }

    /// The host's public key, `ssh-ed25519 AAAA…` (no comment).
    pub fn host_public_key_line(&self) -> String {
        let path = self.host_key().with_extension("pub");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read host public key {}: {e}", path.display()));
        text.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    }

    /// The host's `known_hosts` line: `[127.0.0.1]:PORT ssh-ed25519 AAAA…`.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_public_key_line())
    }

    /// `ssh://USER@127.0.0.1:PORT/abs/repo/path`.
    pub fn url(&self, abs_repo_path: &Path) -> String {
        assert!(abs_repo_path.is_absolute(), "ssh URLs need an absolute path");
        format!("ssh://{}@127.0.0.1:{}{}", self.user, self.port, abs_repo_path.display())
    }

    /// A strict, non-interactive `GIT_SSH_COMMAND` that uses the client key
    /// and only `known_hosts` (no user ssh config, no agent keys).
    pub fn git_ssh_command(&self, known_hosts: &Path) -> String {
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
             -o StrictHostKeyChecking=yes -o UserKnownHostsFile={}",
            shell_quote(path_str(&self.client_key())),
            shell_quote(path_str(known_hosts)),
        )
    }

    /// sshd's stderr (`-e`): connections, auth decisions, errors.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("sshd.log")
    }

    /// Replaces the host key with a new one and restarts sshd on the same
    /// port, so clients see a changed host key.
    pub fn rotate_host_key(&mut self) {
        self.kill();
        let key = self.host_key();
        for path in [key.clone(), key.with_extension("pub")] {
            fs::remove_file(&path).unwrap_or_else(|e| panic!("remove old host key {}: {e}", path.display()));
        }
        keygen(&key, "test-host-key-rotated");
        // The port was ours a moment ago; retry briefly rather than move.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => {
                    panic!("sshd did not restart on port {}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn host_key(&self) -> PathBuf {
        self.dir.join("host_ed25519_key")
    }

    /// Writes the config for the current port, starts sshd and waits until
    /// it logs that it listens; on failure returns the log it wrote.
    fn launch(&mut self) -> Result<(), String> {
        let config = self.dir.join("sshd_config");
        fs::write(&config, self.config_text()).expect("write sshd_config");
        let log = self.log_path();
        let offset = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new(SSHD);
        self.env.apply(&mut cmd);
        cmd.arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(append_log(&log))
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| format!("spawn {SSHD}: {e}"))?;
        let ready = format!("Server listening on 127.0.0.1 port {}", self.port);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = fs::read(&log).unwrap_or_default();
            let new = String::from_utf8_lossy(&text[(offset as usize).min(text.len())..]).into_owned();
            if new.contains(&ready) {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("sshd exited with {status}:\n{new}"));
            }
            if Instant::now() >= deadline {
                kill_group(&mut child);
                return Err(format!("sshd not listening after {START_TIMEOUT:?}:\n{new}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn config_text(&self) -> String {
        let dir = &self.dir;
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        let git_env: Vec<String> = SERVER_GIT_ENV.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "ListenAddress 127.0.0.1\n\
             Port {port}\n\
             HostKey \"{host_key}\"\n\
             PidFile \"{pid}\"\n\
             AuthorizedKeysFile \"{auth}\"\n\
             StrictModes no\n\
             UsePAM no\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\n\
             PermitUserEnvironment no\n\
             AllowUsers {user}{others}\n\
             X11Forwarding no\n\
             PrintMotd no\n\
             LogLevel VERBOSE\n\
             SetEnv \"PATH={path}\" {git_env}\n",
            port = self.port,
            host_key = self.host_key().display(),
            pid = dir.join("sshd.pid").display(),
            auth = dir.join("authorized_keys").display(),
            user = self.user,
            others = self.others.iter().map(|u| format!(" {u}")).collect::<String>(),
            git_env = git_env.join(" "),
        )
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free a moment ago. sshd must bind it itself, so there is
/// a window in which someone else may take it: [`Sshd::start`] retries.
fn probe_free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a port");
    listener.local_addr().expect("probe listener address").port()
}

/// `ssh-keygen -t ed25519` without passphrase into `path` and `path.pub`.
fn keygen(path: &Path, comment: &str) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen");
    super::assert_success(&out, &format!("ssh-keygen -f {}", path.display()));
}

/// As root, sshd refuses to start without its privilege separation
/// directory; the package creates it only at boot (tmpfs /run).
fn ensure_privsep_dir() {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root && !Path::new("/run/sshd").is_dir() {
        fs::create_dir_all("/run/sshd").expect("create /run/sshd");
    }
}

/// The login name of the effective user.
fn current_user() -> String {
    // SAFETY: getpwuid_r writes into `pwd` and `buf`, which outlive the
    // call; `pw_name` points into `buf` and is copied out before it drops.
    unsafe {
        let uid = libc::geteuid();
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut result = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        assert!(rc == 0 && !result.is_null(), "no passwd entry for uid {uid} (rc {rc})");
        std::ffi::CStr::from_ptr(pwd.pw_name)
            .to_str()
            .expect("user name is UTF-8")
            .to_owned()
    }
}

/// Quotes `s` for a POSIX shell (GIT_SSH_COMMAND is run by one).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
