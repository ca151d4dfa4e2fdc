//! Unit tests of the in-place edits of push-mirror.toml: comments and layout kept, values set and removed, bad edits refused.

use super::*;
use crate::config::rules::TagSelection;
use crate::config::{SecretSource, load_repo};
use std::time::Duration;
use tempfile::TempDir;

const COMMENTED: &str = "\
# Mirrors of app.git. Ask ops before changing.
protected_branches = [\"main\", \"release/*\"] # as on the forge

# GitHub, token in the vault
[mirror.github] # primary
# the org's mirror
url = \"https://github.com/acme/app.git\"   # keep .git
tags = false
# branches = [\"main\"]

# GitLab backup
[mirror.gitlab]
url = \"https://gitlab.com/acme/app.git\"
keep_divergent_refs = true
  # indented comment

# old mirrors
# [mirror.old]
# url = \"https://old/app.git\"
";

fn edit_url(url: &str) -> MirrorEdit {
    MirrorEdit {
        url: Some(url.into()),
        ..MirrorEdit::default()
    }
}

fn global(dir: &TempDir) -> GlobalConfig {
    GlobalConfig::embedded(&dir.path().join("state"))
}

/// Loads `text` the strict way, as a private repository file.
fn load(text: &str) -> config::RepoConfig {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join(REPO_CONFIG_FILE);
    config::parse_repo(text, &file, 0o100600, &global(&dir)).unwrap()
}

#[test]
fn add_keeps_every_comment_and_key_byte_for_byte() {
    let edit = MirrorEdit {
        url: Some("git@codeberg.org:acme/app.git".into()),
        enabled: Some(false),
        only_protected_branches: Some(true),
        branches: Some(vec!["main".into(), "release/*".into()]),
        tags: Some(TagSelection::Matching(vec!["v*".into()])),
        ssh_key: Some("/etc/git-push-mirror/codeberg".into()),
        known_hosts: Some("/etc/git-push-mirror/known_hosts".into()),
        delay: Some("2s".into()),
        min_interval: Some("1m".into()),
        timeout: Some("5m".into()),
        ..MirrorEdit::default()
    };
    let out = add_mirror(COMMENTED, "codeberg", &edit).unwrap();
    assert!(out.starts_with(COMMENTED), "{out}");
    assert_eq!(
        &out[COMMENTED.len()..],
        "\n[mirror.codeberg]\n\
         url = \"git@codeberg.org:acme/app.git\"\n\
         enabled = false\n\
         only_protected_branches = true\n\
         branches = [\"main\", \"release/*\"]\n\
         tags = [\"v*\"]\n\
         ssh_key = \"/etc/git-push-mirror/codeberg\"\n\
         known_hosts = \"/etc/git-push-mirror/known_hosts\"\n\
         delay = \"2s\"\n\
         min_interval = \"1m\"\n\
         timeout = \"5m\"\n"
    );
    let config = load(&out);
    let names: Vec<_> = config.mirrors.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["github", "gitlab", "codeberg"]);
    let m = &config.mirrors[2];
    assert!(!m.enabled);
    assert_eq!(m.rules.protected_only, Some(vec!["main".into(), "release/*".into()]));
    assert_eq!(m.rules.tags, TagSelection::Matching(vec!["v*".into()]));
    assert_eq!(m.delay, Some(Duration::from_secs(2)));
    assert_eq!(m.timeout, Duration::from_secs(300));
}

#[test]
fn add_to_empty_or_minimal_files() {
    let out = add_mirror("", "github", &edit_url("https://h/a.git")).unwrap();
    assert_eq!(out, "[mirror.github]\nurl = \"https://h/a.git\"\n");
    let out = add_mirror("protected_branches = [\"main\"]", "a", &edit_url("https://h/a.git")).unwrap();
    assert_eq!(
        out,
        "protected_branches = [\"main\"]\n\n[mirror.a]\nurl = \"https://h/a.git\"\n"
    );
    // Names that need quoting in TOML are quoted.
    let out = add_mirror("", "back.up", &edit_url("https://h/a.git")).unwrap();
    assert!(out.starts_with("[mirror.\"back.up\"]\n"), "{out}");
    assert_eq!(load(&out).mirrors[0].name, "back.up");
}

