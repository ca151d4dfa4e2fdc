//! How a mirror is reached: its URL and transport, credentials, SSH keys and host keys, and redaction of secrets.

pub mod auth;
pub mod credential_use;
pub mod redact;
pub mod remote_url;
pub mod ssh;
