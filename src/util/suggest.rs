//! "Did you mean …?": the configured name closest to a mistyped one.

/// The candidate most like `typed`, if one is close enough to be what was meant.
pub fn closest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(typed, candidate), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_name_is_suggested_and_a_distant_one_is_not() {
        let names = ["github", "backup", "gitlab-backup"];
        assert_eq!(closest("gihub", names), Some("github"));
        assert_eq!(closest("bakup", names), Some("backup"));
        assert_eq!(closest("Backup", names), Some("backup"));
        assert_eq!(closest("codecommit", names), None);
        assert_eq!(closest("x", []), None);
    }
}
