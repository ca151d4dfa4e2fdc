//! Reading the files people point the program at (configuration, password files, CA
//! certificates, known_hosts): only regular files, after following symbolic links, of bounded
//! size, opened without blocking. A FIFO named as a configuration file must not hang a hook
//! (and with it `git push`) or a worker holding its lock; `/dev/zero` must not be read into memory.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest configuration or secret file read: 1 MiB (a `push-mirror.toml` with hundreds of
/// mirrors, a CA bundle or a known_hosts file is far smaller).
pub const MAX_CONFIG_FILE_SIZE: u64 = 1 << 20;

/// What kind of thing is at a path that should be a regular file, for error messages.
fn kind_of(meta: &Metadata) -> &'static str {
    let file_type = meta.file_type();
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Why `meta` is not acceptable for a file of at most `max` bytes, if it is not.
pub fn regular_file_problem(meta: &Metadata, max: u64) -> Option<String> {
    if !meta.is_file() {
        return Some(format!("is {}, not a regular file", kind_of(meta)));
    }
    if meta.len() > max {
        return Some(format!(
            "is {} bytes, more than the {max} bytes a configuration or secret file may have",
            meta.len()
        ));
    }
    None
}

fn refused(problem: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, problem)
}

/// Opens a regular file for reading without ever blocking: what is at `path` (symbolic links
/// followed) is checked before it is opened (opening a device can have effects) and again on
/// the open file (it may have been replaced in between). Returns the file and its metadata.
pub fn open_regular(path: &Path, max: u64) -> io::Result<(File, Metadata)> {
    if let Some(problem) = regular_file_problem(&std::fs::metadata(path)?, max) {
        return Err(refused(problem));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if let Some(problem) = regular_file_problem(&meta, max) {
        return Err(refused(problem));
    }
    Ok((file, meta))
}

/// Reads a whole regular file of at most `max` bytes (see [`open_regular`]), with the metadata
/// of the very file read.
pub fn read_regular(path: &Path, max: u64) -> io::Result<(Vec<u8>, Metadata)> {
    let (file, meta) = open_regular(path, max)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // A file that grows while it is read is still cut at the limit.
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(refused(format!(
            "grew past the {max} bytes a configuration or secret file may have while it was read"
        )));
    }
    Ok((bytes, meta))
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, max: u64) -> io::Result<(String, Metadata)> {
    let (bytes, meta) = read_regular(path, max)?;
    let text = String::from_utf8(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "is not UTF-8 text"))?;
    Ok((text, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once_and_a_device_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        crate::util::fsutil::make_fifo(&fifo, 0o600).unwrap();
        // No writer ever opens it: a blocking open or read would hang this test.
        let err = read_regular(&fifo, MAX_CONFIG_FILE_SIZE).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let err = read_regular(&zero, MAX_CONFIG_FILE_SIZE).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
        let err = read_regular(dir.path(), MAX_CONFIG_FILE_SIZE).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
    }

    #[test]
    fn a_file_over_the_limit_is_refused_and_one_within_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big");
        std::fs::write(&file, vec![b'a'; 11]).unwrap();
        let err = read_regular(&file, 10).unwrap_err();
        assert!(err.to_string().contains("more than the 10 bytes"), "{err}");
        let (text, meta) = read_regular_text(&file, 11).unwrap();
        assert_eq!((text.len(), meta.len()), (11, 11));
    }
}
