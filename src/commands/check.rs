//! `check`: each mirror reached the way the worker reaches it (`ls-remote` from the repository,
//! so its own git configuration applies), with what stands in the way said plainly: a mirror of
//! another object format, the CA certificates in use when TLS verification fails, where LFS
//! objects would go.

use crate::access::auth::{is_certificate_failure, remote_access};
use crate::access::remote_url::{display_url, redact_url};
use crate::config::edit::EditError;
use crate::config::{GlobalConfig, MirrorConfig};
use crate::git;
use crate::mirror::lfs::LfsMode;
use std::path::Path;

/// What `check` says about one mirror: its lines, and how many problems they report.
pub struct MirrorCheck {
    pub lines: Vec<String>,
    pub problems: usize,
}

/// Reaches `mirror` of the repository `repo` and reports.
pub fn check_mirror(repo: &Path, mirror: &MirrorConfig, global: &GlobalConfig) -> MirrorCheck {
    let shown = display_url(&mirror.url, mirror.password.is_some());
    let mut check = MirrorCheck {
        lines: Vec::new(),
        problems: 0,
    };
    match remote_access(mirror, global) {
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
                    "  {} {shown}: reachable ({} branches)",
                    mirror.name,
                    probe.refs.direct.len()
                )),
            },
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
    if let Some((line, problem)) = check_lfs(repo, mirror) {
        check.problems += usize::from(problem);
        check.lines.push(line);
    }
    check
}

/// For `add` and `set --url`: refuses the edit that produced `text` when its mirror `name`
/// (enabled) answers within a few seconds with another object format than the repository's,
/// which git cannot push to. An unreachable mirror is `check`'s business, not `add`'s.
pub fn refuse_format_mismatch(repo: &Path, global: &GlobalConfig, name: &str, text: &str) -> Result<(), EditError> {
    let file = repo.join(crate::config::REPO_CONFIG_FILE);
    // The file's mode only matters for inline passwords, which the loader checks when writing.
    let Ok(config) = crate::config::parse_repo(text, &file, 0o600, global) else {
        return Ok(());
    };
    let Some(mirror) = config.mirror(name).filter(|m| m.enabled) else {
        return Ok(());
    };
    let Ok(mut access) = remote_access(mirror, global) else {
        return Ok(());
    };
    access.timeout = access.timeout.min(ADD_PROBE_TIMEOUT);
    match git::probe(repo, &access, &["refs/heads/*".to_string()]).map(|p| p.format_mismatch()) {
        Ok(Some(why)) => Err(EditError::InvalidValue(format!("mirror {name}: {why}"))),
        _ => Ok(()),
    }
}

/// How long `add` waits for a mirror to tell its object format.
const ADD_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `check`'s LFS line for a mirror that would send LFS objects, and whether it is a problem.
fn check_lfs(repo: &Path, mirror: &MirrorConfig) -> Option<(String, bool)> {
    let has_objects = crate::mirror::lfs::LocalStore::for_repo(repo, &mirror.lfs).may_have_objects();
    let wanted = match mirror.lfs.mode {
        LfsMode::Off => return None,
        LfsMode::Auto => has_objects,
        LfsMode::On => true,
    };
    if !wanted {
        return None;
    }
    let transport = crate::access::remote_url::transport_of(&mirror.url);
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
