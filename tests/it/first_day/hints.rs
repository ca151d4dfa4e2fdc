//! Help and messages that say what to do next: every subcommand's help, the configuration
//! reference, and misspellings answered with what was meant.

use super::*;

// 8 ---------------------------------------------------------------------------------------------

#[test]
fn help_and_messages_say_what_to_do_next() {
    let env = TestEnv::new();

    // Nothing configured: each command says where it looked and what to run.
    let state = state_base(&env).join("state");
    let status = gpm_ok(&env, &["status"]);
    assert!(
        status.contains("no mirrors configured")
            && status.contains(&format!("state: {}", state.display()))
            && status.contains("global configuration: none found")
            && status.contains("git-push-mirror add REPO NAME URL"),
        "{status}"
    );
    let list = gpm_output(&env, &["list"]);
    assert!(stdout(&list).is_empty() && stderr(&list).contains("git-push-mirror add REPO NAME URL"));
    let check = gpm_ok(&env, &["check"]);
    assert!(
        check.contains(&format!("state: {}", state.display()))
            && check.contains(&format!("spool: {}", state_base(&env).join("spool").display()))
            && check.contains("git-push-mirror add REPO NAME URL"),
        "{check}"
    );

    // Flags only where they apply.
    let add_help = gpm_ok(&env, &["add", "--help"]);
    assert!(
        !add_help.contains("--all-branches") && !add_help.contains("--all-tags") && !add_help.contains("--enabled")
    );
    let set_help = gpm_ok(&env, &["set", "--help"]);
    assert!(set_help.contains("--all-branches") && set_help.contains("--all-tags") && !set_help.contains("--disabled"));

    // `set` without a change, and mistyped names, with one quoting everywhere.
    let upstream = env.bare_repo("app.git");
    let mirror = env.bare_repo("mirror.git");
    let repo = path_str(&upstream);
    gpm_ok(&env, &["add", repo, "backup", &format!("file://{}", path_str(&mirror))]);
    let nothing = gpm_output(&env, &["set", repo, "backup"]);
    assert_exit(&nothing, 2, "set without flags");
    assert!(stderr(&nothing).contains("nothing to change"), "{}", stderr(&nothing));
    for args in [
        vec!["set", repo, "bakup", "--delay", "1s"],
        vec!["remove", repo, "bakup"],
        vec!["sync", repo, "--mirror", "bakup"],
        vec!["keygen", repo, "bakup"],
    ] {
        let typo = gpm_output(&env, &args);
        assert_exit(&typo, 2, &args.join(" "));
        assert!(
            stderr(&typo).contains("there is no mirror named `bakup`; did you mean `backup`?"),
            "{}: {}",
            args.join(" "),
            stderr(&typo)
        );
    }

    // A closed pipe is a quiet end: `status --json | head -c 100` over output larger than a pipe.
    let many = env.bare_repo("many.git");
    let tables: String = (0..300)
        .map(|i| format!("[mirror.m{i}]\nurl = \"file:///nonexistent/m{i}.git\"\n"))
        .collect();
    fs::write(many.join("push-mirror.toml"), tables).unwrap();
    let piped = env
        .cmd("bash")
        .arg("-c")
        .arg(format!(
            "'{BIN}' status --json '{}' | head -c 100 >/dev/null; echo \"exit=${{PIPESTATUS[0]}}\"",
            path_str(&many)
        ))
        .output()
        .unwrap();
    assert_eq!(stdout(&piped).trim(), "exit=0", "{}", stderr(&piped));
    assert!(stderr(&piped).is_empty(), "{}", stderr(&piped));

    // Per-subcommand man pages exist for every one the main page refers to.
    let pages = env.path("man");
    gpm_ok(&env, &["man", "--dir", path_str(&pages)]);
    let main_page = fs::read_to_string(pages.join("git-push-mirror.1"))
        .unwrap()
        .replace("\\-", "-");
    let referred: Vec<&str> = main_page
        .split(|c: char| c.is_whitespace() || c == '\\')
        .filter_map(|word| word.strip_suffix("(1)"))
        .filter(|word| word.starts_with("git-push-mirror-"))
        .collect();
    assert!(referred.contains(&"git-push-mirror-add"), "{main_page}");
    for page in &referred {
        assert!(
            pages.join(format!("{page}.1")).is_file(),
            "{page}(1) is referred to but missing"
        );
    }

    // README: the global example logs into a directory, and no file it does not have is cited.
    let readme = fs::read_to_string(source("README.md")).unwrap();
    assert!(
        !readme.contains("DESIGN"),
        "the README cites a DESIGN file the repository does not have"
    );
    assert!(!readme.contains("log_file = \"/var/log/git-push-mirror.log\""));
    assert!(readme.contains("log_file = \"/var/log/git-push-mirror/git-push-mirror.log\""));
}

