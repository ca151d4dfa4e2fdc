//! `check`: each mirror reached the way the worker reaches it (`ls-remote` from the repository,
//! so its own git configuration applies), with what stands in the way said plainly: a mirror of
//! another object format, the CA certificates in use when TLS verification fails, where LFS
//! objects would go; and how each repository is deployed (its hook, the user pushes run as and
//! the directories that user must write: [`crate::ops::deployment`]), each problem with its fix.

use crate::access::auth::remote_access;
use crate::commands::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, Exit, empty_state_hint, io, known_or_given};
use crate::config::edit::EditError;
use crate::config::lfs::LfsMode;
use crate::config::{self, GlobalConfig, MirrorConfig};
use crate::git;
use crate::git::error::is_certificate_failure;
use crate::ops::deployment::{self, Finding, Pushers};
use crate::ops::hook_binary;
use crate::util::remote_url::redact_url;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `check` says about one mirror: its lines, and how many problems they report.
pub struct MirrorCheck {
    pub lines: Vec<String>,
    pub problems: usize,
}

/// Reaches `mirror` of the repository `repo` and reports.
pub fn check_mirror(repo: &Path, mirror: &MirrorConfig, global: &GlobalConfig) -> MirrorCheck {
    let shown = mirror.shown_url();
    let mut check = MirrorCheck {
        lines: Vec::new(),
        problems: 0,
    };
    let access = remote_access(mirror, global).map(|mut access| {
        access.repo = Some(repo.to_path_buf());
        access
    });
    match access {
        Err(e) => {
            check.problems += 1;
            check.lines.push(format!("  {} {shown}: FAILED: {e:#}", mirror.name));
        }
        Ok(access) => match git::probe(repo, &access, &["refs/heads/*".to_string()]) {
            Ok(probe) => match probe.format_mismatch() {
                Some(why) => {
                    check.problems += 1;
                    check.lines.push(format!("  {} {shown}: FAILED: {why}", mirror.name));
                }
                None => check.lines.push(format!(
                    "  {} {shown}: reachable ({} branches){}",
                    mirror.name,
                    probe.refs.direct.len(),
                    match mirror.side.create {
                        Some(kind) => format!(
                            "; the repository exists, so create = \"{}\" has nothing to do",
                            kind.as_str()
                        ),
                        None => String::new(),
                    }
                )),
            },
            Err(git::GitError::Remote(failure)) if failure.repository_missing => {
                let (line, problem) = missing_repository(mirror, &failure.message);
                check.problems += usize::from(problem);
                check.lines.push(format!("  {} {shown}: {line}", mirror.name));
            }
            Err(e) => {
                check.problems += 1;
                let error = e.to_string();
                check.lines.push(format!("  {} {shown}: FAILED: {error}", mirror.name));
                if is_certificate_failure(&error) {
                    check
                        .lines
                        .push(format!("    CA in use: {}", git::tls::ca_in_use(repo, &access)));
                }
            }
        },
    }
    if let Some(why) = crate::access::credential_use::unused_credentials(mirror) {
        // Harmless, but nobody should believe the mirror is protected by them.
        check.lines.push(format!("    note: {why}; they are ignored"));
    }
    if let Some((line, problem)) = check_lfs(repo, mirror) {
        check.problems += usize::from(problem);
        check.lines.push(line);
    }
    check
}

/// What `check` says of a mirror whose repository does not exist: that it will be created, and
/// how (for a forge, after finding its owner with reads only, which checks the token), or that it
/// will not; and whether that is a problem.
fn missing_repository(mirror: &MirrorConfig, words: &str) -> (String, bool) {
    let Some(how) = crate::mirror::update::create::plan(mirror) else {
        return (
            format!(
                "FAILED: the repository does not exist ({words}); create it on the host, or set `create` \
                 (\"ssh\", \"github\", \"gitlab\", \"gitea\") to have the first update create it"
            ),
            true,
        );
    };
    if !mirror.side.create.is_some_and(|kind| kind.is_forge()) {
        return (
            format!("the repository does not exist; the first update creates it: {how}"),
            false,
        );
    }
    match crate::mirror::forge::Forge::for_mirror(mirror).and_then(|forge| forge.owner_description()) {
        Ok(owner) => (
            format!("the repository does not exist; the first update creates it: {how}, in {owner}"),
            false,
        ),
        Err(failure) => (
            format!(
                "FAILED: the repository does not exist, and it could not be created: {}",
                failure.message
            ),
            true,
        ),
    }
}

