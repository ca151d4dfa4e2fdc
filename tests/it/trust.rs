//! Trust boundaries (docs/security.md), with real local users made by `useradd`: another user
//! who creates the spool directory first, or who gets an entry naming her repository into ours,
//! can make the worker push nothing and send no credential anywhere; the files a sync leaves
//! in the temporary directory, and the log, are unreadable by other users.

use crate::support::binary::*;
use crate::support::procs::Reaper;
use crate::support::{HttpGitServer, TestEnv, TestUser, assert_success, path_str, require_or_skip, wait_until};
use git_push_mirror::pipeline::spool::{RefUpdate, SPOOL_FORMAT_VERSION, SpoolEntry};
use git_push_mirror::util::oid::Oid;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const USER: &str = "mirror-bot";

fn prerequisites() -> bool {
    require_or_skip("root, useradd and userdel", TestUser::available())
        && require_or_skip("git http-backend", HttpGitServer::available())
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// What another user aims at: a file:// repository only we may write, and an HTTP server of
/// ours that takes our token (in a mode-600 file of ours).
struct OurTargets {
    victim: PathBuf,
    server: HttpGitServer,
    token_file: PathBuf,
}

fn our_targets(env: &TestEnv) -> OurTargets {
    let victim = env.bare_repo("victim-mirror.git");
    let token = format!("ourtoken{}", std::process::id());
    env.bare_repo("srv/theirs.git");
    let server = HttpGitServer::start(env, &env.path("srv"), USER, &token);
    let token_file = secret_file(env, "our.token", &token, 0o600);
    OurTargets {
        victim,
        server,
        token_file,
    }
}

impl OurTargets {
    /// Nothing reached them: no HTTP request at all, and the victim repository is untouched.
    fn assert_untouched(&self, env: &TestEnv) {
        assert_eq!(self.server.requests(), 0, "the HTTP server was contacted");
        assert!(env.refs(&self.victim).is_empty(), "{:?}", env.refs(&self.victim));
    }
}

/// The user's bare repository, with a commit, owned by her, whose `push-mirror.toml` (hers too)
/// mirrors to our targets with our password file.
fn her_repository(env: &TestEnv, her: &TestUser, ours: &OurTargets) -> (PathBuf, String) {
    let repo = env.bare_repo("hers.git");
    let work = env.clone_work(&repo, "hers-work");
    let commit = env.commit(&work, "a.txt", "hers", "her commit");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    std::fs::write(
        repo.join("push-mirror.toml"),
        format!(
            "[mirror.ours]\nurl = \"file://{}\"\ndelay = \"0s\"\n\n\
             [mirror.http]\nurl = \"{}\"\nusername = \"{USER}\"\npassword_file = \"{}\"\ndelay = \"0s\"\n",
            path_str(&ours.victim),
            ours.server.url("theirs.git"),
            path_str(&ours.token_file)
        ),
    )
    .unwrap();
    her.own(&[&repo]);
    (repo, commit)
}

/// The spool entry a hook in `repo` would write for a push of `main` to `commit`.
fn entry_for(repo: &Path, commit: &str) -> Vec<u8> {
    let entry = SpoolEntry {
        version: SPOOL_FORMAT_VERSION,
        repo: repo.to_path_buf(),
        received_at_ms: 1,
        updates: vec![RefUpdate {
            name: "refs/heads/main".into(),
            old: Oid::parse(&"0".repeat(40)).unwrap(),
            new: Oid::parse(commit).unwrap(),
        }],
    };
    serde_json::to_vec(&entry).unwrap()
}

/// Runs our hook (spooling only) in `repo` for a push of `main` to `new`.
fn run_hook(env: &TestEnv, repo: &Path, new: &str) -> std::process::Output {
    let mut child = gpm(env)
        .args(["hook", "post-receive", "--no-worker"])
        .current_dir(repo)
        .env("GIT_DIR", ".")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{} {new} refs/heads/main", "0".repeat(40)).unwrap();
    child.wait_with_output().unwrap()
}

fn log_text(env: &TestEnv) -> String {
    std::fs::read_to_string(state_base(env).join("git-push-mirror.log")).unwrap_or_default()
}

#[test]
fn a_spool_another_user_created_is_refused_and_nothing_is_pushed_or_sent() {
    if !prerequisites() {
        return;
    }
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    let ours = our_targets(&env);
    let mallory = TestUser::with_home(&env);
    let (hers, commit) = her_repository(&env, &mallory, &ours);

    // A world-writable directory (a shared mount, say) where our spool is configured to be:
    // she creates the spool first, writable by all, and drops an entry naming her repository.
    let shared = env.path("shared");
    std::fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o777);
    let spool = shared.join("spool");
    let made = mallory
        .command("sh")
        .args([
            "-c",
            "umask 0; mkdir -p \"$1/new\" \"$1/tmp\" \"$1/claimed\" \"$1/bad\" && cat > \"$1/new/1.json\"",
        ])
        .args(["sh", path_str(&spool)])
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(&entry_for(&hers, &commit))?;
            child.wait_with_output()
        })
        .unwrap();
    assert_success(&made, "her spool and entry");
    assert_eq!(std::fs::metadata(&spool).unwrap().uid(), mallory.uid);
    write_global_config(&env, &format!("spool_dir = \"{}\"\n", path_str(&spool)));

    let out = gpm_output(&env, &["run", "--wait"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // `run` without a terminal (cron) says it in its log.
    let err = log_text(&env);
    assert!(
        err.contains(&format!("the spool directory {}", spool.display()))
            && err.contains(&format!("belongs to {}", mallory.name))
            && err.contains("mode 777")
            && err.contains(&format!("chmod 700 {}", spool.display())),
        "the error names the directory, its owner and mode, and the fix: {err}"
    );
    assert!(spool.join("new/1.json").exists(), "her entry was not taken");
    ours.assert_untouched(&env);

    // Our own hook does not write into her spool: one warning line, and the default spool.
    let upstream = env.bare_repo("upstream.git");
    let out = run_hook(&env, &upstream, &"1".repeat(40));
    assert_success(&out, "the hook");
    let lines: Vec<String> = stderr(&out).lines().map(str::to_string).collect();
    assert!(
        lines.len() == 1 && lines[0].contains(path_str(&spool)) && lines[0].contains("spooling to"),
        "{lines:?}"
    );
    assert_eq!(spool_files(&env, "new").len(), 1, "in the default spool");
    assert_eq!(std::fs::read_dir(spool.join("new")).unwrap().count(), 1, "hers only");
    // When the default spool cannot be trusted either, the push is not recorded (and said so).
    set_mode(&spool_dir(&env), 0o777);
    let out = run_hook(&env, &upstream, &"1".repeat(40));
    assert_success(&out, "the hook");
    assert!(stderr(&out).contains("was not recorded"), "{}", stderr(&out));
    assert_eq!(spool_files(&env, "new").len(), 1);
    set_mode(&spool_dir(&env), 0o700);
    std::fs::remove_dir_all(spool_dir(&env)).unwrap();

    // Every command that writes refuses it the same way.
    let url = format!("file://{}", path_str(&ours.victim));
    let out = gpm_output(&env, &["add", path_str(&upstream), "backup", &url]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("the spool directory"), "{}", stderr(&out));

    // Ours, it would be used; below her world-writable directory, even a spool of ours is not:
    // she could swap it.
    std::fs::remove_dir_all(&spool).unwrap();
    std::fs::create_dir(&spool).unwrap();
    set_mode(&spool, 0o700);
    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("lies in {}", shared.display())) && stderr(&out).contains("chmod +t"),
        "{}",
        stderr(&out)
    );
    set_mode(&shared, 0o1777);
    let out = gpm_output(&env, &["run", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "sticky, like /tmp: {}", stderr(&out));
    ours.assert_untouched(&env);

    // A spool its group may write: only when that group is the shared_group.
    std::os::unix::fs::chown(&spool, None, Some(mallory.gid)).unwrap();
    set_mode(&spool, 0o2770);
    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("can be written by the group {}", mallory.name))
            && stderr(&out).contains("shared_group"),
        "{}",
        stderr(&out)
    );
    write_global_config(
        &env,
        &format!(
            "spool_dir = \"{}\"\nshared_group = \"{}\"\n",
            path_str(&spool),
            mallory.name
        ),
    );
    let out = gpm_output(&env, &["run", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "a shared group: {}", stderr(&out));
    set_mode(&spool, 0o2777);
    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert_eq!(out.status.code(), Some(2), "never writable by all: {}", stderr(&out));
    ours.assert_untouched(&env);
}

