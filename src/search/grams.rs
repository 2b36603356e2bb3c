//! Byte trigrams and posting lists: the pieces the index's segments are made of.
//!
//! A gram is three consecutive bytes of a row's text as a 24-bit number. Byte trigrams of
//! UTF-8 text find UTF-8 needles exactly: a needle's bytes occur in a text exactly where the
//! needle does, so every row holding the needle holds all of its byte trigrams (the converse
//! is checked against the row's text). A posting list is the ascending keys of the rows that
//! hold one gram, stored as varint deltas.

use crate::search::chunk::{push_varint, read_varint};

/// Most grams of a needle looked up. Every gram looked up reads its posting list in every
/// segment, while a handful of grams spread over the needle already leave few candidates, and
/// the candidates are checked against the text anyway: more grams cost reads and save little.
pub const NEEDLE_GRAMS_MAX: usize = 12;

/// Bytes a gram has.
pub const GRAM_BYTES: usize = 3;

/// The distinct grams of texts, one text at a time, with a set of all 2^24 grams (2 MiB) that
/// is cleared through the list of grams it holds, so each text costs only its own length.
pub struct GramSet {
    bits: Vec<u64>,
    touched: Vec<u32>,
}

impl Default for GramSet {
    fn default() -> Self {
        GramSet {
            bits: vec![0; (1 << 24) / 64],
            touched: Vec::new(),
        }
    }
}

impl GramSet {
    /// The distinct grams of `text`, in the order they first occur (none if it is shorter than
    /// a gram).
    pub fn distinct(&mut self, text: &[u8]) -> &[u32] {
        for &gram in &self.touched {
            self.bits[(gram >> 6) as usize] = 0;
        }
        self.touched.clear();
        if text.len() < GRAM_BYTES {
            return &self.touched;
        }
        let mut gram = (u32::from(text[0]) << 8) | u32::from(text[1]);
        for &byte in &text[2..] {
            gram = ((gram << 8) | u32::from(byte)) & 0x00ff_ffff;
            let (word, bit) = ((gram >> 6) as usize, 1u64 << (gram & 63));
            if self.bits[word] & bit == 0 {
                self.bits[word] |= bit;
                self.touched.push(gram);
            }
        }
        &self.touched
    }
}

/// The gram starting at byte `at` of `bytes` (which must have three bytes there).
fn gram_at(bytes: &[u8], at: usize) -> u32 {
    (u32::from(bytes[at]) << 16) | (u32::from(bytes[at + 1]) << 8) | u32::from(bytes[at + 2])
}

/// The grams of a needle to look up: the grams that tile it (at bytes 0, 3, 6, … and the last
/// three), which together cover every byte, thinned evenly to [`NEEDLE_GRAMS_MAX`]; none for
/// a needle shorter than a gram.
pub fn needle_grams(needle: &[u8]) -> Vec<u32> {
    if needle.len() < GRAM_BYTES {
        return Vec::new();
    }
    let last = needle.len() - GRAM_BYTES;
    let mut starts: Vec<usize> = (0..=last).step_by(GRAM_BYTES).collect();
    if starts.last() != Some(&last) {
        starts.push(last);
    }
    if starts.len() > NEEDLE_GRAMS_MAX {
        let n = starts.len() - 1;
        starts = (0..NEEDLE_GRAMS_MAX)
            .map(|i| starts[i * n / (NEEDLE_GRAMS_MAX - 1)])
            .collect();
    }
    let mut grams: Vec<u32> = starts.into_iter().map(|at| gram_at(needle, at)).collect();
    grams.sort_unstable();
    grams.dedup();
    grams
}

/// Ascending, distinct row keys as varints: the first key, then each difference from the one
/// before.
pub fn encode_keys(keys: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.len() * 2);
    let mut previous = 0i64;
    for &key in keys {
        push_varint(&mut out, key.wrapping_sub(previous) as u64);
        previous = key;
    }
    out
}

/// Reads what [`encode_keys`] wrote; `None` if it is damaged (a key out of range or not
/// ascending).
pub fn decode_keys(bytes: &[u8]) -> Option<Vec<i64>> {
    let mut keys = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    let mut key = 0i64;
    while !rest.is_empty() {
        let (delta, after) = read_varint(rest)?;
        rest = after;
        let delta = i64::try_from(delta).ok()?;
        if !keys.is_empty() && delta == 0 {
            return None;
        }
        key = key.checked_add(delta)?;
        keys.push(key);
    }
    Some(keys)
}

