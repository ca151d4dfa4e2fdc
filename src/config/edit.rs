//! In-place edits of a repository's `push-mirror.toml` for `add`, `set` and `remove`, keeping the admin's comments, key order and formatting.
//!
//! The text functions ([`add_mirror`], [`set_mirror`], [`remove_mirror`]) are
//! pure string → string edits on a `toml_edit` document. [`edit_repo_file`]
//! runs one of them on the file, checks the result with the strict loader and
//! replaces the file atomically, so a bad edit never reaches the disk.

mod layout;
mod protected;

pub use protected::{protect, unprotect};

use crate::config::rules::TagSelection;
use crate::config::{self, AsTyped, ConfigError, GlobalConfig, MirrorKeys, REPO_CONFIG_FILE};
use crate::util::fsutil;
use crate::util::regular_file::{MAX_CONFIG_FILE_SIZE, read_regular_text};
use layout::{
    after_attached_lines, detached_part, ends_with_blank_line, last_position, next_position, raw_str, table_at_mut,
};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use toml_edit::{Array, DocumentMut, Item, Table, TableLike, Value};

/// What `add` / `set` change in one `[mirror.NAME]` table: the keys of [`MirrorSettings`], with
/// durations and sizes as typed; `None` leaves a key as it is.
///
/// `branches: Some(vec![])` removes the key (the mirror then follows the
/// global default), and so does an empty string or path for `username`,
/// `password_file`, `password_env`, `ssh_key`, `known_hosts`, `ca_file`, `delay`,
/// `min_interval`, `timeout`, `verify_interval`, `lfs_url` (the endpoint is then derived from
/// the URL) and `max_push_size` (no limit), and `max_refs_per_push: Some(0)` (no limit).
/// `refs`, `password`, `lfs_store`, `repos`, `push_options` and `first_sync_push_options` are
/// written by hand only: an edit that sets them is refused.
pub type MirrorEdit = MirrorKeys<AsTyped>;

/// Why an edit was not made. Nothing is written when any of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("a mirror named `{0}` already exists")]
    MirrorExists(String),
    #[error("there is no mirror named `{0}`")]
    NoSuchMirror(String),
    #[error(
        "invalid mirror name \"{0}\": use letters, digits, `.`, `_` and `-` \
         (at most 64, not starting with `.` or `-`)"
    )]
    InvalidName(String),
    /// The text could not be parsed or has an unexpected shape (e.g. `mirror = 5`).
    #[error("{0}")]
    Parse(String),
    /// A value in the [`MirrorEdit`] is unusable (empty URL, bad duration, non-UTF-8 path).
    #[error("{0}")]
    InvalidValue(String),
    /// The edited file would not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

const PASSWORD_KEYS: [&str; 3] = ["password", "password_file", "password_env"];

enum Change {
    Set(Value),
    Remove,
}

/// Adds `[mirror.NAME]` at the end of the file as a standard table; `edit.url` is required.
pub fn add_mirror(text: &str, name: &str, edit: &MirrorEdit) -> Result<String, EditError> {
    check_name(name)?;
    if edit.url.is_none() {
        return Err(EditError::InvalidValue(format!("mirror `{name}` needs a URL")));
    }
    let changes = changes(edit)?;
    let mut table = Table::new();
    for (key, change) in changes {
        if let Change::Set(value) = change {
            table.insert(key, Item::Value(value));
        }
    }
    add_mirror_table(text, name, table)
}

