//! The integration tests, in one binary (as cargo's own `tests/testsuite`), so the crate is linked
//! once per build: one module per area, and [`support`], the harness they share (isolated git
//! environments, real git servers, and helpers that drive the `git-push-mirror` binary).
//! `cargo test --test it AREA::` runs one area.

#[macro_use]
mod support;

mod auth_http;
mod auth_ssh;
mod backlog;
mod bad_input;
mod blast_radius;
mod chaos;
mod clock;
mod commands;
mod concurrency;
mod deployment;
mod end_to_end;
mod failure_classes;
mod faults;
mod first_day;
mod fleet;
mod forges;
mod formats;
mod harness;
mod hosts;
mod isolation;
mod known_refs;
mod lfs;
mod lfs_server;
mod limits;
mod live_config;
mod mirror_side;
mod monitoring;
mod notify;
mod properties;
mod refusals;
mod reliability;
mod static_binary;
mod status_truth;
mod takeover;
mod timing;
mod tls;
mod trust;
