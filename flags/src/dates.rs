//! Date operators: `is_date_before`, `is_date_after` and `is_date_exact`.
//!
//! A filter value is either relative, `-?N[hdwmy]` with `N < 10000` (N hours, days, weeks,
//! months or years before *now*; the sign is optional and ignored), or an absolute ISO-8601
//! date or date-time. Person values must be strings in the absolute forms. Times without an
//! offset are UTC; a trailing `Z` or ` UTC` is UTC; a bare four-digit year means that year on
//! today's month and day. Month and year steps clamp the day one step at a time, so March 31
//! minus two months is January 28.
//!
//! `is_date_before` is `person < filter`, `is_date_after` is `person > filter`, and
//! `is_date_exact` is equality of the two instants.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// A compiled date filter value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateValue {
    /// A fixed instant.
    Absolute(DateTime<Utc>),
    /// `amount` units before the evaluation's `now`.
    Relative(u32, Unit),
    /// A bare year: that year on the evaluation's month and day, at midnight UTC.
    YearOnToday(i32),
}

/// Units of a relative date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `h`
    Hour,
    /// `d`
    Day,
    /// `w`
    Week,
    /// `m`
    Month,
    /// `y`
    Year,
}

impl DateValue {
    /// Compiles a filter value; `None` when it is neither relative nor a valid date.
    /// `now` is only used to check that a bare year exists on today's month and day.
    pub fn compile(value: &str, now: DateTime<Utc>) -> Option<DateValue> {
        if let Some(rel) = parse_relative(value) {
            return Some(rel);
        }
        let trimmed = value.trim();
        if trimmed.len() == 4 && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            let year = trimmed.parse().ok()?;
            parse_datetime(trimmed, now)?;
            return Some(DateValue::YearOnToday(year));
        }
        parse_datetime(value, now).map(DateValue::Absolute)
    }

    /// The instant this value denotes at `now`; `None` when it falls outside the calendar.
    pub fn resolve(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match *self {
            DateValue::Absolute(t) => Some(t),
            DateValue::YearOnToday(year) => {
                let date = NaiveDate::from_ymd_opt(year, now.month(), now.day())?;
                Some(Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN)))
            }
            DateValue::Relative(n, unit) => match unit {
                Unit::Hour => now.checked_sub_signed(Duration::hours(n.into())),
                Unit::Day => now.checked_sub_signed(Duration::days(n.into())),
                Unit::Week => now.checked_sub_signed(Duration::weeks(n.into())),
                Unit::Month => subtract_months(now, n),
                Unit::Year => subtract_years(now, n),
            },
        }
    }
}

fn parse_relative(value: &str) -> Option<DateValue> {
    let body = value.strip_prefix('-').unwrap_or(value);
    let (digits, unit) = body.split_at(body.len().checked_sub(1)?);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = digits.parse().ok()?;
    if n >= 10_000 {
        return None;
    }
    let unit = match unit {
        "h" => Unit::Hour,
        "d" => Unit::Day,
        "w" => Unit::Week,
        "m" => Unit::Month,
        "y" => Unit::Year,
        _ => return None,
    };
    Some(DateValue::Relative(n, unit))
}

fn subtract_months(now: DateTime<Utc>, months: u32) -> Option<DateTime<Utc>> {
    let current = i64::from(now.year()) * 12 + i64::from(now.month0());
    let target = current - i64::from(months);
    let year = i32::try_from(target.div_euclid(12)).ok()?;
    let month = u32::try_from(target.rem_euclid(12)).ok()? + 1;
    if !(1..=9999).contains(&year) {
        return None;
    }
    let mut day = now.day();
    let mut index = current - 1;
    while index >= target && day > 28 {
        let y = i32::try_from(index.div_euclid(12)).ok()?;
        let m = u32::try_from(index.rem_euclid(12)).ok()? + 1;
        day = day.min(days_in_month(y, m)?);
        index -= 1;
    }
    with_date(now, year, month, day)
}

