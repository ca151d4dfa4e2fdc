//! Small building blocks with no knowledge of git or mirrors: durable files, object ids, failpoints, byte sizes, name suggestions.

pub mod failpoint;
pub mod fsutil;
pub mod oid;
pub mod size;
pub mod suggest;
