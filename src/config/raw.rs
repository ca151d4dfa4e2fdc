//! The configuration files as TOML has them: the serde types of the global file and of `push-mirror.toml`,
//! which reject unknown keys, and the deserializers that check single values (durations, log levels, limits).

use crate::config::{ConfigError, KNOWN_PROTOCOLS, LOG_LEVELS, MirrorSettings};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGlobal {
    pub(super) spool_dir: Option<PathBuf>,
    pub(super) state_dir: Option<PathBuf>,
    pub(super) log_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "log_level")]
    pub(super) log_level: Option<log::LevelFilter>,
    pub(super) silent_mode: Option<bool>,
    #[serde(default, deserialize_with = "max_parallel")]
    pub(super) max_parallel: Option<usize>,
    #[serde(default, deserialize_with = "allowed_protocols")]
    pub(super) allowed_protocols: Option<Vec<String>>,
    pub(super) repos_root: Option<PathBuf>,
    pub(super) shared_group: Option<String>,
    #[serde(default, deserialize_with = "duration")]
    pub(super) worker_linger: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub(super) claim_timeout: Option<Duration>,
    pub(super) defaults: Option<MirrorSettings>,
    pub(super) retry: Option<RawRetry>,
    pub(super) notify: Option<super::notify::RawNotify>,
    pub(super) warn_pushers: Option<bool>,
    #[serde(default, deserialize_with = "metrics_mirrors")]
    pub(super) metrics_mirrors: Option<crate::config::MetricsMirrors>,
    #[serde(default)]
    pub(super) mirror: MirrorTables,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    #[serde(default, deserialize_with = "duration")]
    pub(super) initial: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub(super) max: Option<Duration>,
    #[serde(default, deserialize_with = "fail_after")]
    pub(super) fail_after: Option<u32>,
    pub(super) jitter: Option<bool>,
    #[serde(default, deserialize_with = "duration")]
    pub(super) permanent_retry: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRepo {
    #[serde(default)]
    pub(super) protected_branches: Vec<String>,
    #[serde(default)]
    pub(super) mirror: MirrorTables,
}

/// The `[mirror.NAME]` tables in file order (the parser's map is sorted by
/// name, so the order is recovered from the keys' positions).
#[derive(Debug, Default)]
pub(super) struct MirrorTables(pub(super) Vec<(String, MirrorSettings)>);

impl<'de> Deserialize<'de> for MirrorTables {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TablesVisitor;
        impl<'de> Visitor<'de> for TablesVisitor {
            type Value = MirrorTables;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of mirror tables")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MirrorTables, A::Error> {
                let mut tables = Vec::new();
                while let Some(name) = map.next_key::<toml::Spanned<String>>()? {
                    let settings = map.next_value::<MirrorSettings>()?;
                    tables.push((name.span().start, name.into_inner(), settings));
                }
                tables.sort_by_key(|(start, _, _)| *start);
                Ok(MirrorTables(
                    tables.into_iter().map(|(_, name, settings)| (name, settings)).collect(),
                ))
            }
        }
        deserializer.deserialize_map(TablesVisitor)
    }
}

/// `"2s"`, `"500ms"`, `"5m"`, `"1h 30m"`: humantime's own message says what is wrong.
pub(super) fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map(Some)
        .map_err(|e| de::Error::custom(format!("invalid duration \"{text}\": {e}")))
}

pub(super) fn log_level<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<log::LevelFilter>, D::Error> {
    let text = String::deserialize(deserializer)?;
    let level = text.to_ascii_lowercase();
    if !LOG_LEVELS.contains(&level.as_str()) {
        return Err(de::Error::custom(format!(
            "unknown log_level \"{text}\", expected one of {}",
            LOG_LEVELS.join(", ")
        )));
    }
    level.parse().map(Some).map_err(de::Error::custom)
}

pub(super) fn metrics_mirrors<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<crate::config::MetricsMirrors>, D::Error> {
    use crate::config::MetricsMirrors;
    match String::deserialize(deserializer)?.as_str() {
        "all" => Ok(Some(MetricsMirrors::All)),
        "attention" => Ok(Some(MetricsMirrors::Attention)),
        other => Err(de::Error::custom(format!(
            "unknown metrics_mirrors \"{other}\", expected \"all\" (every mirror) or \"attention\" (only mirrors \
             that need it; the aggregates count every mirror)"
        ))),
    }
}

fn at_least_one<'de, D: Deserializer<'de>, T: TryFrom<u64>>(deserializer: D, key: &str) -> Result<Option<T>, D::Error> {
    let n = u64::deserialize(deserializer)?;
    if n == 0 {
        return Err(de::Error::custom(format!("`{key}` must be at least 1")));
    }
    T::try_from(n)
        .map(Some)
        .map_err(|_| de::Error::custom(format!("`{key}` is too large")))
}

pub(super) fn max_parallel<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    at_least_one(deserializer, "max_parallel")
}

pub(super) fn max_refs_per_push<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    at_least_one(deserializer, "max_refs_per_push")
}

pub(super) fn fail_after<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    at_least_one(deserializer, "fail_after")
}

pub(super) fn allowed_protocols<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    let protocols = Vec::<String>::deserialize(deserializer)?;
    if let Some(unknown) = protocols.iter().find(|p| !KNOWN_PROTOCOLS.contains(&p.as_str())) {
        return Err(de::Error::custom(format!(
            "protocol \"{unknown}\" cannot be allowed, expected some of {}",
            KNOWN_PROTOCOLS.join(", ")
        )));
    }
    Ok(Some(protocols))
}

/// Turns a toml/serde error into `file:line:column: message`.
pub(super) fn toml_error(path: &Path, text: &str, error: &toml::de::Error) -> ConfigError {
    syntax_error(path, text, error.message(), error.span())
}

/// `file:line:column: message` for a TOML error of either parser (reading, or editing in place):
/// the first non-blank line of the parser's message, at the start of `span`.
pub(crate) fn syntax_error(path: &Path, text: &str, message: &str, span: Option<Range<usize>>) -> ConfigError {
    let message = message
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("invalid TOML")
        .to_string();
    match span {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        }
        None => ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        },
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}
