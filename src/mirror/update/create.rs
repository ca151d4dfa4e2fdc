//! A repository the mirror says does not exist, created when the mirror's `create` says how
//! (docs/mirror-side.md): `git init --bare` of the URL's path over the mirror's own SSH key
//! and host keys, or the forge's REST API. Only on the mirror's word that the repository is missing
//! ([`crate::git::Failure::repository_missing`]), never on a refused login; the update then pushes
//! at once. A repository another worker created meanwhile is fine: creating is idempotent.

use crate::access::repo_location::RepoLocation;
use crate::access::ssh::remote_shell;
use crate::config::MirrorConfig;
use crate::config::mirror_side::CreateKind;
use crate::git::{Failure, FailureClass};
use crate::mirror::forge::{Creation, Forge, repository_description};
use std::path::Path;

/// Whether `failure` of an update calls for creating the mirror's repository.
pub fn wanted(mirror: &MirrorConfig, failure: &Failure) -> bool {
    failure.repository_missing && mirror.side.create.is_some()
}

/// What creating the repository would do, in words, for `sync --dry-run` and `check`.
pub fn plan(mirror: &MirrorConfig) -> Option<String> {
    let kind = mirror.side.create?;
    Some(match kind {
        CreateKind::Ssh => match RepoLocation::parse(&mirror.url) {
            Ok(location) => format!("git init --bare {} on {} (over SSH)", location.path, location.host),
            Err(e) => format!("over SSH, but {e}"),
        },
        _ => match Forge::for_mirror(mirror) {
            Ok(forge) => format!("{}, {}", forge.describe(), mirror.side.visibility.as_str()),
            Err(e) => format!("through {}'s API, but {}", kind.as_str(), e.message),
        },
    })
}

/// Creates the mirror's repository of `repo`; returns what was done, or why it failed.
pub fn create_missing(repo: &Path, mirror: &MirrorConfig) -> Result<String, Failure> {
    let failed = |failure: Failure| {
        Failure::new(
            format!(
                "the mirror says the repository does not exist, and creating it failed: {}",
                failure.message
            ),
            failure.class,
        )
    };
    match mirror.side.create {
        Some(CreateKind::Ssh) => {
            let location =
                RepoLocation::parse(&mirror.url).map_err(|e| failed(Failure::new(e, FailureClass::Permanent)))?;
            let format = crate::util::oid::object_format(repo);
            remote_shell::init_bare(mirror, &location, format).map_err(failed)?;
            Ok(format!(
                "created the repository {} on {} (git init --bare over SSH)",
                location.path, location.host
            ))
        }
        Some(_) => {
            let forge = Forge::for_mirror(mirror).map_err(failed)?;
            let description = repository_description(repo);
            match forge
                .create(description.as_deref(), mirror.side.visibility)
                .map_err(failed)?
            {
                Creation::Created => Ok(format!(
                    "created the repository {}, {}",
                    forge.describe(),
                    mirror.side.visibility.as_str()
                )),
                Creation::AlreadyThere => Ok(format!(
                    "the repository {} exists already (created meanwhile, by another worker?)",
                    forge.describe()
                )),
            }
        }
        None => Err(Failure::new(
            "the mirror says the repository does not exist (set `create` to have it created)",
            FailureClass::Permanent,
        )),
    }
}
