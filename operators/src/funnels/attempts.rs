//! The per-person funnel algorithms over a person's events already reduced to step bitmasks.
//!
//! An *attempt* starts at a step-0 event (ordered and strict) or at any step event (unordered)
//! and collects one event per step while it stays within the conversion window, which is
//! measured from the attempt's first event (inclusive bound). Events are in `(ts, offset)`
//! order; positions index that order and make it total, so same-timestamp events still have a
//! before and after.
//!
//! - **Ordered:** from the event at step k, step k+1 is the earliest later event matching it.
//! - **Strict:** after step k, events that match step k again are passed over; the first other
//!   event must match step k+1 or the attempt ends there.
//! - **Unordered:** from the anchor event, each step takes its earliest matching event at or
//!   after the anchor; the step times are then sorted, so one event may fill several steps.
//!
//! Every chain is computed in O(steps) per attempt from "next matching position" tables, so a
//! person costs O(events × steps) however many attempts overlap.
//!
//! **Exclusions:** exclusion `(from, to)` disqualifies an attempt that reached step `from` when
//! an exclusion event lies after its step-`from` event and before its step-`to` event (or, if
//! the attempt never reached `to`, anywhere up to the end of its window).
//!
//! **Winner:** the person's depth is the deepest attempt's. Among the attempts of that depth,
//! the one reaching it first (ties: the later start, whose timings are the shorter) wins, unless
//! it is excluded, in which case the next one does; if all are excluded the person is out.

/// One event as the funnel algorithms see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunnelEvent {
    /// Event time, ms since the epoch.
    pub ts: i64,
    /// Bit `s` set when the event matches step `s`.
    pub steps: u64,
    /// Bit `j` set when the event matches exclusion `j`.
    pub exclusions: u64,
}

/// How steps must follow each other (`funnelOrderType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Steps in order, other events in between allowed.
    Ordered,
    /// Steps in order, nothing else in between.
    Strict,
    /// Steps in any order.
    Unordered,
}

/// An exclusion's step range, 0-indexed, `from < to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExclusionRange {
    /// The step after which exclusion events count.
    pub from: usize,
    /// The step before which exclusion events count.
    pub to: usize,
}

/// The funnel's shape: what the algorithms need besides the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// How many steps (1 to 64).
    pub steps: usize,
    /// The conversion window in ms.
    pub window_ms: i64,
    /// Ordered, strict or unordered.
    pub order: Order,
    /// Exclusion `j` uses bit `j` of [`FunnelEvent::exclusions`].
    pub exclusions: Vec<ExclusionRange>,
}

/// One attempt through the funnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Position of the first event.
    pub start: usize,
    /// Positions of the events filling steps 0..=depth (sorted for unordered funnels).
    pub positions: Vec<usize>,
    /// Whether an exclusion disqualifies it.
    pub excluded: bool,
}

impl Attempt {
    /// The furthest step reached, 0-indexed.
    pub fn depth(&self) -> usize {
        self.positions.len() - 1
    }

    /// Position of the event that reached the furthest step.
    pub fn reached_at(&self) -> usize {
        self.positions[self.positions.len() - 1]
    }

    /// Time of each step, ms.
    pub fn times(&self, events: &[FunnelEvent]) -> Vec<i64> {
        self.positions.iter().map(|&p| events[p].ts).collect()
    }
}

/// `table[p]` is the first position `q >= p` with `pred(q)`, or `events.len()`.
fn next_table(n: usize, pred: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut table = vec![n; n + 1];
    for p in (0..n).rev() {
        table[p] = if pred(p) { p } else { table[p + 1] };
    }
    table
}

fn matches(event: &FunnelEvent, step: usize) -> bool {
    event.steps & (1u64 << step) != 0
}

/// Every attempt of one person, in start order.
pub fn attempts(events: &[FunnelEvent], shape: &Shape) -> Vec<Attempt> {
    let mut out = Vec::new();
    visit(events, shape, |start, positions, excluded| {
        out.push(Attempt {
            start,
            positions: positions.to_vec(),
            excluded,
        })
    });
    out
}

