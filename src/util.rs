//! Small building blocks that import nothing else of the crate: durable files, object ids and ref updates,
//! failpoints, byte sizes, name suggestions.

pub mod failpoint;
pub mod fsutil;
pub mod oid;
pub mod size;
pub mod suggest;