/// Adds `[mirror.NAME]` with the keys of `table` at the end of the file (see [`add_mirror`]).
pub fn add_mirror_table(text: &str, name: &str, mut table: Table) -> Result<String, EditError> {
    check_name(name)?;
    let mut doc = parse(text)?;
    if let Some(Item::Value(Value::InlineTable(mirrors))) = doc.get_mut("mirror") {
        // `mirror = { ... }`: stay in the admin's style.
        if mirrors.contains_key(name) {
            return Err(EditError::MirrorExists(name.to_string()));
        }
        mirrors.insert(name, Value::InlineTable(table.into_inline_table()));
        return Ok(doc.to_string());
    }

    // Whatever followed the last table (trailing comments, blank lines) stays
    // where it was, so the old text is a prefix of the new one; the new table
    // goes after everything, separated by a blank line.
    let mut prefix = raw_str(doc.trailing()).to_string();
    if !text.trim().is_empty() && !ends_with_blank_line(&prefix) {
        prefix.push('\n');
    }
    table.decor_mut().set_prefix(prefix);
    table.set_position(Some(last_position(doc.as_table()) + 1));
    let mirrors = mirrors_mut(&mut doc, true)?.expect("created when missing");
    if mirrors.contains_key(name) {
        return Err(EditError::MirrorExists(name.to_string()));
    }
    mirrors.insert(name, Item::Table(table));
    doc.set_trailing("");
    Ok(doc.to_string())
}

/// Changes the keys of `[mirror.NAME]` named in `edit`; every other key keeps
/// its value, position and comments. Setting `password_file` or
/// `password_env` removes the mirror's other password keys.
pub fn set_mirror(text: &str, name: &str, edit: &MirrorEdit) -> Result<String, EditError> {
    check_name(name)?;
    let changes = changes(edit)?;
    let mut doc = parse(text)?;
    let mirror = mirrors_mut(&mut doc, false)?
        .and_then(|mirrors| mirrors.get_mut(name))
        .ok_or_else(|| EditError::NoSuchMirror(name.to_string()))?
        .as_table_like_mut()
        .ok_or_else(|| EditError::Parse(format!("`mirror.{name}` is not a table")))?;

    let password_keys_set: Vec<&str> = changes
        .iter()
        .filter(|(key, change)| PASSWORD_KEYS.contains(key) && matches!(change, Change::Set(_)))
        .map(|(key, _)| *key)
        .collect();
    if !password_keys_set.is_empty() {
        for key in PASSWORD_KEYS {
            if !password_keys_set.contains(&key) {
                mirror.remove(key);
            }
        }
    }
    for (key, change) in changes {
        match change {
            Change::Set(value) => set_value(mirror, key, value),
            Change::Remove => {
                mirror.remove(key);
            }
        }
    }
    Ok(doc.to_string())
}

/// Removes `[mirror.NAME]` with the comments inside it and the comment lines
/// attached to its header (no blank line between them); comments separated
/// from it by a blank line stay.
pub fn remove_mirror(text: &str, name: &str) -> Result<String, EditError> {
    check_name(name)?;
    let mut doc = parse(text)?;
    let removed = mirrors_mut(&mut doc, false)?
        .and_then(|mirrors| mirrors.remove(name))
        .ok_or_else(|| EditError::NoSuchMirror(name.to_string()))?;
    let Item::Table(removed) = removed else {
        // An inline table or dotted keys: its comments went with its keys.
        return Ok(doc.to_string());
    };
    let Some(position) = removed.position() else {
        return Ok(doc.to_string());
    };
    let own_prefix = removed.decor().prefix().map(raw_str).unwrap_or_default();
    let kept_before = detached_part(own_prefix);

    // What follows the removed table: the next table's header prefix, or the
    // document's trailing text. Its first lines, up to a blank line, are the
    // removed table's last (commented-out) lines.
    let next = next_position(doc.as_table(), position);
    let following = match next {
        Some(next) => table_at_mut(doc.as_table_mut(), next)
            .and_then(|t| t.decor().prefix().map(|p| raw_str(p).to_string()))
            .unwrap_or_default(),
        None => raw_str(doc.trailing()).to_string(),
    };
    let kept_after = after_attached_lines(&following);
    let kept_after = if ends_with_blank_line(kept_before) || kept_before.is_empty() && next.is_some() {
        kept_after.strip_prefix('\n').unwrap_or(kept_after)
    } else {
        kept_after
    };
    let joined = if next.is_none() && kept_after.trim().is_empty() {
        // The file now ends before the removed table: no blank lines at its end.
        match kept_before.trim_end() {
            "" => String::new(),
            comments => format!("{comments}\n"),
        }
    } else {
        format!("{kept_before}{kept_after}")
    };
    match next {
        Some(next) => {
            if let Some(table) = table_at_mut(doc.as_table_mut(), next) {
                table.decor_mut().set_prefix(joined);
            }
        }
        None => doc.set_trailing(joined),
    }
    Ok(doc.to_string())
}

