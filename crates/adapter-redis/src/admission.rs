//! Where `now` falls for a key's limits, and the script's counts turned into an [`Admission`].
//!
//! The decision itself is the script's (it has to be atomic with counting the request); what
//! is left and how long to wait are computed here from the counts it saw, with core's
//! `window` functions, so they are the in-process backend's arithmetic exactly.

use std::time::{Duration, SystemTime};

use gateway_core::governance::window::{self, WindowPosition};
use gateway_core::{Admission, KeyLimits, LimitBackendError, LimitKind, LimitState, Remaining};

use crate::keys;

/// The window `rpm` and `tpm` count over.
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(60);

/// How long a window's count is kept: it is read as the previous window during the next one.
pub(crate) const RATE_COUNT_TTL_SECS: u64 = 2 * RATE_WINDOW.as_secs();

/// A key's counters at one instant: which windows and which budget period `now` falls in.
#[derive(Debug, Clone)]
pub(crate) struct Slots {
    pub(crate) rate: WindowPosition,
    /// `None` when the budget never resets.
    pub(crate) budget_period: Option<(Duration, WindowPosition)>,
}

impl Slots {
    pub(crate) fn at(limits: &KeyLimits, now: SystemTime) -> Self {
        Self {
            rate: window::position(now, RATE_WINDOW),
            budget_period: limits
                .budget_period
                .map(|period| (period, window::position(now, period))),
        }
    }

    pub(crate) fn requests_key(&self, key: &str) -> String {
        keys::requests(key, self.rate.index)
    }

    pub(crate) fn previous_requests_key(&self, key: &str) -> String {
        keys::requests(key, self.rate.index.saturating_sub(1))
    }

    pub(crate) fn tokens_key(&self, key: &str) -> String {
        keys::tokens(key, self.rate.index)
    }

    pub(crate) fn previous_tokens_key(&self, key: &str) -> String {
        keys::tokens(key, self.rate.index.saturating_sub(1))
    }

    pub(crate) fn budget_key(&self, key: &str) -> String {
        keys::budget(
            key,
            self.budget_period
                .map(|(period, position)| (period, position.index)),
        )
    }

    /// Seconds a budget period's spend is kept (`None`: for good, the budget never resets).
    /// A whole period from any write within it outlives the period.
    pub(crate) fn budget_ttl_secs(&self) -> Option<u64> {
        self.budget_period.map(|(period, _)| {
            let whole = period.as_secs() + u64::from(period.subsec_nanos() > 0);
            whole.max(1)
        })
    }

    /// How long until this budget period ends (`None`: never).
    fn until_budget_resets(&self) -> Option<Duration> {
        self.budget_period.and_then(|(period, position)| {
            Duration::try_from_secs_f64(period.as_secs_f64() * (1.0 - position.elapsed)).ok()
        })
    }
}

/// A budget in micro-USD, as the script compares spend with it (`spend < budget_usd * 1e6`).
pub(crate) fn budget_micros(budget_usd: f64) -> f64 {
    budget_usd * 1_000_000.0
}

/// What the script answered: its verdict and the counts it decided on (the request already
/// counted when admitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScriptReply {
    pub(crate) verdict: u8,
    pub(crate) requests_previous: u64,
    pub(crate) requests_current: u64,
    pub(crate) tokens_previous: u64,
    pub(crate) tokens_current: u64,
    pub(crate) spend_micros: u64,
}

/// The script's verdicts (see `admit.lua`).
const ADMITTED: u8 = 0;
const OVER_BUDGET: u8 = 1;
const OVER_TOKENS: u8 = 2;
const OVER_REQUESTS: u8 = 3;

