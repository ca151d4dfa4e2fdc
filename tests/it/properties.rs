//! Property tests for the parsers that read untrusted input: hook stdin, spool files,
//! `git push --porcelain` and `git ls-remote` output, and configuration files.
//!
//! Two kinds of property: arbitrary bytes never panic, and valid input survives
//! whatever surrounds it (no valid entry is ever lost, nothing invalid is kept).

use git_push_mirror::config::rules::TagSelection;
use git_push_mirror::config::{self, ConfigError, GlobalConfig};
use git_push_mirror::git::{PushFlag, PushedRef, RemoteRefs, parse_ls_remote, parse_porcelain};
use git_push_mirror::mirror::refs::is_valid_ref_name;
use git_push_mirror::pipeline::hook::parse_hook_input;
use git_push_mirror::pipeline::spool::{RefUpdate, SPOOL_FORMAT_VERSION, SpoolEntry, parse_entry};
use git_push_mirror::util::oid::Oid;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Cheap in-memory parsers get more cases than those that write a file per case.
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        // Shrinking stays bounded so a failure is reported quickly.
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Generators

/// A full object id as git prints it (SHA-1 or SHA-256), sometimes in upper case.
/// Built from bytes rather than a regex: this runs thousands of times per test.
fn oid_text() -> impl Strategy<Value = String> {
    let bytes = prop_oneof![
        4 => any::<[u8; 20]>().prop_map(Vec::from),
        1 => any::<[u8; 32]>().prop_map(Vec::from),
    ];
    (bytes, proptest::bool::weighted(0.2)).prop_map(|(bytes, upper)| {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if upper { hex.to_ascii_uppercase() } else { hex }
    })
}

fn oid() -> impl Strategy<Value = Oid> {
    oid_text().prop_map(|hex| Oid::parse(&hex).expect("generated ids are valid"))
}

/// Characters git accepts anywhere in a ref name component (some non-ASCII).
const REF_CHARS: &[char] = &[
    'a', 'b', 'c', 'k', 'l', 'o', 'x', 'z', 'A', 'Q', 'Z', '0', '1', '9', '_', '-', 'é', 'ü', '日',
];

/// One path component that git accepts in a ref name: no `..`, no leading or
/// trailing `.`, no leading `-`, no `.lock` suffix, no forbidden character.
fn ref_component() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(proptest::sample::select(REF_CHARS), 1..9),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(mut chars, at, dot)| {
            if chars[0] == '-' {
                chars[0] = 'r';
            }
            // A single dot strictly inside: never `..`, never at either end.
            if dot && chars.len() >= 2 {
                chars.insert(1 + at.index(chars.len() - 1), '.');
            }
            chars.into_iter().collect::<String>()
        })
        .prop_filter("`.lock` ends a ref name component", |c| !c.ends_with(".lock"))
}

/// A full ref name git accepts, valid by construction.
fn valid_ref_name() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("refs/heads/"),
            Just("refs/tags/"),
            Just("refs/notes/"),
            Just("refs/merge-requests/")
        ],
        proptest::collection::vec(ref_component(), 1..4),
    )
        .prop_map(|(prefix, parts)| format!("{prefix}{}", parts.join("/")))
}

/// A ref name git refuses, invalid by construction (a valid name spoiled one way).
fn invalid_ref_name() -> impl Strategy<Value = String> {
    let spoilers = prop_oneof![
        Just(("..", "x")),
        Just(("~", "1")),
        Just(("^", "2")),
        Just((":", "y")),
        Just(("?", "")),
        Just(("*", "")),
        Just(("[", "")),
        Just(("\\", "z")),
        Just(("@{", "u}")),
        Just(("//", "w")),
        Just(("/.", "hidden")),
        Just((".lock", "")),
        Just(("/", "")),
        Just((".", "")),
        Just(("\u{7f}", "")),
        Just(("\u{1}", "")),
        Just(("\t", "tab")),
    ];
    prop_oneof![
        (valid_ref_name(), spoilers).prop_map(|(name, (bad, tail))| format!("{name}{bad}{tail}")),
        // Not under refs/ at all.
        ref_component(),
        Just("HEAD".to_string()),
        Just("refs/heads/".to_string()),
    ]
}

