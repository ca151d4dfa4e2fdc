//! The mirror's side of a mirror (docs/mirror-side.md): whether a repository missing there
//! is created and how (`create`), the forge API that creates it and sets its default branch
//! (`api_url`, `api_token_file`, `visibility`), and the push options sent with each push
//! (`push_options`, `first_sync_push_options`). The values as the files have them, and their
//! checked form.

use crate::config::SecretSource;
use crate::util::remote_url::{Transport, split_credentials, transport_of};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::path::PathBuf;

/// How a repository missing on the mirror is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CreateKind {
    /// `git init --bare` of the URL's path, over the mirror's own SSH key and host keys.
    Ssh,
    /// GitHub's REST API (github.com or GitHub Enterprise Server).
    Github,
    /// GitLab's REST API.
    Gitlab,
    /// Gitea's or Forgejo's REST API.
    Gitea,
}

impl CreateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CreateKind::Ssh => "ssh",
            CreateKind::Github => "github",
            CreateKind::Gitlab => "gitlab",
            CreateKind::Gitea => "gitea",
        }
    }

    /// Whether the repository is created through a forge's REST API (which also sets its default
    /// branch).
    pub fn is_forge(self) -> bool {
        self != CreateKind::Ssh
    }

    /// The value `add --create` and `set --create` take (`false` turns creation off).
    pub fn parse(text: &str) -> Option<Option<CreateKind>> {
        Some(Some(match text {
            "ssh" => CreateKind::Ssh,
            "github" => CreateKind::Github,
            "gitlab" => CreateKind::Gitlab,
            "gitea" | "forgejo" => CreateKind::Gitea,
            "false" => return Some(None),
            _ => return None,
        }))
    }
}

/// `create = "ssh" | "github" | "gitlab" | "gitea" | false`, as written (`"forgejo"` is Gitea's
/// API).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateSetting(pub Option<CreateKind>);

const CREATE_EXPECTED: &str = "\"ssh\", \"github\", \"gitlab\", \"gitea\" (or \"forgejo\") or false";

impl<'de> Deserialize<'de> for CreateSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CreateVisitor;
        impl Visitor<'_> for CreateVisitor {
            type Value = CreateSetting;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(CREATE_EXPECTED)
            }
            fn visit_bool<E: de::Error>(self, create: bool) -> Result<CreateSetting, E> {
                if create {
                    return Err(E::custom(format!(
                        "`create = true` does not say how: use {CREATE_EXPECTED}"
                    )));
                }
                Ok(CreateSetting(None))
            }
            fn visit_str<E: de::Error>(self, kind: &str) -> Result<CreateSetting, E> {
                match CreateKind::parse(kind) {
                    Some(kind) if kind.is_some() => Ok(CreateSetting(kind)),
                    _ => Err(E::custom(format!(
                        "unknown `create` value \"{kind}\", expected {CREATE_EXPECTED}"
                    ))),
                }
            }
        }
        deserializer.deserialize_any(CreateVisitor)
    }
}

/// Who may see a repository a forge creates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    #[default]
    Private,
    Public,
    /// Every signed-in user of the instance (GitLab; GitHub organisations of an enterprise).
    Internal,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Public => "public",
            Visibility::Internal => "internal",
        }
    }

    pub fn parse(text: &str) -> Option<Visibility> {
        Some(match text {
            "private" => Visibility::Private,
            "public" => Visibility::Public,
            "internal" => Visibility::Internal,
            _ => return None,
        })
    }
}

/// The mirror's side of one mirror, checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorSide {
    /// How a missing repository is created; `None`: it is not.
    pub create: Option<CreateKind>,
    /// The forge API's base URL, when not the one derived from the mirror's host.
    pub api_url: Option<String>,
    /// The API token: `api_token_file`, else the mirror's password (HTTPS mirrors).
    pub api_token: Option<SecretSource>,
    pub visibility: Visibility,
    /// Sent with every push to a mirror that accepts push options.
    pub push_options: Vec<String>,
    /// Sent instead of `push_options` with the pushes of a mirror's first sync.
    pub first_sync_push_options: Option<Vec<String>>,
}

impl MirrorSide {
    /// The push options of an update: the first sync's when it is one and they are set.
    pub fn push_options_for(&self, first_sync: bool) -> &[String] {
        match (&self.first_sync_push_options, first_sync) {
            (Some(options), true) => options,
            _ => &self.push_options,
        }
    }
}

/// The keys of one `[mirror.NAME]` (or `[defaults]`) table that [`resolve`] reads.
pub struct SideKeys {
    pub create: Option<CreateSetting>,
    pub api_url: Option<String>,
    pub api_token_file: Option<PathBuf>,
    pub visibility: Option<Visibility>,
    pub push_options: Option<Vec<String>>,
    pub first_sync_push_options: Option<Vec<String>>,
}

