//! Dates and times: `Date` values (calendar days) and `DateTime` values (epoch seconds + zone),
//! ClickHouse-style `formatDateTime`, arithmetic, truncation and the ISO-ish parser PostHog uses
//! (`YYYY-MM-DD[( |T)HH:MM[:SS[.fff]]][Z|±HH[:MM]]`).

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::{arg, NativeFn};
use crate::error::VmError;
use crate::runtime::Runtime;
use crate::value::{Dict, Key, Value};

type Reg<'a> = &'a mut dyn FnMut(&'static str, usize, Option<usize>, NativeFn);

fn tz(name: &str) -> Result<Tz, VmError> {
    Tz::from_str(name).map_err(|_| VmError::exception(format!("Unknown time zone: {name}")))
}

/// Epoch seconds of midnight UTC on a date.
pub fn date_to_seconds(year: i32, month: u32, day: u32) -> f64 {
    NaiveDate::from_ymd_opt(year, month, day)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp() as f64)
        .unwrap_or(f64::NAN)
}

/// Parses PostHog's date-like grammar to epoch seconds; `zone` applies when the text has none.
pub fn parse_date_like(s: &str, zone: Option<&str>) -> Option<f64> {
    let t = s.trim();
    let b = t.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let date = NaiveDate::parse_from_str(t.get(..10)?, "%Y-%m-%d").ok()?;
    let rest = t.get(10..)?;
    let (mut h, mut m, mut sec, mut ms) = (0, 0, 0, 0u32);
    let mut offset: Option<i32> = None;
    if !rest.is_empty() {
        let sep = rest.as_bytes()[0];
        if !matches!(sep, b'T' | b't' | b' ') {
            return None;
        }
        let r = &rest[1..];
        let tb = r.as_bytes();
        if tb.len() < 5 || tb[2] != b':' {
            return None;
        }
        h = r.get(..2)?.parse().ok()?;
        m = r.get(3..5)?.parse().ok()?;
        let mut i = 5;
        if tb.get(i) == Some(&b':') {
            sec = r.get(i + 1..i + 3)?.parse().ok()?;
            i += 3;
            if matches!(tb.get(i), Some(b'.' | b',')) {
                let start = i + 1;
                let mut j = start;
                while j < tb.len() && tb[j].is_ascii_digit() && j - start < 9 {
                    j += 1;
                }
                if j == start {
                    return None;
                }
                let frac = r.get(start..j)?;
                let padded = format!("{:0<3}", &frac[..frac.len().min(3)]);
                ms = padded.parse().ok()?;
                i = j;
            }
        }
        let z = r.get(i..)?;
        if !z.is_empty() {
            if z == "Z" || z == "z" {
                offset = Some(0);
            } else {
                let sign = match z.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
                let oh: i32 = digits.get(..2)?.parse().ok()?;
                let om: i32 = if digits.len() >= 4 {
                    digits.get(2..4)?.parse().ok()?
                } else {
                    0
                };
                if digits.len() != 2 && digits.len() != 4 || oh > 23 || om > 59 {
                    return None;
                }
                offset = Some(sign * (oh * 3600 + om * 60));
            }
        }
        if h > 23 || m > 59 || sec > 59 {
            return None;
        }
    }
    let naive = date.and_hms_milli_opt(h, m, sec, ms)?;
    let secs = match offset {
        Some(off) => naive.and_utc().timestamp_millis() as f64 / 1000.0 - off as f64,
        None => {
            let zone = tz(zone.unwrap_or("UTC")).ok()?;
            let local = zone.from_local_datetime(&naive).earliest()?;
            local.timestamp_millis() as f64 / 1000.0
        }
    };
    Some(secs)
}

fn to_chrono(dt: f64, zone: &str) -> Result<DateTime<Tz>, VmError> {
    let z = tz(zone)?;
    if !dt.is_finite() {
        return Err(VmError::exception("Invalid DateTime"));
    }
    let ms = (dt * 1000.0).round() as i64;
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|d| d.with_timezone(&z))
        .ok_or_else(|| VmError::exception("DateTime out of range"))
}

fn from_chrono(d: DateTime<Tz>) -> Value {
    Value::DateTime {
        dt: d.timestamp_millis() as f64 / 1000.0,
        zone: d.timezone().name().into(),
    }
}

/// Luxon-style ISO text of a DateTime in its zone, as `toString` prints it.
pub fn iso_string(dt: f64, zone: &str) -> String {
    match to_chrono(dt, zone) {
        Ok(d) => {
            let off = d.offset().fix().local_minus_utc();
            let base = d.format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
            if off == 0 && (zone == "UTC" || zone == "Etc/UTC") {
                format!("{base}Z")
            } else {
                let sign = if off < 0 { '-' } else { '+' };
                format!(
                    "{base}{sign}{:02}:{:02}",
                    off.abs() / 3600,
                    off.abs() % 3600 / 60
                )
            }
        }
        Err(_) => "Invalid DateTime".into(),
    }
}

