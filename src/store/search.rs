//! The text index of recordings: rows of text chunks, so that a search finds the sessions that
//! showed a text without reading their recordings (see [`crate::search`] for how the chunks are
//! built and searched).
//!
//! A row holds up to [`crate::search::chunk::TARGET_BYTES`] of one stream (output, input or
//! marker labels) of one session, with the times of the events its text came from. Rows of a
//! stream overlap by [`crate::search::chunk::OVERLAP_BYTES`], so any needle the search accepts
//! lies wholly inside one row. Next to the rows, each session's progress: how many bytes of
//! its recording file are indexed, stored in the same transaction as the rows, so a crash loses
//! at most the last second and the indexer resumes where the file and the index part.
//!
//! Rows whose text is final are indexed by trigram postings in segments
//! ([`crate::search::segment`]): `gram -> ascending row keys` with where in each row the gram
//! is and what follows it, per segment. A row not yet in a segment is *unsealed*: queries look
//! for the needle in its text directly. A query keeps the rows whose postings fit the needle in
//! each segment, then checks the candidates' text in key order, stopping
//! each session's stream at its first real hit ([`crate::store::postings`]).

use async_trait::async_trait;

use super::StoreError;

/// Which text of a recording a row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TextStream {
    /// What the session printed.
    Output,
    /// What the user typed.
    Input,
    /// Marker labels (a restricted shell's `run: …`, a denial), each searched on its own.
    Marker,
}

impl TextStream {
    /// Every stream, in the order ties between equal times are broken.
    pub const ALL: [TextStream; 3] = [TextStream::Output, TextStream::Input, TextStream::Marker];

    /// The number stored for the stream.
    pub fn code(self) -> i64 {
        match self {
            TextStream::Output => 0,
            TextStream::Input => 1,
            TextStream::Marker => 2,
        }
    }

    /// The stream of a stored number.
    pub fn from_code(code: i64) -> Result<TextStream, StoreError> {
        match code {
            0 => Ok(TextStream::Output),
            1 => Ok(TextStream::Input),
            2 => Ok(TextStream::Marker),
            other => Err(StoreError::Corrupt(format!("text stream {other}"))),
        }
    }
}

/// One row of the text index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRow {
    /// The session.
    pub session_id: String,
    /// Which of its texts.
    pub stream: TextStream,
    /// Its place in the stream, from 0.
    pub seq: u32,
    /// The text: the end of the previous row of the stream (unless `after_gap`), then new text.
    pub text: String,
    /// Where in `text` each event's text starts and the event's time, encoded by
    /// [`crate::search::chunk::EventTimes`].
    pub events: Vec<u8>,
    /// The row's text does not continue the previous row's (a repeated line was left out
    /// between them, or it is the first row), so it does not begin with an overlap.
    pub after_gap: bool,
    /// Text that follows this row's in the stream begins a new row without overlap (a repeated
    /// line was left out after it).
    pub gap_after: bool,
}

/// How far a session's recording is indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexProgress {
    /// The session.
    pub session_id: String,
    /// Bytes of its recording file indexed (always at the end of a line).
    pub indexed_bytes: u64,
    /// The recording is finished and wholly indexed: nothing to catch up on.
    pub complete: bool,
}

/// What the indexer commits at once: new and grown rows and the progress they amount to.
#[derive(Debug, Clone, Default)]
pub struct IndexBatch {
    /// Rows to insert, or to replace (the same session, stream and seq) when a row grew.
    pub rows: Vec<ChunkRow>,
    /// The progress of every session with rows in the batch (and perhaps others).
    pub progress: Vec<IndexProgress>,
}

/// The earliest place a needle occurs in one file session's transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHit {
    /// The session.
    pub session_id: String,
    /// When the first operation whose path (or new name) contains the needle completed, in
    /// Unix milliseconds.
    pub at_ms: i64,
}

/// A segment to write: what a [`crate::search::segment::SegmentBuilder`] holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentData {
    /// The keys of its rows, ascending (marked sealed when it is written).
    pub keys: Vec<i64>,
    /// Each gram with the postings of the rows holding it, encoded by
    /// [`crate::search::grams::encode_postings`], by ascending gram.
    pub postings: Vec<(u32, Vec<u8>)>,
    /// The rows' text, in bytes (for choosing what to merge).
    pub text_bytes: u64,
}

