//! How a mirror is reached: credentials, SSH keys and host keys, commands on an SSH mirror's host,
//! and the small HTTPS client for what git does not carry (forge APIs, webhooks). Its URL and
//! transport, and the redaction of secrets, are in `util`, below the configuration that checks them.

pub mod auth;
pub mod credential_use;
pub mod http;
pub mod repo_location;
pub mod ssh;
