//! An admin's first day and first month: the mistakes a new admin makes (relative paths, a work
//! tree, unwritable metrics, fleet mirrors changed per repository, deleted repositories, SSH
//! users, missing files, mistyped names) are caught at the door with a message that says what to
//! do; the shipped examples and the Debian package work as documented. One test per item of the
//! issue that found them, plus the `--help` completeness check.

use crate::support::binary::*;
use crate::support::{HttpGitServer, Sshd, TestEnv, path_str, require_or_skip, wait_until};
use clap::CommandFactory;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_git-push-mirror");

fn repo_file(repo: &Path) -> String {
    fs::read_to_string(repo.join("push-mirror.toml")).unwrap_or_default()
}

fn mirror_table(repo: &Path, name: &str) -> toml::Table {
    let file: toml::Table = toml::from_str(&repo_file(repo)).unwrap();
    file["mirror"][name].as_table().unwrap().clone()
}

fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}\nstdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

/// Runs the binary in `dir` (for arguments relative to it).
fn gpm_in(env: &TestEnv, dir: &Path, args: &[&str]) -> Output {
    gpm(env).current_dir(dir).args(args).output().unwrap()
}

/// The value of an unlabelled metric.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

/// The source tree (tests run with it as the manifest directory).
fn source(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
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

// 3 ---------------------------------------------------------------------------------------------

/// A global configuration whose mirrors fail for good after one failed update.
fn fail_fast_config(env: &TestEnv) {
    write_global_config(
        env,
        "worker_linger = \"0s\"\n[defaults]\ndelay = \"0s\"\n[retry]\ninitial = \"1m\"\nfail_after = 1\n",
    );
}

/// The example cron line for `metrics`, uncommented, with the binary and output file given.
fn cron_metrics_command(output: &Path) -> String {
    let cron = fs::read_to_string(source("examples/cron.d/git-push-mirror")).unwrap();
    let line = cron
        .lines()
        .map(|l| l.trim_start_matches('#'))
        .find(|l| l.contains(" metrics "))
        .expect("a metrics line in the cron example");
    // minute hour day month weekday user command…
    let command: Vec<&str> = line.split_whitespace().skip(6).collect();
    let command = command.join(" ");
    let guarded = "test -x /usr/bin/git-push-mirror && /usr/bin/git-push-mirror ";
    assert!(command.starts_with(guarded), "{command}");
    let default_file = "/var/lib/prometheus/node-exporter/git-push-mirror.prom";
    assert!(command.contains(default_file), "{command}");
    command
        .replace("/usr/bin/git-push-mirror", BIN)
        .replace(default_file, path_str(output))
}

#[test]
fn every_cron_line_first_checks_the_binary_is_there() {
    let cron = fs::read_to_string(source("examples/cron.d/git-push-mirror")).unwrap();
    // The commented-out jobs: `#` then five time fields and a user.
    let jobs: Vec<&str> = cron
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|f| f.starts_with(['*', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']))
        })
        .collect();
    assert_eq!(jobs.len(), 3, "{cron}");
    for job in &jobs {
        let command: Vec<&str> = job.split_whitespace().skip(6).collect();
        let program = command.iter().find(|w| w.ends_with("/git-push-mirror")).unwrap();
        assert_eq!(command[..3], ["test", "-x", *program], "not guarded: {job}");
    }
    // Run as cron would after the package is removed: nothing on stdout or stderr (no mail).
    let env = TestEnv::new();
    let line = jobs[0].split_whitespace().skip(6).collect::<Vec<_>>().join(" ");
    let gone = env.path("removed/git-push-mirror");
    let out = env
        .cmd("sh")
        .args(["-c", &line.replace("/usr/bin/git-push-mirror", path_str(&gone))])
        .output()
        .unwrap();
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
}

#[test]
fn metrics_that_cannot_be_written_exit_2_and_the_shipped_examples_let_it_show() {
    let env = TestEnv::new();
    fail_fast_config(&env);
    let upstream = env.bare_repo("app.git");
    gpm_ok(&env, &["add", path_str(&upstream), "gone", "/nonexistent/mirror.git"]);
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    let failed_run = gpm_output(&env, &["run"]);
    assert_exit(&failed_run, 1, "run with a mirror that cannot be reached");
    let written = env.path("textfile/git-push-mirror.prom");
    fs::create_dir_all(written.parent().unwrap()).unwrap();

    // A failed mirror: exit 1, the file is written.
    let out = gpm_output(&env, &["metrics", "--output", path_str(&written)]);
    assert_exit(&out, 1, "metrics with a failed mirror");
    assert!(
        fs::read_to_string(&written)
            .unwrap()
            .contains("git_push_mirror_mirror_update_status")
    );

    // No such directory, or a file where the directory should be: exit 2, saying why.
    fs::write(env.path("not-a-dir"), "").unwrap();
    for target in [env.path("missing/dir/x.prom"), env.path("not-a-dir/x.prom")] {
        let out = gpm_output(&env, &["metrics", "--output", path_str(&target)]);
        assert_exit(&out, 2, "metrics into a directory that cannot take the file");
        assert!(
            stderr(&out).contains(&format!("writing {}", target.display()))
                && stderr(&out).contains("must be able to create files in its directory"),
            "{}",
            stderr(&out)
        );
    }

    // The cron example: a failed mirror is silent (metrics carry it), an unwritten file is not
    // (cron mails stderr).
    let cron = |output: &Path| {
        env.cmd("sh")
            .arg("-c")
            .arg(cron_metrics_command(output))
            .output()
            .unwrap()
    };
    let quiet = cron(&written);
    assert!(
        quiet.stdout.is_empty() && quiet.stderr.is_empty(),
        "exit 1 must not mail anyone: {}",
        stderr(&quiet)
    );
    let loud = cron(&env.path("missing/x.prom"));
    assert!(
        stderr(&loud).contains("writing"),
        "an unwritten file must reach cron's mail"
    );

    // The systemd example: exit 1 is a success of the unit, exit 2 is not.
    let unit = fs::read_to_string(source("examples/systemd/git-push-mirror-metrics@.service")).unwrap();
    let success: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("SuccessExitStatus="))
        .flat_map(str::split_whitespace)
        .collect();
    assert_eq!(success, ["1"], "{unit}");
    assert!(!unit.contains("|| true") && !unit.contains("ExecStart=-"), "{unit}");

    // docs/operations.md ("Monitoring") says who must be able to write the directory.
    let readme = fs::read_to_string(source("docs/operations.md")).unwrap();
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(readme.contains("must be able to create files in the textfile directory"));
}