// ---------------------------------------------------------------------------
// Hook stdin

/// What the parser must do with one line of generated hook input.
#[derive(Clone, Debug)]
enum HookLine {
    /// A valid `<old> <new> <ref>` line, maybe CRLF-terminated: kept.
    Valid { text: String, update: RefUpdate },
    /// Junk (no newline in it) that must be reported and skipped.
    Skipped(Vec<u8>),
    /// An empty line (or a lone CR): ignored silently.
    Blank(Vec<u8>),
}

fn valid_hook_line() -> impl Strategy<Value = HookLine> {
    (oid_text(), oid_text(), valid_ref_name(), any::<bool>()).prop_map(|(old, new, name, crlf)| {
        let text = format!("{old} {new} {name}{}", if crlf { "\r" } else { "" });
        let update = RefUpdate {
            name,
            old: Oid::parse(&old).unwrap(),
            new: Oid::parse(&new).unwrap(),
        };
        HookLine::Valid { text, update }
    })
}

/// Whether `line` (one line, CR stripped) has the shape of a valid hook line
/// apart from its ref name: three fields, two of them object ids.
fn has_valid_ids(line: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(line) else {
        return false;
    };
    let fields: Vec<&str> = text.split(' ').collect();
    fields.len() == 3 && Oid::parse(fields[0]).is_some() && Oid::parse(fields[1]).is_some()
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Arbitrary bytes without a newline, classified by construction.
fn arbitrary_junk_line() -> impl Strategy<Value = HookLine> {
    proptest::collection::vec(any::<u8>().prop_filter("one line", |b| *b != b'\n'), 0..80)
        // Random bytes never spell two object ids; make sure, so the expected outcome is known.
        .prop_filter("not shaped like a hook line", |bytes| !has_valid_ids(strip_cr(bytes)))
        .prop_map(|bytes| {
            if strip_cr(&bytes).is_empty() {
                HookLine::Blank(bytes)
            } else {
                HookLine::Skipped(bytes)
            }
        })
}

/// Lines that look almost right but are not.
fn near_miss_line() -> impl Strategy<Value = HookLine> {
    prop_oneof![
        // Invalid ref name.
        (oid_text(), oid_text(), invalid_ref_name()).prop_map(|(o, n, r)| format!("{o} {n} {r}")),
        // A short, long or non-hex object id.
        ("[0-9a-f]{39}", oid_text(), valid_ref_name()).prop_map(|(o, n, r)| format!("{o} {n} {r}")),
        (oid_text(), "[0-9a-f]{41}", valid_ref_name()).prop_map(|(o, n, r)| format!("{o} {n} {r}")),
        (oid_text(), "[0-9a-f]{39}[g-z]", valid_ref_name()).prop_map(|(o, n, r)| format!("{o} {n} {r}")),
        // Wrong number of fields or separators.
        (oid_text(), oid_text()).prop_map(|(o, n)| format!("{o} {n}")),
        (oid_text(), oid_text(), valid_ref_name()).prop_map(|(o, n, r)| format!("{o} {n} {r} extra")),
        (oid_text(), oid_text(), valid_ref_name()).prop_map(|(o, n, r)| format!("{o}  {n} {r}")),
        (oid_text(), oid_text(), valid_ref_name()).prop_map(|(o, n, r)| format!("{o}\t{n}\t{r}")),
        (oid_text(), oid_text(), valid_ref_name()).prop_map(|(o, n, r)| format!(" {o} {n} {r}")),
        (oid_text(), oid_text(), valid_ref_name()).prop_map(|(o, n, r)| format!("{o} {n} {r} ")),
    ]
    .prop_map(|text| HookLine::Skipped(text.into_bytes()))
}

fn blank_line() -> impl Strategy<Value = HookLine> {
    prop_oneof![Just(Vec::new()), Just(b"\r".to_vec())].prop_map(HookLine::Blank)
}

fn hook_line() -> impl Strategy<Value = HookLine> {
    prop_oneof![
        4 => valid_hook_line(),
        3 => arbitrary_junk_line(),
        3 => near_miss_line(),
        1 => blank_line(),
    ]
}

fn hook_stdin(lines: &[HookLine], final_newline: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            bytes.push(b'\n');
        }
        match line {
            HookLine::Valid { text, .. } => bytes.extend_from_slice(text.as_bytes()),
            HookLine::Skipped(junk) | HookLine::Blank(junk) => bytes.extend_from_slice(junk),
        }
    }
    if final_newline && !lines.is_empty() {
        bytes.push(b'\n');
    }
    bytes
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn hook_input_of_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let input = parse_hook_input(&bytes);
        // Whatever is kept is a valid update.
        for update in &input.updates {
            prop_assert!(is_valid_ref_name(&update.name), "kept an invalid ref name {:?}", update.name);
        }
        let lines = bytes.split(|b| *b == b'\n').filter(|l| !strip_cr(l).is_empty()).count();
        prop_assert_eq!(input.updates.len() + input.skipped.len(), lines, "every non-blank line is kept or reported");
    }

    #[test]
    fn hook_input_keeps_every_valid_line_in_order_and_reports_each_junk_line(
        lines in proptest::collection::vec(hook_line(), 0..40),
        final_newline in any::<bool>(),
    ) {
        let stdin = hook_stdin(&lines, final_newline);
        let input = parse_hook_input(&stdin);
        let expected: Vec<RefUpdate> = lines
            .iter()
            .filter_map(|l| match l {
                HookLine::Valid { update, .. } => Some(update.clone()),
                _ => None,
            })
            .collect();
        prop_assert_eq!(&input.updates, &expected, "valid lines, in order");
        // Each skipped line is reported once, naming its own (1-based) line number.
        let expected_skipped: Vec<String> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l, HookLine::Skipped(_)))
            .map(|(i, _)| format!("line {}:", i + 1))
            .collect();
        prop_assert_eq!(input.skipped.len(), expected_skipped.len(), "skipped: {:?}", input.skipped);
        for (message, prefix) in input.skipped.iter().zip(&expected_skipped) {
            prop_assert!(message.starts_with(prefix.as_str()), "{:?} should start with {:?}", message, prefix);
        }
    }
}

