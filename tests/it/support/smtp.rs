//! A real SMTP server on 127.0.0.1: `aiosmtpd` (PyPI; Debian's `python3-aiosmtpd`) storing every
//! message it accepts in a Maildir, on a port the harness picks (retried with another if it is
//! taken meanwhile). Behind Debian's `msmtp-mta` as `sendmail`, configured by [`SmtpServer::msmtprc`].

use super::{TestEnv, kill_group};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running aiosmtpd; dropping it stops it.
pub struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

/// The `sendmail` of Debian's `msmtp-mta`.
pub const SENDMAIL: &str = "/usr/sbin/sendmail";

impl SmtpServer {
    /// A python3 that can import aiosmtpd (the one on PATH, else Debian's).
    fn python() -> Result<String, String> {
        super::python_importing(
            "aiosmtpd",
            "apt install python3-aiosmtpd, or python3 -m pip install aiosmtpd",
        )
    }

    /// Whether aiosmtpd and msmtp's sendmail are installed.
    pub fn available() -> Result<(), String> {
        SmtpServer::python()?;
        let target =
            std::fs::canonicalize(SENDMAIL).map_err(|e| format!("{SENDMAIL}: {e} (apt install msmtp msmtp-mta)"))?;
        if target.file_name().is_some_and(|n| n == "msmtp") {
            Ok(())
        } else {
            Err(format!(
                "{SENDMAIL} is {}, not msmtp (apt install msmtp-mta)",
                target.display()
            ))
        }
    }

    /// Starts the server with its Maildir in `<env root>/maildir`.
    pub fn start(env: &TestEnv) -> SmtpServer {
        let python = SmtpServer::python().expect("aiosmtpd");
        let maildir = env.path("maildir");
        let log = env.path("aiosmtpd.log");
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut child = env
                .cmd(&python)
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&maildir)
                .stdout(Stdio::null())
                .stderr(super::append_log(&log))
                .process_group(0)
                .spawn()
                .expect("start aiosmtpd");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return SmtpServer { child, port, maildir };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // the port was taken meanwhile: another one
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            kill_group(&mut child);
        }
        panic!(
            "aiosmtpd did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// An msmtp configuration (mode 600) that sends to this server, in `<env root>/msmtprc`.
    pub fn msmtprc(&self, env: &TestEnv) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let rc = env.path("msmtprc");
        std::fs::write(
            &rc,
            format!(
                "defaults\nlogfile {}\naccount default\nhost 127.0.0.1\nport {}\nfrom mirror@test.example\nauth off\ntls off\n",
                env.path("msmtp.log").display(),
                self.port
            ),
        )
        .expect("write the msmtp configuration");
        std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).expect("chmod the msmtp configuration");
        rc
    }

    /// `sendmail_command` for the global configuration: msmtp's sendmail with [`Self::msmtprc`].
    pub fn sendmail_command(&self, env: &TestEnv) -> String {
        let rc = self.msmtprc(env);
        format!("[\"{SENDMAIL}\", \"-C\", \"{}\", \"-t\", \"-oi\"]", rc.display())
    }

    /// Every message received, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .flat_map(|sub| {
                std::fs::read_dir(self.maildir.join(sub))
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .map(|e| e.path())
            .collect();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}