// 4 ---------------------------------------------------------------------------------------------

#[test]
fn a_fleet_mirror_is_changed_per_repository_by_a_copy_and_remove_says_how_to_exclude() {
    let env = TestEnv::new();
    let srv = env.path("srv");
    let app = env.bare_repo("srv/acme/app.git");
    let lib = env.bare_repo("srv/acme/lib.git");
    let mirrors = env.path("mirrors");
    env.bare_repo("mirrors/acme/app.git");
    let global = format!(
        "repos_root = \"{}\"\n[defaults]\ndelay = \"0s\"\n\n[mirror.backup]\nrepos = [\"acme/*\"]\n\
         url = \"file://{}/{{name}}.git\"\nbranches = [\"main\"]\n",
        path_str(&srv),
        path_str(&mirrors)
    );
    write_global_config(&env, &global);
    let listed = gpm_ok(&env, &["list", path_str(&app)]);
    assert!(listed.contains("\tfleet "), "{listed}");

    // `set` on a fleet mirror: says so, copies it into the repository, changes the copy.
    let set = gpm_output(&env, &["set", path_str(&app), "backup", "--delay", "3s"]);
    crate::support::assert_success(&set, "set on a fleet mirror");
    assert!(
        stderr(&set).contains("was the fleet mirror [mirror.backup]")
            && stderr(&set).contains("replaces the fleet mirror for this repository"),
        "{}",
        stderr(&set)
    );
    let copy = mirror_table(&app, "backup");
    assert_eq!(
        copy["url"].as_str().unwrap(),
        format!("file://{}/acme/app.git", path_str(&mirrors))
    );
    assert_eq!(copy["delay"].as_str(), Some("3s"));
    assert_eq!(copy["branches"].as_array().unwrap().len(), 1);
    assert!(copy.get("repos").is_none());
    let listed = gpm_ok(&env, &["list", path_str(&app)]);
    assert!(!listed.contains("fleet"), "{listed}");
    // The copy mirrors.
    let work = env.clone_work(&app, "work");
    let head = env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    gpm_ok(&env, &["sync", path_str(&app)]);
    assert_eq!(
        env.refs(&mirrors.join("acme/app.git")).get("refs/heads/main"),
        Some(&head)
    );

    // `remove` of a fleet mirror: refused with the exclusion that does it.
    let refused = gpm_output(&env, &["remove", path_str(&lib), "backup"]);
    assert_exit(&refused, 2, "remove of a fleet mirror");
    assert!(
        stderr(&refused).contains("add \"!acme/lib\" to `repos` in [mirror.backup]"),
        "{}",
        stderr(&refused)
    );
    assert!(!lib.join("push-mirror.toml").exists());

    // Removing the copy hands the repository back to the fleet mirror, and says so.
    let removed = gpm_output(&env, &["remove", path_str(&app), "backup"]);
    crate::support::assert_success(&removed, "remove of the copy");
    assert!(stderr(&removed).contains("applies to"), "{}", stderr(&removed));
    let listed = gpm_ok(&env, &["list", path_str(&app)]);
    assert!(listed.contains("\tfleet "), "{listed}");
}

// 5 ---------------------------------------------------------------------------------------------

