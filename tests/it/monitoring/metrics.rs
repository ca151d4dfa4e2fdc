//! The metrics command's output: valid Prometheus text that matches status --json, escaped label
//! values, and the attention gauge that lists only failing mirrors.

use super::*;

// ---------------------------------------------------------------------------

/// Seconds since the epoch of a `status --json` time (null: 0, as `metrics` reports never).
fn unix_seconds(v: &serde_json::Value) -> f64 {
    match v.as_str() {
        None => 0.0,
        Some(t) => humantime::parse_rfc3339(t)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64(),
    }
}

fn worker_idle(env: &TestEnv) -> bool {
    git_push_mirror::util::fsutil::FileLock::try_acquire(&spool_dir(env).join("worker.lock"))
        .unwrap()
        .is_some()
}

#[test]
fn metrics_parse_as_prometheus_text_and_match_status_json() {
    let env = TestEnv::new();
    // One failure marks a mirror failed; its retry is an hour away, so the worker leaves.
    write_global_config(
        &env,
        "worker_linger = \"1s\"\n[defaults]\ndelay = \"0s\"\n[retry]\ninitial = \"1h\"\nmax = \"1h\"\nfail_after = 1\n",
    );
    let setup = Setup::file(&env, &["--delay", "0s"]);
    let upstream = path_str(&setup.upstream);
    gpm_ok(
        &env,
        &[
            "add",
            upstream,
            "broken",
            &format!("file://{}", path_str(&env.path("missing.git"))),
        ],
    );
    gpm_ok(&env, &["add", upstream, "off", "file:///nowhere.git", "--disabled"]);
    env.commit(&setup.work, "a.txt", "one", "first");
    env.git(&setup.work, &["tag", "v1"]);
    setup.push(&env, &["main", "v1"]);
    setup.wait_converged(&env);
    wait_until("the broken mirror is failed and the worker gone", CONVERGE, || {
        let status = setup.status_json(&env);
        status
            .iter()
            .any(|s| s["mirror"] == "broken" && s["update_status"] == "failed")
            && status
                .iter()
                .any(|s| s["mirror"] == "backup" && s["update_status"] == "finished")
            && worker_idle(&env)
    });

    // A push recorded by the hook that no worker has taken yet, and an unreadable entry.
    let head = env.git(&setup.upstream, &["rev-parse", "main"]);
    let mut hook = gpm(&env);
    hook.args(["hook", "post-receive", "--no-worker"])
        .current_dir(&setup.upstream)
        .env("GIT_DIR", ".")
        .stdin(Stdio::piped());
    let mut child = hook.spawn().unwrap();
    let line = format!("{} {head} refs/heads/waiting\n", "0".repeat(40));
    child.stdin.take().unwrap().write_all(line.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    fs::create_dir_all(spool_dir(&env).join("bad")).unwrap();
    fs::write(spool_dir(&env).join("bad/corrupt"), "junk").unwrap();

    let prom_dir = env.path("textfile");
    fs::create_dir_all(&prom_dir).unwrap();
    let prom = prom_dir.join("git-push-mirror.prom");
    let out = gpm_output(&env, &["metrics", "--output", path_str(&prom)]);
    assert_eq!(out.status.code(), Some(1), "a failed mirror exits 1\n{}", stderr(&out));
    let status = setup.status_json(&env);
    let text = fs::read_to_string(&prom).unwrap();
    let exp = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    // Atomic: one file, nothing left over; readable by node_exporter's user.
    let names: Vec<_> = fs::read_dir(&prom_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("git-push-mirror.prom")]);
    assert_eq!(fs::metadata(&prom).unwrap().permissions().mode() & 0o777, 0o644);
    for (name, kind) in &exp.types {
        // Counters only for what only grows and is kept in durable state (`…_total`).
        let counter = kind == "counter" && name.ends_with("_total");
        assert!(kind == "gauge" || counter, "{name}: {kind}");
        assert!(exp.help.contains_key(name), "{name} has no HELP");
    }

    assert_eq!(status.len(), 3);
    for s in &status {
        let labels = [
            ("repo", s["repo"].as_str().unwrap()),
            ("mirror", s["mirror"].as_str().unwrap()),
        ];
        let metric = |name: &str| exp.value(&format!("git_push_mirror_mirror_{name}"), &labels);
        assert_eq!(
            metric("consecutive_failures"),
            s["consecutive_failures"].as_f64().unwrap(),
            "{s:#}"
        );
        assert_eq!(
            metric("pending_refs"),
            s["pending_refs"].as_array().unwrap().len() as f64,
            "{s:#}"
        );
        assert_eq!(metric("kept_refs"), s["kept_refs"].as_array().unwrap().len() as f64);
        assert_eq!(
            metric("divergent_refs"),
            s["divergent_refs"].as_array().unwrap().len() as f64
        );
        assert_eq!(metric("enabled"), if s["enabled"] == true { 1.0 } else { 0.0 });
        assert_eq!(
            metric("full_sync_pending"),
            if s["full_sync_pending"] == true { 1.0 } else { 0.0 }
        );
        assert_eq!(
            metric("last_success_timestamp_seconds"),
            unix_seconds(&s["last_successful_update_at"])
        );
        assert_eq!(
            metric("last_update_timestamp_seconds"),
            unix_seconds(&s["last_update_at"])
        );
        for value in ["none", "started", "finished", "to_retry", "failed"] {
            let mut with_status = labels.to_vec();
            with_status.push(("status", value));
            let expected = if s["update_status"] == value { 1.0 } else { 0.0 };
            assert_eq!(
                exp.value("git_push_mirror_mirror_update_status", &with_status),
                expected,
                "{s:#}"
            );
        }
    }
    let by_mirror = |m: &str| status.iter().find(|s| s["mirror"] == m).unwrap();
    assert!(unix_seconds(&by_mirror("backup")["last_successful_update_at"]) > 0.0);
    assert_eq!(by_mirror("broken")["consecutive_failures"], 1);
    assert_eq!(
        by_mirror("off")["pending_refs"].as_array().unwrap().len(),
        3,
        "the disabled mirror keeps changes (main, v1), and the push still in the spool is pending too"
    );
    assert_eq!(
        by_mirror("backup")["pending_refs"],
        serde_json::json!(["refs/heads/waiting"]),
        "a push no worker has recorded yet is pending, not hidden"
    );

    assert_eq!(
        exp.value("git_push_mirror_spool_entries", &[]),
        spool_files(&env, "new").len() as f64
    );
    assert_eq!(exp.value("git_push_mirror_spool_entries", &[]), 1.0);
    let age = exp.value("git_push_mirror_spool_oldest_entry_age_seconds", &[]);
    assert!((0.0..60.0).contains(&age), "{age}");
    assert_eq!(exp.value("git_push_mirror_spool_bad_entries", &[]), 1.0);
    assert_eq!(exp.value("git_push_mirror_repositories", &[]), 1.0);
    assert_eq!(exp.value("git_push_mirror_silent_mode", &[]), 0.0);

    // Without failed mirrors: exit 0, and stdout gets the same families.
    gpm_ok(&env, &["remove", upstream, "broken"]);
    let out = gpm_output(&env, &["metrics"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let again = parse_exposition(&stdout(&out)).unwrap();
    assert_eq!(
        again.types.keys().collect::<Vec<_>>(),
        exp.types.keys().collect::<Vec<_>>()
    );
}

#[test]
fn metrics_label_values_with_quotes_backslashes_and_line_feeds_are_escaped() {
    let env = TestEnv::new();
    let odd = env.bare_repo("we\"ird\\na\nme.git");
    let mirror = env.bare_repo("mirror.git");
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&odd),
            "backup",
            &format!("file://{}", path_str(&mirror)),
        ],
    );
    let text = gpm_ok(&env, &["metrics"]);
    let exp = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let repo = fs::canonicalize(&odd).unwrap();
    assert_eq!(
        exp.value(
            "git_push_mirror_mirror_enabled",
            &[("repo", path_str(&repo)), ("mirror", "backup")]
        ),
        1.0
    );
}

