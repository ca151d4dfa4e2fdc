//! Properties of the parsers of `git push --porcelain` and `git ls-remote` output: valid lines
//! round-trip through any noise, and arbitrary text never panics.

use super::*;

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
