//! A deployment that checks itself: `check` names each thing that keeps a repository's pushes from
//! being mirrored (no hook, a hook git does not run or that runs a missing or other binary, a
//! spool, state or log the pushing user cannot use, the wrong user running the command), each
//! with the command that fixes it, on repositories owned by a real user; the commands that write
//! refuse to run as another user, and `status` says so; the hook's own message names the
//! directory and the user. And hooks keep the binary they run when another copy installs again.

use crate::support::binary::{gpm_output, stderr, stdout};
use crate::support::{TestEnv, TestUser, path_str, require_or_skip};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

mod check;
mod hook_binaries;
mod wrong_user;

const BIN: &str = env!("CARGO_BIN_EXE_git-push-mirror");

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A server as docs/hosts.md sets it up: a global configuration in the system file
/// (the test's, see `TestEnv`), whose spool, state and log a real user owns, and that user's
/// repository with a mirror.
struct Server {
    env: TestEnv,
    user: TestUser,
    repo: PathBuf,
    spool: PathBuf,
    state: PathBuf,
    log_dir: PathBuf,
}

impl Server {
    fn new() -> Option<Server> {
        if !require_or_skip("root, useradd and setpriv", TestUser::available()) {
            return None;
        }
        let env = TestEnv::new();
        chmod(env.root(), 0o755);
        let user = TestUser::create();
        let (spool, state, log_dir) = (env.path("srv/spool"), env.path("srv/state"), env.path("srv/log"));
        for dir in [&spool, &state, &log_dir] {
            fs::create_dir_all(dir).unwrap();
        }
        let system = env.path("etc/git-push-mirror/config.toml");
        fs::create_dir_all(system.parent().unwrap()).unwrap();
        fs::write(
            &system,
            format!(
                "spool_dir = '{}'\nstate_dir = '{}'\nlog_file = '{}/git-push-mirror.log'\nworker_linger = '1s'\n",
                path_str(&spool),
                path_str(&state),
                path_str(&log_dir)
            ),
        )
        .unwrap();
        let repo = env.bare_repo("srv/git/app.git");
        let mirror = env.bare_repo("srv/git/mirror.git");
        user.own(&[&spool, &state, &log_dir, &repo, &mirror]);
        let server = Server {
            env,
            user,
            repo,
            spool,
            state,
            log_dir,
        };
        let url = format!("file://{}", path_str(&mirror));
        let added = server.as_user(&["add", path_str(&server.repo), "backup", &url]);
        assert!(added.status.success(), "add as the owner: {added:?}");
        Some(server)
    }

    /// The binary run as the repository's owner.
    fn as_user(&self, args: &[&str]) -> Output {
        self.user.cmd(&self.env, BIN).args(args).output().unwrap()
    }

    /// [`Server::new`] with the hook installed (by the owner), `check` clean.
    fn installed() -> Option<Server> {
        let server = Server::new()?;
        let installed = server.as_user(&["install", path_str(&server.repo)]);
        assert!(installed.status.success(), "{installed:?}");
        assert_clean(&server);
        Some(server)
    }

    fn check(&self) -> (i32, String) {
        let out = self.as_user(&["check", path_str(&self.repo)]);
        (out.status.code().unwrap(), format!("{}{}", stdout(&out), stderr(&out)))
    }

    fn hook(&self) -> PathBuf {
        self.repo.join("hooks/post-receive")
    }
}

/// The `fix:` lines of `check`'s output.
fn fixes(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("fix: "))
        .map(str::to_string)
        .collect()
}

fn assert_clean(server: &Server) {
    let (code, output) = server.check();
    assert_eq!(code, 0, "check must pass:\n{output}");
    assert!(!output.contains("FAILED"), "{output}");
}