#[test]
fn deleted_repositories_are_reported_once_then_forgotten_and_forget_unregisters() {
    let env = TestEnv::new();
    let chain = env.bare_repo("chain.git");
    let kept = env.bare_repo("kept.git");
    let mirror = env.bare_repo("mirror.git");
    let url = format!("file://{}", path_str(&mirror));
    for repo in [&chain, &kept] {
        gpm_ok(&env, &["add", path_str(repo), "backup", &url]);
        gpm_ok(&env, &["install", path_str(repo)]);
    }
    let metrics = gpm_ok(&env, &["metrics"]);
    assert_eq!(metric(&metrics, "git_push_mirror_repositories"), 2.0);

    fs::remove_dir_all(&chain).unwrap();
    let first = gpm_output(&env, &["check"]);
    assert!(
        stderr(&first).contains(&format!("{}: the repository no longer exists", chain.display()))
            && stderr(&first).contains("forgotten"),
        "{}",
        stderr(&first)
    );
    assert!(!stdout(&first).contains(path_str(&chain)), "{}", stdout(&first));
    let again = gpm_output(&env, &["check"]);
    assert!(!stderr(&again).contains("chain.git") && !stdout(&again).contains("chain.git"));
    let metrics = gpm_ok(&env, &["metrics"]);
    assert_eq!(metric(&metrics, "git_push_mirror_repositories"), 1.0);

    // A repository whose last mirror was removed is not counted.
    gpm_ok(&env, &["remove", path_str(&kept), "backup"]);
    let metrics = gpm_ok(&env, &["metrics"]);
    assert_eq!(metric(&metrics, "git_push_mirror_repositories"), 0.0);

    // `forget`: refused while the repository has mirrors, unknown paths get a suggestion.
    gpm_ok(&env, &["add", path_str(&kept), "backup", &url]);
    let refused = gpm_output(&env, &["forget", path_str(&kept)]);
    assert_exit(&refused, 2, "forget with mirrors");
    assert!(
        stderr(&refused).contains("still has mirrors (`backup`)"),
        "{}",
        stderr(&refused)
    );
    gpm_ok(&env, &["remove", path_str(&kept), "backup"]);
    let forgot = gpm_ok(&env, &["forget", path_str(&kept)]);
    assert!(forgot.contains("forgot"), "{forgot}");
    let status = gpm_ok(&env, &["status"]);
    assert!(
        !status.contains("kept.git") && status.contains("no mirrors configured"),
        "{status}"
    );
    let unknown = gpm_output(&env, &["forget", path_str(&kept)]);
    assert_exit(&unknown, 2, "forget twice");
    assert!(stderr(&unknown).contains("is not registered"), "{}", stderr(&unknown));

    // `run` forgets a deleted repository too (in its log), and stops failing it.
    let gone = env.bare_repo("gone.git");
    gpm_ok(&env, &["add", path_str(&gone), "backup", &url]);
    fs::remove_dir_all(&gone).unwrap();
    let run = gpm_output(&env, &["run"]);
    assert_exit(&run, 0, "run after a repository was deleted");
    let log = fs::read_to_string(state_base(&env).join("git-push-mirror.log")).unwrap_or_default();
    assert!(log.contains("gone.git: the repository no longer exists"), "{log}");
    assert!(!gpm_ok(&env, &["status"]).contains("gone.git"));
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

// 8 ---------------------------------------------------------------------------------------------

#[test]
fn help_and_messages_say_what_to_do_next() {
    let env = TestEnv::new();

    // Nothing configured: each command says where it looked and what to run.
    let state = state_base(&env).join("state");
    let status = gpm_ok(&env, &["status"]);
    assert!(
        status.contains("no mirrors configured")
            && status.contains(&format!("state: {}", state.display()))
            && status.contains("global configuration: none found")
            && status.contains("git-push-mirror add REPO NAME URL"),
        "{status}"
    );
    let list = gpm_output(&env, &["list"]);
    assert!(stdout(&list).is_empty() && stderr(&list).contains("git-push-mirror add REPO NAME URL"));
    let check = gpm_ok(&env, &["check"]);
    assert!(
        check.contains(&format!("state: {}", state.display()))
            && check.contains(&format!("spool: {}", state_base(&env).join("spool").display()))
            && check.contains("git-push-mirror add REPO NAME URL"),
        "{check}"
    );

    // Flags only where they apply.
    let add_help = gpm_ok(&env, &["add", "--help"]);
    assert!(
        !add_help.contains("--all-branches") && !add_help.contains("--all-tags") && !add_help.contains("--enabled")
    );
    let set_help = gpm_ok(&env, &["set", "--help"]);
    assert!(set_help.contains("--all-branches") && set_help.contains("--all-tags") && !set_help.contains("--disabled"));

    // `set` without a change, and mistyped names, with one quoting everywhere.
    let upstream = env.bare_repo("app.git");
    let mirror = env.bare_repo("mirror.git");
    let repo = path_str(&upstream);
    gpm_ok(&env, &["add", repo, "backup", &format!("file://{}", path_str(&mirror))]);
    let nothing = gpm_output(&env, &["set", repo, "backup"]);
    assert_exit(&nothing, 2, "set without flags");
    assert!(stderr(&nothing).contains("nothing to change"), "{}", stderr(&nothing));
    for args in [
        vec!["set", repo, "bakup", "--delay", "1s"],
        vec!["remove", repo, "bakup"],
        vec!["sync", repo, "--mirror", "bakup"],
        vec!["keygen", repo, "bakup"],
    ] {
        let typo = gpm_output(&env, &args);
        assert_exit(&typo, 2, &args.join(" "));
        assert!(
            stderr(&typo).contains("there is no mirror named `bakup`; did you mean `backup`?"),
            "{}: {}",
            args.join(" "),
            stderr(&typo)
        );
    }

    // A closed pipe is a quiet end: `status --json | head -c 100` over output larger than a pipe.
    let many = env.bare_repo("many.git");
    let tables: String = (0..300)
        .map(|i| format!("[mirror.m{i}]\nurl = \"file:///nonexistent/m{i}.git\"\n"))
        .collect();
    fs::write(many.join("push-mirror.toml"), tables).unwrap();
    let piped = env
        .cmd("bash")
        .arg("-c")
        .arg(format!(
            "'{BIN}' status --json '{}' | head -c 100 >/dev/null; echo \"exit=${{PIPESTATUS[0]}}\"",
            path_str(&many)
        ))
        .output()
        .unwrap();
    assert_eq!(stdout(&piped).trim(), "exit=0", "{}", stderr(&piped));
    assert!(stderr(&piped).is_empty(), "{}", stderr(&piped));

    // Per-subcommand man pages exist for every one the main page refers to.
    let pages = env.path("man");
    gpm_ok(&env, &["man", "--dir", path_str(&pages)]);
    let main_page = fs::read_to_string(pages.join("git-push-mirror.1"))
        .unwrap()
        .replace("\\-", "-");
    let referred: Vec<&str> = main_page
        .split(|c: char| c.is_whitespace() || c == '\\')
        .filter_map(|word| word.strip_suffix("(1)"))
        .filter(|word| word.starts_with("git-push-mirror-"))
        .collect();
    assert!(referred.contains(&"git-push-mirror-add"), "{main_page}");
    for page in &referred {
        assert!(
            pages.join(format!("{page}.1")).is_file(),
            "{page}(1) is referred to but missing"
        );
    }

    // README: the global example logs into a directory, and no file it does not have is cited.
    let readme = fs::read_to_string(source("README.md")).unwrap();
    assert!(
        !readme.contains("DESIGN"),
        "the README cites a DESIGN file the repository does not have"
    );
    assert!(!readme.contains("log_file = \"/var/log/git-push-mirror.log\""));
    assert!(readme.contains("log_file = \"/var/log/git-push-mirror/git-push-mirror.log\""));
}

/// The reference in docs/ has a row for every key the parser accepts (the man page is generated
/// from the same table, so it cannot miss one; the reference is written by hand).
#[test]
fn the_configuration_reference_has_a_row_for_every_key_the_parser_accepts() {
    let page = fs::read_to_string(source("docs/configuration.md")).unwrap();
    // The keys named in the first cell of each table row.
    let documented: std::collections::BTreeSet<&str> = page
        .lines()
        .filter_map(|line| line.strip_prefix("| "))
        .filter_map(|row| row.split(" | ").next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .collect();
    let missing: Vec<&str> = git_push_mirror::config::keys::KEYS
        .iter()
        // `[defaults]`, `[retry]`, `[notify]`, `[mirror.NAME]`: tables, each with a section of its own.
        .filter(|doc| !doc.example.is_empty())
        .map(|doc| doc.key)
        .filter(|key| !documented.contains(key))
        .collect();
    assert!(
        missing.is_empty(),
        "keys without a row in docs/configuration.md: {missing:?}"
    );
}

// 9 ---------------------------------------------------------------------------------------------

/// Whether `systemd-analyze` runs here (package systemd).
fn systemd_analyze() -> Result<(), String> {
    Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("systemd-analyze: {e} (install systemd)"))
        .map(drop)
}

#[test]
fn the_timer_runs_on_a_calendar_and_logrotate_works_without_a_git_user() {
    // The timer: Persistent= only works with OnCalendar=, and the expression is valid.
    let timer = fs::read_to_string(source("examples/systemd/git-push-mirror-run@.timer")).unwrap();
    let calendar = timer.lines().find_map(|l| l.strip_prefix("OnCalendar="));
    assert!(
        !timer.contains("Persistent=true") || calendar.is_some(),
        "Persistent=true without OnCalendar: {timer}"
    );
    if require_or_skip("systemd-analyze", systemd_analyze()) {
        let parsed = Command::new("systemd-analyze")
            .args(["calendar", calendar.unwrap()])
            .output()
            .unwrap();
        assert!(parsed.status.success(), "{}", stderr(&parsed));
    }

    // logrotate: the shipped file, pointed at a temporary log, rotates for real with no `git` user.
    let logrotate = Command::new("logrotate")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("logrotate: {e} (install logrotate)"))
        .map(drop);
    if !require_or_skip("logrotate", logrotate) {
        return;
    }
    let env = TestEnv::new();
    let dir = env.path("log");
    fs::create_dir_all(&dir).unwrap();
    let log = dir.join("git-push-mirror.log");
    fs::write(&log, "a line\n").unwrap();
    fs::set_permissions(&log, fs::Permissions::from_mode(0o640)).unwrap();
    let example = fs::read_to_string(source("examples/logrotate.d/git-push-mirror")).unwrap();
    let conf = env.path("logrotate.conf");
    fs::write(
        &conf,
        example.replace("/var/log/git-push-mirror/git-push-mirror.log", path_str(&log)),
    )
    .unwrap();
    let state = env.path("logrotate.state");
    let rotated = env
        .cmd("logrotate")
        .args(["--verbose", "--force", "--state", path_str(&state), path_str(&conf)])
        .output()
        .unwrap();
    assert!(rotated.status.success(), "logrotate: {}", stderr(&rotated));
    assert!(!stderr(&rotated).contains("error"), "{}", stderr(&rotated));
    assert_eq!(
        fs::read_to_string(dir.join("git-push-mirror.log.1")).unwrap(),
        "a line\n"
    );
    let fresh = fs::metadata(&log).expect("the new log file was created");
    assert_eq!(
        fresh.permissions().mode() & 0o777,
        0o640,
        "same mode as the rotated file"
    );
}

