//! The needle's side of the index: which of its grams a query looks up, and which rows their
//! postings leave as candidates.
//!
//! A row holding the needle at byte `p` holds each looked-up gram at `p + offset`, followed by
//! the needle's next byte. So for a candidate row, every gram's offset mask turned back by the
//! gram's offset in the needle must share a bit (a possible `p mod 8`), and every gram's
//! follower mask must hold the needle's byte after it. Rows passing are checked against their
//! text; the masks only spare reading the rows that cannot match.

use rustc_hash::FxHashMap;

use super::grams::{GRAM_BYTES, GramMarks, Posting, follower_bit, gram_at};

/// Most grams of a needle looked up. Every gram looked up reads its posting list in every
/// segment, while a dozen grams spread over the needle, each with its neighbour checked through
/// the follower mask, already leave few candidates, and the candidates are checked against the
/// text anyway: more grams cost reads and save little.
pub const NEEDLE_GRAMS_MAX: usize = 12;

/// A needle of at least [`GRAM_BYTES`] bytes, ready to pick candidates from postings.
pub struct Needle<'a> {
    bytes: &'a [u8],
    /// The grams looked up, ascending, each with its offsets in the needle.
    grams: Vec<(u32, Vec<usize>)>,
}

impl<'a> Needle<'a> {
    /// The grams of `needle` to look up: every gram if it has at most [`NEEDLE_GRAMS_MAX`],
    /// else that many spread evenly from the first to the last; none for a needle shorter than
    /// a gram.
    pub fn new(needle: &'a [u8]) -> Needle<'a> {
        let count = (needle.len() + 1).saturating_sub(GRAM_BYTES);
        let starts: Vec<usize> = if count <= NEEDLE_GRAMS_MAX {
            (0..count).collect()
        } else {
            (0..NEEDLE_GRAMS_MAX)
                .map(|i| i * (count - 1) / (NEEDLE_GRAMS_MAX - 1))
                .collect()
        };
        let mut grams: Vec<(u32, Vec<usize>)> = Vec::new();
        for at in starts {
            let gram = gram_at(needle, at);
            match grams.iter_mut().find(|(g, _)| *g == gram) {
                Some((_, offsets)) => offsets.push(at),
                None => grams.push((gram, vec![at])),
            }
        }
        grams.sort_unstable_by_key(|&(gram, _)| gram);
        Needle {
            bytes: needle,
            grams,
        }
    }

    /// The distinct grams to look up, ascending.
    pub fn grams(&self) -> Vec<u32> {
        self.grams.iter().map(|&(gram, _)| gram).collect()
    }

    /// The keys (ascending) of the rows whose postings in `lists` (one segment's list of each
    /// gram, ascending by key) fit the needle: every gram there, placed and followed as in the
    /// needle. Empty if a gram has no list, or the needle has no grams.
    pub fn candidates(&self, lists: &FxHashMap<u32, Vec<Posting>>) -> Vec<i64> {
        let mut ordered = Vec::with_capacity(self.grams.len());
        for (gram, offsets) in &self.grams {
            match lists.get(gram) {
                Some(list) => ordered.push((list.as_slice(), offsets.as_slice())),
                None => return Vec::new(),
            }
        }
        ordered.sort_by_key(|(list, _)| list.len());
        let mut ordered = ordered.into_iter();
        let Some((shortest, offsets)) = ordered.next() else {
            return Vec::new();
        };
        // Each candidate with the starts (mod 8) its grams so far allow.
        let mut alive: Vec<(i64, u8)> = shortest
            .iter()
            .filter_map(|p| Some((p.key, self.starts(p.marks, offsets, u8::MAX)?)))
            .collect();
        for (list, offsets) in ordered {
            let mut rest = list;
            alive.retain_mut(|(key, starts)| {
                // Both are ascending: look from where the previous key was.
                rest = &rest[skip_to(rest, *key)..];
                match rest.first() {
                    Some(p) if p.key == *key => self
                        .starts(p.marks, offsets, *starts)
                        .map(|s| *starts = s)
                        .is_some(),
                    _ => false,
                }
            });
            if alive.is_empty() {
                break;
            }
        }
        alive.into_iter().map(|(key, _)| key).collect()
    }

    /// Of `starts` (bit `i`: the needle may start at an offset `≡ i (mod 8)`), those a gram
    /// with `marks` at `offsets` in the needle allows; `None` if none, or if the gram is never
    /// followed by the needle's next byte.
    fn starts(&self, marks: GramMarks, offsets: &[usize], mut starts: u8) -> Option<u8> {
        for &at in offsets {
            starts &= marks.offsets.rotate_right((at % 8) as u32);
            if let Some(&next) = self.bytes.get(at + GRAM_BYTES)
                && marks.followers & follower_bit(next) == 0
            {
                return None;
            }
        }
        (starts != 0).then_some(starts)
    }
}

/// The index of the first posting in `postings` (ascending) whose key is at least `key`,
/// found by galloping from the start: lists of common grams hold nearly every row, so the
/// next key is usually a step or two away, and a binary search over the rest of the list
/// would cost its logarithm every time.
fn skip_to(postings: &[Posting], key: i64) -> usize {
    if postings.first().is_none_or(|p| p.key >= key) {
        return 0;
    }
    // postings[low] < key; the answer is past `low` and at most `high`.
    let mut low = 0;
    let mut step = 1;
    while low + step < postings.len() && postings[low + step].key < key {
        low += step;
        step *= 2;
    }
    let high = (low + step).min(postings.len());
    low + 1 + postings[low + 1..high].partition_point(|p| p.key < key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::grams::GramSet;

    /// One segment's lists for rows `(key, text)`, as the index stores them.
    fn lists(rows: &[(i64, &str)]) -> FxHashMap<u32, Vec<Posting>> {
        let mut set = GramSet::default();
        let mut lists: FxHashMap<u32, Vec<Posting>> = FxHashMap::default();
        for &(key, text) in rows {
            for (gram, marks) in set.distinct(text.as_bytes()) {
                lists.entry(gram).or_default().push(Posting { key, marks });
            }
        }
        lists
    }

    fn candidates(rows: &[(i64, &str)], needle: &str) -> Vec<i64> {
        Needle::new(needle.as_bytes()).candidates(&lists(rows))
    }

    #[test]
    fn every_row_holding_the_needle_is_a_candidate_wherever_it_is() {
        // The needle at each offset mod 8, at the start and end of rows, and more than once.
        let needle = "root@web-07";
        let rows: Vec<(i64, String)> = (0..24)
            .map(|i| {
                let pad = "x".repeat(i % 9);
                let text = match i % 3 {
                    0 => format!("{pad}{needle}"),
                    1 => format!("{needle}{pad} and {pad}{needle}!"),
                    _ => format!("{pad}# {needle}: ok"),
                };
                (i as i64, text)
            })
            .collect();
        let borrowed: Vec<(i64, &str)> = rows.iter().map(|(k, t)| (*k, t.as_str())).collect();
        assert_eq!(candidates(&borrowed, needle), (0..24).collect::<Vec<i64>>());
        for needle in ["é€😀", "abcabcabc", "aaaa", &"x1y2z3".repeat(33)] {
            let text = format!("é before {needle} after");
            assert_eq!(candidates(&[(7, &text)], needle), vec![7], "{needle}");
        }
    }

    #[test]
    fn rows_holding_each_part_but_not_the_needle_are_left_out() {
        let rows = [
            // Every part of the needle, but other hosts and dates.
            (
                1,
                "root@web-01:~# ls\r\n2026-03-07T10:00:00Z root@web-03 cron\r\n",
            ),
            // The grams in the wrong places.
            (2, "web-07 root@ 07@web-0 t@web-"),
            (3, "and here it is: root@web-07 # ls"),
            // Only some of the grams.
            (4, "root@db-07"),
        ];
        assert_eq!(candidates(&rows, "root@web-07"), vec![3]);
        assert_eq!(candidates(&rows, "web-0"), vec![1, 2, 3]);
        assert!(candidates(&rows, "absent").is_empty());
    }

    #[test]
    fn skipping_finds_the_first_posting_at_or_past_a_key() {
        let postings: Vec<Posting> = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89]
            .iter()
            .map(|&key| Posting {
                key,
                marks: GramMarks::default(),
            })
            .collect();
        for key in -1..100 {
            let expected = postings.partition_point(|p| p.key < key);
            assert_eq!(skip_to(&postings, key), expected, "{key}");
            for start in 0..postings.len() {
                let rest = &postings[start..];
                assert_eq!(
                    skip_to(rest, key),
                    rest.partition_point(|p| p.key < key),
                    "{key} from {start}"
                );
            }
        }
        assert_eq!(skip_to(&[], 5), 0);
    }

    #[test]
    fn looked_up_grams_are_all_of_a_short_needle_and_spread_over_a_long_one() {
        assert_eq!(Needle::new(b"root@web-07").grams().len(), 9);
        assert!(Needle::new(b"ab").grams().is_empty());
        assert!(Needle::new("é".as_bytes()).grams().is_empty());
        // A gram at several offsets is looked up once.
        assert_eq!(Needle::new(b"abcabc").grams().len(), 3);
        let long: Vec<u8> = (0..200u8).collect();
        let needle = Needle::new(&long);
        assert_eq!(needle.grams.len(), NEEDLE_GRAMS_MAX);
        assert_eq!(needle.grams.first().map(|g| g.1[0]), Some(0));
        assert!(needle.grams.iter().any(|g| g.1 == [197]));
    }
}
