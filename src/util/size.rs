//! Byte sizes as people write them (`"1900MiB"`, `"2GB"`, `"500k"`) and as we show them.

use std::fmt;

/// A size in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1 << 10),
    ("kib", 1 << 10),
    ("kb", 1000),
    ("m", 1 << 20),
    ("mib", 1 << 20),
    ("mb", 1000 * 1000),
    ("g", 1 << 30),
    ("gib", 1 << 30),
    ("gb", 1000 * 1000 * 1000),
    ("t", 1 << 40),
    ("tib", 1 << 40),
    ("tb", 1000 * 1000 * 1000 * 1000),
];

impl ByteSize {
    /// Parses a number (decimals allowed) and an optional unit: `B`, `KiB`/`K`, `KB`, `MiB`/`M`,
    /// `MB`, `GiB`/`G`, `GB`, `TiB`/`T`, `TB` (case-insensitive; `K`, `M`, `G`, `T` are binary, as in
    /// git's own `receive.maxInputSize`).
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let bad = || format!("invalid size {text:?} (try \"1900MiB\", \"2GiB\" or a number of bytes)");
        let number: f64 = number.parse().map_err(|_| bad())?;
        let factor = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, f)| *f)
            .ok_or_else(bad)?;
        let bytes = number * factor as f64;
        if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
            return Err(format!("invalid size {text:?}: it must be at least one byte"));
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    /// Binary units with two decimals above 1 KiB: `1.50 MiB`, `2.00 GiB`, `512 B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut value = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < NAMES.len() {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, "{value:.2} {}", NAMES[unit])
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ByteSize, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"1900MiB\" or a number of bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .ok()
                    .filter(|v| *v > 0)
                    .map(ByteSize)
                    .ok_or_else(|| E::custom("a size must be at least one byte"))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(ByteSize::parse("1900MiB"), Ok(ByteSize(1900 << 20)));
        assert_eq!(ByteSize::parse("2 GiB"), Ok(ByteSize(2 << 30)));
        assert_eq!(ByteSize::parse("2g"), Ok(ByteSize(2 << 30)));
        assert_eq!(ByteSize::parse("10MB"), Ok(ByteSize(10_000_000)));
        assert_eq!(ByteSize::parse("1.5k"), Ok(ByteSize(1536)));
        assert_eq!(ByteSize::parse("4096"), Ok(ByteSize(4096)));
        for bad in ["", "MiB", "10 parsecs", "-5M", "0", "1..5M", "0.1"] {
            assert!(ByteSize::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_display_in_binary_units() {
        assert_eq!(ByteSize(512).to_string(), "512 B");
        assert_eq!(ByteSize(1536).to_string(), "1.50 KiB");
        assert_eq!(ByteSize(2 << 30).to_string(), "2.00 GiB");
    }
}
