//! Where a mirror's user name and password go: only to the HTTP(S) origins of its URL and of its
//! `lfs_url`. Settings that would never travel anywhere are refused by `add` and `set` and noted
//! by `check`, so nobody believes a file:// or SSH mirror is protected by a password it never sends.

use crate::config::{MirrorConfig, SecretSource};
use crate::util::remote_url::{Transport, http_origin, transport_of};

/// The HTTP(S) origins (`https://host[:port]`) that get a mirror's user name and password: its
/// URL's and its `lfs_url`'s, in that order, each once.
pub fn credential_origins(url: &str, lfs_url: Option<&str>) -> Vec<String> {
    let mut origins: Vec<String> = [Some(url), lfs_url]
        .into_iter()
        .flatten()
        .filter_map(http_origin)
        .collect();
    origins.dedup();
    origins
}

/// The credential settings a mirror has, by key name (`username`, `password_file`, …).
pub fn credential_keys(mirror: &MirrorConfig) -> Vec<&'static str> {
    let password = mirror.password.as_ref().map(|source| match source {
        SecretSource::File(_) => "password_file",
        SecretSource::Env(_) => "password_env",
        SecretSource::Inline(_) => "password",
    });
    mirror
        .username
        .as_ref()
        .map(|_| "username")
        .into_iter()
        .chain(password)
        .collect()
}

/// Why the mirror's user name or password would never be sent, when it has one and neither its
/// URL nor its `lfs_url` is HTTP(S); `None` when they travel (or there are none).
pub fn unused_credentials(mirror: &MirrorConfig) -> Option<String> {
    let keys = credential_keys(mirror);
    if keys.is_empty() || !credential_origins(&mirror.url, mirror.lfs.url.as_deref()).is_empty() {
        return None;
    }
    let (kind, how) = match transport_of(&mirror.url) {
        Transport::Ssh => (
            "an SSH mirror",
            "; an SSH mirror logs in with a key (`ssh_key`; `git-push-mirror keygen` makes one), and an SSH \
             user goes in the URL: ssh://USER@host/path or USER@host:path",
        ),
        Transport::Git => ("a git:// mirror", "; git:// has no authentication"),
        Transport::File => ("a local (file://) mirror", ""),
        _ => ("this mirror", ""),
    };
    let keys: Vec<String> = keys.iter().map(|key| format!("`{key}`")).collect();
    Some(format!(
        "{} set, but {kind} is never sent a user name or password: only https and http mirrors use them \
         (and an https `lfs_url`, for the LFS endpoint){how}",
        keys.join(" and ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(
        url: &str,
        username: Option<&str>,
        password: Option<SecretSource>,
        lfs_url: Option<&str>,
    ) -> MirrorConfig {
        let mut mirror = MirrorConfig::example(url);
        mirror.username = username.map(String::from);
        mirror.password = password;
        mirror.lfs.url = lfs_url.map(String::from);
        mirror
    }

    #[test]
    fn credentials_travel_only_to_http_origins() {
        assert_eq!(
            credential_origins("https://h:8443/a.git", Some("https://lfs.h/a")),
            ["https://h:8443", "https://lfs.h"]
        );
        assert_eq!(
            credential_origins("https://h/a.git", Some("https://h/lfs")),
            ["https://h"]
        );
        assert_eq!(
            credential_origins("file:///srv/a.git", Some("http://lfs:9/x")),
            ["http://lfs:9"]
        );
        assert!(credential_origins("git@h:a.git", None).is_empty());
    }

    #[test]
    fn credentials_that_never_travel_are_named_with_what_the_transport_uses() {
        let file = || Some(SecretSource::File("/t".into()));
        let why = unused_credentials(&mirror("file:///srv/a.git", Some("bot"), file(), None)).unwrap();
        assert!(
            why.starts_with("`username` and `password_file` set, but a local (file://) mirror is never sent"),
            "{why}"
        );
        let why = unused_credentials(&mirror("git@h:a.git", Some("git"), None, None)).unwrap();
        assert!(why.contains("an SSH mirror logs in with a key"), "{why}");
        let env = Some(SecretSource::Env("TOKEN".into()));
        let why = unused_credentials(&mirror("git://h/a.git", None, env, None)).unwrap();
        assert!(
            why.starts_with("`password_env` set") && why.contains("git:// has no authentication"),
            "{why}"
        );

        // They travel: over https, or to an LFS endpoint of the mirror's.
        assert_eq!(
            unused_credentials(&mirror("https://h/a.git", Some("bot"), file(), None)),
            None
        );
        let lfs = Some("https://lfs.h/a.git/info/lfs");
        assert_eq!(
            unused_credentials(&mirror("file:///srv/a.git", Some("bot"), file(), lfs)),
            None
        );
        assert_eq!(
            unused_credentials(&mirror("git@h:a.git", Some("bot"), file(), lfs)),
            None
        );
        assert_eq!(unused_credentials(&mirror("file:///srv/a.git", None, None, None)), None);
    }
}
