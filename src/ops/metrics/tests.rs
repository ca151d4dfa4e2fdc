//! Tests of the exposition format `metrics` writes, and of what it lists at fleet scale.
use super::*;
use std::path::PathBuf;
use std::time::Duration;

fn status(repo: &str, mirror: &str) -> MirrorStatus {
    MirrorStatus {
        repo: PathBuf::from(repo),
        mirror: mirror.to_string(),
        url: String::new(),
        enabled: true,
        update_status: "failed",
        last_update_at: Some("2023-11-14T22:13:20Z".to_string()),
        last_update_started_at: None,
        last_successful_update_at: None,
        last_error: Some("boom".to_string()),
        divergent_refs: vec![],
        kept_refs: vec!["refs/heads/k".to_string()],
        kept_reasons: vec![],
        rejected_refs: vec![],
        steps: None,
        learned_max_push_size: None,
        learned_max_push_size_source: None,
        learned_max_push_size_at: None,
        pending_refs: vec!["refs/heads/a".to_string(), "refs/heads/b".to_string()],
        full_sync_pending: false,
        consecutive_failures: 3,
        failure_class: Some("transient"),
        next_attempt_at: None,
        lfs_status: "failed",
        lfs_error: Some("LFS upload failed: x".to_string()),
        note: None,
        last_verified_at: None,
        config_error: None,
        state_error: Some("x.json is corrupt".to_string()),
        unrecorded_pushes_since: Some("2023-11-14T22:13:20Z".to_string()),
        mirror_default_branch: None,
        default_branch_error: None,
        push_options_warning: None,
        repository_created_at: None,
        orphaned_since: None,
        pending_since_ms: None,
    }
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
    assert_eq!(escape_label_value("line\nbreak"), "line\\nbreak");
    assert_eq!(escape_label_value("/srv/git/ü.git"), "/srv/git/ü.git");
}