#[test]
fn an_entry_naming_an_unregistered_repository_of_another_user_is_quarantined_and_counted() {
    if !prerequisites() {
        return;
    }
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    let ours = our_targets(&env);
    let mallory = TestUser::with_home(&env);
    let (hers, _) = her_repository(&env, &mallory, &ours);
    // Our own repository, mirrored, as a control: the worker runs and does its work.
    let mine = Setup::spooling_only(&env, "mine");
    env.commit(&mine.work, "a.txt", "mine", "my commit");
    mine.push(&env, &["main"]);

    // An entry naming her repository reaches our spool: our hook, run in her repository (installed
    // there by hand, or reached through a shared setup), records it.
    let head = std::fs::read_to_string(hers.join("refs/heads/main")).unwrap();
    let hook = run_hook(&env, &hers, head.trim());
    assert_success(&hook, "the hook in her repository");
    assert_eq!(spool_files(&env, "new").len(), 2);

    let out = gpm_output(&env, &["run", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stderr(&out), log_text(&env));
    mine.wait_converged(&env);
    ours.assert_untouched(&env);
    assert!(spool_files(&env, "new").is_empty());
    let bad = spool_files(&env, "bad");
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(path_str(&bad[0]).ends_with(".json.untrusted"), "{bad:?}");
    let log = log_text(&env);
    let line: Vec<&str> = log.lines().filter(|l| l.contains("does not mirror")).collect();
    assert_eq!(line.len(), 1, "one log line: {log}");
    assert!(
        line[0].contains(path_str(&hers)) && line[0].contains(&mallory.name) && line[0].contains("install"),
        "{}",
        line[0]
    );

    let metrics = gpm_output(&env, &["metrics"]);
    let text = stdout(&metrics);
    for (name, value) in [("spool_untrusted_entries", "1"), ("spool_bad_entries", "1")] {
        let line = format!("git_push_mirror_{name} {value}");
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    let status = gpm_ok(&env, &["status", "--json"]);
    assert!(
        !status.contains(path_str(&hers)),
        "her repository was not registered: {status}"
    );
}

/// Paths seen, with their mode, owner and whether they are directories.
type Seen = BTreeMap<PathBuf, (u32, u32, bool)>;

/// Everything under `dir`, with its metadata (root sees into every directory).
fn walk(dir: &Path, seen: &mut Seen) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        seen.insert(entry.path(), (meta.mode(), meta.uid(), meta.is_dir()));
        if meta.is_dir() {
            walk(&entry.path(), seen);
        }
    }
}

