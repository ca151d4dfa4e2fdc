//! Named crash points for fault-injection tests: with `GIT_PUSH_MIRROR_FAILPOINT=<name>` in its
//! environment, the process kills itself with SIGKILL when it reaches `<name>`, as a power loss would.
//!
//! The variable is read once; without it a failpoint costs one comparison. It starts with `GIT_`,
//! so it never reaches git children or a worker started by the hook.

use std::sync::OnceLock;

/// The environment variable naming the failpoint to trigger.
pub const ENV: &str = "GIT_PUSH_MIRROR_FAILPOINT";

/// Every failpoint, in pipeline order.
pub const ALL: &[&str] = &[
    "spool.before_publish",
    "ingest.after_claim",
    "ingest.after_record",
    "route.after_mirror_saved",
    "update.after_started",
    "push.after_git",
    "update.after_push",
    "update.after_outcome",
    "notify.before_send",
];

/// Kills the process here if `name` is the active failpoint.
pub fn hit(name: &str) {
    static ACTIVE: OnceLock<Option<String>> = OnceLock::new();
    let active = ACTIVE.get_or_init(|| std::env::var(ENV).ok());
    if active.as_deref() == Some(name) {
        debug_assert!(ALL.contains(&name), "unknown failpoint {name}");
        // SAFETY: signalling ourselves; SIGKILL cannot be caught, like kill -9 or a power loss.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}