/// Reads `<repo>/push-mirror.toml` (missing: empty), applies `edit`, checks
/// the result with the strict loader, and replaces the file atomically
/// (temp file, fsync, rename, fsync of the directory), keeping its mode and
/// owner. A new file gets mode 0644, or 0600 when it holds an inline password.
/// Concurrent edits of the same repository are serialised.
pub fn edit_repo_file(
    repo: &Path,
    global: &GlobalConfig,
    edit: impl FnOnce(&str) -> Result<String, EditError>,
) -> Result<(), EditError> {
    let file = repo.join(REPO_CONFIG_FILE);
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EditError::Io { path, source }
    };
    let _lock = lock_dir(repo).map_err(io_err(repo))?;

    // A symlinked file (configuration management) keeps its link: the target changes.
    let target = match fs::symlink_metadata(&file) {
        Ok(meta) if meta.file_type().is_symlink() => fs::canonicalize(&file).map_err(io_err(&file))?,
        _ => file.clone(),
    };
    let (old_text, old_meta) = match read_regular_text(&target, MAX_CONFIG_FILE_SIZE) {
        Ok((text, meta)) => (text, Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (String::new(), None),
        Err(e) => return Err(io_err(&file)(e)),
    };
    if let Err(e) = old_text.parse::<DocumentMut>() {
        return Err(EditError::Config(syntax_error(&file, &old_text, &e)));
    }
    // The edit keeps the file's owner and mode: one the worker refuses must be fixed first.
    if let Some(message) = old_meta
        .as_ref()
        .and_then(|meta| config::untrusted_repo_file(repo, &file, meta, global))
    {
        return Err(EditError::Config(ConfigError::Invalid { path: file, message }));
    }

    let new_text = edit(&old_text)?;
    if let Some(meta) = &old_meta
        && new_text == old_text
    {
        // Nothing to write, but the caller still learns whether the file loads.
        config::parse_repo(&new_text, &file, meta.permissions().mode(), global)?;
        return Ok(());
    }
    let mode = match &old_meta {
        Some(meta) => meta.permissions().mode() & 0o7777,
        None if holds_inline_password(&new_text) => 0o600,
        None => 0o644,
    };

    let dir = target
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let tmp = dir.join(fsutil::unique_name(&format!(".{REPO_CONFIG_FILE}."), ".tmp"));
    let result = write_temp(&tmp, &new_text, mode, old_meta.as_ref())
        .map_err(io_err(&tmp))
        .and_then(|written_mode| {
            // The strict loader, on the exact bytes and mode about to be
            // installed, with errors naming the real file.
            config::parse_repo(&new_text, &file, written_mode, global)?;
            if written_mode & 0o077 != 0 && holds_inline_password(&new_text) {
                // The loader would fault the mirror: never write a password where others read it.
                return Err(EditError::Config(ConfigError::Invalid {
                    path: file.clone(),
                    message: format!(
                        "would hold an inline password but is readable by group/others; run: chmod 600 {}",
                        file.display()
                    ),
                }));
            }
            fs::rename(&tmp, &target).map_err(io_err(&target))
        });
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fsutil::fsync_dir(&dir).map_err(io_err(&dir))
}

/// Writes and fsyncs the new file; returns the mode it ended up with.
fn write_temp(tmp: &Path, text: &str, mode: u32, old: Option<&fs::Metadata>) -> io::Result<u32> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    if let Some(old) = old {
        let meta = file.metadata()?;
        if (meta.uid(), meta.gid()) != (old.uid(), old.gid()) {
            // Only root (or a group member, for the group) may do this; the
            // file then belongs to whoever edited it, which is still readable
            // by them.
            if let Err(e) = std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid())) {
                log::warn!("{}: cannot keep owner {}:{} ({e})", tmp.display(), old.uid(), old.gid());
            }
        }
    }
    // Set explicitly: the umask must not change the mode being preserved.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(file.metadata()?.permissions().mode())
}

