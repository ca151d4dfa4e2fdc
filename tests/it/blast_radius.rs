//! Small blast radius: one repository's trouble stays its own. A corrupt state file (the
//! repository's record or one pair's state), a state directory that cannot take new changes
//! (a full disk), and a broken `push-mirror.toml` each fault only their repository or pair: it is
//! reported in `status` (`update_status: failed` with `state_error` / `config_error`, pending
//! refs shown) and `metrics` (always written), every other repository converges in the same run,
//! and a corrupt file heals by itself (moved to `<state_dir>/bad/`, rebuilt by a full
//! reconciliation).

use crate::support::binary::*;
use crate::support::procs::Reaper;
use crate::support::{TestEnv, path_str, require_or_skip, wait_until};
use git_push_mirror::mirror::state::StateStore;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn state_dir(env: &TestEnv) -> PathBuf {
    state_base(env).join("state")
}

/// Where the worker keeps a repository's state (as the binary computes it).
fn repo_state_dir(env: &TestEnv, repo: &Path) -> PathBuf {
    StateStore::new(&state_dir(env)).repo_dir(repo)
}

/// `<name>.git` with a `file://` mirror `backup`; its hook only spools (the test runs workers).
fn repo(env: &TestEnv, name: &str) -> Setup {
    Setup::spooling_only(env, name)
}

/// Commits and pushes `branch` (the hook spools it).
fn push_branch(env: &TestEnv, setup: &Setup, branch: &str, content: &str) {
    env.commit(&setup.work, &format!("{branch}.txt"), content, content);
    setup.push(env, &[&format!("HEAD:refs/heads/{branch}")]);
}

fn converged(env: &TestEnv, setup: &Setup) -> bool {
    env.refs(&setup.mirror) == env.refs(&setup.upstream)
}

/// Asserts that `repo` is reported faulted, with a `state_error` that contains `needle`.
fn assert_faulted(statuses: &[Value], repo: &Path, needle: &str) {
    let s = status_of(statuses, repo);
    assert_eq!(s["update_status"], "failed", "{s:#}");
    let error = s["state_error"].as_str().unwrap_or("");
    assert!(error.contains(needle), "state_error should say {needle:?}: {s:#}");
}

/// `run --wait` (cron): returns its exit code and log-worthy stderr.
fn run(env: &TestEnv) -> (Option<i32>, String) {
    let out = gpm_output(env, &["run", "--wait"]);
    (out.status.code(), stderr(&out))
}

fn log_text(env: &TestEnv) -> String {
    std::fs::read_to_string(state_base(env).join("git-push-mirror.log")).unwrap_or_default()
}

/// `status --json` without arguments: every repository.
fn status_all(env: &TestEnv) -> Vec<Value> {
    let out = gpm_output(env, &["status", "--json"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}\nstdout: {}\nstderr: {}", stdout(&out), stderr(&out)))
}

fn status_of(statuses: &[Value], repo: &Path) -> Value {
    statuses
        .iter()
        .find(|s| s["repo"] == path_str(repo))
        .unwrap_or_else(|| panic!("no status for {}: {statuses:#?}", repo.display()))
        .clone()
}

/// `metrics --output FILE`: the exit code and the file's text.
fn metrics(env: &TestEnv) -> (Option<i32>, String) {
    let file = env.path("textfile/git-push-mirror.prom");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&file);
    let out = gpm_output(env, &["metrics", "--output", path_str(&file)]);
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("the metrics file was not written ({e})\n{}", stderr(&out)));
    (out.status.code(), text)
}