use chrono::Offset;

/// Coerces a Date, DateTime or date-like string to a chrono time.
fn coerce(v: &Value) -> Result<DateTime<Tz>, VmError> {
    match v {
        Value::DateTime { dt, zone } => to_chrono(*dt, zone),
        Value::Date { year, month, day } => to_chrono(date_to_seconds(*year, *month, *day), "UTC"),
        Value::Str(s) => match parse_date_like(s, None) {
            Some(secs) => to_chrono(secs, "UTC"),
            None => Err(VmError::exception(format!("Invalid date: {s}"))),
        },
        other => Err(VmError::exception(format!(
            "Expected a Date or DateTime, got {}",
            other.type_name()
        ))),
    }
}

fn add_interval(v: &Value, unit: &str, amount: i64) -> Result<Value, VmError> {
    let d = coerce(v)?;
    let out = match unit {
        "second" => d.checked_add_signed(Duration::seconds(amount)),
        "minute" => d.checked_add_signed(Duration::minutes(amount)),
        "hour" => d.checked_add_signed(Duration::hours(amount)),
        "day" => d.checked_add_signed(Duration::days(amount)),
        "week" => d.checked_add_signed(Duration::weeks(amount)),
        "month" | "year" => {
            let months = if unit == "year" { amount * 12 } else { amount };
            let m = chrono::Months::new(months.unsigned_abs().min(u32::MAX as u64) as u32);
            if months >= 0 {
                d.checked_add_months(m)
            } else {
                d.checked_sub_months(m)
            }
        }
        other => {
            return Err(VmError::exception(format!(
                "Unsupported interval unit: {other}"
            )))
        }
    }
    .ok_or_else(|| VmError::exception("Date out of range"))?;
    Ok(match v {
        Value::Date { .. } => Value::Date {
            year: out.year(),
            month: out.month(),
            day: out.day(),
        },
        _ => from_chrono(out),
    })
}

fn trunc(v: &Value, unit: &str) -> Result<Value, VmError> {
    let d = coerce(v)?;
    let z = d.timezone();
    let naive = d.naive_local();
    let date = naive.date();
    let t = match unit {
        "year" => NaiveDate::from_ymd_opt(date.year(), 1, 1).and_then(|x| x.and_hms_opt(0, 0, 0)),
        "month" => NaiveDate::from_ymd_opt(date.year(), date.month(), 1)
            .and_then(|x| x.and_hms_opt(0, 0, 0)),
        "week" => {
            let back = date.weekday().num_days_from_monday() as i64;
            (date - Duration::days(back)).and_hms_opt(0, 0, 0)
        }
        "day" => date.and_hms_opt(0, 0, 0),
        "hour" => date.and_hms_opt(naive.hour(), 0, 0),
        "minute" => date.and_hms_opt(naive.hour(), naive.minute(), 0),
        other => {
            return Err(VmError::exception(format!(
                "Unsupported unit for dateTrunc: {other}"
            )))
        }
    };
    let t: NaiveDateTime = t.ok_or_else(|| VmError::exception("Date out of range"))?;
    let local = z
        .from_local_datetime(&t)
        .earliest()
        .ok_or_else(|| VmError::exception("Invalid local time"))?;
    Ok(from_chrono(local))
}

fn interval(rt: &mut Runtime, value: &Value, unit: &str) -> Value {
    let mut m = Dict::default();
    m.insert(Key::Str("__hogInterval__".into()), Value::Bool(true));
    m.insert(Key::Str("value".into()), value.clone());
    m.insert(Key::Str("unit".into()), Value::str(unit));
    rt.heap.dict(m)
}

fn int_arg(v: &Value) -> i64 {
    v.as_f64().filter(|f| f.is_finite()).unwrap_or(0.0) as i64
}

fn zone_arg(v: &Value) -> String {
    v.as_str().unwrap_or("UTC").to_string()
}

fn now_secs() -> f64 {
    Utc::now().timestamp_millis() as f64 / 1000.0
}

