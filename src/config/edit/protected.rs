//! `protect` and `unprotect`: the repository's `protected_branches`, edited in place at the top of
//! `push-mirror.toml` (where TOML needs it: before the first table), keeping comments and layout.

use super::layout::{detached_part, next_position, raw_str, table_at_mut};
use super::{EditError, parse};
use toml_edit::{Array, Item, Value};

const KEY: &str = "protected_branches";

/// Adds `patterns` to `protected_branches` (created above the first table when missing); patterns
/// already there are left as they are. Returns the new text and the patterns it holds.
pub fn protect(text: &str, patterns: &[String]) -> Result<(String, Vec<String>), EditError> {
    let mut doc = parse(text)?;
    let mut list = current(&doc)?;
    let mut array = match doc.get(KEY).and_then(Item::as_array) {
        Some(array) => array.clone(),
        None => Array::new(),
    };
    for pattern in patterns {
        if !list.contains(pattern) {
            array.push(pattern.as_str());
            list.push(pattern.clone());
        }
    }
    match doc.get_mut(KEY) {
        // Replaced in place: the key keeps its position, comments and formatting.
        Some(Item::Value(value)) => {
            let decor = value.decor().clone();
            *value = Value::Array(array);
            *value.decor_mut() = decor;
        }
        _ => insert_above_tables(&mut doc, array),
    }
    Ok((doc.to_string(), list))
}

/// Inserts the key at the top level, which TOML writes before the first table. The comments
/// above that table's header stay with it; those separated from it by a blank line (a comment
/// about the whole file) stay above the key.
fn insert_above_tables(doc: &mut toml_edit::DocumentMut, array: Array) {
    let first = next_position(doc.as_table(), isize::MIN);
    let has_values = doc.iter().any(|(_, item)| item.is_value());
    doc.insert(KEY, Item::Value(Value::Array(array)));
    let (Some(first), false) = (first, has_values) else {
        return;
    };
    let Some(table) = table_at_mut(doc.as_table_mut(), first) else {
        return;
    };
    let prefix = table.decor().prefix().map(raw_str).unwrap_or_default().to_string();
    let above = detached_part(&prefix).to_string();
    table.decor_mut().set_prefix(format!("\n{}", &prefix[above.len()..]));
    if let Some(mut key) = doc.key_mut(KEY) {
        key.leaf_decor_mut().set_prefix(above);
    }
}

/// Removes `patterns` from `protected_branches` (the key goes when none is left). A pattern that
/// is not there is refused, naming the ones that are: nothing is changed.
pub fn unprotect(text: &str, patterns: &[String]) -> Result<(String, Vec<String>), EditError> {
    let mut doc = parse(text)?;
    let list = current(&doc)?;
    if let Some(missing) = patterns.iter().find(|p| !list.contains(p)) {
        let hint = match crate::util::suggest::closest(missing, list.iter().map(String::as_str)) {
            Some(close) => format!("; did you mean `{close}`?"),
            None if list.is_empty() => " (there are none)".to_string(),
            None => {
                let names: Vec<String> = list.iter().map(|p| format!("`{p}`")).collect();
                format!(" (they are {})", names.join(", "))
            }
        };
        return Err(EditError::InvalidValue(format!(
            "`{missing}` is not one of the protected_branches patterns{hint}"
        )));
    }
    let left: Vec<String> = list.into_iter().filter(|p| !patterns.contains(p)).collect();
    if left.is_empty() {
        remove_above_tables(&mut doc);
    } else if let Some(array) = doc.get_mut(KEY).and_then(Item::as_array_mut) {
        array.retain(|value| value.as_str().is_none_or(|p| !patterns.iter().any(|q| q == p)));
    }
    Ok((doc.to_string(), left))
}

/// Removes the key; the comment lines above it go to the first table, so that `protect` then
/// `unprotect` gives back the file as it was.
fn remove_above_tables(doc: &mut toml_edit::DocumentMut) {
    let above = doc
        .key(KEY)
        .and_then(|key| key.leaf_decor().prefix().map(|p| raw_str(p).to_string()))
        .unwrap_or_default();
    doc.remove(KEY);
    let first = next_position(doc.as_table(), isize::MIN);
    let table = first.and_then(|first| table_at_mut(doc.as_table_mut(), first));
    match table {
        Some(table) => {
            let prefix = table.decor().prefix().map(raw_str).unwrap_or_default().to_string();
            let prefix = prefix.strip_prefix('\n').unwrap_or(&prefix);
            table.decor_mut().set_prefix(format!("{above}{prefix}"));
        }
        None => {
            let trailing = raw_str(doc.trailing()).to_string();
            doc.set_trailing(format!("{above}{trailing}"));
        }
    }
}

