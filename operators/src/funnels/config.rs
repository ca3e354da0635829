//! `FunnelsQuery` parsed and validated into a [`FunnelConfig`]. Series, filters, dates and
//! breakdowns come from [`crate::query`]; this file owns `funnelsFilter`.

use std::sync::Arc;

use quill_pipeline::graph::{BuildContext, Interner};
use serde_json::{Map, Value};

use crate::query::{
    global_filters, parse_series, Breakdown, DateRange, EventsNode, Filters, Interval,
};
use crate::QueryError;

use super::attempts::{ExclusionRange, Order, Shape};

const SECOND_MS: i64 = 1_000;
const DAY_MS: i64 = 86_400 * SECOND_MS;

/// Top-level `FunnelsQuery` fields; display-only ones are accepted and ignored.
const QUERY_FIELDS: &[&str] = &[
    "kind",
    "series",
    "dateRange",
    "funnelsFilter",
    "breakdownFilter",
    "properties",
    "filterTestAccounts",
    "interval",
    "samplingFactor",
    "modifiers",
    "response",
    "dataColorTheme",
    "version",
    "tags",
    "aggregation_group_type_index",
];

/// `funnelsFilter` fields; the display-only ones are accepted and ignored.
const FILTER_FIELDS: &[&str] = &[
    "funnelOrderType",
    "funnelVizType",
    "funnelWindowInterval",
    "funnelWindowIntervalUnit",
    "exclusions",
    "breakdownAttributionType",
    "breakdownAttributionValue",
    "funnelFromStep",
    "funnelToStep",
    "binCount",
    "funnelStepReference",
    "layout",
    "hiddenLegendBreakdowns",
    "resultCustomizations",
    "showValuesOnSeries",
    "useUdf",
    "goalLines",
    "funnelAggregateByHogQL",
];

/// What the insight shows (`funnelVizType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viz {
    /// Persons per step with conversion times.
    Steps,
    /// Conversion rate from one step to another per interval of the step-0 time.
    Trends {
        /// `funnelFromStep` (default 0).
        from: usize,
        /// `funnelToStep` (default the last step).
        to: usize,
    },
    /// A histogram of conversion times from one step to another.
    TimeToConvert {
        /// `funnelFromStep` (default 0).
        from: usize,
        /// `funnelToStep` (default the last step).
        to: usize,
        /// `binCount` clamped to [1, 90], if given.
        bins: Option<i64>,
    },
}

/// Which event's value a person's breakdown takes (`breakdownAttributionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribution {
    /// The first non-null value on the person's step events.
    FirstTouch,
    /// The last non-null value.
    LastTouch,
    /// One funnel per value, over the events carrying it.
    AllEvents,
    /// The value on the winning attempt's event for this step.
    Step(usize),
}

/// A validated funnel definition.
#[derive(Debug, Clone)]
pub struct FunnelConfig {
    /// The steps.
    pub steps: Vec<EventsNode>,
    /// Exclusion events, in the order of [`Shape::exclusions`].
    pub exclusions: Vec<EventsNode>,
    /// The query's global filters: events failing them do not exist for the funnel.
    pub global: Filters,
    /// Order, window and exclusion ranges.
    pub shape: Shape,
    /// The resolved date range; only events inside it count.
    pub range: DateRange,
    /// The visualization.
    pub viz: Viz,
    /// The breakdown, if any.
    pub breakdown: Option<Breakdown>,
    /// How a person's breakdown value is chosen.
    pub attribution: Attribution,
}

fn int(obj: &Map<String, Value>, key: &str) -> Result<Option<i64>, QueryError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| QueryError::new(key, format!("expected an integer, got {v}"))),
    }
}

fn string<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, QueryError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(QueryError::new(key, format!("expected a string, got {v}"))),
    }
}

