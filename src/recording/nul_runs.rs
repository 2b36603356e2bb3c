//! NUL bytes kept out of event data, and put back exactly.
//!
//! JSON can only carry a NUL as the six characters `\u0000`, so binary output (a disk image, a
//! core dump, `head -c 1G /dev/zero`) would make the recording six times the size of the output
//! and cost as much to hash. Terminals ignore NUL, so it never changes what a player shows:
//! the recorder leaves NUL runs out of the `"o"`/`"i"` data and lists them in a companion event
//! with code [`NUL_RUNS_CODE`], whose data is a space-separated list of `OFFSET:COUNT` entries:
//! COUNT NUL bytes start at byte OFFSET of the event's exact bytes (after any raw-bytes
//! companion is applied). Entries are in increasing order and never overlap.
//!
//! ```text
//! [2.500000, "o", "ab"]
//! [2.500000, "n", "1:32766"]
//! ```
//!
//! restores to `a`, 32,766 NUL bytes, `b`.

use std::fmt;
use std::io::Write;

/// Event code of the NUL-runs companion line.
///
/// Chosen because asciicast v2 requires players to ignore codes they do not know, and `"n"` is
/// not used by any asciicast version.
pub const NUL_RUNS_CODE: &str = "n";

/// Most NUL bytes one event may restore to. The recorder never writes an event longer than
/// this, so a larger claim is a damaged or forged file, refused before it can take memory.
pub const MAX_NULS_PER_EVENT: usize = 1 << 20;

/// The NUL runs of one event as the recorder finds them, merged where they touch.
///
/// Reused across events so the hot path does not allocate.
#[derive(Debug, Default, Clone)]
pub struct NulRuns {
    runs: Vec<(usize, usize)>,
}

impl NulRuns {
    /// Forgets the runs of the previous event.
    pub fn clear(&mut self) {
        self.runs.clear();
    }

    /// Whether the event had any NUL bytes.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Notes `count` NUL bytes at exact-byte offset `offset`; offsets must not go backwards.
    pub fn push(&mut self, offset: usize, count: usize) {
        match self.runs.last_mut() {
            Some((start, len)) if *start + *len == offset => *len += count,
            _ => self.runs.push((offset, count)),
        }
    }

    /// Appends the companion data (`OFFSET:COUNT OFFSET:COUNT …`) to `buf`.
    pub fn write_to(&self, buf: &mut Vec<u8>) {
        for (i, (offset, count)) in self.runs.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            // Writing into a Vec cannot fail.
            let _ = write!(buf, "{sep}{offset}:{count}");
        }
    }
}

/// Why a NUL-runs companion does not fit the event it follows; a sign of a damaged or edited
/// recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NulRunsError {
    /// An entry is not `OFFSET:COUNT` with decimal numbers and a count above zero.
    BadEntry(String),
    /// An entry starts before the end of the previous one, or beyond the event's data.
    OutOfPlace(String),
    /// The entries add up to more than [`MAX_NULS_PER_EVENT`].
    TooMany,
}

impl fmt::Display for NulRunsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadEntry(entry) => write!(f, "invalid NUL-run entry {entry:?}"),
            Self::OutOfPlace(entry) => write!(f, "NUL-run entry {entry:?} is out of place"),
            Self::TooMany => write!(
                f,
                "NUL runs add up to more than {MAX_NULS_PER_EVENT} bytes in one event"
            ),
        }
    }
}

impl std::error::Error for NulRunsError {}