/// The units are templates whose instance is the user they run as (the package makes no user), and
/// `systemd-analyze verify` finds nothing wrong with them (an unknown key would be a warning).
#[test]
fn the_systemd_units_run_as_their_instances_user_and_verify_cleanly() {
    let dir = source("examples/systemd");
    let mut units: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    units.sort();
    assert_eq!(
        units,
        [
            "git-push-mirror-metrics@.service",
            "git-push-mirror-metrics@.timer",
            "git-push-mirror-run@.service",
            "git-push-mirror-run@.timer"
        ]
    );
    for unit in units.iter().filter(|u| u.ends_with(".service")) {
        let text = fs::read_to_string(dir.join(unit)).unwrap();
        let users: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("User=") || l.starts_with("Group="))
            .collect();
        assert_eq!(users, ["User=%i"], "{unit}");
    }
    if !require_or_skip("systemd-analyze", systemd_analyze()) {
        return;
    }
    // Verified as installed, with this build standing in for /usr/bin/git-push-mirror (verify
    // checks the program exists) and `git` as the instance (which need not exist here).
    let env = TestEnv::new();
    let copy = env.path("units");
    fs::create_dir_all(&copy).unwrap();
    let mut instances = Vec::new();
    for unit in &units {
        let text = fs::read_to_string(dir.join(unit)).unwrap();
        fs::write(copy.join(unit), text.replace("/usr/bin/git-push-mirror", BIN)).unwrap();
        instances.push(copy.join(unit.replace("@.", "@git.")));
    }
    let out = env
        .cmd("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&instances)
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
}

