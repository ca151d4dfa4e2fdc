//! `status` never says `finished` over refs the mirror lacks: a divergent ref keeps the mirror
//! `failed` whatever later updates push, until the divergence ends; refs a mirror acknowledged
//! but does not keep (a real smart-HTTP server made to answer `ok` and drop the push) leave it
//! `failed` with words that say so, and stay pending. (Pushes the hook could not spool are in
//! `tests/it/blast_radius.rs`, which has the full disk they need.)

use crate::support::binary::*;
use crate::support::{HttpGitServer, Misbehaviour, TestEnv, path_str, require_or_skip};
use serde_json::Value;

/// `run --wait` (cron): its exit code.
fn run(env: &TestEnv) -> Option<i32> {
    let out = gpm_output(env, &["run", "--wait"]);
    out.status.code()
}

/// The value of `name{repo=…,mirror="backup"…}` (with `extra` labels after those) in `metrics`.
fn metric(env: &TestEnv, repo: &std::path::Path, name: &str, extra: &str) -> f64 {
    let text = stdout(&gpm_output(env, &["metrics", path_str(repo)]));
    let prefix = format!(
        "git_push_mirror_{name}{{repo=\"{}\",mirror=\"backup\"{extra}}} ",
        path_str(repo)
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn a_divergent_ref_keeps_the_mirror_failed_after_unrelated_updates_until_it_is_resolved() {
    let env = TestEnv::new();
    // The hook spools without starting a worker: each `run` below is one update.
    let Setup { upstream, mirror, work } = Setup::spooling_only(&env, "upstream");
    gpm_ok(
        &env,
        &["set", path_str(&upstream), "backup", "--keep-divergent-refs", "true"],
    );
    env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["branch", "other"]);
    env.git(&work, &["push", "--quiet", "origin", "main", "other"]);
    assert_eq!(run(&env), Some(0));
    assert_eq!(env.refs(&mirror), env.refs(&upstream));

    // Someone pushes to the mirror's main; then main moves upstream: main diverges.
    let direct = env.clone_work(&mirror, "direct");
    env.commit(&direct, "d.txt", "direct", "pushed to the mirror");
    env.git(&direct, &["push", "--quiet", "origin", "main"]);
    env.commit(&work, "a.txt", "two", "second");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    assert_eq!(run(&env), Some(1));
    let status_of = || -> Value {
        let out = gpm_output(&env, &["status", "--json", path_str(&upstream)]);
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap().remove(0)
    };
    assert_eq!(status_of()["update_status"], "failed");

    // An update of another ref only: the mirror still diverges on main, so still failed.
    env.git(&work, &["checkout", "-q", "other"]);
    let other = env.commit(&work, "o.txt", "other", "other moves");
    env.git(&work, &["push", "--quiet", "origin", "other"]);
    assert_eq!(run(&env), Some(1), "run says a mirror is failed");
    assert_eq!(env.refs(&mirror)["refs/heads/other"], other, "the other ref landed");
    let status = status_of();
    assert_eq!(status["update_status"], "failed", "{status:#}");
    assert_eq!(status["failure_class"], "permanent", "{status:#}");
    assert_eq!(
        status["divergent_refs"],
        serde_json::json!(["refs/heads/main"]),
        "{status:#}"
    );
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("divergent") && error.contains("refs/heads/main"),
        "{status:#}"
    );
    assert_eq!(
        gpm_output(&env, &["status", path_str(&upstream)]).status.code(),
        Some(1)
    );
    assert_eq!(
        metric(&env, &upstream, "mirror_update_status", ",status=\"failed\""),
        1.0
    );
    assert_eq!(metric(&env, &upstream, "mirror_divergent_refs", ""), 1.0);

    // Resolved: main takes the mirror's commit in, and fast-forwards the mirror.
    env.git(&work, &["checkout", "-q", "main"]);
    env.git(
        &work,
        &["pull", "--quiet", "--no-rebase", "--no-edit", path_str(&mirror), "main"],
    );
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    assert_eq!(run(&env), Some(0));
    assert_eq!(env.refs(&mirror), env.refs(&upstream));
    let status = status_of();
    assert_eq!(status["update_status"], "finished", "{status:#}");
    assert_eq!(status["divergent_refs"], serde_json::json!([]), "{status:#}");
    assert_eq!(
        (&status["last_error"], &status["failure_class"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(metric(&env, &upstream, "mirror_divergent_refs", ""), 0.0);
}

#[test]
fn refs_a_mirror_acknowledged_but_does_not_keep_leave_it_failed_and_pending() {
    if !require_or_skip("git http-backend", HttpGitServer::available()) {
        return;
    }
    let env = TestEnv::new();
    let mirror = env.bare_repo("srv/mirror.git");
    let server = HttpGitServer::start(&env, &env.path("srv"), "bot", "drop-s3cret");
    server.misbehave(Some(Misbehaviour::AcknowledgeAndDrop));
    let upstream = env.bare_repo("upstream.git");
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    for branch in ["b1", "b2", "b3", "b4"] {
        env.git(&work, &["branch", branch]);
    }
    env.git(&work, &["tag", "v1"]);
    env.git(&work, &["tag", "-a", "-m", "release", "v2"]);
    env.git(&work, &["push", "--quiet", "origin", "--all"]);
    env.git(&work, &["push", "--quiet", "origin", "--tags"]);
    assert_eq!(env.refs(&upstream).len(), 7);
    let token = secret_file(&env, "token", "drop-s3cret", 0o600);
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&upstream),
            "backup",
            &server.url("mirror.git"),
            "--username",
            "bot",
            "--password-file",
            path_str(&token),
        ],
    );

    let sync = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert_eq!(sync.status.code(), Some(1), "{}", stdout(&sync));
    assert!(server.dropped_pushes() > 0, "the server took the push and dropped it");
    assert!(env.refs(&mirror).is_empty(), "the mirror has none of the 7 refs");
    let status =
        &serde_json::from_slice::<Vec<Value>>(&gpm_output(&env, &["status", "--json", path_str(&upstream)]).stdout)
            .unwrap()[0];
    assert_eq!(status["update_status"], "failed", "{status:#}");
    assert_eq!(status["failure_class"], "permanent", "{status:#}");
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("the mirror acknowledged refs/heads/main but does not have it"),
        "{status:#}"
    );
    assert_eq!(status["pending_refs"].as_array().unwrap().len(), 7, "{status:#}");
    assert_eq!(status["rejected_refs"].as_array().unwrap().len(), 7, "{status:#}");
    let human = stdout(&gpm_output(&env, &["status", path_str(&upstream)]));
    assert!(
        human.contains("update_status: failed") && human.contains("failure_class: permanent"),
        "{human}"
    );

    // The hook's worker and cron leave it alone for `permanent_retry`; once the server keeps
    // what it is given, `sync` lands everything and the mirror is finished.
    server.misbehave(None);
    gpm_ok(&env, &["sync", path_str(&upstream)]);
    assert_eq!(env.refs(&mirror), env.refs(&upstream));
    let status =
        &serde_json::from_slice::<Vec<Value>>(&gpm_output(&env, &["status", "--json", path_str(&upstream)]).stdout)
            .unwrap()[0];
    assert_eq!(status["update_status"], "finished", "{status:#}");
    assert_eq!(status["pending_refs"], serde_json::json!([]), "{status:#}");
}
