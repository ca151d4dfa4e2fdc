//! The static binary (`scripts/build-static.sh`; docs/hosts.md: "Gitea and Forgejo", "In a container")
//! in a root that has no C library at all: busybox, the binary, a configuration and a repository,
//! run under `chroot` the way Gitea's Alpine-based image would run it.
//!
//! The binary under test is the one `$GIT_PUSH_MIRROR_STATIC_BIN` names (`.ci/run` builds it and
//! sets it); without it these tests are skipped with a message on a developer's machine and fail
//! under `CI=true`. There is no git in the root, so the worker cannot push: the tests cover what
//! runs without git (the hook through Gitea's dispatcher, `list`, `status`, `metrics`, and `run`
//! keeping what it could not push), not a mirror push.

use crate::support::binary::{GITEA_POST_RECEIVE, stderr, stdout, write_hook};
use crate::support::{TestEnv, assert_success, require_or_skip};
use git_push_mirror::util::fsutil::FileLock;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, PoisonError};

/// The tests here copy executables and run them at once: a process another test forks while a
/// copy is still open for writing holds it open, and exec fails with "Text file busy". One at
/// a time, each test's copies are closed before anything runs.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Names the static binary to test.
const STATIC_BIN_ENV: &str = "GIT_PUSH_MIRROR_STATIC_BIN";
const ZERO: &str = "0000000000000000000000000000000000000000";

// ---------------------------------------------------------------------------
// Prerequisites

/// The dynamic loader an ELF executable asks for (its `PT_INTERP`), `None` for a static one.
fn elf_interpreter(path: &Path) -> Result<Option<String>, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let field = |at: usize, len: usize| -> Result<u64, String> {
        let raw = bytes
            .get(at..at + len)
            .ok_or_else(|| format!("{} is truncated", path.display()))?;
        Ok(raw.iter().rev().fold(0, |value, byte| value << 8 | u64::from(*byte)))
    };
    // 64-bit little-endian ELF: what x86_64 and aarch64 Linux run.
    if !bytes.starts_with(b"\x7fELF\x02\x01") {
        return Err(format!(
            "{} is not a 64-bit little-endian ELF executable",
            path.display()
        ));
    }
    let (phoff, phentsize, phnum) = (field(0x20, 8)?, field(0x36, 2)?, field(0x38, 2)?);
    for index in 0..phnum {
        let header = (phoff + index * phentsize) as usize;
        const PT_INTERP: u64 = 3;
        if field(header, 4)? == PT_INTERP {
            let (offset, size) = (field(header + 8, 8)? as usize, field(header + 32, 8)? as usize);
            let name = bytes
                .get(offset..offset + size)
                .ok_or_else(|| format!("{} is truncated", path.display()))?;
            return Ok(Some(String::from_utf8_lossy(name).trim_end_matches('\0').to_string()));
        }
    }
    Ok(None)
}

/// The static binary named by `$GIT_PUSH_MIRROR_STATIC_BIN`. Unset: a reason to skip (or fail
/// under CI). Set to anything but a static executable: the test fails.
fn static_binary() -> Result<PathBuf, String> {
    let path = std::env::var_os(STATIC_BIN_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            format!(
                "{STATIC_BIN_ENV} is not set: build the binary with scripts/build-static.sh and set \
                 {STATIC_BIN_ENV} to the path it prints (.ci/run does both)"
            )
        })?;
    match elf_interpreter(&path) {
        Ok(None) => Ok(path),
        Ok(Some(loader)) => panic!(
            "{STATIC_BIN_ENV}={} is dynamically linked (it needs {loader}); build it with scripts/build-static.sh",
            path.display()
        ),
        Err(e) => panic!("{STATIC_BIN_ENV}: {e}"),
    }
}

/// A statically linked busybox (Debian's `busybox-static`).
fn static_busybox() -> Result<PathBuf, String> {
    let path = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or("busybox is not installed (apt-get install busybox-static)")?;
    match elf_interpreter(&path)? {
        None => Ok(path),
        Some(_) => Err(format!(
            "{} is dynamically linked: install busybox-static instead of busybox",
            path.display()
        )),
    }
}

/// What `found` holds; `None` (the test is skipped, or fails under CI) when `what` is missing.
fn available<T>(what: &str, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(found) => Some(found),
        Err(why) => {
            require_or_skip(what, Err(why));
            None
        }
    }
}

