//! LFS stores other than the mirror's own: `lfs_url` sends a file mirror's objects to an HTTP LFS
//! server, an SSH mirror's objects go where the host's git-lfs-authenticate says, and objects kept
//! outside the repository are found through `lfs_store`.

use super::*;

#[test]
fn lfs_url_sends_a_file_mirrors_objects_to_an_http_lfs_server_with_the_mirrors_password() {
    if !lfs_and_http_available() {
        return;
    }
    let env = TestEnv::new();
    std::fs::create_dir_all(env.path("srv")).unwrap();
    let server = HttpGitServer::start_with_lfs(&env, &env.path("srv"), USER, PASSWORD);
    let token = secret_file(&env, "mirror.token", PASSWORD, 0o600);
    let lfs_url = format!("http://127.0.0.1:{}/lfs/backup", server.port());
    let mirror = env.bare_repo("mirror.git");
    let url = format!("file://{}", path_str(&mirror));
    let (setup, added) = Setup::add_and_install(
        &env,
        env.bare_repo("upstream.git"),
        &mirror,
        &url,
        &[
            "--username",
            USER,
            "--password-file",
            path_str(&token),
            "--lfs-url",
            &lfs_url,
        ],
    );
    assert!(
        !stderr(&added).contains("never sent a user name or password"),
        "{}",
        stderr(&added)
    );
    // The password is for the LFS endpoint only: the file:// push runs the mirror's hooks.
    let hook_env = env.path("mirror-hook.env");
    write_hook(
        &mirror,
        "pre-receive",
        &format!("#!/bin/sh\ncat >/dev/null\nenv > '{}'\n", hook_env.display()),
    );
    track_lfs(&env, &setup.work);
    let a = commit_lfs_file(&env, &setup.work, "a.bin", "a");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    assert_eq!(
        server.lfs().objects(),
        expected_objects(&[&a]),
        "the objects went to lfs_url"
    );
    assert!(
        local_store(&setup.mirror).is_empty(),
        "not to the file mirror's own store"
    );
    let seen_by_hook = std::fs::read_to_string(&hook_env).expect("the mirror's hook ran");
    assert!(
        !seen_by_hook.contains(PASSWORD),
        "the mirror's hook saw the password:\n{seen_by_hook}"
    );
    let check = gpm_ok(&env, &["check", path_str(&setup.upstream)]);
    assert!(
        check.contains(&format!("lfs: objects go to {lfs_url} (lfs_url)")),
        "{check}"
    );
}

#[test]
fn an_ssh_mirror_gets_its_lfs_objects_where_the_hosts_git_lfs_authenticate_says() {
    if !lfs_and_http_available() || !require_or_skip("sshd", Sshd::available()) {
        return;
    }
    let env = TestEnv::new();
    let sshd = Sshd::start(&env);
    let mirror = env.bare_repo("srv/mirror.git");
    let server = HttpGitServer::start_with_lfs(&env, &env.path("srv"), USER, PASSWORD);
    let known_hosts = env.path("known_hosts");
    std::fs::write(&known_hosts, format!("{}\n", sshd.known_hosts_line())).unwrap();
    let key = env.path("deploy_key");
    let keygen = env
        .cmd("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f", path_str(&key)])
        .output()
        .unwrap();
    crate::support::assert_success(&keygen, "ssh-keygen");

    // As on GitHub, GitLab and Gitea: the deploy key's sessions answer `git-lfs-authenticate`
    // with the LFS endpoint and a token, and run git's own commands.
    let asked = env.path("lfs-authenticate.log");
    let dispatch = env.path("ssh-dispatch");
    let href = format!("{}/info/lfs", server.url("mirror.git"));
    std::fs::write(
        &dispatch,
        format!(
            "#!/bin/sh\ncase \"$SSH_ORIGINAL_COMMAND\" in\n\
             git-lfs-authenticate\\ *)\n  echo \"$SSH_ORIGINAL_COMMAND\" >> '{asked}'\n  \
             printf '{{\"href\": \"%s\", \"header\": {{\"Authorization\": \"Basic %s\"}}, \"expires_in\": 3600}}\\n' \
             '{href}' \"$(printf '%s' '{USER}:{PASSWORD}' | base64)\";;\n\
             git-lfs-transfer\\ *) echo 'git-lfs-transfer: not here' >&2; exit 1;;\n\
             *) exec sh -c \"$SSH_ORIGINAL_COMMAND\";;\nesac\n",
            asked = asked.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&dispatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    sshd.authorize_key(&format!("command=\"{}\" {}", dispatch.display(), public.trim()));

    let flags = ["--ssh-key", path_str(&key), "--known-hosts", path_str(&known_hosts)];
    let setup = Setup::with_url(
        &env,
        env.bare_repo("upstream.git"),
        mirror,
        &sshd.url(&env.path("srv/mirror.git")),
        &flags,
    );
    let config_before = std::fs::read_to_string(setup.upstream.join("config")).unwrap();
    track_lfs(&env, &setup.work);
    let a = commit_lfs_file(&env, &setup.work, "a.bin", "a");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    assert_eq!(server.lfs().objects(), expected_objects(&[&a]));
    let asked = std::fs::read_to_string(&asked).unwrap_or_default();
    assert!(
        asked.contains("git-lfs-authenticate") && asked.contains("upload"),
        "{asked}"
    );
    assert_eq!(
        std::fs::read_to_string(setup.upstream.join("config")).unwrap(),
        config_before
    );
    wait_for_status(&setup, &env, "lfs_status", "ok");
}

#[test]
fn objects_kept_outside_the_repository_by_gitea_or_gitlab_are_found_through_lfs_store() {
    if !lfs_available() {
        return;
    }
    let env = TestEnv::new();
    let shared = env.path("gitea/data/lfs");
    write_global_config(&env, &format!("[defaults]\nlfs_store = \"{}\"\n", shared.display()));
    let setup = Setup::file(&env, &["--lfs-required=true"]);
    track_lfs(&env, &setup.work);
    let a = commit_lfs_file(&env, &setup.work, "a.bin", "a");
    // Pushed with the worker's help only after the objects are where Gitea keeps them:
    // `<data>/lfs/ab/cd/<rest of the oid>`, nothing in the repository.
    gpm_ok(
        &env,
        &["set", path_str(&setup.upstream), "backup", "--enabled", "false"],
    );
    setup.push(&env, &["main"]);
    for (oid, _) in local_store(&setup.upstream) {
        let to = shared.join(&oid[..2]).join(&oid[2..4]).join(&oid[4..]);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let from = setup
            .upstream
            .join("lfs/objects")
            .join(&oid[..2])
            .join(&oid[2..4])
            .join(&oid);
        std::fs::rename(from, to).unwrap();
    }
    std::fs::remove_dir_all(setup.upstream.join("lfs")).unwrap();
    gpm_ok(&env, &["set", path_str(&setup.upstream), "backup", "--enabled", "true"]);
    let sync = gpm_ok(&env, &["sync", path_str(&setup.upstream)]);
    assert!(sync.contains("lfs: ok: 1 object(s)"), "{sync}");
    assert_eq!(env.refs(&setup.mirror), env.refs(&setup.upstream));
    assert_eq!(local_store(&setup.mirror), expected_objects(&[&a]));
    let mirrored = std::fs::read(
        setup
            .mirror
            .join("lfs/objects")
            .join(&a.oid[..2])
            .join(&a.oid[2..4])
            .join(&a.oid),
    )
    .unwrap();
    assert_eq!(mirrored, a.content, "the mirror got the object's bytes, not a link");
}