fn unit_ms(unit: &str) -> Option<i64> {
    let unit = unit.to_ascii_lowercase();
    let unit = unit.strip_suffix('s').unwrap_or(&unit);
    Some(match unit {
        "second" => SECOND_MS,
        "minute" => 60 * SECOND_MS,
        "hour" => 3_600 * SECOND_MS,
        "day" => DAY_MS,
        "week" => 7 * DAY_MS,
        "month" => 31 * DAY_MS,
        _ => return None,
    })
}

fn step_index(
    obj: &Map<String, Value>,
    key: &str,
    default: usize,
    steps: usize,
) -> Result<usize, QueryError> {
    match int(obj, key)? {
        None => Ok(default),
        Some(i) if i >= 0 && (i as usize) < steps => Ok(i as usize),
        Some(i) => Err(QueryError::new(
            key,
            format!("step {i} is out of range for {steps} steps"),
        )),
    }
}

/// Parses a `FunnelsQuery`.
pub fn parse(query: &Value, ctx: &BuildContext) -> Result<FunnelConfig, QueryError> {
    let interner: &Arc<Interner> = &ctx.interner;
    let obj = query
        .as_object()
        .ok_or_else(|| QueryError::new("", "expected a FunnelsQuery object"))?;
    if let Some(key) = obj.keys().find(|k| !QUERY_FIELDS.contains(&k.as_str())) {
        return Err(QueryError::new(key.clone(), "unknown field"));
    }
    let global = global_filters(query, interner)?;
    let steps: Vec<EventsNode> = parse_series(query, interner)?
        .into_iter()
        .map(|node| node.with_global(&global))
        .collect();
    if steps.len() < 2 {
        return Err(QueryError::new(
            "series",
            "a funnel needs at least two steps",
        ));
    }
    if steps.len() > 64 {
        return Err(QueryError::new("series", "a funnel has at most 64 steps"));
    }
    let n = steps.len();
    let interval = Interval::parse(query.get("interval"), "interval")?;
    let range = DateRange::resolve(query.get("dateRange"), interval, ctx.now_ms)?;
    let breakdown = Breakdown::parse(query, interner)?;

    let empty = Map::new();
    let filter = match query.get("funnelsFilter") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(QueryError::new(
                "funnelsFilter",
                format!("expected an object, got {other}"),
            ))
        }
    };
    let within = |e: QueryError| e.within("funnelsFilter");
    if let Some(key) = filter.keys().find(|k| !FILTER_FIELDS.contains(&k.as_str())) {
        return Err(QueryError::new(key.clone(), "unknown field").within("funnelsFilter"));
    }
    if let Some(agg) = string(filter, "funnelAggregateByHogQL").map_err(within)? {
        if agg != "person_id" {
            return Err(within(QueryError::new(
                "funnelAggregateByHogQL",
                "only persons are supported as the aggregation target",
            )));
        }
    }
    let order = match string(filter, "funnelOrderType").map_err(within)? {
        None | Some("ordered") => Order::Ordered,
        Some("strict") => Order::Strict,
        Some("unordered") => Order::Unordered,
        Some(other) => {
            return Err(within(QueryError::new(
                "funnelOrderType",
                format!("unknown order {other:?}; expected ordered, strict or unordered"),
            )))
        }
    };
    let window_count = int(filter, "funnelWindowInterval")
        .map_err(within)?
        .unwrap_or(14);
    if window_count < 0 {
        return Err(within(QueryError::new(
            "funnelWindowInterval",
            "must not be negative",
        )));
    }
    let unit = string(filter, "funnelWindowIntervalUnit")
        .map_err(within)?
        .unwrap_or("day");
    let unit_ms = unit_ms(unit).ok_or_else(|| {
        within(QueryError::new(
            "funnelWindowIntervalUnit",
            format!("unknown unit {unit:?}; expected second, minute, hour, day, week or month"),
        ))
    })?;
    let window_ms = window_count.saturating_mul(unit_ms);

    let (exclusions, ranges) =
        parse_exclusions(filter.get("exclusions"), n, order, interner).map_err(within)?;
    let exclusions = exclusions
        .into_iter()
        .map(|node| node.with_global(&global))
        .collect();

    let from = step_index(filter, "funnelFromStep", 0, n).map_err(within)?;
    let to = step_index(filter, "funnelToStep", n - 1, n).map_err(within)?;
    let viz = match string(filter, "funnelVizType").map_err(within)? {
        None | Some("steps") => Viz::Steps,
        Some(kind @ ("trends" | "time_to_convert")) => {
            if from >= to {
                return Err(within(QueryError::new(
                    "funnelToStep",
                    "must be after funnelFromStep",
                )));
            }
            if kind == "trends" {
                Viz::Trends { from, to }
            } else {
                let bins = int(filter, "binCount")
                    .map_err(within)?
                    .map(|b| b.clamp(1, 90));
                Viz::TimeToConvert { from, to, bins }
            }
        }
        Some(other) => {
            return Err(within(QueryError::new(
                "funnelVizType",
                format!(
                    "unknown visualization {other:?}; expected steps, trends or time_to_convert"
                ),
            )))
        }
    };
    let attribution = match string(filter, "breakdownAttributionType").map_err(within)? {
        None | Some("first_touch") => Attribution::FirstTouch,
        Some("last_touch") => Attribution::LastTouch,
        Some("all_events") => Attribution::AllEvents,
        Some("step") => Attribution::Step(
            step_index(filter, "breakdownAttributionValue", 0, n).map_err(within)?,
        ),
        Some(other) => {
            return Err(within(QueryError::new(
                "breakdownAttributionType",
                format!(
                    "unknown attribution {other:?}; expected first_touch, last_touch, all_events or step"
                ),
            )))
        }
    };
    Ok(FunnelConfig {
        steps,
        exclusions,
        global,
        shape: Shape {
            steps: n,
            window_ms,
            order,
            exclusions: ranges,
        },
        range,
        viz,
        breakdown,
        attribution,
    })
}

