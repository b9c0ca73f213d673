//! Human-friendly units in configuration: durations (`300s`, `5m`, `24h`) and sizes (`1MiB`).

use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

/// A duration written as a string with a unit, e.g. `300s`, `5m`, `24h`, `250ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map(HumanDuration).map_err(de::Error::custom)
    }
}

/// Parses `300s`, `5m`, `24h`, `1h30m`, `250ms`. A bare number is refused: the unit is required.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("duration `{text}` has no unit: write it as e.g. `{text}s`, `5m` or `24h`"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration `{text}` ({e}): write e.g. `300s`, `5m` or `24h`"))
}

/// A size in bytes, written as an integer or with a unit: `512KiB`, `1MiB`, `1MB`, `2048B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => parse_size(&t).map(ByteSize).map_err(de::Error::custom),
        }
    }
}

/// Parses a byte size with an optional binary (`KiB`, `MiB`, `GiB`) or decimal (`KB`, `MB`,
/// `GB`) unit.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        other => {
            return Err(format!("unknown size unit `{other}` in `{text}`: use B, KiB, MiB, GiB, KB, MB or GB"));
        }
    };
    let n: u64 = digits.parse().map_err(|_| format!("invalid size `{text}`: write e.g. `1MiB` or `65536`"))?;
    n.checked_mul(multiplier).ok_or_else(|| format!("size `{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("300s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("300").unwrap_err().contains("has no unit"));
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn sizes_accept_binary_and_decimal_units() {
        assert_eq!(parse_size("1MiB").unwrap(), 1_048_576);
        assert_eq!(parse_size("512KiB").unwrap(), 524_288);
        assert_eq!(parse_size("2MB").unwrap(), 2_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("1 furlong").unwrap_err().contains("unknown size unit"));
    }
}
