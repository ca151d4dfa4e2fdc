//! Which refs a mirror carries and what it does to refs deleted locally: the rules a mirror's
//! settings resolve to (docs/mirroring.md: "Mirror semantics"), built by the configuration and read by the pure
//! planner (`mirror::plan`), and the `*` patterns that branch, tag and fleet settings use.
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;

/// Which refs a mirror carries, and what it does to refs deleted locally (docs/mirroring.md: "Mirror semantics").
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MirrorRules {
    /// `branches = [...]`: when set, a branch (name without `refs/heads/`) must
    /// match one of these patterns.
    pub branch_patterns: Option<Vec<String>>,
    /// `only_protected_branches = true`: `Some(the repository's protected_branches
    /// patterns)`. `Some(vec![])` selects no branch at all (and warns).
    /// When both this and `branch_patterns` are set, a branch must match both.
    pub protected_only: Option<Vec<String>>,
    /// Tags: all, none, or those (name without `refs/tags/`) matching a pattern.
    pub tags: TagSelection,
    /// Extra namespaces, as patterns over full ref names (`refs/notes/*`).
    pub extra_refs: Vec<String>,
    /// `keep_divergent_refs = true`.
    pub keep_divergent_refs: bool,
    /// `prune_unmerged = true`: a ref deleted locally is deleted on the mirror even when its work
    /// is not merged into the default branch (never in keep-divergent mode).
    pub prune_unmerged: bool,
}

impl std::fmt::Debug for MirrorRules {
    // By hand: a mirror's known refs are tied to a hash of this form (`mirror::verify::identity`).
    // A setting shown only when it is on leaves the form, and so the identity, of every mirror
    // that does not use it as it was: adding one costs no full reconciliation of every mirror.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut rules = f.debug_struct("MirrorRules");
        rules
            .field("branch_patterns", &self.branch_patterns)
            .field("protected_only", &self.protected_only)
            .field("tags", &self.tags)
            .field("extra_refs", &self.extra_refs)
            .field("keep_divergent_refs", &self.keep_divergent_refs);
        if self.prune_unmerged {
            rules.field("prune_unmerged", &self.prune_unmerged);
        }
        rules.finish()
    }
}

/// `tags = true | false | ["v*", ...]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TagSelection {
    #[default]
    All,
    None,
    Matching(Vec<String>),
}

impl<'de> Deserialize<'de> for TagSelection {
    // By hand rather than `#[serde(untagged)]`, whose error ("did not match any
    // variant") does not say what is expected.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TagsVisitor;
        impl<'de> Visitor<'de> for TagsVisitor {
            type Value = TagSelection;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or an array of tag patterns")
            }
            fn visit_bool<E: de::Error>(self, all: bool) -> Result<TagSelection, E> {
                Ok(if all { TagSelection::All } else { TagSelection::None })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TagSelection, A::Error> {
                let mut patterns = Vec::new();
                while let Some(pattern) = seq.next_element::<String>()? {
                    patterns.push(pattern);
                }
                Ok(TagSelection::Matching(patterns))
            }
        }
        deserializer.deserialize_any(TagsVisitor)
    }
}

/// Whether `pattern` matches the whole of `name`: `*` matches any run of
/// characters, `/` included; every other character is literal.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    // Classic greedy wildcard matching: on a mismatch only the most recent `*`
    // needs to swallow one more byte, so this is O(pattern × name) at worst and
    // never exponential. Bytes are fine for UTF-8: `*` is ASCII, and a literal
    // run between stars can only match a valid UTF-8 string at char boundaries.
    let (pattern, name) = (pattern.as_bytes(), name.as_bytes());
    let (mut p, mut n) = (0, 0);
    // (index of the last `*` in the pattern, name index it currently extends to)
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if pattern.get(p) == Some(&b'*') {
            star = Some((p, n));
            p += 1;
        } else if pattern.get(p) == Some(&name[n]) {
            p += 1;
            n += 1;
        } else if let Some((star_p, star_n)) = star {
            star = Some((star_p, star_n + 1));
            p = star_p + 1;
            n = star_n + 1;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|pattern| pattern_matches(pattern, name))
}

/// An unset filter lets everything through; a set one (even empty) must match.
fn passes_filter(filter: Option<&[String]>, name: &str) -> bool {
    filter.is_none_or(|patterns| matches_any(patterns, name))
}