/// What another user tries while polling the temporary directory: list and read everything
/// she sees, and the files our temporary directories are known to hold.
const POLLER: &str = r#"tmp=$1; stop=$2
while [ ! -e "$stop" ]; do
  for d in "$tmp"/* "$tmp"/*/*; do
    [ -e "$d" ] || continue
    echo "SEEN $d"
    if [ -d "$d" ]; then
      ls -a "$d" >/dev/null 2>&1 && echo "LISTED $d"
      for f in packets credentials config HEAD packed-refs objects/info/alternates rejected.0; do
        timeout 1 cat "$d/$f" >/dev/null 2>&1 && echo "READ $d/$f"
      done
    elif timeout 1 cat "$d" >/dev/null 2>&1; then
      echo "READ $d"
    fi
  done
done
"#;

#[test]
fn temporary_files_of_a_sync_and_the_log_are_unreadable_by_other_users() {
    if !prerequisites() {
        return;
    }
    let mut env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    // A temporary root like /tmp: everyone may create entries in it, the sticky bit set.
    let tmp = env.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    set_mode(&tmp, 0o1777);
    env.set_env("TMPDIR", &tmp);
    let eve = TestUser::with_home(&env);
    let token = format!("tmptoken{}", std::process::id());
    let mirror = env.bare_repo("srv/mirror.git");
    let server = HttpGitServer::start(&env, &env.path("srv"), USER, &token);
    let token_file = secret_file(&env, "token", &token, 0o600);
    let upstream = env.bare_repo("upstream.git");
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&upstream),
            "backup",
            &server.url("mirror.git"),
            "--username",
            USER,
            "--password-file",
            path_str(&token_file),
        ],
    );
    let work = env.clone_work(&upstream, "work");

    let stop = env.path("stop-polling");
    let polled = eve.home.join("polled.txt");
    let poller = eve
        .command("sh")
        .args(["-c", &format!("{POLLER}\n"), "sh", path_str(&tmp), path_str(&stop)])
        .stdout(std::fs::File::create(&polled).unwrap())
        .spawn()
        .unwrap();
    let ours: std::sync::Arc<std::sync::Mutex<Seen>> = Default::default();
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (ours, watching, tmp) = (ours.clone(), watching.clone(), tmp.clone());
        std::thread::spawn(move || {
            while watching.load(std::sync::atomic::Ordering::SeqCst) {
                let mut seen = BTreeMap::new();
                walk(&tmp, &mut seen);
                ours.lock().unwrap().extend(seen);
            }
        })
    };
    for round in 0..3 {
        env.commit(&work, "a.txt", &format!("round {round}"), &format!("round {round}"));
        env.git(&work, &["tag", &format!("v{round}")]);
        env.git(&work, &["push", "--quiet", "origin", "main", "--tags"]);
        let out = gpm_output(&env, &["sync", path_str(&upstream)]);
        assert_success(&out, "sync");
    }
    assert_eq!(env.refs(&mirror), env.refs(&upstream), "the syncs pushed");
    // The worker, for its log file.
    gpm_ok(&env, &["run", "--wait"]);
    std::fs::write(&stop, "").unwrap();
    watching.store(false, std::sync::atomic::Ordering::SeqCst);
    watcher.join().unwrap();
    let mut poller = poller;
    wait_until("the poller stops", Duration::from_secs(30), || {
        matches!(poller.try_wait(), Ok(Some(_)))
    });

    let seen = ours.lock().unwrap().clone();
    let made: Vec<&PathBuf> = seen
        .keys()
        .filter(|path| path.parent() == Some(tmp.as_path()))
        .filter(|path| path_str(path).contains("git-push-mirror-"))
        .collect();
    assert!(
        made.iter().any(|p| path_str(p).contains("git-push-mirror-cred."))
            && made.iter().any(|p| path_str(p).contains("git-push-mirror-trace.")),
        "the watcher saw the sync's temporary directories: {seen:#?}"
    );
    for (path, (mode, uid, is_dir)) in &seen {
        assert_eq!(*uid, 0, "{} is ours", path.display());
        let expected = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(
            mode & 0o7777,
            expected,
            "{} has mode {:o}",
            path.display(),
            mode & 0o7777
        );
    }
    let polled = std::fs::read_to_string(&polled).unwrap();
    assert!(
        polled
            .lines()
            .any(|l| l.starts_with("SEEN ") && l.contains("git-push-mirror-")),
        "the other user saw our temporary directories (else this proves nothing): {polled:.2000}"
    );
    let read: Vec<&str> = polled
        .lines()
        .filter(|l| l.starts_with("LISTED ") || l.starts_with("READ "))
        .collect();
    assert!(read.is_empty(), "the other user read: {read:?}");

    let log = std::fs::metadata(state_base(&env).join("git-push-mirror.log")).unwrap();
    assert_eq!(log.mode() & 0o037, 0, "the log file has mode {:o}", log.mode() & 0o7777);
    let read_log = eve
        .command("cat")
        .arg(state_base(&env).join("git-push-mirror.log"))
        .output()
        .unwrap();
    assert!(!read_log.status.success(), "the other user read the log");
}

