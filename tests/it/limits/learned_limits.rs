//! Limits the worker learns: one taught by dropped connections is lifted by clean updates, and a
//! refused size is kept until `set --reset-learned-limit` forgets it.

use super::*;

fn mirror_status(env: &TestEnv, upstream: &Path) -> serde_json::Value {
    let out = gpm_output(env, &["status", "--json", path_str(upstream)]);
    let mut all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.remove(0)
}

/// Commits `files` new incompressible files of `size` bytes each to `main` of `upstream`, one
/// commit each.
fn commit_noise(env: &TestEnv, upstream: &Path, work: &Path, seed: u64, files: usize, size: usize) {
    let mut noise = Noise(seed);
    for i in 0..files {
        let mut blob = vec![0u8; size];
        noise.fill(&mut blob);
        std::fs::write(work.join(format!("noise-{seed}-{i}")), &blob).unwrap();
        env.git(work, &["add", "."]);
        env.git(work, &["commit", "--quiet", "-m", &format!("noise {seed} {i}")]);
    }
    env.git(work, &["push", "--quiet", "origin", "HEAD:refs/heads/main"]);
    assert_eq!(
        env.refs(upstream)["refs/heads/main"],
        env.git(work, &["rev-parse", "HEAD"]).trim()
    );
}

#[test]
fn a_limit_taught_by_dropped_connections_is_lifted_by_clean_updates() {
    if !require_or_skip("git daemon", crate::support::GitDaemon::available()) {
        return;
    }
    let env = TestEnv::new();
    let upstream = repository_of(&env, "upstream.git", 80_000);
    let total = repository_bytes(&env, &upstream);
    let served = env.path("served");
    let (mirror, log) = measured_mirror(&env, "served/m.git", None);
    let daemon = crate::support::GitDaemon::start(&served);
    // The network drops the first three pushes after 1 MB, then recovers.
    let proxy = crate::support::CuttingProxy::cutting(daemon.port(), 1_000_000, 3);
    let url = format!("git://127.0.0.1:{}/m.git", proxy.port);
    gpm_ok(&env, &["add", path_str(&upstream), "m", &url]);
    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(env.refs(&mirror), env.refs(&upstream));
    assert_eq!(proxy.cuts.load(std::sync::atomic::Ordering::SeqCst), 3);
    let status = mirror_status(&env, &upstream);
    let learned = status["learned_max_push_size"].as_u64().expect("a limit is suspected");
    assert!(
        learned < total / 4,
        "{learned} after three drops of {total} bytes: {status:#}"
    );
    assert_eq!(status["learned_max_push_size_source"], "dropped", "{status:#}");
    assert!(status["learned_max_push_size_at"].is_string(), "{status:#}");
    let human = stdout(&gpm_output(&env, &["status", path_str(&upstream)]));
    assert!(
        human.contains("lost its connection; clean updates raise it again"),
        "{human}"
    );

    // Clean updates, small ones: each doubles the suspicion until it reaches what failed.
    let work = env.clone_work(&upstream, "work");
    let mut clean_runs = 0;
    while mirror_status(&env, &upstream)["learned_max_push_size"].is_u64() {
        clean_runs += 1;
        assert!(clean_runs <= 4, "still limited after {} clean updates", clean_runs - 1);
        env.commit(&work, "small.txt", &format!("clean {clean_runs}"), "small");
        env.git(&work, &["push", "--quiet", "origin", "HEAD:refs/heads/main"]);
        let out = gpm_output(&env, &["sync", path_str(&upstream)]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    }
    assert_eq!(env.refs(&mirror), env.refs(&upstream));

    // Unlimited again: a 12 MB update goes in one push.
    let before = pack_sizes(&log).len();
    commit_noise(&env, &upstream, &work, 12, 4, 3 * MB as usize);
    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(env.refs(&mirror), env.refs(&upstream));
    let later = &pack_sizes(&log)[before..];
    assert!(
        later.len() == 1 && later[0] >= 12 * MB,
        "the 12 MB update went in one push: {later:?}"
    );
}

#[test]
fn a_refused_size_is_kept_until_reset_learned_limit_forgets_it() {
    let env = TestEnv::new();
    let upstream = repository_of(&env, "upstream.git", 66_000);
    let (mirror, log) = measured_mirror(&env, "limited.git", None);
    env.git(&mirror, &["config", "receive.maxInputSize", &(2 * MB).to_string()]);
    add(&env, &upstream, "limited", &mirror, &[]);
    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let status = mirror_status(&env, &upstream);
    assert_eq!(status["learned_max_push_size_source"], "refused", "{status:#}");
    let human = stdout(&gpm_output(&env, &["status", path_str(&upstream)]));
    assert!(
        human.contains("the mirror refused bigger pushes as too large"),
        "{human}"
    );
    // A clean update keeps a refusal (it is the mirror's word, not a guess).
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "small.txt", "one", "small");
    env.git(&work, &["push", "--quiet", "origin", "HEAD:refs/heads/main"]);
    gpm_ok(&env, &["sync", path_str(&upstream)]);
    assert_eq!(
        mirror_status(&env, &upstream)["learned_max_push_size"],
        status["learned_max_push_size"]
    );

    let out = gpm_ok(&env, &["set", path_str(&upstream), "limited", "--reset-learned-limit"]);
    assert!(out.contains("forgot the push size limit of mirror limited"), "{out}");
    let status = mirror_status(&env, &upstream);
    assert!(status["learned_max_push_size"].is_null(), "{status:#}");
    let out = gpm_ok(&env, &["set", path_str(&upstream), "limited", "--reset-learned-limit"]);
    assert!(out.contains("had no learned push size limit"), "{out}");
    // Forgotten: the next big update is tried whole, refused (refused pushes never reach the
    // mirror's hook), and learns again.
    let before = pack_sizes(&log).len();
    commit_noise(&env, &upstream, &work, 5, 4, MB as usize);
    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("was too large for the mirror"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.refs(&mirror), env.refs(&upstream));
    assert!(pack_sizes(&log)[before..].iter().all(|p| *p <= 2 * MB));
    assert_eq!(
        mirror_status(&env, &upstream)["learned_max_push_size_source"],
        "refused"
    );
    let refused = gpm_output(&env, &["set", path_str(&upstream), "nosuch", "--reset-learned-limit"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
}
