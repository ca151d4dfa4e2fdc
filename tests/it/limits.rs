//! Mirrors with limits still converge: a repository ten times larger than what the mirror
//! accepts in one push (`receive.maxInputSize`) arrives in steps, each under the limit, learned
//! from the mirror's refusals or set with `max_push_size`; and over a slow link whose whole
//! push outlives `timeout`, with the worker killed at random moments, every run after the
//! first continues from what the mirror has instead of starting from zero.

use crate::support::binary::*;
use crate::support::{HttpGitServer, Sshd, TestEnv, path_str, require_or_skip, wait_until};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

mod interruptions;
mod learned_limits;
mod steps;

const MB: u64 = 1_000_000;
/// The test repository: about 100 MB of incompressible blobs.
const BLOB: usize = 330_000;
const MAIN_COMMITS: usize = 200;
const SIDE_COMMITS: usize = 50;

/// Pseudo-random bytes: zlib cannot shrink them, so sizes on disk are what is sent.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// A bare repository of about 100 MB: `main` (200 commits), `feature` and `release` (50 each,
/// branching off `main`), tags `v1`..`v4` along `main`; one new incompressible blob per commit.
fn big_repository(env: &TestEnv, name: &str) -> PathBuf {
    repository_of(env, name, BLOB)
}

/// [`big_repository`] with blobs of `blob` bytes.
fn repository_of(env: &TestEnv, name: &str, blob_size: usize) -> PathBuf {
    let repo = env.bare_repo(name);
    let mut child = env
        .cmd("git")
        .args(["--git-dir", path_str(&repo), "fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import");
    let mut input = std::io::BufWriter::new(child.stdin.take().unwrap());
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut blob = vec![0u8; blob_size];
    let mut mark = 0;
    let mut commit = |input: &mut dyn Write, branch: &str, from: Option<usize>, file: &str| -> usize {
        noise.fill(&mut blob);
        mark += 1;
        let at = 1_700_000_000 + mark;
        write!(
            input,
            "commit refs/heads/{branch}\nmark :{mark}\ncommitter T <t@example.com> {at} +0000\n"
        )
        .unwrap();
        write!(input, "data 2\nc\n").unwrap();
        if let Some(parent) = from {
            writeln!(input, "from :{parent}").unwrap();
        }
        write!(input, "M 644 inline {file}\ndata {}\n", blob.len()).unwrap();
        input.write_all(&blob).unwrap();
        input.write_all(b"\n").unwrap();
        mark
    };
    let mut main = Vec::new();
    for i in 0..MAIN_COMMITS {
        let parent = main.last().copied();
        main.push(commit(&mut input, "main", parent, &format!("main/{i}")));
    }
    for (branch, fork) in [("feature", 99), ("release", 149)] {
        let mut parent = main[fork];
        for i in 0..SIDE_COMMITS {
            parent = commit(&mut input, branch, Some(parent), &format!("{branch}/{i}"));
        }
    }
    for (i, at) in [40, 90, 140, 199].iter().enumerate() {
        writeln!(input, "reset refs/tags/v{}\nfrom :{}\n", i + 1, main[*at]).unwrap();
    }
    drop(input);
    assert!(child.wait().unwrap().success(), "fast-import failed");
    repo
}

/// Bytes of the repository's objects.
fn repository_bytes(env: &TestEnv, repo: &Path) -> u64 {
    let out = env.git(repo, &["count-objects", "-v"]);
    let kib = |key: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (kib("size:") + kib("size-pack:")) * 1024
}

/// A mirror that keeps every pack it receives as a pack and logs its size from `pre-receive`
/// (`packs.log`, one line per push that reached the hook), optionally as slow as a link of
/// `bytes_per_second`.
fn measured_mirror(env: &TestEnv, name: &str, bytes_per_second: Option<u64>) -> (PathBuf, PathBuf) {
    let mirror = env.bare_repo(name);
    env.git(&mirror, &["config", "receive.unpackLimit", "1"]);
    let log = mirror.join("packs.log");
    let slow = match bytes_per_second {
        Some(rate) => format!("sleep $(awk -v s=\"$size\" 'BEGIN {{ printf \"%.3f\", s / {rate} }}')\n"),
        None => String::new(),
    };
    write_hook(
        &mirror,
        "pre-receive",
        &format!(
            "#!/bin/sh\ncat >/dev/null\nsize=0\nfor p in \"$GIT_QUARANTINE_PATH\"/pack/*.pack; do\n  \
             [ -f \"$p\" ] && size=$((size + $(stat -c %s \"$p\")))\ndone\necho \"$size\" >> '{}'\n{slow}",
            log.display()
        ),
    );
    (mirror, log)
}

fn pack_sizes(log: &Path) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn add(env: &TestEnv, upstream: &Path, name: &str, mirror: &Path, flags: &[&str]) {
    let url = format!("file://{}", path_str(mirror));
    let mut args = vec!["add", path_str(upstream), name, &url];
    args.extend_from_slice(flags);
    gpm_ok(env, &args);
}
