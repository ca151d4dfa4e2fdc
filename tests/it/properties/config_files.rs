//! Properties of configuration files: arbitrary and hand-edited files never panic, errors point
//! into the file, and every mirror of a valid file is loaded in file order.

use super::*;

// ---------------------------------------------------------------------------
// Configuration files

/// A scratch directory for config files, one per test (not per case).
struct Scratch {
    dir: tempfile::TempDir,
    global: GlobalConfig,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let global = GlobalConfig::embedded(&dir.path().join("state"));
        std::fs::create_dir_all(dir.path().join("repo.git")).unwrap();
        Scratch { dir, global }
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo.git")
    }

    fn write_repo_config(&self, bytes: &[u8]) -> PathBuf {
        let file = self.repo().join(config::REPO_CONFIG_FILE);
        std::fs::write(&file, bytes).unwrap();
        file
    }

    fn write_global_config(&self, bytes: &[u8]) -> PathBuf {
        let file = self.dir.path().join("config.toml");
        std::fs::write(&file, bytes).unwrap();
        file
    }
}

/// Errors name the file; positions, when given, are inside it.
fn check_config_error(error: &ConfigError, file: &Path, text: &[u8]) -> Result<(), TestCaseError> {
    prop_assert_eq!(error.path(), file);
    let shown = error.to_string();
    prop_assert!(shown.starts_with(&file.display().to_string()), "{}", shown);
    if let ConfigError::Syntax { line, column, .. } = error {
        let lines = text.split(|b| *b == b'\n').count();
        prop_assert!(
            *line >= 1 && *line <= lines,
            "line {} of a {}-line file: {}",
            line,
            lines,
            shown
        );
        prop_assert!(*column >= 1, "{}", shown);
    }
    Ok(())
}

/// Lines a hand-edited config file might contain, good and bad.
fn config_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[mirror.backup]".to_string()),
        Just("[mirror.github]".to_string()),
        Just("[mirror.\"bad name\"]".to_string()),
        Just("[mirror.-x]".to_string()),
        Just("[mirror]".to_string()),
        Just("[[mirror.a]]".to_string()),
        Just("[defaults]".to_string()),
        Just("[retry]".to_string()),
        Just("url = \"file:///srv/mirror.git\"".to_string()),
        Just("url = \"https://user:secret@example.com/x.git\"".to_string()),
        Just("url = \"ext::sh -c true\"".to_string()),
        Just("url = \"\"".to_string()),
        Just("url = 3".to_string()),
        Just("enabled = false".to_string()),
        Just("enabled = \"yes\"".to_string()),
        Just("branches = [\"main\", \"release/*\"]".to_string()),
        Just("brnaches = [\"main\"]".to_string()),
        Just("tags = false".to_string()),
        Just("tags = [\"v*\"]".to_string()),
        Just("tags = 3".to_string()),
        Just("refs = [\"refs/notes/*\"]".to_string()),
        Just("refs = [\"notes\"]".to_string()),
        Just("protected_branches = [\"main\"]".to_string()),
        Just("only_protected_branches = true".to_string()),
        Just("keep_divergent_refs = true".to_string()),
        Just("password = \"hunter2\"".to_string()),
        Just("password_file = \"\"".to_string()),
        Just("password_env = \"A=B\"".to_string()),
        Just("username = \"bot\"".to_string()),
        Just("repos = [\"acme/*\"]".to_string()),
        Just("spool_dir = \"spool\"".to_string()),
        Just("max_parallel = 0".to_string()),
        Just("max_parallel = 4".to_string()),
        Just("fail_after = 99999999999".to_string()),
        Just("initial = \"10s\"".to_string()),
        Just("max = \"1s\"".to_string()),
        Just("jitter = true".to_string()),
        Just("log_level = \"loud\"".to_string()),
        Just("allowed_protocols = [\"gopher\"]".to_string()),
        Just("worker_linger = \"1h\"".to_string()),
        Just("silent_mode = true".to_string()),
        Just("# a comment".to_string()),
        Just(String::new()),
        Just("= =".to_string()),
        Just("url = \"unterminated".to_string()),
        "(delay|min_interval|timeout) = \"[0-9]{0,12}(ms|s|m|h|d|y|parsecs|)\"",
        "[a-z_]{1,12} = [^\n]{0,20}",
        "[^\n]{0,30}",
    ]
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn repository_config_of_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        thread_local!(static SCRATCH: Scratch = Scratch::new());
        SCRATCH.with(|s| {
            let file = s.write_repo_config(&bytes);
            match config::load_repo(&s.repo(), &s.global) {
                Ok(cfg) => {
                    for mirror in &cfg.mirrors {
                        prop_assert!(config::valid_mirror_name(&mirror.name));
                        prop_assert!(!mirror.url.trim().is_empty());
                    }
                    Ok(())
                }
                Err(e) => check_config_error(&e, &file, &bytes),
            }
        })?;
    }

    #[test]
    fn hand_edited_repository_configs_never_panic_and_errors_point_into_the_file(
        lines in proptest::collection::vec(config_line(), 0..25),
    ) {
        thread_local!(static SCRATCH: Scratch = Scratch::new());
        let text = lines.join("\n");
        SCRATCH.with(|s| {
            let file = s.write_repo_config(text.as_bytes());
            match config::load_repo(&s.repo(), &s.global) {
                Ok(cfg) => {
                    for mirror in &cfg.mirrors {
                        prop_assert!(config::valid_mirror_name(&mirror.name));
                        prop_assert!(!mirror.url.trim().is_empty());
                        prop_assert!(!mirror.timeout.is_zero());
                        // A password never stays in a URL that is shown and passed to git.
                        prop_assert!(!mirror.url.contains("secret"), "{}", mirror.url);
                    }
                    Ok(())
                }
                Err(e) => check_config_error(&e, &file, text.as_bytes()),
            }
        })?;
    }

    #[test]
    fn global_config_of_arbitrary_input_never_panics(
        lines in proptest::collection::vec(config_line(), 0..25),
        raw in proptest::collection::vec(any::<u8>(), 0..200),
        use_raw in any::<bool>(),
    ) {
        thread_local!(static SCRATCH: Scratch = Scratch::new());
        let bytes = if use_raw { raw } else { lines.join("\n").into_bytes() };
        SCRATCH.with(|s| {
            let file = s.write_global_config(&bytes);
            match config::load_global(Some(&file)) {
                Ok(global) => {
                    prop_assert!(global.max_parallel >= 1);
                    prop_assert!(global.retry.fail_after >= 1);
                    prop_assert!(!global.retry.initial.is_zero());
                    prop_assert!(global.retry.initial <= global.retry.max);
                    Ok(())
                }
                Err(e) => check_config_error(&e, &file, &bytes),
            }
        })?;
    }
}

