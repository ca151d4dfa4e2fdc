//! Forges' REST APIs on the mirror's side (docs/mirror-side.md): create a repository the
//! mirror says does not exist (GitHub, GitLab, Gitea and Forgejo), and make a branch its default.
//! Each forge's calls are in its own file; here are what they share: the API's base (derived from
//! the mirror's host, or `api_url`), the token (`api_token_file`, else the mirror's password), the
//! HTTP client ([`crate::access::http`]: the mirror's `ca_file`, no redirects), and the forge's
//! answers turned into failures of the right class in the forge's own words, with the token
//! redacted. The token travels in a header only: never in a URL, an argument or a message.

mod gitlab;
mod owned;

use crate::access::http::{Answer, HttpClient, Method};
use crate::access::repo_location::{ForgePath, RepoLocation};
use crate::config::MirrorConfig;
use crate::config::mirror_side::{CreateKind, Visibility};
use crate::git::{Failure, FailureClass};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The longest an API call may take (at most the mirror's `timeout`).
const API_TIMEOUT: Duration = Duration::from_secs(120);

/// How much of an answer is read.
const MAX_ANSWER: u64 = 1024 * 1024;

/// How much of a forge's message goes into an error.
const MAX_MESSAGE: usize = 300;

/// What creating the repository came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Creation {
    Created,
    /// It was there already (another worker created it meanwhile, or the token cannot see it):
    /// the push that follows tells which.
    AlreadyThere,
}

/// One mirror's repository on its forge.
pub struct Forge {
    kind: CreateKind,
    base: String,
    token: String,
    client: HttpClient,
    repo: ForgePath,
}

/// The API base a forge's kind has on `location`'s host: `https://api.github.com` for
/// github.com, `https://HOST/api/v3` for GitHub Enterprise, `https://HOST/api/v4` for GitLab,
/// `https://HOST/api/v1` for Gitea and Forgejo. An HTTPS mirror's port is the API's; an SSH one's is not.
pub fn api_base(kind: CreateKind, location: &RepoLocation) -> String {
    let host = match (location.port, &location.transport) {
        (Some(port), crate::util::remote_url::Transport::Https) => format!("{}:{port}", location.host),
        _ => location.host.clone(),
    };
    match kind {
        CreateKind::Github if host == "github.com" => "https://api.github.com".to_string(),
        CreateKind::Github => format!("https://{host}/api/v3"),
        CreateKind::Gitlab => format!("https://{host}/api/v4"),
        CreateKind::Gitea | CreateKind::Ssh => format!("https://{host}/api/v1"),
    }
}

/// The repository's description for the forge: its `description` file, unless that still says
/// what `git init` wrote.
pub fn repository_description(repo: &Path) -> Option<String> {
    let (text, _) = crate::util::regular_file::read_regular_text(&repo.join("description"), 64 * 1024).ok()?;
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() || text.starts_with("Unnamed repository;") {
        return None;
    }
    Some(text.chars().take(250).collect())
}

impl Forge {
    /// The forge of `mirror` (its `create` names one), with its token read.
    pub fn for_mirror(mirror: &MirrorConfig) -> Result<Forge, Failure> {
        let permanent =
            |message: String| Failure::new(format!("mirror {}: {message}", mirror.name), FailureClass::Permanent);
        let kind = mirror
            .side
            .create
            .filter(|kind| kind.is_forge())
            .ok_or_else(|| permanent("`create` names no forge".to_string()))?;
        let location = RepoLocation::parse(&mirror.url).map_err(permanent)?;
        let repo = location.forge_path().map_err(permanent)?;
        if kind != CreateKind::Gitlab && repo.namespace.contains('/') {
            return Err(permanent(format!(
                "{} names repositories OWNER/NAME, and `{}` has more parts",
                kind_name(kind),
                repo.full()
            )));
        }
        let base = mirror.side.api_url.clone().unwrap_or_else(|| api_base(kind, &location));
        let source = mirror
            .side
            .api_token
            .as_ref()
            .ok_or_else(|| permanent("no API token: set `api_token_file`".to_string()))?;
        let token =
            crate::access::auth::read_secret(source).map_err(|e| permanent(format!("reading the API token: {e:#}")))?;
        let client = HttpClient::new(mirror.timeout.min(API_TIMEOUT), mirror.ca_file.as_deref()).map_err(permanent)?;
        Ok(Forge {
            kind,
            base,
            token,
            client,
            repo,
        })
    }

    /// `github acme/app (https://api.github.com)`, for messages.
    pub fn describe(&self) -> String {
        format!("{} {} ({})", self.kind.as_str(), self.repo.full(), self.base)
    }

    /// Creates the repository, empty, with `description` and `visibility`.
    pub fn create(&self, description: Option<&str>, visibility: Visibility) -> Result<Creation, Failure> {
        match self.kind {
            CreateKind::Gitlab => gitlab::create(self, description, visibility),
            _ => owned::create(self, description, visibility),
        }
    }

