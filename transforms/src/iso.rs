//! Event timestamps as PostHog formats them: ISO 8601 in UTC with milliseconds
//! (`2023-11-14T22:13:20.123Z`).
//!
//! Every event a transformation runs on needs its timestamp in this form, and formatting it
//! through chrono's general formatter was about 2% of a small transformation's run. Years 0 to
//! 9999 (the form above) are written digit by digit; other years, and anything chrono cannot
//! represent, go through chrono as before.

use chrono::{Datelike, Timelike};

/// `us` (microseconds since the Unix epoch) as `YYYY-MM-DDTHH:MM:SS.mmmZ`; empty when out of
/// chrono's range.
pub(crate) fn iso(us: i64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_micros(us) else {
        return String::new();
    };
    let (year, month, day) = (t.year(), t.month(), t.day());
    let (hour, minute, second) = (t.hour(), t.minute(), t.second());
    let Ok(year) = u32::try_from(year) else {
        return general(&t);
    };
    // From microseconds, so never a leap second (whose nanoseconds would pass 10^9).
    let millis = t.nanosecond() / 1_000_000;
    if year > 9999 || millis > 999 {
        return general(&t);
    }
    let mut buf = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, digits: usize, mut n: u32| {
        for i in (at..at + digits).rev() {
            // `n % 10` is a digit.
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, hour);
    put(14, 2, minute);
    put(17, 2, second);
    put(20, 3, millis);
    // The buffer holds ASCII only.
    String::from_utf8(buf.to_vec()).unwrap_or_else(|_| general(&t))
}

fn general(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chrono_iso(us: i64) -> String {
        chrono::DateTime::from_timestamp_micros(us)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    }

    #[test]
    fn edges_match_chrono() {
        for us in [
            0,
            -1,
            1,
            999,
            1_000,
            1_700_000_000_123_456,
            -62_135_596_800_000_000, // 0001-01-01
            -62_167_219_200_000_000, // 0000-01-01
            -62_167_219_200_000_001, // just before year 0
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
            253_402_300_800_000_000, // 10000-01-01
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(iso(us), chrono_iso(us), "{us}");
        }
    }

    proptest! {
        #[test]
        fn matches_chrono(us in any::<i64>(), recent in 0i64..4_102_444_800_000_000) {
            prop_assert_eq!(iso(us), chrono_iso(us));
            prop_assert_eq!(iso(recent), chrono_iso(recent));
            prop_assert_eq!(iso(-recent), chrono_iso(-recent));
        }
    }
}
