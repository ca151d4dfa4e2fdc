//! What each command does, apart from parsing its flags.

pub mod check;
pub mod repo_arg;
