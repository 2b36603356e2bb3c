//! Segments of the index: the trigram postings of final rows, built in memory and written at
//! once, then merged as they accumulate.
//!
//! A row is *final* once its stream has moved on to the next row or its session has ended: its
//! text never changes again. The indexer hands final rows to a [`SegmentBuilder`], which keeps
//! only each row's distinct grams (`gram -> rows`), not its text. The builder is *sealed* into
//! a segment when it holds [`SEAL_BYTES`] of row text, when its oldest row is [`SEAL_AGE`] old,
//! and at shutdown: one transaction writes the postings and marks the rows sealed. Rows not yet
//! sealed are looked for in their text by queries (at most one builder's worth, plus what a
//! crash left, which the next start seals).
//!
//! Segments are merged by size tiers ([`merge_due`]): when [`MERGE_FAN_IN`] segments of one
//! tier exist, they become one, leaving out the keys of rows deleted since (retention, a
//! rebuild). A year of quiet five-minute segments therefore stays a few dozen segments.

use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::grams::{GramMarks, GramSet, Posting, decode_postings, encode_postings};
use crate::store::search::{SegmentData, SegmentInfo};
use crate::store::{Store, StoreError};

/// Row text a builder holds before it is sealed.
pub const SEAL_BYTES: usize = 32 << 20;

/// Age of a builder's oldest row at which it is sealed even if small.
pub const SEAL_AGE: Duration = Duration::from_secs(5 * 60);

/// Segments of one tier that are merged into one.
pub const MERGE_FAN_IN: usize = 8;

/// Text of the smallest tier's segments; each tier above holds [`MERGE_FAN_IN`] times more.
const TIER_BASE: u64 = 64 << 10;

/// The postings of final rows not yet written; see the module documentation.
#[derive(Default)]
pub struct SegmentBuilder {
    grams: FxHashMap<u32, Vec<(u32, GramMarks)>>,
    /// Row keys by the number the postings use for them (in the order rows were added).
    keys: Vec<i64>,
    text_bytes: usize,
    oldest: Option<Instant>,
    set: GramSet,
}

impl SegmentBuilder {
    /// Adds a final row's grams.
    pub fn add(&mut self, key: i64, text: &str) {
        let number = self.keys.len() as u32;
        self.keys.push(key);
        self.text_bytes += text.len();
        self.oldest.get_or_insert_with(Instant::now);
        for (gram, marks) in self.set.distinct(text.as_bytes()) {
            self.grams.entry(gram).or_default().push((number, marks));
        }
    }

    /// No rows held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Row text held, in bytes.
    pub fn text_bytes(&self) -> usize {
        self.text_bytes
    }

    /// Whether the builder should be sealed now (big or old enough).
    pub fn is_due(&self) -> bool {
        self.text_bytes >= SEAL_BYTES || self.oldest.is_some_and(|t| t.elapsed() >= SEAL_AGE)
    }

    /// The segment the builder holds: its keys and each gram's postings, ascending.
    pub fn build(&self) -> SegmentData {
        let mut keys = self.keys.clone();
        keys.sort_unstable();
        keys.dedup();
        let mut postings: Vec<(u32, Vec<u8>)> = self
            .grams
            .iter()
            .map(|(&gram, numbers)| {
                let list = numbers
                    .iter()
                    .map(|&(n, marks)| Posting {
                        key: self.keys[n as usize],
                        marks,
                    })
                    .collect();
                (gram, encode_postings(&in_key_order(list)))
            })
            .collect();
        postings.sort_unstable_by_key(|&(gram, _)| gram);
        SegmentData {
            keys,
            postings,
            text_bytes: self.text_bytes as u64,
        }
    }

    /// Forgets what the builder held (once it is written).
    pub fn clear(&mut self) {
        self.grams = FxHashMap::default();
        self.keys = Vec::new();
        self.text_bytes = 0;
        self.oldest = None;
    }
}

/// Writes the builder as a segment (if it holds anything), then merges what is due. On an
/// error the builder keeps its rows: they stay unsealed (still found, by their text) and
/// sealing is tried again later.
pub async fn seal(store: &Store, builder: &mut SegmentBuilder) -> Result<(), StoreError> {
    if !builder.is_empty() {
        store.index_seal(&builder.build()).await?;
        builder.clear();
    }
    merge_due(store).await
}

