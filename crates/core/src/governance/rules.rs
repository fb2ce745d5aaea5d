//! The admission rule every limit backend applies to its counts, so that one replica in
//! memory and many on Redis refuse the same requests with the same headers.
//!
//! Checks run in this order, and the first that refuses decides: the budget (spend in this
//! period below `budget_usd`), then tokens (the last minute's tokens still under `tpm`; they
//! are only known after each answer, so a key is admitted while under and may overshoot by
//! one answer), then requests (one more fits under `rpm`). A refused request is not counted.

use std::time::SystemTime;

use super::{window, Admission, KeyLimits, LimitKind, LimitState, Remaining, RATE_WINDOW};

/// One sliding-window counter: the previous fixed window's count and the current one's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounts {
    pub previous: u64,
    pub current: u64,
}

/// What a backend holds for one key at the instant of a decision, before the request being
/// decided is counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: WindowCounts,
    pub tokens: WindowCounts,
    /// Spent in the current budget period, in micro-USD.
    pub spent_micros: u64,
}

/// Whether a request of a key with `limits` and `counts` is admitted at `now`. When it is,
/// the backend adds one to `counts.requests.current`; the returned state already counts it.
pub fn decide(counts: &Counts, limits: &KeyLimits, now: SystemTime) -> Admission {
    answer(counts, limits, now, refusal(counts, limits, now))
}

/// The limit that refuses a request of a key with `limits` and `counts` at `now`, the first in
/// the order above; `None` when it is admitted.
pub fn refusal(counts: &Counts, limits: &KeyLimits, now: SystemTime) -> Option<LimitKind> {
    let elapsed = rate_elapsed(now);
    if limits
        .budget_micros()
        .is_some_and(|budget| counts.spent_micros >= budget)
    {
        return Some(LimitKind::Budget);
    }
    if limits.tpm.is_some_and(|limit| {
        let WindowCounts { previous, current } = counts.tokens;
        !window::admits(previous, current, elapsed, limit, 0)
    }) {
        return Some(LimitKind::Tokens);
    }
    if limits.rpm.is_some_and(|limit| {
        let WindowCounts { previous, current } = counts.requests;
        !window::admits(previous, current, elapsed, u64::from(limit), 1)
    }) {
        return Some(LimitKind::Requests);
    }
    None
}

/// The answer to a request refused by `refused_by` (`None`: admitted): where the key stands
/// and, when refused, how long to wait. [`decide`] gives it [`refusal`]'s verdict; a backend
/// that must decide atomically with its own copy of [`refusal`] (a Redis script) gives it its
/// verdict, so the state and the wait are still computed here. A refusal by a limit the key
/// does not have says no wait.
pub fn answer(
    counts: &Counts,
    limits: &KeyLimits,
    now: SystemTime,
    refused_by: Option<LimitKind>,
) -> Admission {
    let elapsed = rate_elapsed(now);
    let Some(kind) = refused_by else {
        return Admission::Admitted(state(counts, limits, elapsed, 1));
    };
    let rate_wait = |counts: WindowCounts, limit: u64, cost: u64| {
        window::retry_after(
            counts.previous,
            counts.current,
            elapsed,
            limit,
            cost,
            RATE_WINDOW,
        )
    };
    let retry_after = match kind {
        LimitKind::Budget => limits.budget_period(now).ends_in,
        LimitKind::Tokens => limits.tpm.map(|limit| rate_wait(counts.tokens, limit, 0)),
        LimitKind::Requests => limits
            .rpm
            .map(|limit| rate_wait(counts.requests, u64::from(limit), 1)),
    };
    Admission::Limited {
        kind,
        retry_after,
        state: state(counts, limits, elapsed, 0),
    }
}

/// How far `now` is into its rate window, in [0, 1).
fn rate_elapsed(now: SystemTime) -> f64 {
    window::position(now, RATE_WINDOW).elapsed
}