// ---------------------------------------------------------------------------
// Spool entries

fn absolute_path() -> impl Strategy<Value = PathBuf> {
    proptest::collection::vec("[^/\u{0}]{1,12}", 1..5).prop_map(|parts| PathBuf::from(format!("/{}", parts.join("/"))))
}

fn ref_update() -> impl Strategy<Value = RefUpdate> {
    (valid_ref_name(), oid(), oid()).prop_map(|(name, old, new)| RefUpdate { name, old, new })
}

fn spool_entry() -> impl Strategy<Value = SpoolEntry> {
    (
        absolute_path(),
        any::<u64>(),
        proptest::collection::vec(ref_update(), 0..20),
    )
        .prop_map(|(repo, received_at_ms, updates)| SpoolEntry {
            version: SPOOL_FORMAT_VERSION,
            repo,
            received_at_ms,
            updates,
        })
}

/// A parsed entry must satisfy everything the reader promises to check.
fn check_accepted_entry(entry: &SpoolEntry) -> Result<(), TestCaseError> {
    prop_assert_eq!(entry.version, SPOOL_FORMAT_VERSION);
    prop_assert!(
        entry.repo.is_absolute(),
        "accepted a relative repository {:?}",
        entry.repo
    );
    for update in &entry.updates {
        prop_assert!(
            is_valid_ref_name(&update.name),
            "accepted an invalid ref name {:?}",
            update.name
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn spool_entries_round_trip(entry in spool_entry(), pretty in any::<bool>()) {
        let bytes = if pretty {
            serde_json::to_vec_pretty(&entry).unwrap()
        } else {
            serde_json::to_vec(&entry).unwrap()
        };
        let parsed = parse_entry(&bytes);
        prop_assert!(parsed.is_ok(), "a valid entry was refused: {:?}", parsed.err());
        prop_assert_eq!(parsed.unwrap(), entry);
    }

    #[test]
    fn spool_entries_of_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(entry) = parse_entry(&bytes) {
            check_accepted_entry(&entry)?;
        }
    }

    #[test]
    fn damaged_spool_entries_never_panic_and_never_pass_bad_values(
        entry in spool_entry(),
        damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = serde_json::to_vec(&entry).unwrap();
        for (at, byte) in damage {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(parsed) = parse_entry(&bytes) {
            check_accepted_entry(&parsed)?;
        }
    }

    #[test]
    fn spool_entries_with_a_bad_field_are_refused(
        entry in spool_entry(),
        bad_ref in invalid_ref_name(),
        old in oid(),
        at in any::<prop::sample::Index>(),
        version in any::<u32>().prop_filter("not the current version", |v| *v != SPOOL_FORMAT_VERSION),
        relative in "[a-z]{1,8}(/[a-z]{1,8}){0,3}",
        which in 0..3u8,
    ) {
        let mut bad = entry.clone();
        match which {
            0 => {
                let i = at.index(bad.updates.len() + 1);
                bad.updates.insert(i, RefUpdate { name: bad_ref, old: old.clone(), new: old });
            }
            1 => bad.version = version,
            _ => bad.repo = PathBuf::from(relative),
        }
        let parsed = parse_entry(&serde_json::to_vec(&bad).unwrap());
        prop_assert!(parsed.is_err(), "accepted {:?}", bad);
    }
}

// ---------------------------------------------------------------------------
// `git push --porcelain`

fn push_flag() -> impl Strategy<Value = (char, PushFlag)> {
    prop_oneof![
        Just((' ', PushFlag::FastForward)),
        Just(('+', PushFlag::Forced)),
        Just(('-', PushFlag::Deleted)),
        Just(('*', PushFlag::New)),
        Just(('!', PushFlag::Rejected)),
        Just(('=', PushFlag::UpToDate)),
    ]
}

/// Summaries as git prints them (never containing ` (`).
fn push_summary() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[new branch]".to_string()),
        Just("[new tag]".to_string()),
        Just("[new reference]".to_string()),
        Just("[up to date]".to_string()),
        Just("[deleted]".to_string()),
        Just("[rejected]".to_string()),
        Just("[remote rejected]".to_string()),
        Just("[remote failure]".to_string()),
        "[0-9a-f]{7,12}\\.\\.\\.?[0-9a-f]{7,12}",
    ]
}