/// The value of `name{repo="REPO",mirror="backup"}` in a metrics text.
fn mirror_metric(text: &str, name: &str, repo: &Path) -> f64 {
    let prefix = format!(
        "git_push_mirror_{name}{{repo=\"{}\",mirror=\"backup\"}} ",
        path_str(repo)
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"))
        .parse()
        .unwrap()
}

fn metric(text: &str, name: &str) -> f64 {
    let prefix = format!("git_push_mirror_{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"))
        .parse()
        .unwrap()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Two repositories mirrored and converged; the hooks only spool.
fn two_converged_repositories(env: &TestEnv) -> (Setup, Setup) {
    let (a, b) = (repo(env, "a"), repo(env, "b"));
    for r in [&a, &b] {
        push_branch(env, r, "main", "one");
        push_branch(env, r, "feature", "f1");
    }
    let (code, err) = run(env);
    assert_eq!(code, Some(0), "{err}\n{}", log_text(env));
    assert!(converged(env, &a) && converged(env, &b));
    (a, b)
}

#[test]
fn a_truncated_repository_record_faults_only_its_repository_and_heals_itself() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    let (a, b) = two_converged_repositories(&env);
    // Pushes to both, `a` first: its entry is the one the worker meets first.
    push_branch(&env, &a, "main", "two");
    push_branch(&env, &b, "main", "two");
    let record = repo_state_dir(&env, &a.upstream).join("repo.json");
    std::fs::write(&record, "{\"repo\": \"/trunc").unwrap();

    // Before any worker: both repositories are reported; `a` says what is wrong, `b` what waits.
    let statuses = status_all(&env);
    assert_faulted(&statuses, &a.upstream, "repo.json is corrupt");
    let sb = status_of(&statuses, &b.upstream);
    assert_eq!(sb["state_error"], Value::Null, "{sb:#}");
    assert_eq!(sb["pending_refs"], serde_json::json!(["refs/heads/main"]), "{sb:#}");
    let (_, text) = metrics(&env);
    assert_eq!(mirror_metric(&text, "mirror_faulted", &a.upstream), 1.0);
    assert_eq!(mirror_metric(&text, "mirror_faulted", &b.upstream), 0.0);
    assert_eq!(mirror_metric(&text, "mirror_pending_refs", &b.upstream), 1.0);

    // One cron run: `b` converges, and `a` heals (record moved aside, full reconciliation).
    let (code, err) = run(&env);
    assert_eq!(code, Some(0), "{err}\n{}", log_text(&env));
    assert!(converged(&env, &b), "the other repository converged in the same run");
    assert!(
        converged(&env, &a),
        "the repository with the corrupt record healed\n{}",
        log_text(&env)
    );
    let bad = files_in(&state_dir(&env).join("bad"));
    assert_eq!(bad.len(), 1, "the corrupt record was moved aside: {bad:?}");
    assert_eq!(std::fs::read_to_string(&bad[0]).unwrap(), "{\"repo\": \"/trunc");
    let statuses = status_all(&env);
    for repo in [&a.upstream, &b.upstream] {
        let s = status_of(&statuses, repo);
        assert_eq!(s["update_status"], "finished", "{s:#}");
        assert_eq!(s["state_error"], Value::Null, "{s:#}");
    }
    let (code, text) = metrics(&env);
    assert_eq!(code, Some(0));
    assert_eq!(metric(&text, "state_files_quarantined"), 1.0);
    assert_eq!(mirror_metric(&text, "mirror_faulted", &a.upstream), 0.0);
    assert!(log_text(&env).contains("repo.json is corrupt"), "logged");
}

#[test]
fn a_corrupt_mirror_state_faults_only_its_pair_and_heals_itself() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    let (a, b) = two_converged_repositories(&env);
    let state = repo_state_dir(&env, &a.upstream).join("mirrors/backup.json");
    std::fs::write(&state, "{ not json").unwrap();
    // Changes no hook reported, in both: only the drift scan of a cron run finds them.
    for r in [&a, &b] {
        env.commit(&r.work, "drift.txt", "drift", "drift");
        env.git(
            &r.upstream,
            &["fetch", "--quiet", path_str(&r.work), "HEAD:refs/heads/drifted"],
        );
    }

    let statuses = status_all(&env);
    assert_faulted(&statuses, &a.upstream, "backup.json is corrupt");
    assert_eq!(status_of(&statuses, &b.upstream)["update_status"], "finished");
    let (code, text) = metrics(&env);
    assert_eq!(code, Some(1), "a faulted pair is a failed mirror");
    assert_eq!(mirror_metric(&text, "mirror_faulted", &a.upstream), 1.0);
    assert_eq!(mirror_metric(&text, "mirror_faulted", &b.upstream), 0.0);

    let (code, err) = run(&env);
    assert_eq!(code, Some(0), "{err}\n{}", log_text(&env));
    assert!(
        converged(&env, &b),
        "the other repository's drift was mirrored in the same run"
    );
    assert!(
        converged(&env, &a),
        "the pair with the corrupt state healed\n{}",
        log_text(&env)
    );
    assert_eq!(files_in(&state_dir(&env).join("bad")).len(), 1);
    let s = status_of(&status_all(&env), &a.upstream);
    assert_eq!(s["update_status"], "finished", "{s:#}");
    assert!(
        s["last_verified_at"].is_string(),
        "the full reconciliation verified it: {s:#}"
    );
}

