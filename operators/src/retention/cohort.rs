//! The per-person retention algorithm, free of query parsing and of event rows.
//!
//! Input: one person's events (or, with an event breakdown, the events carrying one breakdown
//! value), reduced to [`Mark`]s in time order, and the query's [`Grid`] of intervals.
//! Output: one [`Cohort`] per start interval the person belongs to, with the set of offsets at
//! which the person counts (offset 0, the cohort itself, is always in the set).

/// One event as the algorithm sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Event time, ms since the epoch.
    pub ts_ms: i64,
    /// The event matches the target entity, its property filters included.
    pub target: bool,
    /// The event has the target entity's event name, whatever its properties. Only
    /// `retention_first_ever_occurrence` reads it.
    pub target_name: bool,
    /// The event matches the returning entity, its property filters included.
    pub returning: bool,
}

/// How a person's cohorts (start intervals) are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CohortRule {
    /// Every interval of the range with a target event (`retention_recurring`).
    Recurring,
    /// The interval of the person's first target event that matches the target's property
    /// filters, over the whole history, if it falls in the range (`retention_first_time`).
    FirstMatching,
    /// The interval of the person's first-ever event with the target's name, over the whole
    /// history, and only when that very event (or one at the same instant) also matches the
    /// target's property filters (`retention_first_ever_occurrence`).
    FirstEver,
}

/// The query's intervals: `boundaries[i]..boundaries[i + 1]` is interval `i`, in ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    boundaries: Vec<i64>,
}

impl Grid {
    /// A grid from `n + 1` increasing boundaries (n intervals). Returns `None` when the
    /// boundaries are not strictly increasing or fewer than two.
    pub fn new(boundaries: Vec<i64>) -> Option<Self> {
        let increasing = boundaries.windows(2).all(|w| w[0] < w[1]);
        (boundaries.len() >= 2 && increasing).then_some(Self { boundaries })
    }

    /// The interval boundaries, increasing.
    pub fn boundaries(&self) -> &[i64] {
        &self.boundaries
    }

    /// How many intervals the grid has.
    pub fn len(&self) -> usize {
        self.boundaries.len() - 1
    }

    /// Whether the grid has no intervals (never, by construction).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The start of interval `i`, in ms.
    pub fn start(&self, i: usize) -> Option<i64> {
        (i < self.len()).then(|| self.boundaries[i])
    }

    /// The interval holding `ts_ms`, or `None` outside the range.
    pub fn index(&self, ts_ms: i64) -> Option<usize> {
        let first = *self.boundaries.first()?;
        let end = *self.boundaries.last()?;
        if ts_ms < first || ts_ms >= end {
            return None;
        }
        // The number of boundaries at or before ts, minus one, is the interval.
        Some(self.boundaries.partition_point(|b| *b <= ts_ms) - 1)
    }
}

/// The retention options that shape one person's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// How start intervals are chosen.
    pub cohort: CohortRule,
    /// A return interval counts only with at least this many returning events (≥ 1).
    pub minimum_occurrences: u32,
}

/// One cohort membership: the start interval and the offsets at which the person counts, as
/// a bit set (bit k of word k / 64 is offset k).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cohort {
    /// The start interval's index in the grid.
    pub start: usize,
    /// The offsets, bit k for offset k; bit 0 is always set.
    pub offsets: Vec<u64>,
}

/// How many u64 words hold the offsets of a grid of `n` intervals.
pub fn words_for(n: usize) -> usize {
    n.div_ceil(64).max(1)
}

/// Computes one person's cohorts. `marks` must be sorted by time.
pub fn cohorts(marks: &[Mark], grid: &Grid, rule: &Rule) -> Vec<Cohort> {
    let n = grid.len();
    let starts: Vec<usize> = match rule.cohort {
        CohortRule::Recurring => {
            let mut seen = vec![false; n];
            for m in marks.iter().filter(|m| m.target) {
                if let Some(i) = grid.index(m.ts_ms) {
                    seen[i] = true;
                }
            }
            (0..n).filter(|i| seen[*i]).collect()
        }
        CohortRule::FirstMatching => marks
            .iter()
            .find(|m| m.target)
            .and_then(|m| grid.index(m.ts_ms))
            .into_iter()
            .collect(),
        CohortRule::FirstEver => {
            let first = marks.iter().find(|m| m.target_name).map(|m| m.ts_ms);
            first
                .filter(|t| marks.iter().any(|m| m.ts_ms == *t && m.target))
                .and_then(|t| grid.index(t))
                .into_iter()
                .collect()
        }
    };
    if starts.is_empty() {
        return Vec::new();
    }
    let mut returns = vec![0u32; n];
    for m in marks.iter().filter(|m| m.returning) {
        if let Some(i) = grid.index(m.ts_ms) {
            returns[i] = returns[i].saturating_add(1);
        }
    }
    let qualifies: Vec<bool> = returns
        .iter()
        .map(|c| *c >= rule.minimum_occurrences.max(1))
        .collect();
    from_intervals(starts, &qualifies)
}

