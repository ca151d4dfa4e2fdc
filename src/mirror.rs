//! One mirror of one repository: the pure planner, an update that carries out a plan and its report,
//! durable state, local refs, known-ref bookkeeping, what an LFS upload did, what failed pushes
//! taught about the mirror's push size, and whether the configuration on disk still names the
//! mirror an update began with.

pub mod configured;
pub mod forge;
pub mod learned_limit;
pub mod lfs;
pub mod plan;
pub mod preview;
pub mod refs;
pub mod report;
pub mod state;
pub mod update;
pub mod verify;