// 10 --------------------------------------------------------------------------------------------

#[test]
fn the_debian_package_ships_everything_in_its_place_and_the_quickstart_runs_an_installed_binary() {
    let env = TestEnv::new();
    let manifest: toml::Table = toml::from_str(&fs::read_to_string(source("Cargo.toml")).unwrap()).unwrap();
    let deb = manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]");
    assert!(
        deb.get("maintainer-scripts").is_none() && deb.get("systemd-units").is_none(),
        "nothing enabled"
    );
    assert!(deb["depends"].as_str().unwrap().contains("git"));

    // The generated assets, from this binary, into a scratch directory.
    let generated = env.path("deb-assets");
    let out = env
        .cmd(source("packaging/deb-assets.sh"))
        .args([BIN, path_str(&generated)])
        .output()
        .unwrap();
    crate::support::assert_success(&out, "packaging/deb-assets.sh");

    let mut destinations = Vec::new();
    for asset in deb["assets"].as_array().unwrap() {
        let asset = asset.as_array().unwrap();
        let (src, dest) = (asset[0].as_str().unwrap(), asset[1].as_str().unwrap());
        destinations.push(dest.to_string());
        if src == "target/release/git-push-mirror" {
            assert_eq!(dest, "usr/bin/");
            continue;
        }
        let src = match src.strip_prefix("target/deb-assets/") {
            Some(rest) => generated.join(rest),
            None => source(src),
        };
        let (dir, pattern) = (src.parent().unwrap(), src.file_name().unwrap().to_str().unwrap());
        let matches = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .filter(|e| match pattern.split_once('*') {
                Some((head, tail)) => {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.starts_with(head) && name.ends_with(tail)
                }
                None => e.file_name() == pattern,
            })
            .count();
        assert!(matches > 0, "asset {} matches nothing", src.display());
    }
    for standard in [
        "usr/bin/",
        "usr/share/man/man1/",
        "usr/share/man/man5/",
        "usr/share/bash-completion/completions/git-push-mirror",
        "usr/share/zsh/vendor-completions/",
        "usr/share/fish/vendor_completions.d/",
        "usr/share/doc/git-push-mirror/examples/",
        "usr/lib/systemd/system/",
        "etc/cron.d/",
        "etc/logrotate.d/",
    ] {
        assert!(destinations.iter().any(|d| d == standard), "nothing goes to {standard}");
    }
    assert!(generated.join("man/git-push-mirror-add.1").is_file());
    let config_page = fs::read_to_string(generated.join("man5/git-push-mirror.toml.5")).unwrap();
    assert!(config_page.contains(".TH git-push-mirror.toml 5"), "{config_page}");
    let main_page = fs::read_to_string(generated.join("man/git-push-mirror.1")).unwrap();
    for page in [&config_page, &main_page] {
        assert!(
            page.contains(".SH FILES") && page.contains("/etc/git\\-push\\-mirror/config.toml"),
            "{page}"
        );
    }
    let fish = fs::read_to_string(generated.join("completions/git-push-mirror.fish")).unwrap();
    assert!(fish.contains("forget"), "completions cover every subcommand");

    // The cron file the package puts in /etc/cron.d runs nothing until it is uncommented.
    let cron = fs::read_to_string(source("examples/cron.d/git-push-mirror")).unwrap();
    let active: Vec<&str> = cron
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    assert!(active.is_empty(), "active cron lines: {active:?}");

    // The quickstart, against an installed binary (no build), and it says what it does first.
    let quickstart = fs::read_to_string(source("examples/quickstart.sh")).unwrap();
    let build = quickstart.find("cargo build").unwrap();
    assert!(quickstart[..build].contains("echo \"==> building"));
    assert!(
        !quickstart.contains("--quiet --manifest-path"),
        "the build shows its progress"
    );
    let ran = env
        .cmd("bash")
        .arg(source("examples/quickstart.sh"))
        .env("GIT_PUSH_MIRROR_BIN", BIN)
        .env("TMPDIR", env.root())
        .output()
        .unwrap();
    crate::support::assert_success(&ran, "examples/quickstart.sh");
    let said = stdout(&ran);
    assert!(
        said.contains(&format!("==> using {BIN}")) && said.contains("mirror.git had the push"),
        "{said}"
    );
    assert!(said.contains("update_status: finished"), "{said}");
}

