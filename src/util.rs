//! Small building blocks that import nothing else of the crate: durable files (one at a time, or many
//! in a group commit), object ids and ref updates, mirror URLs and the redaction of secrets,
//! failpoints, leases other hosts can take over, byte sizes, name suggestions, bounded reads of configured files, users and groups, who may
//! write a directory, and the ownership rules for what decides where the worker pushes.

pub mod failpoint;
pub mod fsutil;
pub mod group_commit;
pub mod lease;
pub mod oid;
pub mod redact;
pub mod regular_file;
pub mod remote_url;
pub mod size;
pub mod suggest;
pub mod trust;
pub mod users;
pub mod writable;
