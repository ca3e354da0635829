//! Folding per-person contributions into funnel state.
//!
//! All state is counts keyed by value (persons per depth, conversion times as multisets), with
//! entries dropped when their count returns to zero, so the state depends only on the multiset
//! of current contributions and medians survive retractions.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

/// A multiset of integers with counts, for conversion times in ms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Multiset {
    counts: BTreeMap<i64, i64>,
    len: i64,
    sum: i128,
}

impl Multiset {
    /// Adds `diff` copies of `value` (removes them when negative).
    pub fn add(&mut self, value: i64, diff: i64) {
        add_count(&mut self.counts, value, diff);
        self.len += diff;
        self.sum += i128::from(value) * i128::from(diff);
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

    fn nth(&self, index: i64) -> Option<i64> {
        let mut seen = 0;
        for (&value, &count) in &self.counts {
            seen += count;
            if seen > index {
                return Some(value);
            }
        }
        None
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
}