/// The cohorts of a person who starts in the intervals `starts` and returns (enough times) in
/// the intervals where `qualifies` holds: the second half of [`cohorts`], for callers that
/// know the intervals without the marks.
pub fn from_intervals(starts: impl IntoIterator<Item = usize>, qualifies: &[bool]) -> Vec<Cohort> {
    let n = qualifies.len();
    starts
        .into_iter()
        .filter(|start| *start < n)
        .map(|start| {
            let mut offsets = vec![0u64; words_for(n)];
            offsets[0] = 1;
            // A return in the cohort's own interval is not a return: offsets start at 1.
            for k in 1..n - start {
                if qualifies[start + k] {
                    offsets[k / 64] |= 1u64 << (k % 64);
                }
            }
            Cohort { start, offsets }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(ts_ms: i64, target: bool, returning: bool) -> Mark {
        Mark {
            ts_ms,
            target,
            target_name: target,
            returning,
        }
    }

    fn grid() -> Grid {
        Grid::new((0..=5).map(|i| i * 10).collect()).unwrap()
    }

    fn set(c: &Cohort) -> Vec<usize> {
        let words: Vec<i64> = c.offsets.iter().map(|w| *w as i64).collect();
        crate::retention::layout::offsets(&words).collect()
    }

    fn offsets(c: &[Cohort]) -> Vec<(usize, Vec<usize>)> {
        c.iter().map(|c| (c.start, set(c))).collect()
    }

    const ONCE: Rule = Rule {
        cohort: CohortRule::Recurring,
        minimum_occurrences: 1,
    };

    #[test]
    fn grid_indexes_half_open_intervals() {
        let g = grid();
        assert_eq!(g.index(-1), None);
        assert_eq!(g.index(0), Some(0));
        assert_eq!(g.index(9), Some(0));
        assert_eq!(g.index(10), Some(1));
        assert_eq!(g.index(49), Some(4));
        assert_eq!(g.index(50), None);
        assert!(Grid::new(vec![0]).is_none());
        assert!(Grid::new(vec![0, 0]).is_none());
    }

    #[test]
    fn recurring_counts_every_target_interval_and_later_returns() {
        let marks = [
            mark(1, true, true),
            mark(2, false, true),
            mark(21, true, false),
            mark(35, false, true),
        ];
        assert_eq!(
            offsets(&cohorts(&marks, &grid(), &ONCE)),
            vec![(0, vec![0, 3]), (2, vec![0, 1])]
        );
    }

    #[test]
    fn minimum_occurrences_needs_that_many_returns_in_the_interval() {
        let marks = [
            mark(1, true, false),
            mark(11, false, true),
            mark(21, false, true),
            mark(22, false, true),
        ];
        let rule = Rule {
            minimum_occurrences: 2,
            ..ONCE
        };
        assert_eq!(
            offsets(&cohorts(&marks, &grid(), &rule)),
            vec![(0, vec![0, 2])]
        );
    }

    #[test]
    fn first_time_uses_the_first_target_even_before_the_range() {
        let rule = Rule {
            cohort: CohortRule::FirstMatching,
            ..ONCE
        };
        let before = [
            mark(-5, true, false),
            mark(1, true, false),
            mark(12, false, true),
        ];
        assert!(cohorts(&before, &grid(), &rule).is_empty());
        let inside = [
            mark(1, false, true),
            mark(12, true, false),
            mark(15, true, false),
            mark(31, false, true),
        ];
        assert_eq!(
            offsets(&cohorts(&inside, &grid(), &rule)),
            vec![(1, vec![0, 2])]
        );
    }

    #[test]
    fn first_ever_requires_the_first_named_event_to_match() {
        let rule = Rule {
            cohort: CohortRule::FirstEver,
            ..ONCE
        };
        let unmatched_first = Mark {
            ts_ms: 1,
            target: false,
            target_name: true,
            returning: false,
        };
        let marks = [
            unmatched_first,
            mark(12, true, false),
            mark(25, false, true),
        ];
        assert!(cohorts(&marks, &grid(), &rule).is_empty());
        // Without the unmatched first occurrence, the matching one is the first ever.
        assert_eq!(
            offsets(&cohorts(&marks[1..], &grid(), &rule)),
            vec![(1, vec![0, 1])]
        );
    }

    #[test]
    fn offsets_beyond_the_grid_spill_into_the_next_word() {
        let g = Grid::new((0..=70).collect()).unwrap();
        let marks = [mark(0, true, false), mark(65, false, true)];
        let c = cohorts(&marks, &g, &ONCE);
        assert_eq!(c[0].offsets.len(), 2);
        assert_eq!(set(&c[0]), vec![0, 65]);
    }
}