/// What is left of each limit, with `requests_counted` (1 when admitted) added to the
/// requests.
fn state(counts: &Counts, limits: &KeyLimits, elapsed: f64, requests_counted: u64) -> LimitState {
    LimitState {
        requests: limits.rpm.map(|limit| {
            let limit = u64::from(limit);
            Remaining {
                limit,
                remaining: window::remaining(
                    counts.requests.previous,
                    counts.requests.current.saturating_add(requests_counted),
                    elapsed,
                    limit,
                ),
            }
        }),
        tokens: limits.tpm.map(|limit| Remaining {
            limit,
            remaining: window::remaining(
                counts.tokens.previous,
                counts.tokens.current,
                elapsed,
                limit,
            ),
        }),
        budget_remaining_micros: limits
            .budget_micros()
            .map(|budget| budget.saturating_sub(counts.spent_micros)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// 30 s into a minute window.
    fn half_past() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 / 60 * 60 + 30)
    }

    fn limits() -> KeyLimits {
        KeyLimits {
            rpm: Some(10),
            tpm: Some(1000),
            budget_usd: Some(1.0),
            budget_period: None,
        }
    }

    #[test]
    fn an_admitted_request_is_counted_in_the_state_it_returns() {
        let counts = Counts {
            requests: WindowCounts {
                previous: 4,
                current: 3,
            },
            tokens: WindowCounts {
                previous: 200,
                current: 100,
            },
            spent_micros: 250_000,
        };
        assert_eq!(
            decide(&counts, &limits(), half_past()),
            Admission::Admitted(LimitState {
                // 10 - (4 * 0.5 + 3 + 1)
                requests: Some(Remaining {
                    limit: 10,
                    remaining: 4
                }),
                // 1000 - (200 * 0.5 + 100)
                tokens: Some(Remaining {
                    limit: 1000,
                    remaining: 800
                }),
                budget_remaining_micros: Some(750_000),
            })
        );
    }

    #[test]
    fn the_budget_is_checked_first_then_tokens_then_requests() {
        let everything_spent = Counts {
            requests: WindowCounts {
                previous: 0,
                current: 10,
            },
            tokens: WindowCounts {
                previous: 0,
                current: 1000,
            },
            spent_micros: 1_000_000,
        };
        let kind = |counts: &Counts| match decide(counts, &limits(), half_past()) {
            Admission::Limited { kind, .. } => Some(kind),
            Admission::Admitted(_) => None,
        };
        assert_eq!(kind(&everything_spent), Some(LimitKind::Budget));
        let budget_left = Counts {
            spent_micros: 999_999,
            ..everything_spent
        };
        assert_eq!(kind(&budget_left), Some(LimitKind::Tokens));
        let tokens_left = Counts {
            tokens: WindowCounts {
                previous: 0,
                current: 999,
            },
            ..budget_left
        };
        assert_eq!(kind(&tokens_left), Some(LimitKind::Requests));
        let requests_left = Counts {
            requests: WindowCounts {
                previous: 0,
                current: 9,
            },
            ..tokens_left
        };
        assert_eq!(kind(&requests_left), None);
    }

    #[test]
    fn a_budget_without_a_period_never_says_when_to_retry() {
        let spent = Counts {
            spent_micros: 1_000_000,
            ..Counts::default()
        };
        let Admission::Limited { retry_after, .. } = decide(&spent, &limits(), half_past()) else {
            panic!("the budget is spent");
        };
        assert_eq!(retry_after, None);
        let daily = KeyLimits {
            budget_period: Some(Duration::from_secs(86_400)),
            ..limits()
        };
        let Admission::Limited { retry_after, .. } = decide(&spent, &daily, half_past()) else {
            panic!("the budget is spent");
        };
        let until_midnight = 86_400 - (1_700_000_000 / 60 * 60 + 30) % 86_400;
        let wait = retry_after.unwrap().as_secs_f64();
        assert!((wait - until_midnight as f64).abs() < 0.001, "{wait}");
    }

    #[test]
    fn a_verdict_reached_elsewhere_gets_the_same_state_and_wait() {
        let counts = Counts {
            requests: WindowCounts {
                previous: 12,
                current: 4,
            },
            tokens: WindowCounts {
                previous: 300,
                current: 50,
            },
            spent_micros: 10,
        };
        let refused_by = refusal(&counts, &limits(), half_past());
        assert_eq!(refused_by, Some(LimitKind::Requests));
        let Admission::Limited {
            retry_after, state, ..
        } = answer(&counts, &limits(), half_past(), refused_by)
        else {
            panic!("refused by requests");
        };
        assert_eq!(
            decide(&counts, &limits(), half_past()),
            Admission::Limited {
                kind: LimitKind::Requests,
                retry_after,
                state
            }
        );
        // 12 * 0.5 + 4 = 10 of 10: one request's worth fades after a twelfth of a minute.
        let wait = retry_after.unwrap().as_secs_f64();
        assert!((wait - 5.001).abs() < 0.01, "{wait}");
        // A verdict about a limit the key does not have: no wait to give.
        let only_rpm = KeyLimits {
            rpm: Some(10),
            ..KeyLimits::default()
        };
        assert!(matches!(
            answer(&counts, &only_rpm, half_past(), Some(LimitKind::Tokens)),
            Admission::Limited {
                kind: LimitKind::Tokens,
                retry_after: None,
                ..
            }
        ));
    }

    #[test]
    fn keys_without_limits_are_always_admitted() {
        let counts = Counts {
            requests: WindowCounts {
                previous: u64::MAX,
                current: u64::MAX,
            },
            ..Counts::default()
        };
        assert_eq!(
            decide(&counts, &KeyLimits::default(), half_past()),
            Admission::Admitted(LimitState::default())
        );
    }
}
