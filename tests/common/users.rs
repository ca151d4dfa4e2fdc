//! Real users for ownership and permission cases: made with `useradd` (a system user with a group
//! of its own, no home, no login), removed with `userdel` when dropped, even when the test fails.
//! Needs root ([`TestUser::available`]).

use super::TestEnv;
use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A user that exists while this value lives.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    /// Its own group (`useradd --user-group`), of the same name.
    pub gid: u32,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn id_of(flag: &str, name: &str) -> u32 {
    let out = Command::new("id").args([flag, name]).output().expect("run id");
    assert!(out.status.success(), "id {flag} {name}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a number from id")
}

impl TestUser {
    /// Whether users can be made here: root, `useradd` and `setpriv`.
    pub fn available() -> Result<(), String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("making users needs root".into());
        }
        for tool in ["useradd", "userdel", "setpriv"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !found {
                return Err(format!("{tool} is missing (package passwd or util-linux)"));
            }
        }
        Ok(())
    }

    /// A new user, named uniquely for this process and call.
    pub fn create() -> TestUser {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("gpmt{}x{n}", std::process::id());
        let out = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(&name)
            .output()
            .expect("run useradd");
        assert!(out.status.success(), "useradd {name}: {out:?}");
        TestUser {
            uid: id_of("-u", &name),
            gid: id_of("-g", &name),
            name,
        }
    }

    /// `program args…` as this user (its uid, its groups), with the test's environment.
    pub fn cmd(&self, env: &TestEnv, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = env.cmd("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(program);
        cmd
    }

    /// `chown -R` of `paths` to this user and its group.
    pub fn own(&self, paths: &[&std::path::Path]) {
        let out = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .args(paths)
            .output()
            .expect("run chown");
        assert!(out.status.success(), "chown: {out:?}");
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // --force: a worker a hook started as the user may still be finishing.
        let _ = Command::new("userdel")
            .args(["--force", &self.name])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("groupdel").arg(&self.name).stderr(Stdio::null()).status();
    }
}
