//! The query over the index's segments, the same on every backend: each backend reads posting
//! lists and checks rows' text, this module decides which rows to read.
//!
//! For a needle of at least three bytes: its grams ([`Needle::grams`]) are looked up in every
//! segment, each segment's postings give the candidate keys ([`Needle::candidates`]: rows with
//! every gram, placed and followed as in the needle), and the candidates are checked against
//! their text in key order, a batch at a time, so each session's stream stops
//! at its first real hit. Unsealed rows are looked for by their text. Per stream, the earlier of
//! the two wins.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;

use super::StoreError;
use super::search::SEQ_BITS;
use rustc_hash::FxHashMap;

use crate::search::grams::{Posting, decode_postings};
use crate::search::needle::Needle;

/// Keys checked in one statement.
pub const VERIFY_BATCH: usize = 500;

/// Candidates of one stream checked at most in one round (the first round checks one per
/// stream, each next round four times more).
const ROUND_MAX: usize = 64;

/// What a backend reads for a query.
#[async_trait]
pub trait PostingReader: Send + Sync {
    /// Every segment's list of each of `grams`: `(segment, gram, encoded keys)`.
    async fn postings(&self, grams: &[u32]) -> Result<Vec<(i64, u32, Vec<u8>)>, StoreError>;

    /// Of `keys` (at most [`VERIFY_BATCH`]), those of rows whose text contains `needle`.
    async fn verify(&self, keys: &[i64], needle: &str) -> Result<Vec<i64>, StoreError>;

    /// The first unsealed row of each stream whose text contains `needle`.
    async fn unsealed_first(&self, needle: &str) -> Result<Vec<i64>, StoreError>;
}

/// The session's number of a key.
pub fn session_no(key: i64) -> i64 {
    key >> (SEQ_BITS + 2)
}

/// The stream (session and stream) of a key.
fn stream_of(key: i64) -> i64 {
    key >> SEQ_BITS
}

/// The key of the first row of each stream of the sessions `wanted` (by number) whose text
/// holds `needle` (of at least three bytes).
pub async fn first_keys(
    reader: &dyn PostingReader,
    needle: &str,
    wanted: &HashSet<i64>,
) -> Result<Vec<i64>, StoreError> {
    let lookup = Needle::new(needle.as_bytes());
    let mut by_segment: HashMap<i64, FxHashMap<u32, Vec<Posting>>> = HashMap::new();
    for (seg, gram, list) in reader.postings(&lookup.grams()).await? {
        let list = decode_postings(&list).ok_or_else(|| {
            StoreError::Corrupt(format!("posting list of gram {gram} in segment {seg}"))
        })?;
        by_segment.entry(seg).or_default().insert(gram, list);
    }
    let mut candidates: Vec<i64> = by_segment
        .values()
        .flat_map(|lists| lookup.candidates(lists))
        .filter(|&key| wanted.contains(&session_no(key)))
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    let mut first = verified_first(reader, needle, candidates).await?;
    for key in reader.unsealed_first(needle).await? {
        if !wanted.contains(&session_no(key)) {
            continue;
        }
        first
            .entry(stream_of(key))
            .and_modify(|k| *k = (*k).min(key))
            .or_insert(key);
    }
    Ok(first.into_values().collect())
}

