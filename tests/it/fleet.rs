//! Fleet mirrors: one `[mirror.NAME]` in the global configuration with repository patterns and a
//! `{name}` URL template covers every matching repository under `repos_root`; a repository's own
//! mirror of the same name wins; `run`, `status` and `list` cover the whole fleet.

use crate::support::binary::*;
use crate::support::{TestEnv, path_str, wait_until};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const REPOS: usize = 50;

/// Copies a directory tree (a fresh bare repository is a few small files:
/// copying a template is much faster than running `git init` 100 times).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn repo_name(i: usize) -> String {
    format!("acme/repo-{i:02}")
}

struct Fleet {
    srv: PathBuf,
    mirrors: PathBuf,
}

impl Fleet {
    fn upstream(&self, name: &str) -> PathBuf {
        self.srv.join(format!("{name}.git"))
    }

    fn mirror(&self, name: &str) -> PathBuf {
        self.mirrors.join(format!("{name}.git"))
    }
}

/// 50 `acme/repo-NN.git` under `srv/`, an excluded `acme/private.git` and an
/// unmatched `other/tool.git`, each `acme/repo-NN` with an empty mirror under `mirrors/`.
fn fleet(env: &TestEnv) -> Fleet {
    let template = env.bare_repo("template.git");
    for sample in fs::read_dir(template.join("hooks")).unwrap() {
        fs::remove_file(sample.unwrap().path()).unwrap();
    }
    let fleet = Fleet {
        srv: env.path("srv"),
        mirrors: env.path("mirrors"),
    };
    for i in 0..REPOS {
        copy_tree(&template, &fleet.upstream(&repo_name(i)));
        copy_tree(&template, &fleet.mirror(&repo_name(i)));
    }
    for name in ["acme/private", "other/tool"] {
        copy_tree(&template, &fleet.upstream(name));
    }
    write_global_config(
        env,
        &format!(
            "repos_root = \"{}\"\nmax_parallel = 4\n\n[defaults]\ndelay = \"0s\"\n\n\
             # Every acme repository but the private one, to mirrors/<name>.git.\n\
             [mirror.backup]\nrepos = [\"acme/*\", \"!acme/private\"]\nurl = \"file://{}/{{name}}.git\"\n",
            path_str(&fleet.srv),
            path_str(&fleet.mirrors)
        ),
    );
    fleet
}

/// Clones `repo`, commits a file named after it, pushes main; returns the new refs.
fn push_to(env: &TestEnv, repo: &Path, tag: &str) -> BTreeMap<String, String> {
    let work = env.path(format!("work-{tag}"));
    env.git(env.root(), &["clone", "-q", path_str(repo), path_str(&work)]);
    env.commit(&work, "file.txt", tag, &format!("commit in {tag}"));
    env.git(&work, &["push", "-q", "origin", "main"]);
    env.refs(repo)
}

fn wait_for(env: &TestEnv, mirror: &Path, expected: &BTreeMap<String, String>) {
    let mut last = BTreeMap::new();
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(&format!("{} converges", mirror.display()), CONVERGE, || {
            last = env.refs(mirror);
            &last == expected
        })
    }));
    if ok.is_err() {
        let log = fs::read_to_string(state_base(env).join("git-push-mirror.log")).unwrap_or_default();
        panic!(
            "{} has {last:#?}, expected {expected:#?}\nstatus:\n{}\nlog:\n{log}",
            mirror.display(),
            gpm_ok(env, &["status"])
        );
    }
}

