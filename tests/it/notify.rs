//! Telling people (docs/notifications.md), against real receivers: mail through msmtp's
//! sendmail to aiosmtpd, webhooks over HTTP and HTTPS, a notify command; once per incident across
//! kill -9, one digest for many mirrors failing for one cause, an hourly limit, a notifier that
//! hangs without delaying anyone, `notify-test`, and the pusher warned by the hook.

use crate::support::binary::*;
use crate::support::{SmtpServer, TestCa, TestEnv, WebhookReceiver, path_str, require_or_skip, wait_until};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod channels;
mod events;
mod volume;

/// The global configuration: `fail_after` failed updates make a mirror `failed`, retries are an
/// hour away (so each `run` makes one attempt, for the push it follows), the worker leaves as
/// soon as it is idle, and `[notify]` holds `notify`.
fn configure(env: &TestEnv, fail_after: u32, notify: &str) {
    write_global_config(
        env,
        &format!(
            "worker_linger = \"0s\"\n\n[retry]\ninitial = \"1h\"\nmax = \"1h\"\nfail_after = {fail_after}\njitter = false\n\n\
             [notify]\n{notify}"
        ),
    );
}

/// `<name>.git` whose mirror `backup` (`<name>-mirror.git`) does not exist: every update fails
/// until [`heal`] creates it. The hook spools without starting a worker.
fn failing(env: &TestEnv, name: &str) -> Setup {
    let setup = Setup::spooling_only(env, name);
    fs::remove_dir_all(&setup.mirror).unwrap();
    setup
}

fn heal(env: &TestEnv, setup: &Setup) {
    env.git(env.root(), &["init", "--quiet", "--bare", path_str(&setup.mirror)]);
}

/// Commits and pushes (spooled by the hook); returns the push's stderr (the pusher's `remote:` lines).
fn push(env: &TestEnv, setup: &Setup, n: usize) -> String {
    env.commit(
        &setup.work,
        "file.txt",
        &format!("change {n}\n"),
        &format!("change {n}"),
    );
    let out = env.git_output(&setup.work, &["push", "origin", "main"]);
    assert!(out.status.success(), "push: {}", stderr(&out));
    stderr(&out)
}

fn log_text(env: &TestEnv) -> String {
    fs::read_to_string(state_base(env).join("git-push-mirror.log")).unwrap_or_default()
}

/// The value of one sample of `metrics` (the line's name and labels as written).
fn metric(env: &TestEnv, series: &str) -> Option<f64> {
    let out = gpm_output(env, &["metrics"]);
    stdout(&out)
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// An executable script in the test's root.
fn script(env: &TestEnv, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = env.path(name);
    fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A notify command that keeps each notice's stdin and environment in `<dir>/<n>.json` and `<n>.env`.
fn recording_command(env: &TestEnv) -> (PathBuf, PathBuf) {
    let dir = env.path("told");
    fs::create_dir_all(&dir).unwrap();
    let command = script(
        env,
        "record-notice",
        &format!(
            "n=$(mktemp '{dir}/XXXXXX')\nenv > \"$n.env\"\ncat > \"$n.json\"\n",
            dir = dir.display()
        ),
    );
    (command, dir)
}

/// The notices a [`recording_command`] got, oldest first.
fn recorded(dir: &Path) -> Vec<(serde_json::Value, String)> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok());
    files
        .iter()
        .map(|json| {
            let text = fs::read_to_string(json).unwrap();
            let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            (
                value,
                fs::read_to_string(json.with_extension("env")).unwrap_or_default(),
            )
        })
        .collect()
}

fn subject(message: &str) -> &str {
    message
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("")
}