/// `packaging/build-deb.sh` says what it misses before its long release build, not after.
#[test]
fn build_deb_checks_for_cargo_deb_and_dpkg_dev_before_building() {
    let env = TestEnv::new();
    // A PATH with `dirname` and a `cargo` that knows no `deb` and logs what it is asked.
    let bin = env.path("bin");
    fs::create_dir_all(&bin).unwrap();
    let log = env.path("cargo.log");
    fs::write(
        bin.join("cargo"),
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\n[ \"$1\" = deb ] && exit 101\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(bin.join("cargo"), fs::Permissions::from_mode(0o755)).unwrap();
    let dirname = Command::new("sh").args(["-c", "command -v dirname"]).output().unwrap();
    std::os::unix::fs::symlink(String::from_utf8_lossy(&dirname.stdout).trim(), bin.join("dirname")).unwrap();
    let out = env
        .cmd(source("packaging/build-deb.sh"))
        .env("PATH", &bin)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let said = stderr(&out);
    assert!(
        said.contains("missing: cargo-deb (cargo install cargo-deb --locked) dpkg-dev (apt-get install dpkg-dev)"),
        "{said}"
    );
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "deb --version\n",
        "nothing was built"
    );
}

// --help ----------------------------------------------------------------------------------------

// Issue 21: the first-day list -------------------------------------------------------------------

#[test]
fn misspelled_schemes_mirror_names_and_keys_are_answered_with_what_was_meant() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("app.git");
    let repo = path_str(&upstream);

    // A misspelled scheme: refused with the URL that was meant; nothing is written.
    for (typed, meant) in [
        ("htps://example.com/acme/app.git", "https://example.com/acme/app.git"),
        ("https:/example.com/acme/app.git", "https://example.com/acme/app.git"),
        ("ssh:/git@example.com/srv/app.git", "ssh://git@example.com/srv/app.git"),
        ("http//example.com/acme/app.git", "http://example.com/acme/app.git"),
    ] {
        let out = gpm_output(&env, &["add", repo, "gh", typed]);
        assert_exit(&out, 2, typed);
        assert!(
            stderr(&out).contains(&format!("the URL's scheme is misspelled: did you mean {meant}?")),
            "{typed}: {}",
            stderr(&out)
        );
        assert!(
            !upstream.join("push-mirror.toml").exists(),
            "{typed}: nothing was added"
        );
    }

    // A mirror that does not exist: `remove` names the ones that do, and suggests no `add`.
    let backup = env.bare_repo("backup.git");
    gpm_ok(&env, &["add", repo, "backup", path_str(&backup)]);
    let missing = gpm_output(&env, &["remove", repo, "nosuch"]);
    assert_exit(&missing, 2, "remove nosuch");
    assert_eq!(
        stderr(&missing).trim(),
        format!(
            "git-push-mirror: {}: there is no mirror named `nosuch` (its mirrors: `backup`)",
            fs::canonicalize(&upstream).unwrap().display()
        )
    );
    let typo = gpm_output(&env, &["remove", repo, "bakup"]);
    assert!(stderr(&typo).contains("did you mean `backup`?") && !stderr(&typo).contains("add"));
    // `set` configures a mirror: adding it is a way on.
    let set = gpm_output(&env, &["set", repo, "nosuch", "--delay", "1s"]);
    assert!(
        stderr(&set).contains(&format!(
            "to add it first: git-push-mirror add {} nosuch URL",
            fs::canonicalize(&upstream).unwrap().display()
        )),
        "{}",
        stderr(&set)
    );

    // `protected_branches` appended below the mirror's table: move it up, at file:line:column.
    let file = upstream.join("push-mirror.toml");
    let text = repo_file(&upstream);
    let lines = text.lines().count();
    fs::write(&file, format!("{text}protected_branches = [\"main\"]\n")).unwrap();
    let listed = gpm_output(&env, &["list", repo]);
    assert_exit(&listed, 2, "list with a misplaced key");
    assert!(
        stderr(&listed).contains(&format!(
            "{}:{}:1: `protected_branches` belongs at the top of the file: move it above the first table, \
             `[mirror.backup]`",
            file.display(),
            lines + 1
        )),
        "{}",
        stderr(&listed)
    );

    // A misspelled key: the key that was meant, not the 25 a mirror takes.
    fs::write(&file, format!("{text}brnaches = [\"main\"]\n")).unwrap();
    let status = gpm_output(&env, &["status", repo]);
    assert_exit(&status, 2, "status with a misspelled key");
    let said = format!("{}{}", stdout(&status), stderr(&status));
    assert!(
        said.contains(&format!(
            "{}:{}:1: unknown key `brnaches` in `[mirror.backup]`; did you mean `branches`?",
            file.display(),
            lines + 1
        )),
        "{said}"
    );
    assert!(!said.contains("max_refs_per_push"), "{said}");
}

