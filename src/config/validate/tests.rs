//! Tests of what the configuration files may hold (`validate.rs`): defaults, relative paths,
//! secrets, fleet mirrors, and the errors that name what is wrong.

use crate::config::load::load_global_with;
use crate::config::load::tests::{
    assert_invalid, assert_syntax, env_of, global_from, no_system_file, repo_err, repo_from, repo_ok, write,
};
use crate::config::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use tempfile::TempDir;

#[test]
fn a_claim_timeout_too_short_to_renew_is_refused_with_the_default_named() {
    assert_eq!(global_from("").unwrap().claim_timeout, Duration::from_secs(600));
    let err = global_from("claim_timeout = \"500ms\"\n").unwrap_err().to_string();
    assert!(
        err.contains("claim_timeout") && err.contains("\"1s\"") && err.contains("\"10m\""),
        "{err}"
    );
}

#[test]
fn global_file_values_and_relative_paths() {
    let config = global_from(
        r#"
spool_dir = "spool"
state_dir = "/var/lib/gpm/state"
log_file = "logs/gpm.log"
log_level = "Debug"
silent_mode = true
max_parallel = 8
allowed_protocols = ["https", "ssh"]
repos_root = "../repos"
worker_linger = "2m"
claim_timeout = "90s"

[defaults]
only_protected_branches = true
branches = ["main"]
tags = ["v*"]
refs = ["refs/notes/*"]
ssh_key = "keys/id_ed25519"
ca_file = "certs/corp-ca.pem"
delay = "500ms"
min_interval = "1m"
timeout = "1h"

[retry]
initial = "1s"
max = "30s"
fail_after = 2
jitter = false
permanent_retry = "2h"
"#,
    )
    .unwrap();
    let dir = config.source.as_ref().unwrap().parent().unwrap().to_path_buf();
    assert_eq!(config.spool_dir, dir.join("spool"));
    assert_eq!(config.state_dir, Path::new("/var/lib/gpm/state"));
    assert_eq!(config.log_file, dir.join("logs/gpm.log"));
    assert_eq!(config.repos_root, Some(dir.join("../repos")));
    assert_eq!(config.log_level, log::LevelFilter::Debug);
    assert!(config.silent_mode);
    assert_eq!(config.max_parallel, 8);
    assert_eq!(config.allowed_protocols, ["https", "ssh"]);
    assert_eq!(config.worker_linger, Duration::from_secs(120));
    assert_eq!(config.claim_timeout, Duration::from_secs(90));
    let d = &config.defaults;
    assert!(d.only_protected_branches);
    assert_eq!(d.branches, Some(vec!["main".to_string()]));
    assert_eq!(d.tags, TagSelection::Matching(vec!["v*".into()]));
    assert_eq!(d.refs, ["refs/notes/*"]);
    assert_eq!(d.ssh_key, Some(dir.join("keys/id_ed25519")));
    assert_eq!(d.ca_file, Some(dir.join("certs/corp-ca.pem")));
    assert_eq!(d.delay, Some(Duration::from_millis(500)));
    assert_eq!(d.min_interval, Duration::from_secs(60));
    assert_eq!(d.timeout, Duration::from_secs(3600));
    assert_eq!(
        config.retry,
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            fail_after: 2,
            jitter: false,
            permanent_retry: Duration::from_secs(7200),
        }
    );
}

#[test]
fn defaults_must_not_name_a_mirror_or_its_secrets() {
    for key in [
        "url",
        "username",
        "password",
        "password_file",
        "password_env",
        "lfs_url",
        "repos",
    ] {
        let value = if key == "repos" { "[\"x\"]" } else { "\"x\"" };
        let err = global_from(&format!("[defaults]\n{key} = {value}\n")).unwrap_err();
        assert_invalid(err, &format!("`{key}`"));
    }
}

#[test]
fn prune_unmerged_is_off_by_default_and_set_per_mirror_or_in_defaults() {
    let config = repo_ok(
        "[mirror.a]\nurl = \"https://h/a.git\"\n[mirror.b]\nurl = \"https://h/b.git\"\nprune_unmerged = true\n",
    );
    assert!(!config.mirrors[0].rules.prune_unmerged);
    assert!(config.mirrors[1].rules.prune_unmerged);
    let global = global_from("[defaults]\nprune_unmerged = true\n").unwrap();
    assert!(global.defaults.prune_unmerged);
    assert!(!GlobalConfig::embedded(Path::new("/s")).defaults.prune_unmerged);
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo.git");
    write(
        &repo.join(REPO_CONFIG_FILE),
        "[mirror.a]\nurl = \"https://h/a.git\"\n[mirror.b]\nurl = \"https://h/b.git\"\nprune_unmerged = false\n",
        0o600,
    );
    let config = load_repo(&repo, &global).unwrap();
    assert!(config.mirrors[0].rules.prune_unmerged, "from [defaults]");
    assert!(!config.mirrors[1].rules.prune_unmerged, "the mirror's own setting wins");
}

