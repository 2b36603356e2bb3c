//! `[recordings] keep`: how long recordings (and their index rows) are kept after their session
//! ended. Read while the file is parsed, so a bad value is reported at its `file:line`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::duration;

/// The shortest `keep` accepted: anything below a day is far more likely a wrong unit
/// (`400m` for `400d`) than a wish to delete evidence within hours.
pub const MIN_KEEP: Duration = Duration::from_secs(86_400);

/// The longest `keep` accepted: a hundred years is "forever" for a recording, and the bound
/// keeps the arithmetic on timestamps far from overflow. Leaving `keep` out keeps forever.
pub const MAX_KEEP: Duration = Duration::from_secs(36_525 * 86_400);

/// Reads `keep = "400d"` as a duration between [`MIN_KEEP`] and [`MAX_KEEP`].
pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map(Some).map_err(serde::de::Error::custom)
}

/// The meaning of a `keep` value, or the message that says why it has none.
pub fn parse(text: &str) -> Result<Duration, String> {
    let keep = duration::parse_up_to(text, MAX_KEEP, "it is longer than a hundred years")
        .map_err(|e| format!("recordings.keep: {e}"))?;
    if keep < MIN_KEEP {
        return Err(format!(
            "recordings.keep: {text:?} is shorter than a day; recordings are evidence, keep \
             them at least 1d (leave keep out to keep them forever)"
        ));
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, ConfigError};

    #[test]
    fn keep_defaults_to_forever_and_reads_days() {
        assert_eq!(Config::defaults_in(Path::new("/srv")).recordings.keep, None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gatehouse.toml");
        std::fs::write(&path, "[recordings]\nkeep = \"400d\"\n").unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.recordings.keep, Some(Duration::from_secs(400 * 86_400)));
    }

    #[test]
    fn nonsense_is_refused_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gatehouse.toml");
        for bad in ["0s", "12h", "400", "forever", "40000000d", "-1d"] {
            std::fs::write(
                &path,
                format!("# retention\n[recordings]\nkeep = \"{bad}\"\n"),
            )
            .unwrap();
            let err = Config::load(&path).unwrap_err();
            assert!(
                matches!(err, ConfigError::Parse { line: 3, .. }),
                "{bad}: {err:?}"
            );
            let text = err.to_string();
            assert!(text.contains("gatehouse.toml:3:"), "{bad}: {text}");
            assert!(text.contains("recordings.keep"), "{bad}: {text}");
        }
    }
}