#[test]
fn add_refuses_duplicates_bad_names_and_bad_values() {
    let err = add_mirror(COMMENTED, "gitlab", &edit_url("https://h/a.git")).unwrap_err();
    assert!(matches!(&err, EditError::MirrorExists(n) if n == "gitlab"), "{err}");
    let err = add_mirror(COMMENTED, "-x", &edit_url("https://h/a.git")).unwrap_err();
    assert!(matches!(err, EditError::InvalidName(_)), "{err}");
    let err = add_mirror(COMMENTED, "x", &MirrorEdit::default()).unwrap_err();
    assert!(matches!(err, EditError::InvalidValue(_)), "{err}");
    let err = add_mirror(COMMENTED, "x", &edit_url("")).unwrap_err();
    assert!(matches!(err, EditError::InvalidValue(_)), "{err}");
    let edit = MirrorEdit {
        delay: Some("soon".into()),
        ..edit_url("https://h/a.git")
    };
    let err = add_mirror(COMMENTED, "x", &edit).unwrap_err();
    assert!(err.to_string().contains("`delay`"), "{err}");
    let err = add_mirror("[mirror.a\n", "x", &edit_url("https://h/a.git")).unwrap_err();
    assert!(err.to_string().starts_with("line 1, column 10: "), "{err}");
    let err = add_mirror("mirror = 5\n", "x", &edit_url("https://h/a.git")).unwrap_err();
    assert!(matches!(err, EditError::Parse(_)), "{err}");
}

