//! Real users for ownership and permission cases: made with `useradd` (a system user with a group
//! of its own and no login; a home of its own in the test's directory when asked), removed with
//! `userdel` when dropped, even when the test fails. Needs root ([`TestUser::available`]).

use super::TestEnv;
use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A user that exists while this value lives.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    /// Its own group (`useradd --user-group`), of the same name.
    pub gid: u32,
    /// Its home directory, owned by it: `<test root>/home-<name>` for [`TestUser::with_home`],
    /// `/nonexistent` otherwise.
    pub home: PathBuf,
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
        // From here on, Drop removes the user whatever happens.
        let mut user = TestUser {
            uid: 0,
            gid: 0,
            name: name.clone(),
            home: PathBuf::from("/nonexistent"),
        };
        user.uid = id_of("-u", &name);
        user.gid = id_of("-g", &name);
        user
    }

    /// [`TestUser::create`] with a home `<test root>/home-<name>` that the user owns.
    pub fn with_home(env: &TestEnv) -> TestUser {
        let mut user = TestUser::create();
        let home = env.path(format!("home-{}", user.name));
        std::fs::create_dir_all(&home).expect("create the user's home");
        std::os::unix::fs::chown(&home, Some(user.uid), Some(user.gid)).expect("give the user its home");
        user.home = home;
        user
    }

    /// [`TestUser::with_home`] with `/bin/sh` as login shell, for SSH sessions as the user.
    pub fn with_login_shell(env: &TestEnv) -> TestUser {
        let user = TestUser::with_home(env);
        // `*`: no password, yet not locked (`!`), which sshd refuses even for a key.
        let out = Command::new("usermod")
            .args(["--shell", "/bin/sh", "--password", "*", &user.name])
            .output()
            .expect("run usermod");
        assert!(out.status.success(), "usermod {}: {out:?}", user.name);
        user
    }

    /// `program` as this user with a minimal environment of its own (its uid and gid, no
    /// supplementary groups, its HOME, PATH, `LC_ALL=C`), started in its home: a stranger on
    /// the machine, with nothing of the test's.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
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
