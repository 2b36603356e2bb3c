//! Answering a search from the index: the sessions that match and, for each, its earliest hit.

use std::collections::HashMap;

use super::chunk::EventTimes;
use super::{NEEDLE_INDEXED_BYTES, NEEDLE_MAX_BYTES};
use crate::recording::{MatchSource, TextMatch};
use crate::store::search::TextStream;
use crate::store::sessions::SessionRecord;
use crate::store::{Store, StoreError};

/// Why a search was not run.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// An empty needle would match every session.
    #[error("the search text is empty")]
    Empty,
    /// Longer than the index can hold in one row.
    #[error("the search text is longer than {NEEDLE_MAX_BYTES} bytes")]
    TooLong,
    /// The index marks left-out text with U+FFFF; a needle holding it could match across such a
    /// place.
    #[error("the search text contains U+FFFF, which terminals do not print")]
    Noncharacter,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a needle: not empty, at most [`NEEDLE_MAX_BYTES`], without the index's gap mark.
pub fn check_needle(needle: &str) -> Result<(), SearchError> {
    if needle.is_empty() {
        return Err(SearchError::Empty);
    }
    if needle.len() > NEEDLE_MAX_BYTES {
        return Err(SearchError::TooLong);
    }
    if needle.contains(super::chunk::GAP) {
        return Err(SearchError::Noncharacter);
    }
    Ok(())
}

/// Whether a needle is too short for the trigram index (it is then looked for row by row in the
/// sessions given, which takes longer over a large index).
pub fn is_short(needle: &str) -> bool {
    needle.len() < NEEDLE_INDEXED_BYTES
}

/// The earliest hit of `needle` in each of `sessions` that has one: the command first, then the
/// earliest of output, input, marker labels and file paths (on equal times, in that order).
pub async fn search(
    store: &Store,
    needle: &str,
    sessions: &[SessionRecord],
) -> Result<HashMap<String, TextMatch>, SearchError> {
    check_needle(needle)?;
    let mut hits: HashMap<String, TextMatch> = HashMap::new();
    for s in sessions {
        if s.command.as_deref().is_some_and(|c| c.contains(needle)) {
            hits.insert(
                s.id.clone(),
                TextMatch {
                    source: MatchSource::Command,
                    time: 0.0,
                },
            );
        }
    }
    let by_id: HashMap<&str, &SessionRecord> =
        sessions.iter().map(|s| (s.id.as_str(), s)).collect();
    let rest: Vec<String> = sessions
        .iter()
        .filter(|s| !hits.contains_key(&s.id))
        .map(|s| s.id.clone())
        .collect();
    if rest.is_empty() {
        return Ok(hits);
    }
    // Earliest per session: (time, tie-break order, source).
    let mut best: HashMap<String, (f64, u8, MatchSource)> = HashMap::new();
    let mut offer = |id: &str, time: f64, order: u8, source: MatchSource| {
        let entry = best
            .entry(id.to_owned())
            .or_insert((f64::INFINITY, u8::MAX, source));
        if (time, order) < (entry.0, entry.1) {
            *entry = (time, order, source);
        }
    };
    let within = if is_short(needle) {
        Some(rest.as_slice())
    } else {
        None
    };
    for row in store.index_first_rows(needle, within).await? {
        if hits.contains_key(&row.session_id) || !by_id.contains_key(row.session_id.as_str()) {
            continue;
        }
        let Some(at) = row.text.find(needle) else {
            continue;
        };
        let Some(time) = EventTimes::decode(&row.events).and_then(|e| e.time_at(at)) else {
            tracing::warn!(session = %row.session_id, "an index row has damaged event times");
            continue;
        };
        let source = match row.stream {
            TextStream::Output => MatchSource::Output,
            TextStream::Input => MatchSource::Input,
            TextStream::Marker => MatchSource::Marker,
        };
        offer(
            &row.session_id,
            time as f64 / 1e6,
            row.stream.code() as u8,
            source,
        );
    }
    for hit in store.file_path_hits(needle).await? {
        let Some(s) = by_id.get(hit.session_id.as_str()) else {
            continue;
        };
        if hits.contains_key(&s.id) {
            continue;
        }
        let into = (hit.at_ms as f64 / 1000.0 - s.started_at as f64).max(0.0);
        offer(&s.id, into, 3, MatchSource::File);
    }
    for (id, (time, _, source)) in best {
        hits.insert(id, TextMatch { source, time });
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needles_are_checked_before_the_index_is_asked() {
        assert!(check_needle("rm -rf").is_ok());
        assert!(matches!(check_needle(""), Err(SearchError::Empty)));
        assert!(matches!(
            check_needle(&"x".repeat(NEEDLE_MAX_BYTES + 1)),
            Err(SearchError::TooLong)
        ));
        // The gap mark would let a needle match across left-out text.
        assert!(matches!(
            check_needle("y\n\u{FFFF}other"),
            Err(SearchError::Noncharacter)
        ));
    }
}