/// Reasons may be anything on one line (hooks write them), parentheses included.
fn push_reason() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        prop_oneof![
            Just("forced update".to_string()),
            Just("stale info".to_string()),
            Just("fetch first".to_string()),
            Just("non-fast-forward".to_string()),
            Just("pre-receive hook declined".to_string()),
            // Hook messages with parentheses of their own.
            Just("hook declined (see policy (main))".to_string()),
            "[a-z ]{0,8} \\([a-z]{0,5}\\)[a-z ()]{0,6}",
            "[^\n\r]{0,40}",
        ]
        .prop_map(Some),
    ]
}

fn push_source() -> impl Strategy<Value = String> {
    prop_oneof![
        oid_text(),
        Just(String::new()),
        valid_ref_name(),
        Just("HEAD".to_string())
    ]
}

fn pushed_ref_line() -> impl Strategy<Value = (String, PushedRef)> {
    (
        push_flag(),
        push_source(),
        valid_ref_name(),
        push_summary(),
        push_reason(),
    )
        .prop_map(|((c, flag), from, to, summary, reason)| {
            let mut line = format!("{c}\t{from}:{to}\t{summary}");
            if let Some(reason) = &reason {
                line.push_str(&format!(" ({reason})"));
            }
            (
                line,
                PushedRef {
                    name: to,
                    flag,
                    summary,
                    reason,
                },
            )
        })
}

