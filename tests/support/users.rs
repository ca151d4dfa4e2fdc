//! Real local users for ownership and permission tests: made with `useradd` (unique names, a
//! home inside the test's directory that the user owns), removed with `userdel` when dropped,
//! even when the test fails. Commands run as the user through `CommandExt::uid`/`gid`, which
//! also drops root's supplementary groups.

use crate::common::{TestEnv, path_str};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A user made for one test.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// Whether users can be made here: root, with `useradd` and `userdel`.
pub fn available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("the test makes users with useradd: run it as root".to_string());
    }
    for tool in ["useradd", "userdel"] {
        Command::new(tool)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {tool} (install passwd): {e}"))?;
    }
    Ok(())
}

fn id(flag: &str, name: &str) -> u32 {
    let out = Command::new("id").args([flag, name]).output().expect("run id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("id {flag} {name}: {}", String::from_utf8_lossy(&out.stderr)))
}

impl TestUser {
    /// Makes a user `gpm<tag><unique>` (at most 32 characters) with its own group and a home
    /// `<test root>/home-<name>` it owns.
    pub fn create(env: &TestEnv, tag: &str) -> TestUser {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let unique = format!(
            "{:x}{:x}{}",
            std::process::id() % 0x10000,
            nanos % 0x100000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let tag: String = tag.chars().filter(char::is_ascii_lowercase).take(8).collect();
        let name = format!("gpm{tag}{unique}");
        assert!(name.len() <= 32, "{name}");
        let home = env.path(format!("home-{name}"));
        let out = Command::new("useradd")
            .args(["--user-group", "--no-create-home", "--shell", "/bin/sh", "--home-dir"])
            .arg(&home)
            .arg(&name)
            .output()
            .expect("run useradd");
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // From here on, Drop removes the user whatever happens.
        let mut user = TestUser {
            name: name.clone(),
            uid: 0,
            gid: 0,
            home: home.clone(),
        };
        user.uid = id("-u", &name);
        user.gid = id("-g", &name);
        std::fs::create_dir_all(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(user.uid), Some(user.gid)).unwrap();
        user
    }

    /// A command run as this user: its uid and gid (no supplementary groups), its HOME, a
    /// minimal environment.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.uid(self.uid)
            .gid(self.gid)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LC_ALL", "C")
            .current_dir(&self.home)
            .stdin(Stdio::null());
        cmd
    }

    /// Gives `path` (and everything below it) to this user.
    pub fn chown_all(&self, path: &std::path::Path) {
        let out = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(path)
            .output()
            .expect("run chown");
        assert!(
            out.status.success(),
            "chown -R {}: {}",
            path_str(path),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Its processes are the test's own, ended (and waited for) before the user goes; `-f`
        // removes it even if one is still exiting.
        let _ = Command::new("userdel")
            .arg("-f")
            .arg(&self.name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
