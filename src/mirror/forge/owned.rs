//! GitHub's and Gitea's (and Forgejo's) way, which is the same: a repository belongs to the
//! token's own account (`GET /user` says which) or to an organization (`GET /orgs/{org}`), and is
//! created with `POST /user/repos` or `POST /orgs/{org}/repos` (`name`, `description`, `private`).

use super::{Creation, Forge, created, field, segment};
use crate::access::http::Method;
use crate::config::mirror_side::Visibility;
use crate::git::{Failure, FailureClass};
use serde_json::{Value, json};
use std::fmt;

/// Who owns the repository.
pub(super) enum Owner {
    /// The token's own account.
    User(String),
    Organization(String),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::User(login) => write!(f, "the token's own account {login}"),
            Owner::Organization(org) => write!(f, "the organization {org}"),
        }
    }
}

/// The owner of the mirror's repository, by its URL: the token's account, or an organization.
pub(super) fn owner(forge: &Forge) -> Result<Owner, Failure> {
    let owner = forge.repo.owner();
    let answer = forge.call(Method::Get, "/user", None)?;
    if !answer.is_success() {
        return Err(forge.failure("finding the token's account", &answer));
    }
    let login = match field(&answer, "login") {
        Some(Value::String(login)) => login,
        _ => {
            return Err(Failure::new(
                format!("{} answered GET /user without the account's `login`", forge.base),
                FailureClass::Permanent,
            ));
        }
    };
    if login.eq_ignore_ascii_case(owner) {
        return Ok(Owner::User(login));
    }
    let answer = forge.call(Method::Get, &format!("/orgs/{}", segment(owner)), None)?;
    match answer.status {
        200..=299 => Ok(Owner::Organization(owner.to_string())),
        404 => Err(Failure::new(
            format!(
                "creating {}: {owner} is neither the token's own account ({login}) nor an organization the token \
                 can see: check the owner in the mirror's URL, or use a token of {owner}",
                forge.repo.full()
            ),
            FailureClass::Permanent,
        )),
        _ => Err(forge.failure(&format!("looking up the organization {owner}"), &answer)),
    }
}

/// Creates the repository, empty, under its owner.
pub(super) fn create(forge: &Forge, description: Option<&str>, visibility: Visibility) -> Result<Creation, Failure> {
    let path = match owner(forge)? {
        Owner::User(_) => "/user/repos".to_string(),
        Owner::Organization(org) => format!("/orgs/{}/repos", segment(&org)),
    };
    let mut body = json!({ "name": forge.repo.name, "private": visibility != Visibility::Public });
    if let Some(description) = description {
        body["description"] = Value::from(description);
    }
    let answer = forge.call(Method::Post, &path, Some(&body))?;
    created(forge, &answer)
}
