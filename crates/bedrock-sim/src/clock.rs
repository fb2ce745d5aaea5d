//! Wall-clock time for the simulator: the crate's one reading of `SystemTime::now`, an
//! adjustable [`SimClock`] on top of it, and the two date formats SigV4 and STS use.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Reads the wall clock. Everything in the crate that needs "now" goes through
/// [`SimClock::now`], which calls this unless the clock was frozen by the builder.
#[expect(
    clippy::disallowed_methods,
    reason = "the simulator needs wall-clock time for SigV4 skew checks and STS credential expiry; this is its one clock"
)]
pub(crate) fn clock() -> SystemTime {
    SystemTime::now()
}

/// The simulator's notion of "now": the wall clock (or a frozen instant) plus an offset that
/// tests may advance to expire credentials without sleeping.
#[derive(Debug)]
pub(crate) struct SimClock {
    frozen: Option<SystemTime>,
    offset: Mutex<Duration>,
}

impl SimClock {
    pub(crate) fn new(frozen: Option<SystemTime>) -> Self {
        Self {
            frozen,
            offset: Mutex::new(Duration::ZERO),
        }
    }

    pub(crate) fn now(&self) -> SystemTime {
        let base = self.frozen.unwrap_or_else(clock);
        base + *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(|e| e.into_inner());
        *offset += by;
    }
}

/// Parses a SigV4 `x-amz-date` (`20240115T120000Z`).
pub(crate) fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num =
        |range: std::ops::Range<usize>| -> Option<u32> { value.get(range)?.parse::<u32>().ok() };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Formats a time as ISO 8601 with second precision (`2026-11-25T10:00:00Z`), as STS does.
pub(crate) fn format_iso8601(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let secs = i64::try_from(secs).unwrap_or(i64::MAX / 2);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_date_round_trips_through_iso8601() {
        let t = parse_amz_date("20240115T120003Z").unwrap();
        assert_eq!(format_iso8601(t), "2024-01-15T12:00:03Z");
        let leap = parse_amz_date("20240229T235959Z").unwrap();
        assert_eq!(format_iso8601(leap), "2024-02-29T23:59:59Z");
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_705_320_003
        );
    }

    #[test]
    fn malformed_amz_dates_are_rejected() {
        for bad in [
            "",
            "2024-01-15T12:00:00Z",
            "20241315T120000Z",
            "20240115T120000",
        ] {
            assert!(parse_amz_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn advancing_a_frozen_clock() {
        let at = parse_amz_date("20240115T120000Z").unwrap();
        let clock = SimClock::new(Some(at));
        clock.advance(Duration::from_secs(90));
        assert_eq!(format_iso8601(clock.now()), "2024-01-15T12:01:30Z");
    }
}
