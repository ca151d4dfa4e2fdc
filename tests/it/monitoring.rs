//! Monitoring: `metrics` writes the Prometheus text exposition format (checked here by a strict
//! parser) whose numbers match `status --json`, atomically, with Nagios-style exit codes.

use crate::support::binary::*;
use crate::support::{TestEnv, path_str, wait_until};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

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

// ---------------------------------------------------------------------------

/// Seconds since the epoch of a `status --json` time (null: 0, as `metrics` reports never).
fn unix_seconds(v: &serde_json::Value) -> f64 {
    match v.as_str() {
        None => 0.0,
        Some(t) => humantime::parse_rfc3339(t)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64(),
    }
}

fn worker_idle(env: &TestEnv) -> bool {
    git_push_mirror::util::fsutil::FileLock::try_acquire(&spool_dir(env).join("worker.lock"))
        .unwrap()
        .is_some()
}

#[test]
fn metrics_parse_as_prometheus_text_and_match_status_json() {
    let env = TestEnv::new();
    // One failure marks a mirror failed; its retry is an hour away, so the worker leaves.
    write_global_config(
        &env,
        "worker_linger = \"1s\"\n[defaults]\ndelay = \"0s\"\n[retry]\ninitial = \"1h\"\nmax = \"1h\"\nfail_after = 1\n",
    );
    let setup = Setup::file(&env, &["--delay", "0s"]);
    let upstream = path_str(&setup.upstream);
    gpm_ok(
        &env,
        &[
            "add",
            upstream,
            "broken",
            &format!("file://{}", path_str(&env.path("missing.git"))),
        ],
    );
    gpm_ok(&env, &["add", upstream, "off", "file:///nowhere.git", "--disabled"]);
    env.commit(&setup.work, "a.txt", "one", "first");
    env.git(&setup.work, &["tag", "v1"]);
    setup.push(&env, &["main", "v1"]);
    setup.wait_converged(&env);
    wait_until("the broken mirror is failed and the worker gone", CONVERGE, || {
        let status = setup.status_json(&env);
        status
            .iter()
            .any(|s| s["mirror"] == "broken" && s["update_status"] == "failed")
            && status
                .iter()
                .any(|s| s["mirror"] == "backup" && s["update_status"] == "finished")
            && worker_idle(&env)
    });

    // A push recorded by the hook that no worker has taken yet, and an unreadable entry.
    let head = env.git(&setup.upstream, &["rev-parse", "main"]);
    let mut hook = gpm(&env);
    hook.args(["hook", "post-receive", "--no-worker"])
        .current_dir(&setup.upstream)
        .env("GIT_DIR", ".")
        .stdin(Stdio::piped());
    let mut child = hook.spawn().unwrap();
    let line = format!("{} {head} refs/heads/waiting\n", "0".repeat(40));
    child.stdin.take().unwrap().write_all(line.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    fs::create_dir_all(spool_dir(&env).join("bad")).unwrap();
    fs::write(spool_dir(&env).join("bad/corrupt"), "junk").unwrap();

    let prom_dir = env.path("textfile");
    fs::create_dir_all(&prom_dir).unwrap();
    let prom = prom_dir.join("git-push-mirror.prom");
    let out = gpm_output(&env, &["metrics", "--output", path_str(&prom)]);
    assert_eq!(out.status.code(), Some(1), "a failed mirror exits 1\n{}", stderr(&out));
    let status = setup.status_json(&env);
    let text = fs::read_to_string(&prom).unwrap();
    let exp = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    // Atomic: one file, nothing left over; readable by node_exporter's user.
    let names: Vec<_> = fs::read_dir(&prom_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("git-push-mirror.prom")]);
    assert_eq!(fs::metadata(&prom).unwrap().permissions().mode() & 0o777, 0o644);
    for (name, kind) in &exp.types {
        // Counters only for what only grows and is kept in durable state (`…_total`).
        let counter = kind == "counter" && name.ends_with("_total");
        assert!(kind == "gauge" || counter, "{name}: {kind}");
        assert!(exp.help.contains_key(name), "{name} has no HELP");
    }

    assert_eq!(status.len(), 3);
    for s in &status {
        let labels = [
            ("repo", s["repo"].as_str().unwrap()),
            ("mirror", s["mirror"].as_str().unwrap()),
        ];
        let metric = |name: &str| exp.value(&format!("git_push_mirror_mirror_{name}"), &labels);
        assert_eq!(
            metric("consecutive_failures"),
            s["consecutive_failures"].as_f64().unwrap(),
            "{s:#}"
        );
        assert_eq!(
            metric("pending_refs"),
            s["pending_refs"].as_array().unwrap().len() as f64,
            "{s:#}"
        );
        assert_eq!(metric("kept_refs"), s["kept_refs"].as_array().unwrap().len() as f64);
        assert_eq!(
            metric("divergent_refs"),
            s["divergent_refs"].as_array().unwrap().len() as f64
        );
        assert_eq!(metric("enabled"), if s["enabled"] == true { 1.0 } else { 0.0 });
        assert_eq!(
            metric("full_sync_pending"),
            if s["full_sync_pending"] == true { 1.0 } else { 0.0 }
        );
        assert_eq!(
            metric("last_success_timestamp_seconds"),
            unix_seconds(&s["last_successful_update_at"])
        );
        assert_eq!(
            metric("last_update_timestamp_seconds"),
            unix_seconds(&s["last_update_at"])
        );
        for value in ["none", "started", "finished", "to_retry", "failed"] {
            let mut with_status = labels.to_vec();
            with_status.push(("status", value));
            let expected = if s["update_status"] == value { 1.0 } else { 0.0 };
            assert_eq!(
                exp.value("git_push_mirror_mirror_update_status", &with_status),
                expected,
                "{s:#}"
            );
        }
    }
    let by_mirror = |m: &str| status.iter().find(|s| s["mirror"] == m).unwrap();
    assert!(unix_seconds(&by_mirror("backup")["last_successful_update_at"]) > 0.0);
    assert_eq!(by_mirror("broken")["consecutive_failures"], 1);
    assert_eq!(
        by_mirror("off")["pending_refs"].as_array().unwrap().len(),
        3,
        "the disabled mirror keeps changes (main, v1), and the push still in the spool is pending too"
    );
    assert_eq!(
        by_mirror("backup")["pending_refs"],
        serde_json::json!(["refs/heads/waiting"]),
        "a push no worker has recorded yet is pending, not hidden"
    );

    assert_eq!(
        exp.value("git_push_mirror_spool_entries", &[]),
        spool_files(&env, "new").len() as f64
    );
    assert_eq!(exp.value("git_push_mirror_spool_entries", &[]), 1.0);
    let age = exp.value("git_push_mirror_spool_oldest_entry_age_seconds", &[]);
    assert!((0.0..60.0).contains(&age), "{age}");
    assert_eq!(exp.value("git_push_mirror_spool_bad_entries", &[]), 1.0);
    assert_eq!(exp.value("git_push_mirror_repositories", &[]), 1.0);
    assert_eq!(exp.value("git_push_mirror_silent_mode", &[]), 0.0);

    // Without failed mirrors: exit 0, and stdout gets the same families.
    gpm_ok(&env, &["remove", upstream, "broken"]);
    let out = gpm_output(&env, &["metrics"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let again = parse_exposition(&stdout(&out)).unwrap();
    assert_eq!(
        again.types.keys().collect::<Vec<_>>(),
        exp.types.keys().collect::<Vec<_>>()
    );
}

#[test]
fn metrics_label_values_with_quotes_backslashes_and_line_feeds_are_escaped() {
    let env = TestEnv::new();
    let odd = env.bare_repo("we\"ird\\na\nme.git");
    let mirror = env.bare_repo("mirror.git");
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&odd),
            "backup",
            &format!("file://{}", path_str(&mirror)),
        ],
    );
    let text = gpm_ok(&env, &["metrics"]);
    let exp = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let repo = fs::canonicalize(&odd).unwrap();
    assert_eq!(
        exp.value(
            "git_push_mirror_mirror_enabled",
            &[("repo", path_str(&repo)), ("mirror", "backup")]
        ),
        1.0
    );
}

