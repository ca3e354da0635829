//! A series' `math`: what one person contributes per bucket, and how the aggregator turns a
//! bucket's multiset of contribution values into the number PostHog shows.
//!
//! Every math folds a multiset of `i64` values with multiplicities (see the layout in the
//! module above). Property values travel as [`ordered`] keys so that the multiset's order is
//! the numeric order, which min, max and quantiles walk.

use std::collections::BTreeMap;

use quill_pipeline::graph::{Interner, Sym};

use crate::QueryError;

/// How a multiset of numbers becomes one number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Agg {
    /// Σ.
    Sum,
    /// Mean.
    Avg,
    /// Smallest.
    Min,
    /// Largest.
    Max,
    /// The quantile at this fraction, linearly interpolated between closest ranks.
    Quantile(f64),
}

/// A series' math.
#[derive(Debug, Clone, PartialEq)]
pub enum Math {
    /// Event count.
    Total,
    /// Distinct persons per bucket.
    Dau,
    /// Distinct persons active in the `days` days ending with each bucket.
    Active {
        /// 7 for `weekly_active`, 30 for `monthly_active`.
        days: i64,
    },
    /// Distinct `$session_id` values.
    UniqueSession,
    /// An aggregate of a numeric event property.
    Property {
        /// The aggregate.
        agg: Agg,
        /// The property key.
        key: String,
        /// The property key, interned.
        key_sym: Sym,
    },
    /// An aggregate of per-person event counts.
    PerActor(Agg),
}

/// The multiset value of a matching event that carries no value for the math (no numeric
/// property, no session): kept so the cell exists, skipped when folding. No finite number's
/// [`ordered`] key and no symbol equals it.
pub const NO_VALUE: i64 = i64::MIN;

/// The property unique_session reads.
pub const SESSION_KEY: &str = "$session_id";

impl Math {
    /// Parses a series' `math` and `math_property`; `field` is the series path (`series[1]`).
    pub fn parse(
        math: Option<&str>,
        math_property: Option<&str>,
        field: &str,
        interner: &Interner,
    ) -> Result<Self, QueryError> {
        let name = math.unwrap_or("total");
        let quantile = |s: &str| -> Option<Agg> {
            match s {
                "sum" => Some(Agg::Sum),
                "avg" => Some(Agg::Avg),
                "min" => Some(Agg::Min),
                "max" => Some(Agg::Max),
                "median" => Some(Agg::Quantile(0.5)),
                "p75" => Some(Agg::Quantile(0.75)),
                "p90" => Some(Agg::Quantile(0.9)),
                "p95" => Some(Agg::Quantile(0.95)),
                "p99" => Some(Agg::Quantile(0.99)),
                _ => None,
            }
        };
        match name {
            "total" => return Ok(Math::Total),
            "dau" => return Ok(Math::Dau),
            "weekly_active" => return Ok(Math::Active { days: 7 }),
            "monthly_active" => return Ok(Math::Active { days: 30 }),
            "unique_session" => return Ok(Math::UniqueSession),
            _ => {}
        }
        if let Some(agg) = name.strip_suffix("_count_per_actor").and_then(quantile) {
            if agg != Agg::Sum {
                return Ok(Math::PerActor(agg));
            }
        }
        if let Some(agg) = quantile(name) {
            let key = math_property.filter(|k| !k.is_empty()).ok_or_else(|| {
                QueryError::new(
                    format!("{field}.math_property"),
                    format!("math {name} needs a math_property"),
                )
            })?;
            return Ok(Math::Property {
                agg,
                key: key.to_string(),
                key_sym: interner.intern(key),
            });
        }
        Err(QueryError::new(
            format!("{field}.math"),
            format!("unsupported math {name:?}"),
        ))
    }

    /// The event property this math reads, if any.
    pub fn property(&self) -> Option<&str> {
        match self {
            Math::Property { key, .. } => Some(key),
            Math::UniqueSession => Some(SESSION_KEY),
            _ => None,
        }
    }