/// Turns the script's reply into the answer the port gives.
pub(crate) fn admission(
    limits: &KeyLimits,
    slots: &Slots,
    reply: ScriptReply,
) -> Result<Admission, LimitBackendError> {
    let elapsed = slots.rate.elapsed;
    let state = LimitState {
        requests: limits.rpm.map(|rpm| Remaining {
            limit: u64::from(rpm),
            remaining: window::remaining(
                reply.requests_previous,
                reply.requests_current,
                elapsed,
                u64::from(rpm),
            ),
        }),
        tokens: limits.tpm.map(|tpm| Remaining {
            limit: tpm,
            remaining: window::remaining(reply.tokens_previous, reply.tokens_current, elapsed, tpm),
        }),
        budget_remaining_micros: limits.budget_usd.map(|usd| {
            let left = budget_micros(usd) - reply.spend_micros as f64;
            if left > 0.0 {
                left.floor() as u64
            } else {
                0
            }
        }),
    };
    let limited = |kind, retry_after| {
        Ok(Admission::Limited {
            kind,
            retry_after,
            state,
        })
    };
    match (reply.verdict, limits.rpm, limits.tpm) {
        (ADMITTED, _, _) => Ok(Admission::Admitted(state)),
        (OVER_BUDGET, _, _) if limits.budget_usd.is_some() => {
            limited(LimitKind::Budget, slots.until_budget_resets())
        }
        (OVER_TOKENS, _, Some(tpm)) => limited(
            LimitKind::Tokens,
            Some(window::retry_after(
                reply.tokens_previous,
                reply.tokens_current,
                elapsed,
                tpm,
                0,
                RATE_WINDOW,
            )),
        ),
        (OVER_REQUESTS, Some(rpm), _) => limited(
            LimitKind::Requests,
            Some(window::retry_after(
                reply.requests_previous,
                reply.requests_current,
                elapsed,
                u64::from(rpm),
                1,
                RATE_WINDOW,
            )),
        ),
        (verdict, _, _) => Err(LimitBackendError {
            message: format!(
                "the admit script answered verdict {verdict} for limits it was not given"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(seconds: f64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs_f64(seconds)
    }

    fn reply(verdict: u8) -> ScriptReply {
        ScriptReply {
            verdict,
            requests_previous: 10,
            requests_current: 0,
            tokens_previous: 0,
            tokens_current: 400,
            spend_micros: 1_500_000,
        }
    }

    const LIMITS: KeyLimits = KeyLimits {
        rpm: Some(10),
        tpm: Some(1_000),
        budget_usd: Some(2.0),
        budget_period: Some(Duration::from_secs(3_600)),
    };

    #[test]
    fn the_state_is_what_is_left_of_each_limit() {
        // Half way through a minute and a quarter through the hour.
        let slots = Slots::at(&LIMITS, at(3_600.0 * 10.0 + 900.0 + 30.0));
        let Ok(Admission::Admitted(state)) = admission(&LIMITS, &slots, reply(ADMITTED)) else {
            panic!("admitted");
        };
        assert_eq!(
            state,
            LimitState {
                requests: Some(Remaining {
                    limit: 10,
                    remaining: 5
                }),
                tokens: Some(Remaining {
                    limit: 1_000,
                    remaining: 600
                }),
                budget_remaining_micros: Some(500_000),
            }
        );
    }

    #[test]
    fn a_budget_refusal_waits_for_the_period_to_end() {
        let slots = Slots::at(&LIMITS, at(3_600.0 * 10.0 + 900.0));
        let Ok(Admission::Limited {
            kind, retry_after, ..
        }) = admission(&LIMITS, &slots, reply(OVER_BUDGET))
        else {
            panic!("limited");
        };
        assert_eq!(kind, LimitKind::Budget);
        let wait = retry_after
            .map(|wait| wait.as_secs_f64())
            .unwrap_or_default();
        assert!((wait - 2_700.0).abs() < 1e-6, "{wait}");

        let forever = KeyLimits {
            budget_period: None,
            ..LIMITS
        };
        let slots = Slots::at(&forever, at(900.0));
        assert!(matches!(
            admission(&forever, &slots, reply(OVER_BUDGET)),
            Ok(Admission::Limited {
                kind: LimitKind::Budget,
                retry_after: None,
                ..
            })
        ));
    }

    #[test]
    fn rate_refusals_wait_as_the_window_arithmetic_says() {
        let slots = Slots::at(&LIMITS, at(600.0));
        assert_eq!(
            admission(&LIMITS, &slots, reply(OVER_REQUESTS)),
            Ok(Admission::Limited {
                kind: LimitKind::Requests,
                retry_after: Some(window::retry_after(10, 0, 0.0, 10, 1, RATE_WINDOW)),
                state: LimitState {
                    requests: Some(Remaining {
                        limit: 10,
                        remaining: 0
                    }),
                    tokens: Some(Remaining {
                        limit: 1_000,
                        remaining: 600
                    }),
                    budget_remaining_micros: Some(500_000),
                },
            })
        );
        assert!(matches!(
            admission(&LIMITS, &slots, reply(OVER_TOKENS)),
            Ok(Admission::Limited {
                kind: LimitKind::Tokens,
                ..
            })
        ));
    }

    #[test]
    fn a_verdict_for_a_limit_not_given_is_a_backend_error() {
        let only_rpm = KeyLimits {
            rpm: Some(1),
            ..KeyLimits::default()
        };
        let slots = Slots::at(&only_rpm, at(0.0));
        for verdict in [OVER_BUDGET, OVER_TOKENS, 9] {
            assert!(admission(&only_rpm, &slots, reply(verdict)).is_err());
        }
    }
}
