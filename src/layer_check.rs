//! The layer rule of `lib.rs`, checked on the sources: a file imports only from its own folder and
//! from the folders listed before it, and no two folders import each other, directly or around a
//! longer cycle. A test, so `cargo test` fails the day an import breaks the rule.
//!
//! What counts as an import is any `crate::<folder>` path outside a comment: `use crate::x::…`,
//! `use crate::{x::…, y}`, and paths written inline (`crate::x::f()`), in tests too.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The folders in layer order, lowest first, as `lib.rs`'s list (`//! - [`name`]: …`) gives them.
fn layer_order(lib_rs: &str) -> Vec<String> {
    lib_rs
        .lines()
        .filter_map(|line| line.strip_prefix("//! - [`"))
        .filter_map(|rest| rest.split_once("`]").map(|(name, _)| name.to_string()))
        .collect()
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The source without its comments: what follows `//` on each line is dropped, which is crude for
/// a `//` inside a string (`"https://…"`) but only ever hides code, never invents an import.
fn without_comments(source: &str) -> String {
    source
        .lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first identifier of `text`.
fn leading_ident(text: &str) -> &str {
    let text = text.trim_start();
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The top-level modules a piece of code names through `crate::`, with the line of each.
fn crate_imports(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `my_crate::`, not `crate::`
        }
        let line = code[..at].matches('\n').count() + 1;
        let rest = &code[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            // `crate::{a::b, c}`: the first name of each top-level item of the group.
            Some(group) => {
                let mut depth = 0;
                let mut start = 0;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            found.push((line, leading_ident(&group[start..i]).to_string()));
                            break;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            found.push((line, leading_ident(&group[start..i]).to_string()));
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
            }
            None => found.push((line, leading_ident(rest).to_string())),
        }
    }
    found.retain(|(_, name)| !name.is_empty());
    found
}

/// What breaks the rule under `src`, one line each; empty when the layers hold.
fn violations(src: &Path) -> Vec<String> {
    let lib_rs = fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let order = layer_order(&lib_rs);
    assert!(
        order.len() > 3,
        "lib.rs lists no folders in `//! - [`name`]:` lines: {order:?}"
    );
    let rank = |folder: &str| order.iter().position(|f| f == folder);
    let mut problems = Vec::new();
    // folder → folders it imports
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).expect("under src");
        let first = relative
            .components()
            .next()
            .expect("a path")
            .as_os_str()
            .to_string_lossy();
        let folder = first.strip_suffix(".rs").unwrap_or(&first).to_string();
        let Some(own_rank) = rank(&folder) else {
            continue; // lib.rs, main.rs and this file sit above the folders
        };
        let source = fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        for (line, target) in crate_imports(&without_comments(&source)) {
            let Some(target_rank) = rank(&target) else { continue };
            if target == folder {
                continue;
            }
            edges.entry(folder.clone()).or_default().insert(target.clone());
            if target_rank > own_rank {
                problems.push(format!(
                    "src/{}:{line}: `{folder}` imports `crate::{target}`, a folder after it in lib.rs's list",
                    relative.display()
                ));
            }
        }
    }
    problems.dedup(); // two paths on one line
    problems.extend(folder_cycles(&edges));
    problems
}

/// Each folder-level cycle once, as `a → b → a`.
fn folder_cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut cycles = BTreeSet::new();
    for (start, targets) in edges {
        for next in targets {
            // The shortest path back from `next` to `start`, breadth first.
            let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([next.as_str()]);
            let mut seen = BTreeSet::from([next.as_str()]);
            while let Some(at) = queue.pop_front() {
                if at == start {
                    let mut path = vec![start.as_str()];
                    let mut step = at;
                    while step != next {
                        step = previous[step];
                        path.push(step);
                    }
                    path.push(start.as_str());
                    path.reverse();
                    // The same cycle found from another folder: keyed by its smallest rotation.
                    let ring = &path[..path.len() - 1];
                    let min = (0..ring.len()).min_by_key(|&i| ring[i]).unwrap_or(0);
                    let rotated: Vec<&str> = ring[min..].iter().chain(&ring[..min]).copied().collect();
                    cycles.insert(format!("{} → {}", rotated.join(" → "), rotated[0]));
                    break;
                }
                for to in edges.get(at).into_iter().flatten() {
                    if seen.insert(to.as_str()) {
                        previous.insert(to.as_str(), at);
                        queue.push_back(to.as_str());
                    }
                }
            }
        }
    }
    cycles
        .into_iter()
        .map(|cycle| format!("folder cycle: {cycle}"))
        .collect()
}

#[test]
fn every_module_imports_only_from_its_floor_and_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems = violations(&src);
    assert!(
        problems.is_empty(),
        "the layers of src/lib.rs do not hold ({} problems):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_check_sees_grouped_inline_and_upward_imports() {
    let code = "use crate::util::oid::Oid;\nuse crate::{config::{self, X}, git};\nlet x = crate::mirror::plan::plan(); \
                my_crate::cli::x();";
    let names: Vec<String> = crate_imports(code).into_iter().map(|(_, name)| name).collect();
    assert_eq!(names, ["util", "config", "git", "mirror"]);
    assert_eq!(crate_imports(&without_comments("// use crate::cli::x;\n")), []);
    let edges = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(folder_cycles(&edges), ["folder cycle: a → b → c → a"]);
}
