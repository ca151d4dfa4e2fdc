//! Commands of our own on an SSH mirror's host, for the mirror's side (docs/mirror-side.md):
//! `git init --bare` of a missing repository (`create = "ssh"`) and `git symbolic-ref HEAD` to make
//! its default branch follow the local one. Over the mirror's own key and host keys, with the same
//! fail-closed options as git's pushes ([`super::ssh_arguments`]); ssh itself runs without a shell
//! here, and the one word the remote shell sees, the repository's path, is quoted for it. A host
//! that gives no shell (gitolite, a forge) refuses with its own words, which are returned.

use crate::access::repo_location::RepoLocation;
use crate::config::MirrorConfig;
use crate::git::{Failure, FailureClass};
use crate::util::oid::ObjectFormat;
use std::process::Command;

/// `git init --bare` of the mirror's repository on its host (an existing one is left as it is:
/// git only re-initialises it).
pub fn init_bare(mirror: &MirrorConfig, location: &RepoLocation, format: ObjectFormat) -> Result<(), Failure> {
    let object_format = match format {
        ObjectFormat::Sha1 => String::new(),
        other => format!(" --object-format={}", other.git_name()),
    };
    let command = format!(
        "git init --quiet --bare{object_format} -- {}",
        quote_path(&location.path)
    );
    run(mirror, location, &command).map(|_| ())
}

/// Points `HEAD` of the mirror's repository at `branch` (`refs/heads/X`, a valid ref name).
pub fn set_head(mirror: &MirrorConfig, location: &RepoLocation, branch: &str) -> Result<(), Failure> {
    let command = format!(
        "git --git-dir={} symbolic-ref HEAD {}",
        quote_path(&location.path),
        quote(branch)
    );
    run(mirror, location, &command).map(|_| ())
}

/// Runs `command` through the remote user's shell; returns its output, or a failure in the
/// host's words (permanent unless the connection itself failed for a while).
fn run(mirror: &MirrorConfig, location: &RepoLocation, command: &str) -> Result<String, Failure> {
    let mut cmd = Command::new("ssh");
    crate::git::env::inherit_allowed_only(&mut cmd);
    crate::git::orphans::die_with_this_process(&mut cmd);
    cmd.env("LC_MESSAGES", "C")
        .stdin(std::process::Stdio::null())
        .args(super::ssh_arguments(mirror, mirror.timeout));
    if let Some(port) = location.port {
        cmd.arg("-p").arg(port.to_string());
    }
    if let Some(user) = &location.user {
        cmd.arg("-l").arg(user);
    }
    // `--`: the host is never an option, whatever the URL says.
    cmd.arg("--").arg(&location.host).arg(command);
    let finished = crate::git::run_with_timeout(cmd, mirror.timeout).map_err(|e| Failure::from(e.to_string()))?;
    if finished.success {
        return Ok(finished.stdout);
    }
    let words = host_words(&finished.stderr);
    let class = match crate::git::failure::classify(&finished.stderr, &Default::default()) {
        FailureClass::Permanent => FailureClass::Permanent,
        // A connection that failed may work next time; a command the host refused will not.
        _ if says_connection_failed(&finished.stderr) => FailureClass::Transient,
        _ => FailureClass::Permanent,
    };
    Err(Failure::new(
        format!("{} on {}: {words}", first_words(command), location.host),
        class,
    ))
}

/// The command's name and first argument, for messages (`git init`, `git --git-dir=…`).
fn first_words(command: &str) -> &str {
    let end = command.match_indices(' ').nth(1).map_or(command.len(), |(at, _)| at);
    &command[..end]
}

/// ssh's own words for a connection that did not happen or broke.
fn says_connection_failed(stderr: &str) -> bool {
    [
        "Connection refused",
        "Connection timed out",
        "Connection reset",
        "Could not resolve hostname",
        "No route to host",
        "Network is unreachable",
        "Connection closed by",
        "port 22: ",
    ]
    .iter()
    .any(|sign| stderr.contains(sign))
}

/// The last few lines the host (or ssh) wrote, on one line.
fn host_words(stderr: &str) -> String {
    let lines: Vec<String> = stderr
        .lines()
        .map(crate::git::remote_words::clean)
        .filter(|line| !line.is_empty())
        .collect();
    if lines.is_empty() {
        return "it failed without a message".to_string();
    }
    lines[lines.len().saturating_sub(4)..].join(" / ")
}

/// One word for a POSIX shell, taken literally.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// The repository's path as one word for the remote shell, the way git's own SSH transport
/// treats it: `~/x` and `~user/x` relative to a home (the tilde stays outside the quotes, so the
/// shell expands it), anything else literally.
pub fn quote_path(path: &str) -> String {
    if let Some(rest) = path.strip_prefix('~') {
        let (user, rest) = rest.split_once('/').unwrap_or((rest, ""));
        let plain_user = user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if plain_user && !user.starts_with('-') {
            return format!("~{user}/{}", quote(rest));
        }
    }
    quote(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_one_literal_word_with_a_leading_tilde_left_to_the_shell() {
        assert_eq!(quote_path("/srv/mirrors/app.git"), "'/srv/mirrors/app.git'");
        assert_eq!(quote_path("mirrors/it's $(x).git"), "'mirrors/it'\\''s $(x).git'");
        assert_eq!(quote_path("~/app.git"), "~/'app.git'");
        assert_eq!(quote_path("~git/m/app.git"), "~git/'m/app.git'");
        assert_eq!(quote_path("~`x`/app.git"), "'~`x`/app.git'");
    }

    #[test]
    fn the_hosts_last_words_are_kept_on_one_line() {
        let stderr = "Warning: x\nfatal: cannot mkdir /srv/locked/app.git: Permission denied\n\n";
        assert_eq!(
            host_words(stderr),
            "Warning: x / fatal: cannot mkdir /srv/locked/app.git: Permission denied"
        );
        assert_eq!(first_words("git init --quiet --bare -- 'x'"), "git init");
    }
}
