//! Whether the mirror an update started with is still the one the configuration on disk names:
//! asked between the steps of an update and before anything about the mirror is written. A
//! mirror removed meanwhile gets no more pushes and no state (`remove` deletes its state after
//! editing the configuration, and writers ask under the same state lock, so a removed mirror's
//! state never comes back); a re-pointed or disabled one gets no more pushes to where it was.

use crate::config::{self, GlobalConfig, MirrorConfig};
use crate::util::remote_url::redact_url;
use std::path::Path;

/// What the configuration on disk says of a mirror an update started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Still configured, enabled, with the same URL (or the configuration cannot be read now:
    /// nothing says otherwise, and the update goes on as it began).
    Same,
    /// Still configured under its name, but re-pointed or disabled (why, in words).
    Changed(String),
    /// No longer configured.
    Gone,
}

impl Presence {
    /// Why an update of it stops, in words; `None` while it is the same mirror.
    pub fn stop_reason(&self, repo: &Path, name: &str) -> Option<String> {
        match self {
            Presence::Same => None,
            Presence::Changed(why) => Some(format!(
                "mirror {name} was {why} during the update; nothing more was pushed to its old URL, and the next \
                 update reconciles it in full"
            )),
            Presence::Gone => Some(format!(
                "mirror {name} was removed from the configuration of {} during the update; nothing more was \
                 pushed and nothing about it was recorded",
                repo.display()
            )),
        }
    }
}

/// Looks at the configuration on disk now: the repository's `push-mirror.toml`, and the global
/// file `global` came from (fleet mirrors live there), else `global` itself.
pub fn presence(repo: &Path, mirror: &MirrorConfig, global: &GlobalConfig) -> Presence {
    let reloaded = global
        .source
        .as_deref()
        .and_then(|file| config::load_global(Some(file)).ok());
    let global = reloaded.as_ref().unwrap_or(global);
    let Ok(repo_config) = config::load_repo(repo, global) else {
        return Presence::Same;
    };
    match repo_config.mirror(&mirror.name) {
        None => Presence::Gone,
        Some(now) if now.url != mirror.url => Presence::Changed(format!("re-pointed to {}", redact_url(&now.url))),
        // A mirror `sync --mirror` updates while disabled stays what it was.
        Some(now) if !now.enabled && mirror.enabled => Presence::Changed("disabled".to_string()),
        Some(_) => Presence::Same,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_re_pointed_and_disabled_mirrors_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        let global = GlobalConfig::embedded(&dir.path().join("state"));
        let write = |text: &str| {
            let file = repo.join(config::REPO_CONFIG_FILE);
            std::fs::write(&file, text).unwrap();
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        };
        write("[mirror.m]\nurl = \"https://h/a.git\"\n");
        let mirror = config::load_repo(repo, &global).unwrap().mirrors.remove(0);
        assert_eq!(presence(repo, &mirror, &global), Presence::Same);
        assert_eq!(Presence::Same.stop_reason(repo, "m"), None);
        write("[mirror.m]\nurl = \"https://h/b.git\"\n");
        assert!(matches!(presence(repo, &mirror, &global), Presence::Changed(why) if why.contains("h/b.git")));
        write("[mirror.m]\nurl = \"https://h/a.git\"\nenabled = false\n");
        assert_eq!(presence(repo, &mirror, &global), Presence::Changed("disabled".into()));
        let disabled = config::load_repo(repo, &global).unwrap().mirrors.remove(0);
        assert_eq!(
            presence(repo, &disabled, &global),
            Presence::Same,
            "disabled when it began"
        );
        write("[mirror.other]\nurl = \"https://h/a.git\"\n");
        assert_eq!(presence(repo, &mirror, &global), Presence::Gone);
        assert!(Presence::Gone.stop_reason(repo, "m").unwrap().contains("removed"));
        write("[mirror.m\nurl = ");
        assert_eq!(
            presence(repo, &mirror, &global),
            Presence::Same,
            "unreadable: nothing says otherwise"
        );
    }
}