// ---------------------------------------------------------------------------
// The alerting rules (examples/prometheus/alerts.yml), checked by promtool, and tested on series
// taken from real `metrics` output of real scenarios: each alert fires, then clears.

fn promtool_available() -> Result<(), String> {
    std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .map_err(|e| format!("promtool is not installed (Debian: apt install prometheus): {e}"))
        .map(drop)
}

fn alerts_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/prometheus/alerts.yml")
}

#[test]
fn the_example_alerting_rules_pass_promtool_check_rules() {
    if !crate::support::require_or_skip("promtool", promtool_available()) {
        return;
    }
    let out = std::process::Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(alerts_file())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

/// One `metrics` output, as written at `written` (its `metrics_timestamp_seconds`).
struct Snapshot {
    samples: Vec<Sample>,
    written: f64,
}

/// `metrics REPO`, parsed.
fn snapshot(env: &TestEnv, repo: &std::path::Path) -> Snapshot {
    let out = gpm_output(env, &["metrics", path_str(repo)]);
    let exposition = parse_exposition(&stdout(&out)).unwrap_or_else(|e| panic!("{e}\n{}", stderr(&out)));
    let written = exposition.value("git_push_mirror_metrics_timestamp_seconds", &[]);
    Snapshot {
        samples: exposition.samples,
        written,
    }
}

/// A stretch of a test's timeline: `minutes` of one snapshot, rewritten every minute (`None`:
/// the collector reads a fresh file) or as written once at that minute and never again.
struct Stretch<'a> {
    snapshot: &'a Snapshot,
    minutes: u32,
    frozen_at: Option<u32>,
}