/// Parses `exclusions`: EventsNodes with `funnelFromStep < funnelToStep`; unordered funnels
/// only take exclusions over the whole funnel, as PostHog requires.
fn parse_exclusions(
    value: Option<&Value>,
    steps: usize,
    order: Order,
    interner: &Arc<Interner>,
) -> Result<(Vec<EventsNode>, Vec<ExclusionRange>), QueryError> {
    let items = match value {
        None | Some(Value::Null) => return Ok((Vec::new(), Vec::new())),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(QueryError::new(
                "exclusions",
                format!("expected a list, got {other}"),
            ))
        }
    };
    if items.len() > 64 {
        return Err(QueryError::new("exclusions", "at most 64 exclusions"));
    }
    let mut nodes = Vec::new();
    let mut ranges = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("exclusions[{i}]");
        let obj = item
            .as_object()
            .ok_or_else(|| QueryError::new(field.clone(), "expected an object"))?;
        // The step range is ours; the rest is an EventsNode.
        let mut node = obj.clone();
        node.remove("funnelFromStep");
        node.remove("funnelToStep");
        let node = EventsNode::parse(&Value::Object(node), &field, interner)?;
        let from = step_index(obj, "funnelFromStep", 0, steps).map_err(|e| e.within(&field))?;
        let to = step_index(obj, "funnelToStep", steps - 1, steps).map_err(|e| e.within(&field))?;
        if from >= to {
            return Err(QueryError::new(
                format!("{field}.funnelToStep"),
                "must be after funnelFromStep",
            ));
        }
        if order == Order::Unordered && (from != 0 || to != steps - 1) {
            return Err(QueryError::new(
                format!("{field}.funnelFromStep"),
                "unordered funnels only take exclusions over the whole funnel",
            ));
        }
        nodes.push(node);
        ranges.push(ExclusionRange { from, to });
    }
    Ok((nodes, ranges))
}