#[test]
fn add_into_an_inline_mirror_table() {
    let out = add_mirror(
        "mirror = { a = { url = \"https://h/a.git\" } }\n",
        "b",
        &edit_url("https://h/b.git"),
    )
    .unwrap();
    let names: Vec<_> = load(&out).mirrors.into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn set_changes_only_the_named_keys() {
    let edit = MirrorEdit {
        url: Some("https://github.com/acme/app2.git".into()),
        ..MirrorEdit::default()
    };
    let out = set_mirror(COMMENTED, "github", &edit).unwrap();
    assert_eq!(
        out,
        COMMENTED.replace(
            "url = \"https://github.com/acme/app.git\"   # keep .git",
            "url = \"https://github.com/acme/app2.git\"   # keep .git"
        )
    );

    // New keys go after the table's last key, before the next table's comments.
    let edit = MirrorEdit {
        tags: Some(TagSelection::All),
        timeout: Some("1h".into()),
        ..MirrorEdit::default()
    };
    let out = set_mirror(COMMENTED, "github", &edit).unwrap();
    assert_eq!(
        out,
        COMMENTED.replace("tags = false\n", "tags = true\ntimeout = \"1h\"\n")
    );
    assert_eq!(load(&out).mirrors[0].timeout, Duration::from_secs(3600));
}

#[test]
fn set_removes_keys_given_empty_values() {
    let text = "[mirror.a]\nurl = \"https://h/a.git\"\nbranches = [\"main\"]\nusername = \"bot\"\ndelay = \"5s\"\ntags = true\n";
    let edit = MirrorEdit {
        branches: Some(vec![]),
        username: Some(String::new()),
        delay: Some(String::new()),
        ..MirrorEdit::default()
    };
    let out = set_mirror(text, "a", &edit).unwrap();
    assert_eq!(out, "[mirror.a]\nurl = \"https://h/a.git\"\ntags = true\n");
}

#[test]
fn setting_a_password_source_replaces_the_others() {
    let text =
        "[mirror.a]\nurl = \"https://h/a.git\"\npassword = \"s3cret\"\npassword_env = \"TOKEN\"\nenabled = true\n";
    let edit = MirrorEdit {
        password_file: Some("/etc/gpm/token".into()),
        ..MirrorEdit::default()
    };
    let out = set_mirror(text, "a", &edit).unwrap();
    assert_eq!(
        out,
        "[mirror.a]\nurl = \"https://h/a.git\"\nenabled = true\npassword_file = \"/etc/gpm/token\"\n"
    );
    let edit = MirrorEdit {
        password_env: Some("GPM_TOKEN".into()),
        ..MirrorEdit::default()
    };
    let out = set_mirror(&out, "a", &edit).unwrap();
    assert_eq!(
        out,
        "[mirror.a]\nurl = \"https://h/a.git\"\nenabled = true\npassword_env = \"GPM_TOKEN\"\n"
    );
    assert_eq!(
        load(&out).mirrors[0].password,
        Some(SecretSource::Env("GPM_TOKEN".into()))
    );
}

#[test]
fn set_errors() {
    let err = set_mirror(COMMENTED, "nope", &edit_url("https://h/a.git")).unwrap_err();
    assert!(matches!(&err, EditError::NoSuchMirror(n) if n == "nope"), "{err}");
    let err = set_mirror("", "nope", &MirrorEdit::default()).unwrap_err();
    assert!(matches!(err, EditError::NoSuchMirror(_)), "{err}");
    let err = set_mirror(COMMENTED, "a b", &MirrorEdit::default()).unwrap_err();
    assert!(matches!(err, EditError::InvalidName(_)), "{err}");
    let err = set_mirror("[mirror]\na = 1\n", "a", &MirrorEdit::default()).unwrap_err();
    assert!(matches!(err, EditError::Parse(_)), "{err}");
}

#[test]
fn keys_written_by_hand_only_are_refused_and_nothing_changes() {
    let by_hand = [
        MirrorEdit {
            refs: Some(vec!["refs/notes/*".into()]),
            ..MirrorEdit::default()
        },
        MirrorEdit {
            password: Some(crate::config::Secret::new("s3cret".into())),
            ..MirrorEdit::default()
        },
        MirrorEdit {
            lfs_store: Some("/srv/lfs".into()),
            ..MirrorEdit::default()
        },
        MirrorEdit {
            repos: Some(vec!["acme/*".into()]),
            ..MirrorEdit::default()
        },
    ];
    for (edit, key) in by_hand.iter().zip(["refs", "password", "lfs_store", "repos"]) {
        let err = set_mirror(COMMENTED, "github", edit).unwrap_err();
        assert!(
            matches!(&err, EditError::InvalidValue(m) if m.contains(&format!("`{key}`"))),
            "{err}"
        );
        let err = add_mirror(
            COMMENTED,
            "new",
            &MirrorEdit {
                url: Some("https://h/a.git".into()),
                ..edit.clone()
            },
        )
        .unwrap_err();
        assert!(matches!(&err, EditError::InvalidValue(_)), "{err}");
    }
}

#[test]
fn remove_drops_the_table_and_its_comments_but_keeps_the_others() {
    let out = remove_mirror(COMMENTED, "github").unwrap();
    assert_eq!(
        out,
        "\
# Mirrors of app.git. Ask ops before changing.
protected_branches = [\"main\", \"release/*\"] # as on the forge

# GitLab backup
[mirror.gitlab]
url = \"https://gitlab.com/acme/app.git\"
keep_divergent_refs = true
  # indented comment

# old mirrors
# [mirror.old]
# url = \"https://old/app.git\"
"
    );
    let out = remove_mirror(COMMENTED, "gitlab").unwrap();
    assert_eq!(
        out,
        "\
# Mirrors of app.git. Ask ops before changing.
protected_branches = [\"main\", \"release/*\"] # as on the forge

# GitHub, token in the vault
[mirror.github] # primary
# the org's mirror
url = \"https://github.com/acme/app.git\"   # keep .git
tags = false
# branches = [\"main\"]

# old mirrors
# [mirror.old]
# url = \"https://old/app.git\"
"
    );
    let out = remove_mirror(&out, "github").unwrap();
    assert_eq!(
        out,
        "\
# Mirrors of app.git. Ask ops before changing.
protected_branches = [\"main\", \"release/*\"] # as on the forge

# old mirrors
# [mirror.old]
# url = \"https://old/app.git\"
"
    );
    assert!(load(&out).mirrors.is_empty());
}

#[test]
fn remove_first_and_inline_mirrors() {
    let text = "[mirror.a]\nurl = \"https://h/a.git\"\n\n[mirror.b]\nurl = \"https://h/b.git\"\n";
    assert_eq!(
        remove_mirror(text, "a").unwrap(),
        "[mirror.b]\nurl = \"https://h/b.git\"\n"
    );
    assert_eq!(
        remove_mirror(text, "b").unwrap(),
        "[mirror.a]\nurl = \"https://h/a.git\"\n"
    );
    let text = "[mirror]\na = { url = \"https://h/a.git\" }\nb = { url = \"https://h/b.git\" }\n";
    assert_eq!(
        remove_mirror(text, "a").unwrap(),
        "[mirror]\nb = { url = \"https://h/b.git\" }\n"
    );
    let err = remove_mirror(text, "c").unwrap_err();
    assert!(matches!(&err, EditError::NoSuchMirror(n) if n == "c"), "{err}");
    let err = remove_mirror("", "c").unwrap_err();
    assert!(matches!(err, EditError::NoSuchMirror(_)), "{err}");
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn edit_repo_file_round_trip() {
    let dir = TempDir::new().unwrap();
    let global = global(&dir);
    let repo = dir.path().join("app.git");
    fs::create_dir(&repo).unwrap();
    let file = repo.join(REPO_CONFIG_FILE);

    edit_repo_file(&repo, &global, |text| {
        add_mirror(text, "github", &edit_url("https://github.com/acme/app.git"))
    })
    .unwrap();
    assert_eq!(mode_of(&file), 0o644);
    let config = load_repo(&repo, &global).unwrap();
    assert_eq!(config.mirrors[0].url, "https://github.com/acme/app.git");

    // The mode of an existing file is kept.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    let edit = MirrorEdit {
        enabled: Some(false),
        ..MirrorEdit::default()
    };
    edit_repo_file(&repo, &global, |text| set_mirror(text, "github", &edit)).unwrap();
    assert_eq!(mode_of(&file), 0o640);
    assert!(!load_repo(&repo, &global).unwrap().mirrors[0].enabled);

    edit_repo_file(&repo, &global, |text| remove_mirror(text, "github")).unwrap();
    assert!(load_repo(&repo, &global).unwrap().mirrors.is_empty());
    assert!(leftovers(&repo).is_empty());
}

#[test]
fn edit_repo_file_refuses_a_file_others_can_write_and_never_reads_a_fifo() {
    let dir = TempDir::new().unwrap();
    let global = global(&dir);
    let repo = dir.path().join("app.git");
    fs::create_dir(&repo).unwrap();
    let file = repo.join(REPO_CONFIG_FILE);
    fs::write(&file, COMMENTED).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
    let err = edit_repo_file(&repo, &global, |text| {
        set_mirror(text, "github", &edit_url("https://h/x.git"))
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains(&format!("chmod go-w {}", file.display())), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), COMMENTED, "nothing was written");

    fs::remove_file(&file).unwrap();
    crate::util::fsutil::make_fifo(&file, 0o600).unwrap();
    let err = edit_repo_file(&repo, &global, |text| {
        add_mirror(text, "a", &edit_url("https://h/a.git"))
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("FIFO"), "{err}");
}

#[test]
fn edit_repo_file_refuses_a_result_that_would_not_load() {
    let dir = TempDir::new().unwrap();
    let global = global(&dir);
    let repo = dir.path().join("app.git");
    fs::create_dir(&repo).unwrap();
    let file = repo.join(REPO_CONFIG_FILE);
    fs::write(&file, COMMENTED).unwrap();

    let edit = MirrorEdit {
        password_file: Some("/t".into()),
        password_env: Some("T".into()),
        ..MirrorEdit::default()
    };
    let err = edit_repo_file(&repo, &global, |text| set_mirror(text, "github", &edit)).unwrap_err();
    assert!(err.to_string().starts_with(&format!("{}: ", file.display())), "{err}");
    assert!(err.to_string().contains("only one of"), "{err}");

    let err = edit_repo_file(&repo, &global, |text| Ok(format!("{text}\nbogus = 1\n"))).unwrap_err();
    let EditError::Config(ConfigError::Syntax { path, line, .. }) = &err else {
        panic!("{err:?}")
    };
    assert_eq!((path, *line), (&file, 21));

    // An inline password in a readable file is refused.
    let err = edit_repo_file(&repo, &global, |text| {
        Ok(text.replace("tags = false", "password = \"s3cret\""))
    })
    .unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");

    assert_eq!(fs::read_to_string(&file).unwrap(), COMMENTED);
    assert!(leftovers(&repo).is_empty());

    // The callback's own errors come back as they are.
    let err = edit_repo_file(&repo, &global, |text| remove_mirror(text, "nope")).unwrap_err();
    assert!(matches!(err, EditError::NoSuchMirror(_)));
}

#[test]
fn edit_repo_file_reports_a_broken_file_by_its_name() {
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("app.git");
    fs::create_dir(&repo).unwrap();
    let file = repo.join(REPO_CONFIG_FILE);
    fs::write(&file, "[mirror.a]\nurl = \n").unwrap();
    let err = edit_repo_file(&repo, &global(&dir), |text| {
        add_mirror(text, "b", &edit_url("https://h/b.git"))
    })
    .unwrap_err();
    assert!(err.to_string().starts_with(&format!("{}:2:", file.display())), "{err}");
}

#[test]
fn new_file_with_an_inline_password_is_private() {
    let dir = TempDir::new().unwrap();
    let global = global(&dir);
    let repo = dir.path().join("app.git");
    fs::create_dir(&repo).unwrap();
    edit_repo_file(&repo, &global, |_| {
        Ok("[mirror.a]\nurl = \"https://h/a.git\"\npassword = \"s3cret\"\n".into())
    })
    .unwrap();
    assert_eq!(mode_of(&repo.join(REPO_CONFIG_FILE)), 0o600);
    let config = load_repo(&repo, &global).unwrap();
    assert_eq!(config.mirrors[0].password, Some(SecretSource::Inline("s3cret".into())));
}

#[test]
fn a_symlinked_file_stays_a_symlink() {
    let dir = TempDir::new().unwrap();
    let global = global(&dir);
    let repo = dir.path().join("app.git");
    fs::create_dir(&repo).unwrap();
    let real = dir.path().join("managed.toml");
    fs::write(&real, "").unwrap();
    std::os::unix::fs::symlink(&real, repo.join(REPO_CONFIG_FILE)).unwrap();
    edit_repo_file(&repo, &global, |text| {
        add_mirror(text, "a", &edit_url("https://h/a.git"))
    })
    .unwrap();
    let link = fs::symlink_metadata(repo.join(REPO_CONFIG_FILE)).unwrap();
    assert!(link.file_type().is_symlink());
    assert!(fs::read_to_string(&real).unwrap().contains("[mirror.a]"));
}