const BIN: &str = env!("CARGO_BIN_EXE_git-push-mirror");

/// A group made for one test (`groupadd`), removed when dropped.
struct TestGroup {
    name: String,
}

impl TestGroup {
    fn create() -> TestGroup {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("gpmg{}x{n}", std::process::id());
        let out = std::process::Command::new("groupadd").arg(&name).output().unwrap();
        assert_success(&out, &format!("groupadd {name}"));
        TestGroup { name }
    }

    fn add(&self, user: &TestUser) {
        let out = std::process::Command::new("usermod")
            .args(["-aG", &self.name, &user.name])
            .output()
            .unwrap();
        assert_success(&out, "usermod -aG");
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("groupdel")
            .arg(&self.name)
            .stderr(Stdio::null())
            .status();
    }
}

/// `chown -R user:group path`, then group read/write on everything and setgid on directories:
/// what `git init --shared=group` and an admin's `install -d -m 2770` make.
fn share(env: &TestEnv, path: &Path, owner: &str, group: &str) {
    let script = format!(
        "chown -R {owner}:{group} '{p}' && chmod -R g+rwX '{p}' && find '{p}' -type d -exec chmod g+s {{}} +",
        p = path_str(path)
    );
    let out = env.cmd("sh").args(["-c", &script]).output().unwrap();
    assert_success(&out, &script);
}

