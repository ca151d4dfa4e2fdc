//! The HTTPS examples (`examples/github.toml`, `gitlab.toml`, `codecommit.toml`), pointed at a
//! local server, mirror as documented.

use super::*;

// ---------------------------------------------------------------- examples

/// An example file with its mirror's `url` and `password_file` pointed at
/// the local server and token; every other key is kept as it is.
fn localize_example(example: &str, url: &str, password_file: &Path) -> (String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(example);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
    let mirrors = doc["mirror"].as_table_mut().expect("the example has [mirror.NAME]");
    assert_eq!(mirrors.len(), 1, "{example} has one mirror");
    let (name, mirror) = mirrors.iter_mut().next().unwrap();
    let name = name.to_string();
    assert!(
        mirror["url"].as_str().unwrap().starts_with("https://"),
        "{example} uses https"
    );
    mirror["url"] = toml_edit::value(url);
    assert!(mirror.get("password_file").is_some(), "{example} uses a password file");
    mirror["password_file"] = toml_edit::value(path_str(password_file));
    (doc.to_string(), name)
}

/// Installs the localized example in a new upstream, checks it with the real
/// loader and `check`, pushes `branches` and a tag, and waits for the mirror
/// to hold exactly the refs `expect` keeps.
fn mirror_through_example(example: &str, expect: impl Fn(&str) -> bool) -> git_push_mirror::config::MirrorConfig {
    let env = TestEnv::new();
    let raw: toml::Table =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(example))
            .unwrap()
            .parse()
            .unwrap();
    let (_, mirror_table) = raw["mirror"].as_table().unwrap().iter().next().unwrap();
    let username = mirror_table["username"].as_str().unwrap().to_string();
    let token = unique_token("example");
    let http = http_mirror(&env, &username, &token);
    let token_file = secret_file(&env, "token", &token, 0o600);
    let (text, name) = localize_example(example, &http.url, &token_file);
    let upstream = env.bare_repo("upstream.git");
    std::fs::write(upstream.join("push-mirror.toml"), &text).unwrap();

    let global = git_push_mirror::config::GlobalConfig::embedded(&state_base(&env));
    let loaded = git_push_mirror::config::load_repo(&upstream, &global).unwrap_or_else(|e| panic!("{example}: {e}"));
    let mirror = loaded.mirror(&name).unwrap().clone();
    assert_eq!(mirror.username.as_deref(), Some(username.as_str()));
    gpm_ok(&env, &["install", path_str(&upstream)]);
    let check = gpm_ok(&env, &["check", path_str(&upstream)]);
    assert!(check.contains("reachable"), "{check}");

    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["branch", "release/1.0"]);
    env.git(&work, &["branch", "feature"]);
    env.git(&work, &["tag", "v1.0"]);
    env.git(
        &work,
        &["push", "--quiet", "origin", "main", "release/1.0", "feature", "v1.0"],
    );
    let setup = Setup {
        upstream: upstream.clone(),
        mirror: http.repo.clone(),
        work,
    };
    let expected: BTreeMap<String, String> = env.refs(&upstream).into_iter().filter(|(r, _)| expect(r)).collect();
    setup.wait_for_mirror(&env, &expected);
    assert_eq!(http.server.auth_failures(), 0);
    assert_secret_nowhere(&env, &upstream, &token);
    mirror
}

#[test]
fn the_github_example_mirrors_with_a_token_over_basic_auth() {
    if !http_available() {
        return;
    }
    let mirror = mirror_through_example("github.toml", |_| true);
    assert_eq!(mirror.username.as_deref(), Some("acme-bot"));
}

#[test]
fn the_gitlab_example_mirrors_with_oauth2_and_a_token() {
    if !http_available() {
        return;
    }
    let mirror = mirror_through_example("gitlab.toml", |_| true);
    assert_eq!(mirror.username.as_deref(), Some("oauth2"));
}

#[test]
fn the_codecommit_example_mirrors_only_protected_branches() {
    if !http_available() {
        return;
    }
    let protected =
        |r: &str| r == "refs/heads/main" || r.starts_with("refs/heads/release/") || r.starts_with("refs/tags/");
    let mirror = mirror_through_example("codecommit.toml", protected);
    assert!(mirror.rules.protected_only.is_some());
}