    /// The bucket's number from its multiset `values` (value → multiplicity; entries with a
    /// non-positive multiplicity are ignored). An empty bucket is 0.
    pub fn fold(&self, values: &BTreeMap<i64, i64>) -> f64 {
        let live = || values.iter().filter(|(v, m)| **m > 0 && **v != NO_VALUE);
        match self {
            Math::Total | Math::Dau | Math::Active { .. } => live().map(|(_, m)| *m as f64).sum(),
            Math::UniqueSession => live().count() as f64,
            Math::Property { agg, .. } => {
                fold_numbers(*agg, live().map(|(v, m)| (from_ordered(*v), *m)))
            }
            Math::PerActor(agg) => fold_numbers(*agg, live().map(|(v, m)| (*v as f64, *m))),
        }
    }
}

/// Folds `(value, multiplicity)` pairs given in ascending value order.
fn fold_numbers(agg: Agg, pairs: impl Iterator<Item = (f64, i64)> + Clone) -> f64 {
    let n: i64 = pairs.clone().map(|(_, m)| m).sum();
    if n <= 0 {
        return 0.0;
    }
    match agg {
        Agg::Sum => pairs.map(|(v, m)| v * m as f64).sum(),
        Agg::Avg => pairs.map(|(v, m)| v * m as f64).sum::<f64>() / n as f64,
        Agg::Min => pairs.map(|(v, _)| v).next().unwrap_or(0.0),
        Agg::Max => pairs.map(|(v, _)| v).last().unwrap_or(0.0),
        Agg::Quantile(p) => {
            let pos = p * (n - 1) as f64;
            let lo = pos.floor() as i64;
            let hi = pos.ceil() as i64;
            let (a, b) = (nth(pairs.clone(), lo), nth(pairs, hi));
            a + (b - a) * (pos - lo as f64)
        }
    }
}

/// The value at 0-based rank `k` of a multiset in ascending order.
fn nth(pairs: impl Iterator<Item = (f64, i64)>, k: i64) -> f64 {
    let mut seen = 0;
    let mut last = 0.0;
    for (v, m) in pairs {
        seen += m;
        last = v;
        if seen > k {
            return v;
        }
    }
    last
}

/// An `i64` whose integer order is `value`'s numeric order (`f64::total_cmp`).
pub fn ordered(value: f64) -> i64 {
    let bits = value.to_bits() as i64;
    // Negative floats order backwards by their bits: flip all but the sign bit.
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// Inverse of [`ordered`].
pub fn from_ordered(key: i64) -> f64 {
    let bits = key ^ (((key >> 63) as u64) >> 1) as i64;
    f64::from_bits(bits as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_keys_sort_numerically() {
        let values = [-3.5, -1.0, -0.0, 0.0, 0.25, 2.0, 1e9];
        let keys: Vec<i64> = values.iter().map(|v| ordered(*v)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for v in values {
            assert_eq!(from_ordered(ordered(v)).to_bits(), v.to_bits());
        }
    }

    #[test]
    fn quantiles_interpolate() {
        let interner = Interner::new();
        let m = Math::parse(Some("median"), Some("x"), "series[0]", &interner).unwrap();
        let set: BTreeMap<i64, i64> =
            [(ordered(1.0), 1), (ordered(2.0), 2), (ordered(10.0), 1)].into();
        // 1, 2, 2, 10: median at rank 1.5 = 2.
        assert_eq!(m.fold(&set), 2.0);
        let p90 = Math::PerActor(Agg::Quantile(0.9));
        let counts: BTreeMap<i64, i64> = [(1, 1), (3, 1)].into();
        assert!((p90.fold(&counts) - 2.8).abs() < 1e-9);
        let avg = Math::Property {
            agg: Agg::Avg,
            key: "x".into(),
            key_sym: 0,
        };
        assert_eq!(avg.fold(&set), 15.0 / 4.0);
        assert_eq!(avg.fold(&BTreeMap::new()), 0.0);
    }

    #[test]
    fn parse_errors() {
        let interner = Interner::new();
        let err = Math::parse(Some("sum"), None, "series[1]", &interner).unwrap_err();
        assert_eq!(err.field, "series[1].math_property");
        let err = Math::parse(Some("unique_group"), None, "series[0]", &interner).unwrap_err();
        assert_eq!(err.field, "series[0].math");
        assert_eq!(
            Math::parse(Some("p90_count_per_actor"), None, "s", &interner).unwrap(),
            Math::PerActor(Agg::Quantile(0.9))
        );
    }
}
