//! git-push-mirror: GitLab-style push mirroring for self-hosted bare git repositories.
//!
//! The path of a push, and the module of each step:
//!
//! ```text
//! git push ──▶ pipeline::hook ──▶ pipeline::spool ──▶ pipeline::worker ──▶ mirror::update ──▶ git
//!              post-receive:      a durable queue     drains the spool,    observes the       the one module
//!              records the refs   between the two     schedules each       mirror, asks       that runs git
//!              and returns                            mirror               mirror::plan
//!                                                                          (pure) what to do,
//!                                                                          records the state
//! ```
//!
//! The folders, lowest layer first:
//!
//! - [`util`]: durable files, object ids and ref changes, mirror URLs and the redaction of secrets,
//!   failpoints, byte sizes, name suggestions.
//! - [`config`]: the global file and each repository's `push-mirror.toml`, read strictly into
//!   checked settings (a mirror's ref rules and LFS settings among them); in-place edits; fleets.
//! - [`git`]: runs git: the children's environment and timeouts, `ls-remote`, `push --porcelain`,
//!   LFS pointers and transfers, git's traces, failures with their classes and hints.
//! - [`access`]: how a mirror is reached: transports, credentials, SSH keys and host keys, commands
//!   on an SSH mirror's host, the HTTP client of forge APIs and webhooks.
//! - [`mirror`]: one mirror of one repository: the pure planner, an update and its report, durable
//!   state (and the notices its transitions owe), known refs and their checks; the mirror's side
//!   (forge APIs, creating its repository, its default branch, `sync --dry-run`).
//! - [`notify`]: telling people: the outbox's notices sent through a command, a webhook and mail,
//!   digested, rate-limited, from a thread that never delays a mirror.
//! - [`pipeline`]: the hook, the spool, the worker and its schedule, the drift scan, fleet discovery,
//!   traces of pushes the hook could not record.
//! - [`ops`]: status and metrics reports, installing the hook (plain, Gitea/Forgejo, gitolite), the
//!   log file.
//! - [`commands`]: what each command does, with the flags it takes (its `Args`), writing to the
//!   `out`/`err` it is given.
//! - [`cli`]: `main`: arguments parsed (the top level and global flags in [`cli::Cli`], each
//!   command's own in `commands`), logging, dispatch, exit status.
//!
//! A module imports from its own folder and from the folders before it in this list, never from
//! one after it: a type lives on the floor of its lowest user. No two folders import each other, and
//! no two files, directly or in a cycle. A unit test (`layer_check.rs`) reads the sources and fails
//! on an import that breaks the rule.

pub mod access;
pub mod cli;
pub mod commands;
pub mod config;
pub mod git;
pub mod mirror;
pub mod notify;
pub mod ops;
pub mod pipeline;
pub mod util;

#[cfg(test)]
mod layer_check;
