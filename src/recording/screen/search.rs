//! When a text appeared in a recording, so the player can jump to each occurrence.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::ScreenError;
use super::reader::{CastReader, ReadError};
use crate::recording::search::{TextMatch, TextSearch};

/// Every occurrence of `needle` in the output, the input and the marker labels of the
/// recording at `path`, as the time of the event where it starts, in file order; several
/// occurrences starting in one event are listed once. At most `limit` are returned. The file
/// is streamed, never held in memory; an unfinished last line is ignored. An empty needle
/// matches nothing. The rules are those of [`crate::recording::search`]: case-sensitive, on
/// the recorded text, matches may span events of one stream.
pub fn search_times(
    path: &Path,
    needle: &str,
    limit: usize,
) -> Result<Vec<TextMatch>, ScreenError> {
    let Some(mut search) = TextSearch::new(needle) else {
        return Ok(Vec::new());
    };
    let file = File::open(path).map_err(ScreenError::io(path))?;
    let failed = |err: ReadError| match err {
        ReadError::Io(source) => ScreenError::io(path)(source),
        ReadError::Cast(source) => ScreenError::cast(path)(source),
    };
    let mut reader = CastReader::new(BufReader::with_capacity(256 * 1024, file)).map_err(failed)?;
    let mut hits: Vec<TextMatch> = Vec::new();
    while hits.len() < limit {
        let Some(read) = reader.next_event().map_err(failed)? else {
            break;
        };
        search.push(read.event, |found| {
            if hits.last() != Some(&found) {
                hits.push(found);
            }
        });
    }
    hits.truncate(limit);
    Ok(hits)
}