/// The first of each stream's candidates (ascending) whose text holds the needle.
async fn verified_first(
    reader: &dyn PostingReader,
    needle: &str,
    candidates: Vec<i64>,
) -> Result<BTreeMap<i64, i64>, StoreError> {
    // Each stream's candidates, and how many of them are checked already.
    let mut open: BTreeMap<i64, (Vec<i64>, usize)> = BTreeMap::new();
    for key in candidates {
        open.entry(stream_of(key)).or_default().0.push(key);
    }
    let mut found = BTreeMap::new();
    let mut take = 1;
    while !open.is_empty() {
        let round: Vec<i64> = open
            .values()
            .flat_map(|(keys, done)| keys[*done..].iter().take(take).copied())
            .collect();
        let mut hits = HashSet::new();
        for batch in round.chunks(VERIFY_BATCH) {
            hits.extend(reader.verify(batch, needle).await?);
        }
        open.retain(|&stream, (keys, done)| {
            let checked = &keys[*done..(*done + take).min(keys.len())];
            if let Some(&hit) = checked.iter().find(|k| hits.contains(k)) {
                found.insert(stream, hit);
                return false;
            }
            *done += checked.len();
            *done < keys.len()
        });
        take = (take * 4).min(ROUND_MAX);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::segment::SegmentBuilder;
    use crate::store::search::{TextStream, row_key};

    /// Rows in memory, in two segments and unsealed, read as a backend would.
    struct Rows {
        texts: BTreeMap<i64, String>,
        segments: Vec<crate::store::search::SegmentData>,
        unsealed: Vec<i64>,
    }

    #[async_trait]
    impl PostingReader for Rows {
        async fn postings(&self, grams: &[u32]) -> Result<Vec<(i64, u32, Vec<u8>)>, StoreError> {
            let mut out = Vec::new();
            for (seg, segment) in self.segments.iter().enumerate() {
                for (gram, keys) in &segment.postings {
                    if grams.contains(gram) {
                        out.push((seg as i64, *gram, keys.clone()));
                    }
                }
            }
            Ok(out)
        }
        async fn verify(&self, keys: &[i64], needle: &str) -> Result<Vec<i64>, StoreError> {
            Ok(keys
                .iter()
                .filter(|k| self.texts.get(k).is_some_and(|t| t.contains(needle)))
                .copied()
                .collect())
        }
        async fn unsealed_first(&self, needle: &str) -> Result<Vec<i64>, StoreError> {
            let mut first: BTreeMap<i64, i64> = BTreeMap::new();
            for &key in &self.unsealed {
                if self.texts[&key].contains(needle) {
                    first.entry(stream_of(key)).or_insert(key);
                }
            }
            Ok(first.into_values().collect())
        }
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn hits_in_sealed_and_unsealed_rows_give_each_stream_its_first() {
        let out = |no, seq| row_key(no, TextStream::Output, seq);
        let input = |no, seq| row_key(no, TextStream::Input, seq);
        let rows = [
            (out(1, 0), "nothing here", 0),
            (out(1, 1), "it says sudo rm -rf / now", 0),
            (out(1, 2), "sudo rm -rf / again", 1),
            (input(1, 0), "sudo rm -rf", 1),
            (out(2, 0), "sudo rm -rf /home", 2),
            // Session 2's first hit is unsealed, its later one sealed.
            (out(2, 1), "no", 2),
            (out(2, 3), "sudo rm -rf /x", 0),
            // Session 3: only a row whose grams match but whose text does not.
            (out(3, 0), "sudo rm -rf x f /", 0),
            // Session 4: a hit, but session 4 is not wanted.
            (out(4, 0), "sudo rm -rf /", 0),
            // Session 5: a hit only in an unsealed row.
            (out(5, 7), "then sudo rm -rf /", 2),
        ];
        let mut builders = [SegmentBuilder::default(), SegmentBuilder::default()];
        let mut unsealed = Vec::new();
        for &(key, text, place) in &rows {
            match place {
                0 | 1 => builders[place].add(key, text),
                _ => unsealed.push(key),
            }
        }
        let reader = Rows {
            texts: rows.iter().map(|&(k, t, _)| (k, t.to_owned())).collect(),
            segments: builders.iter().map(SegmentBuilder::build).collect(),
            unsealed,
        };
        let wanted: HashSet<i64> = [1, 2, 3, 5].into();
        let mut keys = block_on(first_keys(&reader, "sudo rm -rf /", &wanted)).unwrap();
        keys.sort_unstable();
        assert_eq!(keys, vec![out(1, 1), out(2, 0), out(5, 7)]);
        let mut keys = block_on(first_keys(&reader, "sudo rm -rf", &wanted)).unwrap();
        keys.sort_unstable();
        assert_eq!(
            keys,
            vec![out(1, 1), input(1, 0), out(2, 0), out(3, 0), out(5, 7)]
        );
        assert!(
            block_on(first_keys(&reader, "absent", &wanted))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_stream_with_many_false_candidates_still_finds_its_hit() {
        let mut builder = SegmentBuilder::default();
        let mut texts = BTreeMap::new();
        for seq in 0..300 {
            let key = row_key(9, TextStream::Output, seq);
            let text = if seq == 257 { "abc-def" } else { "def abc-" };
            builder.add(key, text);
            texts.insert(key, text.to_owned());
        }
        let reader = Rows {
            texts,
            segments: vec![builder.build()],
            unsealed: Vec::new(),
        };
        let keys = block_on(first_keys(&reader, "abc-def", &[9].into())).unwrap();
        assert_eq!(keys, vec![row_key(9, TextStream::Output, 257)]);
    }
}
