//! Input another user controls: a spool directory she created first is refused, and an entry naming
//! her unregistered repository is quarantined and counted; nothing is pushed or sent.

use super::*;

/// What another user aims at: a file:// repository only we may write, and an HTTP server of
/// ours that takes our token (in a mode-600 file of ours).
struct OurTargets {
    victim: PathBuf,
    server: HttpGitServer,
    token_file: PathBuf,
}

impl OurTargets {
    /// Nothing reached them: no HTTP request at all, and the victim repository is untouched.
    fn assert_untouched(&self, env: &TestEnv) {
        assert_eq!(self.server.requests(), 0, "the HTTP server was contacted");
        assert!(env.refs(&self.victim).is_empty(), "{:?}", env.refs(&self.victim));
    }
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
