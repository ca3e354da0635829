//! Date ranges and intervals as PostHog resolves them, in UTC.
//!
//! A query's `dateRange {date_from, date_to, explicitDate}` is resolved once, at build time,
//! against the runtime's "now" into absolute millisecond bounds ([`DateRange`]). Bucketing
//! ([`Interval::truncate`]) and enumeration ([`Bounds::bucket_starts`]) work on those bounds, and
//! [`Bounds::label`] / [`Bounds::day_string`] render PostHog's `labels` and `days`.
//!
//! Rules (PostHog's `QueryDateRange`):
//! - `date_from` null means 7 days ago; unless `explicitDate`, it is truncated to the start of
//!   the day, or of the hour for hour/minute intervals and for `-Nh` strings.
//! - `date_to` null means now; a relative `date_to` is first truncated to its unit's start (day,
//!   or hour for `h`). Unless `explicitDate`, day/week/month intervals then round it up to the
//!   end of its day, and hour/minute intervals round a relative or null `date_to` up to the end
//!   of its hour/minute. Absolute bounds with `explicitDate` stay exact.
//! - `all` as `date_from` means "from the earliest event", which only the data knows: the range
//!   keeps `from_ms: None` and [`DateRange::bounds`] takes the earliest timestamp seen.
//! - Weeks start on Sunday.

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

use crate::QueryError;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
const WEEK_MS: i64 = 7 * DAY_MS;

/// A bucket size (trends' `interval`, retention's `period`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interval {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One calendar day (UTC).
    Day,
    /// One week, Sunday to Saturday.
    Week,
    /// One calendar month.
    Month,
}

impl Interval {
    /// Parses the `interval` field (`minute|hour|day|week|month`, any case); null or absent is
    /// `day`. `field` names the field in errors.
    pub fn parse(value: Option<&Value>, field: &str) -> Result<Self, QueryError> {
        match value {
            None | Some(Value::Null) => Ok(Interval::Day),
            Some(Value::String(s)) => Self::from_name(s).ok_or_else(|| {
                QueryError::new(
                    field,
                    format!("unknown interval {s:?}; expected minute, hour, day, week or month"),
                )
            }),
            Some(other) => Err(QueryError::new(
                field,
                format!("expected a string, got {other}"),
            )),
        }
    }

    /// The interval for a name such as `day` or retention's `Day`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "minute" => Some(Interval::Minute),
            "hour" => Some(Interval::Hour),
            "day" => Some(Interval::Day),
            "week" => Some(Interval::Week),
            "month" => Some(Interval::Month),
            _ => None,
        }
    }

    /// The lowercase name PostHog uses.
    pub fn name(self) -> &'static str {
        match self {
            Interval::Minute => "minute",
            Interval::Hour => "hour",
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }

    /// Whether buckets are shorter than a day (hour or minute).
    pub fn is_sub_daily(self) -> bool {
        matches!(self, Interval::Minute | Interval::Hour)
    }

    /// The start of the bucket holding `ts_ms`.
    pub fn truncate(self, ts_ms: i64) -> i64 {
        match self {
            Interval::Minute => floor_to(ts_ms, MINUTE_MS),
            Interval::Hour => floor_to(ts_ms, HOUR_MS),
            Interval::Day => floor_to(ts_ms, DAY_MS),
            Interval::Week => {
                let day = floor_to(ts_ms, DAY_MS);
                // 1970-01-01 was a Thursday: four days after a Sunday.
                let since_sunday = (day.div_euclid(DAY_MS) + 4).rem_euclid(7);
                day - since_sunday * DAY_MS
            }
            Interval::Month => {
                let dt = to_datetime(ts_ms);
                Utc.with_ymd_and_hms(dt.year(), dt.month(), 1, 0, 0, 0)
                    .single()
                    .map_or(ts_ms, |d| d.timestamp_millis())
            }
        }
    }

    /// `ts_ms` moved by `n` intervals (months are calendar months, clamping the day).
    pub fn add(self, ts_ms: i64, n: i64) -> i64 {
        match self {
            Interval::Minute => ts_ms + n * MINUTE_MS,
            Interval::Hour => ts_ms + n * HOUR_MS,
            Interval::Day => ts_ms + n * DAY_MS,
            Interval::Week => ts_ms + n * WEEK_MS,
            Interval::Month => add_months(ts_ms, n),
        }
    }
}

