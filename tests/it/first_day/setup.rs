//! Setting up a repository and its mirrors: paths, work trees, SSH users, and mistakes caught at
//! setup rather than at the first push.

use super::*;

/// Runs the binary in `dir` (for arguments relative to it).
fn gpm_in(env: &TestEnv, dir: &Path, args: &[&str]) -> Output {
    gpm(env).current_dir(dir).args(args).output().unwrap()
}

// 1 ---------------------------------------------------------------------------------------------

#[test]
fn relative_and_home_mirror_paths_are_stored_absolute_and_the_hooks_worker_reaches_them() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("srv/app.git");
    let backup = env.bare_repo("srv/backup.git");
    let srv = env.path("srv");
    let real_srv = fs::canonicalize(&srv).unwrap();

    // Typed from the admin's shell in srv/: stored absolute, so the worker (which runs elsewhere) finds it.
    gpm_ok_in(
        &env,
        &srv,
        &["add", "app.git", "backup", "./backup.git", "--delay", "0s"],
    );
    assert_eq!(
        mirror_table(&upstream, "backup")["url"].as_str(),
        Some(path_str(&real_srv.join("backup.git")))
    );
    gpm_ok_in(&env, &srv, &["install", "app.git"]);
    let work = env.clone_work(&upstream, "work");
    let head = env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    wait_until("the hook's worker pushed to the stored path", CONVERGE, || {
        env.refs(&backup).get("refs/heads/main") == Some(&head)
            && gpm_ok(&env, &["status", path_str(&upstream)]).contains("update_status: finished")
    });

    // The other spellings: `../`, `file://relative`, `~/`.
    let other = env.bare_repo("other.git");
    gpm_ok_in(&env, &srv, &["set", "app.git", "backup", "--url", "../other.git"]);
    let root = fs::canonicalize(env.root()).unwrap();
    assert_eq!(
        mirror_table(&upstream, "backup")["url"].as_str(),
        Some(path_str(&root.join("other.git")))
    );
    assert!(other.exists());
    gpm_ok_in(&env, &srv, &["add", "app.git", "viafile", "file://backup.git"]);
    assert_eq!(
        mirror_table(&upstream, "viafile")["url"].as_str().unwrap(),
        format!("file://{}", path_str(&real_srv.join("backup.git")))
    );
    env.bare_repo("home/home-backup.git");
    gpm_ok_in(&env, &srv, &["add", "app.git", "inhome", "~/home-backup.git"]);
    assert_eq!(
        mirror_table(&upstream, "inhome")["url"].as_str().unwrap(),
        path_str(&fs::canonicalize(env.home()).unwrap().join("home-backup.git"))
    );

    // `~user` is refused with a reason, and nothing is written.
    let before = repo_file(&upstream);
    let refused = gpm_in(&env, &srv, &["add", "app.git", "bob", "~bob/x.git"]);
    assert_exit(&refused, 2, "add ~bob/x.git");
    assert!(
        stderr(&refused).contains("`~user` paths are not expanded"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(repo_file(&upstream), before);

    // A relative path written by hand is refused when the file is loaded, naming the file.
    let hand = env.bare_repo("hand.git");
    fs::write(hand.join("push-mirror.toml"), "[mirror.m]\nurl = \"../backup.git\"\n").unwrap();
    let broken = gpm_output(&env, &["status", path_str(&hand)]);
    assert_exit(&broken, 2, "status with a relative url");
    assert!(
        stderr(&broken).contains("is a relative path") && stderr(&broken).contains("push-mirror.toml"),
        "{}",
        stderr(&broken)
    );
}

fn gpm_ok_in(env: &TestEnv, dir: &Path, args: &[&str]) -> String {
    let out = gpm_in(env, dir, args);
    crate::support::assert_success(&out, &format!("git-push-mirror {}", args.join(" ")));
    stdout(&out)
}

// 2 ---------------------------------------------------------------------------------------------

#[test]
fn a_work_tree_is_refused_with_the_repository_to_give_instead() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("app.git");
    let mirror = env.bare_repo("mirror.git");
    let work = env.clone_work(&upstream, "work");
    let url = format!("file://{}", path_str(&mirror));
    let real_upstream = fs::canonicalize(&upstream).unwrap();

    for args in [
        vec!["add", path_str(&work), "m", url.as_str()],
        vec!["install", path_str(&work)],
        vec!["status", path_str(&work)],
    ] {
        let refused = gpm_output(&env, &args);
        assert_exit(&refused, 2, &args.join(" "));
        let message = stderr(&refused);
        assert!(message.contains("is a work tree"), "{message}");
        assert!(
            message.contains(&format!(
                "the bare repository it was cloned from, {}",
                real_upstream.display()
            )),
            "{message}"
        );
        assert!(message.contains("/work/.git"), "{message}");
    }
    assert!(
        !work.join("push-mirror.toml").exists(),
        "nothing written into the work tree"
    );
    assert!(!work.join(".git/hooks/post-receive").exists());

    // A work tree cloned from elsewhere: the message still says what to give.
    let lone = env.path("lone");
    fs::create_dir_all(&lone).unwrap();
    env.git(&lone, &["init", "--quiet"]);
    let refused = gpm_output(&env, &["add", path_str(&lone), "m", &url]);
    assert_exit(&refused, 2, "add on a work tree without origin");
    assert!(
        stderr(&refused).contains("give that bare repository"),
        "{}",
        stderr(&refused)
    );

    // Not a repository at all.
    let plain = env.path("plain");
    fs::create_dir_all(&plain).unwrap();
    let refused = gpm_output(&env, &["add", path_str(&plain), "m", &url]);
    assert_exit(&refused, 2, "add on a plain directory");
    assert!(
        stderr(&refused).contains("is not a git repository"),
        "{}",
        stderr(&refused)
    );

    // The git directory itself is a repository pushes can go to: accepted.
    gpm_ok(&env, &["add", path_str(&work.join(".git")), "m", &url]);
}

