//! A spool and state shared by a group serve every member's pushes.

use super::*;

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
