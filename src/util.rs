//! Small building blocks that import nothing else of the crate: durable files, object ids and ref updates,
//! failpoints, byte sizes, name suggestions, users and groups, who may write a directory.

pub mod failpoint;
pub mod fsutil;
pub mod oid;
pub mod size;
pub mod suggest;
pub mod users;
pub mod writable;