/// The attempt that decides the person's result (see the module docs), without keeping the
/// others: a busy person has an attempt per step-0 event, and this runs on every replay.
pub fn best_attempt(events: &[FunnelEvent], shape: &Shape) -> Option<Attempt> {
    let mut depth = None;
    let mut best: Option<Attempt> = None;
    visit(events, shape, |start, positions, excluded| {
        let d = positions.len() - 1;
        if depth.is_some_and(|max| d < max) {
            return;
        }
        if depth.is_none_or(|max| d > max) {
            depth = Some(d);
            best = None;
        }
        if excluded {
            return;
        }
        let reached_at = positions[d];
        let better = best.as_ref().is_none_or(|b| {
            (reached_at, std::cmp::Reverse(start)) < (b.reached_at(), std::cmp::Reverse(b.start))
        });
        if better {
            let b = best.get_or_insert_with(|| Attempt {
                start,
                positions: Vec::with_capacity(positions.len()),
                excluded,
            });
            b.start = start;
            b.positions.clear();
            b.positions.extend_from_slice(positions);
        }
    });
    best
}

/// Calls `f(start, positions, excluded)` for every attempt, in start order, reusing one
/// positions buffer.
fn visit(events: &[FunnelEvent], shape: &Shape, mut f: impl FnMut(usize, &[usize], bool)) {
    let n = events.len();
    let steps = shape.steps.clamp(1, 64);
    let within =
        |start: usize, q: usize| q < n && events[q].ts - events[start].ts <= shape.window_ms;
    let next_match: Vec<Vec<usize>> = (0..steps)
        .map(|s| next_table(n, |p| matches(&events[p], s)))
        .collect();
    let next_excl: Vec<Vec<usize>> = (0..shape.exclusions.len().min(64))
        .map(|j| next_table(n, |p| events[p].exclusions & (1u64 << j) != 0))
        .collect();
    let excluded = |positions: &[usize]| {
        let start = positions[0];
        let depth = positions.len() - 1;
        shape
            .exclusions
            .iter()
            .zip(&next_excl)
            .any(|(range, table)| {
                if depth < range.from {
                    return false;
                }
                let x = table[positions[range.from] + 1];
                if depth >= range.to {
                    x < positions[range.to]
                } else {
                    within(start, x)
                }
            })
    };
    let mut positions: Vec<usize> = Vec::with_capacity(steps);
    let mut emit = |positions: &[usize]| f(positions[0], positions, excluded(positions));
    match shape.order {
        Order::Ordered => {
            for start in (0..n).filter(|&p| matches(&events[p], 0)) {
                positions.clear();
                positions.push(start);
                for table in &next_match[1..] {
                    let q = table[positions[positions.len() - 1] + 1];
                    if !within(start, q) {
                        break;
                    }
                    positions.push(q);
                }
                emit(&positions);
            }
        }
        Order::Strict => {
            // next_break[k][p]: the first event at or after p that is not a bare repeat of step
            // k; it has to be step k+1 for an attempt at step k to go on.
            let next_break: Vec<Vec<usize>> = (0..steps.saturating_sub(1))
                .map(|k| next_table(n, |p| !matches(&events[p], k) || matches(&events[p], k + 1)))
                .collect();
            for start in (0..n).filter(|&p| matches(&events[p], 0)) {
                positions.clear();
                positions.push(start);
                for (k, table) in next_break.iter().enumerate() {
                    let q = table[positions[positions.len() - 1] + 1];
                    if !within(start, q) || !matches(&events[q], k + 1) {
                        break;
                    }
                    positions.push(q);
                }
                emit(&positions);
            }
        }
        Order::Unordered => {
            for start in (0..n).filter(|&p| events[p].steps != 0) {
                positions.clear();
                positions.extend(
                    next_match
                        .iter()
                        .map(|table| table[start])
                        .filter(|&q| within(start, q)),
                );
                positions.sort_unstable();
                emit(&positions);
            }
        }
    }
}

