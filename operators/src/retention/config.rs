//! The `retentionFilter` options, validated. Dates, property filters and breakdowns are read
//! by the shared `query` module; this file holds what only retention has.

use serde_json::{Map, Value};

use super::cohort::CohortRule;
use crate::query::Interval;
use crate::QueryError;

/// The most intervals a query may ask for: the aggregator keeps a `n × n` table per breakdown
/// value, so the bound keeps state small.
pub const MAX_INTERVALS: u64 = 400;

/// Keys of `retentionFilter` that only change how PostHog's UI draws the result.
const DISPLAY_ONLY: &[&str] = &[
    "dashboardDisplay",
    "display",
    "meanRetentionCalculation",
    "retentionReference",
    "selectedInterval",
    "showMean",
];

/// The label prefix PostHog uses for a period (`Day 3`).
pub fn unit(period: Interval) -> &'static str {
    match period {
        Interval::Minute => "Minute",
        Interval::Hour => "Hour",
        Interval::Day => "Day",
        Interval::Week => "Week",
        Interval::Month => "Month",
    }
}

/// `retentionFilter`, validated, without its entities.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `retentionType`.
    pub cohort: CohortRule,
    /// `period`.
    pub period: Interval,
    /// `totalIntervals`: cohort rows, and values per row.
    pub total_intervals: usize,
    /// `cumulative`.
    pub cumulative: bool,
    /// `minimumOccurrences` (≥ 1).
    pub minimum_occurrences: u32,
}

/// Reads `retentionFilter` (absent or null means every default). Returns the options and the
/// raw target and returning entities (`None` when absent or null).
pub fn options(
    raw: Option<&Value>,
) -> Result<(Options, Option<&Value>, Option<&Value>), QueryError> {
    let empty = Map::new();
    let filter = match raw {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(map)) => map,
        Some(_) => return Err(QueryError::new("retentionFilter", "expected an object")),
    };
    let err = |field: &str, msg: String| QueryError::new(format!("retentionFilter.{field}"), msg);
    for (key, value) in filter {
        let known = matches!(
            key.as_str(),
            "retentionType"
                | "period"
                | "totalIntervals"
                | "cumulative"
                | "minimumOccurrences"
                | "targetEntity"
                | "returningEntity"
        ) || DISPLAY_ONLY.contains(&key.as_str());
        let unsupported_but_default = match key.as_str() {
            "retentionCustomBrackets" => value.is_null(),
            "timeWindowMode" => value.is_null() || value == "calendar",
            "aggregationType" => value.is_null() || value == "count",
            "aggregationProperty" | "aggregationPropertyType" => value.is_null(),
            _ => false,
        };
        if !known && !unsupported_but_default {
            return Err(err(
                key,
                format!("unsupported retentionFilter field {key:?} (or value {value})"),
            ));
        }
    }
    let get = |k: &str| filter.get(k).filter(|v| !v.is_null());
    let cohort = match get("retentionType") {
        None => CohortRule::Recurring,
        Some(v) => match v.as_str() {
            Some("retention_recurring") => CohortRule::Recurring,
            Some("retention_first_time") => CohortRule::FirstMatching,
            Some("retention_first_ever_occurrence") => CohortRule::FirstEver,
            _ => {
                return Err(err(
                    "retentionType",
                    format!("expected retention_recurring, retention_first_time or retention_first_ever_occurrence, got {v}"),
                ))
            }
        },
    };
    let period = match get("period") {
        None => Interval::Day,
        Some(v) => match v.as_str().and_then(Interval::from_name) {
            Some(p) if p != Interval::Minute => p,
            _ => {
                return Err(err(
                    "period",
                    format!("expected Hour, Day, Week or Month, got {v}"),
                ))
            }
        },
    };
    let total_intervals = match get("totalIntervals") {
        None => 7,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_INTERVALS).contains(&n) => n as usize,
            _ => {
                return Err(err(
                    "totalIntervals",
                    format!("expected an integer from 1 to {MAX_INTERVALS}, got {v}"),
                ))
            }
        },
    };
    let cumulative = match get("cumulative") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(err("cumulative", format!("expected a boolean, got {v}"))),
    };
    let minimum_occurrences = match get("minimumOccurrences") {
        None => 1,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n <= u64::from(u32::MAX) => n as u32,
            _ => {
                return Err(err(
                    "minimumOccurrences",
                    format!("expected a positive integer, got {v}"),
                ))
            }
        },
    };
    let options = Options {
        cohort,
        period,
        total_intervals,
        cumulative,
        minimum_occurrences,
    };
    let entity = |k: &str| raw.and_then(|f| f.get(k)).filter(|v| !v.is_null());
    Ok((options, entity("targetEntity"), entity("returningEntity")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults() {
        let (o, t, r) = options(None).unwrap();
        assert_eq!(o.cohort, CohortRule::Recurring);
        assert_eq!(o.period, Interval::Day);
        assert_eq!(o.total_intervals, 7);
        assert!(!o.cumulative);
        assert_eq!(o.minimum_occurrences, 1);
        assert!(t.is_none() && r.is_none());
    }

    #[test]
    fn errors_name_the_field() {
        let bad = [
            (json!({"period": "Year"}), "retentionFilter.period"),
            (json!({"period": "Minute"}), "retentionFilter.period"),
            (
                json!({"totalIntervals": 0}),
                "retentionFilter.totalIntervals",
            ),
            (
                json!({"minimumOccurrences": 0}),
                "retentionFilter.minimumOccurrences",
            ),
            (
                json!({"retentionType": "x"}),
                "retentionFilter.retentionType",
            ),
            (json!({"cumulative": 1}), "retentionFilter.cumulative"),
            (json!({"bogus": 1}), "retentionFilter.bogus"),
            (
                json!({"timeWindowMode": "24_hour_windows"}),
                "retentionFilter.timeWindowMode",
            ),
        ];
        for (filter, field) in bad {
            assert_eq!(options(Some(&filter)).unwrap_err().field, field, "{filter}");
        }
    }

    #[test]
    fn reads_every_option() {
        let f = json!({"retentionType": "retention_first_ever_occurrence", "period": "Week",
            "totalIntervals": 3, "cumulative": true, "minimumOccurrences": 2, "display": "ActionsTable",
            "targetEntity": {"id": "signup", "type": "events"}});
        let (o, t, r) = options(Some(&f)).unwrap();
        assert_eq!(o.cohort, CohortRule::FirstEver);
        assert_eq!(o.period, Interval::Week);
        assert_eq!(
            (o.total_intervals, o.cumulative, o.minimum_occurrences),
            (3, true, 2)
        );
        assert_eq!(t.unwrap()["id"], "signup");
        assert!(r.is_none());
    }
}