impl MirrorRules {
    /// Whether the mirror carries this full ref name at all (filters included).
    /// Warnings are reported by the planner (`mirror::plan`), not here.
    pub fn in_scope(&self, name: &str) -> bool {
        if let Some(branch) = name.strip_prefix("refs/heads/") {
            passes_filter(self.branch_patterns.as_deref(), branch)
                && passes_filter(self.protected_only.as_deref(), branch)
        } else if let Some(tag) = name.strip_prefix("refs/tags/") {
            match &self.tags {
                TagSelection::All => true,
                TagSelection::None => false,
                TagSelection::Matching(patterns) => matches_any(patterns, tag),
            }
        } else {
            // `HEAD`, `FETCH_HEAD` and the like are never mirrored, whatever the patterns say.
            name.starts_with("refs/") && matches_any(&self.extra_refs, name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    const MAIN: &str = "refs/heads/main";
    const DEV: &str = "refs/heads/dev";
    const TAG: &str = "refs/tags/v1.0";

    // ---- pattern_matches -------------------------------------------------

    #[test]
    fn star_alone_matches_any_name_including_empty_and_slashes() {
        for name in ["", "main", "release/a/b", "/", "a*b"] {
            assert!(pattern_matches("*", name), "{name:?}");
        }
    }

    #[test]
    fn star_crosses_slashes() {
        assert!(pattern_matches("release/*", "release/a"));
        assert!(pattern_matches("release/*", "release/a/b"));
        assert!(pattern_matches("release/*", "release/"));
        assert!(!pattern_matches("release/*", "release"));
        assert!(!pattern_matches("release/*", "releases/a"));
        assert!(pattern_matches("*/fix", "team/a/fix"));
    }

    #[test]
    fn pattern_matches_the_whole_name_not_a_prefix_or_suffix() {
        assert!(pattern_matches("main", "main"));
        assert!(!pattern_matches("main", "main2"));
        assert!(!pattern_matches("main", "xmain"));
        assert!(!pattern_matches("main", "mai"));
        assert!(!pattern_matches("v*", "xv1"));
        assert!(!pattern_matches("*-rc", "1.0-rc1"));
    }

    #[test]
    fn question_mark_brackets_and_braces_are_literal() {
        assert!(pattern_matches("v?", "v?"));
        assert!(!pattern_matches("v?", "v1"));
        assert!(pattern_matches("[ab]", "[ab]"));
        assert!(!pattern_matches("[ab]", "a"));
        assert!(pattern_matches("{a,b}", "{a,b}"));
        assert!(!pattern_matches("{a,b}", "a"));
        assert!(pattern_matches("x\\*", "x\\anything"), "backslash is literal too");
        assert!(!pattern_matches("x\\*", "x*"));
    }

    #[test]
    fn empty_pattern_matches_only_the_empty_name() {
        assert!(pattern_matches("", ""));
        assert!(!pattern_matches("", "a"));
        assert!(!pattern_matches("a", ""));
        assert!(pattern_matches("**", ""));
    }

    #[test]
    fn multiple_stars() {
        assert!(pattern_matches("a*b*c", "abc"));
        assert!(pattern_matches("a*b*c", "a-x/b-y/c"));
        assert!(!pattern_matches("a*b*c", "acb"));
        assert!(pattern_matches("**", "anything/at/all"));
        assert!(pattern_matches("*a*", "banana"));
        assert!(!pattern_matches("*a*", "xyz"));
        assert!(pattern_matches("*/*/*", "a/b/c"));
        assert!(!pattern_matches("*/*/*", "a/b"));
    }

    #[test]
    fn star_retries_later_positions() {
        assert!(pattern_matches("*ab", "aab"));
        assert!(pattern_matches("a*ab", "aab"));
        assert!(pattern_matches("a*b", "abab"));
        assert!(pattern_matches("*a", "ba"));
        assert!(pattern_matches("*aab", "aaab"));
        assert!(!pattern_matches("*ab", "aba"));
    }

    #[test]
    fn non_ascii_names_match_by_character() {
        assert!(pattern_matches("feat/*", "feat/ünïcode"));
        assert!(pattern_matches("*é", "café"));
        assert!(pattern_matches("caf*", "café"));
        assert!(!pattern_matches("cafe", "café"));
    }

    #[test]
    fn pathological_star_pattern_finishes_quickly() {
        // Exponential in a backtracking matcher; quadratic at worst here.
        let pattern = format!("{}b", "a*".repeat(40));
        let name = "a".repeat(5_000);
        assert!(!pattern_matches(&pattern, &name));
        assert!(pattern_matches(&pattern, &format!("{name}b")));
    }

    // ---- in_scope ----------------------------------------------------------

    #[test]
    fn default_scope_is_branches_and_tags_only() {
        let rules = MirrorRules::default();
        assert!(rules.in_scope(MAIN));
        assert!(rules.in_scope("refs/heads/feature/x"));
        assert!(rules.in_scope(TAG));
        for name in [
            "refs/notes/commits",
            "refs/merge-requests/1/head",
            "refs/pull/1/head",
            "refs/remotes/origin/main",
            "refs/keep-around/abc",
            "HEAD",
            "FETCH_HEAD",
            "main",
            "",
        ] {
            assert!(!rules.in_scope(name), "{name:?}");
        }
    }

    #[test]
    fn branch_patterns_select_branches_by_short_name_and_leave_tags_alone() {
        let rules = MirrorRules {
            branch_patterns: Some(strings(&["main", "release/*"])),
            ..MirrorRules::default()
        };
        assert!(rules.in_scope(MAIN));
        assert!(rules.in_scope("refs/heads/release/1.x/hotfix"));
        assert!(!rules.in_scope(DEV));
        assert!(rules.in_scope(TAG));

        let full_names = MirrorRules {
            branch_patterns: Some(strings(&["refs/heads/main"])),
            ..MirrorRules::default()
        };
        assert!(!full_names.in_scope(MAIN), "patterns are over the branch name");
    }

    #[test]
    fn protected_only_selects_protected_branches() {
        let rules = MirrorRules {
            protected_only: Some(strings(&["main", "stable-*"])),
            ..MirrorRules::default()
        };
        assert!(rules.in_scope(MAIN));
        assert!(rules.in_scope("refs/heads/stable-2"));
        assert!(!rules.in_scope(DEV));
        assert!(rules.in_scope(TAG));
    }

    #[test]
    fn protected_only_and_branch_patterns_must_both_match() {
        let rules = MirrorRules {
            branch_patterns: Some(strings(&["release/*", "main"])),
            protected_only: Some(strings(&["release/*", "dev"])),
            ..MirrorRules::default()
        };
        assert!(rules.in_scope("refs/heads/release/1"));
        assert!(!rules.in_scope(MAIN), "not protected");
        assert!(!rules.in_scope(DEV), "not in branches");
    }

    #[test]
    fn empty_branch_patterns_select_no_branch() {
        let rules = MirrorRules {
            branch_patterns: Some(vec![]),
            ..MirrorRules::default()
        };
        assert!(!rules.in_scope(MAIN));
        assert!(rules.in_scope(TAG));
    }

    #[test]
    fn tags_can_be_filtered_by_pattern() {
        let rules = MirrorRules {
            tags: TagSelection::Matching(strings(&["v*"])),
            ..MirrorRules::default()
        };
        assert!(rules.in_scope(TAG));
        assert!(rules.in_scope("refs/tags/v2/beta"));
        assert!(!rules.in_scope("refs/tags/nightly-1"));
        assert!(rules.in_scope(MAIN));
    }

    #[test]
    fn extra_namespaces_are_opt_in_by_full_name() {
        let rules = MirrorRules {
            extra_refs: strings(&["refs/notes/*"]),
            ..MirrorRules::default()
        };
        assert!(rules.in_scope("refs/notes/commits"));
        assert!(!rules.in_scope("refs/merge-requests/1/head"));
        assert!(!rules.in_scope("notes/commits"));
    }

    #[test]
    fn extra_patterns_never_select_names_outside_refs() {
        let rules = MirrorRules {
            extra_refs: strings(&["*"]),
            ..MirrorRules::default()
        };
        assert!(rules.in_scope("refs/anything/at/all"));
        assert!(!rules.in_scope("HEAD"));
        assert!(!rules.in_scope("FETCH_HEAD"));
        assert!(!rules.in_scope("ORIG_HEAD"));
    }

    #[test]
    fn extra_patterns_do_not_override_branch_and_tag_filters() {
        let rules = MirrorRules {
            branch_patterns: Some(strings(&["main"])),
            tags: TagSelection::None,
            extra_refs: strings(&["refs/*"]),
            ..MirrorRules::default()
        };
        assert!(rules.in_scope(MAIN));
        assert!(!rules.in_scope(DEV));
        assert!(!rules.in_scope(TAG));
        assert!(rules.in_scope("refs/notes/commits"));
    }

    #[test]
    fn the_rules_debug_form_only_shows_prune_unmerged_when_on() {
        // Known refs are tied to a hash of this form: mirrors that do not use prune_unmerged keep
        // the identity they had before it existed.
        let rules = MirrorRules::default();
        assert_eq!(
            format!("{rules:?}"),
            "MirrorRules { branch_patterns: None, protected_only: None, tags: All, extra_refs: [], \
             keep_divergent_refs: false }"
        );
        let pruning = MirrorRules {
            prune_unmerged: true,
            ..MirrorRules::default()
        };
        assert!(format!("{pruning:?}").ends_with("keep_divergent_refs: false, prune_unmerged: true }"));
    }
}
