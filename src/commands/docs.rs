//! `completions` and `man`: shell completions and man pages generated from the command-line definition.

use crate::commands::{EXIT_OK, Exit, io};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Writes generated text; a reader that went away (`| head`) is a normal end, not an error.
fn write_generated(text: &[u8], out: &mut dyn Write) -> Result<u8, Exit> {
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(io(e)),
        _ => Ok(EXIT_OK),
    }
}

pub fn cmd_completions(
    shell: clap_complete::Shell,
    mut command: clap::Command,
    out: &mut dyn Write,
) -> Result<u8, Exit> {
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut command, "git-push-mirror", &mut text);
    write_generated(&text, out)
}

/// The man page on stdout, or with `dir` that page and one per subcommand (`git-push-mirror-add.1`,
/// …), which the main page's SUBCOMMANDS section refers to.
pub fn cmd_man(dir: Option<&Path>, command: clap::Command, out: &mut dyn Write) -> Result<u8, Exit> {
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(command, dir))
            .with_context(|| format!("writing the man pages into {}", dir.display()))?;
        writeln!(out, "wrote the man pages into {}", dir.display()).map_err(io)?;
        return Ok(EXIT_OK);
    }
    let mut text = Vec::new();
    clap_mangen::Man::new(command).render(&mut text).map_err(io)?;
    write_generated(&text, out)
}
