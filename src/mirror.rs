//! One mirror of one repository: the pure planner, an update that carries out a plan, durable state, local refs, known-ref bookkeeping and LFS.

pub mod lfs;
pub mod plan;
pub mod refs;
pub mod report;
pub mod state;
pub mod update;
pub mod verify;