/// The size tier of a segment holding `text_bytes` of row text.
pub fn tier(text_bytes: u64) -> u32 {
    let mut units = text_bytes / TIER_BASE;
    let mut tier = 0;
    while units >= MERGE_FAN_IN as u64 {
        units /= MERGE_FAN_IN as u64;
        tier += 1;
    }
    tier
}

/// The segments to merge next: the oldest [`MERGE_FAN_IN`] of the lowest tier that has that
/// many.
pub fn next_merge(segments: &[SegmentInfo]) -> Option<Vec<i64>> {
    let mut by_tier: std::collections::BTreeMap<u32, Vec<i64>> = Default::default();
    for s in segments {
        by_tier.entry(tier(s.text_bytes)).or_default().push(s.seg);
    }
    by_tier.into_values().find_map(|mut segs| {
        (segs.len() >= MERGE_FAN_IN).then(|| {
            segs.sort_unstable();
            segs.truncate(MERGE_FAN_IN);
            segs
        })
    })
}

/// Merges segments while a tier has [`MERGE_FAN_IN`] of them.
pub async fn merge_due(store: &Store) -> Result<(), StoreError> {
    while let Some(segs) = next_merge(&store.index_segments().await?) {
        if store.index_merge(&segs).await?.is_none() {
            // Another node merged some of them first; look again.
            continue;
        }
    }
    Ok(())
}

/// Merges every segment into one, leaving out the keys of deleted rows
/// (`gatehouse sessions reindex`).
pub async fn compact(store: &Store) -> Result<(), StoreError> {
    let segs: Vec<i64> = store
        .index_segments()
        .await?
        .into_iter()
        .map(|s| s.seg)
        .collect();
    if !segs.is_empty() {
        store.index_merge(&segs).await?;
    }
    Ok(())
}

/// `postings` ascending by distinct key; a key given twice (a row added again) keeps both
/// marks.
fn in_key_order(mut postings: Vec<Posting>) -> Vec<Posting> {
    postings.sort_unstable_by_key(|p| p.key);
    postings.dedup_by(|later, kept| {
        let same = later.key == kept.key;
        if same {
            kept.marks = kept.marks.union(later.marks);
        }
        same
    });
    postings
}

/// One gram's merged list from its lists in several segments, keeping only keys in `live`
/// (ascending); `None` if a list is damaged, empty bytes if no key is left.
pub fn merge_lists(lists: &[&[u8]], live: &[i64]) -> Option<Vec<u8>> {
    let mut postings = Vec::new();
    for list in lists {
        postings.extend(decode_postings(list)?);
    }
    let mut postings = in_key_order(postings);
    postings.retain(|p| live.binary_search(&p.key).is_ok());
    Some(encode_postings(&postings))
}

/// Merges `(gram, keys)` rows of several segments, ordered by gram, into one list per gram,
/// keeping only keys in `live` (ascending) and leaving out grams with none left.
pub fn merge_rows(
    rows: &[(u32, Vec<u8>)],
    live: &[i64],
) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    for group in rows.chunk_by(|a, b| a.0 == b.0) {
        let lists: Vec<&[u8]> = group.iter().map(|(_, keys)| keys.as_slice()).collect();
        let merged = merge_lists(&lists, live)
            .ok_or_else(|| StoreError::Corrupt(format!("a posting list of gram {}", group[0].0)))?;
        if !merged.is_empty() {
            out.push((group[0].0, merged));
        }
    }
    Ok(out)
}

/// The keys of a segment as stored ([`SegmentData::keys`], encoded).
pub fn segment_keys(seg: i64, bytes: &[u8]) -> Result<Vec<i64>, StoreError> {
    super::grams::decode_keys(bytes)
        .ok_or_else(|| StoreError::Corrupt(format!("the keys of segment {seg}")))
}