/// For `add` and `set --url`: tries mirror `name` of the edited file `text` once (one `ls-remote`,
/// at most a few seconds). A mirror that answers with another object format than the
/// repository's, which git cannot push to, refuses the edit. A mirror that cannot be reached
/// (unknown host, no such repository, credentials refused, no answer) gives the host's words back
/// as a warning: the mirror may be created later or be unreachable from here for now, so the edit
/// stands. Not said again: what `add` advises anyway (an SSH host key to record, a local path
/// that is no repository yet).
pub fn try_new_mirror(repo: &Path, global: &GlobalConfig, name: &str, text: &str) -> Result<Option<String>, EditError> {
    let file = repo.join(crate::config::REPO_CONFIG_FILE);
    // The file's mode only matters for inline passwords, which the loader checks when writing.
    let Ok(config) = crate::config::parse_repo(text, &file, 0o600, global) else {
        return Ok(None);
    };
    let Some(mirror) = config.mirror(name).filter(|m| m.enabled) else {
        return Ok(None);
    };
    // A secret the admin's shell cannot read (a worker's `password_env`) is no reason to warn.
    let Ok(mut access) = remote_access(mirror, global) else {
        return Ok(None);
    };
    access.timeout = access.timeout.min(ADD_PROBE_TIMEOUT);
    access.repo = Some(repo.to_path_buf());
    match git::probe(repo, &access, &["refs/heads/*".to_string()]) {
        Ok(probe) => match probe.format_mismatch() {
            Some(why) => Err(EditError::InvalidValue(format!("mirror {name}: {why}"))),
            None => Ok(None),
        },
        Err(e) => {
            let words = e.to_string();
            let advised = words.contains("Host key verification failed")
                || crate::config::mirror_path::missing_repository_note(&mirror.url).is_some();
            Ok((!advised).then_some(words))
        }
    }
}

/// How long `add` waits for a mirror to tell its object format.
const ADD_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `check`'s LFS line for a mirror that would send LFS objects, and whether it is a problem.
fn check_lfs(repo: &Path, mirror: &MirrorConfig) -> Option<(String, bool)> {
    let has_objects = crate::git::lfs_pointer::LocalStore::for_repo(repo, &mirror.lfs).may_have_objects();
    let wanted = match mirror.lfs.mode {
        LfsMode::Off => return None,
        LfsMode::Auto => has_objects,
        LfsMode::On => true,
    };
    if !wanted {
        return None;
    }
    let transport = crate::util::remote_url::transport_of(&mirror.url);
    let endpoint = crate::mirror::lfs::describe_endpoint(&mirror.url, &transport, mirror.lfs.url.as_deref());
    Some(match (endpoint, git::lfs::version()) {
        (Err(why), _) => (
            format!("    lfs: FAILED: LFS objects cannot reach this mirror: {why}"),
            true,
        ),
        (Ok(_), Err(e)) => (format!("    lfs: FAILED: {e}"), true),
        (Ok(endpoint), Ok(_)) => (format!("    lfs: objects go to {}", redact_url(&endpoint)), false),
    })
}

