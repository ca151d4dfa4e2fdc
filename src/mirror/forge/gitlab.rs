//! GitLab's way: the namespace (a user, a group, a subgroup `acme/sub`) is looked up by its path
//! (`GET /namespaces/{id}`, the id being the URL-encoded path), and the project created in it with
//! `POST /projects` (`name`, `path`, `namespace_id`, `visibility`, `description`).

use super::{Creation, Forge, created, field, segment};
use crate::access::http::Method;
use crate::config::mirror_side::Visibility;
use crate::git::{Failure, FailureClass};
use serde_json::{Value, json};
use std::fmt;

/// A GitLab namespace, by its path and id.
pub(super) struct Namespace {
    pub path: String,
    pub id: i64,
    /// `user` or `group`, as GitLab says.
    pub kind: Option<String>,
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind.as_deref() {
            Some(kind) => write!(f, "the {kind} namespace {} (id {})", self.path, self.id),
            None => write!(f, "the namespace {} (id {})", self.path, self.id),
        }
    }
}

/// The namespace the mirror's URL names.
pub(super) fn namespace(forge: &Forge) -> Result<Namespace, Failure> {
    let path = &forge.repo.namespace;
    let answer = forge.call(Method::Get, &format!("/namespaces/{}", segment(path)), None)?;
    if answer.status == 404 {
        return Err(Failure::new(
            format!(
                "creating {}: GitLab knows no namespace {path} the token can see: create the group first, or check \
                 the URL's path",
                forge.repo.full()
            ),
            FailureClass::Permanent,
        ));
    }
    if !answer.is_success() {
        return Err(forge.failure(&format!("looking up the namespace {path}"), &answer));
    }
    match field(&answer, "id").and_then(|id| id.as_i64()) {
        Some(id) => Ok(Namespace {
            path: path.clone(),
            id,
            kind: field(&answer, "kind").and_then(|kind| kind.as_str().map(str::to_string)),
        }),
        None => Err(Failure::new(
            format!("{} answered GET /namespaces without the namespace's `id`", forge.base),
            FailureClass::Permanent,
        )),
    }
}

/// Creates the project, empty, in its namespace.
pub(super) fn create(forge: &Forge, description: Option<&str>, visibility: Visibility) -> Result<Creation, Failure> {
    let namespace = namespace(forge)?;
    let mut body = json!({
        "name": forge.repo.name,
        "path": forge.repo.name,
        "namespace_id": namespace.id,
        "visibility": visibility.as_str(),
    });
    if let Some(description) = description {
        body["description"] = Value::from(description);
    }
    let answer = forge.call(Method::Post, "/projects", Some(&body))?;
    created(forge, &answer)
}
