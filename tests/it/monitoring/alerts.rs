//! The example alerting rules: promtool accepts them, and every alert fires and clears on series
//! made from real metrics output.

use super::*;

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