    /// Where [`Forge::create`] would create it (`the organization acme`, `the group acme/sub`),
    /// found with reads only: the token and the owner are checked, nothing is changed.
    pub fn owner_description(&self) -> Result<String, Failure> {
        match self.kind {
            CreateKind::Gitlab => gitlab::namespace(self).map(|namespace| namespace.to_string()),
            _ => owned::owner(self).map(|owner| owner.to_string()),
        }
    }

    /// Makes `branch` (a branch name, without `refs/heads/`), already on the mirror, its default.
    pub fn set_default_branch(&self, branch: &str) -> Result<(), Failure> {
        let body = serde_json::json!({ "default_branch": branch });
        let (method, path) = match self.kind {
            CreateKind::Gitlab => (Method::Put, format!("/projects/{}", segment(&self.repo.full()))),
            _ => (
                Method::Patch,
                format!("/repos/{}/{}", segment(&self.repo.namespace), segment(&self.repo.name)),
            ),
        };
        let answer = self.call(method, &path, Some(&body))?;
        if answer.is_success() {
            Ok(())
        } else {
            Err(self.failure(&format!("making {branch} the default branch"), &answer))
        }
    }

    /// One API call: `path` under the base, a JSON `body`; a failure to talk at all is transient.
    fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer, Failure> {
        let url = format!("{}{path}", self.base);
        let (auth_name, auth_value) = match self.kind {
            CreateKind::Github => ("Authorization", format!("Bearer {}", self.token)),
            CreateKind::Gitlab => ("PRIVATE-TOKEN", self.token.clone()),
            CreateKind::Gitea | CreateKind::Ssh => ("Authorization", format!("token {}", self.token)),
        };
        let mut headers = vec![(auth_name, auth_value.as_str()), ("Accept", "application/json")];
        if self.kind == CreateKind::Github {
            headers[1] = ("Accept", "application/vnd.github+json");
            headers.push(("X-GitHub-Api-Version", "2022-11-28"));
        }
        let bytes = body.map(|body| body.to_string().into_bytes());
        if bytes.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.client
            .send(method, &url, &headers, bytes.as_deref(), MAX_ANSWER)
            .map_err(|e| {
                Failure::new(
                    self.redact(&format!("{} {url}: {e}", method.as_str())),
                    FailureClass::Transient,
                )
            })
    }

    /// The failure of `what` that `answer` says: the forge's own words, the class its status
    /// means, and for a refused token what the token needs.
    fn failure(&self, what: &str, answer: &Answer) -> Failure {
        let words = forge_message(answer);
        let class = match answer.status {
            429 | 503 => FailureClass::RateLimited,
            500..=599 => FailureClass::Transient,
            _ => FailureClass::Permanent,
        };
        let hint = match answer.status {
            401 | 403 => format!(" (hint: {})", token_needs(self.kind)),
            300..=399 => " (hint: the API answered with a redirect, which is not followed: set `api_url` to the \
                          API's own address)"
                .to_string(),
            _ => String::new(),
        };
        Failure::new(
            self.redact(&format!(
                "{what} on {}: {} answered HTTP {}{}{hint}",
                self.repo.full(),
                self.base,
                answer.status,
                if words.is_empty() {
                    String::new()
                } else {
                    format!(": {words}")
                }
            )),
            class,
        )
    }

    fn redact(&self, text: &str) -> String {
        crate::util::redact::redact(text, &[&self.token])
    }

    /// Whether `answer` to a create says the repository is there already.
    fn says_already_there(answer: &Answer) -> bool {
        let words = forge_message(answer).to_ascii_lowercase();
        answer.status == 409
            || (matches!(answer.status, 400 | 422)
                && (words.contains("already exists") || words.contains("has already been taken")))
    }
}

/// The forge's name, for messages.
fn kind_name(kind: CreateKind) -> &'static str {
    match kind {
        CreateKind::Github => "GitHub",
        CreateKind::Gitlab => "GitLab",
        CreateKind::Gitea => "Gitea",
        CreateKind::Ssh => "SSH",
    }
}

/// What a token must be allowed to do, per forge (docs/mirror-side.md).
fn token_needs(kind: CreateKind) -> &'static str {
    match kind {
        CreateKind::Github => {
            "the token must be allowed to create repositories of the owner and administer them: a classic token \
             with the `repo` scope, or a fine-grained one with Administration: read and write on the owner \
             (an organization must also let members create repositories)"
        }
        CreateKind::Gitlab => {
            "the token needs the `api` scope and at least the Developer role in the group, if the group lets \
             developers create projects (Maintainer to change the default branch)"
        }
        _ => {
            "the token needs `write:repository` and `read:user` (and `write:organization` for an organization's \
             repositories)"
        }
    }
}

