//! Where a mirror's repository is, taken apart from its URL (with gix's URL parser, which reads
//! them as git does): the host and port to reach, the SSH user, the path on the host, and the
//! `owner/…/name` a forge knows it by. Used to create the repository and set its default branch
//! (docs/mirror-side.md).

use crate::util::remote_url::{Transport, transport_of};

/// A mirror repository's location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoLocation {
    pub transport: Transport,
    /// The SSH user (`git` in `git@host:path`); HTTPS users never matter here.
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// The path as git sends it to the host: absolute (`/srv/x.git`), relative to the SSH user's
    /// home (`mirrors/x.git`), or `~/…`, `~user/…`.
    pub path: String,
}

/// A repository as a forge names it: the namespace (a user, an organisation, GitLab's nested
/// groups `acme/sub`) and the repository's own name, without `.git`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForgePath {
    pub namespace: String,
    pub name: String,
}

impl ForgePath {
    /// `namespace/name`.
    pub fn full(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The owner (first part of the namespace): a user or an organisation on GitHub and Gitea.
    pub fn owner(&self) -> &str {
        self.namespace.split('/').next().unwrap_or(&self.namespace)
    }
}

impl RepoLocation {
    /// Takes `url` (without credentials) apart; local paths and URLs without a host have none.
    pub fn parse(url: &str) -> Result<RepoLocation, String> {
        let transport = transport_of(url);
        let parsed = gix::url::parse(url.as_bytes()).map_err(|e| format!("cannot read the URL: {e}"))?;
        let host = parsed
            .host_argument_safe()
            .ok_or_else(|| "the URL names no host this program would give to ssh".to_string())?
            .to_string();
        let user = match parsed.user_as_argument() {
            gix::url::ArgumentSafety::Dangerous(_) => {
                return Err("the URL's user name starts with `-`".to_string());
            }
            gix::url::ArgumentSafety::Usable(user) if transport == Transport::Ssh => Some(user.to_string()),
            _ => None,
        };
        let path = String::from_utf8(parsed.path.to_vec()).map_err(|_| "the URL's path is not UTF-8".to_string())?;
        Ok(RepoLocation {
            transport,
            user,
            host,
            port: parsed.port,
            path,
        })
    }

    /// The repository as a forge names it: the path's segments, the last one without `.git`.
    pub fn forge_path(&self) -> Result<ForgePath, String> {
        let path = self.path.trim_start_matches('/').trim_end_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        match path.rsplit_once('/') {
            Some((namespace, name))
                if !namespace.is_empty()
                    && !name.is_empty()
                    && !path
                        .split('/')
                        .any(|part| part.is_empty() || part == "." || part == ".." || part.starts_with('~')) =>
            {
                Ok(ForgePath {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                })
            }
            _ => Err(format!(
                "the URL's path `{}` is not OWNER/NAME (or GROUP/…/NAME) as a forge names repositories",
                self.path
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_and_https_urls_are_taken_apart() {
        let at = RepoLocation::parse("git@github.com:acme-mirror/app.git").unwrap();
        assert_eq!(
            (
                at.transport.clone(),
                at.user.as_deref(),
                at.host.as_str(),
                at.port,
                at.path.as_str()
            ),
            (Transport::Ssh, Some("git"), "github.com", None, "acme-mirror/app.git")
        );
        let at = RepoLocation::parse("ssh://backup@h.example:2222/srv/mirrors/it%27s.git").unwrap();
        assert_eq!(
            (at.user.as_deref(), at.host.as_str(), at.port, at.path.as_str()),
            (Some("backup"), "h.example", Some(2222), "/srv/mirrors/it's.git")
        );
        let at = RepoLocation::parse("https://gitlab.example.com:8443/acme/sub/app.git").unwrap();
        assert_eq!(
            (at.user.as_deref(), at.host.as_str(), at.port),
            (None, "gitlab.example.com", Some(8443))
        );
        assert_eq!(
            at.forge_path().unwrap(),
            ForgePath {
                namespace: "acme/sub".into(),
                name: "app".into()
            }
        );
        assert_eq!(at.forge_path().unwrap().owner(), "acme");
        assert!(RepoLocation::parse("ssh://-oProxyCommand=x/a.git").is_err());
    }

    #[test]
    fn a_forge_path_is_owner_and_name() {
        let path = |url: &str| RepoLocation::parse(url).unwrap().forge_path();
        assert_eq!(path("https://github.com/acme/app").unwrap().full(), "acme/app");
        assert_eq!(path("git@h:acme/app.git/").unwrap().full(), "acme/app");
        for bad in [
            "https://github.com/app.git",
            "ssh://h/~u/app.git",
            "https://h/a/../b.git",
        ] {
            assert!(path(bad).is_err(), "{bad}");
        }
    }
}
