//! The contribution layout, in one place for the person pass and the aggregator.
//!
//! One contribution per (person, breakdown value, cohort start), diff 1:
//!
//! `[key, start, w0, w1, ...]`
//!
//! - `key`: `-1` without a breakdown, `-2` for a missing breakdown value, otherwise the
//!   interned symbol of the value's text;
//! - `start`: the cohort's start interval, `0..totalIntervals`;
//! - `w0, w1, ...`: the offsets at which the person counts, as a bit set (bit `k % 64` of
//!   word `k / 64` is offset `k`, words are `u64` bits cast to `i64`); bit 0, the cohort
//!   itself, is always set. Cumulative mode is applied by the aggregator, so the bits are
//!   the actual returns.
//!
//! Why this layout rather than one contribution per (start, offset): a person active on most
//! days of a 7-day range has up to 7 cohorts with up to 7 offsets each, which is 7 small
//! tuples here against 28 there, and the gap grows with `totalIntervals`.

use quill_pipeline::graph::Sym;

/// Which breakdown bucket a contribution belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// The query has no breakdown.
    All,
    /// The breakdown property is missing (null).
    Null,
    /// The breakdown value's text, interned.
    Value(Sym),
}

/// Encodes one cohort membership.
pub fn encode(key: Key, start: usize, words: &[u64]) -> Vec<i64> {
    let key = match key {
        Key::All => -1,
        Key::Null => -2,
        Key::Value(sym) => i64::from(sym),
    };
    let mut out = Vec::with_capacity(2 + words.len());
    out.push(key);
    out.push(start as i64);
    out.extend(words.iter().map(|w| *w as i64));
    out
}

/// Decodes a contribution into its key, start and offset words; `None` if malformed.
pub fn decode(c: &[i64]) -> Option<(Key, usize, &[i64])> {
    let (&key, rest) = c.split_first()?;
    let (&start, words) = rest.split_first()?;
    let key = match key {
        -1 => Key::All,
        -2 => Key::Null,
        k => Key::Value(Sym::try_from(k).ok()?),
    };
    Some((key, usize::try_from(start).ok()?, words))
}

/// The offsets a contribution's words name, in increasing order.
pub fn offsets(words: &[i64]) -> impl Iterator<Item = usize> + '_ {
    words.iter().enumerate().flat_map(|(w, word)| {
        let word = *word as u64;
        (0..64usize)
            .filter(move |b| word & (1u64 << b) != 0)
            .map(move |b| w * 64 + b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for key in [Key::All, Key::Null, Key::Value(7)] {
            let words = [1u64 | 1 << 63, 1 << 2];
            let c = encode(key, 3, &words);
            let (k, s, w) = decode(&c).unwrap();
            assert_eq!((k, s), (key, 3));
            assert_eq!(offsets(w).collect::<Vec<_>>(), vec![0, 63, 66]);
        }
        assert!(decode(&[1]).is_none());
        assert!(decode(&[-3, 0]).is_none());
    }
}