/// A path parameter: every byte but the unreserved ones percent-encoded (GitLab's
/// `acme%2Fapp` included).
fn segment(text: &str) -> String {
    crate::util::redact::percent_encode(text)
}

/// The forge's own words in an answer: GitHub's `message` and `errors[].message`, GitLab's
/// `message` (text, or field → messages) and `error`, Gitea's `message`; else the body's text.
fn forge_message(answer: &Answer) -> String {
    let mut words: Vec<String> = Vec::new();
    match serde_json::from_slice::<Value>(&answer.body) {
        Ok(json) => {
            match json.get("message") {
                Some(Value::String(text)) => words.push(text.clone()),
                Some(Value::Object(fields)) => {
                    for (field, messages) in fields {
                        let said: Vec<String> = match messages {
                            Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                            Value::String(text) => vec![text.clone()],
                            _ => Vec::new(),
                        };
                        words.push(format!("{field} {}", said.join(", ")));
                    }
                }
                _ => {}
            }
            if let Some(Value::String(error)) = json.get("error") {
                words.push(error.clone());
            }
            if let Some(Value::Array(errors)) = json.get("errors") {
                for error in errors {
                    match error {
                        Value::String(text) => words.push(text.clone()),
                        other => {
                            if let Some(text) = other.get("message").and_then(Value::as_str) {
                                words.push(text.to_string());
                            }
                        }
                    }
                }
            }
        }
        Err(_) => words.push(answer.one_line()),
    }
    let text = words
        .iter()
        .map(|w| crate::git::remote_words::clean(w))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if text.chars().count() > MAX_MESSAGE {
        let cut: String = text.chars().take(MAX_MESSAGE).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// A field of an answer's JSON body.
fn field(answer: &Answer, name: &str) -> Option<Value> {
    serde_json::from_slice::<Value>(&answer.body).ok()?.get(name).cloned()
}

/// What a successful create answered: created, or there already; else the failure.
fn created(forge: &Forge, answer: &Answer) -> Result<Creation, Failure> {
    if answer.is_success() {
        Ok(Creation::Created)
    } else if Forge::says_already_there(answer) {
        Ok(Creation::AlreadyThere)
    } else {
        Err(forge.failure("creating the repository", answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            location: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_api_base_follows_the_host() {
        let base = |kind, url: &str| api_base(kind, &RepoLocation::parse(url).unwrap());
        assert_eq!(
            base(CreateKind::Github, "git@github.com:acme/app.git"),
            "https://api.github.com"
        );
        assert_eq!(
            base(CreateKind::Github, "https://ghe.example.com/acme/app.git"),
            "https://ghe.example.com/api/v3"
        );
        assert_eq!(
            base(CreateKind::Gitlab, "ssh://git@gitlab.example.com:2222/acme/sub/app.git"),
            "https://gitlab.example.com/api/v4"
        );
        assert_eq!(
            base(CreateKind::Gitea, "https://127.0.0.1:3000/acme/app.git"),
            "https://127.0.0.1:3000/api/v1"
        );
    }

    #[test]
    fn the_forges_words_are_read_from_each_forges_errors() {
        // As the forges' documentation shows them.
        let github = r#"{"message":"Repository creation failed.","errors":[{"resource":"Repository","code":"custom","field":"name","message":"name already exists on this account"}],"documentation_url":"https://docs.github.com/rest"}"#;
        assert_eq!(
            forge_message(&answer(422, github)),
            "Repository creation failed.; name already exists on this account"
        );
        assert!(Forge::says_already_there(&answer(422, github)));
        let gitlab = r#"{"message":{"name":["has already been taken"],"path":["has already been taken"]}}"#;
        assert_eq!(
            forge_message(&answer(400, gitlab)),
            "name has already been taken; path has already been taken"
        );
        assert!(Forge::says_already_there(&answer(400, gitlab)));
        assert!(Forge::says_already_there(&answer(
            409,
            r#"{"message":"The repository with the same name already exists."}"#
        )));
        let refused = r#"{"message":"name is invalid","errors":["name can contain only letters"]}"#;
        assert!(!Forge::says_already_there(&answer(422, refused)));
        assert_eq!(
            forge_message(&answer(502, "<html>\n bad gateway </html>")),
            "<html> bad gateway </html>"
        );
    }

    #[test]
    fn descriptions_skip_gits_default() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(repository_description(dir.path()), None);
        std::fs::write(
            dir.path().join("description"),
            "Unnamed repository; edit this file 'description' to name the repository.\n",
        )
        .unwrap();
        assert_eq!(repository_description(dir.path()), None);
        std::fs::write(dir.path().join("description"), "The app\nof acme\n").unwrap();
        assert_eq!(repository_description(dir.path()).as_deref(), Some("The app of acme"));
    }
}
