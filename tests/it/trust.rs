//! Trust boundaries (docs/security.md), with real local users made by `useradd`: another user
//! who creates the spool directory first, or who gets an entry naming her repository into ours,
//! can make the worker push nothing and send no credential anywhere; the files a sync leaves
//! in the temporary directory, and the log, are unreadable by other users.

use crate::support::binary::*;
use crate::support::procs::Reaper;
use crate::support::{HttpGitServer, TestEnv, TestUser, assert_success, path_str, require_or_skip, wait_until};
use git_push_mirror::pipeline::spool::{RefUpdate, SPOOL_FORMAT_VERSION, SpoolEntry};
use git_push_mirror::util::oid::Oid;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

mod foreign_input;
mod private_files;
mod shared_group;

const USER: &str = "mirror-bot";

fn prerequisites() -> bool {
    require_or_skip("root, useradd and userdel", TestUser::available())
        && require_or_skip("git http-backend", HttpGitServer::available())
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