/// Parses and checks companion data against the event it follows, whose bytes without NULs are
/// `without_len` long: every entry well formed, in order, not overlapping, inside the event, and
/// no more than [`MAX_NULS_PER_EVENT`] NULs in all. Returns the runs as `(offset, count)`.
pub fn parse_nul_runs(runs: &str, without_len: usize) -> Result<Vec<(usize, usize)>, NulRunsError> {
    let mut parsed = Vec::new();
    let mut total = 0usize;
    // End of the previous run, in exact bytes, and the bytes without NULs used up to there.
    let (mut end, mut taken) = (0usize, 0usize);
    for entry in runs.split(' ') {
        let (offset, count) = entry
            .split_once(':')
            .and_then(|(offset, count)| Some((parse_decimal(offset)?, parse_decimal(count)?)))
            .filter(|&(_, count)| count > 0)
            .ok_or_else(|| NulRunsError::BadEntry(entry.to_owned()))?;
        total = total
            .checked_add(count)
            .filter(|&total| total <= MAX_NULS_PER_EVENT)
            .ok_or(NulRunsError::TooMany)?;
        // The bytes between the previous run and this one come from the event's data.
        taken = offset
            .checked_sub(end)
            .map(|between| taken + between)
            .filter(|&taken| taken <= without_len)
            .ok_or_else(|| NulRunsError::OutOfPlace(entry.to_owned()))?;
        end = offset + count;
        parsed.push((offset, count));
    }
    Ok(parsed)
}

/// Rebuilds an event's exact bytes from its bytes without NULs and its runs, as checked by
/// [`parse_nul_runs`] against `without`.
pub fn insert_nul_runs(without: &[u8], runs: &[(usize, usize)]) -> Vec<u8> {
    let total: usize = runs.iter().map(|&(_, count)| count).sum();
    let mut out = Vec::with_capacity(without.len() + total);
    let mut taken = 0;
    for &(offset, count) in runs {
        // `offset` counts NULs already put back; the bytes before it come from `without`.
        let copy = offset.saturating_sub(out.len()).min(without.len() - taken);
        out.extend_from_slice(&without[taken..taken + copy]);
        taken += copy;
        out.resize(out.len() + count, 0);
    }
    out.extend_from_slice(&without[taken..]);
    out
}

/// A plain decimal number (no sign, no leading `+`, at most 12 digits).
fn parse_decimal(text: &str) -> Option<usize> {
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(runs: &[(usize, usize)]) -> String {
        let mut nul_runs = NulRuns::default();
        for &(offset, count) in runs {
            nul_runs.push(offset, count);
        }
        let mut buf = Vec::new();
        nul_runs.write_to(&mut buf);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn touching_runs_merge_and_the_rest_are_listed_in_order() {
        assert_eq!(written(&[(0, 3), (3, 2), (7, 1)]), "0:5 7:1");
        assert_eq!(written(&[(4, 32768)]), "4:32768");
    }

    fn restored(without: &[u8], runs: &str) -> Result<Vec<u8>, NulRunsError> {
        let runs = parse_nul_runs(runs, without.len())?;
        Ok(insert_nul_runs(without, &runs))
    }

    #[test]
    fn runs_are_put_back_where_they_were() {
        assert_eq!(restored(b"ab", "1:3").unwrap(), b"a\0\0\0b");
        assert_eq!(restored(b"", "0:4").unwrap(), vec![0; 4]);
        assert_eq!(restored(b"ab", "0:1 2:1 4:2").unwrap(), b"\0a\0b\0\0");
        assert_eq!(restored(b"abc", "1:1 3:1").unwrap(), b"a\0b\0c");
    }

    #[test]
    fn damaged_or_forged_entries_are_refused() {
        for bad in [
            "", "1", "1:", ":1", "1:0", "-1:2", "+1:2", "1:2:3", "a:1", "1:1  3:1",
        ] {
            assert!(
                matches!(restored(b"abc", bad), Err(NulRunsError::BadEntry(_))),
                "{bad:?}"
            );
        }
        for bad in ["4:1", "2:2 3:1", "1:1 0:1", "0:1 5:1"] {
            assert!(
                matches!(restored(b"abc", bad), Err(NulRunsError::OutOfPlace(_))),
                "{bad:?}"
            );
        }
        let huge = format!("0:{}", MAX_NULS_PER_EVENT + 1);
        assert_eq!(restored(b"", &huge), Err(NulRunsError::TooMany));
        assert_eq!(restored(b"", "0:999999999999"), Err(NulRunsError::TooMany));
    }
}