/// A resolved `dateRange`: absolute inclusive bounds in ms, and the interval that shaped them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    /// The first included ms; `None` for `all` (from the earliest event).
    pub from_ms: Option<i64>,
    /// The last included ms.
    pub to_ms: i64,
    /// The bucket size.
    pub interval: Interval,
}

/// Bounds with `all` resolved: what buckets and labels are computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The first included ms.
    pub from_ms: i64,
    /// The last included ms.
    pub to_ms: i64,
    /// The bucket size.
    pub interval: Interval,
}

impl DateRange {
    /// Resolves the query's `dateRange` (absent or null means the defaults) against `now_ms`.
    /// Errors name `dateRange.date_from` / `dateRange.date_to`.
    pub fn resolve(
        date_range: Option<&Value>,
        interval: Interval,
        now_ms: i64,
    ) -> Result<Self, QueryError> {
        let obj = match date_range {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(other) => {
                return Err(QueryError::new(
                    "dateRange",
                    format!("expected an object, got {other}"),
                ))
            }
        };
        let field = |name: &str| obj.and_then(|m| m.get(name)).filter(|v| !v.is_null());
        let explicit = match field("explicitDate") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(QueryError::new(
                    "dateRange.explicitDate",
                    format!("expected a boolean, got {other}"),
                ))
            }
        };

        let from_ms = match field("date_from") {
            None => Some(floor_to(now_ms, DAY_MS) - 7 * DAY_MS),
            Some(Value::String(s)) if s == "all" => None,
            Some(Value::String(s)) => {
                let parsed = parse_date(s, now_ms, false)
                    .map_err(|m| QueryError::new("dateRange.date_from", m))?;
                Some(if explicit {
                    parsed.ms
                } else if interval.is_sub_daily() || parsed.hourly {
                    floor_to(parsed.ms, HOUR_MS)
                } else {
                    floor_to(parsed.ms, DAY_MS)
                })
            }
            Some(other) => {
                return Err(QueryError::new(
                    "dateRange.date_from",
                    format!("expected a date string, got {other}"),
                ))
            }
        };

        let (to, relative) = match field("date_to") {
            None => (now_ms, true),
            Some(Value::String(s)) => {
                let parsed = parse_date(s, now_ms, true)
                    .map_err(|m| QueryError::new("dateRange.date_to", m))?;
                (parsed.ms, parsed.relative)
            }
            Some(other) => {
                return Err(QueryError::new(
                    "dateRange.date_to",
                    format!("expected a date string, got {other}"),
                ))
            }
        };
        let to_ms = if explicit {
            to
        } else {
            match interval {
                Interval::Day | Interval::Week | Interval::Month => {
                    floor_to(to, DAY_MS) + DAY_MS - 1
                }
                Interval::Hour if relative => floor_to(to, HOUR_MS) + HOUR_MS - 1,
                Interval::Minute if relative => floor_to(to, MINUTE_MS) + MINUTE_MS - 1,
                _ => to,
            }
        };
        Ok(DateRange {
            from_ms,
            to_ms,
            interval,
        })
    }

    /// The resolved bounds as numbers (`all` as `i64::MIN`), for telling whether a later
    /// resolution of the same query moved them.
    pub fn resolved(&self) -> Vec<i64> {
        vec![self.from_ms.unwrap_or(i64::MIN), self.to_ms]
    }

    /// Whether `ts_ms` falls inside the range (`all` has no lower bound).
    pub fn contains(&self, ts_ms: i64) -> bool {
        ts_ms <= self.to_ms && self.from_ms.is_none_or(|from| ts_ms >= from)
    }

    /// The bounds, with `all` resolved to the start of the day (hour for sub-daily intervals)
    /// of `earliest_ms`, the earliest relevant event. With no events either, the range starts
    /// at the bucket of `to_ms`.
    pub fn bounds(&self, earliest_ms: Option<i64>) -> Bounds {
        let from_ms = match self.from_ms {
            Some(from) => from,
            None => {
                let earliest = earliest_ms.unwrap_or(self.to_ms).min(self.to_ms);
                if self.interval.is_sub_daily() {
                    floor_to(earliest, HOUR_MS)
                } else {
                    floor_to(earliest, DAY_MS)
                }
            }
        };
        Bounds {
            from_ms,
            to_ms: self.to_ms,
            interval: self.interval,
        }
    }
}

impl Bounds {
    /// Whether `ts_ms` falls inside the bounds.
    pub fn contains(&self, ts_ms: i64) -> bool {
        ts_ms >= self.from_ms && ts_ms <= self.to_ms
    }

