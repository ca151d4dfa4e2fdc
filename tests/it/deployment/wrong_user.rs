//! The wrong user: commands that write refuse to run as another user and create nothing, and the
//! hook's message names the spool and the user when it cannot record a push.

use super::*;

#[test]
fn the_wrong_user_is_told_whom_to_run_as_and_nothing_is_created_for_it() {
    let Some(server) = Server::installed() else { return };
    let repo = path_str(&server.repo);
    let user = &server.user.name;

    // check, run as root: whom pushes run as, and the command to run instead.
    let check = gpm_output(&server.env, &["check", repo]);
    let output = format!("{}{}", stdout(&check), stderr(&check));
    assert_eq!(check.status.code(), Some(1), "{output}");
    assert!(
        output.contains(&format!(
            "this check runs as root, but pushes to this repository run as {user} (its owner)"
        )),
        "{output}"
    );
    assert!(
        fixes(&output).contains(&format!("sudo -u {user} -H git-push-mirror check {repo}")),
        "{output}"
    );

    // status says it in one line.
    let status = gpm_output(&server.env, &["status", repo]);
    let said = stderr(&status);
    let notes: Vec<&str> = said.lines().filter(|l| l.contains("belongs to")).collect();
    assert_eq!(
        notes,
        [format!(
            "git-push-mirror: note: {repo} belongs to {user}, and pushes run as {user}, but this runs as root: \
             run it as {user}: sudo -u {user} -H git-push-mirror status"
        )],
        "{status:?}"
    );

    // add (with a password in the URL, which would become a root-owned secret) is refused before
    // it writes anything; set, remove, sync, keygen and known-hosts --accept too.
    let config_before = fs::read_to_string(server.repo.join("push-mirror.toml")).unwrap();
    let state_before = files_under(&server.state);
    let secret_url = "https://bot:pa55word@git.example.com/app.git";
    for args in [
        vec!["add", repo, "other", secret_url],
        vec!["set", repo, "backup", "--delay", "1s"],
        vec!["remove", repo, "backup"],
        vec!["sync", repo],
        vec!["keygen", repo, "backup"],
        vec![
            "known-hosts",
            "ssh://git@127.0.0.1:9/x.git",
            "--accept",
            "--repo",
            repo,
            "--mirror",
            "backup",
        ],
    ] {
        let out = gpm_output(&server.env, &args);
        assert_eq!(out.status.code(), Some(2), "{}: {out:?}", args[0]);
        assert_eq!(
            stderr(&out).trim(),
            format!(
                "git-push-mirror: {repo} belongs to {user}, and pushes run as {user}, but this runs as root: \
                 run it as {user}: sudo -u {user} -H git-push-mirror {} …",
                args[0]
            )
        );
        assert!(!stderr(&out).contains("pa55word"));
    }
    assert_eq!(
        fs::read_to_string(server.repo.join("push-mirror.toml")).unwrap(),
        config_before
    );
    assert_eq!(files_under(&server.state), state_before);

    // The owner may; so may a member of a shared repository's group.
    assert!(
        server
            .as_user(&["set", repo, "backup", "--delay", "1s"])
            .status
            .success()
    );
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            found.push(entry.path());
            if entry.path().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_push_the_hook_cannot_record_names_the_spool_and_the_user() {
    let Some(server) = Server::installed() else { return };
    let repo = path_str(&server.repo);
    let user = &server.user;

    // The user's work clone, in a directory of its own.
    let work = server.env.path("home-of-user/work");
    fs::create_dir_all(work.parent().unwrap()).unwrap();
    user.own(&[work.parent().unwrap()]);
    let git = |args: &[&str]| {
        let out = user
            .cmd(&server.env, "git")
            .current_dir(work.parent().unwrap())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        out
    };
    git(&["clone", "--quiet", repo, path_str(&work)]);
    fs::write(work.join("a.txt"), "one\n").unwrap();
    user.own(&[&work]);
    git(&["-C", path_str(&work), "add", "a.txt"]);
    git(&["-C", path_str(&work), "commit", "--quiet", "-m", "first"]);

    // Root took the spool's tmp/ (a hook or worker run as root would).
    let tmp = server.spool.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    std::os::unix::fs::chown(&tmp, Some(0), Some(0)).unwrap();
    let pushed = git(&["-C", path_str(&work), "push", "origin", "main"]);
    let said = stderr(&pushed);
    assert!(
        said.contains(&format!(
            "remote: git-push-mirror: could not record this push for mirroring: the spool {} is not writable by {} \
             (uid {}), whom this hook runs as: {} cannot create files in it (owner root, group root, mode 0755)",
            server.spool.display(),
            user.name,
            user.uid,
            tmp.display()
        )),
        "{said}"
    );
    assert!(said.contains("`git-push-mirror check` gives the fix"), "{said}");
}
