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

mod config_files;
mod git_output;
mod hook_and_spool;

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
