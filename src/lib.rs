//! git-push-mirror: GitLab-style push mirroring for self-hosted bare git repositories.
//!
//! A `post-receive` hook ([`pipeline::hook`]) records pushed refs in a durable
//! [`pipeline::spool`]; the [`pipeline::worker`] routes them into per-mirror
//! [`mirror::state`], and [`mirror::update`] asks the pure [`mirror::plan`]ner
//! what to do and pushes it through [`git`], the one module that runs git.

pub mod access;
pub mod cli;
pub mod commands;
pub mod config;
pub mod git;
pub mod mirror;
pub mod ops;
pub mod pipeline;
pub mod util;
