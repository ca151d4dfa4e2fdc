//! Hands a mirror's user name and password to git's credential helper through a named pipe in a
//! private directory: the password is in no process's environment or argv (git, `git-remote-https`,
//! `pack-objects`, git-lfs, ssh, a mirror's hooks), only in the memory of the helper that reads
//! it and of git, which asked for it. Nothing is ever written to disk: a pipe holds no data.
//!
//! A thread of the worker answers each opening of the pipe with a few copies of the credentials,
//! each a fixed-size record written at once (`PIPE_BUF` bytes, so never split); the helper takes
//! exactly one record with a single read (`dd bs=4096 count=1`), so helpers of concurrent
//! commands, which share one pipe when they open it together, each get a whole record.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The variable naming the pipe, for the credential helper.
pub const PIPE_VARIABLE: &str = "GIT_PUSH_MIRROR_CREDENTIALS";

/// Records written per opening of the pipe: readers that opened it at the same time each take one.
const RECORDS_PER_OPENING: usize = 8;

/// The size of one record: `username\npassword\n`, padded with line feeds. Equal to `PIPE_BUF`,
/// so a write of one record is atomic, and to the helper's `dd bs=` (see [`HELPER_READ`]).
pub const RECORD_SIZE: usize = 4096;

/// The shell command the credential helper reads one record with; it prints the user name and
/// password lines on its standard output (the pipe's path is in [`PIPE_VARIABLE`]).
pub const HELPER_READ: &str = "dd if=\"$GIT_PUSH_MIRROR_CREDENTIALS\" bs=4096 count=1 2>/dev/null";

/// A named pipe that gives the credentials to whoever opens it, until dropped.
pub struct CredentialPipe {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    server: Option<std::thread::JoinHandle<()>>,
}

impl CredentialPipe {
    /// Creates the pipe `dir/credentials` (mode 600; `dir` must be private) and starts serving.
    pub fn serve(dir: &Path, username: &str, password: &str) -> io::Result<CredentialPipe> {
        if username.contains(['\n', '\r', '\0']) || password.contains(['\n', '\r', '\0']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a user name or password with a line break cannot go through git's credential protocol",
            ));
        }
        let path = dir.join("credentials");
        crate::util::fsutil::make_fifo(&path, 0o600)?;
        let mut record = format!("{username}\n{password}\n").into_bytes();
        if record.len() > RECORD_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the user name and password are longer than {} bytes", RECORD_SIZE - 2),
            ));
        }
        record.resize(RECORD_SIZE, b'\n');
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let (path, stop) = (path.clone(), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("credential-pipe".into())
                .spawn(move || {
                    // Blocks until a helper opens the pipe for reading (or `drop` does).
                    while let Ok(mut pipe) = OpenOptions::new().write(true).open(&path) {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        // A helper killed before reading makes this fail; the next opening is another helper.
                        for _ in 0..RECORDS_PER_OPENING {
                            if pipe.write_all(&record).is_err() {
                                break;
                            }
                        }
                    }
                })?
        };
        Ok(CredentialPipe {
            path,
            stop,
            server: Some(server),
        })
    }

    /// The pipe's path, for [`PIPE_VARIABLE`].
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CredentialPipe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Opening the read end releases the server from its blocking open; it sees `stop` and ends.
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path);
        if let Some(server) = self.server.take()
            && reader.is_ok()
        {
            let _ = server.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl std::fmt::Debug for CredentialPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialPipe").field("path", &self.path).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// What the credential helper does: take one record, read its two lines.
    fn read_like_the_helper(pipe: &Path) -> String {
        let script = format!("{HELPER_READ} | {{ IFS= read -r u && IFS= read -r p && printf '%s|%s' \"$u\" \"$p\"; }}");
        let out = Command::new("sh")
            .args(["-c", &script])
            .env(PIPE_VARIABLE, pipe)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn every_reader_gets_one_whole_record_and_drop_stops_the_server() {
        let dir = crate::util::fsutil::private_temp_dir("cred-test").unwrap();
        let pipe = CredentialPipe::serve(dir.path(), "bot", "s3cret with spaces").unwrap();
        assert_eq!(read_like_the_helper(pipe.path()), "bot|s3cret with spaces");
        let readers: Vec<_> = (0..16)
            .map(|_| {
                let path = pipe.path().to_path_buf();
                std::thread::spawn(move || read_like_the_helper(&path))
            })
            .collect();
        for reader in readers {
            assert_eq!(reader.join().unwrap(), "bot|s3cret with spaces");
        }
        let path = pipe.path().to_path_buf();
        drop(pipe);
        assert!(!path.exists(), "the pipe is removed");
    }

    #[test]
    fn line_breaks_are_refused() {
        let dir = crate::util::fsutil::private_temp_dir("cred-test").unwrap();
        assert!(CredentialPipe::serve(dir.path(), "bot", "a\nusername=evil").is_err());
    }
}