/// One mirror of a generated valid configuration.
#[derive(Clone, Debug)]
struct GeneratedMirror {
    name: String,
    url: String,
    branches: Option<Vec<String>>,
    tags: TagSelection,
    delay_ms: u64,
    keep_divergent: bool,
}

fn generated_mirror() -> impl Strategy<Value = GeneratedMirror> {
    (
        "[A-Za-z0-9_][A-Za-z0-9._-]{0,20}",
        prop_oneof![
            "file:///srv/[a-z]{1,8}\\.git",
            "https://example\\.com/[a-z]{1,8}\\.git",
            "git://127\\.0\\.0\\.1:9418/[a-z]{1,8}\\.git",
            "ssh://git@example\\.com/[a-z]{1,8}\\.git",
        ],
        proptest::option::of(proptest::collection::vec("[a-z*/]{1,10}", 0..4)),
        prop_oneof![
            Just(TagSelection::All),
            Just(TagSelection::None),
            proptest::collection::vec("[a-z0-9.*]{1,6}", 0..3).prop_map(TagSelection::Matching),
        ],
        0u64..100_000,
        any::<bool>(),
    )
        .prop_map(
            |(name, url, branches, tags, delay_ms, keep_divergent)| GeneratedMirror {
                name,
                url,
                branches,
                tags,
                delay_ms,
                keep_divergent,
            },
        )
}

fn toml_string_array(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn every_mirror_of_a_valid_config_is_loaded_in_file_order(
        mirrors in proptest::collection::vec(generated_mirror(), 0..8)
            .prop_filter("distinct names", |ms| ms.iter().map(|m| &m.name).collect::<BTreeSet<_>>().len() == ms.len()),
        protected in proptest::collection::vec("[a-z*/]{1,8}", 0..3),
    ) {
        thread_local!(static SCRATCH: Scratch = Scratch::new());
        let mut text = format!("# generated\nprotected_branches = {}\n", toml_string_array(&protected));
        for m in &mirrors {
            // Quoted: a `.` in a bare key would nest tables.
            text.push_str(&format!("\n[mirror.{:?}]\nurl = {:?}\n", m.name, m.url));
            if let Some(branches) = &m.branches {
                text.push_str(&format!("branches = {}\n", toml_string_array(branches)));
            }
            match &m.tags {
                TagSelection::All => text.push_str("tags = true\n"),
                TagSelection::None => text.push_str("tags = false\n"),
                TagSelection::Matching(p) => text.push_str(&format!("tags = {}\n", toml_string_array(p))),
            }
            text.push_str(&format!("delay = \"{}ms\"\nkeep_divergent_refs = {}\n", m.delay_ms, m.keep_divergent));
        }
        SCRATCH.with(|s| {
            s.write_repo_config(text.as_bytes());
            let loaded = config::load_repo(&s.repo(), &s.global);
            prop_assert!(loaded.is_ok(), "a valid file was refused: {:?}\n{}", loaded.err(), text);
            let loaded = loaded.unwrap();
            prop_assert_eq!(&loaded.protected_branches, &protected);
            let names: Vec<&str> = loaded.mirrors.iter().map(|m| m.name.as_str()).collect();
            let expected: Vec<&str> = mirrors.iter().map(|m| m.name.as_str()).collect();
            prop_assert_eq!(names, expected, "mirrors in file order\n{}", text);
            for (got, want) in loaded.mirrors.iter().zip(&mirrors) {
                prop_assert_eq!(&got.url, &want.url);
                prop_assert_eq!(&got.rules.branch_patterns, &want.branches);
                prop_assert_eq!(&got.rules.tags, &want.tags);
                prop_assert_eq!(got.delay, Some(Duration::from_millis(want.delay_ms)));
                prop_assert_eq!(got.rules.keep_divergent_refs, want.keep_divergent);
                prop_assert!(got.enabled);
            }
            Ok(())
        })?;
    }
}