#[test]
fn lfs_settings_default_to_auto_and_required_and_are_checked() {
    let config = repo_ok("[mirror.a]\nurl = \"https://h/a.git\"\n");
    assert_eq!(config.mirrors[0].lfs, LfsSettings::default());
    assert_eq!(LfsSettings::default().mode, LfsMode::Auto);
    assert!(LfsSettings::default().required);

    let config = repo_ok(
        "[mirror.a]\nurl = \"git@h:a.git\"\nlfs = \"on\"\nlfs_required = false\n\
         lfs_url = \"https://lfs.h/a.git/info/lfs\"\n",
    );
    let lfs = &config.mirrors[0].lfs;
    assert_eq!(lfs.mode, LfsMode::On);
    assert!(!lfs.required);
    assert_eq!(lfs.url.as_deref(), Some("https://lfs.h/a.git/info/lfs"));

    let global =
        global_from("[defaults]\nlfs = \"off\"\nlfs_required = false\nlfs_store = \"/srv/gitea/data/lfs\"\n").unwrap();
    assert_eq!(global.defaults.lfs, LfsMode::Off);
    assert!(!global.defaults.lfs_required);
    assert_eq!(
        global.defaults.lfs_store.as_deref(),
        Some(Path::new("/srv/gitea/data/lfs"))
    );

    let err = repo_err("[mirror.a]\nurl = \"https://h/a.git\"\nlfs = \"yes\"\n", 0o644);
    assert_syntax(err, 3, 7, "unknown variant `yes`");
    for (url, needle) in [
        ("ssh://h/a.git", "must be an https://"),
        (
            "https://u:p@h/a.git/info/lfs",
            "must not contain a user name or password",
        ),
    ] {
        let err = repo_err(
            &format!("[mirror.a]\nurl = \"https://h/a.git\"\nlfs_url = \"{url}\"\n"),
            0o600,
        );
        assert_invalid(err, needle);
    }
}

#[test]
fn empty_paths_are_refused() {
    assert_invalid(
        global_from("spool_dir = \"\"\n").unwrap_err(),
        "`spool_dir` must not be empty",
    );
    assert_invalid(global_from("[defaults]\nssh_key = \"\"\n").unwrap_err(), "`ssh_key`");
    assert_invalid(
        repo_err("[mirror.a]\nurl = \"https://h/a.git\"\nknown_hosts = \"\"\n", 0o644),
        "[mirror.a] `known_hosts` must not be empty",
    );
}

#[test]
fn retry_policy_is_checked() {
    assert_invalid(global_from("[retry]\ninitial = \"0s\"\n").unwrap_err(), "initial");
    assert_invalid(
        global_from("[retry]\ninitial = \"1h\"\nmax = \"1m\"\n").unwrap_err(),
        "`max`",
    );
    assert_invalid(
        global_from("[retry]\npermanent_retry = \"0s\"\n").unwrap_err(),
        "permanent_retry",
    );
}

#[test]
fn fleet_mirrors_are_kept_parsed() {
    let config = global_from(
        "repos_root = \"/srv/git\"\n[mirror.github]\nrepos = [\"acme/*\"]\nurl = \"git@github.com:acme/{name}.git\"\nssh_key = \"k\"\n",
    )
    .unwrap();
    let dir = config.source.as_ref().unwrap().parent().unwrap();
    assert_eq!(config.fleet_mirrors.len(), 1);
    let fleet = &config.fleet_mirrors[0];
    assert_eq!(fleet.name, "github");
    assert_eq!(fleet.repos, ["acme/*"]);
    assert_eq!(fleet.settings.url.as_deref(), Some("git@github.com:acme/{name}.git"));
    assert_eq!(fleet.settings.ssh_key, Some(dir.join("k")));
    assert_eq!(fleet.settings.repos, None);

    let err = global_from("[mirror.github]\nurl = \"https://h/{name}.git\"\n").unwrap_err();
    assert_invalid(err, "repos");
    let err = global_from("[mirror.github]\nrepos = [\"*\"]\n").unwrap_err();
    assert_invalid(err, "url");
    let err = global_from("[mirror.\"bad name\"]\nrepos = [\"*\"]\nurl = \"x\"\n").unwrap_err();
    assert_invalid(err, "invalid mirror name");
}