/// The static binary and busybox.
fn prerequisites() -> Option<(PathBuf, PathBuf)> {
    let binary = available("the static binary", static_binary())?;
    Some((binary, available("busybox-static", static_busybox())?))
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------
// The root

/// A directory run as `/` under `chroot`: busybox and its applets, `/dev/null`, nothing else
/// until a test puts it there. Paths given to its methods are paths inside the root.
struct Root {
    dir: PathBuf,
    /// `chroot`, or `unshare --user --map-root-user chroot` where only a user namespace may chroot.
    chroot: Vec<OsString>,
}

impl Root {
    /// Lays out the root and installs busybox's applets from inside it, which is also the check
    /// that `chroot` is permitted here. `Err`: why it is not.
    fn new(env: &TestEnv, busybox: &Path) -> Result<Root, String> {
        let dir = env.path("root");
        for sub in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "var/lib"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        copy_executable(busybox, &dir.join("bin/busybox"));
        let chroot = find_program("chroot").ok_or("`chroot` is not on PATH (coreutils)")?;
        let mut candidates = vec![vec![chroot.clone().into_os_string()]];
        if let Some(unshare) = find_program("unshare") {
            candidates.push(vec![
                unshare.into_os_string(),
                "--user".into(),
                "--map-root-user".into(),
                chroot.into_os_string(),
            ]);
        }
        let mut refusals = Vec::new();
        for prefix in candidates {
            let out = Command::new(&prefix[0])
                .args(&prefix[1..])
                .arg(&dir)
                .args(["/bin/busybox", "--install", "-s"])
                .stdin(Stdio::null())
                .output()
                .unwrap();
            if out.status.success() {
                let root = Root { dir, chroot: prefix };
                root.add_container_basics();
                return Ok(root);
            }
            refusals.push(format!(
                "{}: {}",
                prefix.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join(" "),
                stderr(&out).trim()
            ));
        }
        Err(format!("chroot is not permitted here ({})", refusals.join("; ")))
    }

    /// What every container has and a bare root lacks: `/dev/null` (children's stdin), and
    /// `bash`, which Gitea's image has for Gitea's hooks (busybox's sh stands in for it).
    fn add_container_basics(&self) {
        fs::create_dir_all(self.path("/dev")).unwrap();
        let mknod = self.run("/", &[], &["/bin/mknod", "-m", "666", "/dev/null", "c", "1", "3"], "");
        if !mknod.status.success() {
            // A user namespace may not make device nodes: an empty file reads and writes alike.
            fs::write(self.path("/dev/null"), "").unwrap();
            fs::set_permissions(self.path("/dev/null"), fs::Permissions::from_mode(0o666)).unwrap();
        }
        write_executable(&self.path("/bin/bash"), "#!/bin/sh\nexec /bin/sh \"$@\"\n");
    }

    /// The host's path of `inside`.
    fn path(&self, inside: &str) -> PathBuf {
        self.dir.join(inside.trim_start_matches('/'))
    }

    /// Runs `argv` inside the root in directory `cwd`, with exactly the environment `vars`.
    fn run(&self, cwd: &str, vars: &[(&str, &str)], argv: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(&self.chroot[0])
            .args(&self.chroot[1..])
            .arg(&self.dir)
            .args(["/bin/sh", "-c", "cd \"$1\" && shift && exec \"$@\"", "sh", cwd])
            .args(argv)
            .env_clear()
            .envs(vars.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A program that exits without reading its input closes the pipe: not an error here.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    }
}

fn write_executable(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn install_binary(from: &Path, to: &Path) {
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    copy_executable(from, to);
}

/// Copies an executable with `cp`, a process of its own. Every area's tests share this process:
/// a copy this process wrote would be open for writing in any child another test forks meanwhile,
/// and running the copy before that child has exec'd fails with "Text file busy".
fn copy_executable(from: &Path, to: &Path) {
    let out = Command::new("cp")
        .arg(from)
        .arg(to)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_success(&out, &format!("cp {} {}", from.display(), to.display()));
}

/// Files directly in `dir` (none if it does not exist).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------
// Tests

/// Where things live in the container, as in the container route of docs/hosts.md: everything on
/// Gitea's `/data` volume.
const BIN: &str = "/data/git-push-mirror/bin/git-push-mirror";
const CONFIG: &str = "/data/git-push-mirror/config.toml";
const SPOOL: &str = "/data/git-push-mirror/spool";
const REPO: &str = "/data/git/repositories/acme/app.git";
/// The environment Gitea gives git, and git its hooks (Gitea's `[git] HOME_PATH`).
const CONTAINER_ENV: &[(&str, &str)] = &[("PATH", "/usr/local/bin:/usr/bin:/bin"), ("HOME", "/data/gitea/home")];

#[test]
fn in_a_root_without_a_c_library_the_static_hook_spools_through_giteas_dispatcher_and_the_commands_work() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let Some((binary, busybox)) = prerequisites() else {
        return;
    };
    let env = TestEnv::new();
    let Some(root) = available("chroot", Root::new(&env, &busybox)) else {
        return;
    };
    install_binary(&binary, &root.path(BIN));

    // The control: the ordinary, dynamically linked binary cannot even start here, so this
    // root really has no C library for the static one to lean on.
    install_binary(
        Path::new(env!("CARGO_BIN_EXE_git-push-mirror")),
        &root.path("/tmp/dynamic"),
    );
    let dynamic = root.run("/", CONTAINER_ENV, &["/tmp/dynamic", "--version"], "");
    assert_eq!(dynamic.status.code(), Some(127), "the dynamic binary ran: {dynamic:?}");
    let version = root.run("/", CONTAINER_ENV, &[BIN, "--version"], "");
    assert_success(&version, "the static binary's --version in the root");
    let host_version = Command::new(env!("CARGO_BIN_EXE_git-push-mirror"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(stdout(&version), stdout(&host_version));

    fs::write(
        root.path(CONFIG),
        format!(
            "spool_dir = \"{SPOOL}\"\nstate_dir = \"/data/git-push-mirror/state\"\n\
             log_file = \"/data/git-push-mirror/log/git-push-mirror.log\"\n\
             repos_root = \"/data/git/repositories\"\nworker_linger = \"0s\"\n\n\
             [defaults]\ndelay = \"0s\"\n\n\
             [mirror.backup]\nrepos = [\"acme/*\"]\nurl = \"ssh://git@backup.example.com/mirrors/{{name}}.git\"\n"
        ),
    )
    .unwrap();
    fs::create_dir_all(root.path("/data/gitea/home")).unwrap();

    // A repository with history, made by the host's git (there is none in the root), laid out
    // as Gitea lays it out, with our hook installed exactly as `install --gitea --config` run
    // inside the container writes it.
    let repo = env.bare_repo(&format!("root{REPO}"));
    let work = env.clone_work(&repo, "work");
    let head = env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["tag", "v1"]);
    env.git(&work, &["push", "--quiet", "origin", "main", "v1"]);
    write_hook(&repo, "post-receive", GITEA_POST_RECEIVE);
    fs::create_dir_all(repo.join("hooks/post-receive.d")).unwrap();
    let choice = git_push_mirror::ops::install::BinaryChoice {
        binary: Path::new(BIN),
        rebind: false,
    };
    git_push_mirror::ops::hosts::install_gitea(&repo, choice, Some(Path::new(CONFIG))).unwrap();

    // A worker already holds the spool's lock (as one would, running), so the hook only
    // spools: the entry stays for the test to read.
    fs::create_dir_all(root.path(SPOOL)).unwrap();
    let worker_lock = FileLock::try_acquire(&root.path(&format!("{SPOOL}/worker.lock")))
        .unwrap()
        .expect("nothing else holds the worker lock");

    // git runs post-receive in the bare repository with GIT_DIR=. and the refs on stdin.
    let mut hook_env = CONTAINER_ENV.to_vec();
    hook_env.push(("GIT_DIR", "."));
    let pushed = format!("{ZERO} {head} refs/heads/main\n{ZERO} {head} refs/tags/v1\n");
    let hook = root.run(REPO, &hook_env, &["hooks/post-receive"], &pushed);
    assert_success(&hook, "Gitea's post-receive dispatcher in the root");
    assert_eq!(stderr(&hook), "", "the hook printed to the pusher");
    let entries = files_in(&root.path(&format!("{SPOOL}/new")));
    assert_eq!(entries.len(), 1, "one spool entry: {entries:?}");
    let entry: serde_json::Value = serde_json::from_slice(&fs::read(&entries[0]).unwrap()).unwrap();
    assert_eq!(entry["repo"], REPO, "{entry}");
    let updates: Vec<(&str, &str)> = entry["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["ref"].as_str().unwrap(), u["new"].as_str().unwrap()))
        .collect();
    assert_eq!(
        updates,
        [("refs/heads/main", head.as_str()), ("refs/tags/v1", head.as_str())]
    );

    let command = |args: &[&str]| {
        let argv: Vec<&str> = [BIN, "--config", CONFIG].iter().chain(args).copied().collect();
        root.run("/", CONTAINER_ENV, &argv, "")
    };
    let list = command(&["list"]);
    assert_success(&list, "list in the root");
    assert_eq!(
        stdout(&list),
        // An SSH user is part of the URL, no secret: shown as typed.
        format!("{REPO}\tbackup\tssh://git@backup.example.com/mirrors/acme/app.git\tenabled\tfleet\n")
    );
    let metrics = command(&["metrics"]);
    assert_success(&metrics, "metrics in the root");
    assert!(
        stdout(&metrics).contains("\ngit_push_mirror_spool_entries 1\n"),
        "{}",
        stdout(&metrics)
    );
    let status = command(&["status", "--json"]);
    assert_success(&status, "status --json in the root");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status[0]["repo"], REPO, "{status}");
    assert_eq!(status[0]["mirror"], "backup", "{status}");
    assert_eq!(status[0]["update_status"], "none", "{status}");

    // The cron side (`run`): it takes the entry over, cannot push without git, and keeps the
    // refs pending with the reason, as it would for a mirror that is down.
    drop(worker_lock);
    let run = command(&["run"]);
    assert_eq!(run.status.code(), Some(1), "run without git: {run:?}");
    assert_eq!(files_in(&root.path(&format!("{SPOOL}/new"))), Vec::<PathBuf>::new());
    assert_eq!(files_in(&root.path(&format!("{SPOOL}/bad"))), Vec::<PathBuf>::new());
    let status = command(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let pending = status[0]["pending_refs"].to_string();
    assert!(
        pending.contains("refs/heads/main") && pending.contains("refs/tags/v1"),
        "{status}"
    );
    let last_error = status[0]["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains("could not run git"), "{status}");
}

/// A `libnss_probe.so.2` that answers every user lookup with the home directory `/probe-home`.
/// It needs no C library, so the static binary could load it in the root if it loaded modules.
const NSS_PROBE_MODULE: &str = r#"
struct passwd { char *pw_name, *pw_passwd; unsigned pw_uid, pw_gid; char *pw_gecos, *pw_dir, *pw_shell; };
static char name[] = "probe", none[] = "", home[] = "/probe-home", shell[] = "/bin/sh";
int _nss_probe_getpwuid_r(unsigned uid, struct passwd *pw, char *buf, unsigned long len, int *err) {
    (void)buf; (void)len; (void)err;
    pw->pw_name = name; pw->pw_passwd = none; pw->pw_uid = uid; pw->pw_gid = uid;
    pw->pw_gecos = none; pw->pw_dir = home; pw->pw_shell = shell;
    return 1; /* NSS_STATUS_SUCCESS */
}
"#;

#[test]
fn the_static_binary_finds_a_home_in_etc_passwd_and_never_loads_an_nss_module() {
    // A static glibc that loads the system's NSS modules runs code built for another C library:
    // Debian's libnss_systemd.so.2 crashed the hook when $HOME was unset. Users come from
    // /etc/passwd alone, whatever nsswitch.conf says.
    let _one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let Some((binary, busybox)) = prerequisites() else {
        return;
    };
    let cc = Command::new("cc")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run cc: {e}"))
        .and_then(|s| {
            if s.success() {
                Ok(())
            } else {
                Err(format!("cc --version: {s}"))
            }
        });
    if available("cc", cc).is_none() {
        return;
    }
    let env = TestEnv::new();
    let Some(root) = available("chroot", Root::new(&env, &busybox)) else {
        return;
    };
    install_binary(&binary, &root.path("/usr/local/bin/git-push-mirror"));
    let source = env.path("probe.c");
    fs::write(&source, NSS_PROBE_MODULE).unwrap();
    fs::create_dir_all(root.path("/lib")).unwrap();
    let cc = Command::new("cc")
        .args(["-shared", "-fPIC", "-nostdlib", "-o"])
        .arg(root.path("/lib/libnss_probe.so.2"))
        .arg(&source)
        .output()
        .unwrap();
    assert_success(&cc, "cc (the NSS probe module)");
    fs::write(root.path("/etc/nsswitch.conf"), "passwd: files probe\n").unwrap();
    fs::create_dir_all(root.path("/repo.git")).unwrap();

    // No $HOME, as in some hook environments: the home directory comes from /etc/passwd.
    let hook = |passwd: &str| {
        fs::write(root.path("/etc/passwd"), passwd).unwrap();
        let vars = [("PATH", "/usr/local/bin:/bin"), ("GIT_DIR", ".")];
        let pushed = format!("{ZERO} {} refs/heads/main\n", "1".repeat(40));
        let out = root.run(
            "/repo.git",
            &vars,
            &["git-push-mirror", "hook", "post-receive", "--no-worker"],
            &pushed,
        );
        assert_success(&out, "the hook without $HOME");
    };
    let spooled_under = |base: &str| files_in(&root.path(&format!("{base}/.local/state/git-push-mirror/spool/new")));

    // The user is in /etc/passwd: its home is found (glibc's built-in `files` service).
    hook("root:x:0:0:root:/home/root:/bin/sh\n");
    assert_eq!(
        spooled_under("/home/root").len(),
        1,
        "spooled under the home from /etc/passwd"
    );

    // The user is not: the next service, the probe, is never asked; with no home the spool is
    // the fallback under /var/lib.
    hook("git:x:1000:1000:Git:/home/git:/bin/sh\n");
    assert!(
        !root.path("/probe-home").exists(),
        "the static binary loaded libnss_probe.so.2 named by nsswitch.conf"
    );
    assert_eq!(files_in(&root.path("/var/lib/git-push-mirror/spool/new")).len(), 1);
}
