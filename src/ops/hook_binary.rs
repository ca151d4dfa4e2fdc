//! Which `git-push-mirror` binary a hook runs: the one `install` writes (a stable absolute path:
//! the package's `/usr/bin/git-push-mirror` when that is the running program, else the running
//! one), the one an installed hook calls (read back from its `exec` line), and every binary
//! installed on this machine, so that two of them (the package's and cargo's) are said, not
//! silently swapped through `PATH` order.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where the Debian package installs the binary.
pub const PACKAGE_BINARY: &str = "/usr/bin/git-push-mirror";

/// Where `cargo install --root /usr/local` puts it (docs/install.md: "Which binary hooks run").
pub const LOCAL_BINARY: &str = "/usr/local/bin/git-push-mirror";

/// The binary of this process, as an absolute path without symbolic links.
pub fn running_binary() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // Replaced on disk while running (a package upgrade): Linux names it "… (deleted)".
    let exe = match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(path) => PathBuf::from(path),
        None => exe,
    };
    std::fs::canonicalize(&exe).or(Ok(exe))
}

/// Whether two paths hold the same program: the same file, or files with the same bytes.
pub fn same_program(a: &Path, b: &Path) -> bool {
    let (Ok(meta_a), Ok(meta_b)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    if (meta_a.dev(), meta_a.ino()) == (meta_b.dev(), meta_b.ino()) {
        return true;
    }
    meta_a.is_file() && meta_b.is_file() && meta_a.len() == meta_b.len() && same_bytes(a, b).unwrap_or(false)
}

fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    let (mut file_a, mut file_b) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    let (mut buf_a, mut buf_b) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = read_full(&mut file_a, &mut buf_a)?;
        if n != read_full(&mut file_b, &mut buf_b)? || buf_a[..n] != buf_b[..n] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The binary `install` writes into a hook: `package` (the package's path) when it holds the
/// running program, so hooks survive the removal of a copy elsewhere and follow package
/// upgrades; else the running binary itself.
pub fn stable_binary(running: &Path, package: &Path) -> PathBuf {
    if same_program(running, package) {
        package.to_path_buf()
    } else {
        running.to_path_buf()
    }
}

/// Every `git-push-mirror` installed here: on `path` (a `PATH` value), the package's and cargo's
/// usual places; one path per file (a symbolic link and its target count once).
pub fn installed_binaries(path: Option<&OsStr>) -> Vec<PathBuf> {
    let on_path = path
        .map(|p| std::env::split_paths(p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join("git-push-mirror"));
    let usual = [PACKAGE_BINARY, LOCAL_BINARY].map(PathBuf::from);
    let mut seen = Vec::new();
    let mut found = Vec::new();
    for candidate in on_path.chain(usual) {
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if !meta.is_file() || seen.contains(&(meta.dev(), meta.ino())) {
            continue;
        }
        seen.push((meta.dev(), meta.ino()));
        found.push(candidate);
    }
    found
}

/// What a hook script runs: the program of its `… hook post-receive` line and the `--config` it
/// passes, as written (a bare name is looked up on the hook's `PATH` when it runs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookCall {
    pub program: String,
    pub config: Option<String>,
}

impl HookCall {
    /// The program as a path: absolute as written, else the first match on `path` (a `PATH`).
    pub fn resolve(&self, path: Option<&OsStr>) -> Option<PathBuf> {
        if self.program.contains('/') {
            return Some(PathBuf::from(&self.program));
        }
        std::env::split_paths(path?)
            .map(|dir| dir.join(&self.program))
            .find(|candidate| candidate.is_file())
    }
}

/// Reads the call to `hook post-receive` out of a hook script (ours, or one written by hand
/// from `hooks/`); `None` when the script calls none.
pub fn hook_call(script: &str) -> Option<HookCall> {
    script.lines().find_map(|line| {
        let words = shell_words(line);
        let at = words
            .windows(2)
            .position(|w| w[0] == "hook" && w[1] == "post-receive")?;
        let mut command = words[..at]
            .iter()
            .skip_while(|w| *w == "exec" || (w.contains('=') && !w.starts_with('-')));
        let program = command.next()?.clone();
        let mut config = None;
        while let Some(word) = command.next() {
            if word == "--config" {
                config = command.next().cloned();
            } else if let Some(value) = word.strip_prefix("--config=") {
                config = Some(value.to_string());
            }
        }
        Some(HookCall { program, config })
    })
}

/// The words of one line of a POSIX shell script, with quotes and backslashes removed; a `#`
/// starting a word ends the line. Enough for the `exec` lines hooks are made of.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | ';' | '&' | '|' => {
                words.extend(word.take());
            }
            '#' if word.is_none() => break,
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                w.extend(chars.by_ref().take_while(|&c| c != '\''));
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_is_read_from_our_scripts_and_from_hand_written_ones() {
        let ours = "#!/bin/sh\n# installed by git-push-mirror; `git-push-mirror uninstall` removes it.\n\
                    exec '/opt/it'\\''s/git-push-mirror' --config '/etc/c.toml' hook post-receive --chain \"$0.before\" -- \"$@\"\n";
        assert_eq!(
            hook_call(ours),
            Some(HookCall {
                program: "/opt/it's/git-push-mirror".into(),
                config: Some("/etc/c.toml".into())
            })
        );
        let by_hand = "#!/bin/sh\n# runs: git-push-mirror hook post-receive\nself=$(readlink -f \"$0\")\n\
                       exec git-push-mirror hook post-receive -- \"$@\"\n";
        assert_eq!(
            hook_call(by_hand),
            Some(HookCall {
                program: "git-push-mirror".into(),
                config: None
            })
        );
        let with_env = "GIT_PUSH_MIRROR_CONFIG=/x.toml /usr/bin/git-push-mirror --config=/y.toml hook post-receive\n";
        assert_eq!(hook_call(with_env).unwrap().config.as_deref(), Some("/y.toml"));
        assert_eq!(hook_call(with_env).unwrap().program, "/usr/bin/git-push-mirror");
        assert_eq!(hook_call("#!/bin/sh\necho hook post-receive-ish\nexit 0\n"), None);
    }

    #[test]
    fn a_bare_program_name_is_found_on_the_path() {
        let dir = tempfile::TempDir::new().unwrap();
        std::fs::write(dir.path().join("git-push-mirror"), "").unwrap();
        let call = HookCall {
            program: "git-push-mirror".into(),
            config: None,
        };
        let path = std::env::join_paths(["/nonexistent", dir.path().to_str().unwrap()]).unwrap();
        assert_eq!(call.resolve(Some(&path)), Some(dir.path().join("git-push-mirror")));
        assert_eq!(call.resolve(Some(OsStr::new("/nonexistent"))), None);
    }

    #[test]
    fn the_package_path_is_written_only_when_it_holds_the_running_program() {
        let dir = tempfile::TempDir::new().unwrap();
        let (running, package, other) = (
            dir.path().join("local/git-push-mirror"),
            dir.path().join("usr/git-push-mirror"),
            dir.path().join("old/git-push-mirror"),
        );
        for (path, bytes) in [(&running, "v2"), (&package, "v2"), (&other, "v1")] {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        assert_eq!(stable_binary(&running, &package), package);
        assert_eq!(stable_binary(&other, &package), other, "another version");
        assert_eq!(stable_binary(&running, &dir.path().join("missing")), running);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&other, &link).unwrap();
        assert!(same_program(&link, &other));
        let path = std::env::join_paths([running.parent().unwrap(), other.parent().unwrap(), dir.path()]).unwrap();
        let found = installed_binaries(Some(&path));
        assert!(found.starts_with(&[running.clone(), other.clone()]), "{found:?}");
    }
}
