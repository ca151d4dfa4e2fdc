//! Which CA certificates git trusts for HTTPS to a mirror, from a repository: the `http.sslCAInfo`
//! that applies to the mirror's URL (the mirror's `ca_file`, the repository's, the user's or the
//! system's git configuration), `GIT_SSL_CAINFO`, or the system's default; for `check` to name it
//! when verification fails.

use super::{RemoteAccess, run_with_timeout};
use std::path::Path;
use std::time::Duration;

/// How long reading the configuration may take.
const CONFIG_TIMEOUT: Duration = Duration::from_secs(30);

/// The CA certificates git uses for the mirror, in words: a path and where it is set.
pub fn ca_in_use(git_dir: &Path, remote: &RemoteAccess) -> String {
    if remote.ca_file.is_none()
        && let Some(path) = std::env::var_os("GIT_SSL_CAINFO")
    {
        // git lets the environment win over any configuration.
        return format!("{} (GIT_SSL_CAINFO in the environment)", Path::new(&path).display());
    }
    let Some(path) = config_value(git_dir, remote, &["--get-urlmatch", "http.sslcainfo", &remote.url]) else {
        return "the system's default CA certificates".to_string();
    };
    if remote.ca_file.as_deref().is_some_and(|ca| ca == Path::new(&path)) {
        return format!("{path} (the mirror's ca_file)");
    }
    let origins = config_value(
        git_dir,
        remote,
        &["--show-origin", "-z", "--get-regexp", r"^http\.(.*\.)?sslcainfo$"],
    )
    .unwrap_or_default();
    match origin_of(&origins, &path) {
        Some(origin) => format!("{path} (http.sslCAInfo in {origin})"),
        None => format!("{path} (http.sslCAInfo)"),
    }
}

/// `git config ARGS` as the mirror's git children see it; `None` when unset or unreadable.
fn config_value(git_dir: &Path, remote: &RemoteAccess, args: &[&str]) -> Option<String> {
    let mut cmd = remote.command();
    cmd.arg("--git-dir").arg(git_dir).arg("config").args(args);
    let finished = run_with_timeout(cmd, CONFIG_TIMEOUT).ok()?;
    let value = finished.stdout.trim_end_matches('\n');
    (finished.success && !value.is_empty()).then(|| value.to_string())
}

/// The file that sets `value`, from `--show-origin -z --get-regexp` output
/// (`<origin>NUL<key>LF<value>NUL` per entry); the last one wins, as in git.
fn origin_of(output: &str, value: &str) -> Option<String> {
    let fields: Vec<&str> = output.split('\0').collect();
    fields
        .chunks(2)
        .filter_map(|pair| match pair {
            [origin, entry] => Some((*origin, entry.split_once('\n')?.1)),
            _ => None,
        })
        .filter(|(_, found)| *found == value)
        .map(|(origin, _)| match origin.strip_prefix("file:") {
            Some(file) => file.to_string(),
            None => "the environment's configuration".to_string(),
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_of_a_value_is_the_last_file_setting_it() {
        // Captured from git 2.47: `git config --show-origin -z --get-regexp '^http\.(.*\.)?sslcainfo$'`.
        let output = "file:/home/git/.gitconfig\0http.sslcainfo\n/etc/ca.pem\0\
file:/srv/git/app.git/config\0http.https://gitlab.example.com/.sslcainfo\n/srv/ca.pem\0\
command line:\0http.https://h:443/.sslcainfo\n/x/ca.pem\0";
        assert_eq!(
            origin_of(output, "/srv/ca.pem").as_deref(),
            Some("/srv/git/app.git/config")
        );
        assert_eq!(
            origin_of(output, "/x/ca.pem").as_deref(),
            Some("the environment's configuration")
        );
        assert_eq!(origin_of(output, "/nowhere.pem"), None);
        assert_eq!(origin_of("", "/x"), None);
    }
}
