//! Checks that the table of keys and the parser agree: every key the parser accepts has a row, every
//! row names a key, each example parses, and `[defaults]` takes exactly the keys documented for it.

use super::*;
use crate::config::MirrorSettings;
use crate::config::raw::{RawGlobal, RawRepo, RawRetry};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::collections::BTreeSet;
use std::path::Path;

/// A deserializer that only records the field names a derived `Deserialize` asks for: every
/// key the parser accepts in that table.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

fn fields_of<'de, T: Deserialize<'de>>() -> BTreeSet<&'static str> {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    assert!(!fields.is_empty(), "{} is not a struct", std::any::type_name::<T>());
    fields.iter().copied().collect()
}

fn documented(table: Table) -> BTreeSet<&'static str> {
    keys_of(table).map(|doc| doc.key).collect()
}

#[test]
fn every_key_the_parser_accepts_is_documented_and_every_documented_key_exists() {
    for (table, accepted) in [
        (Table::Global, fields_of::<RawGlobal>()),
        (Table::Retry, fields_of::<RawRetry>()),
        (Table::Notify, fields_of::<crate::config::notify::RawNotify>()),
        (Table::Mirror, fields_of::<MirrorSettings>()),
        (Table::Repo, fields_of::<RawRepo>()),
    ] {
        let rows = documented(table);
        let undocumented: Vec<_> = accepted.difference(&rows).collect();
        let unknown: Vec<_> = rows.difference(&accepted).collect();
        assert!(
            undocumented.is_empty(),
            "{table:?}: keys without a row in KEYS (src/config/keys.rs), so not in the man page: {undocumented:?}"
        );
        assert!(
            unknown.is_empty(),
            "{table:?}: rows for keys the parser does not accept: {unknown:?}"
        );
    }
    let mut seen = BTreeSet::new();
    for doc in KEYS {
        assert!(seen.insert((doc.table as u8, doc.key)), "{} twice", doc.key);
        assert!(!doc.meaning.is_empty() && !doc.default.is_empty(), "{}", doc.key);
    }
}

#[test]
fn every_example_is_a_valid_value_of_its_key() {
    let example = |doc: &KeyDoc| format!("{} = {}\n", doc.key, doc.example);
    let with_example = |table| keys_of(table).filter(|doc| !doc.example.is_empty());
    let global: String = with_example(Table::Global).map(example).collect();
    let retry: String = with_example(Table::Retry).map(example).collect();
    let notify: String = with_example(Table::Notify)
        .filter(|doc| doc.key != "webhook_url_file")
        .map(example)
        .collect();
    let text = format!("{global}[retry]\n{retry}[notify]\n{notify}");
    toml::from_str::<RawGlobal>(&text).unwrap_or_else(|e| panic!("{text}\n{e}"));
    let repo: String = with_example(Table::Repo).map(example).collect();
    toml::from_str::<RawRepo>(&repo).unwrap_or_else(|e| panic!("{repo}\n{e}"));
    for doc in with_example(Table::Mirror) {
        let text = example(doc);
        toml::from_str::<MirrorSettings>(&text).unwrap_or_else(|e| panic!("{text}\n{e}"));
    }
}

#[test]
fn defaults_takes_exactly_the_keys_documented_for_it() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("config.toml");
    for doc in keys_of(Table::Mirror) {
        let text = format!("[defaults]\n{} = {}\n", doc.key, doc.example);
        let parsed = crate::config::validate::parse_global(&text, &file, 0o600, Path::new("/state"));
        match parsed {
            Ok(_) => assert!(
                doc.in_defaults,
                "[defaults] takes {}, documented as per mirror only",
                doc.key
            ),
            Err(e) => assert!(
                !doc.in_defaults && e.to_string().contains("belongs in a [mirror.NAME] table"),
                "{}: {e}",
                doc.key
            ),
        }
    }
}
