//! A real gitolite: the common hook reaches new repositories, survives setup and chains the admin's
//! hook; repo-specific hooks; and wild repositories created for a mirror.

use super::*;

// ---------------------------------------------------------------------------
// gitolite

fn gitolite_available() -> Result<(), String> {
    let found = Command::new("gitolite")
        .arg("query-rc")
        .arg("-h")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        return Err("`gitolite` is not on PATH (install Debian's gitolite3)".into());
    }
    let keygen = Command::new("ssh-keygen")
        .arg("-?")
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !keygen {
        return Err("ssh-keygen is not on PATH (install openssh-client)".into());
    }
    Ok(())
}

/// A gitolite instance in the test's HOME, reached the way sshd would reach it.
struct Gitolite<'a> {
    env: &'a TestEnv,
    /// A stand-in for `ssh` + sshd: runs the forced command of the admin's
    /// authorized_keys line with SSH_ORIGINAL_COMMAND set to what git asked for.
    ssh: PathBuf,
    /// A work clone of gitolite-admin.
    admin: PathBuf,
    /// `gitolite-shell`, the program sshd's forced command runs.
    shell: String,
}

impl<'a> Gitolite<'a> {
    /// `gitolite setup -pk admin.pub` with a fresh ed25519 key, then a clone of gitolite-admin.
    fn setup(env: &'a TestEnv) -> Gitolite<'a> {
        let home = env.home();
        let key = home.join("admin");
        let out = env
            .cmd("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "admin", "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert_success(&out, "ssh-keygen");
        gitolite_ok(env, &["setup", "-pk", "admin.pub"]);
        // The command sshd would run for this key, from the line gitolite wrote.
        let keys = fs::read_to_string(home.join(".ssh/authorized_keys")).unwrap();
        let forced = keys
            .lines()
            .find_map(|l| l.strip_prefix("command=\"")?.split('"').next())
            .expect("gitolite wrote a command=\"…\" line to authorized_keys")
            .to_string();
        assert!(forced.contains("gitolite-shell admin"), "{forced}");
        let ssh = env.path("gitolite-ssh");
        fs::write(
            &ssh,
            format!(
                "#!/bin/sh\n# git runs: gitolite-ssh HOST COMMAND. sshd would run the forced command with\n\
                 # SSH_ORIGINAL_COMMAND and SSH_CONNECTION set.\nfor arg; do cmd=$arg; done\n\
                 SSH_CONNECTION='127.0.0.1 40000 127.0.0.1 22' SSH_ORIGINAL_COMMAND=$cmd exec {forced}\n"
            ),
        )
        .unwrap();
        fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let shell = forced
            .rsplit_once(' ')
            .map_or(forced.as_str(), |(program, _)| program)
            .to_string();
        let gitolite = Gitolite {
            env,
            ssh,
            admin: env.path("gitolite-admin"),
            shell,
        };
        gitolite.git(
            env.root(),
            &["clone", "-q", "gitolite:gitolite-admin", path_str(&gitolite.admin)],
        );
        gitolite
    }

    fn repo_base(&self) -> PathBuf {
        self.env.home().join("repositories")
    }

    fn repo(&self, name: &str) -> PathBuf {
        self.repo_base().join(format!("{name}.git"))
    }

    /// Runs git with gitolite as its ssh.
    fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = self
            .env
            .cmd("git")
            .current_dir(dir)
            .env("GIT_SSH_COMMAND", &self.ssh)
            .env("GIT_SSH_VARIANT", "simple")
            .args(args)
            .output()
            .unwrap();
        assert_success(&out, &format!("git {} (through gitolite)", args.join(" ")));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Appends `text` to gitolite.conf and pushes gitolite-admin (gitolite compiles it and creates repositories).
    fn add_conf(&self, text: &str) {
        let conf = self.admin.join("conf/gitolite.conf");
        let mut current = fs::read_to_string(&conf).unwrap();
        current.push_str(text);
        fs::write(&conf, current).unwrap();
        self.git(&self.admin, &["commit", "-qam", "conf"]);
        // gitolite 3 compiles only what lands on gitolite-admin's master.
        self.git(&self.admin, &["push", "-q", "origin", "HEAD:master"]);
    }

    /// Clones a gitolite repository through gitolite.
    fn clone(&self, name: &str, dir: &str) -> PathBuf {
        let work = self.env.path(dir);
        self.git(
            self.env.root(),
            &["clone", "-q", &format!("gitolite:{name}"), path_str(&work)],
        );
        work
    }
}

fn gitolite_ok(env: &TestEnv, args: &[&str]) -> String {
    let out = env.cmd("gitolite").current_dir(env.home()).args(args).output().unwrap();
    assert_success(&out, &format!("gitolite {}", args.join(" ")));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A global configuration whose fleet mirror sends `acme/*` to `<root>/mirrors/{name}.git`.
fn fleet_config(env: &TestEnv, repos_root: &Path) {
    write_global_config(
        env,
        &format!(
            "repos_root = \"{}\"\n[defaults]\ndelay = \"0s\"\n\n[mirror.backup]\nrepos = [\"acme/*\"]\nurl = \"file://{}/mirrors/{{name}}.git\"\n",
            path_str(repos_root),
            path_str(env.root())
        ),
    );
}

fn mirror_of(env: &TestEnv, name: &str) -> PathBuf {
    let mirror = env.path(format!("mirrors/{name}.git"));
    if !mirror.exists() {
        fs::create_dir_all(&mirror).unwrap();
        env.git(&mirror, &["init", "-q", "--bare"]);
    }
    mirror
}

#[test]
fn gitolite_common_hook_reaches_new_repositories_survives_setup_and_chains_the_admins_hook() {
    if !require_or_skip("gitolite", gitolite_available()) {
        return;
    }
    let env = TestEnv::new();
    let gitolite = Gitolite::setup(&env);
    // The admin already runs a common post-receive of their own under LOCAL_CODE.
    let rc = env.home().join(".gitolite.rc");
    let text = fs::read_to_string(&rc).unwrap();
    let enabled = text.replacen(
        "# LOCAL_CODE                =>  \"$ENV{HOME}/local\"",
        "LOCAL_CODE => \"$ENV{HOME}/local\"",
        1,
    );
    assert_ne!(text, enabled, "the default rc has the LOCAL_CODE line");
    fs::write(&rc, enabled).unwrap();
    let admins_log = env.path("admins-hook.log");
    let admins_hook = format!("#!/bin/sh\ncat >> '{}'\n", admins_log.display());
    let common = env.home().join("local/hooks/common");
    fs::create_dir_all(&common).unwrap();
    write_executable(&common.join("post-receive"), &admins_hook);
    gitolite_ok(&env, &["setup", "--hooks-only"]);

    fleet_config(&env, &gitolite.repo_base());
    let installed = gpm_ok(&env, &["install", "--gitolite"]);
    assert!(installed.contains("kept as"), "{installed}");

    // A repository created afterwards by gitolite (from gitolite.conf) gets the hook too.
    gitolite.add_conf("\nrepo acme/app\n    RW+ = admin\n");
    let upstream = gitolite.repo("acme/app");
    let link = fs::read_link(upstream.join("hooks/post-receive")).unwrap();
    assert_eq!(link, common.join("post-receive"));
    let mirror = mirror_of(&env, "acme/app");

    let work = gitolite.clone("acme/app", "work");
    let first = env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["tag", "-a", "v1", "-m", "v1"]);
    gitolite.git(&work, &["push", "-q", "origin", "main", "v1"]);
    wait_mirrored(&env, &upstream, &mirror);
    let seen = fs::read_to_string(&admins_log).unwrap();
    assert!(seen.contains(&format!("{first} refs/heads/main")), "{seen}");
    assert!(
        seen.contains("refs/tags/v1"),
        "the admin's hook got the whole input: {seen}"
    );

    // `gitolite setup` (as after an upgrade) keeps the hook in place.
    gitolite_ok(&env, &["setup"]);
    assert_eq!(
        fs::read_link(upstream.join("hooks/post-receive")).unwrap(),
        common.join("post-receive")
    );
    let second = env.commit(&work, "b.txt", "two", "second");
    gitolite.git(&work, &["push", "-q", "origin", "main"]);
    wait_mirrored(&env, &upstream, &mirror);
    let seen = fs::read_to_string(&admins_log).unwrap();
    assert!(seen.contains(&format!("{first} {second} refs/heads/main")), "{seen}");

    // `check` finds the common hook through gitolite's link, and the binary it runs.
    let check = gpm_ok(&env, &["check", path_str(&upstream)]);
    assert!(
        check.contains(&format!(
            "hook {}: runs {}",
            upstream.join("hooks/post-receive").display(),
            env!("CARGO_BIN_EXE_git-push-mirror")
        )),
        "{check}"
    );

    // Naming repositories (as for plain installs) checks that they are gitolite's.
    let again = gpm_ok(&env, &["install", "--gitolite", path_str(&upstream)]);
    assert!(again.contains(&format!("{}: covered", path_str(&upstream))), "{again}");
    let elsewhere = env.bare_repo("elsewhere.git");
    let out = gpm_output(&env, &["install", "--gitolite", path_str(&elsewhere)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("GL_REPO_BASE"), "{}", stderr(&out));
    let out = gpm_output(&env, &["uninstall", "--gitolite", path_str(&upstream)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // Uninstalling puts the admin's hook back where gitolite links from.
    gpm_ok(&env, &["uninstall", "--gitolite"]);
    assert_eq!(fs::read_to_string(common.join("post-receive")).unwrap(), admins_hook);
    assert!(!env.home().join("local/hooks/post-receive.before-push-mirror").exists());
}

#[test]
fn gitolite_repo_specific_hook_runs_for_repositories_with_the_option() {
    if !require_or_skip("gitolite", gitolite_available()) {
        return;
    }
    let env = TestEnv::new();
    let gitolite = Gitolite::setup(&env);
    fleet_config(&env, &gitolite.repo_base());
    let installed = gpm_ok(&env, &["install", "--gitolite", "--repo-specific"]);
    assert!(
        installed.contains("LOCAL_CODE"),
        "LOCAL_CODE was switched on: {installed}"
    );
    assert!(installed.contains("repo-specific-hooks"), "{installed}");
    assert!(
        installed.contains("option hook.post-receive = git-push-mirror"),
        "{installed}"
    );

    gitolite.add_conf(
        "\nrepo acme/app\n    RW+ = admin\n    option hook.post-receive = git-push-mirror\n\nrepo acme/quiet\n    RW+ = admin\n",
    );
    let upstream = gitolite.repo("acme/app");
    let mirror = mirror_of(&env, "acme/app");
    assert!(
        !gitolite.repo("acme/quiet").join("hooks/post-receive").exists(),
        "only repositories with the option get it"
    );

    let work = gitolite.clone("acme/app", "work");
    env.commit(&work, "a.txt", "one", "first");
    gitolite.git(&work, &["push", "-q", "origin", "main"]);
    wait_mirrored(&env, &upstream, &mirror);

    gitolite_ok(&env, &["setup"]);
    env.commit(&work, "b.txt", "two", "second");
    gitolite.git(&work, &["push", "-q", "origin", "main"]);
    wait_mirrored(&env, &upstream, &mirror);

    // `check` finds the repo-specific hook gitolite linked, run by its multi-hook driver.
    let check = gpm_ok(&env, &["check", path_str(&upstream)]);
    assert!(
        check.contains(&format!(
            "hook {}: runs {}",
            upstream.join("hooks/post-receive.h00-git-push-mirror").display(),
            env!("CARGO_BIN_EXE_git-push-mirror")
        )),
        "{check}"
    );

    gpm_ok(&env, &["uninstall", "--gitolite", "--repo-specific"]);
    assert!(!env.home().join("local/hooks/repo-specific/git-push-mirror").exists());
}

/// A mirror on a gitolite host needs no `create`: with a wild-repo rule (`C`), gitolite creates the
/// repository at the mirror's first access, as it does for anyone. Its shell runs no `git
/// symbolic-ref`, so the mirror's default branch cannot follow: `status` says so.
#[test]
fn gitolite_creates_a_wild_repository_for_a_mirror_without_create() {
    if !require_or_skip("gitolite", gitolite_available()) || !require_or_skip("sshd", crate::support::Sshd::available())
    {
        return;
    }
    let env = TestEnv::new();
    let gitolite = Gitolite::setup(&env);
    gitolite.add_conf("\nrepo mirrors/..*\n    C   = mirror\n    RW+ = CREATOR\n");
    // The mirror's own key reaches gitolite as its user `mirror`, through the forced command sshd
    // runs for it, as gitolite's authorized_keys lines do.
    let sshd = crate::support::Sshd::start(&env);
    let key = env.path("keys/gitolite_mirror");
    fs::create_dir_all(key.parent().unwrap()).unwrap();
    let out = env
        .cmd("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "mirror", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert_success(&out, "ssh-keygen");
    let public = fs::read_to_string(key.with_extension("pub")).unwrap();
    sshd.authorize_key(&format!(
        "command=\"HOME={} {} mirror\",no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty {}",
        env.home().display(),
        gitolite.shell,
        public.trim()
    ));
    let known_hosts = env.path("keys/known_hosts");
    fs::write(&known_hosts, format!("{}\n", sshd.known_hosts_line())).unwrap();

    let (upstream, _) = upstream_on_develop(&env);
    let url = format!("ssh://{}@127.0.0.1:{}/mirrors/app.git", sshd.user(), sshd.port());
    assert!(!gitolite.repo("mirrors/app").exists());
    // (`add` tries the mirror once: gitolite creates a wild repository at any access of a user
    // with `C`, a clone or `ls-remote` as well as a push.)
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&upstream),
            "gitolite",
            &url,
            "--ssh-key",
            path_str(&key),
            "--known-hosts",
            path_str(&known_hosts),
        ],
    );
    let out = gpm_output(&env, &["sync", path_str(&upstream)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(env.refs(&gitolite.repo("mirrors/app")), env.refs(&upstream));
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&gpm_output(&env, &["status", "--json", path_str(&upstream)]))).unwrap();
    let error = status[0]["default_branch_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("could not make develop the mirror's default branch") && error.contains("FATAL"),
        "gitolite's shell refuses, in its words: {status:#}"
    );
}