/// `[defaults]`' part of the mirror's side (`api_url` and `api_token_file` belong to one mirror).
pub fn resolve_defaults(keys: SideKeys) -> Result<MirrorSide, String> {
    let side = MirrorSide {
        create: keys.create.and_then(|c| c.0),
        api_url: None,
        api_token: None,
        visibility: keys.visibility.unwrap_or_default(),
        push_options: keys.push_options.unwrap_or_default(),
        first_sync_push_options: keys.first_sync_push_options,
    };
    check_push_options(&side)?;
    Ok(side)
}

/// One mirror's side, its own keys over `defaults`, checked against its `url` and `password`.
pub fn resolve(
    keys: SideKeys,
    defaults: &MirrorSide,
    url: &str,
    password: Option<&SecretSource>,
) -> Result<MirrorSide, String> {
    let create = match keys.create {
        Some(setting) => setting.0,
        None => defaults.create,
    };
    let api_url = keys.api_url.map(check_api_url).transpose()?;
    let transport = transport_of(url);
    let https = matches!(transport, Transport::Https | Transport::Http);
    let api_token = match (keys.api_token_file, password) {
        (Some(file), _) => Some(SecretSource::File(file)),
        (None, Some(password)) if https => Some(password.clone()),
        _ => None,
    };
    let side = MirrorSide {
        create,
        api_url,
        api_token,
        visibility: keys.visibility.unwrap_or(defaults.visibility),
        push_options: keys.push_options.unwrap_or_else(|| defaults.push_options.clone()),
        first_sync_push_options: keys
            .first_sync_push_options
            .or_else(|| defaults.first_sync_push_options.clone()),
    };
    check_push_options(&side)?;
    match create {
        Some(CreateKind::Ssh) if transport != Transport::Ssh => {
            return Err(format!(
                "`create = \"ssh\"` runs `git init --bare` over SSH, so it needs an SSH URL (ssh://USER@HOST/PATH \
                 or USER@HOST:PATH), not {}",
                transport.protocol_name()
            ));
        }
        Some(kind) if kind.is_forge() && !(https || transport == Transport::Ssh) => {
            return Err(format!(
                "`create = \"{}\"` creates the repository on a forge, which is reached over https or ssh, not {}",
                kind.as_str(),
                transport.protocol_name()
            ));
        }
        Some(kind) if kind.is_forge() && side.api_token.is_none() => {
            return Err(format!(
                "`create = \"{}\"` needs an API token that may create repositories: set `api_token_file` (a file of \
                 mode 600 holding the token){}",
                kind.as_str(),
                if https {
                    ", or give the mirror its password (the same token serves git and the API)"
                } else {
                    ""
                }
            ));
        }
        Some(kind) if kind.is_forge() && kind != CreateKind::Gitlab && side.visibility == Visibility::Internal => {
            return Err(format!(
                "`visibility = \"internal\"` is GitLab's: {}'s API creates \"private\" or \"public\" repositories",
                kind.as_str()
            ));
        }
        _ => {}
    }
    Ok(side)
}