/// The reference in docs/ has a row for every key the parser accepts (the man page is generated
/// from the same table, so it cannot miss one; the reference is written by hand).
#[test]
fn the_configuration_reference_has_a_row_for_every_key_the_parser_accepts() {
    let page = fs::read_to_string(source("docs/configuration.md")).unwrap();
    // The keys named in the first cell of each table row.
    let documented: std::collections::BTreeSet<&str> = page
        .lines()
        .filter_map(|line| line.strip_prefix("| "))
        .filter_map(|row| row.split(" | ").next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .collect();
    let missing: Vec<&str> = git_push_mirror::config::keys::KEYS
        .iter()
        // `[defaults]`, `[retry]`, `[notify]`, `[mirror.NAME]`: tables, each with a section of its own.
        .filter(|doc| !doc.example.is_empty())
        .map(|doc| doc.key)
        .filter(|key| !documented.contains(key))
        .collect();
    assert!(
        missing.is_empty(),
        "keys without a row in docs/configuration.md: {missing:?}"
    );
}

// --help ----------------------------------------------------------------------------------------

// Issue 21: the first-day list -------------------------------------------------------------------

#[test]
fn misspelled_schemes_mirror_names_and_keys_are_answered_with_what_was_meant() {
    let env = TestEnv::new();
    let upstream = env.bare_repo("app.git");
    let repo = path_str(&upstream);

    // A misspelled scheme: refused with the URL that was meant; nothing is written.
    for (typed, meant) in [
        ("htps://example.com/acme/app.git", "https://example.com/acme/app.git"),
        ("https:/example.com/acme/app.git", "https://example.com/acme/app.git"),
        ("ssh:/git@example.com/srv/app.git", "ssh://git@example.com/srv/app.git"),
        ("http//example.com/acme/app.git", "http://example.com/acme/app.git"),
    ] {
        let out = gpm_output(&env, &["add", repo, "gh", typed]);
        assert_exit(&out, 2, typed);
        assert!(
            stderr(&out).contains(&format!("the URL's scheme is misspelled: did you mean {meant}?")),
            "{typed}: {}",
            stderr(&out)
        );
        assert!(
            !upstream.join("push-mirror.toml").exists(),
            "{typed}: nothing was added"
        );
    }

    // A mirror that does not exist: `remove` names the ones that do, and suggests no `add`.
    let backup = env.bare_repo("backup.git");
    gpm_ok(&env, &["add", repo, "backup", path_str(&backup)]);
    let missing = gpm_output(&env, &["remove", repo, "nosuch"]);
    assert_exit(&missing, 2, "remove nosuch");
    assert_eq!(
        stderr(&missing).trim(),
        format!(
            "git-push-mirror: {}: there is no mirror named `nosuch` (its mirrors: `backup`)",
            fs::canonicalize(&upstream).unwrap().display()
        )
    );
    let typo = gpm_output(&env, &["remove", repo, "bakup"]);
    assert!(stderr(&typo).contains("did you mean `backup`?") && !stderr(&typo).contains("add"));
    // `set` configures a mirror: adding it is a way on.
    let set = gpm_output(&env, &["set", repo, "nosuch", "--delay", "1s"]);
    assert!(
        stderr(&set).contains(&format!(
            "to add it first: git-push-mirror add {} nosuch URL",
            fs::canonicalize(&upstream).unwrap().display()
        )),
        "{}",
        stderr(&set)
    );

    // `protected_branches` appended below the mirror's table: move it up, at file:line:column.
    let file = upstream.join("push-mirror.toml");
    let text = repo_file(&upstream);
    let lines = text.lines().count();
    fs::write(&file, format!("{text}protected_branches = [\"main\"]\n")).unwrap();
    let listed = gpm_output(&env, &["list", repo]);
    assert_exit(&listed, 2, "list with a misplaced key");
    assert!(
        stderr(&listed).contains(&format!(
            "{}:{}:1: `protected_branches` belongs at the top of the file: move it above the first table, \
             `[mirror.backup]`",
            file.display(),
            lines + 1
        )),
        "{}",
        stderr(&listed)
    );

    // A misspelled key: the key that was meant, not the 25 a mirror takes.
    fs::write(&file, format!("{text}brnaches = [\"main\"]\n")).unwrap();
    let status = gpm_output(&env, &["status", repo]);
    assert_exit(&status, 2, "status with a misspelled key");
    let said = format!("{}{}", stdout(&status), stderr(&status));
    assert!(
        said.contains(&format!(
            "{}:{}:1: unknown key `brnaches` in `[mirror.backup]`; did you mean `branches`?",
            file.display(),
            lines + 1
        )),
        "{said}"
    );
    assert!(!said.contains("max_refs_per_push"), "{said}");
}

/// Every subcommand (hidden ones included) and every argument of each has a description, in the
/// clap definition and in the `--help` the binary prints. Generic: flags added later are checked too.
#[test]
fn every_subcommand_and_argument_has_a_description_in_its_help() {
    fn walk(command: &clap::Command, path: Vec<String>, found: &mut Vec<(Vec<String>, clap::Command)>) {
        found.push((path.clone(), command.clone()));
        // clap's own `help` subcommand is not ours to describe.
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut sub_path = path.clone();
            sub_path.push(sub.get_name().to_string());
            walk(sub, sub_path, found);
        }
    }
    let mut root = git_push_mirror::cli::Cli::command();
    root.build();
    let mut commands = Vec::new();
    walk(&root, Vec::new(), &mut commands);
    assert!(commands.len() > 15, "{} commands", commands.len());

    let env = TestEnv::new();
    let mut missing = Vec::new();
    for (path, command) in &commands {
        let name = if path.is_empty() {
            "git-push-mirror".to_string()
        } else {
            path.join(" ")
        };
        if command.get_about().is_none() && command.get_long_about().is_none() {
            missing.push(format!("{name}: no description"));
        }
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = gpm_ok(&env, &args);
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let Some(text) = arg.get_help().or(arg.get_long_help()) else {
                missing.push(format!("{name}: {id} has no description"));
                continue;
            };
            if arg.is_hide_set() {
                continue; // internal (`run --detached`): described in the code, not shown
            }
            let first_words: String = text
                .to_string()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ");
            let flat: String = help.split_whitespace().collect::<Vec<_>>().join(" ");
            if !flat.contains(&first_words) {
                missing.push(format!("{name} --help does not show the description of {id}"));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