#[test]
fn protect_sets_the_branches_protected_only_mirrors_carry_and_add_warns_when_there_are_none() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("app.git");
    let mirror = env.bare_repo("mirror.git");
    let repo = path_str(&upstream);
    let shown_repo = fs::canonicalize(&upstream).unwrap().display().to_string();
    let url = format!("file://{}", path_str(&mirror));
    fs::write(upstream.join("push-mirror.toml"), "# Mirrors of app.git.\n").unwrap();

    // No protected branches yet: `add` says nothing would be mirrored, and what adds them.
    let (setup, added) = Setup::add_and_install(
        &env,
        upstream.clone(),
        &mirror,
        &url,
        &["--only-protected-branches", "--delay", "0s"],
    );
    assert!(
        stderr(&added).contains(&format!(
            "warning: mirror backup mirrors only protected branches, and {shown_repo} has none: no branch is \
             mirrored until you add them: git-push-mirror protect {shown_repo} PATTERN…"
        )),
        "{}",
        stderr(&added)
    );

    let protected = gpm_ok(&env, &["protect", repo, "main", "release/*"]);
    assert_eq!(
        protected.trim(),
        format!("protected branches of {shown_repo}: main, release/*")
    );
    let text = repo_file(&upstream);
    assert!(
        text.starts_with("# Mirrors of app.git.\n\nprotected_branches = [\"main\", \"release/*\"]\n"),
        "at the top, the file's comment kept:\n{text}"
    );
    assert_eq!(
        gpm_ok(&env, &["protect", repo, "main"]).trim(),
        format!("protected branches of {shown_repo}: main, release/*"),
        "a pattern is kept once"
    );

    // The mirror carries just those branches.
    env.commit(&setup.work, "a.txt", "one", "first");
    env.git(&setup.work, &["branch", "release/1"]);
    env.git(&setup.work, &["branch", "feature"]);
    setup.push(&env, &["main", "release/1", "feature"]);
    let upstream_refs = env.refs(&upstream);
    let mut expected = upstream_refs.clone();
    expected.remove("refs/heads/feature");
    setup.wait_for_mirror(&env, &expected);

    // Mistakes: a full ref name, a pattern that is not there.
    let full = gpm_output(&env, &["protect", repo, "refs/heads/main"]);
    assert_exit(&full, 2, "protect refs/heads/main");
    assert!(
        stderr(&full).contains("give `main` instead of `refs/heads/main`"),
        "{}",
        stderr(&full)
    );
    let typo = gpm_output(&env, &["unprotect", repo, "relase/*"]);
    assert_exit(&typo, 2, "unprotect a pattern that is not there");
    assert!(stderr(&typo).contains("did you mean `release/*`?"), "{}", stderr(&typo));
    assert_eq!(repo_file(&upstream), text, "nothing was changed");

    // Removing the last one: the key goes, and the warning comes back.
    gpm_ok(&env, &["unprotect", repo, "release/*"]);
    let none = gpm_output(&env, &["unprotect", repo, "main"]);
    assert_exit(&none, 0, "unprotect main");
    assert_eq!(
        stdout(&none).trim(),
        format!("protected branches of {shown_repo}: none")
    );
    assert!(
        stderr(&none).contains("no branch is mirrored until you add them"),
        "{}",
        stderr(&none)
    );
    assert!(
        repo_file(&upstream).starts_with("# Mirrors of app.git.\n\n[mirror.backup]\n"),
        "the key is gone, the comment kept:\n{}",
        repo_file(&upstream)
    );
    let set = gpm_output(&env, &["set", repo, "backup", "--only-protected-branches", "true"]);
    assert_exit(&set, 0, "set --only-protected-branches");
    assert!(stderr(&set).contains("git-push-mirror protect"), "{}", stderr(&set));
}