#[test]
fn fleet_mirrors_need_repos_root_a_name_placeholder_and_a_real_pattern() {
    let err = global_from("[mirror.g]\nrepos = [\"*\"]\nurl = \"file:///m/{name}.git\"\n").unwrap_err();
    assert_invalid(err, "repos_root");
    let err =
        global_from("repos_root = \"/srv\"\n[mirror.g]\nrepos = [\"*\"]\nurl = \"file:///m/one.git\"\n").unwrap_err();
    assert_invalid(err, "{name}");
    let err =
        global_from("repos_root = \"/srv\"\n[mirror.g]\nrepos = [\"!x\"]\nurl = \"file:///m/{name}\"\n").unwrap_err();
    assert_invalid(err, "exclusion");
}

/// A fleet root with `acme/app.git`, a global config whose fleet mirror
/// matches `acme/*`, and the repository's path.
fn fleet(global_text: &str, repo_text: Option<&str>) -> (TempDir, PathBuf, Result<RepoConfig, ConfigError>) {
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("srv/acme/app.git");
    fs::create_dir_all(&repo).unwrap();
    if let Some(text) = repo_text {
        write(&repo.join(REPO_CONFIG_FILE), text, 0o600);
    }
    let file = dir.path().join("config.toml");
    write(&file, &format!("repos_root = \"srv\"\n{global_text}"), 0o600);
    let env = env_of(&[("HOME", dir.path())]);
    let global = load_global_with(Some(&file), &env, &no_system_file(&dir)).unwrap();
    let loaded = load_repo(&repo, &global);
    (dir, repo, loaded)
}

#[test]
fn fleet_mirrors_apply_to_matching_repositories_with_the_name_substituted() {
    let global = "[defaults]\ndelay = \"3s\"\n[mirror.github]\nrepos = [\"acme/*\"]\nurl = \"git@github.com:acme-mirror/{name}.git\"\nbranches = [\"main\"]\n[mirror.other]\nrepos = [\"other/*\"]\nurl = \"file:///m/{name}\"\n";
    let (_dir, _repo, loaded) = fleet(global, None);
    let config = loaded.unwrap();
    assert_eq!(config.mirrors.len(), 1, "{config:#?}");
    let mirror = &config.mirrors[0];
    assert_eq!(mirror.name, "github");
    assert_eq!(mirror.url, "git@github.com:acme-mirror/acme/app.git");
    assert_eq!(mirror.rules.branch_patterns, Some(vec!["main".to_string()]));
    assert_eq!(mirror.delay, Some(Duration::from_secs(3)), "global defaults apply");
    assert_eq!(config.fleet_mirrors, ["github"]);

    // The repository's own mirrors come first; protected_branches are the repository's.
    let (_dir, _repo, loaded) = fleet(
        "[mirror.github]\nrepos = [\"acme/*\"]\nurl = \"file:///m/{name}\"\nonly_protected_branches = true\n",
        Some("protected_branches = [\"rel/*\"]\n[mirror.backup]\nurl = \"file:///b.git\"\n"),
    );
    let config = loaded.unwrap();
    let names: Vec<_> = config.mirrors.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["backup", "github"]);
    assert_eq!(config.mirrors[1].rules.protected_only, Some(vec!["rel/*".to_string()]));
}

#[test]
fn a_repository_mirror_of_the_same_name_replaces_the_fleet_mirror_entirely() {
    let (_dir, _repo, loaded) = fleet(
        "[mirror.github]\nrepos = [\"acme/*\"]\nurl = \"file:///m/{name}\"\nbranches = [\"main\"]\nkeep_divergent_refs = true\n",
        Some("[mirror.github]\nurl = \"file:///override.git\"\n"),
    );
    let config = loaded.unwrap();
    assert_eq!(config.mirrors.len(), 1);
    assert_eq!(config.mirrors[0].url, "file:///override.git");
    assert_eq!(
        config.mirrors[0].rules.branch_patterns, None,
        "nothing is merged from the fleet mirror"
    );
    assert!(!config.mirrors[0].rules.keep_divergent_refs);
    assert!(config.fleet_mirrors.is_empty());
}