/// A written segment, for choosing what to merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Its number, unique across the nodes sharing the index.
    pub seg: i64,
    /// The text of its rows, in bytes.
    pub text_bytes: u64,
}

/// The text index, whichever database holds it.
#[async_trait]
pub trait SearchIndex: Send + Sync {
    /// Stores rows and progress in one transaction; the keys of the rows, in order. A row
    /// stored again (it grew) is unsealed: its text is looked for directly until it is sealed
    /// again.
    async fn index_commit(&self, batch: &IndexBatch) -> Result<Vec<i64>, StoreError>;

    /// The keys and text of the unsealed rows of the sessions named that are final (a later
    /// row of their stream exists, or the session is wholly indexed), to seal after a restart.
    async fn index_unsealed(&self, sessions: &[String]) -> Result<Vec<(i64, String)>, StoreError>;

    /// Writes a segment's postings and marks its rows sealed, in one transaction; its number.
    async fn index_seal(&self, segment: &SegmentData) -> Result<i64, StoreError>;

    /// The segments written.
    async fn index_segments(&self) -> Result<Vec<SegmentInfo>, StoreError>;

    /// Merges segments into a new one in one transaction, leaving out the keys of rows that
    /// are gone; its number, or `None` if one of them is gone already (another node merged it).
    async fn index_merge(&self, segs: &[i64]) -> Result<Option<i64>, StoreError>;

    /// The progress of every session with any (`None`), or of the sessions named.
    async fn index_progress(
        &self,
        sessions: Option<&[String]>,
    ) -> Result<Vec<IndexProgress>, StoreError>;

    /// The last row of each stream of a session, to go on from after a restart.
    async fn index_last_rows(&self, session_id: &str) -> Result<Vec<ChunkRow>, StoreError>;

    /// Forgets the rows and progress of the sessions named, or of every session (`None`), so
    /// that they can be indexed again from their files (or because they were deleted).
    async fn index_forget(&self, sessions: Option<&[String]>) -> Result<(), StoreError>;

    /// For each session and stream, the first row (in stream order) whose text contains
    /// `needle` exactly, of the sessions named in `within` (every indexed session when
    /// `None`). A needle of fewer than three bytes cannot use trigrams: it is looked for row by
    /// row.
    async fn index_first_rows(
        &self,
        needle: &str,
        within: Option<&[String]>,
    ) -> Result<Vec<ChunkRow>, StoreError>;

    /// For each file session, its earliest operation whose path or new name contains `needle`.
    async fn file_path_hits(&self, needle: &str) -> Result<Vec<FileHit>, StoreError>;

    /// Bytes the index takes on disk (rows and their postings), for reports.
    async fn index_bytes(&self) -> Result<u64, StoreError>;
}

/// Bits of a row's key that hold its seq; above them, two bits of stream, and above those the
/// session's number in the index. Rows of one session and stream are therefore adjacent and in
/// order in the key, so the first matching row of each is found by grouping keys.
pub const SEQ_BITS: u32 = 22;

/// Most rows one stream of one session can have (at 16 KiB a row, 64 GiB of new text).
pub const MAX_SEQ: u32 = (1 << SEQ_BITS) - 1;

/// The key of a row from the session's number in the index, its stream and seq.
pub fn row_key(session_no: i64, stream: TextStream, seq: u32) -> i64 {
    (session_no << (SEQ_BITS + 2)) | (stream.code() << SEQ_BITS) | i64::from(seq & MAX_SEQ)
}

/// The session's number, stream and seq of a row key.
pub fn split_key(key: i64) -> Result<(i64, TextStream, u32), StoreError> {
    let seq = (key & i64::from(MAX_SEQ)) as u32;
    let stream = TextStream::from_code((key >> SEQ_BITS) & 3)?;
    Ok((key >> (SEQ_BITS + 2), stream, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_session_stream_and_seq_in_order() {
        for (no, stream, seq) in [
            (1, TextStream::Output, 0),
            (7, TextStream::Marker, MAX_SEQ),
            (1 << 38, TextStream::Input, 12),
        ] {
            assert_eq!(
                split_key(row_key(no, stream, seq)).unwrap(),
                (no, stream, seq)
            );
        }
        assert!(row_key(1, TextStream::Output, 5) < row_key(1, TextStream::Input, 0));
        assert!(row_key(1, TextStream::Marker, MAX_SEQ) < row_key(2, TextStream::Output, 0));
    }
}