// 6 ---------------------------------------------------------------------------------------------

#[test]
fn an_ssh_user_stays_in_the_url_and_pushes_log_in_as_that_user() {
    if !require_or_skip("sshd", Sshd::available()) {
        return;
    }
    let env = TestEnv::new();
    let sshd = Sshd::start(&env);
    let upstream = env.bare_repo("app.git");
    let mirror = env.bare_repo("mirror.git");
    let url = sshd.url(&mirror); // ssh://USER@127.0.0.1:PORT/…
    let key = env.path("key");
    fs::copy(sshd.client_key(), &key).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let known_hosts = env.path("known_hosts");
    fs::write(&known_hosts, format!("{}\n", sshd.known_hosts_line())).unwrap();

    let args = [
        "add",
        path_str(&upstream),
        "backup",
        &url,
        "--ssh-key",
        path_str(&key),
        "--known-hosts",
        path_str(&known_hosts),
    ];
    gpm_ok(&env, &args);
    let table = mirror_table(&upstream, "backup");
    assert_eq!(table["url"].as_str(), Some(url.as_str()), "the user stays in the URL");
    assert!(table.get("username").is_none(), "{table:?}");
    let listed = gpm_ok(&env, &["list", path_str(&upstream)]);
    assert!(
        listed.contains(&format!("ssh://{}@127.0.0.1:", sshd.user())),
        "{listed}"
    );

    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    gpm_ok(&env, &["sync", path_str(&upstream)]);
    assert_eq!(env.refs(&mirror), env.refs(&upstream));
    let status = gpm_ok(&env, &["status", path_str(&upstream)]);
    assert!(
        status.contains(&format!("ssh://{}@127.0.0.1:", sshd.user())),
        "{status}"
    );

    // `--username` is the HTTPS user; a password in an SSH URL is refused.
    let refused = gpm_output(&env, &["add", path_str(&upstream), "u", &url, "--username", "root"]);
    assert_exit(&refused, 2, "--username with an SSH URL");
    assert!(
        stderr(&refused).contains("an SSH user goes in the URL"),
        "{}",
        stderr(&refused)
    );
    let with_password = url.replacen("@", ":hunter2@", 1);
    let refused = gpm_output(&env, &["add", path_str(&upstream), "p", &with_password]);
    assert_exit(&refused, 2, "a password in an SSH URL");
    assert!(!stderr(&refused).contains("hunter2"), "{}", stderr(&refused));
    assert!(!repo_file(&upstream).contains("hunter2"));
}

// 7 ---------------------------------------------------------------------------------------------

