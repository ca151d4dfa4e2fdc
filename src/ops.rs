//! Operating the tool: status and metrics reports, installing the hook (plain, Gitea/Forgejo, gitolite), the log file.

pub mod deployment;
pub mod hook_binary;
pub mod hosts;
pub mod install;
pub mod logfile;
pub mod metrics;
pub mod status;