/// Text of a merged segment: its parts' text in the share of their rows still there.
pub fn merged_text_bytes(text_bytes: u64, rows: usize, live: usize) -> u64 {
    if rows == 0 {
        return 0;
    }
    (text_bytes as u128 * live as u128 / rows as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::needle::Needle;

    /// The keys a segment offers for a needle: the rows its grams' postings fit.
    fn candidates(segment: &SegmentData, needle: &str) -> Vec<i64> {
        let needle = Needle::new(needle.as_bytes());
        let lists = needle
            .grams()
            .into_iter()
            .filter_map(|g| {
                let i = segment
                    .postings
                    .binary_search_by_key(&g, |&(gram, _)| gram)
                    .ok()?;
                Some((g, decode_postings(&segment.postings[i].1).unwrap()))
            })
            .collect();
        needle.candidates(&lists)
    }

    #[test]
    fn a_segment_offers_every_row_holding_a_needle() {
        let mut builder = SegmentBuilder::default();
        builder.add(30, "sudo rm -rf /tmp");
        builder.add(10, "ls -la");
        builder.add(20, "rm -rf / is what sudo does");
        builder.add(40, "é€ unicode");
        // The same row again (a crash replayed): one posting, with both texts' marks.
        builder.add(20, "sudo ls -la");
        assert!(!builder.is_due());
        let segment = builder.build();
        assert_eq!(segment.keys, vec![10, 20, 30, 40]);
        assert_eq!(candidates(&segment, "rm -rf"), vec![20, 30]);
        assert_eq!(candidates(&segment, "ls -"), vec![10, 20]);
        assert_eq!(candidates(&segment, "€ u"), vec![40]);
        assert!(candidates(&segment, "absent").is_empty());
        builder.clear();
        assert!(builder.is_empty() && builder.build().postings.is_empty());
    }

    #[test]
    fn a_merged_segment_gives_the_same_answers_without_deleted_rows() {
        let texts = [
            (1, "alpha beta gamma"),
            (2, "beta gamma delta"),
            (3, "gamma delta epsilon"),
            (4, "delta alpha"),
        ];
        let mut parts = Vec::new();
        for pair in texts.chunks(2) {
            let mut builder = SegmentBuilder::default();
            for &(key, text) in pair {
                builder.add(key, text);
            }
            parts.push(builder.build());
        }
        let mut whole = SegmentBuilder::default();
        for &(key, text) in &texts {
            whole.add(key, text);
        }
        let whole = whole.build();
        let live: Vec<i64> = vec![1, 2, 3, 4];
        let mut grams: Vec<u32> = parts
            .iter()
            .flat_map(|p| p.postings.iter().map(|&(g, _)| g))
            .collect();
        grams.sort_unstable();
        grams.dedup();
        let merge = |live: &[i64]| SegmentData {
            keys: live.to_vec(),
            postings: grams
                .iter()
                .map(|&g| {
                    let lists: Vec<&[u8]> = parts
                        .iter()
                        .filter_map(|p| {
                            p.postings
                                .binary_search_by_key(&g, |&(gram, _)| gram)
                                .ok()
                                .map(|i| p.postings[i].1.as_slice())
                        })
                        .collect();
                    (g, merge_lists(&lists, live).unwrap())
                })
                .collect(),
            text_bytes: 0,
        };
        let merged = merge(&live);
        assert_eq!(merged.postings, whole.postings);
        for needle in ["gamma", "delta", "alpha", "a b", "zeta"] {
            assert_eq!(candidates(&merged, needle), candidates(&whole, needle));
        }
        // Row 2 was deleted: the merge leaves it out.
        let merged = merge(&[1, 3, 4]);
        assert_eq!(candidates(&merged, "gamma"), vec![1, 3]);
        assert!(merge_lists(&[&[0x80]], &live).is_none());
    }

    #[test]
    fn tiers_grow_by_the_fan_in_and_merges_take_the_oldest_of_a_full_tier() {
        assert_eq!(tier(0), 0);
        assert_eq!(tier(TIER_BASE * 7), 0);
        assert_eq!(tier(TIER_BASE * 8), 1);
        assert_eq!(tier(SEAL_BYTES as u64), 3);
        assert_eq!(tier(SEAL_BYTES as u64 * 8), 4);
        let info = |seg, text_bytes| SegmentInfo { seg, text_bytes };
        let mut segments: Vec<SegmentInfo> = (1..=7).map(|s| info(s, 1000)).collect();
        segments.push(info(50, SEAL_BYTES as u64));
        assert_eq!(next_merge(&segments), None);
        segments.push(info(60, 2000));
        segments.push(info(0, 10));
        assert_eq!(next_merge(&segments), Some(vec![0, 1, 2, 3, 4, 5, 6, 7]));
    }
}