fn fresh(snapshot: &Snapshot, minutes: u32) -> Stretch<'_> {
    Stretch {
        snapshot,
        minutes,
        frozen_at: None,
    }
}

/// promtool's `input_series` for a timeline: every series of the snapshots, one value a minute
/// from test time 0. Unix times move to the test's clock: a time `d` seconds before the
/// snapshot was written is `d` seconds before the minute it was written at.
fn input_series(timeline: &[Stretch<'_>]) -> serde_json::Value {
    let key = |s: &Sample| {
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap()))
            .collect();
        format!("{}{{{}}}", s.name, labels.join(","))
    };
    let series: BTreeSet<String> = timeline
        .iter()
        .flat_map(|t| t.snapshot.samples.iter().map(key))
        .collect();
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut minute = 0;
    for stretch in timeline {
        for _ in 0..stretch.minutes {
            let written_at = f64::from(stretch.frozen_at.unwrap_or(minute) * 60);
            for name in &series {
                let value = stretch.snapshot.samples.iter().find(|s| &key(s) == name).map(|s| {
                    let v = if s.name.ends_with("_timestamp_seconds") && s.value != 0.0 {
                        s.value - stretch.snapshot.written + written_at
                    } else {
                        s.value
                    };
                    format!("{v}")
                });
                values
                    .entry(name.clone())
                    .or_default()
                    .push(value.unwrap_or_else(|| "_".into()));
            }
            minute += 1;
        }
    }
    values
        .into_iter()
        .map(|(series, values)| serde_json::json!({"series": series, "values": values.join(" ")}))
        .collect()
}

/// One firing alert instance: its labels (without `alertname`) and annotations.
type Firing<'a> = (&'a [(&'a str, &'a str)], &'a [(&'a str, &'a str)]);

/// What an alert is expected to be at a minute: its firing instances (empty: not firing).
fn expect(minute: u32, alert: &str, firing: &[Firing<'_>]) -> serde_json::Value {
    let map = |pairs: &[(&str, &str)]| -> serde_json::Map<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect()
    };
    let alerts: Vec<serde_json::Value> = firing
        .iter()
        .map(|(labels, annotations)| {
            let mut labels = map(labels);
            labels.insert("alertname".into(), serde_json::json!(alert));
            serde_json::json!({"exp_labels": labels, "exp_annotations": map(annotations)})
        })
        .collect();
    serde_json::json!({"eval_time": format!("{minute}m"), "alertname": alert, "exp_alerts": alerts})
}

