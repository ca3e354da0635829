//! Folding per-person contributions into funnel state.
//!
//! All state is counts keyed by value (persons per depth, conversion times as multisets), with
//! entries dropped when their count returns to zero, so the state depends only on the multiset
//! of current contributions and medians survive retractions.

use std::cell::Cell;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

/// A multiset of integers with counts, for conversion times in ms.
#[derive(Debug, Clone, Default)]
pub struct Multiset {
    counts: BTreeMap<i64, i64>,
    len: i64,
    sum: i128,
    /// A position and how many values lie below it, left where the last [`Multiset::nth`]
    /// found its value. Conversion times are nearly all distinct, so finding the median from
    /// the smallest value walked every one of them on every render: most of the collector's
    /// 0.3 of a core at 50k events/s (perf, session 10). From here, a round's changes move it
    /// a few steps.
    cursor: Cell<Option<(i64, i64)>>,
}

impl PartialEq for Multiset {
    fn eq(&self, other: &Self) -> bool {
        (&self.counts, self.len, self.sum) == (&other.counts, other.len, other.sum)
    }
}

impl Eq for Multiset {}

impl Multiset {
    /// Adds `diff` copies of `value` (removes them when negative).
    pub fn add(&mut self, value: i64, diff: i64) {
        add_count(&mut self.counts, value, diff);
        self.len += diff;
        self.sum += i128::from(value) * i128::from(diff);
        if let Some((at, below)) = self.cursor.get_mut() {
            if value < *at {
                *below += diff;
            }
        }
    }

    /// Adds every element of `other`.
    pub fn merge(&mut self, other: &Multiset) {
        for (&value, &count) in &other.counts {
            self.add(value, count);
        }
    }

    /// How many values it holds.
    pub fn len(&self) -> i64 {
        self.len
    }

    /// The values with their counts, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.counts.iter().map(|(&v, &c)| (v, c))
    }

    /// The mean, if non-empty.
    pub fn mean(&self) -> Option<f64> {
        (self.len > 0).then(|| self.sum as f64 / self.len as f64)
    }

    /// The median (the mean of the two middle values for an even count), if non-empty.
    pub fn median(&self) -> Option<f64> {
        if self.len <= 0 {
            return None;
        }
        let lower = self.nth((self.len - 1) / 2)?;
        let upper = self.nth(self.len / 2)?;
        Some((lower as f64 + upper as f64) / 2.0)
    }

    /// The smallest value.
    pub fn min(&self) -> Option<i64> {
        self.counts.keys().next().copied()
    }

    /// The largest value.
    pub fn max(&self) -> Option<i64> {
        self.counts.keys().next_back().copied()
    }

    /// The value at 0-based rank `index`, walking from the cursor.
    fn nth(&self, index: i64) -> Option<i64> {
        let (mut at, mut below) = self.cursor.get().unwrap_or((i64::MIN, 0));
        // Left while the rank lies below the position...
        if below > index {
            for (&value, &count) in self.counts.range(..at).rev() {
                below -= count;
                at = value;
                if below <= index {
                    break;
                }
            }
        }
        // ...then right to the value whose copies span it.
        let mut found = None;
        for (&value, &count) in self.counts.range(at..) {
            at = value;
            if below + count > index {
                found = Some(value);
                break;
            }
            below += count;
        }
        self.cursor.set(Some((at, below)));
        found
    }
}

/// Steps state for one breakdown value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepsState {
    /// Persons per furthest step (exact depth).
    pub depths: BTreeMap<usize, i64>,
    /// Per step i ≥ 1 (index i-1): the non-zero conversion times into step i, ms.
    pub times: Vec<Multiset>,
}

impl StepsState {
    /// Folds one person: their depth and the times into each step they reached.
    pub fn add(&mut self, depth: usize, deltas: &[i64], diff: i64) {
        add_count(&mut self.depths, depth, diff);
        if self.times.len() < deltas.len() {
            self.times.resize_with(deltas.len(), Multiset::default);
        }
        for (slot, &delta) in self.times.iter_mut().zip(deltas) {
            if delta != 0 {
                slot.add(delta, diff);
            }
        }
    }

    /// Adds another value's state (for folding values into "Other").
    pub fn merge(&mut self, other: &StepsState) {
        for (&depth, &count) in &other.depths {
            add_count(&mut self.depths, depth, count);
        }
        if self.times.len() < other.times.len() {
            self.times.resize_with(other.times.len(), Multiset::default);
        }
        for (slot, times) in self.times.iter_mut().zip(&other.times) {
            slot.merge(times);
        }
    }

    /// Persons whose furthest step is at least `step`.
    pub fn reached(&self, step: usize) -> i64 {
        self.depths.range(step..).map(|(_, c)| c).sum()
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.depths.is_empty() && self.times.iter().all(|t| t.len() == 0)
    }
}

/// Adds `diff` to a count, dropping the key at zero.
pub fn add_count<K: Ord>(map: &mut BTreeMap<K, i64>, key: K, diff: i64) {
    match map.entry(key) {
        Entry::Occupied(mut e) => {
            *e.get_mut() += diff;
            if *e.get() == 0 {
                e.remove();
            }
        }
        Entry::Vacant(e) => {
            if diff != 0 {
                e.insert(diff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_survives_retraction() {
        let mut m = Multiset::default();
        for v in [1, 5, 9, 9] {
            m.add(v, 1);
        }
        assert_eq!(m.median(), Some(7.0));
        m.add(9, -1);
        assert_eq!(m.median(), Some(5.0));
        m.add(1, -1);
        m.add(5, -1);
        m.add(9, -1);
        assert_eq!(m, Multiset::default());
    }

    /// The median walks from where the last one was found; it must agree with a count from
    /// the smallest value whatever came and went in between.
    #[test]
    fn median_from_the_cursor_equals_one_counted_from_the_start() {
        let mut m = Multiset::default();
        let mut all: Vec<i64> = Vec::new();
        let mut seed = 7u64;
        for step in 0..3000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let value = (seed >> 33) as i64 % 500 - 100;
            if step % 3 == 2 && !all.is_empty() {
                let gone = all.swap_remove((seed >> 20) as usize % all.len());
                m.add(gone, -1);
            } else {
                all.push(value);
                m.add(value, 1);
            }
            all.sort_unstable();
            let expected = (!all.is_empty()).then(|| {
                let n = all.len();
                (all[(n - 1) / 2] as f64 + all[n / 2] as f64) / 2.0
            });
            assert_eq!(m.median(), expected, "after step {step}");
        }
    }
}
