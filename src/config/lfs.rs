//! A mirror's Git LFS settings (`lfs`, `lfs_required`, `lfs_url`, `lfs_store`), resolved.

use serde::Deserialize;
use std::path::PathBuf;

/// `lfs = "auto" | "on" | "off"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LfsMode {
    /// Upload LFS objects when the repository has any.
    #[default]
    Auto,
    /// Always scan for LFS pointers and upload their objects.
    On,
    /// Never upload LFS objects.
    Off,
}

impl LfsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LfsMode::Auto => "auto",
            LfsMode::On => "on",
            LfsMode::Off => "off",
        }
    }

    pub fn parse(text: &str) -> Option<LfsMode> {
        match text {
            "auto" => Some(LfsMode::Auto),
            "on" => Some(LfsMode::On),
            "off" => Some(LfsMode::Off),
            _ => None,
        }
    }
}

/// One mirror's LFS settings, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LfsSettings {
    pub mode: LfsMode,
    /// Whether a failed LFS upload fails the update (its refs are then not pushed).
    pub required: bool,
    /// The LFS endpoint, when not the one git-lfs derives from the mirror's URL.
    pub url: Option<String>,
    /// Where the repository's LFS objects are when a hosting server keeps them outside the
    /// repository (Gitea's `data/lfs`, GitLab's `shared/lfs-objects`).
    pub store: Option<PathBuf>,
}

impl Default for LfsSettings {
    fn default() -> Self {
        LfsSettings {
            mode: LfsMode::Auto,
            required: true,
            url: None,
            store: None,
        }
    }
}
