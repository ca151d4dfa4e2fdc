//! `notify-test`: a sample notice through every `[notify]` channel, and what happened for each.

use crate::commands::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, Exit, io};
use crate::config::GlobalConfig;
use std::io::Write;

/// Send a sample notice through every [notify] channel (command, webhook, mail) and say what
/// happened for each; exits 1 if one failed.
#[derive(clap::Args, Debug)]
pub struct NotifyTestArgs {}

/// Sends the sample notice; exit 1 when a channel failed, 2 when none is configured.
pub fn cmd_notify_test(global: &GlobalConfig, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, Exit> {
    let source = global.source.as_ref().map_or(
        "the embedded defaults (no global configuration file)".to_string(),
        |p| p.display().to_string(),
    );
    if !global.notify.is_configured() {
        writeln!(
            err,
            "git-push-mirror: no notification channel is configured in {source}: add a [notify] table with \
             `command`, `webhook_url` (or `webhook_url_file`) or `email_to` (docs/notifications.md)"
        )
        .map_err(io)?;
        return Ok(EXIT_USAGE);
    }
    let mut failed = false;
    for (channel, result) in crate::notify::test_channels(&global.notify) {
        match result {
            Ok(()) => writeln!(out, "{channel}: sent").map_err(io)?,
            Err(e) => {
                failed = true;
                writeln!(out, "{channel}: FAILED: {e}").map_err(io)?;
            }
        }
    }
    Ok(if failed { EXIT_FAILED } else { EXIT_OK })
}