fn subtract_years(now: DateTime<Utc>, years: u32) -> Option<DateTime<Utc>> {
    let year = now.year() - i32::try_from(years).ok()?;
    if !(1..=9999).contains(&year) {
        return None;
    }
    let day = if years > 0 && now.month() == 2 && now.day() == 29 {
        28
    } else {
        now.day()
    };
    with_date(now, year, now.month(), day)
}

fn with_date(now: DateTime<Utc>, year: i32, month: u32, day: u32) -> Option<DateTime<Utc>> {
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    Some(Utc.from_utc_datetime(&date.and_time(now.time())))
}

fn days_in_month(year: i32, month: u32) -> Option<u32> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    };
    u32::try_from((next - first).num_days()).ok()
}

/// Parses an absolute date or date-time (see the module docs).
pub fn parse_datetime(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let text = value.trim();
    if text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit()) {
        let year: i32 = text.parse().ok()?;
        let date = NaiveDate::from_ymd_opt(year, now.month(), now.day())?;
        return Some(Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN)));
    }
    let (body, utc_suffix) = if let Some(b) = text.strip_suffix('Z') {
        (b, true)
    } else if text.len() >= 4
        && text.is_char_boundary(text.len() - 4)
        && text[text.len() - 4..].eq_ignore_ascii_case(" UTC")
    {
        (&text[..text.len() - 4], true)
    } else {
        (text, false)
    };
    let (local, offset_secs) = if utc_suffix {
        (body, 0)
    } else {
        split_offset(body)?
    };
    let naive = parse_naive(local)?;
    let utc = naive.checked_sub_signed(Duration::seconds(offset_secs))?;
    Some(Utc.from_utc_datetime(&utc))
}

/// Splits a trailing `±HH[:MM[:SS]]`/`±HHMM` offset (optionally after one space) off a
/// date-time. Offsets only follow a time, so the search starts after the date.
fn split_offset(text: &str) -> Option<(&str, i64)> {
    let b = text.as_bytes();
    // A date is at least 8 bytes; an offset sign can only appear in the time part.
    let pos = b
        .iter()
        .enumerate()
        .skip(9)
        .rev()
        .find(|(_, c)| **c == b'+' || **c == b'-')
        .map(|(i, _)| i);
    let Some(pos) = pos else {
        return Some((text, 0));
    };
    let sign = if b[pos] == b'-' { -1 } else { 1 };
    let digits: String = text[pos + 1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|c| c.is_ascii_digit()) || !matches!(digits.len(), 2 | 4 | 6) {
        return None;
    }
    let h: i64 = digits[0..2].parse().ok()?;
    let m: i64 = digits.get(2..4).map_or(Ok(0), str::parse).ok()?;
    let s: i64 = digits.get(4..6).map_or(Ok(0), str::parse).ok()?;
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let mut local = &text[..pos];
    if let Some(stripped) = local.strip_suffix(' ') {
        local = stripped;
    }
    Some((local, sign * (h * 3600 + m * 60 + s)))
}

fn parse_naive(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    let (date, rest) = if b.len() >= 10 && b[4] == b'-' && b[7] == b'-' {
        (
            parse_ymd(&text[0..4], &text[5..7], &text[8..10])?,
            &text[10..],
        )
    } else if b.len() >= 8 && b[..8].iter().all(u8::is_ascii_digit) {
        (
            parse_ymd(&text[0..4], &text[4..6], &text[6..8])?,
            &text[8..],
        )
    } else {
        return None;
    };
    if rest.is_empty() {
        return Some(date.and_time(NaiveTime::MIN));
    }
    // Any single character separates the date from the time.
    let mut chars = rest.chars();
    chars.next()?;
    Some(date.and_time(parse_time(chars.as_str())?))
}

