//! The mirror's side on forges (docs/mirror-side.md): a repository missing on GitHub,
//! GitLab or Gitea is created through the forge's REST API and pushed to at once, its default
//! branch follows the local one; two workers racing to create it both end well; a name the forge
//! refuses fails with the forge's words, the token redacted. Each forge is a local HTTPS server
//! (`tests/it/support/forge_server.py`) that holds every request and answer to the forge's own API
//! description and serves the repositories it creates through `git http-backend`, so the pushes
//! are real.

use crate::support::binary::*;
use crate::support::procs::SecretWatcher;
use crate::support::{ForgeKind, ForgeServer, ForgeSetup, TestCa, TestEnv, path_str, require_or_skip};
use std::path::{Path, PathBuf};

fn forge_available() -> bool {
    require_or_skip(
        "the forges' API descriptions and python3-jsonschema",
        ForgeServer::available(),
    )
}

/// A forge of `kind` and an upstream repository whose HEAD is `develop`, with a description.
struct World {
    env: TestEnv,
    forge: ForgeServer,
    ca: TestCa,
    upstream: PathBuf,
    work: PathBuf,
    token_file: PathBuf,
}

/// Where each forge's repository goes in these tests: an organization on GitHub, a subgroup on
/// GitLab, the token's own account on Gitea.
fn full_name(kind: ForgeKind, name: &str) -> String {
    match kind {
        ForgeKind::Github => format!("acme/{name}"),
        ForgeKind::Gitlab => format!("acme/sub/{name}"),
        ForgeKind::Gitea => format!("bot/{name}"),
    }
}

impl World {
    fn new(kind: ForgeKind, race: usize) -> World {
        let env = TestEnv::new();
        let ca = TestCa::create(&env, &env.path("ca"));
        let forge = ForgeServer::start(
            &env,
            &ca,
            &ForgeSetup {
                kind,
                login: "bot",
                orgs: &["acme", "acme/sub"],
                race,
            },
        );
        let (upstream, work) = upstream_on_develop(&env);
        std::fs::write(upstream.join("description"), "The acme app\n").unwrap();
        let token_file = secret_file(&env, "forge.token", &forge.token, 0o600);
        World {
            env,
            forge,
            ca,
            upstream,
            work,
            token_file,
        }
    }

    /// Adds mirror `forge` of `upstream` to the forge's `full` repository, with `create`.
    fn add_mirror(&self, upstream: &Path, full: &str) {
        let kind = self.forge.kind();
        let url = self.forge.url(full);
        let mut args = vec![
            "add",
            path_str(upstream),
            "forge",
            &url,
            "--username",
            "bot",
            "--password-file",
            path_str(&self.token_file),
            "--ca-file",
            path_str(&self.ca.ca_file),
            "--create",
            kind.name(),
        ];
        let api_url = self.forge.api_url();
        if kind == ForgeKind::Github {
            // api.github.com is derived for github.com only: this forge says where its API is.
            args.extend(["--api-url", &api_url]);
        }
        gpm_ok(&self.env, &args);
    }

    fn status_json(&self, upstream: &Path) -> serde_json::Value {
        let out = stdout(&gpm_output(&self.env, &["status", "--json", path_str(upstream)]));
        let all: serde_json::Value = serde_json::from_str(&out).unwrap();
        all[0].clone()
    }
}

