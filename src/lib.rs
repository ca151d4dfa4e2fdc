//! git-push-mirror: GitLab-style push mirroring for self-hosted bare git repositories.
//!
//! A `post-receive` hook ([`hook`]) records pushed refs in a durable [`spool`];
//! the [`worker`] routes them into per-mirror [`state`], and [`update`] asks the
//! pure [`plan`]ner what to do and pushes it through [`git`], the one module
//! that runs git.

pub mod auth;
pub mod check;
pub mod cli;
pub mod config;
pub mod config_edit;
pub mod drift;
pub mod failpoint;
pub mod fleet;
pub mod fleet_override;
pub mod fsutil;
pub mod git;
pub mod health;
pub mod hook;
pub mod hosts;
pub mod install;
pub mod lfs;
pub mod live_config;
pub mod logfile;
pub mod metrics;
pub mod mirror_path;
pub mod oid;
pub mod plan;
pub mod redact;
pub mod refs;
pub mod registrations;
pub mod remote_url;
pub mod remote_words;
pub mod repo_arg;
pub mod schedule;
pub mod size;
pub mod slots;
pub mod spool;
pub mod ssh;
pub mod state;
pub mod status;
pub mod suggest;
pub mod update;
pub mod verify;
pub mod worker;