#[test]
fn every_alert_fires_and_clears_on_series_from_real_metrics_output() {
    if !crate::support::require_or_skip("promtool", promtool_available()) {
        return;
    }
    let env = TestEnv::new();
    let mirror_repo = |name: &str, flags: &[&str]| {
        let upstream = env.bare_repo(&format!("{name}.git"));
        let work = env.clone_work(&upstream, &format!("{name}-work"));
        env.commit(&work, "a.txt", "one", "first");
        env.git(&work, &["push", "--quiet", "origin", "main"]);
        let mirror = env.path(format!("{name}-mirror.git"));
        let url = format!("file://{}", path_str(&mirror));
        let mut args = vec!["add", path_str(&upstream), "backup", &url];
        args.extend_from_slice(flags);
        gpm_ok(&env, &args);
        (upstream, work, mirror)
    };
    let sync = |repo: &std::path::Path| gpm_output(&env, &["sync", path_str(repo)]);

    // A failing mirror (its repository does not exist yet), then a healthy one.
    let (failing, _, failing_mirror) = mirror_repo("failing", &[]);
    assert_eq!(sync(&failing).status.code(), Some(1));
    let failed = snapshot(&env, &failing);
    env.git(env.root(), &["init", "--quiet", "--bare", path_str(&failing_mirror)]);
    assert_eq!(sync(&failing).status.code(), Some(0));
    let healthy = snapshot(&env, &failing);

    // A divergent mirror, then the divergence resolved.
    let (divergent, work, mirror) = mirror_repo("divergent", &["--keep-divergent-refs"]);
    env.git(env.root(), &["init", "--quiet", "--bare", path_str(&mirror)]);
    assert_eq!(sync(&divergent).status.code(), Some(0));
    let direct = env.clone_work(&mirror, "direct");
    env.commit(&direct, "d.txt", "direct", "pushed to the mirror");
    env.git(&direct, &["push", "--quiet", "origin", "main"]);
    env.commit(&work, "a.txt", "two", "second");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    assert_eq!(sync(&divergent).status.code(), Some(1));
    let diverging = snapshot(&env, &divergent);
    env.git(
        &work,
        &["pull", "--quiet", "--no-rebase", "--no-edit", path_str(&mirror), "main"],
    );
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    assert_eq!(sync(&divergent).status.code(), Some(0));
    let resolved = snapshot(&env, &divergent);

    // A mirror whose `update` hook refuses a branch, then lets it in.
    let (refusing, work, mirror) = mirror_repo("refusing", &[]);
    env.git(env.root(), &["init", "--quiet", "--bare", path_str(&mirror)]);
    write_hook(
        &mirror,
        "update",
        "#!/bin/sh\n[ \"$1\" = refs/heads/blocked ] && { echo \"protected branch: $1\"; exit 1; }\nexit 0\n",
    );
    env.git(&work, &["push", "--quiet", "origin", "main:blocked"]);
    assert_eq!(sync(&refusing).status.code(), Some(1));
    let refused = snapshot(&env, &refusing);
    fs::remove_file(mirror.join("hooks/update")).unwrap();
    assert_eq!(sync(&refusing).status.code(), Some(0));
    let accepted = snapshot(&env, &refusing);

    // Pushes the hook could not record (its spool cannot be written), then a run's drift scan.
    let (unrecorded_repo, work, mirror) = mirror_repo("unrecorded", &[]);
    env.git(env.root(), &["init", "--quiet", "--bare", path_str(&mirror)]);
    assert_eq!(sync(&unrecorded_repo).status.code(), Some(0));
    gpm_ok(&env, &["install", path_str(&unrecorded_repo)]);
    fs::write(env.path("not-a-directory"), "").unwrap();
    write_global_config(
        &env,
        &format!("spool_dir = \"{}/spool\"\n", path_str(&env.path("not-a-directory"))),
    );
    env.commit(&work, "a.txt", "three", "third");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    let unrecorded = snapshot(&env, &unrecorded_repo);
    write_global_config(&env, "");
    gpm_ok(&env, &["run", "--wait"]);
    assert_eq!(env.refs(&mirror), env.refs(&unrecorded_repo));
    let scanned = snapshot(&env, &unrecorded_repo);

    let repo = |r: &std::path::Path| path_str(r).to_string();
    let (f, d, r, u) = (
        repo(&failing),
        repo(&divergent),
        repo(&refusing),
        repo(&unrecorded_repo),
    );
    let tests = serde_json::json!([
        {
            "name": "a failing mirror",
            "interval": "1m",
            "input_series": input_series(&[fresh(&failed, 10), fresh(&healthy, 10)]),
            "alert_rule_test": [
                expect(8, "PushMirrorFailed", &[(
                    &[("repo", &f), ("mirror", "backup"), ("status", "failed")],
                    &[
                        ("summary", &format!("{f}: mirror backup is failing")),
                        ("description", &format!("See `git-push-mirror status {f}` for last_error, config_error and state_error.")),
                    ],
                )]),
                expect(18, "PushMirrorFailed", &[]),
            ],
        },
        {
            "name": "a divergent mirror",
            "interval": "1m",
            "input_series": input_series(&[fresh(&diverging, 10), fresh(&resolved, 10)]),
            "alert_rule_test": [
                expect(8, "PushMirrorDivergent", &[(
                    &[("repo", &d), ("mirror", "backup")],
                    &[
                        ("summary", &format!("{d}: mirror backup has 1 divergent refs")),
                        ("description", &format!("`git-push-mirror status {d}` lists them; `sync` shows each side's commit.")),
                    ],
                )]),
                expect(18, "PushMirrorDivergent", &[]),
            ],
        },
        {
            "name": "refused refs",
            "interval": "1m",
            "input_series": input_series(&[fresh(&refused, 10), fresh(&accepted, 10)]),
            "alert_rule_test": [
                expect(8, "PushMirrorRefusedRefs", &[(
                    &[("repo", &r), ("mirror", "backup")],
                    &[
                        ("summary", &format!("{r}: mirror backup refused 1 refs")),
                        ("description", &format!("`git-push-mirror status {r}` shows each ref with the mirror's own words.")),
                    ],
                )]),
                expect(18, "PushMirrorRefusedRefs", &[]),
            ],
        },
        {
            "name": "a stale metrics file",
            "interval": "1m",
            "input_series": input_series(&[
                fresh(&healthy, 5),
                Stretch { snapshot: &healthy, minutes: 15, frozen_at: Some(4) },
                fresh(&healthy, 10),
            ]),
            "alert_rule_test": [
                expect(12, "PushMirrorMetricsStale", &[]),
                expect(18, "PushMirrorMetricsStale", &[(
                    &[],
                    &[("summary", "git-push-mirror metrics are not being written")],
                )]),
                expect(25, "PushMirrorMetricsStale", &[]),
            ],
        },
        {
            "name": "pushes the hook could not record",
            "interval": "1m",
            "input_series": input_series(&[fresh(&unrecorded, 20), fresh(&scanned, 10)]),
            "alert_rule_test": [
                expect(17, "PushMirrorPushesNotRecorded", &[(
                    &[("repo", &u), ("mirror", "backup")],
                    &[
                        ("summary", &format!("{u}: pushes could not be recorded; mirror backup may be behind")),
                        ("description", "Free the spool's disk or fix its permissions, and check that cron runs `git-push-mirror run`."),
                    ],
                )]),
                expect(25, "PushMirrorPushesNotRecorded", &[]),
            ],
        },
    ]);
    // JSON is YAML: promtool reads it as it is.
    let file = serde_json::json!({
        "rule_files": [alerts_file()],
        "evaluation_interval": "1m",
        "tests": tests,
    });
    let test_file = env.path("alerts.test.yml");
    fs::write(&test_file, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["test", "rules"])
        .arg(&test_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules {}:\n{}{}",
        test_file.display(),
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn metrics_mirrors_attention_lists_only_the_failing_mirror_and_counts_them_all() {
    let env = TestEnv::new();
    let config =
        "worker_linger = \"1s\"\n[defaults]\ndelay = \"0s\"\n[retry]\ninitial = \"1h\"\nmax = \"1h\"\nfail_after = 1\n";
    write_global_config(&env, config);
    let setup = Setup::file(&env, &["--delay", "0s"]);
    let upstream = path_str(&setup.upstream);
    gpm_ok(
        &env,
        &[
            "add",
            upstream,
            "broken",
            &format!("file://{}", path_str(&env.path("missing.git"))),
        ],
    );
    env.commit(&setup.work, "a.txt", "one", "first");
    setup.push(&env, &["main"]);
    setup.wait_converged(&env);
    wait_until("the broken mirror is failed and the worker gone", CONVERGE, || {
        let status = setup.status_json(&env);
        status
            .iter()
            .any(|s| s["mirror"] == "broken" && s["update_status"] == "failed")
            && status
                .iter()
                .any(|s| s["mirror"] == "backup" && s["update_status"] == "finished")
            && worker_idle(&env)
    });
    let listed = |text: &str| -> BTreeSet<String> {
        parse_exposition(text)
            .unwrap()
            .samples
            .into_iter()
            .filter(|s| s.name == "git_push_mirror_mirror_enabled")
            .map(|s| s.labels["mirror"].clone())
            .collect()
    };
    let all = stdout(&gpm_output(&env, &["metrics"]));
    assert_eq!(
        listed(&all),
        BTreeSet::from(["backup".to_string(), "broken".to_string()])
    );
    write_global_config(&env, &format!("metrics_mirrors = \"attention\"\n{config}"));
    let attention = stdout(&gpm_output(&env, &["metrics"]));
    assert_eq!(
        listed(&attention),
        BTreeSet::from(["broken".to_string()]),
        "{attention}"
    );
    for line in [
        "git_push_mirror_mirrors{status=\"finished\"} 1",
        "git_push_mirror_mirrors{status=\"failed\"} 1",
        "git_push_mirror_mirrors_needing_attention 1",
    ] {
        assert!(attention.lines().any(|l| l == line), "missing {line:?} in\n{attention}");
        assert!(all.lines().any(|l| l == line), "missing {line:?} in\n{all}");
    }
    // A value the key does not take is a clear error.
    write_global_config(&env, &format!("metrics_mirrors = \"some\"\n{config}"));
    let out = gpm_output(&env, &["metrics"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("metrics_mirrors"), "{}", stderr(&out));
}