#[test]
fn a_broken_push_mirror_toml_shows_the_mirror_failed_with_its_error_and_the_waiting_refs() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    let (a, b) = two_converged_repositories(&env);
    let config = a.upstream.join("push-mirror.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, original.replace("delay =", "dealy =")).unwrap();
    push_branch(&env, &a, "main", "two");
    push_branch(&env, &b, "main", "two");
    let (_, err) = run(&env);
    assert!(converged(&env, &b), "{err}");
    assert!(!converged(&env, &a));

    let out = gpm_output(&env, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(2), "a configuration error exits 2");
    let statuses: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let s = status_of(&statuses, &a.upstream);
    assert_eq!(
        s["update_status"], "failed",
        "not `finished`: nothing is mirrored: {s:#}"
    );
    let error = s["config_error"].as_str().unwrap_or("");
    assert!(error.contains("push-mirror.toml:") && error.contains("dealy"), "{s:#}");
    assert_eq!(s["pending_refs"], serde_json::json!(["refs/heads/main"]), "{s:#}");
    let (_, text) = metrics(&env);
    assert_eq!(mirror_metric(&text, "mirror_faulted", &a.upstream), 1.0);
    assert_eq!(mirror_metric(&text, "mirror_pending_refs", &a.upstream), 1.0);
    assert_eq!(metric(&text, "config_errors"), 1.0);

    std::fs::write(&config, original).unwrap();
    let (code, err) = run(&env);
    assert_eq!(code, Some(0), "{err}");
    assert!(converged(&env, &a), "fixed, it catches up\n{}", log_text(&env));
}

/// A small tmpfs mounted for the test (root only), unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", path_str(dir)])
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed (the test needs root with CAP_SYS_ADMIN): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir: dir.to_path_buf() })
    }

    /// A 2 MiB tmpfs at `dir`, or `None` (skipped, or failed under CI) where mounting is not
    /// allowed.
    fn mount_or_skip(dir: &Path) -> Option<Tmpfs> {
        match Tmpfs::mount(dir, "2m") {
            Ok(tmpfs) => Some(tmpfs),
            Err(why) => {
                require_or_skip("a tmpfs mount", Err(why));
                None
            }
        }
    }

    /// Fills the file system: a file grows until the disk is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.dir.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").args(["-l", path_str(&self.dir)]).status();
    }
}