#[test]
fn metrics_mirrors_attention_lists_only_the_failing_mirror_and_counts_them_all() {
    let env = TestEnv::new();
    let config =
        "worker_linger = \"1s\"\n[defaults]\ndelay = \"0s\"\n[retry]\ninitial = \"1h\"\nmax = \"1h\"\nfail_after = 1\n";
    write_global_config(&env, config);
    let setup = Setup::file(&env, &["--delay", "0s"]);
    let upstream = path_str(&setup.upstream);
    gpm_ok(
        &env,
        &[
            "add",
            upstream,
            "broken",
            &format!("file://{}", path_str(&env.path("missing.git"))),
        ],
    );
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    wait_until("the broken mirror is failed and the worker gone", CONVERGE, || {
        let status = setup.status_json(&env);
        status
            .iter()
            .any(|s| s["mirror"] == "broken" && s["update_status"] == "failed")
            && status
                .iter()
                .any(|s| s["mirror"] == "backup" && s["update_status"] == "finished")
            && worker_idle(&env)
    });
    let listed = |text: &str| -> BTreeSet<String> {
        parse_exposition(text)
            .unwrap()
            .samples
            .into_iter()
            .filter(|s| s.name == "git_push_mirror_mirror_enabled")
            .map(|s| s.labels["mirror"].clone())
            .collect()
    };
    let all = stdout(&gpm_output(&env, &["metrics"]));
    assert_eq!(
        listed(&all),
        BTreeSet::from(["backup".to_string(), "broken".to_string()])
    );
    write_global_config(&env, &format!("metrics_mirrors = \"attention\"\n{config}"));
    let attention = stdout(&gpm_output(&env, &["metrics"]));
    assert_eq!(
        listed(&attention),
        BTreeSet::from(["broken".to_string()]),
        "{attention}"
    );
    for line in [
        "git_push_mirror_mirrors{status=\"finished\"} 1",
        "git_push_mirror_mirrors{status=\"failed\"} 1",
        "git_push_mirror_mirrors_needing_attention 1",
    ] {
        assert!(attention.lines().any(|l| l == line), "missing {line:?} in\n{attention}");
        assert!(all.lines().any(|l| l == line), "missing {line:?} in\n{all}");
    }
    // A value the key does not take is a clear error.
    write_global_config(&env, &format!("metrics_mirrors = \"some\"\n{config}"));
    let out = gpm_output(&env, &["metrics"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("metrics_mirrors"), "{}", stderr(&out));
}