/// A repository with HEAD `develop` is created on the forge (checked first by `check` and
/// `sync --dry-run`, which create nothing), pushed to in the same update, made `develop` by
/// default after `develop` landed, and follows a HEAD change to `trunk`; every API call is
/// one the forge's description allows, and the token is in no argv, file or output.
fn creates_the_repository_and_keeps_its_default_branch(kind: ForgeKind) {
    if !forge_available() {
        return;
    }
    let world = World::new(kind, 0);
    let (env, forge) = (&world.env, &world.forge);
    let full = full_name(kind, "app");
    world.add_mirror(&world.upstream, &full);
    let repo = path_str(&world.upstream);

    let check = gpm_output(env, &["check", repo]);
    let said = stdout(&check);
    assert!(
        said.contains("the repository does not exist; the first update creates it"),
        "{said}"
    );
    let owner = match kind {
        ForgeKind::Github => "the organization acme",
        ForgeKind::Gitlab => "group namespace acme/sub",
        ForgeKind::Gitea => "the token's own account bot",
    };
    assert!(said.contains(owner), "{said}");
    let dry = gpm_ok(env, &["sync", "--dry-run", repo]);
    assert!(dry.contains("would create the repository"), "{dry}");
    assert!(dry.contains("default branch: would be set to develop"), "{dry}");
    assert!(!forge.repo(&full).exists(), "a dry run creates nothing");
    assert!(
        forge.requests().iter().all(|r| r["method"] != "POST"),
        "check and the dry run only read"
    );

    let argv = SecretWatcher::in_argv(&forge.token);
    let out = gpm_output(env, &["sync", repo]);
    argv.assert_never_seen();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(env.refs(&forge.repo(&full)), env.refs(&world.upstream));
    assert_eq!(forge.head(env, &full), "develop");

    let (create_method, create_operation) = match kind {
        ForgeKind::Github => ("POST", "/orgs/{org}/repos"),
        ForgeKind::Gitlab => ("POST", "/projects"),
        ForgeKind::Gitea => ("POST", "/user/repos"),
    };
    let creates = forge.calls(create_method, create_operation);
    assert_eq!(creates.len(), 1, "{creates:#?}");
    assert_eq!(creates[0]["status"], 201);
    let body = &creates[0]["body"];
    assert_eq!(body["description"], "The acme app");
    match kind {
        ForgeKind::Gitlab => {
            assert_eq!(body["visibility"], "private");
            assert_eq!(body["path"], "app");
        }
        _ => assert_eq!(body["private"], true),
    }
    let (set_method, set_operation) = match kind {
        ForgeKind::Gitlab => ("PUT", "/projects/{id}"),
        _ => ("PATCH", "/repos/{owner}/{repo}"),
    };
    let sets = forge.calls(set_method, set_operation);
    assert_eq!(sets.len(), 1, "{sets:#?}");
    assert_eq!(sets[0]["body"]["default_branch"], "develop");
    // The branch is pushed before it is made the default.
    let requests = forge.requests();
    let push = requests
        .iter()
        .position(|r| r["git"] == "POST" && r["path"].as_str().is_some_and(|p| p.ends_with("/git-receive-pack")))
        .expect("a push reached the forge");
    let set = requests.iter().position(|r| r["operation"] == set_operation).unwrap();
    assert!(push < set, "the default branch was set before the push: {requests:#?}");
    let status = world.status_json(&world.upstream);
    assert!(status["repository_created_at"].is_string(), "{status:#}");
    assert!(status["mirror_default_branch"].is_null(), "{status:#}");

    // HEAD moves to a new branch: the mirror's default follows once it is there.
    env.git(&world.work, &["push", "-q", "origin", "HEAD:refs/heads/trunk"]);
    env.git(&world.upstream, &["symbolic-ref", "HEAD", "refs/heads/trunk"]);
    gpm_ok(env, &["sync", repo]);
    assert_eq!(forge.head(env, &full), "trunk");
    assert_eq!(forge.calls(create_method, create_operation).len(), 1, "created once");
    forge.assert_contract_kept();
    assert_secret_nowhere(env, &world.upstream, &forge.token);
}

#[test]
fn github_creates_the_repository_and_keeps_its_default_branch() {
    creates_the_repository_and_keeps_its_default_branch(ForgeKind::Github);
}

#[test]
fn gitlab_creates_the_repository_and_keeps_its_default_branch() {
    creates_the_repository_and_keeps_its_default_branch(ForgeKind::Gitlab);
}

#[test]
fn gitea_creates_the_repository_and_keeps_its_default_branch() {
    creates_the_repository_and_keeps_its_default_branch(ForgeKind::Gitea);
}

