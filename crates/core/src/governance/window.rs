//! Sliding-window counting, the one arithmetic every limit backend uses.
//!
//! Time is cut into fixed windows (a minute for `rpm`/`tpm`); a backend keeps the count of the
//! current window and of the previous one. The count "in the last minute" is estimated as the
//! previous window's count weighted by how much of it still overlaps the last minute, plus the
//! current window's count (the sliding window counter). Unlike a fixed window it never lets
//! twice the limit through around a boundary: the previous window's count fades out over the
//! minute instead of vanishing at once. The Redis adapter's Lua script mirrors these functions
//! (its tests run the same cases).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Added to every computed wait, so that a client retrying exactly then is not refused by the
/// last bit of floating-point rounding.
const ROUNDING_MARGIN_SECS: f64 = 0.001;

/// Where `now` falls: the index of its fixed window and how far into it, in [0, 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowPosition {
    pub index: u64,
    pub elapsed: f64,
}

/// The fixed window of length `window` that holds `now`.
pub fn position(now: SystemTime, window: Duration) -> WindowPosition {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let window_nanos = window.as_nanos().max(1);
    let nanos = since_epoch.as_nanos();
    WindowPosition {
        index: u64::try_from(nanos / window_nanos).unwrap_or(u64::MAX),
        elapsed: (nanos % window_nanos) as f64 / window_nanos as f64,
    }
}

/// The estimated count over the last window: `previous` weighted by its remaining overlap,
/// plus `current`.
pub fn estimate(previous: u64, current: u64, elapsed: f64) -> f64 {
    previous as f64 * (1.0 - elapsed) + current as f64
}

/// Whether `cost` more fits under `limit` (`estimate + cost <= limit`). With `cost` 0 this is
/// "still under the limit", the rule for tokens, which are only known after the answer.
pub fn admits(previous: u64, current: u64, elapsed: f64, limit: u64, cost: u64) -> bool {
    if cost == 0 {
        estimate(previous, current, elapsed) < limit as f64
    } else {
        estimate(previous, current, elapsed) + cost as f64 <= limit as f64
    }
}

/// What is left under `limit`, rounded down, for the `x-ratelimit-remaining-*` headers.
pub fn remaining(previous: u64, current: u64, elapsed: f64, limit: u64) -> u64 {
    let left = limit as f64 - estimate(previous, current, elapsed);
    if left <= 0.0 {
        0
    } else {
        left.floor() as u64
    }
}

