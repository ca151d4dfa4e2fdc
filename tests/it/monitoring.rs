//! Monitoring: `metrics` writes the Prometheus text exposition format (checked here by a strict
//! parser) whose numbers match `status --json`, atomically, with Nagios-style exit codes.

use crate::support::binary::*;
use crate::support::{TestEnv, path_str, wait_until};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

mod alerts;
mod metrics;

// ---------------------------------------------------------------------------
// A strict parser of the text exposition format (version 0.0.4)

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct Exposition {
    help: BTreeMap<String, String>,
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s.parse::<f64>().map_err(|e| format!("bad value {s:?}: {e}")),
    }
}

/// Parses `{a="x",b="y"}` starting at `rest` (after the name); returns labels and what follows.
fn parse_labels(rest: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let Some(mut rest) = rest.strip_prefix('{') else {
        return Ok((labels, rest));
    };
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..].strip_prefix('"').ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in label value")),
                },
                Some((_, '\n')) => return Err("raw line feed in label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} repeated"));
        }
        rest = &rest[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected , or }} after a label, got {rest:?}"));
        }
    }
}

/// Parses strictly: HELP/TYPE at most once per family and before its samples, a family's
/// samples contiguous, valid names, escapes and values, no duplicate series, final newline.
fn parse_exposition(text: &str) -> Result<Exposition, String> {
    if !text.ends_with('\n') {
        return Err("the text must end with a line feed".into());
    }
    let mut exp = Exposition::default();
    let mut finished_families = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        let mut switch_to = |family: &str, current: &mut Option<String>| -> Result<(), String> {
            if current.as_deref() != Some(family) {
                if finished_families.contains(family) {
                    return Err(format!("family {family} is not contiguous"));
                }
                if let Some(previous) = current.take() {
                    finished_families.insert(previous);
                }
                *current = Some(family.to_string());
            }
            Ok(())
        };
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.trim_start().splitn(3, ' ').collect();
            match words.as_slice() {
                ["HELP", name, help] => {
                    if !is_metric_name(name) {
                        return Err(at("bad metric name".into()));
                    }
                    switch_to(name, &mut current).map_err(at)?;
                    if exp.help.insert(name.to_string(), help.to_string()).is_some() {
                        return Err(at("second HELP".into()));
                    }
                }
                ["TYPE", name, kind] => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(kind) {
                        return Err(at(format!("unknown type {kind}")));
                    }
                    switch_to(name, &mut current).map_err(at)?;
                    if exp.samples.iter().any(|s| &s.name == name) {
                        return Err(at("TYPE after samples".into()));
                    }
                    if exp.types.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(at("second TYPE".into()));
                    }
                }
                _ => {} // other comments are allowed
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(at("bad metric name".into()));
        }
        switch_to(name, &mut current).map_err(at)?;
        let (labels, rest) = parse_labels(&line[name_end..]).map_err(at)?;
        let fields: Vec<&str> = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no value".into()))?
            .split(' ')
            .collect();
        let value = match fields.as_slice() {
            [value] => parse_value(value).map_err(at)?,
            [value, timestamp] => {
                timestamp.parse::<i64>().map_err(|e| at(e.to_string()))?;
                parse_value(value).map_err(at)?
            }
            _ => return Err(at("trailing fields".into())),
        };
        if !series.insert(format!("{name}{labels:?}")) {
            return Err(at("duplicate series".into()));
        }
        exp.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(exp)
}

impl Exposition {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == want)
            .collect();
        assert_eq!(found.len(), 1, "{name}{want:?} in {:#?}", self.samples);
        found[0].value
    }
}

#[test]
fn the_parser_is_strict() {
    let ok =
        "# HELP a_b Help.\n# TYPE a_b gauge\na_b{x=\"q\\\"\\\\\\n\"} 1.5\na_b 2\n# TYPE c counter\nc 3 1700000000000\n";
    let exp = parse_exposition(ok).unwrap();
    assert_eq!(exp.samples[0].labels["x"], "q\"\\\n");
    for bad in [
        "a 1",                                   // no final newline
        "a{x=\"1\"} 1\na{x=\"1\"} 2\n",          // duplicate series
        "a 1\nb 1\na 2\n",                       // family not contiguous
        "a 1\n# TYPE a gauge\n",                 // TYPE after samples
        "# TYPE a gauge\n# TYPE a gauge\na 1\n", // second TYPE
        "# TYPE a gaugey\na 1\n",                // unknown type
        "a{x=\"\\t\"} 1\n",                      // bad escape
        "a{x=1} 1\n",                            // unquoted
        "a{0x=\"1\"} 1\n",                       // bad label name
        "1a 1\n",                                // bad metric name
        "a one\n",                               // bad value
        "a 1 2 3\n",                             // trailing fields
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}
