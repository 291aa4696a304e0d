//! Durations written as `30s`, `10m`, `1h`, `1d`.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A duration from a policy file: a positive integer followed by `s`, `m`, `h` or `d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyDuration {
    seconds: u64,
}

/// The longest duration a policy may name: one year. Longer ones are almost certainly typos.
pub(crate) const MAX_DURATION_SECONDS: u64 = 366 * 24 * 3600;

impl PolicyDuration {
    /// Parse `30s`, `10m`, `1h`, `1d`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let unit_at = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(unit_at);
        let help = "write a whole number followed by s, m, h or d, e.g. `30s`, `10m`, `1h`, `1d`";
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("invalid duration `{text}`: {help}"))?;
        let factor = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(format!("invalid duration unit in `{text}`: {help}")),
        };
        let seconds = n
            .checked_mul(factor)
            .filter(|s| *s > 0 && *s <= MAX_DURATION_SECONDS)
            .ok_or_else(|| format!("duration `{text}` must be between 1s and 366d"))?;
        Ok(PolicyDuration { seconds })
    }

    /// The duration in whole seconds.
    #[must_use]
    pub const fn seconds(self) -> u64 {
        self.seconds
    }

    /// As a standard duration.
    #[must_use]
    pub const fn as_duration(self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

impl fmt::Display for PolicyDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        if s.is_multiple_of(86_400) {
            write!(f, "{}d", s / 86_400)
        } else if s.is_multiple_of(3600) {
            write!(f, "{}h", s / 3600)
        } else if s.is_multiple_of(60) {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

impl<'de> Deserialize<'de> for PolicyDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        PolicyDuration::parse(&text).map_err(de::Error::custom)
    }
}

impl Serialize for PolicyDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl JsonSchema for PolicyDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+[smhd]$",
            "description": "A whole number followed by s, m, h or d, e.g. `10m`."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(PolicyDuration::parse("30s").map(|d| d.seconds()), Ok(30));
        assert_eq!(PolicyDuration::parse("10m").map(|d| d.seconds()), Ok(600));
        assert_eq!(PolicyDuration::parse("1h").map(|d| d.seconds()), Ok(3600));
        assert_eq!(PolicyDuration::parse("1d").map(|d| d.seconds()), Ok(86_400));
    }

    #[test]
    fn rejects_bad_durations_with_help() {
        let e = PolicyDuration::parse("10 minutes").unwrap_err();
        assert!(e.contains("invalid duration unit"), "{e}");
        assert!(
            PolicyDuration::parse("0s")
                .unwrap_err()
                .contains("between 1s and 366d")
        );
        assert!(
            PolicyDuration::parse("m")
                .unwrap_err()
                .contains("invalid duration")
        );
        assert!(PolicyDuration::parse("999999999999999999d").is_err());
        assert!(PolicyDuration::parse("-1s").is_err());
    }

    #[test]
    fn displays_in_largest_unit() {
        assert_eq!(PolicyDuration::parse("120m").unwrap().to_string(), "2h");
        assert_eq!(PolicyDuration::parse("90s").unwrap().to_string(), "90s");
    }
}