pub(super) fn register(add: Reg<'_>) {
    add("now", 0, Some(1), |_, _, a| {
        let zone = zone_arg(arg(a, 0));
        tz(&zone)?;
        Ok(Value::DateTime {
            dt: now_secs(),
            zone: zone.into(),
        })
    });
    add("today", 0, Some(0), |_, _, _| {
        let d = Utc::now();
        Ok(Value::Date {
            year: d.year(),
            month: d.month(),
            day: d.day(),
        })
    });
    add("toUnixTimestamp", 1, Some(2), |_, _, a| {
        Ok(Value::Float(unix(a)?))
    });
    add("toUnixTimestampMilli", 1, Some(2), |_, _, a| {
        Ok(Value::Float(unix(a)? * 1000.0))
    });
    add("fromUnixTimestamp", 1, Some(1), |_, _, a| {
        Ok(Value::DateTime {
            dt: arg(a, 0).as_f64().unwrap_or(f64::NAN),
            zone: "UTC".into(),
        })
    });
    add("fromUnixTimestampMilli", 1, Some(1), |_, _, a| {
        Ok(Value::DateTime {
            dt: arg(a, 0).as_f64().unwrap_or(f64::NAN) / 1000.0,
            zone: "UTC".into(),
        })
    });
    add("toTimeZone", 2, Some(2), |_, _, a| match arg(a, 0) {
        Value::DateTime { dt, .. } => {
            let zone = zone_arg(arg(a, 1));
            tz(&zone)?;
            Ok(Value::DateTime {
                dt: *dt,
                zone: zone.into(),
            })
        }
        _ => Err(VmError::exception("Expected a DateTime")),
    });
    add("toDate", 1, Some(1), |_, _, a| {
        let secs = match arg(a, 0) {
            Value::Str(s) => parse_date_like(s, None),
            v => v.as_f64(),
        };
        let d = to_chrono(secs.unwrap_or(f64::NAN), "UTC")?;
        Ok(Value::Date {
            year: d.year(),
            month: d.month(),
            day: d.day(),
        })
    });
    add("toDateTime", 1, Some(2), |_, _, a| {
        let zone = zone_arg(arg(a, 1));
        let dt = match arg(a, 0) {
            Value::Str(s) => parse_date_like(s, Some(&zone)).unwrap_or(f64::NAN),
            Value::DateTime { dt, .. } => *dt,
            v => v.as_f64().unwrap_or(f64::NAN),
        };
        Ok(Value::DateTime {
            dt,
            zone: zone.into(),
        })
    });
    add("formatDateTime", 2, Some(3), |_, _, a| {
        let Value::DateTime { dt, zone } = arg(a, 0) else {
            return Err(VmError::exception("Expected a DateTime"));
        };
        let Some(fmt) = arg(a, 1).as_str().filter(|f| !f.is_empty()) else {
            return Err(VmError::exception(
                "formatDateTime requires at least 2 arguments",
            ));
        };
        let zone = arg(a, 2).as_str().unwrap_or(zone);
        Ok(Value::str(format_clickhouse(&to_chrono(*dt, zone)?, fmt)))
    });
    add("dateAdd", 3, Some(3), |_, _, a| {
        add_interval(
            arg(a, 2),
            arg(a, 0).as_str().unwrap_or(""),
            int_arg(arg(a, 1)),
        )
    });
    add("addDays", 2, Some(2), |_, _, a| {
        add_interval(arg(a, 0), "day", int_arg(arg(a, 1)))
    });
    add("dateDiff", 3, Some(3), |_, _, a| {
        let (s, e) = (coerce(arg(a, 1))?, coerce(arg(a, 2))?);
        let secs = (e.timestamp_millis() - s.timestamp_millis()) as f64 / 1000.0;
        let unit = arg(a, 0).as_str().unwrap_or("");
        let v = match unit {
            "second" => secs.floor(),
            "minute" => (secs / 60.0).floor(),
            "hour" => (secs / 3600.0).floor(),
            "day" => (secs / 86400.0).floor(),
            "week" => (secs / 86400.0 / 7.0).floor(),
            "month" => ((e.year() - s.year()) * 12 + e.month() as i32 - s.month() as i32) as f64,
            "year" => (e.year() - s.year()) as f64,
            other => {
                return Err(VmError::exception(format!(
                    "Unsupported unit for dateDiff: {other}"
                )))
            }
        };
        Ok(Value::Int(v as i64))
    });
    add("dateTrunc", 2, Some(3), |_, _, a| {
        trunc(arg(a, 1), arg(a, 0).as_str().unwrap_or(""))
    });
    add("toStartOfDay", 1, Some(2), |_, _, a| {
        trunc(arg(a, 0), "day")
    });
    add("toStartOfHour", 1, Some(1), |_, _, a| {
        trunc(arg(a, 0), "hour")
    });
    add("toStartOfMonth", 1, Some(1), |_, _, a| {
        trunc(arg(a, 0), "month")
    });
    add("toStartOfWeek", 1, Some(2), |_, _, a| {
        trunc(arg(a, 0), "week")
    });
    add("toIntervalDay", 1, Some(1), |rt, _, a| {
        Ok(interval(rt, arg(a, 0), "day"))
    });
    add("toIntervalHour", 1, Some(1), |rt, _, a| {
        Ok(interval(rt, arg(a, 0), "hour"))
    });
    add("toIntervalMinute", 1, Some(1), |rt, _, a| {
        Ok(interval(rt, arg(a, 0), "minute"))
    });
    add("toIntervalMonth", 1, Some(1), |rt, _, a| {
        Ok(interval(rt, arg(a, 0), "month"))
    });
    add("toYear", 1, Some(1), |_, _, a| {
        Ok(Value::Int(coerce(arg(a, 0))?.year() as i64))
    });
    add("toMonth", 1, Some(1), |_, _, a| {
        Ok(Value::Int(coerce(arg(a, 0))?.month() as i64))
    });
    add("toYYYYMM", 1, Some(1), |_, _, a| {
        let d = coerce(arg(a, 0))?;
        Ok(Value::Int(d.year() as i64 * 100 + d.month() as i64))
    });
    add("extract", 2, Some(2), |_, _, a| {
        let d = coerce(arg(a, 1))?;
        Ok(Value::Int(match arg(a, 0).as_str().unwrap_or("") {
            "year" => d.year() as i64,
            "month" => d.month() as i64,
            "day" => d.day() as i64,
            "hour" => d.hour() as i64,
            "minute" => d.minute() as i64,
            "second" => d.second() as i64,
            other => return Err(VmError::exception(format!("Unknown extract part: {other}"))),
        }))
    });
}

