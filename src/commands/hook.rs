//! `hook post-receive`, and the binary run under the name `post-receive`: the pushed refs read
//! from stdin and handed to the hook ([`crate::pipeline::hook`]), which never fails the push.

use crate::pipeline::hook;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Hook bodies, as git runs them (`hook post-receive`).
#[derive(clap::Args, Debug)]
pub struct HookArgs {
    #[command(subcommand)]
    pub hook: HookCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum HookCommand {
    PostReceive(PostReceiveArgs),
}

/// The post-receive hook: record the pushed refs, start a worker, exit 0.
#[derive(clap::Args, Debug, Default)]
pub struct PostReceiveArgs {
    /// A previous post-receive hook to run afterwards with the same input.
    #[arg(long, value_name = "HOOK")]
    pub chain: Option<PathBuf>,
    /// Don't start a worker (cron's `run` will push).
    #[arg(long)]
    pub no_worker: bool,
    /// Arguments passed on to the chained hook.
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Runs the hook on the refs git gives on stdin; its exit status is the hook's.
pub fn cmd_post_receive(config: Option<&Path>, args: &PostReceiveArgs, err: &mut dyn Write) -> u8 {
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let options = hook::HookOptions {
        config,
        chain: args.chain.as_deref(),
        chain_args: &args.args,
        no_worker: args.no_worker,
    };
    hook::run_hook(&stdin, &options, err) as u8
}
