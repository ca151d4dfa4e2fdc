//! One mirror of one repository: the pure planner, an update that carries out a plan and its report,
//! durable state, local refs, known-ref bookkeeping and LFS settings and pointers.

pub mod forge;
pub mod lfs;
pub mod plan;
pub mod preview;
pub mod refs;
pub mod report;
pub mod state;
pub mod update;
pub mod verify;