/// An exclusive lock on the repository directory itself, so two `add`s at
/// once do not lose one of them; released when the handle is dropped.
fn lock_dir(repo: &Path) -> io::Result<fs::File> {
    let dir = fs::File::open(repo)?;
    fs2::FileExt::lock_exclusive(&dir)?;
    Ok(dir)
}

fn holds_inline_password(text: &str) -> bool {
    let Ok(table) = text.parse::<toml::Table>() else {
        return false;
    };
    let Some(toml::Value::Table(mirrors)) = table.get("mirror") else {
        return false;
    };
    mirrors.values().any(|mirror| {
        mirror.get("password").is_some()
            || mirror
                .get("url")
                .and_then(toml::Value::as_str)
                .is_some_and(|url| crate::util::remote_url::split_credentials(url).password.is_some())
    })
}

fn syntax_error(file: &Path, text: &str, error: &toml_edit::TomlError) -> ConfigError {
    config::raw::syntax_error(file, text, error.message(), error.span())
}

fn check_name(name: &str) -> Result<(), EditError> {
    if config::valid_mirror_name(name) {
        Ok(())
    } else {
        Err(EditError::InvalidName(name.to_string()))
    }
}

fn parse(text: &str) -> Result<DocumentMut, EditError> {
    text.parse::<DocumentMut>().map_err(|e| {
        let message = e.message().lines().next().unwrap_or("invalid TOML").trim();
        match e.span() {
            Some(span) => {
                let (line, column) = config::line_column(text, span.start);
                EditError::Parse(format!("line {line}, column {column}: {message}"))
            }
            None => EditError::Parse(message.to_string()),
        }
    })
}

/// The `mirror` table, created (implicit, so no `[mirror]` header) when asked.
fn mirrors_mut(doc: &mut DocumentMut, create: bool) -> Result<Option<&mut dyn TableLike>, EditError> {
    if !doc.contains_key("mirror") {
        if !create {
            return Ok(None);
        }
        let mut table = Table::new();
        table.set_implicit(true);
        doc.insert("mirror", Item::Table(table));
    }
    match doc.get_mut("mirror").and_then(Item::as_table_like_mut) {
        Some(mirrors) => Ok(Some(mirrors)),
        None => Err(EditError::Parse("`mirror` is not a table".into())),
    }
}

