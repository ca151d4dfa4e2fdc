//! Properties of hook stdin and spool entries: arbitrary bytes never panic, valid lines and entries
//! survive whatever surrounds them, and damaged entries never pass bad values.

use super::*;

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