/// Lines git prints around the per-ref lines; none starts with a flag and a tab.
fn porcelain_noise() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Done".to_string()),
        Just("error: failed to push some refs to 'x'".to_string()),
        "[A-Za-z][^\n]{0,40}",
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn porcelain_output_of_valid_ref_lines_round_trips(
        url in "[^\n]{0,40}",
        refs in proptest::collection::vec(pushed_ref_line(), 0..30),
        noise in proptest::collection::vec((any::<prop::sample::Index>(), porcelain_noise()), 0..4),
        crlf in any::<bool>(),
    ) {
        let mut lines: Vec<String> = vec![format!("To {url}")];
        lines.extend(refs.iter().map(|(line, _)| line.clone()));
        for (at, line) in noise {
            let i = at.index(lines.len() + 1);
            lines.insert(i, line);
        }
        lines.push("Done".to_string());
        let eol = if crlf { "\r\n" } else { "\n" };
        let output = lines.iter().map(|l| format!("{l}{eol}")).collect::<String>();
        let expected: Vec<PushedRef> = refs.into_iter().map(|(_, r)| r).collect();
        prop_assert_eq!(parse_porcelain(&output), expected);
    }

    #[test]
    fn porcelain_parser_never_panics(output in "[ +\\-*!=\t:()\\[\\]a-z0-9\n.]{0,200}") {
        for pushed in parse_porcelain(&output) {
            prop_assert!(!pushed.name.contains('\n'));
        }
    }

    #[test]
    fn porcelain_parser_never_panics_on_arbitrary_text(output in any::<String>()) {
        let _ = parse_porcelain(&output);
    }
}

// ---------------------------------------------------------------------------
// `git ls-remote --symref`

#[derive(Clone, Debug)]
enum RemoteRef {
    Direct { oid: Oid, peeled: Option<Oid> },
    Symbolic { target: String, resolved: Option<Oid> },
}

fn remote_ref() -> impl Strategy<Value = RemoteRef> {
    prop_oneof![
        3 => (oid(), proptest::option::of(oid())).prop_map(|(oid, peeled)| RemoteRef::Direct { oid, peeled }),
        1 => (valid_ref_name(), proptest::option::of(oid()))
            .prop_map(|(target, resolved)| RemoteRef::Symbolic { target, resolved }),
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn ls_remote_output_round_trips(
        refs in proptest::collection::btree_map(prop_oneof![valid_ref_name(), Just("HEAD".to_string())], remote_ref(), 0..30),
        order in any::<u64>(),
    ) {
        let mut lines = Vec::new();
        let mut expected = RemoteRefs::default();
        for (name, r) in &refs {
            match r {
                RemoteRef::Direct { oid, peeled } => {
                    lines.push(format!("{oid}\t{name}"));
                    if let Some(peeled) = peeled {
                        lines.push(format!("{peeled}\t{name}^{{}}"));
                    }
                    expected.direct.insert(name.clone(), oid.clone());
                }
                RemoteRef::Symbolic { target, resolved } => {
                    lines.push(format!("ref: {target}\t{name}"));
                    if let Some(resolved) = resolved {
                        lines.push(format!("{resolved}\t{name}"));
                    }
                    expected.symbolic.insert(name.clone());
                    if name == "HEAD" {
                        // The mirror's default branch.
                        expected.head = Some(target.clone());
                    }
                }
            }
        }
        // The parser must not depend on the order git happens to print.
        let n = lines.len().max(1) as u64;
        lines.rotate_left((order % n) as usize);
        let output = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        prop_assert_eq!(parse_ls_remote(&output), expected);
    }

    #[test]
    fn ls_remote_parser_never_panics(output in any::<String>()) {
        let refs = parse_ls_remote(&output);
        prop_assert!(refs.direct.keys().all(|name| !refs.symbolic.contains(name)));
    }
}

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

#[test]
fn the_generators_produce_what_they_claim() {
    // Guards the property tests above: a generator that drifted (valid names
    // that git refuses, junk that is secretly valid) would make them vacuous or wrong.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeMap::new();
    for _ in 0..500 {
        let valid = valid_ref_name().new_tree(&mut runner).unwrap().current();
        assert!(is_valid_ref_name(&valid), "{valid:?}");
        let invalid = invalid_ref_name().new_tree(&mut runner).unwrap().current();
        assert!(!is_valid_ref_name(&invalid), "{invalid:?}");
        let line = hook_line().new_tree(&mut runner).unwrap().current();
        let kind = match &line {
            HookLine::Valid { .. } => "valid",
            HookLine::Skipped(_) => "skipped",
            HookLine::Blank(_) => "blank",
        };
        *seen.entry(kind).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3, "every kind of hook line is generated: {seen:?}");
    assert_eq!(TagSelection::default(), TagSelection::All);
}