/// The keys in every one of `lists` (each ascending), ascending.
pub fn intersect(mut lists: Vec<Vec<i64>>) -> Vec<i64> {
    lists.sort_by_key(Vec::len);
    let mut lists = lists.into_iter();
    let Some(mut common) = lists.next() else {
        return Vec::new();
    };
    for list in lists {
        if common.is_empty() {
            break;
        }
        let mut rest = list.as_slice();
        common.retain(|key| {
            // The lists only grow: look from where the previous key was.
            let at = rest.partition_point(|k| k < key);
            rest = &rest[at..];
            rest.first() == Some(key)
        });
    }
    common
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(text: &[u8]) -> Vec<u32> {
        let mut seen = Vec::new();
        for at in 0..text.len().saturating_sub(2) {
            let g = gram_at(text, at);
            if !seen.contains(&g) {
                seen.push(g);
            }
        }
        seen
    }

    #[test]
    fn distinct_grams_are_those_of_the_bytes_once_each() {
        let mut set = GramSet::default();
        for text in [
            "abcabcabc",
            "zé€😀 zé€😀 ok",
            "\u{0}\u{0}\u{0}\u{0}",
            "ÿÿÿ",
            "the quick brown fox",
        ] {
            assert_eq!(
                set.distinct(text.as_bytes()),
                naive(text.as_bytes()),
                "{text}"
            );
        }
        // Short rows have no grams, and leave none behind from the text before.
        assert!(set.distinct(b"ab").is_empty());
        assert!(set.distinct(b"").is_empty());
        assert_eq!(
            set.distinct(b"abca"),
            &[gram_at(b"abc", 0), gram_at(b"bca", 0)]
        );
    }

    #[test]
    fn needle_grams_cover_it_and_are_found_in_a_text_holding_it() {
        let mut set = GramSet::default();
        for needle in ["abc", "abcd", "é€", "sudo rm -rf /", &"x1y2z3".repeat(33)] {
            let grams = needle_grams(needle.as_bytes());
            assert!(!grams.is_empty() && grams.len() <= NEEDLE_GRAMS_MAX);
            let text = format!("before {needle} after");
            let all = set.distinct(text.as_bytes()).to_vec();
            assert!(grams.iter().all(|g| all.contains(g)), "{needle}");
        }
        // "é€" is five bytes: two grams tile it, though it is two characters.
        assert_eq!(needle_grams("é€".as_bytes()).len(), 2);
        assert!(needle_grams(b"ab").is_empty());
        assert!(needle_grams("é".as_bytes()).is_empty());
        // A long needle is looked up by at most NEEDLE_GRAMS_MAX grams, first and last kept.
        let long: Vec<u8> = (0..200u8).collect();
        let grams = needle_grams(&long);
        assert_eq!(grams.len(), NEEDLE_GRAMS_MAX);
        assert!(grams.contains(&gram_at(&long, 0)) && grams.contains(&gram_at(&long, 197)));
    }

    #[test]
    fn keys_round_trip_through_their_encoding() {
        for keys in [
            vec![],
            vec![0],
            vec![5, 6, 7, 1_000, 1 << 40, i64::MAX],
            (0..10_000).map(|i| i * 131 + (i % 7)).collect::<Vec<i64>>(),
        ] {
            assert_eq!(decode_keys(&encode_keys(&keys)).unwrap(), keys);
        }
        // Small gaps take one byte each.
        assert_eq!(encode_keys(&[100, 101, 103]).len(), 3);
        // Damage is noticed: a cut varint, a repeated key, a key past the range.
        assert!(decode_keys(&[0x80]).is_none());
        assert!(decode_keys(&[5, 0]).is_none());
        let mut past = encode_keys(&[i64::MAX]);
        past.push(1);
        assert!(decode_keys(&past).is_none());
    }

    #[test]
    fn intersection_keeps_keys_in_every_list() {
        assert_eq!(
            intersect(vec![
                vec![1, 3, 5, 7, 9, 11],
                vec![3, 4, 5, 9, 11, 12],
                vec![0, 3, 9, 10, 11],
            ]),
            vec![3, 9, 11]
        );
        assert_eq!(intersect(vec![vec![1, 2], vec![]]), Vec::<i64>::new());
        assert_eq!(intersect(vec![]), Vec::<i64>::new());
        assert_eq!(intersect(vec![vec![4, 8]]), vec![4, 8]);
        let big: Vec<i64> = (0..100_000).collect();
        let small = vec![-1, 7, 99_999, 100_000];
        assert_eq!(intersect(vec![big, small]), vec![7, 99_999]);
    }
}