#[test]
fn a_full_state_disk_shows_in_status_and_metrics_and_the_pushes_land_once_there_is_room() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    let fs_dir = env.path("state-fs");
    let Some(tmpfs) = Tmpfs::mount_or_skip(&fs_dir) else {
        return;
    };
    write_global_config(
        &env,
        &format!("state_dir = \"{}/state\"\nworker_linger = \"1s\"\n", path_str(&fs_dir)),
    );
    let (a, b) = (repo(&env, "a"), repo(&env, "b"));
    for r in [&a, &b] {
        push_branch(&env, r, "main", "one");
    }
    let (code, err) = run(&env);
    assert_eq!(code, Some(0), "{err}");
    assert!(converged(&env, &a) && converged(&env, &b));

    let filler = tmpfs.fill();
    push_branch(&env, &a, "main", "two");
    let (_, err) = run(&env);
    assert!(!converged(&env, &a), "nothing could be recorded: {err}");
    assert!(
        !spool_files(&env, "new").is_empty() || !spool_files(&env, "claimed").is_empty(),
        "the push waits in the spool"
    );
    let statuses = status_all(&env);
    let s = status_of(&statuses, &a.upstream);
    assert_eq!(s["update_status"], "failed", "not `finished`: {s:#}");
    assert_eq!(s["pending_refs"], serde_json::json!(["refs/heads/main"]), "{s:#}");
    let error = s["state_error"].as_str().unwrap_or("");
    assert!(
        error.contains("cannot be recorded") && error.contains("No space left"),
        "{s:#}"
    );
    assert_eq!(status_of(&statuses, &b.upstream)["update_status"], "finished");
    let (code, text) = metrics(&env);
    assert_eq!(code, Some(1));
    assert_eq!(mirror_metric(&text, "mirror_faulted", &a.upstream), 1.0);
    assert_eq!(mirror_metric(&text, "mirror_pending_refs", &a.upstream), 1.0);
    assert!(metric(&text, "spool_entries") >= 1.0);

    std::fs::remove_file(filler).unwrap();
    wait_until("a run records the push and mirrors it", CONVERGE, || {
        run(&env);
        converged(&env, &a)
    });
    let s = status_of(&status_all(&env), &a.upstream);
    assert_eq!(s["update_status"], "finished", "{s:#}");
    assert_eq!(s["state_error"], Value::Null, "{s:#}");
    drop(tmpfs);
}

/// How long `run`, `status` or `metrics` may take before the test calls it a hang (a deadline,
/// not a measurement: a healthy run takes seconds).
const NEVER_HANGS: std::time::Duration = std::time::Duration::from_secs(120);

fn make_fifo(path: &Path) {
    git_push_mirror::util::fsutil::make_fifo(path, 0o644).unwrap();
}

#[test]
fn a_fifo_or_dev_zero_push_mirror_toml_faults_its_repository_and_nothing_hangs() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    let (a, b) = two_converged_repositories(&env);
    let config = a.upstream.join("push-mirror.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    for (what, replace) in [
        ("a FIFO", &make_fifo as &dyn Fn(&Path)),
        ("a link to /dev/zero", &|path: &Path| {
            std::os::unix::fs::symlink("/dev/zero", path).unwrap()
        }),
    ] {
        std::fs::remove_file(&config).unwrap();
        replace(&config);
        push_branch(&env, &a, "main", what);
        push_branch(&env, &b, "main", what);
        // The worker a hook starts, then cron's: both finish; the other repository converges.
        for args in [&["run", "--detached"][..], &["run", "--wait"]] {
            let out = output_within(gpm(&env).args(args), NEVER_HANGS, &format!("{args:?} with {what}"));
            assert!(out.status.code().is_some(), "{args:?}: {out:?}");
        }
        assert!(
            converged(&env, &b),
            "{what}: the other repository converges\n{}",
            log_text(&env)
        );
        assert!(!converged(&env, &a));
        let expected = if what.contains("FIFO") {
            "FIFO"
        } else {
            "character device"
        };
        assert!(
            log_text(&env).contains(expected),
            "{what}: the log says why\n{}",
            log_text(&env)
        );

        let out = output_within(gpm(&env).args(["status", "--json"]), NEVER_HANGS, "status");
        assert_eq!(out.status.code(), Some(2), "a configuration error exits 2");
        let statuses: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let s = status_of(&statuses, &a.upstream);
        let error = s["config_error"].as_str().unwrap_or("");
        assert!(
            error.contains("push-mirror.toml") && error.contains(expected),
            "{what}: {s:#}"
        );
        assert_eq!(status_of(&statuses, &b.upstream)["update_status"], "finished");
        let out = output_within(gpm(&env).args(["metrics"]), NEVER_HANGS, "metrics");
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(metric(&stdout(&out), "config_errors"), 1.0, "{what}");
    }
    std::fs::remove_file(&config).unwrap();
    std::fs::write(&config, original).unwrap();
    let (code, err) = run(&env);
    assert_eq!(code, Some(0), "{err}");
    assert!(converged(&env, &a), "fixed, it catches up\n{}", log_text(&env));
}

