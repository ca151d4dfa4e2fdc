//! Unknown keys said plainly. A key of the file's top level written below a table header is
//! in that table for TOML (`protected_branches` appended after `[mirror.github]`): the error says
//! to move it up. A misspelled key gets the one that was meant (`brnaches`: `branches`), not the
//! list of every key the table takes. The error keeps its `file:line:column`.

use crate::config::ConfigError;
use crate::config::raw::syntax_error;
use serde::de::DeserializeOwned;
use std::path::Path;

/// `file:line:column: message` for an error reading `text` as a `T` (a whole file), with an unknown
/// key explained (see the module's description).
pub(super) fn toml_error_of<T: DeserializeOwned>(path: &Path, text: &str, error: &toml::de::Error) -> ConfigError {
    let explained = unknown_key(error.message()).map(|(key, expected)| {
        let header = error.span().and_then(|span| table_header_before(text, span.start));
        explain(key, &expected, header, &top_level_keys::<T>(), text)
    });
    syntax_error(
        path,
        text,
        explained.as_deref().unwrap_or(error.message()),
        error.span(),
    )
}

/// The message for the unknown `key` of a table (`header`: its `[…]` line; `None`: the top level)
/// that takes the keys `expected`, in a file whose top level takes `top_level`.
fn explain(key: &str, expected: &[&str], header: Option<&str>, top_level: &[String], text: &str) -> String {
    if let Some(header) = header
        && top_level.iter().any(|top| top == key)
    {
        let first = first_table_header(text).unwrap_or(header);
        return format!(
            "`{key}` belongs at the top of the file: move it above the first table, `{first}` (below a \
             `[…]` line, TOML puts every key into that table, here `{header}`)"
        );
    }
    let place = header.map(|h| format!(" in `{h}`")).unwrap_or_default();
    match crate::util::suggest::closest(key, expected.iter().copied()) {
        Some(meant) => format!("unknown key `{key}`{place}; did you mean `{meant}`?"),
        None => {
            let keys: Vec<String> = expected.iter().map(|k| format!("`{k}`")).collect();
            format!("unknown key `{key}`{place}; the keys here are {}", keys.join(", "))
        }
    }
}

/// The key and the expected keys of serde's "unknown field `key`, expected one of `a`, `b`" (or
/// "expected `a` or `b`").
fn unknown_key(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).collect();
    Some((key, expected))
}

/// The keys a whole file of type `T` takes at its top level. Serde names a struct's fields only
/// in its unknown-field error, so it is asked for one (the empty key is no field of ours).
fn top_level_keys<T: DeserializeOwned>() -> Vec<String> {
    match toml::from_str::<T>("\"\" = 0\n") {
        Err(e) => unknown_key(e.message())
            .map(|(_, expected)| expected.into_iter().map(String::from).collect())
            .unwrap_or_default(),
        Ok(_) => Vec::new(),
    }
}

/// The `[table]` (or `[[array]]`) header line that the byte `offset` of `text` lies under.
fn table_header_before(text: &str, offset: usize) -> Option<&str> {
    text.get(..offset)?.lines().rev().find_map(header_of)
}

fn first_table_header(text: &str) -> Option<&str> {
    text.lines().find_map(header_of)
}

/// A line's table header, `[mirror.github]`, without what follows it (a comment).
fn header_of(line: &str) -> Option<&str> {
    let line = line.trim_start();
    if !line.starts_with('[') {
        return None;
    }
    let end = if line.starts_with("[[") {
        line.find("]]")? + 2
    } else {
        line.find(']')? + 1
    };
    Some(&line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::{RawGlobal, RawRepo};

    fn repo_error(text: &str) -> String {
        let error = toml::from_str::<RawRepo>(text).unwrap_err();
        toml_error_of::<RawRepo>(Path::new("/r/push-mirror.toml"), text, &error).to_string()
    }

    #[test]
    fn a_top_level_key_below_a_table_is_to_be_moved_up() {
        let text = "# mirrors\n[mirror.github]\nurl = \"https://h/a.git\"\n\n[mirror.backup]\nurl = \"/srv/b.git\"\n\
                    protected_branches = [\"main\"]\n";
        assert_eq!(
            repo_error(text),
            "/r/push-mirror.toml:7:1: `protected_branches` belongs at the top of the file: move it above the \
             first table, `[mirror.github]` (below a `[…]` line, TOML puts every key into that table, here \
             `[mirror.backup]`)"
        );
        let text = "[defaults]\ntimeout = \"1m\"\nrepos_root = \"/srv/git\"  # appended\n";
        let error = toml::from_str::<RawGlobal>(text).unwrap_err();
        let shown = toml_error_of::<RawGlobal>(Path::new("/etc/c.toml"), text, &error).to_string();
        assert!(
            shown.starts_with("/etc/c.toml:3:1: `repos_root` belongs at the top of the file"),
            "{shown}"
        );
    }

    #[test]
    fn a_misspelled_key_gets_the_key_that_was_meant() {
        let text = "[mirror.github]\nurl = \"https://h/a.git\"\n  brnaches = [\"main\"]\n";
        assert_eq!(
            repo_error(text),
            "/r/push-mirror.toml:3:3: unknown key `brnaches` in `[mirror.github]`; did you mean `branches`?"
        );
        assert_eq!(
            repo_error("protected_branch = [\"main\"]\n"),
            "/r/push-mirror.toml:1:1: unknown key `protected_branch`; did you mean `protected_branches`?"
        );
        // Nothing close: the keys the table takes.
        assert_eq!(
            repo_error("colour = 1\n"),
            "/r/push-mirror.toml:1:1: unknown key `colour`; the keys here are `protected_branches`, `mirror`"
        );
    }

    #[test]
    fn the_top_level_keys_come_from_the_files_own_definition() {
        assert_eq!(top_level_keys::<RawRepo>(), ["protected_branches", "mirror"]);
        let global = top_level_keys::<RawGlobal>();
        for key in ["spool_dir", "repos_root", "defaults", "retry", "mirror"] {
            assert!(global.iter().any(|k| k == key), "{key}: {global:?}");
        }
    }

    #[test]
    fn headers_are_found_above_a_position() {
        let text = "a = 1\n[mirror.x] # c\nb = 2\n[[arr]]\nc = 3\n";
        assert_eq!(table_header_before(text, 0), None);
        assert_eq!(table_header_before(text, text.find("b =").unwrap()), Some("[mirror.x]"));
        assert_eq!(table_header_before(text, text.find("c =").unwrap()), Some("[[arr]]"));
        assert_eq!(first_table_header(text), Some("[mirror.x]"));
    }
}
