//! The trends aggregator: folds contributions into per-cell multisets and renders PostHog's
//! trends `results`.
//!
//! Rendering, per series: each `(bucket, breakdown)` cell is folded with the series' math into
//! a number; breakdown values are ranked by their total over the range (the aggregated value
//! on total-value displays), the first `breakdown_limit` are kept and the rest are summed into
//! Other. Results list kept values in rank order, then null, then Other. With formulas, only
//! the formulas' results are returned, one per breakdown value seen in any series.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use quill_pipeline::graph::packed::{Packer, Unpacker};
use quill_pipeline::graph::Aggregator;
use serde_json::{json, Map, Value};

use crate::query::breakdown::{rank, BREAKDOWN_NULL, BREAKDOWN_OTHER};
use crate::query::Bounds;

use super::config::{Formula, TrendsConfig};

/// Folds trends contributions (layout in the module above).
pub struct TrendsAggregator {
    config: Arc<TrendsConfig>,
    /// `(series, bucket_s, breakdown)` → value → multiplicity.
    cells: HashMap<(i64, i64, i64), BTreeMap<i64, i64>>,
    /// Each cell's folded number, as the last render computed it; a change to the cell drops
    /// it. A render follows every round, and without this it folded every cell again: a sum
    /// or quantile walks every distinct value of its bucket, and a stream touches one bucket.
    folded: RefCell<HashMap<(i64, i64, i64), f64>>,
    /// Weekly/monthly active on trailing windows: `(series, breakdown)` → person → the buckets
    /// (seconds) the person was active in, with multiplicities, packed ([`pack_points`]): there
    /// is one entry per active person, so a map of maps here cost more than their events.
    active: HashMap<(i64, i64), HashMap<i64, PackedPoints>>,
    /// Reused while one person's buckets are unpacked.
    points: Vec<(i64, i64)>,
    packer: Packer,
}

/// A person's active buckets as [`pack_points`] writes them.
type PackedPoints = Box<[u8]>;

/// One rendered line: a series (or formula) for one breakdown value.
struct Line {
    /// The breakdown value's text; `None` without a breakdown.
    breakdown: Option<String>,
    /// One number per bucket (one number in all on total-value displays).
    data: Vec<f64>,
}

impl TrendsAggregator {
    /// An empty aggregator for a query.
    pub fn new(config: Arc<TrendsConfig>) -> Self {
        TrendsAggregator {
            config,
            cells: HashMap::new(),
            folded: RefCell::default(),
            active: HashMap::new(),
            points: Vec::new(),
            packer: Packer::default(),
        }
    }

    /// Adds `diff` to a cell's value multiplicity.
    fn add(&mut self, key: (i64, i64, i64), value: i64, diff: i64) {
        self.folded.get_mut().remove(&key);
        let values = self.cells.entry(key).or_default();
        let count = values.entry(value).or_insert(0);
        *count += diff;
        if *count == 0 {
            values.remove(&value);
        }
        if values.is_empty() {
            self.cells.remove(&key);
        }
    }

    /// A person's active bucket appears or disappears: every bucket whose trailing window holds
    /// it gains or loses the person, unless another of their active buckets already covers it.
    fn apply_active(
        &mut self,
        days: i64,
        series: i64,
        point_s: i64,
        breakdown: i64,
        person: i64,
        diff: i64,
    ) {
        let mut points = std::mem::take(&mut self.points);
        points.clear();
        let persons = self.active.entry((series, breakdown)).or_default();
        if let Some(packed) = persons.get(&person) {
            unpack_points(packed, &mut points);
        }
        let (was, is) = match points.binary_search_by_key(&point_s, |(p, _)| *p) {
            Ok(i) => {
                let old = points[i].1;
                points[i].1 += diff;
                let new = points[i].1;
                if new == 0 {
                    points.remove(i);
                }
                (old > 0, new > 0)
            }
            Err(i) => {
                if diff != 0 {
                    points.insert(i, (point_s, diff));
                }
                (false, diff > 0)
            }
        };
        if points.is_empty() {
            persons.remove(&person);
            if persons.is_empty() {
                self.active.remove(&(series, breakdown));
            }
        } else {
            persons.insert(person, pack_points(&points, &mut self.packer));
        }
        if was != is {
            let range = &self.config.range;
            let interval = range.interval;
            let mut changed = Vec::new();
            for bucket in super::window_buckets(point_s * 1000, days, range) {
                // The window of `bucket` holds the active buckets from `first` through `bucket`.
                let first = (interval.add(bucket, 1) - days * super::DAY_MS) / 1000;
                let from = points.partition_point(|(p, _)| *p < first);
                let covered = points[from..]
                    .iter()
                    .take_while(|(p, _)| *p <= bucket / 1000)
                    .any(|(p, c)| *p != point_s && *c > 0);
                if !covered {
                    changed.push(bucket / 1000);
                }
            }
            let sign = if is { 1 } else { -1 };
            for bucket in changed {
                self.add((series, bucket, breakdown), 0, sign);
            }
        }
        self.points = points;
    }