fn parse_ymd(y: &str, m: &str, d: &str) -> Option<NaiveDate> {
    let all_digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if !(all_digits(y) && all_digits(m) && all_digits(d)) {
        return None;
    }
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

fn parse_time(text: &str) -> Option<NaiveTime> {
    let (clock, fraction) = match text.split_once(['.', ',']) {
        Some((c, f)) => (c, Some(f)),
        None => (text, None),
    };
    let digits: String = clock.chars().filter(|c| *c != ':').collect();
    let extended = clock.contains(':');
    if extended && clock.len() != digits.len() + (digits.len() / 2).saturating_sub(1) {
        return None;
    }
    if !digits.bytes().all(|c| c.is_ascii_digit()) || !matches!(digits.len(), 2 | 4 | 6) {
        return None;
    }
    let h: u32 = digits[0..2].parse().ok()?;
    let m: u32 = digits.get(2..4).map_or(Ok(0), str::parse).ok()?;
    let s: u32 = digits.get(4..6).map_or(Ok(0), str::parse).ok()?;
    let micros = match fraction {
        None => 0,
        Some(f) if digits.len() == 6 && !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()) => {
            let mut padded: String = f.chars().take(6).collect();
            while padded.len() < 6 {
                padded.push('0');
            }
            padded.parse().ok()?
        }
        Some(_) => return None,
    };
    NaiveTime::from_hms_micro_opt(h, m, s, micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 31, 12, 0, 0).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        parse_datetime(s, now()).unwrap()
    }

    #[test]
    fn absolute_forms() {
        let noon = Utc.with_ymd_and_hms(2024, 1, 2, 12, 0, 0).unwrap();
        assert_eq!(at("2024-01-02T12:00:00Z"), noon);
        assert_eq!(at("2024-01-02 12:00:00"), noon);
        assert_eq!(at("2024-01-02T12:00:00+00:00"), noon);
        assert_eq!(at("2024-01-02T14:00:00+02:00"), noon);
        assert_eq!(at("2024-01-02 14:00 +02:00"), noon);
        assert_eq!(at("2024-01-02T10:00:00-0200"), noon);
        assert_eq!(at("2024-01-02 12:00:00 UTC"), noon);
        assert_eq!(at("20240102T120000"), noon);
        assert_eq!(at("2024-01-02T12"), noon);
        assert_eq!(
            at("2024-01-02T12:00:00.5Z"),
            noon + Duration::milliseconds(500)
        );
        assert_eq!(at("2024-01-02"), noon - Duration::hours(12));
        assert_eq!(
            at("2023"),
            Utc.with_ymd_and_hms(2023, 3, 31, 0, 0, 0).unwrap()
        );
        assert!(parse_datetime("yesterday", now()).is_none());
        assert!(parse_datetime("2024-13-01", now()).is_none());
        assert!(parse_datetime("2024-01-02T25:00", now()).is_none());
    }

    #[test]
    fn relative_forms() {
        let r = |s: &str| {
            DateValue::compile(s, now())
                .unwrap()
                .resolve(now())
                .unwrap()
        };
        assert_eq!(r("-1h"), now() - Duration::hours(1));
        assert_eq!(r("2d"), now() - Duration::days(2));
        assert_eq!(r("-1w"), now() - Duration::weeks(1));
        // Through February 29 in a leap year.
        assert_eq!(
            r("-2m"),
            Utc.with_ymd_and_hms(2024, 1, 29, 12, 0, 0).unwrap()
        );
        let march_2023 = Utc.with_ymd_and_hms(2023, 3, 31, 0, 0, 0).unwrap();
        assert_eq!(
            DateValue::Relative(2, Unit::Month).resolve(march_2023),
            Some(Utc.with_ymd_and_hms(2023, 1, 28, 0, 0, 0).unwrap())
        );
        assert_eq!(
            r("-1m"),
            Utc.with_ymd_and_hms(2024, 2, 29, 12, 0, 0).unwrap()
        );
        assert_eq!(
            r("-1y"),
            Utc.with_ymd_and_hms(2023, 3, 31, 12, 0, 0).unwrap()
        );
        assert!(DateValue::compile("-10000d", now()).is_none());
        assert!(DateValue::compile("-1x", now()).is_none());
    }

    #[test]
    fn leap_day_minus_a_year_clamps() {
        let leap = Utc.with_ymd_and_hms(2024, 2, 29, 0, 0, 0).unwrap();
        let v = DateValue::Relative(1, Unit::Year).resolve(leap).unwrap();
        assert_eq!(v, Utc.with_ymd_and_hms(2023, 2, 28, 0, 0, 0).unwrap());
    }
}