/// The patterns the file has now.
fn current(doc: &toml_edit::DocumentMut) -> Result<Vec<String>, EditError> {
    match doc.get(KEY) {
        None => Ok(Vec::new()),
        Some(item) => item
            .as_array()
            .and_then(|array| array.iter().map(|v| v.as_str().map(String::from)).collect())
            .ok_or_else(|| EditError::Parse(format!("`{KEY}` is not an array of patterns"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn protect_adds_the_key_above_the_first_table_and_keeps_comments() {
        let text =
            "# Mirrors of app.git.\n\n# GitHub, for the public.\n[mirror.github]\nurl = \"https://h/a.git\" # ours\n";
        let (new, list) = protect(text, &strings(&["main", "release/*"])).unwrap();
        assert_eq!(list, ["main", "release/*"]);
        assert_eq!(
            new,
            "# Mirrors of app.git.\n\nprotected_branches = [\"main\", \"release/*\"]\n\n# GitHub, for the public.\n\
             [mirror.github]\nurl = \"https://h/a.git\" # ours\n"
        );
        let parsed: toml::Table = new.parse().unwrap();
        assert_eq!(parsed["protected_branches"].as_array().unwrap().len(), 2);
        let (new, _) = protect("[mirror.a]\nurl = \"/srv/a.git\"\n", &strings(&["main"])).unwrap();
        assert_eq!(
            new,
            "protected_branches = [\"main\"]\n\n[mirror.a]\nurl = \"/srv/a.git\"\n"
        );

        // Again, with one already there: added once, the key stays where it is with its comment.
        let text = "protected_branches = [\"main\"] # reviewed\n\n[mirror.a]\nurl = \"/srv/a.git\"\n";
        let (new, list) = protect(text, &strings(&["main", "stable"])).unwrap();
        assert_eq!(list, ["main", "stable"]);
        assert_eq!(
            new,
            "protected_branches = [\"main\", \"stable\"] # reviewed\n\n[mirror.a]\nurl = \"/srv/a.git\"\n"
        );
        assert_eq!(
            protect("", &strings(&["main"])).unwrap().0,
            "protected_branches = [\"main\"]\n"
        );
    }

    #[test]
    fn protect_then_unprotect_gives_back_the_file() {
        for text in [
            "# Mirrors of app.git.\n\n# GitHub, for the public.\n[mirror.github]\nurl = \"https://h/a.git\" # ours\n",
            "[mirror.a]\nurl = \"/srv/a.git\"\n",
            "# Only a comment.\n",
            "",
        ] {
            let (protected, _) = protect(text, &strings(&["main"])).unwrap();
            assert_eq!(
                unprotect(&protected, &strings(&["main"])).unwrap().0,
                text,
                "{protected}"
            );
        }
    }

    #[test]
    fn unprotect_removes_patterns_and_the_key_with_the_last_one() {
        let text = "protected_branches = [\"main\", \"stable\"]\n[mirror.a]\nurl = \"/srv/a.git\"\n";
        let (new, left) = unprotect(text, &strings(&["stable"])).unwrap();
        assert_eq!(left, ["main"]);
        assert_eq!(
            new,
            "protected_branches = [\"main\"]\n[mirror.a]\nurl = \"/srv/a.git\"\n"
        );
        let (new, left) = unprotect(&new, &strings(&["main"])).unwrap();
        assert!(left.is_empty());
        assert_eq!(new, "[mirror.a]\nurl = \"/srv/a.git\"\n");

        let err = unprotect(text, &strings(&["stabel"])).unwrap_err().to_string();
        assert_eq!(
            err,
            "`stabel` is not one of the protected_branches patterns; did you mean `stable`?"
        );
        let err = unprotect("", &strings(&["main"])).unwrap_err().to_string();
        assert!(err.ends_with("(there are none)"), "{err}");
        let err = protect("protected_branches = 5\n", &strings(&["main"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an array"), "{err}");
    }
}