#[test]
fn fleet_mirrors_skip_excluded_and_outside_repositories() {
    let (_dir, _repo, loaded) = fleet(
        "[mirror.g]\nrepos = [\"acme/*\", \"!acme/app\"]\nurl = \"file:///m/{name}\"\n",
        None,
    );
    assert!(loaded.unwrap().mirrors.is_empty());
    let (dir, _repo, _) = fleet("[mirror.g]\nrepos = [\"*\"]\nurl = \"file:///m/{name}\"\n", None);
    let outside = dir.path().join("elsewhere.git");
    let file = dir.path().join("config.toml");
    let env = env_of(&[("HOME", dir.path())]);
    let global = load_global_with(Some(&file), &env, &no_system_file(&dir)).unwrap();
    assert!(load_repo(&outside, &global).unwrap().mirrors.is_empty());
}

#[test]
fn a_fleet_mirror_that_does_not_resolve_names_the_global_file_and_the_repository() {
    let (dir, _repo, loaded) = fleet("[mirror.g]\nrepos = [\"*\"]\nurl = \"ext::{name}\"\n", None);
    let err = loaded.unwrap_err();
    assert_eq!(err.path(), dir.path().join("config.toml"));
    assert!(err.to_string().contains("for repository acme/app"), "{err}");
}

#[test]
fn global_file_with_inline_password_must_be_private() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("config.toml");
    let text =
        "repos_root = \"/srv\"\n[mirror.g]\nrepos = [\"*\"]\nurl = \"https://h/{name}.git\"\npassword = \"s3cret\"\n";
    let env = env_of(&[("HOME", dir.path())]);
    write(&file, text, 0o644);
    let err = load_global_with(Some(&file), &env, &no_system_file(&dir)).unwrap_err();
    assert_invalid(err, "chmod 600");
    write(&file, text, 0o600);
    assert!(load_global_with(Some(&file), &env, &no_system_file(&dir)).is_ok());
    let in_url = "repos_root = \"/srv\"\n[mirror.g]\nrepos = [\"*\"]\nurl = \"https://u:s3cret@h/{name}.git\"\n";
    write(&file, in_url, 0o644);
    let err = load_global_with(Some(&file), &env, &no_system_file(&dir)).unwrap_err();
    assert_invalid(err, "chmod 600");
}

#[test]
fn repo_mirror_with_defaults_applied() {
    let config = repo_ok("[mirror.github]\nurl = \"https://github.com/acme/app.git\"\n");
    let m = &config.mirrors[0];
    assert_eq!(m.name, "github");
    assert_eq!(m.url, "https://github.com/acme/app.git");
    assert!(m.enabled);
    assert_eq!(m.rules, MirrorRules::default());
    assert_eq!((m.username.clone(), m.password.clone()), (None, None));
    assert_eq!(m.delay, None);
    assert_eq!(m.min_interval, Duration::ZERO);
    assert_eq!(m.timeout, Duration::from_secs(600));
    assert_eq!(config.mirror("github"), Some(m));
    assert_eq!(config.mirror("gitlab"), None);
}

#[test]
fn mirrors_keep_file_order() {
    let config = repo_ok(
        "[mirror.zeta]\nurl = \"https://h/z.git\"\n[mirror.alpha]\nurl = \"https://h/a.git\"\n[mirror.mid]\nurl = \"https://h/m.git\"\n",
    );
    let names: Vec<_> = config.mirrors.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
}

#[test]
fn global_defaults_apply_to_repo_mirrors() {
    let dir = TempDir::new().unwrap();
    let mut global = GlobalConfig::embedded(dir.path());
    global.defaults.tags = TagSelection::None;
    global.defaults.branches = Some(vec!["main".into()]);
    global.defaults.delay = Some(Duration::from_secs(3));
    global.defaults.ssh_key = Some("/keys/id".into());
    global.defaults.ca_file = Some("/certs/corp.pem".into());
    global.defaults.enabled = false;
    let repo = dir.path().join("r.git");
    write(
        &repo.join(REPO_CONFIG_FILE),
        "[mirror.a]\nurl = \"https://h/a.git\"\n[mirror.b]\nurl = \"https://h/b.git\"\ntags = true\nbranches = [\"dev\"]\nenabled = true\ndelay = \"0s\"\nca_file = \"own.pem\"\n",
        0o644,
    );
    let config = load_repo(&repo, &global).unwrap();
    let (a, b) = (&config.mirrors[0], &config.mirrors[1]);
    assert_eq!(a.rules.tags, TagSelection::None);
    assert_eq!(a.rules.branch_patterns, Some(vec!["main".to_string()]));
    assert_eq!(a.delay, Some(Duration::from_secs(3)));
    assert_eq!(a.ssh_key, Some(PathBuf::from("/keys/id")));
    assert_eq!(a.ca_file, Some(PathBuf::from("/certs/corp.pem")));
    assert_eq!(b.ca_file, Some(repo.join("own.pem")), "relative to the repository");
    assert!(!a.enabled);
    assert_eq!(b.rules.tags, TagSelection::All);
    assert_eq!(b.rules.branch_patterns, Some(vec!["dev".to_string()]));
    assert_eq!(b.delay, Some(Duration::ZERO));
    assert!(b.enabled);
}