#[test]
fn setup_mistakes_are_caught_when_made_not_at_the_first_push() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("app.git");
    let mirror = env.bare_repo("mirror.git");
    let repo = path_str(&upstream);

    // A password file that does not exist.
    let missing = gpm_output(
        &env,
        &[
            "add",
            repo,
            "gh",
            "https://example.com/a.git",
            "--username",
            "u",
            "--password-file",
            "/nonexistent/token",
        ],
    );
    assert_exit(&missing, 2, "add --password-file /nonexistent");
    assert!(
        stderr(&missing).contains("password file /nonexistent/token does not exist"),
        "{}",
        stderr(&missing)
    );
    assert!(!upstream.join("push-mirror.toml").exists());

    // keygen on a mirror that does not use SSH: refused before anything is created.
    gpm_ok(&env, &["add", repo, "local", &format!("file://{}", path_str(&mirror))]);
    let before = repo_file(&upstream);
    let keygen = gpm_output(&env, &["keygen", repo, "local"]);
    assert_exit(&keygen, 2, "keygen on a file:// mirror");
    assert!(stderr(&keygen).contains("does not use SSH") && stderr(&keygen).contains("nothing was created"));
    assert_eq!(repo_file(&upstream), before);
    let keys = files_named(&state_base(&env), "local.ed25519");
    assert!(keys.is_empty(), "no key was created: {keys:?}");

    // An unwritable log_file: `check` reports it, and `run` says where it logs instead.
    fs::write(env.path("a-file"), "").unwrap();
    let log_file = env.path("a-file/git-push-mirror.log");
    write_global_config(&env, &format!("log_file = \"{}\"\n", path_str(&log_file)));
    let check = gpm_output(&env, &["check"]);
    assert_exit(&check, 1, "check with an unwritable log_file");
    assert!(
        stdout(&check).contains(&format!("log_file {}: FAILED", log_file.display()))
            && stdout(&check).contains("is not a directory"),
        "{}",
        stdout(&check)
    );
    let run = gpm(&env).arg("run").stderr(Stdio::piped()).output().unwrap();
    assert!(
        stderr(&run).contains(&format!("cannot open log_file {}", log_file.display())),
        "{}",
        stderr(&run)
    );

    // known-hosts --accept: what each key line says agrees with the summary.
    if !require_or_skip("sshd", Sshd::available()) {
        return;
    }
    let sshd = Sshd::start(&env);
    let file = env.path("known_hosts");
    let url = sshd.url(&mirror);
    let accepted = gpm_ok(&env, &["known-hosts", &url, "--accept", "--file", path_str(&file)]);
    assert!(!accepted.contains("not recorded"), "{accepted}");
    assert!(
        accepted.contains("recorded now") && accepted.contains("recorded 1 key(s)"),
        "{accepted}"
    );
    let again = gpm_ok(&env, &["known-hosts", &url, "--accept", "--file", path_str(&file)]);
    assert!(
        again.contains("already recorded") && !again.contains("recorded now"),
        "{again}"
    );
    let shown = gpm_ok(&env, &["known-hosts", &url, "--file", path_str(&file)]);
    assert!(
        shown.contains("  recorded") && !shown.contains("not recorded"),
        "{shown}"
    );
}

fn files_named(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().contains(suffix) {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn add_and_set_url_try_the_mirror_and_warn_in_the_hosts_words_when_it_cannot_be_reached() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("app.git");
    let repo = path_str(&upstream);
    let shown_repo = fs::canonicalize(&upstream).unwrap().display().to_string();

    // A host that does not exist: added, with the host's words and what to run later.
    let unknown = gpm_output(&env, &["add", repo, "gh", "https://nohost.invalid/acme/app.git"]);
    assert_exit(&unknown, 0, "add to an unknown host");
    let said = stderr(&unknown);
    assert!(
        said.contains(
            "warning: mirror gh could not be reached: fatal: unable to access 'https://nohost.invalid/acme/app.git/': \
             Could not resolve host: nohost.invalid"
        ) && said.contains(&format!("it was added anyway (its repository may be created later, or its host be out of reach from here for now); `git-push-mirror check {shown_repo}` tries it again")),
        "{said}"
    );
    assert!(repo_file(&upstream).contains("[mirror.gh]"), "a warning, not a refusal");

    // A repository that does not exist on a real smart-HTTP server: the same, in its words.
    if !require_or_skip("git http-backend", HttpGitServer::available()) {
        return;
    }
    fs::create_dir_all(env.path("srv")).unwrap();
    let server = HttpGitServer::start(&env, &env.path("srv"), HTTP_USER, HTTP_PASSWORD);
    let token = secret_file(&env, "token", HTTP_PASSWORD, 0o600);
    let credentials = ["--username", HTTP_USER, "--password-file", path_str(&token)];
    let nosuch_url = server.url("nosuch.git");
    let mut args = vec!["add", repo, "backup", &nosuch_url];
    args.extend_from_slice(&credentials);
    let missing = gpm_output(&env, &args);
    assert_exit(&missing, 0, "add of a repository that does not exist");
    assert!(
        stderr(&missing).contains("warning: mirror backup could not be reached: ")
            && stderr(&missing).contains("not found"),
        "{}",
        stderr(&missing)
    );

    // Re-pointed at a repository that exists: `set --url` tries it, and says nothing.
    env.bare_repo("srv/mirror.git");
    let fixed = gpm_output(&env, &["set", repo, "backup", "--url", &server.url("mirror.git")]);
    assert_exit(&fixed, 0, "set --url");
    assert!(!stderr(&fixed).contains("could not be reached"), "{}", stderr(&fixed));
    let broken = gpm_output(&env, &["set", repo, "backup", "--url", &server.url("gone.git")]);
    assert!(
        stderr(&broken).contains("warning: mirror backup could not be reached: ")
            && stderr(&broken).contains("it was changed anyway"),
        "{}",
        stderr(&broken)
    );
}