#[test]
fn one_mirror_with_a_readable_password_file_is_faulted_alone_and_the_others_show_their_urls() {
    if !require_or_skip("git http-backend", crate::support::HttpGitServer::available()) {
        return;
    }
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    // The failing mirror's retries do not keep `run` waiting.
    write_global_config(&env, "worker_linger = \"1s\"\n");
    let a = repo(&env, "a");
    let second = env.bare_repo("second-mirror.git");
    let (good_mirror, leaky_mirror) = (env.bare_repo("srv/good.git"), env.bare_repo("srv/leaky.git"));
    let server = crate::support::HttpGitServer::start(&env, &env.path("srv"), "bot", "t0ken-right");
    let good_token = secret_file(&env, "good.token", "t0ken-right", 0o600);
    let leaky_token = secret_file(&env, "leaky.token", "t0ken-right", 0o600);
    let repo_arg = path_str(&a.upstream);
    let second_url = format!("file://{}", path_str(&second));
    let (good_url, leaky_url) = (server.url("good.git"), server.url("leaky.git"));
    for (name, url, token) in [
        ("second", second_url.as_str(), None),
        ("good", good_url.as_str(), Some(&good_token)),
        ("leaky", leaky_url.as_str(), Some(&leaky_token)),
    ] {
        let mut args = vec!["add", repo_arg, name, url, "--delay", "0s"];
        if let Some(token) = token {
            args.extend(["--username", "bot", "--password-file", path_str(token)]);
        }
        gpm_ok(&env, &args);
    }
    // Later, one password file becomes readable by others (a careless copy, a restore).
    std::fs::set_permissions(&leaky_token, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    push_branch(&env, &a, "main", "one");
    let (code, err) = run(&env);
    assert_eq!(code, Some(1), "one mirror failed: {err}\n{}", log_text(&env));
    let upstream_refs = env.refs(&a.upstream);
    for mirror in [&a.mirror, &second, &good_mirror] {
        assert_eq!(env.refs(mirror), upstream_refs, "{} converged", mirror.display());
    }
    assert!(env.refs(&leaky_mirror).is_empty());

    let out = gpm_output(&env, &["status", "--json", repo_arg]);
    assert_eq!(out.status.code(), Some(1), "a mirror failed: {}", stderr(&out));
    let statuses: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(statuses.len(), 4, "{statuses:#?}");
    for s in &statuses {
        let url = s["url"].as_str().unwrap_or("");
        assert!(!url.is_empty(), "every mirror shows its URL: {s:#}");
        if s["mirror"] == "leaky" {
            assert!(url.contains("leaky.git"), "{s:#}");
            assert_eq!(s["update_status"], "failed", "{s:#}");
            let fault = format!("chmod 600 {}", leaky_token.display());
            assert!(s["config_error"].as_str().unwrap_or("").contains(&fault), "{s:#}");
            assert!(s["last_error"].as_str().unwrap_or("").contains(&fault), "{s:#}");
        } else {
            assert_eq!(s["update_status"], "finished", "{s:#}");
            assert_eq!(s["config_error"], Value::Null, "{s:#}");
        }
    }
    let (_, text) = metrics(&env);
    let faulted = |mirror: &str| {
        let prefix = format!(
            "git_push_mirror_mirror_faulted{{repo=\"{}\",mirror=\"{mirror}\"}} ",
            path_str(&a.upstream)
        );
        text.lines().find_map(|l| l.strip_prefix(&prefix)).map(str::to_string)
    };
    assert_eq!(faulted("leaky").as_deref(), Some("1"), "{text}");
    assert_eq!(faulted("good").as_deref(), Some("0"), "{text}");
    assert_eq!(
        metric(&text, "config_errors"),
        0.0,
        "the repository's configuration reads"
    );

    std::fs::set_permissions(&leaky_token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    gpm_ok(&env, &["sync", repo_arg, "--mirror", "leaky"]);
    assert_eq!(env.refs(&leaky_mirror), upstream_refs, "fixed, it catches up");
}

/// Commits and pushes `branch`, returning the push's stderr (the hook's `remote:` lines).
fn push_branch_telling(env: &TestEnv, setup: &Setup, branch: &str, content: &str) -> String {
    env.commit(&setup.work, &format!("{branch}.txt"), content, content);
    let out = env.git_output(&setup.work, &["push", "origin", &format!("HEAD:refs/heads/{branch}")]);
    crate::support::assert_success(&out, "git push");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn pushes_the_hook_could_not_spool_show_as_may_be_behind_until_a_drift_scan() {
    let env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    let fs_dir = env.path("spool-fs");
    let Some(tmpfs) = Tmpfs::mount_or_skip(&fs_dir) else {
        return;
    };
    write_global_config(
        &env,
        &format!("spool_dir = \"{}/spool\"\nworker_linger = \"1s\"\n", path_str(&fs_dir)),
    );
    let (a, b) = two_converged_repositories(&env);
    let unrecorded =
        |statuses: &[Value], setup: &Setup| status_of(statuses, &setup.upstream)["unrecorded_pushes_since"].clone();

    // The spool's disk is full: the push is accepted, the hook cannot record it.
    let filler = tmpfs.fill();
    let told = push_branch_telling(&env, &a, "main", "two");
    assert!(told.contains("could not record this push"), "{told}");
    assert!(
        a.upstream.join("push-mirror.unrecorded").exists(),
        "the trace is left in the repository"
    );
    let statuses = status_all(&env);
    let s = status_of(&statuses, &a.upstream);
    assert!(s["unrecorded_pushes_since"].is_string(), "{s:#}");
    assert_eq!(
        s["pending_refs"],
        serde_json::json!([]),
        "the hook recorded nothing: {s:#}"
    );
    assert_eq!(unrecorded(&statuses, &b), Value::Null, "only a's push was lost");
    let human = stdout(&gpm_output(&env, &["status", path_str(&a.upstream)]));
    assert!(human.contains("may be behind"), "{human}");
    let (_, text) = metrics(&env);
    assert_eq!(mirror_metric(&text, "mirror_unrecorded_pushes", &a.upstream), 1.0);
    assert_eq!(mirror_metric(&text, "mirror_unrecorded_pushes", &b.upstream), 0.0);

    // Room again: the next run's drift scan finds the push, mirrors it and clears the trace.
    std::fs::remove_file(&filler).unwrap();
    let (code, err) = run(&env);
    assert_eq!(code, Some(0), "{err}\n{}", log_text(&env));
    assert!(converged(&env, &a), "{}", log_text(&env));
    assert_eq!(unrecorded(&status_all(&env), &a), Value::Null);
    assert!(!a.upstream.join("push-mirror.unrecorded").exists());

    // When the repository cannot take the trace either, the spool's marker (made by every
    // worker) only changes its time, which needs no room: every mirror may be behind, until a
    // drift scan of every repository.
    std::fs::create_dir(a.upstream.join("push-mirror.unrecorded")).unwrap();
    let filler = tmpfs.fill();
    let told = push_branch_telling(&env, &a, "main", "three");
    assert!(told.contains("could not record this push"), "{told}");
    let statuses = status_all(&env);
    assert!(
        unrecorded(&statuses, &a).is_string() && unrecorded(&statuses, &b).is_string(),
        "{statuses:#?}"
    );
    std::fs::remove_file(&filler).unwrap();
    std::fs::remove_dir(a.upstream.join("push-mirror.unrecorded")).unwrap();
    let (code, err) = run(&env);
    assert_eq!(code, Some(0), "{err}\n{}", log_text(&env));
    assert!(converged(&env, &a));
    let statuses = status_all(&env);
    assert_eq!(
        (unrecorded(&statuses, &a), unrecorded(&statuses, &b)),
        (Value::Null, Value::Null)
    );
    drop(tmpfs);
}