    /// The bounds with `all` resolved to the earliest bucket holding data.
    fn bounds(&self) -> Bounds {
        let earliest = self.cells.keys().map(|(_, b, _)| b * 1000).min();
        self.config.range.bounds(earliest)
    }

    /// The lines of series `index`, breakdown values ranked and folded.
    fn series_lines(&self, index: usize, buckets: &HashMap<i64, usize>, width: usize) -> Vec<Line> {
        let math = &self.config.series[index].math;
        let mut by_value: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        let mut folded = self.folded.borrow_mut();
        for (key, values) in &self.cells {
            let (series, bucket, breakdown) = key;
            if *series != index as i64 {
                continue;
            }
            let Some(slot) = buckets.get(bucket) else {
                continue;
            };
            by_value
                .entry(*breakdown)
                .or_insert_with(|| vec![0.0; width])[*slot] =
                *folded.entry(*key).or_insert_with(|| math.fold(values));
        }
        let Some(breakdown) = &self.config.breakdown else {
            let data = by_value.remove(&-1).unwrap_or_else(|| vec![0.0; width]);
            return vec![Line {
                breakdown: None,
                data,
            }];
        };
        let lines: BTreeMap<String, Vec<f64>> = by_value
            .into_iter()
            .map(|(sym, data)| (breakdown.text((sym >= 0).then_some(sym as u32)), data))
            .collect();
        let totals: Vec<(String, f64)> = lines
            .iter()
            .map(|(text, data)| (text.clone(), data.iter().sum()))
            .collect();
        let (kept, folded) = rank(&totals, breakdown.limit);
        let (nulls, mut kept): (Vec<String>, Vec<String>) =
            kept.into_iter().partition(|t| t == BREAKDOWN_NULL);
        kept.extend(nulls);
        let mut out: Vec<Line> = kept
            .into_iter()
            .map(|text| Line {
                data: lines.get(&text).cloned().unwrap_or_default(),
                breakdown: Some(text),
            })
            .collect();
        if !folded.is_empty() {
            let mut data = vec![0.0; width];
            for text in &folded {
                for (sum, v) in data.iter_mut().zip(lines.get(text).into_iter().flatten()) {
                    *sum += v;
                }
            }
            out.push(Line {
                breakdown: Some(BREAKDOWN_OTHER.to_string()),
                data,
            });
        }
        out
    }

    /// The lines of a formula: per breakdown value seen in any series (in order of first
    /// appearance), the formula over the series' data (zeros where a series lacks the value).
    fn formula_lines(&self, formula: &Formula, series: &[Vec<Line>], width: usize) -> Vec<Line> {
        let mut order: Vec<Option<String>> = Vec::new();
        for line in series.iter().flatten() {
            if !order.contains(&line.breakdown) {
                order.push(line.breakdown.clone());
            }
        }
        order
            .into_iter()
            .map(|breakdown| {
                let columns: Vec<Option<&Vec<f64>>> = series
                    .iter()
                    .map(|lines| {
                        lines
                            .iter()
                            .find(|l| l.breakdown == breakdown)
                            .map(|l| &l.data)
                    })
                    .collect();
                let data = (0..width)
                    .map(|i| {
                        let values: Vec<f64> = columns
                            .iter()
                            .map(|c| c.and_then(|d| d.get(i)).copied().unwrap_or(0.0))
                            .collect();
                        formula.expr.eval(&values)
                    })
                    .collect();
                Line { breakdown, data }
            })
            .collect()
    }

    /// A line as PostHog's result object.
    fn render_line(&self, line: &Line, mut head: Map<String, Value>, axis: &Axis) -> Value {
        if self.config.total_value {
            head.insert("data".into(), json!([]));
            head.insert("days".into(), json!([]));
            head.insert("count".into(), json!(0));
            head.insert(
                "aggregated_value".into(),
                number(line.data.first().copied().unwrap_or(0.0)),
            );
        } else {
            head.insert(
                "data".into(),
                Value::Array(line.data.iter().map(|v| number(*v)).collect()),
            );
            head.insert("labels".into(), json!(axis.labels));
            head.insert("days".into(), json!(axis.days));
            head.insert("count".into(), json!(line.data.iter().sum::<f64>()));
        }
        if let Some(b) = &line.breakdown {
            head.insert("breakdown_value".into(), json!(b));
        }
        Value::Object(head)
    }
}

