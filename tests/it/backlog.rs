//! A backlog (cron stopped for a weekend while hooks kept spooling): 20,000 spool entries over
//! 20 repositories are drained with one update per (repository, mirror) pair, counted by the
//! mirrors themselves, and every mirror ends exactly equal to its repository.

use crate::support::binary::*;
use crate::support::{TestEnv, path_str};
use git_push_mirror::pipeline::spool::{RefUpdate, SPOOL_FORMAT_VERSION, SpoolEntry};
use git_push_mirror::util::oid::Oid;
use std::path::{Path, PathBuf};

const REPOS: usize = 20;
const ENTRIES_PER_REPO: usize = 1_000;
const BRANCHES: usize = 50;

/// A line of `count` commits on `refs/heads/chain` made by one `git fast-import`; their ids,
/// oldest first (the ref is deleted again).
fn chain(env: &TestEnv, repo: &Path, count: usize) -> Vec<String> {
    let mut script = String::new();
    for i in 0..count {
        script.push_str(&format!(
            "commit refs/heads/chain\nmark :{}\ncommitter T <t@example.com> {} +0000\ndata 2\n{}\n",
            i + 1,
            1_700_000_000 + i,
            i % 10
        ));
        if i > 0 {
            script.push_str(&format!("from :{i}\n"));
        }
        script.push_str(&format!("M 100644 inline f\ndata {}\n{i}\n\n", i.to_string().len() + 1));
    }
    let marks = repo.join("marks");
    env.git_with_input(
        repo,
        &[
            "fast-import",
            "--quiet",
            &format!("--export-marks={}", path_str(&marks)),
        ],
        &script,
    );
    let text = std::fs::read_to_string(&marks).unwrap();
    std::fs::remove_file(&marks).unwrap();
    let mut ids = vec![String::new(); count];
    for line in text.lines() {
        let (mark, id) = line.split_once(' ').unwrap();
        ids[mark[1..].parse::<usize>().unwrap() - 1] = id.to_string();
    }
    env.git(repo, &["update-ref", "-d", "refs/heads/chain"]);
    ids
}

/// Points every branch of `repo` at the commit `of(branch)` (`None`: deleted).
fn set_branches(env: &TestEnv, repo: &Path, of: impl Fn(usize) -> Option<String>) {
    let mut lines = String::new();
    for b in 0..BRANCHES {
        match of(b) {
            Some(id) => lines.push_str(&format!("update refs/heads/b{b:02} {id}\n")),
            None => lines.push_str(&format!("delete refs/heads/b{b:02}\n")),
        }
    }
    env.git_with_input(repo, &["update-ref", "--stdin"], &lines);
}

#[test]
fn a_backlog_of_20000_entries_is_drained_with_one_update_per_pair_and_every_mirror_exact() {
    let env = TestEnv::new();
    let mut upstreams: Vec<(PathBuf, PathBuf, Vec<String>)> = Vec::new();
    for r in 0..REPOS {
        let upstream = env.bare_repo(&format!("up{r:02}.git"));
        let mirror = env.bare_repo(&format!("mirror{r:02}.git"));
        // Enough commits for every entry to move its branch to a value of its own.
        let commits = chain(&env, &upstream, ENTRIES_PER_REPO / BRANCHES + 1);
        set_branches(&env, &upstream, |_| Some(commits[0].clone()));
        // The default branch, into which a deleted branch must be merged to be deleted on the mirror.
        env.git(&upstream, &["symbolic-ref", "HEAD", "refs/heads/b00"]);
        gpm_ok(
            &env,
            &[
                "add",
                path_str(&upstream),
                "m",
                &format!("file://{}", path_str(&mirror)),
                "--delay",
                "0s",
            ],
        );
        upstreams.push((upstream, mirror, commits));
    }
    // The first sync, before the backlog: every mirror starts equal to its repository.
    gpm_ok(&env, &["run", "--wait"]);
    for (upstream, mirror, _) in &upstreams {
        assert_eq!(env.refs(mirror), env.refs(upstream));
    }
    let logs: Vec<PathBuf> = upstreams
        .iter()
        .map(|(_, mirror, _)| count_mirror_pushes(mirror))
        .collect();

    // The weekend: every branch moves step by step, one push per step, and the last branch is
    // deleted at the end; the hooks spooled each push, and no worker ran.
    let new_dir = spool_dir(&env).join("new");
    let zero = Oid::parse(&"0".repeat(40)).unwrap();
    let mut written = 0u64;
    for (upstream, _, commits) in &upstreams {
        let steps = ENTRIES_PER_REPO / BRANCHES;
        for step in 1..=steps {
            for b in 0..BRANCHES {
                let (old, new) = (
                    Oid::parse(&commits[step - 1]).unwrap(),
                    Oid::parse(&commits[step]).unwrap(),
                );
                let deleted = b == BRANCHES - 1 && step == steps;
                let entry = SpoolEntry {
                    version: SPOOL_FORMAT_VERSION,
                    repo: upstream.clone(),
                    received_at_ms: 1_700_000_000_000 + written,
                    updates: vec![RefUpdate {
                        name: format!("refs/heads/b{b:02}"),
                        old: if deleted {
                            Oid::parse(&commits[step - 1]).unwrap()
                        } else {
                            old
                        },
                        new: if deleted { zero.clone() } else { new },
                    }],
                };
                // The hook's file names: the time they were written, oldest first.
                let name = format!(
                    "{:020}-{}-{written}.json",
                    1_700_000_000_000_000_000u64 + written,
                    std::process::id()
                );
                std::fs::write(new_dir.join(name), serde_json::to_vec(&entry).unwrap()).unwrap();
                written += 1;
            }
        }
        set_branches(&env, upstream, |b| (b != BRANCHES - 1).then(|| commits[steps].clone()));
    }
    assert_eq!(written as usize, REPOS * ENTRIES_PER_REPO);
    assert_eq!(spool_files(&env, "new").len(), REPOS * ENTRIES_PER_REPO);

    // One round drains it all, with one push per mirror carrying everything.
    gpm_ok(&env, &["run", "--wait"]);
    for (i, (upstream, mirror, _)) in upstreams.iter().enumerate() {
        assert_eq!(
            env.refs(mirror),
            env.refs(upstream),
            "mirror {i} differs from its repository"
        );
        assert_eq!(
            lines_in(&logs[i]),
            1,
            "mirror {i} got more than one push for the backlog"
        );
    }
    assert!(spool_files(&env, "new").is_empty(), "entries left in spool/new");
    assert!(spool_files(&env, "claimed").is_empty(), "entries left in spool/claimed");
    assert!(spool_files(&env, "bad").is_empty(), "entries moved to spool/bad");
    let statuses: Vec<serde_json::Value> = serde_json::from_str(&gpm_ok(&env, &["status", "--json"])).unwrap();
    assert_eq!(statuses.len(), REPOS);
    for s in &statuses {
        assert_eq!(s["update_status"], "finished", "{s:#}");
        assert_eq!(s["pending_refs"], serde_json::json!([]), "{s:#}");
    }
    // A second round has nothing to push.
    gpm_ok(&env, &["run", "--wait"]);
    assert!(
        logs.iter().all(|log| lines_in(log) == 1),
        "a round without new pushes pushed"
    );
}