/// `api_url` is an HTTP(S) URL without credentials (the token goes in a header).
fn check_api_url(url: String) -> Result<String, String> {
    if !matches!(transport_of(&url), Transport::Https | Transport::Http) || !url.contains("://") {
        return Err(format!(
            "`api_url` \"{url}\" must be an https:// URL, such as \"https://gitlab.example.com/api/v4\""
        ));
    }
    let split = split_credentials(&url);
    if split.username.is_some() || split.password.is_some() {
        return Err(
            "`api_url` must not contain a user name or password: the token comes from `api_token_file` \
                    or the mirror's password"
                .into(),
        );
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// git refuses push options with a line break; an empty one says nothing.
fn check_push_options(side: &MirrorSide) -> Result<(), String> {
    let all = side
        .push_options
        .iter()
        .chain(side.first_sync_push_options.iter().flatten());
    for option in all {
        if option.is_empty() || option.contains(['\n', '\r', '\0']) {
            return Err(format!(
                "push option {option:?} must be one line of text, such as \"ci.skip\""
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> SideKeys {
        SideKeys {
            create: None,
            api_url: None,
            api_token_file: None,
            visibility: None,
            push_options: None,
            first_sync_push_options: None,
        }
    }

    #[test]
    fn create_takes_a_kind_or_false() {
        #[derive(Deserialize)]
        struct T {
            create: CreateSetting,
        }
        let parse = |text: &str| toml::from_str::<T>(text).map(|t| t.create.0);
        assert_eq!(parse("create = \"ssh\"").unwrap(), Some(CreateKind::Ssh));
        assert_eq!(parse("create = \"forgejo\"").unwrap(), Some(CreateKind::Gitea));
        assert_eq!(parse("create = false").unwrap(), None);
        let err = parse("create = true").unwrap_err().to_string();
        assert!(err.contains("does not say how"), "{err}");
        let err = parse("create = \"bitbucket\"").unwrap_err().to_string();
        assert!(err.contains("unknown `create` value \"bitbucket\""), "{err}");
    }

    #[test]
    fn a_forge_needs_a_token_and_ssh_needs_an_ssh_url() {
        let defaults = MirrorSide::default();
        let with = |create, token: Option<&str>| SideKeys {
            create: Some(CreateSetting(Some(create))),
            api_token_file: token.map(PathBuf::from),
            ..keys()
        };
        let err = resolve(
            with(CreateKind::Github, None),
            &defaults,
            "git@github.com:a/b.git",
            None,
        )
        .unwrap_err();
        assert!(err.contains("api_token_file"), "{err}");
        let password = SecretSource::File("/p".into());
        let side = resolve(
            with(CreateKind::Gitlab, None),
            &defaults,
            "https://gitlab.example.com/a/b.git",
            Some(&password),
        )
        .unwrap();
        assert_eq!(side.api_token, Some(password.clone()), "the mirror's password");
        let side = resolve(
            with(CreateKind::Gitea, Some("/t")),
            &defaults,
            "https://h/a/b.git",
            Some(&password),
        )
        .unwrap();
        assert_eq!(
            side.api_token,
            Some(SecretSource::File("/t".into())),
            "api_token_file wins"
        );
        let err = resolve(with(CreateKind::Ssh, None), &defaults, "https://h/a.git", None).unwrap_err();
        assert!(err.contains("needs an SSH URL"), "{err}");
        let err = resolve(with(CreateKind::Github, Some("/t")), &defaults, "/srv/a.git", None).unwrap_err();
        assert!(err.contains("reached over https or ssh"), "{err}");
        resolve(with(CreateKind::Ssh, None), &defaults, "ssh://git@h/srv/a.git", None).unwrap();
    }

    #[test]
    fn defaults_apply_and_the_mirror_wins() {
        let defaults = resolve_defaults(SideKeys {
            create: Some(CreateSetting(Some(CreateKind::Ssh))),
            push_options: Some(vec!["ci.skip".into()]),
            visibility: Some(Visibility::Public),
            ..keys()
        })
        .unwrap();
        let side = resolve(keys(), &defaults, "ssh://h/a.git", None).unwrap();
        assert_eq!(side.create, Some(CreateKind::Ssh));
        assert_eq!(side.push_options, ["ci.skip"]);
        assert_eq!(side.visibility, Visibility::Public);
        let side = resolve(
            SideKeys {
                create: Some(CreateSetting(None)),
                push_options: Some(vec![]),
                ..keys()
            },
            &defaults,
            "https://h/a.git",
            None,
        )
        .unwrap();
        assert_eq!((side.create, side.push_options.len()), (None, 0));
    }

    #[test]
    fn push_options_are_one_line_each_and_the_first_sync_has_its_own() {
        let err = resolve_defaults(SideKeys {
            push_options: Some(vec!["a\nb".into()]),
            ..keys()
        })
        .unwrap_err();
        assert!(err.contains("one line"), "{err}");
        let side = MirrorSide {
            push_options: vec!["x".into()],
            first_sync_push_options: Some(vec!["ci.skip".into()]),
            ..Default::default()
        };
        assert_eq!(side.push_options_for(false), ["x"]);
        assert_eq!(side.push_options_for(true), ["ci.skip"]);
        let side = MirrorSide {
            push_options: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(side.push_options_for(true), ["x"]);
    }

    #[test]
    fn api_url_is_https_without_credentials_and_gitea_has_no_internal() {
        let with_url = |url: &str| SideKeys {
            api_url: Some(url.into()),
            ..keys()
        };
        let defaults = MirrorSide::default();
        let side = resolve(with_url("https://h/api/v4/"), &defaults, "https://h/a.git", None).unwrap();
        assert_eq!(side.api_url.as_deref(), Some("https://h/api/v4"));
        assert!(resolve(with_url("ssh://h/api"), &defaults, "https://h/a.git", None).is_err());
        assert!(resolve(with_url("https://u:p@h/api"), &defaults, "https://h/a.git", None).is_err());
        let err = resolve(
            SideKeys {
                create: Some(CreateSetting(Some(CreateKind::Gitea))),
                api_token_file: Some("/t".into()),
                visibility: Some(Visibility::Internal),
                ..keys()
            },
            &defaults,
            "https://h/a.git",
            None,
        )
        .unwrap_err();
        assert!(err.contains("internal"), "{err}");
    }
}