/// The time axis: bucket labels and day strings.
struct Axis {
    labels: Vec<String>,
    days: Vec<String>,
}

impl Aggregator for TrendsAggregator {
    fn apply(&mut self, contribution: &[i64], diff: isize) {
        let (Some(series), Some(bucket), Some(breakdown)) = (
            contribution.first(),
            contribution.get(1),
            contribution.get(2),
        ) else {
            return;
        };
        let value = contribution.get(3).copied().unwrap_or(0);
        let windowed = usize::try_from(*series)
            .ok()
            .and_then(|i| self.config.series.get(i))
            .and_then(|s| super::window_days(&self.config, s));
        match windowed {
            Some(days) => self.apply_active(days, *series, *bucket, *breakdown, value, diff as i64),
            None => self.add((*series, *bucket, *breakdown), value, diff as i64),
        }
    }

    fn render(&self) -> Value {
        let config = &self.config;
        let (bucket_list, axis) = if config.total_value {
            (
                vec![0],
                Axis {
                    labels: Vec::new(),
                    days: Vec::new(),
                },
            )
        } else {
            let bounds = self.bounds();
            let starts = bounds.bucket_starts();
            let axis = Axis {
                labels: starts.iter().map(|b| bounds.label(*b)).collect(),
                days: starts.iter().map(|b| bounds.day_string(*b)).collect(),
            };
            (starts.iter().map(|b| b / 1000).collect(), axis)
        };
        let buckets: HashMap<i64, usize> = bucket_list
            .iter()
            .enumerate()
            .map(|(i, b)| (*b, i))
            .collect();
        let width = bucket_list.len();
        let series: Vec<Vec<Line>> = (0..config.series.len())
            .map(|i| self.series_lines(i, &buckets, width))
            .collect();

        let mut results = Vec::new();
        if !config.formulas.is_empty() {
            for (order, formula) in config.formulas.iter().enumerate() {
                for line in self.formula_lines(formula, &series, width) {
                    let mut head = Map::new();
                    head.insert("label".into(), json!(format!("Formula ({})", formula.text)));
                    head.insert("order".into(), json!(order));
                    head.insert("action".into(), Value::Null);
                    if let Some(name) = &formula.custom_name {
                        head.insert("custom_name".into(), json!(name));
                    }
                    results.push(self.render_line(&line, head, &axis));
                }
            }
            return Value::Array(results);
        }
        for (order, lines) in series.iter().enumerate() {
            let node = &config.series[order].node;
            let action = json!({
                "id": node.event,
                "type": "events",
                "order": order,
                "name": node.display_name(),
                "custom_name": node.custom_name,
                "math": node.math.clone().unwrap_or_else(|| "total".to_string()),
                "math_property": node.math_property,
            });
            for line in lines {
                let label = match &line.breakdown {
                    None => node.label(),
                    Some(b) if config.series.len() > 1 => format!("{} - {b}", node.label()),
                    Some(b) => b.clone(),
                };
                let mut head = Map::new();
                head.insert("label".into(), json!(label));
                head.insert("order".into(), json!(order));
                head.insert("action".into(), action.clone());
                results.push(self.render_line(line, head, &axis));
            }
        }
        Value::Array(results)
    }
}

/// A person's active buckets, sorted, as each bucket's distance from the one before (a day is
/// three bytes) and its multiplicity (one byte).
fn pack_points(points: &[(i64, i64)], packer: &mut Packer) -> Box<[u8]> {
    let mut previous = 0i64;
    for (point, count) in points {
        packer.int(point.wrapping_sub(previous));
        packer.int(*count);
        previous = *point;
    }
    packer.finish()
}

fn unpack_points(packed: &[u8], points: &mut Vec<(i64, i64)>) {
    let mut reader = Unpacker::new(packed);
    let mut previous = 0i64;
    while !reader.is_done() {
        previous = previous.wrapping_add(reader.int());
        points.push((previous, reader.int()));
    }
}

/// A number as PostHog shows it: integral values as integers, others as floats.
pub fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        json!(value as i64)
    } else {
        json!(value)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn active_buckets_unpack_as_packed(
            raw in proptest::collection::btree_map(any::<i64>(), any::<i64>(), 0..40)
        ) {
            let points: Vec<(i64, i64)> = raw.into_iter().collect();
            let packed = pack_points(&points, &mut Packer::default());
            let mut out = Vec::new();
            unpack_points(&packed, &mut out);
            prop_assert_eq!(out, points);
        }
    }
}
