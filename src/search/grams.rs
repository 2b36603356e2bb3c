//! Byte trigrams and posting lists: the pieces the index's segments are made of.
//!
//! A gram is three consecutive bytes of a row's text as a 24-bit number. Byte trigrams of
//! UTF-8 text find UTF-8 needles exactly: a needle's bytes occur in a text exactly where the
//! needle does, so every row holding the needle holds all of its byte trigrams (the converse
//! is checked against the row's text).
//!
//! A posting names a row holding a gram, with two one-byte masks of *where* in the row the gram
//! is and *what follows it* ([`GramMarks`]). With them a query checks that a row's grams are
//! placed as the needle places them, and what comes after each, before it reads any text: a
//! needle made of common parts (`root@web-07` in a fleet of `root@web-0N` prompts) leaves the
//! rows holding each part apart but not the needle. A posting list is the postings of one gram,
//! ascending by row key, as a varint delta and the two masks each.

use crate::search::chunk::{push_varint, read_varint};

/// Bytes a gram has.
pub const GRAM_BYTES: usize = 3;

/// Where in a row a gram occurs and what follows it, as Bloom-style masks: every occurrence
/// sets its bit, so a mask without the bit a needle needs rules the row out, and one with it
/// only lets the row on to be checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GramMarks {
    /// Bit `i` set: the gram starts at a byte offset `≡ i (mod 8)` in the row.
    pub offsets: u8,
    /// Bit [`follower_bit`]`(b)` set: the gram is followed by byte `b` somewhere in the row.
    pub followers: u8,
}

impl GramMarks {
    fn packed(self) -> u16 {
        u16::from(self.offsets) | (u16::from(self.followers) << 8)
    }

    fn unpacked(packed: u16) -> GramMarks {
        GramMarks {
            offsets: packed as u8,
            followers: (packed >> 8) as u8,
        }
    }

    /// Both masks of `self` and `other`: a row's marks from two parts of it.
    pub fn union(self, other: GramMarks) -> GramMarks {
        GramMarks {
            offsets: self.offsets | other.offsets,
            followers: self.followers | other.followers,
        }
    }
}

/// The bit of [`GramMarks::followers`] that byte `b` sets: its low three bits, so runs of
/// digits and letters (`0`–`7`, `a`–`g`) set different bits.
pub fn follower_bit(b: u8) -> u8 {
    1 << (b & 7)
}

/// The distinct grams of texts with their marks, one text at a time. It keeps a table of all
/// 2^24 grams' marks (32 MiB of address space, of which only the pages of grams seen are ever
/// touched), cleared through the list of grams it holds, so each text costs only its own
/// length.
pub struct GramSet {
    marks: Vec<u16>,
    touched: Vec<u32>,
}

impl Default for GramSet {
    fn default() -> Self {
        GramSet {
            marks: vec![0; 1 << 24],
            touched: Vec::new(),
        }
    }
}

impl GramSet {
    /// The distinct grams of `text` with their marks, in the order they first occur (none if
    /// it is shorter than a gram).
    pub fn distinct(&mut self, text: &[u8]) -> impl Iterator<Item = (u32, GramMarks)> + '_ {
        for &gram in &self.touched {
            self.marks[gram as usize] = 0;
        }
        self.touched.clear();
        for at in 0..text.len().saturating_sub(GRAM_BYTES - 1) {
            let gram = gram_at(text, at);
            let follower = text.get(at + GRAM_BYTES).map_or(0, |&b| follower_bit(b));
            let marks = &mut self.marks[gram as usize];
            if *marks == 0 {
                self.touched.push(gram);
            }
            // The offset bit is never zero, so a gram seen is never taken for one unseen.
            *marks |= u16::from(1u8 << (at & 7)) | (u16::from(follower) << 8);
        }
        self.touched
            .iter()
            .map(|&gram| (gram, GramMarks::unpacked(self.marks[gram as usize])))
    }
}

/// The gram starting at byte `at` of `bytes` (which must have three bytes there).
pub fn gram_at(bytes: &[u8], at: usize) -> u32 {
    (u32::from(bytes[at]) << 16) | (u32::from(bytes[at + 1]) << 8) | u32::from(bytes[at + 2])
}

/// One row holding a gram, with the gram's marks in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Posting {
    /// The row's key.
    pub key: i64,
    /// Where the gram is in the row and what follows it.
    pub marks: GramMarks,
}

