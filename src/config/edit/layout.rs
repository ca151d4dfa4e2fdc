//! Where things sit in an edited file, so an edit keeps the admin's layout: the position of a new
//! table after the last one, the table that follows a removed one, and which comment lines belong
//! to a table (those attached above its header) and go with it.

use toml_edit::{Item, Table};
pub(super) fn raw_str(raw: &toml_edit::RawString) -> &str {
    raw.as_str().unwrap_or_default()
}

/// Visits every table of the document (not inline ones), depth first.
fn for_each_table<'t>(table: &'t Table, f: &mut dyn FnMut(&'t Table)) {
    f(table);
    for (_, item) in table.iter() {
        match item {
            Item::Table(t) => for_each_table(t, f),
            Item::ArrayOfTables(array) => array.iter().for_each(|t| for_each_table(t, f)),
            _ => {}
        }
    }
}

pub(super) fn last_position(root: &Table) -> isize {
    let mut last = 0;
    for_each_table(root, &mut |t| {
        if let Some(p) = t.position() {
            last = last.max(p);
        }
    });
    last
}

/// The position of the first table with a header after `position`.
pub(super) fn next_position(root: &Table, position: isize) -> Option<isize> {
    let mut next: Option<isize> = None;
    for_each_table(root, &mut |t| {
        if t.is_implicit() || t.is_dotted() {
            return;
        }
        if let Some(p) = t.position().filter(|p| *p > position) {
            next = Some(next.map_or(p, |n| n.min(p)));
        }
    });
    next
}

pub(super) fn table_at_mut(table: &mut Table, position: isize) -> Option<&mut Table> {
    if table.position() == Some(position) && !table.is_implicit() && !table.is_dotted() {
        return Some(table);
    }
    for (_, item) in table.iter_mut() {
        let found = match item {
            Item::Table(t) => table_at_mut(t, position),
            Item::ArrayOfTables(array) => array.iter_mut().find_map(|t| table_at_mut(t, position)),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

pub(super) fn ends_with_blank_line(text: &str) -> bool {
    text.ends_with("\n\n") || text == "\n"
}

/// The part of a header's prefix up to and including its last blank line: the
/// comment lines after it are attached to the header.
pub(super) fn detached_part(prefix: &str) -> &str {
    let mut end = 0;
    let mut at = 0;
    for line in prefix.split_inclusive('\n') {
        at += line.len();
        if line.ends_with('\n') && is_blank(line) {
            end = at;
        }
    }
    &prefix[..end]
}

/// What follows a removed table, without its first comment lines up to a
/// blank line (they were the removed table's last lines). Without a blank
/// line they might as well belong to what follows, so they stay.
pub(super) fn after_attached_lines(text: &str) -> &str {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if !line.ends_with('\n') {
            break;
        }
        if is_blank(line) {
            return &text[at..];
        }
        at += line.len();
    }
    text
}
