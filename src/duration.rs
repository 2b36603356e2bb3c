//! Durations as people write them in policies and on the SSH command line: `90s`, `15m`, `2h`,
//! `1h30m`, `7d`.
//!
//! The grammar is deliberately strict (digits followed by one unit, repeated, units in
//! descending order, no spaces) so that a typo is an error rather than a surprising grant length.

use std::fmt;
use std::time::Duration;

/// Why a duration could not be read; the message is shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {why} (write it like 90s, 15m, 2h or 1h30m)")]
pub struct DurationError {
    text: String,
    why: &'static str,
}

/// The largest duration accepted anywhere: one year. Anything longer is a mistake, and the cap
/// keeps arithmetic on timestamps far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses a duration such as `1h30m`.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    parse_up_to(text, MAX_DURATION, "it is longer than a year")
}

/// Parses a duration in the same grammar as [`parse`], up to `max` instead of a year, for the
/// few settings that are measured in years (how long recordings are kept); `too_long` says
/// why a longer one is refused.
pub fn parse_up_to(
    text: &str,
    max: Duration,
    too_long: &'static str,
) -> Result<Duration, DurationError> {
    let fail = |why| DurationError {
        text: text.chars().take(40).collect(),
        why,
    };
    if text.is_empty() {
        return Err(fail("it is empty"));
    }
    let mut total: u64 = 0;
    let mut last_unit = u64::MAX;
    let mut digits = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            if digits.len() >= 9 {
                return Err(fail("the number is too large"));
            }
            digits.push(ch);
            continue;
        }
        let unit = match ch {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(fail("it may only hold digits and the units d, h, m, s")),
        };
        if digits.is_empty() {
            return Err(fail("a unit must follow a number"));
        }
        if unit >= last_unit {
            return Err(fail("units must go from largest to smallest, each once"));
        }
        last_unit = unit;
        let value: u64 = digits
            .parse()
            .map_err(|_| fail("the number is too large"))?;
        digits.clear();
        total = total
            .checked_add(value * unit)
            .ok_or_else(|| fail("it is too long"))?;
    }
    if !digits.is_empty() {
        return Err(fail("the last number has no unit"));
    }
    let duration = Duration::from_secs(total);
    if duration.is_zero() {
        return Err(fail("it must be longer than zero"));
    }
    if duration > max {
        return Err(fail(too_long));
    }
    Ok(duration)
}

/// Formats a duration in the same grammar [`parse`] reads, so that what Gatehouse prints can be
/// pasted back.
pub fn format(duration: Duration) -> String {
    Compact(duration).to_string()
}

/// A [`Duration`] that displays as `1h30m`.
#[derive(Debug, Clone, Copy)]
pub struct Compact(pub Duration);

impl fmt::Display for Compact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        if secs == 0 {
            return f.write_str("0s");
        }
        for (unit, name) in [(86_400, 'd'), (3_600, 'h'), (60, 'm'), (1, 's')] {
            if secs >= unit {
                write!(f, "{}{}", secs / unit, name)?;
                secs %= unit;
            }
        }
        Ok(())
    }
}

/// Serde support for duration fields in TOML files (`max_duration = "4h"`).
pub mod serde_text {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    /// Reads a duration string with [`super::parse`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_forms() {
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1d2h3m4s").unwrap(), Duration::from_secs(93_784));
    }

    #[test]
    fn refuses_what_is_not_clearly_a_duration() {
        for bad in [
            "",
            "1",
            "h",
            "1x",
            "1h 30m",
            "30m1h",
            "1h1h",
            "-1h",
            "1.5h",
            "0s",
            "0h0m",
            "400d",
            "9999999999s",
            "1H",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn a_longer_bound_is_kept_exactly() {
        let ten_years = Duration::from_secs(3653 * 86_400);
        assert_eq!(
            parse_up_to("400d", ten_years, "too long").unwrap(),
            Duration::from_secs(400 * 86_400)
        );
        let err = parse_up_to("4000d", ten_years, "it is longer than ten years").unwrap_err();
        assert!(err.to_string().contains("ten years"), "{err}");
        assert!(parse_up_to("0s", ten_years, "too long").is_err());
    }

    #[test]
    fn formats_back_to_the_same_grammar() {
        for text in ["90s", "15m", "2h", "1h30m", "1d2h3m4s"] {
            let d = parse(text).unwrap();
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
    }
}
