//! What a pair's state remembers of the mirror's side (docs/mirror-side.md): the
//! repository created there, the default branch made to follow the local one (and why it could
//! not), the mirror's `HEAD` as last seen, and push options the mirror turned down.

use serde::{Deserialize, Serialize};

/// The mirror's side of one (repository, mirror) pair.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorSideState {
    /// When this program created the repository on the mirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_ms: Option<u64>,
    /// The local default branch (`refs/heads/X`) the mirror's was last made to follow, or seen to
    /// follow already; a local `HEAD` that differs is followed at the next update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub followed_head: Option<String>,
    /// The mirror's `HEAD` (`refs/heads/X`) as last seen by `ls-remote` or set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_head: Option<String>,
    /// Why the mirror's default branch could not be made to follow `followed_head` (a shell that
    /// refuses commands, a token that may not): tried again at the next `sync` or change of HEAD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_branch_error: Option<String>,
    /// The mirror does not accept push options: its pushes went without them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub push_options_refused: bool,
}

impl MirrorSideState {
    pub fn is_empty(&self) -> bool {
        *self == MirrorSideState::default()
    }
}