#[test]
fn tags_accept_bool_and_list() {
    let config = repo_ok(
        "[mirror.a]\nurl = \"https://h/a.git\"\ntags = false\n\
         [mirror.b]\nurl = \"https://h/b.git\"\ntags = true\n\
         [mirror.c]\nurl = \"https://h/c.git\"\ntags = [\"v*\", \"release-*\"]\n",
    );
    let tags: Vec<_> = config.mirrors.iter().map(|m| m.rules.tags.clone()).collect();
    assert_eq!(
        tags,
        [
            TagSelection::None,
            TagSelection::All,
            TagSelection::Matching(vec!["v*".into(), "release-*".into()])
        ]
    );
}

#[test]
fn protected_only_uses_the_repository_patterns() {
    let config = repo_ok(
        "protected_branches = [\"main\", \"release/*\"]\n\
         [mirror.a]\nurl = \"https://h/a.git\"\nonly_protected_branches = true\nkeep_divergent_refs = true\nrefs = [\"refs/notes/*\"]\n\
         [mirror.b]\nurl = \"https://h/b.git\"\n",
    );
    assert_eq!(config.protected_branches, ["main", "release/*"]);
    let a = &config.mirrors[0].rules;
    assert_eq!(
        a.protected_only,
        Some(vec!["main".to_string(), "release/*".to_string()])
    );
    assert!(a.keep_divergent_refs);
    assert_eq!(a.extra_refs, ["refs/notes/*"]);
    assert_eq!(config.mirrors[1].rules.protected_only, None);

    // No protected branches: protected-only selects nothing (the planner warns).
    let config = repo_ok("[mirror.a]\nurl = \"https://h/a.git\"\nonly_protected_branches = true\n");
    assert_eq!(config.mirrors[0].rules.protected_only, Some(vec![]));
}

#[test]
fn semantic_errors_in_repo_files() {
    assert_invalid(
        repo_err("[mirror.a]\nenabled = true\n", 0o644),
        "[mirror.a] needs a `url`",
    );
    assert_invalid(repo_err("[mirror.a]\nurl = \"\"\n", 0o644), "url");
    assert_invalid(
        repo_err("[mirror.\"-a\"]\nurl = \"https://h/a.git\"\n", 0o644),
        "invalid mirror name \"-a\"",
    );
    assert_invalid(
        repo_err("[mirror.a]\nurl = \"https://h/a.git\"\nrepos = [\"*\"]\n", 0o644),
        "`repos`",
    );
    assert_invalid(
        repo_err(
            "[mirror.a]\nurl = \"https://h/a.git\"\npassword_env = \"T\"\npassword_file = \"/t\"\n",
            0o600,
        ),
        "only one of",
    );
    assert_invalid(
        repo_err("[mirror.a]\nurl = \"ext::sh -c touch% /tmp/pwned\"\n", 0o644),
        "ext::",
    );
    assert_invalid(
        repo_err("[mirror.a]\nurl = \"https://h/a.git\"\nrefs = [\"notes/*\"]\n", 0o644),
        "full ref name",
    );
    assert_invalid(
        repo_err(
            "[mirror.a]\nurl = \"https://h/a.git\"\nrefs = [\"refs/heads/*\"]\n",
            0o644,
        ),
        "`branches`",
    );
    assert_invalid(
        repo_err("[mirror.a]\nurl = \"https://h/a.git\"\ntimeout = \"0s\"\n", 0o644),
        "timeout",
    );
}