    /// Every bucket start from the bucket of `from_ms` through the bucket of `to_ms`.
    pub fn bucket_starts(&self) -> Vec<i64> {
        let last = self.interval.truncate(self.to_ms);
        let mut out = Vec::new();
        let mut b = self.interval.truncate(self.from_ms);
        while b <= last {
            out.push(b);
            b = self.interval.add(b, 1);
        }
        out
    }

    /// PostHog's label for a bucket: `1-Jan-2024` (day), `1-Jan 13:00` (hour, minute),
    /// `Jan 2024` (month), `7–13 Jan` (week, clamped to the range).
    pub fn label(&self, bucket_ms: i64) -> String {
        let dt = to_datetime(bucket_ms);
        match self.interval {
            Interval::Day => day_label(bucket_ms),
            Interval::Hour | Interval::Minute => dt.format("%-d-%b %H:%M").to_string(),
            Interval::Month => dt.format("%b %Y").to_string(),
            Interval::Week => {
                let start = floor_to(bucket_ms.max(self.from_ms), DAY_MS);
                let end = floor_to((bucket_ms + 6 * DAY_MS).min(self.to_ms), DAY_MS).max(start);
                week_label(start, end)
            }
        }
    }

    /// PostHog's `days` entry: `2024-01-01`, or `2024-01-01 13:00:00` for hour/minute.
    pub fn day_string(&self, bucket_ms: i64) -> String {
        let dt = to_datetime(bucket_ms);
        if self.interval.is_sub_daily() {
            dt.format("%Y-%m-%d %H:%M:%S").to_string()
        } else {
            dt.format("%Y-%m-%d").to_string()
        }
    }
}

/// `1-Jan-2024`.
fn day_label(ms: i64) -> String {
    to_datetime(ms).format("%-d-%b-%Y").to_string()
}

/// A week label from its first and last day: `7–13 Jan`, `28-Jan – 3-Feb`,
/// `29-Dec-2024 – 4-Jan-2025`, or one day alone.
fn week_label(start: i64, end: i64) -> String {
    let (s, e) = (to_datetime(start), to_datetime(end));
    if start == end {
        day_label(start)
    } else if s.year() != e.year() {
        format!("{} – {}", day_label(start), day_label(end))
    } else if s.month() != e.month() {
        format!("{} – {}", s.format("%-d-%b"), e.format("%-d-%b"))
    } else {
        format!("{}–{}", s.day(), e.format("%-d %b"))
    }
}

