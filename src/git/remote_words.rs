//! The mirror's own words: the `remote:` lines a server prints when it refuses a push (a forge's
//! `GH006: Protected branch update failed`, `pack exceeds maximum allowed size`, an fsck error),
//! cleaned so they can be stored and shown: control characters and git's padding removed,
//! git's own progress lines dropped, length bounded. Redaction is the caller's (it knows the
//! mirror's secrets).

/// At most this many characters of one line are kept.
const MAX_LINE: usize = 300;
/// At most this many lines are kept: the first ones (where forges put the reason), then the last.
const MAX_LINES: usize = 8;

/// Progress and summary lines that receive-pack itself prints: never a reason.
const GIT_PROGRESS: &[&str] = &[
    "Resolving deltas",
    "Counting objects",
    "Compressing objects",
    "Writing objects",
    "Unpacking objects",
    "Enumerating objects",
    "Total ",
    "Processing",
];

/// The cleaned `remote:` lines of git's stderr, in order.
pub fn remote_lines(stderr: &str) -> Vec<String> {
    // Progress is redrawn with `\r`: only the last state of such a line is real text.
    let lines: Vec<String> = stderr
        .lines()
        .map(|line| line.rsplit('\r').find(|part| !part.trim().is_empty()).unwrap_or(""))
        .filter_map(|line| line.strip_prefix("remote:"))
        .map(clean)
        .filter(|line| !line.is_empty() && !GIT_PROGRESS.iter().any(|p| line.starts_with(p)))
        .collect();
    bound(lines)
}

/// One line without ANSI escape sequences, control characters or surrounding blanks, cut to
/// [`MAX_LINE`] characters.
pub fn clean(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI `ESC [ params letter`, or a two-character escape.
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if c == '\t' {
            out.push(' ');
        } else if !c.is_control() {
            out.push(c);
        }
    }
    let trimmed = out.trim();
    if trimmed.chars().count() > MAX_LINE {
        let cut: String = trimmed.chars().take(MAX_LINE).collect();
        format!("{cut}…")
    } else {
        trimmed.to_string()
    }
}

/// The first lines and the last one when there are too many.
fn bound(mut lines: Vec<String>) -> Vec<String> {
    if lines.len() > MAX_LINES {
        let last = lines.pop().unwrap_or_default();
        lines.truncate(MAX_LINES - 2);
        lines.push("…".to_string());
        lines.push(last);
    }
    lines
}

/// The mirror's lines of one push, to be attributed to each ref it refused: the lines that
/// name the ref (full or short), or all of them when no line names any refused ref (a per-ref
/// hook that refuses two refs usually says which). Whether any line names a ref is worked out
/// once, so attributing to every ref of a push of n refused refs is linear in n.
pub struct Attribution<'a> {
    lines: &'a [String],
    any_named: bool,
}

impl<'a> Attribution<'a> {
    pub fn new(lines: &'a [String], refused: &[&str]) -> Attribution<'a> {
        let any_named = lines.iter().any(|l| refused.iter().any(|r| names_ref(l, r)));
        Attribution { lines, any_named }
    }

    /// The lines about `ref_name`.
    pub fn lines_about(&self, ref_name: &str) -> Vec<&'a str> {
        self.lines
            .iter()
            .filter(|l| !self.any_named || names_ref(l, ref_name))
            .map(String::as_str)
            .collect()
    }
}

/// Whether `line` names `ref_name`, in full or short (`refs/heads/main` or `main`).
pub fn names_ref(line: &str, ref_name: &str) -> bool {
    mentions(line, ref_name) || mentions(line, short_name(ref_name))
}

/// `main` for `refs/heads/main`, `v1` for `refs/tags/v1`.
fn short_name(name: &str) -> &str {
    name.strip_prefix("refs/heads/")
        .or_else(|| name.strip_prefix("refs/tags/"))
        .unwrap_or(name)
}

/// Whether `line` contains `word` not as part of a longer name (`main` is not in `maintenance`).
fn mentions(line: &str, word: &str) -> bool {
    let is_name_char = |c: char| c.is_alphanumeric() || "-_./".contains(c);
    line.match_indices(word).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        !before.is_some_and(is_name_char) && !after.is_some_and(|c| is_name_char(c) && c != '.')
    })
}

/// A refusal reason with the mirror's words: `pre-receive hook declined: GH006: …`.
pub fn with_words(reason: &str, words: &[&str]) -> String {
    if words.is_empty() {
        reason.to_string()
    } else {
        format!("{reason}: {}", words.join(" / "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_lines_are_extracted_and_cleaned() {
        // Captured from git 2.47 pushing to a mirror whose pre-receive hook prints a GH006-style
        // refusal (with the padding git adds to clear progress) and colours.
        let stderr = "remote: GH006: Protected branch update failed for refs/heads/prot.        \n\
remote: \u{1b}[1;31merror\u{1b}[m: Changes must be made through a pull request.        \n\
remote: Resolving deltas: 100% (3/3), done.\n\
error: failed to push some refs to 'file:///tmp/m.git'\n";
        assert_eq!(
            remote_lines(stderr),
            [
                "GH006: Protected branch update failed for refs/heads/prot.",
                "error: Changes must be made through a pull request."
            ]
        );
    }

    #[test]
    fn control_characters_are_removed_and_length_is_bounded() {
        assert_eq!(clean("a\u{7}b\u{0}c\td"), "abc d");
        let long = "x".repeat(1000);
        assert_eq!(clean(&long).chars().count(), MAX_LINE + 1);
        let many: String = (0..20).map(|i| format!("remote: line {i}\n")).collect();
        let lines = remote_lines(&many);
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(lines[MAX_LINES - 2], "…");
        assert_eq!(lines[MAX_LINES - 1], "line 19");
    }

    #[test]
    fn lines_are_attributed_to_the_refs_they_name() {
        let lines = vec![
            "refusing refs/heads/a: protected".to_string(),
            "refusing b: frozen".to_string(),
            "see the policy".to_string(),
        ];
        let all = ["refs/heads/a", "refs/heads/b", "refs/heads/main"];
        let attribution = Attribution::new(&lines, &all);
        assert_eq!(
            attribution.lines_about("refs/heads/a"),
            ["refusing refs/heads/a: protected"]
        );
        assert_eq!(attribution.lines_about("refs/heads/b"), ["refusing b: frozen"]);
        // A ref no line names gets nothing when other lines name refs: they are about those.
        assert!(attribution.lines_about("refs/heads/main").is_empty());
        let general = vec!["push rejected by policy".to_string()];
        assert_eq!(
            Attribution::new(&general, &all).lines_about("refs/heads/main"),
            ["push rejected by policy"]
        );
        // `a` is not mentioned by `maintenance`.
        let other = vec!["maintenance window".to_string()];
        assert_eq!(
            Attribution::new(&other, &["refs/heads/a"]).lines_about("refs/heads/a"),
            ["maintenance window"]
        );
    }

    #[test]
    fn reasons_carry_the_words() {
        assert_eq!(with_words("unpacker error", &[]), "unpacker error");
        assert_eq!(
            with_words("unpacker error", &["fatal: pack exceeds maximum allowed size", "x"]),
            "unpacker error: fatal: pack exceeds maximum allowed size / x"
        );
    }
}
