//! How a mirror is reached: its URL and transport, credentials, SSH keys and host keys, redaction of
//! secrets, and the small HTTPS client for what git does not carry (forge APIs, webhooks).

pub mod auth;
pub mod credential_use;
pub mod http;
pub mod repo_location;
pub mod ssh;