#[test]
fn a_fleet_mirror_covers_fifty_repositories_with_templated_urls_and_a_repository_override_wins() {
    let env = TestEnv::new();
    let fleet = fleet(&env);
    let installed = gpm_ok(&env, &["install", "--all", path_str(&fleet.srv)]);
    assert_eq!(installed.lines().count(), REPOS + 2, "{installed}");

    // repo-07 overrides the fleet mirror with a [mirror.backup] of its own.
    let override_mirror = env.bare_repo("override.git");
    fs::write(
        fleet.upstream(&repo_name(7)).join("push-mirror.toml"),
        format!("[mirror.backup]\nurl = \"file://{}\"\n", path_str(&override_mirror)),
    )
    .unwrap();

    let pushed = [0, 7, 13, 31, 49];
    let mut expected = BTreeMap::new();
    for i in pushed {
        expected.insert(
            i,
            push_to(&env, &fleet.upstream(&repo_name(i)), &format!("repo-{i:02}")),
        );
    }
    push_to(&env, &fleet.upstream("acme/private"), "private");
    push_to(&env, &fleet.upstream("other/tool"), "tool");
    for i in pushed {
        let target = if i == 7 {
            override_mirror.clone()
        } else {
            fleet.mirror(&repo_name(i))
        };
        wait_for(&env, &target, &expected[&i]);
    }
    assert!(
        env.refs(&fleet.mirror(&repo_name(7))).is_empty(),
        "the overridden fleet mirror got nothing"
    );

    // `list` and `status` cover the whole fleet, pushed to or not.
    let list = gpm_ok(&env, &["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), REPOS, "{list}");
    assert!(!list.contains("private") && !list.contains("other/tool"), "{list}");
    let line_of = |i: usize| {
        let repo = fleet.upstream(&repo_name(i));
        *lines
            .iter()
            .find(|l| l.starts_with(&format!("{}\t", path_str(&repo))))
            .unwrap_or_else(|| panic!("{} is not listed:\n{list}", repo.display()))
    };
    assert!(line_of(3).contains(&format!("file://{}\t", path_str(&fleet.mirror(&repo_name(3))))));
    assert!(line_of(3).contains("\tfleet"), "{}", line_of(3));
    assert!(line_of(7).contains(path_str(&override_mirror)));
    assert!(!line_of(7).contains("fleet"), "{}", line_of(7));
    let status: Vec<serde_json::Value> = serde_json::from_str(&gpm_ok(&env, &["status", "--json"])).unwrap();
    assert_eq!(status.len(), REPOS);
    wait_until("the pushed mirrors' updates are recorded", CONVERGE, || {
        let status: Vec<serde_json::Value> = serde_json::from_str(&gpm_ok(&env, &["status", "--json"])).unwrap();
        status.iter().filter(|s| s["update_status"] == "finished").count() == pushed.len()
    });

    // A repository whose hook is gone: `run` finds it under repos_root and the drift scan pushes it.
    let unhooked = fleet.upstream(&repo_name(20));
    gpm_ok(&env, &["uninstall", path_str(&unhooked)]);
    let refs = push_to(&env, &unhooked, "repo-20");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        env.refs(&fleet.mirror(&repo_name(20))).is_empty(),
        "no hook, no push yet"
    );
    gpm_ok(&env, &["run", "--wait"]);
    wait_for(&env, &fleet.mirror(&repo_name(20)), &refs);
    let status: Vec<serde_json::Value> = serde_json::from_str(&gpm_ok(&env, &["status", "--json"])).unwrap();
    let finished = status.iter().filter(|s| s["update_status"] == "finished").count();
    assert_eq!(finished, REPOS, "run reconciled every mirror of the fleet: {status:#?}");
}

#[test]
fn a_fleet_mirror_without_repos_root_or_name_is_a_clear_configuration_error() {
    let env = TestEnv::new();
    write_global_config(
        &env,
        "[mirror.backup]\nrepos = [\"acme/*\"]\nurl = \"file:///m/{name}.git\"\n",
    );
    let out = gpm_output(&env, &["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("repos_root"), "{}", stderr(&out));
    write_global_config(
        &env,
        "repos_root = \"/srv\"\n[mirror.backup]\nrepos = [\"acme/*\"]\nurl = \"file:///m/{repo}.git\"\n",
    );
    let out = gpm_output(&env, &["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("{name}"), "{}", stderr(&out));
}

#[test]
fn the_example_global_configuration_loads_with_its_fleet_mirrors() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.toml");
    let config = git_push_mirror::config::load_global(Some(&file)).unwrap();
    let names: Vec<&str> = config.fleet_mirrors.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["github", "backup"]);
    assert!(config.repos_root.is_some());
}