/// The attempt that decides the person's result (see the module docs), if any.
pub fn winner<'a>(attempts: impl IntoIterator<Item = &'a Attempt>) -> Option<&'a Attempt> {
    let attempts: Vec<&Attempt> = attempts.into_iter().collect();
    let depth = attempts.iter().map(|a| a.depth()).max()?;
    attempts
        .into_iter()
        .filter(|a| a.depth() == depth && !a.excluded)
        .min_by_key(|a| (a.reached_at(), std::cmp::Reverse(a.start)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: i64, steps: u64) -> FunnelEvent {
        FunnelEvent {
            ts,
            steps,
            exclusions: 0,
        }
    }

    fn shape(steps: usize, order: Order) -> Shape {
        Shape {
            steps,
            window_ms: 100,
            order,
            exclusions: vec![],
        }
    }

    fn best(events: &[FunnelEvent], shape: &Shape) -> Option<(usize, Vec<i64>)> {
        let all = attempts(events, shape);
        winner(&all).map(|a| (a.depth(), a.times(events)))
    }

    proptest::proptest! {
        /// The streaming winner is the winner of every attempt collected.
        #[test]
        fn best_attempt_is_the_winner_of_all_attempts(
            raw in proptest::collection::vec((0..60i64, 0..8u64, 0..2u64), 0..40),
            steps in 1..4usize,
            order in 0..3usize,
            excluding in proptest::bool::ANY,
        ) {
            let mut ts = 0;
            let events: Vec<FunnelEvent> = raw
                .iter()
                .map(|(gap, bits, exclusions)| {
                    ts += gap;
                    // Events only ever carry bits of the funnel's steps.
                    FunnelEvent { ts, steps: bits & ((1 << steps) - 1), exclusions: *exclusions }
                })
                .collect();
            let mut s = shape(steps, [Order::Ordered, Order::Strict, Order::Unordered][order]);
            if excluding && steps > 1 {
                s.exclusions = vec![ExclusionRange { from: 0, to: steps - 1 }];
            }
            let all = attempts(&events, &s);
            let best = best_attempt(&events, &s);
            proptest::prop_assert_eq!(best.as_ref(), winner(&all));
        }
    }

    #[test]
    fn ordered_takes_the_latest_start_for_timings() {
        let events = [ev(0, 1), ev(10, 1), ev(20, 2), ev(30, 4)];
        assert_eq!(
            best(&events, &shape(3, Order::Ordered)),
            Some((2, vec![10, 20, 30]))
        );
    }

    #[test]
    fn ordered_respects_the_window_from_step_zero() {
        let events = [ev(0, 1), ev(50, 2), ev(101, 4)];
        assert_eq!(
            best(&events, &shape(3, Order::Ordered)),
            Some((1, vec![0, 50]))
        );
    }

    #[test]
    fn strict_passes_over_repeats_but_not_other_events() {
        let events = [ev(0, 1), ev(1, 2), ev(2, 2), ev(3, 4)];
        assert_eq!(
            best(&events, &shape(3, Order::Strict)).map(|b| b.0),
            Some(2)
        );
        let events = [ev(0, 1), ev(1, 2), ev(2, 0), ev(3, 4)];
        assert_eq!(
            best(&events, &shape(3, Order::Strict)).map(|b| b.0),
            Some(1)
        );
    }

    #[test]
    fn unordered_counts_distinct_steps_in_the_window() {
        let events = [ev(0, 4), ev(5, 1), ev(7, 2)];
        assert_eq!(
            best(&events, &shape(3, Order::Unordered)),
            Some((2, vec![0, 5, 7]))
        );
    }

    #[test]
    fn exclusion_between_steps_drops_the_person() {
        let mut s = shape(2, Order::Ordered);
        s.exclusions = vec![ExclusionRange { from: 0, to: 1 }];
        let events = [
            ev(0, 1),
            FunnelEvent {
                ts: 5,
                steps: 0,
                exclusions: 1,
            },
            ev(10, 2),
        ];
        assert_eq!(best(&events, &s), None);
        // A later clean attempt of the same depth wins instead.
        let mut later = events.to_vec();
        later.extend([ev(20, 1), ev(30, 2)]);
        assert_eq!(best(&later, &s), Some((1, vec![20, 30])));
    }
}
