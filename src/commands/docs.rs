//! `completions` and `man`: shell completions and man pages generated from the command-line definition,
//! and the configuration's page from the table of keys ([`config_page`]).

use crate::commands::{EXIT_OK, Exit, config_page, io};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Print a shell completion script (bash, zsh, fish, elvish, powershell).
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

/// Print the man page (roff), or write it and a page per subcommand into a directory; with
/// --section 5, the configuration files' page, git-push-mirror.toml(5).
#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write git-push-mirror.1 and git-push-mirror-SUBCOMMAND.1 for every subcommand (section 5:
    /// git-push-mirror.toml.5) into DIR, e.g. /usr/local/share/man/man1 (man5).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// 1: the commands; 5: the configuration files (every key, its default and meaning).
    #[arg(long, value_enum, default_value = "1")]
    pub section: ManSection,
}

/// The man pages `man` writes: the commands', or the configuration files'.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManSection {
    /// Section 1: git-push-mirror(1) and a page per subcommand.
    #[value(name = "1")]
    Commands,
    /// Section 5: git-push-mirror.toml(5).
    #[value(name = "5")]
    Files,
}

/// Writes generated text; a reader that went away (`| head`) is a normal end, not an error.
fn write_generated(text: &[u8], out: &mut dyn Write) -> Result<u8, Exit> {
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(io(e)),
        _ => Ok(EXIT_OK),
    }
}

/// Prints the completion script of `command` (the whole command line's definition).
pub fn cmd_completions(args: &CompletionsArgs, mut command: clap::Command, out: &mut dyn Write) -> Result<u8, Exit> {
    let mut text = Vec::new();
    clap_complete::generate(args.shell, &mut command, "git-push-mirror", &mut text);
    write_generated(&text, out)
}

/// The man pages of the commands (section 1): the main page on stdout, or with `dir` it and one
/// page per subcommand (`git-push-mirror-add.1`, …), which the main page's SUBCOMMANDS section
/// refers to; each with FILES and SEE ALSO. Section 5: the configuration files' page.
pub fn cmd_man(args: &ManArgs, command: clap::Command, out: &mut dyn Write) -> Result<u8, Exit> {
    let (dir, section) = (args.dir.as_deref(), args.section);
    if section == ManSection::Files {
        let page = config_page::render(env!("CARGO_PKG_VERSION"));
        let Some(dir) = dir else {
            return write_generated(page.as_bytes(), out);
        };
        let file = dir.join(config_page::FILE_NAME);
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&file, page))
            .with_context(|| format!("writing {}", file.display()))?;
        writeln!(out, "wrote {}", file.display()).map_err(io)?;
        return Ok(EXIT_OK);
    }
    let mut command = command.disable_help_subcommand(true);
    command.build();
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)
            .map_err(anyhow::Error::from)
            .and_then(|()| write_pages(&command, dir))
            .with_context(|| format!("writing the man pages into {}", dir.display()))?;
        writeln!(out, "wrote the man pages into {}", dir.display()).map_err(io)?;
        return Ok(EXIT_OK);
    }
    let text = page(command).map_err(io)?;
    write_generated(&text, out)
}

/// One command's page: clap_mangen's, then FILES and SEE ALSO.
fn page(command: clap::Command) -> std::io::Result<Vec<u8>> {
    let mut text = Vec::new();
    clap_mangen::Man::new(command).render(&mut text)?;
    let mut more = roff::Roff::new();
    config_page::files(&mut more);
    more.control("SH", ["SEE ALSO"]).text([roff::roman(format!(
        "{}(5), git(1), githooks(5); the README of git-push-mirror.",
        config_page::NAME
    ))]);
    more.to_writer(&mut text)?;
    Ok(text)
}

/// The page of `command` and of each of its visible subcommands, into `dir` (as
/// `clap_mangen::generate_to` does, with [`page`]).
fn write_pages(command: &clap::Command, dir: &Path) -> Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir)?;
    }
    let file = dir.join(clap_mangen::Man::new(command.clone()).get_filename());
    std::fs::write(&file, page(command.clone())?).with_context(|| format!("writing {}", file.display()))
}
