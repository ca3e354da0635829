//! Folds retention contributions into a table of counts and renders PostHog's rows.
//!
//! State: per breakdown key, a `start × offset` table of person counts. Applying a
//! contribution adds `diff` to every cell its offsets name (every offset up to the furthest
//! when cumulative), so the state is a sum over the multiset of contributions and retractions
//! simply subtract.

use std::collections::BTreeMap;
use std::sync::Arc;

use quill_pipeline::graph::{Aggregator, Interner};
use serde_json::{json, Value};

use super::layout::{self, Key};
use crate::query::breakdown::rank;
use crate::query::{BREAKDOWN_NULL, BREAKDOWN_OTHER};

/// What rendering needs to know about the query.
#[derive(Debug, Clone)]
pub struct Shape {
    /// The start of every interval, as PostHog's `date` strings.
    pub dates: Vec<String>,
    /// `Hour`, `Day`, `Week` or `Month`: the prefix of every label.
    pub unit: &'static str,
    /// Whether a person counts at every offset up to their furthest return.
    pub cumulative: bool,
    /// `Some(limit)` when the query has a breakdown: rows carry `breakdown_value` and values
    /// past the limit fold into [`BREAKDOWN_OTHER`].
    pub breakdown_limit: Option<usize>,
}

/// The retention aggregator.
pub struct RetentionAggregator {
    shape: Arc<Shape>,
    interner: Arc<Interner>,
    /// Per breakdown key, `counts[start][offset]`.
    counts: BTreeMap<Key, Vec<Vec<i64>>>,
}

impl RetentionAggregator {
    /// An empty aggregator.
    pub fn new(shape: Arc<Shape>, interner: Arc<Interner>) -> Self {
        Self {
            shape,
            interner,
            counts: BTreeMap::new(),
        }
    }

    fn rows(&self, table: &[Vec<i64>], breakdown: Option<&str>) -> Vec<Value> {
        let n = self.shape.dates.len();
        let unit = self.shape.unit;
        (0..n)
            .map(|start| {
                let values: Vec<Value> = (0..n)
                    .map(|k| {
                        let count = table
                            .get(start)
                            .and_then(|r| r.get(k))
                            .copied()
                            .unwrap_or(0);
                        json!({"count": count, "label": format!("{unit} {k}")})
                    })
                    .collect();
                let mut row = json!({
                    "date": self.shape.dates[start],
                    "label": format!("{unit} {start}"),
                    "values": values,
                });
                if let (Some(b), Value::Object(map)) = (breakdown, &mut row) {
                    map.insert("breakdown_value".into(), Value::from(b));
                }
                row
            })
            .collect()
    }

    fn label(&self, key: Key) -> String {
        match key {
            Key::All => String::new(),
            Key::Null => BREAKDOWN_NULL.to_string(),
            Key::Value(sym) => self.interner.resolve(sym).to_string(),
        }
    }
}

impl Aggregator for RetentionAggregator {
    fn apply(&mut self, contribution: &[i64], diff: isize) {
        let Some((key, start, words)) = layout::decode(contribution) else {
            return;
        };
        let n = self.shape.dates.len();
        if start >= n {
            return;
        }
        let table = self
            .counts
            .entry(key)
            .or_insert_with(|| vec![vec![0; n]; n]);
        let offsets: Vec<usize> = layout::offsets(words).filter(|k| *k < n).collect();
        let diff = diff as i64;
        if self.shape.cumulative {
            let furthest = offsets.iter().copied().max().unwrap_or(0);
            for cell in table[start].iter_mut().take(furthest + 1) {
                *cell += diff;
            }
        } else {
            for k in offsets {
                table[start][k] += diff;
            }
        }
    }

    fn render(&self) -> Value {
        let n = self.shape.dates.len();
        let Some(limit) = self.shape.breakdown_limit else {
            let empty = vec![vec![0; n]; n];
            let table = self.counts.get(&Key::All).unwrap_or(&empty);
            return Value::Array(self.rows(table, None));
        };
        // Rank by cohort size (the offset-0 column), then by value, like PostHog; values with
        // no cohort left (everything retracted) are gone.
        let tables: BTreeMap<String, &Vec<Vec<i64>>> = self
            .counts
            .iter()
            .filter(|(_, table)| table.iter().any(|r| r[0] != 0))
            .map(|(key, table)| (self.label(*key), table))
            .collect();
        let totals: Vec<(String, f64)> = tables
            .iter()
            .map(|(label, table)| {
                (
                    label.clone(),
                    table.iter().map(|r| r[0]).sum::<i64>() as f64,
                )
            })
            .collect();
        let (kept, folded) = rank(&totals, limit);
        let mut out = Vec::new();
        for label in &kept {
            out.extend(self.rows(tables[label], Some(label)));
        }
        if !folded.is_empty() {
            // PostHog sums the folded values' counts cell by cell.
            let mut other = vec![vec![0; n]; n];
            for label in &folded {
                for (row, src) in other.iter_mut().zip(tables[label].iter()) {
                    for (cell, v) in row.iter_mut().zip(src) {
                        *cell += v;
                    }
                }
            }
            out.extend(self.rows(&other, Some(BREAKDOWN_OTHER)));
        }
        Value::Array(out)
    }
}