#[test]
fn a_group_shared_spool_and_state_serve_every_members_pushes() {
    if !require_or_skip("root, useradd and setpriv", TestUser::available()) {
        return;
    }
    let env = TestEnv::new();
    set_mode(env.root(), 0o755);
    // Repositories owned by a group's member are theirs to push to; git asks to be told so.
    let gitconfig = env.home().join(".gitconfig");
    let mut config = std::fs::OpenOptions::new().append(true).open(&gitconfig).unwrap();
    writeln!(config, "[safe]\n\tdirectory = *").unwrap();
    drop(config);
    let group = TestGroup::create();
    let (alice, bob) = (TestUser::create(), TestUser::create());
    group.add(&alice);
    group.add(&bob);

    let srv = env.path("srv");
    let (spool, state, log) = (srv.join("spool"), srv.join("state"), srv.join("log"));
    for dir in [&spool, &state, &log] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let system = env.path("etc/git-push-mirror/config.toml");
    std::fs::create_dir_all(system.parent().unwrap()).unwrap();
    std::fs::write(
        &system,
        format!(
            "spool_dir = '{}'\nstate_dir = '{}'\nlog_file = '{}/git-push-mirror.log'\nshared_group = '{}'\n\
             worker_linger = '1s'\n",
            path_str(&spool),
            path_str(&state),
            path_str(&log),
            group.name
        ),
    )
    .unwrap();
    let repo = env.bare_repo("srv/git/app.git");
    env.git(&repo, &["config", "core.sharedRepository", "group"]);
    let mirror = env.bare_repo("srv/git/mirror.git");
    env.git(&mirror, &["config", "core.sharedRepository", "group"]);
    for dir in [&spool, &state, &log] {
        share(&env, dir, "root", &group.name);
    }
    share(&env, &repo, &alice.name, &group.name);
    share(&env, &mirror, &alice.name, &group.name);

    // Each member pushes from a clone of their own; the hook (and the worker it starts) runs as them.
    let clone_for = |user: &TestUser, name: &str| {
        let work = env.clone_work(&repo, name);
        user.own(&[&work]);
        work
    };
    let (alice_work, bob_work) = (clone_for(&alice, "alice-work"), clone_for(&bob, "bob-work"));
    let as_user = |user: &TestUser, dir: &Path, program: &str, args: &[&str]| {
        let out = user.cmd(&env, program).current_dir(dir).args(args).output().unwrap();
        assert_success(&out, &format!("{program} {} as {}", args.join(" "), user.name));
        out
    };
    let url = format!("file://{}", path_str(&mirror));
    as_user(&alice, env.root(), BIN, &["add", path_str(&repo), "backup", &url]);
    as_user(&alice, env.root(), BIN, &["install", path_str(&repo)]);

    let push = |user: &TestUser, work: &Path, branch: &str| {
        let file = work.join(format!("{branch}.txt"));
        std::fs::write(&file, branch).unwrap();
        user.own(&[&file]);
        as_user(user, work, "git", &["add", "."]);
        as_user(user, work, "git", &["commit", "-qm", branch]);
        as_user(
            user,
            work,
            "git",
            &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
        )
    };
    push(&alice, &alice_work, "alice");
    wait_until("alice's push reaches the mirror", CONVERGE, || {
        env.refs(&mirror).contains_key("refs/heads/alice")
    });
    // Bob's hook and worker use what Alice's made: the spool's lock, the repository's state.
    let pushed = push(&bob, &bob_work, "bob");
    let log_file = log.join("git-push-mirror.log");
    wait_until("bob's push reaches the mirror", CONVERGE, || {
        env.refs(&mirror).contains_key("refs/heads/bob")
    });
    assert!(
        pushed.stderr.is_empty(),
        "the hook said nothing to bob: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let logged = std::fs::read_to_string(&log_file).unwrap();
    assert!(!logged.contains("WARN") && !logged.contains("ERROR"), "{logged}");
    assert_eq!(env.refs(&mirror), env.refs(&repo));

    let status = as_user(&bob, env.root(), BIN, &["status", "--json", path_str(&repo)]);
    let statuses: Vec<serde_json::Value> = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(statuses[0]["update_status"], "finished", "{statuses:#?}");
    assert_eq!(statuses[0]["state_error"], serde_json::Value::Null, "{statuses:#?}");
    // What the workers keep is the group's, and nobody else's.
    let mut files = Vec::new();
    let mut dirs = vec![state.clone(), spool.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty());
    let shared_gid = std::fs::metadata(&spool).unwrap().gid();
    for file in files.iter().chain([&log_file]) {
        let meta = std::fs::metadata(file).unwrap();
        let mode = meta.mode() & 0o777;
        assert!(
            mode & 0o060 == 0o060 && mode & 0o007 == 0,
            "{}: {mode:o}",
            file.display()
        );
        assert_eq!(meta.gid(), shared_gid, "{} belongs to the shared group", file.display());
    }
}
