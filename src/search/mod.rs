//! Finding the sessions that showed, typed or ran a text, from an index built as recordings are
//! written, without reading recording files.
//!
//! What is searched is what [`crate::recording::search`] defines: case-sensitive substrings of
//! the decoded text, the output and the input each as one continuous stream (a match may span
//! any number of events), marker labels one by one, the session's command, and the paths of a
//! file session's transcript. Each session's earliest hit wins, with the time of the event in
//! which the match starts.
//!
//! - [`chunk`] cuts a stream into overlapping rows with their event times;
//! - [`feed`] turns a session's events into rows, leaving out repeated output lines;
//! - [`lines`] and [`tail`] read a recording file's new lines for it;
//! - [`indexer`] follows recordings being written and catches up on the others;
//! - [`grams`] and [`segment`] index final rows by their byte trigrams, in segments;
//! - [`needle`] picks the rows a needle's grams leave as candidates;
//! - [`query`] answers a search from the rows ([`crate::store::search`] stores them).

pub mod chunk;
pub mod feed;
pub mod grams;
pub mod indexer;
pub mod lines;
pub mod needle;
pub mod query;
pub mod reindex;
pub mod segment;
pub mod tail;

pub use indexer::Indexer;
pub use query::{SearchError, search};

/// Longest needle a search accepts, in bytes: rows overlap by one less, so a needle always lies
/// inside one row.
pub const NEEDLE_MAX_BYTES: usize = 200;

/// Shortest needle the trigram index can find, in bytes; shorter ones are looked for row by row
/// in the sessions searched.
pub const NEEDLE_INDEXED_BYTES: usize = grams::GRAM_BYTES;