/// How long until `cost` more would fit, if nothing else is counted meanwhile. Within the
/// current window only the previous window's share fades; once the current window is the
/// previous one, its own count fades over the next window.
pub fn retry_after(
    previous: u64,
    current: u64,
    elapsed: f64,
    limit: u64,
    cost: u64,
    window: Duration,
) -> Duration {
    if admits(previous, current, elapsed, limit, cost) {
        return Duration::ZERO;
    }
    let window_secs = window.as_secs_f64();
    // The count the estimate must come down to: room for `cost`, or, for cost 0 (tokens),
    // strictly below the limit itself.
    let target = limit as f64 - cost as f64;
    let fits = |value: f64| {
        if cost == 0 {
            value < target
        } else {
            value <= target
        }
    };
    // Still in this window: previous * (1 - t) + current fits, for the smallest t in (elapsed, 1).
    if previous > 0 && fits(current as f64) {
        let t = 1.0 - (target - current as f64) / previous as f64;
        let t = t.max(elapsed);
        let wait = (t - elapsed) * window_secs;
        return Duration::from_secs_f64(wait.max(0.0) + ROUNDING_MARGIN_SECS);
    }
    // Next window: current becomes the previous one and fades over it.
    let until_next = (1.0 - elapsed) * window_secs;
    if current == 0 {
        return Duration::from_secs_f64(until_next);
    }
    if target <= 0.0 {
        // Even an empty window would not fit `cost`: a whole window from the next one.
        return Duration::from_secs_f64(until_next + window_secs);
    }
    let t = (1.0 - target / current as f64).clamp(0.0, 1.0);
    Duration::from_secs_f64(until_next + t * window_secs + ROUNDING_MARGIN_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn at(seconds: f64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs_f64(seconds)
    }

    #[test]
    fn positions_cut_time_into_windows() {
        assert_eq!(
            position(at(0.0), MINUTE),
            WindowPosition {
                index: 0,
                elapsed: 0.0
            }
        );
        let p = position(at(90.0), MINUTE);
        assert_eq!(p.index, 1);
        assert!((p.elapsed - 0.5).abs() < 1e-9);
    }

    #[test]
    fn the_previous_window_fades_out_over_the_current_one() {
        assert_eq!(estimate(60, 0, 0.0), 60.0);
        assert_eq!(estimate(60, 0, 0.5), 30.0);
        assert_eq!(estimate(60, 10, 0.75), 25.0);
    }

    #[test]
    fn a_full_previous_minute_does_not_let_a_second_burst_through_at_the_boundary() {
        // 10 rpm, all 10 sent at the very end of window 0: at the start of window 1 a fixed
        // window would admit 10 more at once; the sliding window admits none yet.
        assert!(!admits(10, 0, 0.0, 10, 1));
        assert!(!admits(10, 0, 0.05, 10, 1));
        // A tenth of the way in, one request's worth has faded.
        assert!(admits(10, 0, 0.1, 10, 1));
        assert!(!admits(10, 1, 0.1, 10, 1));
    }

    #[test]
    fn tokens_are_admitted_while_under_the_limit() {
        assert!(admits(0, 999, 0.0, 1000, 0));
        assert!(!admits(0, 1000, 0.0, 1000, 0));
        assert!(!admits(0, 5000, 0.0, 1000, 0));
    }

    #[test]
    fn remaining_counts_down_and_stops_at_zero() {
        assert_eq!(remaining(0, 3, 0.2, 10), 7);
        assert_eq!(remaining(10, 0, 0.5, 10), 5);
        assert_eq!(remaining(0, 12, 0.0, 10), 0);
    }

    #[test]
    fn retry_after_is_when_the_request_would_fit() {
        assert_eq!(retry_after(0, 1, 0.5, 10, 1, MINUTE), Duration::ZERO);
        // 10 in the previous window, none now, 10 rpm: one request fits after a tenth.
        let wait = retry_after(10, 0, 0.0, 10, 1, MINUTE);
        assert!((wait.as_secs_f64() - 6.0).abs() < 0.01, "{wait:?}");
        // Full in the current window: wait for the next, then for a tenth of it to fade.
        let wait = retry_after(0, 10, 0.5, 10, 1, MINUTE);
        assert!((wait.as_secs_f64() - 36.0).abs() < 0.01, "{wait:?}");
        // Tokens: 5000 over a 1000 limit at half the window: next window, then 80% faded.
        let wait = retry_after(0, 5000, 0.5, 1000, 0, MINUTE);
        assert!((wait.as_secs_f64() - 78.0).abs() < 0.1, "{wait:?}");
    }

    #[test]
    fn every_retry_after_is_admitted_when_it_elapses() {
        for (previous, current, elapsed, limit, cost) in [
            (10, 0, 0.0, 10, 1),
            (0, 10, 0.5, 10, 1),
            (7, 5, 0.3, 10, 1),
            (0, 5000, 0.5, 1000, 0),
            (3000, 200, 0.9, 1000, 0),
        ] {
            let wait = retry_after(previous, current, elapsed, limit, cost, MINUTE);
            let later = elapsed + wait.as_secs_f64() / 60.0;
            let ok = if later < 1.0 {
                admits(previous, current, later, limit, cost)
            } else {
                admits(current, 0, later - 1.0, limit, cost)
            };
            assert!(
                ok,
                "{previous} {current} {elapsed} {limit} {cost}: {wait:?}"
            );
        }
    }
}