fn set_value(table: &mut dyn TableLike, key: &str, mut value: Value) {
    match table.get_mut(key) {
        Some(Item::Value(old)) => {
            // Keep the spacing and any end-of-line comment of the old value.
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        Some(item) => *item = Item::Value(value),
        None => {
            table.insert(key, Item::Value(value));
        }
    }
}

fn changes(edit: &MirrorEdit) -> Result<Vec<(&'static str, Change)>, EditError> {
    let by_hand = [
        ("refs", edit.refs.is_some()),
        ("password", edit.password.is_some()),
        ("lfs_store", edit.lfs_store.is_some()),
        ("repos", edit.repos.is_some()),
        ("push_options", edit.push_options.is_some()),
        ("first_sync_push_options", edit.first_sync_push_options.is_some()),
    ];
    if let Some((key, _)) = by_hand.into_iter().find(|(_, set)| *set) {
        return Err(EditError::InvalidValue(format!(
            "`{key}` is set by editing the file, not by add or set"
        )));
    }
    let mut out = Vec::new();
    if let Some(url) = &edit.url {
        if url.trim().is_empty() {
            return Err(EditError::InvalidValue("the URL must not be empty".into()));
        }
        out.push(("url", Change::Set(Value::from(url.as_str()))));
    }
    for (key, flag) in [
        ("enabled", edit.enabled),
        ("only_protected_branches", edit.only_protected_branches),
        ("keep_divergent_refs", edit.keep_divergent_refs),
        ("prune_unmerged", edit.prune_unmerged),
        ("lfs_required", edit.lfs_required),
        ("notify", edit.notify),
    ] {
        if let Some(flag) = flag {
            out.push((key, Change::Set(Value::from(flag))));
        }
    }
    if let Some(branches) = &edit.branches {
        out.push(("branches", list_or_remove(branches)));
    }
    if let Some(tags) = &edit.tags {
        let value = match tags {
            TagSelection::All => Value::from(true),
            TagSelection::None => Value::from(false),
            TagSelection::Matching(patterns) => Value::Array(patterns.iter().map(String::as_str).collect()),
        };
        out.push(("tags", Change::Set(value)));
    }
    if let Some(mode) = edit.lfs {
        out.push(("lfs", Change::Set(Value::from(mode.as_str()))));
    }
    if let Some(url) = &edit.lfs_url {
        out.push(("lfs_url", text_or_remove(url)));
    }
    if let Some(username) = &edit.username {
        out.push(("username", text_or_remove(username)));
    }
    if let Some(path) = &edit.password_file {
        out.push(("password_file", path_or_remove("password_file", path)?));
    }
    if let Some(var) = &edit.password_env {
        out.push(("password_env", text_or_remove(var)));
    }
    if let Some(path) = &edit.ssh_key {
        out.push(("ssh_key", path_or_remove("ssh_key", path)?));
    }
    if let Some(path) = &edit.known_hosts {
        out.push(("known_hosts", path_or_remove("known_hosts", path)?));
    }
    if let Some(path) = &edit.ca_file {
        out.push(("ca_file", path_or_remove("ca_file", path)?));
    }
    for (key, duration) in [
        ("delay", &edit.delay),
        ("min_interval", &edit.min_interval),
        ("timeout", &edit.timeout),
        ("verify_interval", &edit.verify_interval),
    ] {
        if let Some(duration) = duration {
            out.push((key, duration_or_remove(key, duration)?));
        }
    }
    if let Some(size) = &edit.max_push_size {
        out.push(("max_push_size", size_or_remove(size)?));
    }
    if let Some(create) = edit.create {
        let value = match create.0 {
            Some(kind) => Value::from(kind.as_str()),
            None => Value::from(false),
        };
        out.push(("create", Change::Set(value)));
    }
    if let Some(visibility) = edit.visibility {
        out.push(("visibility", Change::Set(Value::from(visibility.as_str()))));
    }
    if let Some(url) = &edit.api_url {
        out.push(("api_url", text_or_remove(url)));
    }
    if let Some(path) = &edit.api_token_file {
        out.push(("api_token_file", path_or_remove("api_token_file", path)?));
    }
    if let Some(refs) = edit.max_refs_per_push {
        let change = match i64::try_from(refs) {
            Ok(0) => Change::Remove,
            Ok(refs) => Change::Set(Value::from(refs)),
            Err(_) => return Err(EditError::InvalidValue("`max_refs_per_push` is too large".into())),
        };
        out.push(("max_refs_per_push", change));
    }
    Ok(out)
}

fn size_or_remove(text: &str) -> Result<Change, EditError> {
    if text.is_empty() {
        return Ok(Change::Remove);
    }
    crate::util::size::ByteSize::parse(text).map_err(|e| EditError::InvalidValue(format!("`max_push_size`: {e}")))?;
    Ok(Change::Set(Value::from(text)))
}

fn list_or_remove(items: &[String]) -> Change {
    if items.is_empty() {
        Change::Remove
    } else {
        let array: Array = items.iter().map(String::as_str).collect();
        Change::Set(Value::Array(array))
    }
}

fn text_or_remove(text: &str) -> Change {
    if text.is_empty() {
        Change::Remove
    } else {
        Change::Set(Value::from(text))
    }
}

fn path_or_remove(key: &str, path: &Path) -> Result<Change, EditError> {
    match path.to_str() {
        Some(text) => Ok(text_or_remove(text)),
        None => Err(EditError::InvalidValue(format!(
            "`{key}`: the path {} is not valid UTF-8",
            path.display()
        ))),
    }
}

fn duration_or_remove(key: &str, text: &str) -> Result<Change, EditError> {
    if text.is_empty() {
        return Ok(Change::Remove);
    }
    humantime::parse_duration(text)
        .map_err(|e| EditError::InvalidValue(format!("`{key}`: invalid duration \"{text}\": {e}")))?;
    Ok(Change::Set(Value::from(text)))
}

#[cfg(test)]
mod tests;