fn unix(a: &[Value]) -> Result<f64, VmError> {
    Ok(match arg(a, 0) {
        Value::DateTime { dt, .. } => *dt,
        Value::Date { year, month, day } => date_to_seconds(*year, *month, *day),
        Value::Str(s) => {
            let zone = arg(a, 1).as_str();
            parse_date_like(s, zone).unwrap_or(f64::NAN)
        }
        v => v.as_f64().unwrap_or(f64::NAN),
    })
}

/// Formats with ClickHouse `formatDateTime` letters (as PostHog's VM maps them).
pub fn format_clickhouse(d: &DateTime<Tz>, fmt: &str) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(l) = chars.next() else { break };
        let piece = match l {
            'a' => d.format("%a").to_string(),
            'b' => d.format("%b").to_string(),
            'c' | 'm' => d.format("%m").to_string(),
            'C' | 'g' | 'y' => d.format("%y").to_string(),
            'd' => d.format("%d").to_string(),
            'D' => d.format("%m/%d/%y").to_string(),
            'e' => d.day().to_string(),
            'f' => format!("{:03}", d.timestamp_subsec_millis()),
            'F' => d.format("%Y-%m-%d").to_string(),
            'G' | 'Y' => d.format("%Y").to_string(),
            'h' | 'I' | 'l' => d.format("%I").to_string(),
            'H' | 'k' => d.format("%H").to_string(),
            'i' => d.format("%M").to_string(),
            'j' => d.format("%j").to_string(),
            'M' => d.format("%B").to_string(),
            'n' => "\n".into(),
            'p' => d.format("%p").to_string(),
            'Q' => ((d.month() - 1) / 3 + 1).to_string(),
            'r' => d.format("%I:%M %p").to_string(),
            'R' => d.format("%H:%M").to_string(),
            's' | 'S' => d.format("%S").to_string(),
            't' => "\t".into(),
            'T' => d.format("%H:%M:%S").to_string(),
            'u' | 'w' => d.weekday().number_from_monday().to_string(),
            'V' => format!("{:02}", d.iso_week().week()),
            'W' => d.format("%A").to_string(),
            'z' => d.format("%z").to_string(),
            '%' => "%".into(),
            _ => String::new(),
        };
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_date_like_strings() {
        assert_eq!(parse_date_like("2024-01-02", None), Some(1704153600.0));
        assert_eq!(
            parse_date_like("2024-01-02T03:04:05.5Z", None),
            Some(1704164645.5)
        );
        assert_eq!(
            parse_date_like("2024-01-02 01:00:00+01:00", None),
            Some(1704153600.0)
        );
        assert_eq!(parse_date_like("2024", None), None);
        assert_eq!(parse_date_like("2024-13-01", None), None);
    }

    #[test]
    fn formats_clickhouse_letters() {
        let d = to_chrono(1704164645.5, "UTC").unwrap();
        assert_eq!(
            format_clickhouse(&d, "%Y-%m-%d %H:%i:%S.%f"),
            "2024-01-02 03:04:05.500"
        );
        assert_eq!(iso_string(1704164645.5, "UTC"), "2024-01-02T03:04:05.500Z");
    }
}