#[test]
fn rendering_has_help_and_type_and_one_hot_status() {
    let statuses = [status("/srv/\"odd\"\\repo.git", "gh")];
    let text = render(&Snapshot {
        statuses: &statuses,
        extras: &[MirrorExtra {
            oldest_pending_age_seconds: 1.5,
        }],
        spool: SpoolStats {
            entries: 2,
            oldest_entry_age_seconds: 7.25,
            bad_entries: 0,
            untrusted_entries: 0,
        },
        repositories: 1,
        config_errors: 0,
        silent_mode: false,
        state_files_quarantined: 1,
        discovery_errors: 0,
        notify: NotifyStats {
            channels: vec![("webhook".to_string(), 4, 2)],
            waiting: 3,
        },
        written_at_seconds: 1_700_000_000.0,
        mirrors: MetricsMirrors::All,
    });
    let labels = r#"repo="/srv/\"odd\"\\repo.git",mirror="gh""#;
    for line in [
        "# TYPE git_push_mirror_mirror_consecutive_failures gauge".to_string(),
        format!("git_push_mirror_mirror_consecutive_failures{{{labels}}} 3"),
        format!("git_push_mirror_mirror_update_status{{{labels},status=\"failed\"}} 1"),
        format!("git_push_mirror_mirror_update_status{{{labels},status=\"finished\"}} 0"),
        format!("git_push_mirror_mirror_last_success_timestamp_seconds{{{labels}}} 0"),
        format!("git_push_mirror_mirror_last_update_timestamp_seconds{{{labels}}} 1700000000"),
        format!("git_push_mirror_mirror_pending_refs{{{labels}}} 2"),
        format!("git_push_mirror_mirror_oldest_pending_age_seconds{{{labels}}} 1.5"),
        format!("git_push_mirror_mirror_kept_refs{{{labels}}} 1"),
        "git_push_mirror_spool_entries 2".to_string(),
        "git_push_mirror_spool_oldest_entry_age_seconds 7.25".to_string(),
        format!("git_push_mirror_mirror_faulted{{{labels}}} 1"),
        format!("git_push_mirror_mirror_unrecorded_pushes{{{labels}}} 1"),
        format!("git_push_mirror_mirror_failure_class{{{labels},class=\"transient\"}} 1"),
        format!("git_push_mirror_mirror_failure_class{{{labels},class=\"permanent\"}} 0"),
        "git_push_mirror_state_files_quarantined 1".to_string(),
        "git_push_mirror_metrics_timestamp_seconds 1700000000".to_string(),
        "# TYPE git_push_mirror_notify_failures_total counter".to_string(),
        "git_push_mirror_notify_failures_total{channel=\"webhook\"} 2".to_string(),
        "git_push_mirror_notify_sent_total{channel=\"webhook\"} 4".to_string(),
        "git_push_mirror_notify_waiting 3".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
    let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(helps, types);
    assert!(text.ends_with('\n'));
}

#[test]
fn attention_lists_only_the_mirrors_to_look_at_and_the_aggregates_count_every_mirror() {
    let now = 1_700_000_000.0;
    let healthy = |mirror: &str| MirrorStatus {
        update_status: "finished",
        pending_refs: Vec::new(),
        kept_refs: Vec::new(),
        rejected_refs: Vec::new(),
        divergent_refs: Vec::new(),
        full_sync_pending: false,
        failure_class: None,
        config_error: None,
        state_error: None,
        unrecorded_pushes_since: None,
        lfs_status: "none",
        last_verified_at: Some(
            humantime::format_rfc3339_seconds(
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 - 3600),
            )
            .to_string(),
        ),
        ..status("/srv/fleet.git", mirror)
    };
    let unverified = MirrorStatus {
        last_verified_at: Some("2023-11-01T00:00:00Z".to_string()),
        ..healthy("stale")
    };
    assert!(!fleet::needs_attention(&healthy("a"), now), "{:#?}", healthy("a"));
    assert!(fleet::needs_attention(&status("/srv/x.git", "gh"), now));
    assert!(fleet::needs_attention(&unverified, now));
    let statuses = [healthy("a"), status("/srv/x.git", "gh"), healthy("b"), unverified];
    let extras = extras(&statuses, 1_700_000_000_000);
    let text = |mirrors| {
        render(&Snapshot {
            statuses: &statuses,
            extras: &extras,
            spool: SpoolStats::default(),
            repositories: 2,
            config_errors: 0,
            silent_mode: false,
            state_files_quarantined: 0,
            discovery_errors: 0,
            notify: NotifyStats::default(),
            written_at_seconds: now,
            mirrors,
        })
    };
    let listed = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("git_push_mirror_mirror_enabled{"))
            .count()
    };
    let (all, attention) = (text(MetricsMirrors::All), text(MetricsMirrors::Attention));
    assert_eq!((listed(&all), listed(&attention)), (4, 2));
    assert!(attention.contains("mirror=\"gh\"") && attention.contains("mirror=\"stale\""));
    assert!(!attention.contains("mirror=\"a\""));
    for text in [&all, &attention] {
        for line in [
            "git_push_mirror_mirrors{status=\"finished\"} 3",
            "git_push_mirror_mirrors{status=\"failed\"} 1",
            "git_push_mirror_mirrors_failing{class=\"transient\"} 1",
            "git_push_mirror_mirrors_needing_attention 2",
            "git_push_mirror_mirrors_pending_refs 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(series(&attention) < series(&all));
}

#[test]
fn spool_stats_count_waiting_and_claimed_entries_and_the_oldest_age() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path();
    for sub in ["new", "claimed/host.1", "bad", "tmp"] {
        fs::create_dir_all(spool.join(sub)).unwrap();
    }
    fs::write(spool.join("new/a"), "{}").unwrap();
    fs::write(spool.join("claimed/host.1/b"), "{}").unwrap();
    fs::write(spool.join("bad/c"), "junk").unwrap();
    fs::write(spool.join("bad/e.json.untrusted"), "{}").unwrap();
    fs::write(spool.join("tmp/d"), "partial").unwrap();
    let later = SystemTime::now() + Duration::from_secs(100);
    let stats = spool_stats(spool, later);
    assert_eq!(stats.entries, 2);
    assert_eq!((stats.bad_entries, stats.untrusted_entries), (2, 1));
    assert!(stats.oldest_entry_age_seconds >= 99.0, "{stats:?}");
    assert_eq!(spool_stats(&spool.join("missing"), later), SpoolStats::default());
}