/// ISO 8601 with milliseconds and `Z`, for `resolved_date_range` and retention dates.
pub fn iso(ms: i64) -> String {
    to_datetime(ms).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A parsed date string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedDate {
    /// The instant, ms since the epoch.
    pub ms: i64,
    /// Whether the string was relative (`-7d`, `dStart`).
    pub relative: bool,
    /// Whether the string was relative in hours (`-24h`).
    pub hourly: bool,
}

/// Parses an absolute date (`2024-01-01`, ISO datetimes with or without zone, which is then
/// UTC) or a relative one (`-?N?[hdwmqysHDWQY M](Start|End)?`, where `m` is months and `M`
/// minutes). `truncate` truncates a relative result to the start of its day (or hour for `h`),
/// as PostHog does for `date_to`.
pub fn parse_date(s: &str, now_ms: i64, truncate: bool) -> Result<ParsedDate, String> {
    let s = s.trim();
    if let Some(ms) = parse_absolute(s) {
        return Ok(ParsedDate {
            ms,
            relative: false,
            hourly: false,
        });
    }
    let (ms, hourly) = parse_relative(s, now_ms).ok_or_else(|| {
        format!("cannot parse date {s:?}; expected e.g. -7d, dStart or 2024-01-31")
    })?;
    let ms = match (truncate, hourly) {
        (false, _) => ms,
        (true, true) => floor_to(ms, HOUR_MS),
        (true, false) => floor_to(ms, DAY_MS),
    };
    Ok(ParsedDate {
        ms,
        relative: true,
        hourly,
    })
}

/// An absolute date or datetime; one without a zone is UTC.
pub fn parse_absolute(s: &str) -> Option<i64> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(dt.timestamp_millis());
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(dt.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

/// A relative date: now minus N units, then moved to the unit's start or end if asked.
/// Returns the instant and whether the unit was hours. The sign is ignored, as in PostHog.
fn parse_relative(s: &str, now_ms: i64) -> Option<(i64, bool)> {
    let rest = s.strip_prefix('-').unwrap_or(s);
    let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
    let n: i64 = if digits == 0 {
        0
    } else {
        rest[..digits].parse().ok()?
    };
    let mut chars = rest[digits..].chars();
    let unit = chars.next()?;
    let position = chars.as_str();
    let start = match position {
        "" => None,
        "Start" => Some(true),
        "End" => Some(false),
        _ => return None,
    };
    let unit = match unit {
        'M' | 's' => unit,
        other => other.to_ascii_lowercase(),
    };
    let moved = match unit {
        's' => now_ms - n * 1000,
        'M' => now_ms - n * MINUTE_MS,
        'h' => now_ms - n * HOUR_MS,
        'd' => now_ms - n * DAY_MS,
        'w' => now_ms - n * WEEK_MS,
        'q' => now_ms - n * 13 * WEEK_MS,
        'm' => add_months(now_ms, -n),
        'y' => add_months(now_ms, -12 * n),
        _ => return None,
    };
    let unit_interval = |start_of: i64, next: i64| match start {
        None => moved,
        Some(true) => start_of,
        Some(false) => next - 1,
    };
    let ms = match unit {
        's' => moved,
        'M' => unit_interval(
            Interval::Minute.truncate(moved),
            Interval::Minute.truncate(moved) + MINUTE_MS,
        ),
        'h' => unit_interval(
            Interval::Hour.truncate(moved),
            Interval::Hour.truncate(moved) + HOUR_MS,
        ),
        'd' => unit_interval(
            Interval::Day.truncate(moved),
            Interval::Day.truncate(moved) + DAY_MS,
        ),
        'w' | 'q' => unit_interval(
            Interval::Week.truncate(moved),
            Interval::Week.truncate(moved) + WEEK_MS,
        ),
        'm' => {
            let first = Interval::Month.truncate(moved);
            unit_interval(first, add_months(first, 1))
        }
        _ => {
            let dt = to_datetime(moved);
            let first = Utc
                .with_ymd_and_hms(dt.year(), 1, 1, 0, 0, 0)
                .single()
                .map_or(moved, |d| d.timestamp_millis());
            unit_interval(first, add_months(first, 12))
        }
    };
    Some((ms, unit == 'h'))
}

/// Floors `ms` to a multiple of `step` (correct for negative times too).
fn floor_to(ms: i64, step: i64) -> i64 {
    ms.div_euclid(step) * step
}

/// A UTC datetime for ms since the epoch (the epoch itself if out of range).
pub fn to_datetime(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// `ms` moved by `n` calendar months, clamping the day to the month's length.
fn add_months(ms: i64, n: i64) -> i64 {
    let dt = to_datetime(ms);
    let months = Months::new(n.unsigned_abs().min(u32::MAX as u64) as u32);
    let moved = if n >= 0 {
        dt.checked_add_months(months)
    } else {
        dt.checked_sub_months(months)
    };
    moved.map_or(ms, |d| d.timestamp_millis())
}

/// The length of one interval in ms where it is fixed (not for months).
pub fn fixed_len_ms(interval: Interval) -> Option<i64> {
    match interval {
        Interval::Minute => Some(MINUTE_MS),
        Interval::Hour => Some(HOUR_MS),
        Interval::Day => Some(DAY_MS),
        Interval::Week => Some(WEEK_MS),
        Interval::Month => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(s: &str) -> i64 {
        parse_absolute(s).unwrap()
    }

    #[test]
    fn truncates_to_sunday_weeks_and_months() {
        // 2024-01-10 was a Wednesday; its week starts Sunday 2024-01-07.
        let t = ms("2024-01-10T15:30:00Z");
        assert_eq!(Interval::Week.truncate(t), ms("2024-01-07"));
        assert_eq!(Interval::Week.truncate(ms("2024-01-07")), ms("2024-01-07"));
        assert_eq!(Interval::Month.truncate(t), ms("2024-01-01"));
        assert_eq!(Interval::Hour.truncate(t), ms("2024-01-10T15:00:00Z"));
        assert_eq!(Interval::Month.add(ms("2024-01-31"), 1), ms("2024-02-29"));
        assert_eq!(Interval::Day.truncate(-1), -DAY_MS);
    }

    #[test]
    fn default_range_is_eight_days_through_today() {
        let now = ms("2024-01-10T15:30:00Z");
        let r = DateRange::resolve(None, Interval::Day, now).unwrap();
        assert_eq!(r.from_ms, Some(ms("2024-01-03")));
        assert_eq!(r.to_ms, ms("2024-01-11") - 1);
        assert_eq!(r.bounds(None).bucket_starts().len(), 8);
    }

    #[test]
    fn relative_strings() {
        let now = ms("2024-03-15T15:30:00Z");
        let p = |s: &str| parse_date(s, now, false).unwrap().ms;
        assert_eq!(p("dStart"), ms("2024-03-15"));
        assert_eq!(p("-1mStart"), ms("2024-02-01"));
        assert_eq!(p("-1mEnd"), ms("2024-03-01") - 1);
        assert_eq!(p("-2h"), ms("2024-03-15T13:30:00Z"));
        assert_eq!(p("-1yStart"), ms("2023-01-01"));
        assert_eq!(p("-30M"), ms("2024-03-15T15:00:00Z"));
        assert_eq!(p("wStart"), ms("2024-03-10"));
        assert!(parse_date("yesterday", now, false).is_err());
    }

    #[test]
    fn date_to_rounding_and_explicit() {
        let now = ms("2024-03-15T15:30:00Z");
        let range = json!({"date_from": "2024-03-01", "date_to": "2024-03-05"});
        let r = DateRange::resolve(Some(&range), Interval::Day, now).unwrap();
        assert_eq!(r.to_ms, ms("2024-03-06") - 1);
        let r = DateRange::resolve(Some(&range), Interval::Hour, now).unwrap();
        assert_eq!(r.to_ms, ms("2024-03-05"));
        let range = json!({"date_from": "2024-03-01T10:15:00Z", "date_to": "2024-03-05T08:00:00Z", "explicitDate": true});
        let r = DateRange::resolve(Some(&range), Interval::Day, now).unwrap();
        assert_eq!(r.from_ms, Some(ms("2024-03-01T10:15:00Z")));
        assert_eq!(r.to_ms, ms("2024-03-05T08:00:00Z"));
        let range = json!({"date_from": "-24h"});
        let r = DateRange::resolve(Some(&range), Interval::Hour, now).unwrap();
        assert_eq!(r.from_ms, Some(ms("2024-03-14T15:00:00Z")));
        assert_eq!(r.to_ms, ms("2024-03-15T16:00:00Z") - 1);
        let bad = json!({"date_from": "soon"});
        let err = DateRange::resolve(Some(&bad), Interval::Day, now).unwrap_err();
        assert_eq!(err.field, "dateRange.date_from");
    }

    #[test]
    fn all_takes_the_earliest_event() {
        let now = ms("2024-03-15T15:30:00Z");
        let range = json!({"date_from": "all"});
        let r = DateRange::resolve(Some(&range), Interval::Day, now).unwrap();
        assert_eq!(r.from_ms, None);
        assert!(r.contains(0));
        let b = r.bounds(Some(ms("2024-03-13T08:00:00Z")));
        assert_eq!(b.from_ms, ms("2024-03-13"));
        assert_eq!(b.bucket_starts().len(), 3);
    }

    #[test]
    fn labels_and_days() {
        let b = Bounds {
            from_ms: ms("2024-01-01"),
            to_ms: ms("2024-02-02") - 1,
            interval: Interval::Week,
        };
        let weeks = b.bucket_starts();
        assert_eq!(weeks[0], ms("2023-12-31"));
        assert_eq!(b.label(weeks[0]), "1–6 Jan");
        assert_eq!(b.label(ms("2024-01-07")), "7–13 Jan");
        assert_eq!(b.label(ms("2024-01-28")), "28-Jan – 1-Feb");
        assert_eq!(b.day_string(weeks[0]), "2023-12-31");
        let b = Bounds {
            interval: Interval::Day,
            ..b
        };
        assert_eq!(b.label(ms("2024-01-01")), "1-Jan-2024");
        let b = Bounds {
            interval: Interval::Hour,
            ..b
        };
        assert_eq!(b.label(ms("2024-01-01T13:00:00Z")), "1-Jan 13:00");
        assert_eq!(
            b.day_string(ms("2024-01-01T13:00:00Z")),
            "2024-01-01 13:00:00"
        );
        let b = Bounds {
            interval: Interval::Month,
            ..b
        };
        assert_eq!(b.label(ms("2024-01-01")), "Jan 2024");
        assert_eq!(
            week_label(ms("2024-12-29"), ms("2025-01-04")),
            "29-Dec-2024 – 4-Jan-2025"
        );
        assert_eq!(iso(ms("2024-01-01")), "2024-01-01T00:00:00.000Z");
    }
}
