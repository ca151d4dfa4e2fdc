//! An admin's first day and first month: the mistakes a new admin makes (relative paths, a work
//! tree, unwritable metrics, fleet mirrors changed per repository, deleted repositories, SSH
//! users, missing files, mistyped names) are caught at the door with a message that says what to
//! do; the shipped examples and the Debian package work as documented. One test per item of the
//! issue that found them, plus the `--help` completeness check.

use crate::support::binary::*;
use crate::support::{HttpGitServer, Sshd, TestEnv, path_str, require_or_skip, wait_until};
use clap::CommandFactory;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod changes;
mod hints;
mod packaging;
mod setup;

const BIN: &str = env!("CARGO_BIN_EXE_git-push-mirror");

fn repo_file(repo: &Path) -> String {
    fs::read_to_string(repo.join("push-mirror.toml")).unwrap_or_default()
}

fn mirror_table(repo: &Path, name: &str) -> toml::Table {
    let file: toml::Table = toml::from_str(&repo_file(repo)).unwrap();
    file["mirror"][name].as_table().unwrap().clone()
}

fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}\nstdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

/// The source tree (tests run with it as the manifest directory).
fn source(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}