/// Postings ascending by distinct key, encoded: each key as a varint difference from the one
/// before (the first from 0), then its offset and follower masks.
pub fn encode_postings(postings: &[Posting]) -> Vec<u8> {
    let mut out = Vec::with_capacity(postings.len() * 3);
    let mut previous = 0i64;
    for p in postings {
        push_varint(&mut out, p.key.wrapping_sub(previous) as u64);
        out.extend_from_slice(&p.marks.packed().to_le_bytes());
        previous = p.key;
    }
    out
}

/// Reads what [`encode_postings`] wrote; `None` if it is damaged (cut short, a key out of
/// range or not ascending, a posting with no offset).
pub fn decode_postings(bytes: &[u8]) -> Option<Vec<Posting>> {
    let mut postings = Vec::with_capacity(bytes.len() / 3);
    let mut rest = bytes;
    let mut key = 0i64;
    while !rest.is_empty() {
        let (delta, after) = read_varint(rest)?;
        let (&[offsets, followers], after) = after.split_first_chunk::<2>()?;
        rest = after;
        let delta = i64::try_from(delta).ok()?;
        if (!postings.is_empty() && delta == 0) || offsets == 0 {
            return None;
        }
        key = key.checked_add(delta)?;
        postings.push(Posting {
            key,
            marks: GramMarks { offsets, followers },
        });
    }
    Some(postings)
}

/// Ascending, distinct row keys as varints: the first key, then each difference from the one
/// before (a segment's list of its rows).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each distinct gram of `text` with its marks, the slow way.
    fn naive(text: &[u8]) -> Vec<(u32, GramMarks)> {
        let mut seen: Vec<(u32, GramMarks)> = Vec::new();
        for at in 0..text.len().saturating_sub(2) {
            let marks = GramMarks {
                offsets: 1 << (at % 8),
                followers: text.get(at + 3).map_or(0, |&b| follower_bit(b)),
            };
            let g = gram_at(text, at);
            match seen.iter_mut().find(|(s, _)| *s == g) {
                Some((_, m)) => *m = m.union(marks),
                None => seen.push((g, marks)),
            }
        }
        seen
    }

    #[test]
    fn distinct_grams_are_those_of_the_bytes_once_each_with_their_marks() {
        let mut set = GramSet::default();
        for text in [
            "abcabcabc",
            "zé€😀 zé€😀 ok",
            "\u{0}\u{0}\u{0}\u{0}",
            "ÿÿÿ",
            "the quick brown fox jumps over the lazy dog, the end",
        ] {
            let got: Vec<_> = set.distinct(text.as_bytes()).collect();
            assert_eq!(got, naive(text.as_bytes()), "{text}");
        }
        // Short rows have no grams, and leave none behind from the text before.
        assert_eq!(set.distinct(b"ab").count(), 0);
        assert_eq!(set.distinct(b"").count(), 0);
        let got: Vec<_> = set.distinct(b"abca").collect();
        assert_eq!(got, naive(b"abca"));
        assert_eq!(got[0].1.followers, follower_bit(b'a'));
        assert_eq!(
            got[1].1.followers, 0,
            "the last gram is followed by nothing"
        );
    }

    #[test]
    fn postings_round_trip_through_their_encoding() {
        let marks = |o: u8, f: u8| GramMarks {
            offsets: o,
            followers: f,
        };
        let cases: Vec<Vec<Posting>> = vec![
            vec![],
            vec![Posting {
                key: 0,
                marks: marks(1, 0),
            }],
            [5, 6, 7, 1_000, 1 << 40, i64::MAX]
                .iter()
                .enumerate()
                .map(|(i, &key)| Posting {
                    key,
                    marks: marks(1 << i, 0xff - i as u8),
                })
                .collect(),
        ];
        for postings in cases {
            assert_eq!(
                decode_postings(&encode_postings(&postings)).unwrap(),
                postings
            );
        }
        let one = |key| Posting {
            key,
            marks: marks(1, 2),
        };
        // Small gaps take three bytes each.
        assert_eq!(encode_postings(&[one(100), one(101), one(103)]).len(), 9);
        // Damage is noticed: cut short, a repeated key, no offset, a key past the range.
        let good = encode_postings(&[one(5), one(9)]);
        assert!(decode_postings(&good[..good.len() - 1]).is_none());
        assert!(decode_postings(&[0x80]).is_none());
        assert!(decode_postings(&encode_postings(&[one(5), one(5)])).is_none());
        assert!(decode_postings(&[5, 0, 7]).is_none());
        let mut past = encode_postings(&[one(i64::MAX)]);
        past.extend([1, 1, 0]);
        assert!(decode_postings(&past).is_none());
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
}