#[test]
fn a_fixed_mirror_is_retried_at_the_next_run_not_after_its_backoff_and_set_says_how_to_retry_now() {
    let env = TestEnv::new();
    // A backoff of an hour: only the fix can make the mirror due within this test.
    write_global_config(
        &env,
        "worker_linger = \"1s\"\n[retry]\ninitial = \"1h\"\nmax = \"2h\"\nfail_after = 1\njitter = false\n",
    );
    let upstream = env.bare_repo("app.git");
    let mirror = env.bare_repo("mirror.git");
    let wrong = format!("file://{}", path_str(&env.path("mirorr.git")));
    let (setup, _) = Setup::add_and_install(&env, upstream, &mirror, &wrong, &["--delay", "0s"]);
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    wait_until("the wrong path fails", CONVERGE, || {
        setup.status_json(&env)[0]["update_status"] == "failed"
    });
    assert!(!setup.status_json(&env)[0]["next_attempt_at"].is_null(), "backed off");

    let repo = path_str(&setup.upstream);
    let right = format!("file://{}", path_str(&mirror));
    let fixed = gpm_output(&env, &["set", repo, "backup", "--url", &right]);
    assert_exit(&fixed, 0, "set --url");
    assert!(
        stderr(&fixed).contains(&format!(
            "mirror backup was failing: it is retried at the next `run` (cron) or push instead of after its \
             backoff; to retry it now: git-push-mirror sync {} --mirror backup",
            fs::canonicalize(&setup.upstream).unwrap().display()
        )),
        "{}",
        stderr(&fixed)
    );
    assert!(setup.status_json(&env)[0]["next_attempt_at"].is_null(), "due now");
    gpm_ok(&env, &["run", "--wait"]);
    setup.wait_converged(&env);
    assert_eq!(setup.status_json(&env)[0]["update_status"], "finished");

    // The same after `known-hosts --accept` of an SSH mirror refused for its unknown host key.
    if !require_or_skip("sshd", Sshd::available()) {
        return;
    }
    let sshd = Sshd::start(&env);
    let ssh_mirror = env.bare_repo("ssh-mirror.git");
    let url = sshd.url(&ssh_mirror);
    let key = env.path("key");
    fs::copy(sshd.client_key(), &key).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    gpm_ok(
        &env,
        &["add", repo, "ssh", &url, "--ssh-key", path_str(&key), "--delay", "0s"],
    );
    let ssh_status = || {
        let all = setup.status_json(&env);
        all.into_iter().find(|s| s["mirror"] == "ssh").unwrap()
    };
    let refused = gpm_output(&env, &["run", "--wait"]);
    assert_exit(&refused, 1, "run with an unknown host key");
    assert_eq!(ssh_status()["update_status"], "failed", "{}", ssh_status());
    assert!(!ssh_status()["next_attempt_at"].is_null(), "backed off");
    let accepted = gpm_output(
        &env,
        &["known-hosts", &url, "--accept", "--repo", repo, "--mirror", "ssh"],
    );
    assert_exit(&accepted, 0, "known-hosts --accept");
    assert!(
        stderr(&accepted).contains("mirror ssh was failing") && stderr(&accepted).contains("--mirror ssh"),
        "{}",
        stderr(&accepted)
    );
    assert!(ssh_status()["next_attempt_at"].is_null(), "due now");
    gpm_ok(&env, &["run", "--wait"]);
    assert_eq!(ssh_status()["update_status"], "finished", "{}", ssh_status());
    assert_eq!(env.refs(&ssh_mirror), env.refs(&setup.upstream));
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

/// Every subcommand (hidden ones included) and every argument of each has a description, in the
/// clap definition and in the `--help` the binary prints. Generic: flags added later are checked too.
#[test]
fn every_subcommand_and_argument_has_a_description_in_its_help() {
    fn walk(command: &clap::Command, path: Vec<String>, found: &mut Vec<(Vec<String>, clap::Command)>) {
        found.push((path.clone(), command.clone()));
        // clap's own `help` subcommand is not ours to describe.
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut sub_path = path.clone();
            sub_path.push(sub.get_name().to_string());
            walk(sub, sub_path, found);
        }
    }
    let mut root = git_push_mirror::cli::Cli::command();
    root.build();
    let mut commands = Vec::new();
    walk(&root, Vec::new(), &mut commands);
    assert!(commands.len() > 15, "{} commands", commands.len());

    let env = TestEnv::new();
    let mut missing = Vec::new();
    for (path, command) in &commands {
        let name = if path.is_empty() {
            "git-push-mirror".to_string()
        } else {
            path.join(" ")
        };
        if command.get_about().is_none() && command.get_long_about().is_none() {
            missing.push(format!("{name}: no description"));
        }
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = gpm_ok(&env, &args);
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let Some(text) = arg.get_help().or(arg.get_long_help()) else {
                missing.push(format!("{name}: {id} has no description"));
                continue;
            };
            if arg.is_hide_set() {
                continue; // internal (`run --detached`): described in the code, not shown
            }
            let first_words: String = text
                .to_string()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ");
            let flat: String = help.split_whitespace().collect::<Vec<_>>().join(" ");
            if !flat.contains(&first_words) {
                missing.push(format!("{name} --help does not show the description of {id}"));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