/// What `check` finds about how `repo` is deployed: the caller, the hook (when the repository has
/// mirrors, or a hook), and whether its pushers can use the spool, state and log (judged once per
/// set of pushers: most repositories share theirs). It prints the hooks it found.
fn deployment_findings(
    global: &GlobalConfig,
    repo: &Path,
    has_mirrors: bool,
    running: &Path,
    by_pushers: &mut HashMap<Pushers, Vec<Finding>>,
    out: &mut dyn Write,
) -> Result<Vec<Finding>, Exit> {
    let mut findings = Vec::new();
    let pushers = match Pushers::of(repo) {
        Ok(pushers) => pushers,
        Err(e) => {
            findings.push(Finding {
                problem: format!("cannot tell who owns it: {e}"),
                fix: format!("ls -ld {}", repo.display()),
            });
            return Ok(findings);
        }
    };
    let caller = deployment::caller_finding(repo, &pushers);
    let hooks = deployment::find_hooks(repo, running);
    for hook in &hooks {
        writeln!(out, "  hook {}: runs {}", hook.path.display(), hook.call.program).map_err(io)?;
    }
    if has_mirrors || !hooks.is_empty() {
        let path = std::env::var_os("PATH");
        findings.extend(deployment::hook_findings(repo, &hooks, running, path.as_deref()));
    }
    // Another user's embedded defaults are under that user's HOME: only a configuration file
    // both read tells where the pushers' spool and state are.
    if caller.is_none() || global.source.is_some() {
        let places = by_pushers
            .entry(pushers.clone())
            .or_insert_with(|| deployment::directory_findings(global, &pushers));
        findings.extend(places.iter().cloned());
    }
    findings.extend(caller);
    Ok(findings)
}

/// Validate the configuration and reach each mirror (ls-remote); says which configuration,
/// state and spool it used, and what keeps each repository's pushes from being recorded (its
/// hook, the user pushes run as, the directories that user must write), with the fix.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Only these repositories (default: every registered one and every mirrored one under repos_root).
    pub repos: Vec<PathBuf>,
}

pub fn cmd_check(
    global: &GlobalConfig,
    args: &CheckArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Exit> {
    let repos = &args.repos[..];
    match &global.source {
        Some(path) => writeln!(out, "global configuration {}: ok", path.display()),
        None => writeln!(out, "global configuration: none found, embedded defaults"),
    }
    .map_err(io)?;
    writeln!(out, "state: {}", global.state_dir.display()).map_err(io)?;
    writeln!(out, "spool: {}", global.spool_dir.display()).map_err(io)?;
    let mut problems = 0;
    let mut config_errors = 0;
    match crate::ops::logfile::writable_problem(&global.log_file) {
        None => writeln!(out, "log_file {}: writable", global.log_file.display()),
        Some(problem) => {
            problems += 1;
            writeln!(out, "log_file {}: FAILED: {problem}", global.log_file.display())
        }
    }
    .map_err(io)?;
    let repos = known_or_given(global, repos, err)?;
    if repos.is_empty() {
        writeln!(out, "{}", empty_state_hint(global)).map_err(io)?;
    }
    let running = hook_binary::running_binary().context("finding this program's path")?;
    let mut by_pushers = HashMap::new();
    for repo in repos {
        // A repository that cannot be read, or whose configuration is broken, is reported; the
        // others are still checked.
        if let Err(e) = crate::mirror::refs::LocalRepo::open(&repo) {
            problems += 1;
            writeln!(out, "{}: FAILED: {e:#}", repo.display()).map_err(io)?;
            continue;
        }
        let cfg = match config::load_repo(&repo, global) {
            Ok(cfg) => cfg,
            Err(e) => {
                config_errors += 1;
                writeln!(out, "{}: FAILED: {e}", repo.display()).map_err(io)?;
                continue;
            }
        };
        writeln!(
            out,
            "{}: configuration ok, {} mirror(s)",
            repo.display(),
            cfg.mirrors.len()
        )
        .map_err(io)?;
        let findings = deployment_findings(global, &repo, !cfg.mirrors.is_empty(), &running, &mut by_pushers, out)?;
        for finding in findings {
            problems += 1;
            writeln!(out, "  FAILED: {}\n    fix: {}", finding.problem, finding.fix).map_err(io)?;
        }
        for mirror in &cfg.mirrors {
            let checked = crate::commands::check::check_mirror(&repo, mirror, global);
            problems += checked.problems;
            for line in checked.lines {
                writeln!(out, "{line}").map_err(io)?;
            }
        }
    }
    Ok(if config_errors > 0 {
        EXIT_USAGE
    } else if problems > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}