/// Two workers (two repositories with the same content, mirrored to one forge repository) find
/// it missing at the same time: the forge creates it for one and says "already exists" to the
/// other, which carries on; both pushes land.
fn two_workers_creating_one_repository(kind: ForgeKind) {
    if !forge_available() {
        return;
    }
    let world = World::new(kind, 2);
    let (env, forge) = (&world.env, &world.forge);
    let full = full_name(kind, "shared");
    let twin = env.path("twin.git");
    env.git(
        env.root(),
        &["clone", "-q", "--bare", path_str(&world.upstream), path_str(&twin)],
    );
    world.add_mirror(&world.upstream, &full);
    world.add_mirror(&twin, &full);
    let spawn = |repo: &Path| {
        gpm(env)
            .args(["sync", path_str(repo)])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(&world.upstream), spawn(&twin));
    let (a, b) = (first.wait_with_output().unwrap(), second.wait_with_output().unwrap());
    assert!(
        a.status.success() && b.status.success(),
        "both syncs succeed:\n{}{}\n{}{}",
        stdout(&a),
        stderr(&a),
        stdout(&b),
        stderr(&b)
    );
    let operation = match kind {
        ForgeKind::Github => "/orgs/{org}/repos",
        ForgeKind::Gitlab => "/projects",
        ForgeKind::Gitea => "/user/repos",
    };
    let mut statuses: Vec<i64> = forge
        .calls("POST", operation)
        .iter()
        .map(|c| c["status"].as_i64().unwrap())
        .collect();
    statuses.sort();
    let already = match kind {
        ForgeKind::Github => 422,
        ForgeKind::Gitlab => 400,
        ForgeKind::Gitea => 409,
    };
    assert_eq!(
        statuses,
        vec![201, already],
        "one created it, the other was told it exists"
    );
    assert_eq!(env.refs(&forge.repo(&full)), env.refs(&world.upstream));
    for repo in [&world.upstream, &twin] {
        assert_eq!(world.status_json(repo)["update_status"], "finished");
    }
    forge.assert_contract_kept();
}

#[test]
fn github_two_workers_creating_one_repository_both_end_well() {
    two_workers_creating_one_repository(ForgeKind::Github);
}

#[test]
fn gitlab_two_workers_creating_one_repository_both_end_well() {
    two_workers_creating_one_repository(ForgeKind::Gitlab);
}

#[test]
fn gitea_two_workers_creating_one_repository_both_end_well() {
    two_workers_creating_one_repository(ForgeKind::Gitea);
}

/// A name the forge refuses fails the update with the forge's own words, permanent, and the
/// token those words echoed is redacted everywhere.
fn a_refused_name_fails_with_the_forges_words(kind: ForgeKind) {
    if !forge_available() {
        return;
    }
    let world = World::new(kind, 0);
    let (env, forge) = (&world.env, &world.forge);
    let full = full_name(kind, "invalid-name");
    world.add_mirror(&world.upstream, &full);
    let out = gpm_output(env, &["sync", path_str(&world.upstream)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let status = world.status_json(&world.upstream);
    let error = status["last_error"].as_str().unwrap().to_string();
    assert!(
        error.contains("creating it failed") && error.contains("is invalid"),
        "{error}"
    );
    assert!(error.contains("*****") && !error.contains(&forge.token), "{error}");
    assert_eq!(status["failure_class"], "permanent");
    assert!(!forge.repo(&full).exists());
    forge.assert_contract_kept();
    assert_secret_nowhere(env, &world.upstream, &forge.token);
}

#[test]
fn github_a_refused_name_fails_with_the_forges_words() {
    a_refused_name_fails_with_the_forges_words(ForgeKind::Github);
}

#[test]
fn gitlab_a_refused_name_fails_with_the_forges_words() {
    a_refused_name_fails_with_the_forges_words(ForgeKind::Gitlab);
}

#[test]
fn gitea_a_refused_name_fails_with_the_forges_words() {
    a_refused_name_fails_with_the_forges_words(ForgeKind::Gitea);
}

/// Without `create`, a missing repository stays missing: nothing is created, and the failure
/// says how to have it created.
#[test]
fn without_create_a_missing_repository_is_not_created() {
    if !forge_available() {
        return;
    }
    let world = World::new(ForgeKind::Gitea, 0);
    let (env, forge) = (&world.env, &world.forge);
    let url = forge.url("bot/app");
    gpm_ok(
        env,
        &[
            "add",
            path_str(&world.upstream),
            "forge",
            &url,
            "--username",
            "bot",
            "--password-file",
            path_str(&world.token_file),
            "--ca-file",
            path_str(&world.ca.ca_file),
        ],
    );
    let out = gpm_output(env, &["sync", path_str(&world.upstream)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        forge.requests().iter().all(|r| r.get("operation").is_none()),
        "no API call"
    );
    let check = stdout(&gpm_output(env, &["check", path_str(&world.upstream)]));
    assert!(
        check.contains("the repository does not exist") && check.contains("set `create`"),
        "{check}"
    );
}