#[test]
fn inline_password_needs_a_private_file() {
    let text = "[mirror.a]\nurl = \"https://h/a.git\"\nusername = \"bot\"\npassword = \"s3cret\"\n";
    let two = format!("{text}[mirror.b]\nurl = \"https://h/b.git\"\n");
    for mode in [0o644, 0o640, 0o604] {
        let (dir, loaded) = repo_from(&two, mode);
        // The mirror with the password is faulted; the other one goes on.
        let config = loaded.unwrap();
        let file = dir.path().join("repo.git").join(REPO_CONFIG_FILE);
        assert_eq!(
            config.mirrors[0].fault,
            Some(format!(
                "its inline password is in {0}, which is readable by group/others; run: chmod 600 {0}",
                file.display()
            ))
        );
        assert_eq!(config.mirrors[1].fault, None);
        assert!(!format!("{config:?}").contains("s3cret"));
    }
    let config = repo_ok(text);
    assert_eq!(config.mirrors[0].username.as_deref(), Some("bot"));
    assert_eq!(config.mirrors[0].password, Some(SecretSource::Inline("s3cret".into())));
}

#[test]
fn password_in_url_is_split_out_and_treated_as_inline() {
    let text = "[mirror.a]\nurl = \"https://bot:s3cret@h/a.git\"\n";
    let (_dir, loaded) = repo_from(text, 0o644);
    assert!(loaded.unwrap().mirrors[0].fault.as_ref().unwrap().contains("chmod 600"));
    let config = repo_ok(text);
    let m = &config.mirrors[0];
    assert_eq!(m.url, "https://h/a.git");
    assert_eq!(m.username.as_deref(), Some("bot"));
    assert_eq!(m.password, Some(SecretSource::Inline("s3cret".into())));

    // A user name alone is no secret and stays in the URL.
    let config = repo_ok("[mirror.a]\nurl = \"https://bot@h/a.git\"\n");
    assert_eq!(config.mirrors[0].url, "https://bot@h/a.git");
    assert_eq!(config.mirrors[0].password, None);

    let err = repo_err(
        "[mirror.a]\nurl = \"https://bot:s3cret@h/a.git\"\npassword_env = \"T\"\n",
        0o600,
    );
    assert_invalid(err, "password both");
}

#[test]
fn password_file_must_be_private_and_paths_are_relative_to_the_repo() {
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo.git");
    let token = repo.join("secrets/token");
    write(&token, "s3cret\n", 0o640);
    write(
        &repo.join(REPO_CONFIG_FILE),
        "[mirror.a]\nurl = \"https://h/a.git\"\npassword_file = \"secrets/token\"\nssh_key = \"keys/id\"\nknown_hosts = \"/etc/ssh/known\"\n",
        0o644,
    );
    let global = GlobalConfig::embedded(dir.path());
    let fault = load_repo(&repo, &global).unwrap().mirrors.remove(0).fault.unwrap();
    assert!(
        fault.contains(&format!("run: chmod 600 {}", token.display())),
        "{fault}"
    );

    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
    let m = load_repo(&repo, &global).unwrap().mirrors.remove(0);
    assert_eq!(m.fault, None);
    assert_eq!(m.password, Some(SecretSource::File(token)));
    assert_eq!(m.ssh_key, Some(repo.join("keys/id")));
    assert_eq!(m.known_hosts, Some(PathBuf::from("/etc/ssh/known")));

    // A password file that does not exist yet is reported when it is used.
    write(
        &repo.join(REPO_CONFIG_FILE),
        "[mirror.a]\nurl = \"https://h/a.git\"\npassword_file = \"/nonexistent/token\"\npassword_env = \"X\"\n",
        0o644,
    );
    assert_invalid(load_repo(&repo, &global).unwrap_err(), "only one of");
}

#[test]
fn shared_group_names_an_existing_group() {
    let config = global_from("shared_group = \"root\"\n").unwrap();
    assert_eq!(config.shared_group.map(|g| g.gid), Some(0));
    assert_invalid(
        global_from("shared_group = \"no-such-group-gpm\"\n").unwrap_err(),
        "groupadd no-such-group-gpm",
    );
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let inline = SecretSource::Inline("s3cret".into());
    assert_eq!(format!("{inline:?}"), "Inline(\"*****\")");
    assert_eq!(format!("{:?}", SecretSource::Env("TOKEN".into())), "Env(\"TOKEN\")");
    let config = repo_ok("[mirror.a]\nurl = \"https://u:s3cret@h/a.git\"\n");
    assert!(!format!("{config:?}").contains("s3cret"));
    let settings = MirrorSettings {
        password: Some(Secret::new("s3cret".into())),
        ..MirrorSettings::default()
    };
    assert!(!format!("{settings:?}").contains("s3cret"));
}
