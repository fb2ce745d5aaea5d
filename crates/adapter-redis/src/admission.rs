//! Where `now` falls for a key's limits, and the script's counts turned into an [`Admission`].
//!
//! The verdict is the script's (it has to be atomic with counting the request); the state and
//! the wait are core's `rules::answer` of the counts it decided on, so they are the in-process
//! backend's exactly.

use std::time::{Duration, SystemTime};

use gateway_core::governance::rules::{self, Counts, WindowCounts};
use gateway_core::governance::window::{self, WindowPosition};
use gateway_core::governance::{BudgetPeriod, RATE_WINDOW};
use gateway_core::{Admission, KeyLimits, LimitBackendError, LimitKind};

use crate::keys;

/// How long a window's count is kept: it is read as the previous window during the next one.
pub(crate) const RATE_COUNT_TTL_SECS: u64 = 2 * RATE_WINDOW.as_secs();

/// A key's counters at one instant: which windows and which budget period `now` falls in.
#[derive(Debug, Clone)]
pub(crate) struct Slots {
    pub(crate) rate: WindowPosition,
    budget_period: BudgetPeriod,
    /// The budget period's length; `None` when the budget never resets.
    budget_length: Option<Duration>,
}

impl Slots {
    pub(crate) fn at(limits: &KeyLimits, now: SystemTime) -> Self {
        Self {
            rate: window::position(now, RATE_WINDOW),
            budget_period: limits.budget_period(now),
            budget_length: limits.budget_period,
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
            self.budget_length
                .map(|length| (length, self.budget_period.index)),
        )
    }

    /// Seconds a budget period's spend is kept (`None`: for good, the budget never resets).
    /// A whole period from any write within it outlives the period.
    pub(crate) fn budget_ttl_secs(&self) -> Option<u64> {
        self.budget_length.map(|period| {
            let whole = period.as_secs() + u64::from(period.subsec_nanos() > 0);
            whole.max(1)
        })
    }
}

/// What the script answered: its verdict and the counts it decided on, before the request
/// was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScriptReply {
    pub(crate) verdict: u8,
    pub(crate) counts: Counts,
}

impl ScriptReply {
    /// The script's reply as `{verdict, requests previous, requests current, tokens previous,
    /// tokens current, spend}`.
    pub(crate) fn new(
        (verdict, requests_previous, requests_current, tokens_previous, tokens_current, spend): (
            u8,
            u64,
            u64,
            u64,
            u64,
            u64,
        ),
    ) -> Self {
        Self {
            verdict,
            counts: Counts {
                requests: WindowCounts {
                    previous: requests_previous,
                    current: requests_current,
                },
                tokens: WindowCounts {
                    previous: tokens_previous,
                    current: tokens_current,
                },
                spent_micros: spend,
            },
        }
    }
}

/// The script's verdicts (see `admit.lua`).
const ADMITTED: u8 = 0;
const OVER_BUDGET: u8 = 1;
const OVER_TOKENS: u8 = 2;
const OVER_REQUESTS: u8 = 3;

/// Turns the script's reply into the answer the port gives.
pub(crate) fn admission(
    limits: &KeyLimits,
    now: SystemTime,
    reply: ScriptReply,
) -> Result<Admission, LimitBackendError> {
    let refused_by = match reply.verdict {
        ADMITTED => None,
        OVER_BUDGET if limits.budget_usd.is_some() => Some(LimitKind::Budget),
        OVER_TOKENS if limits.tpm.is_some() => Some(LimitKind::Tokens),
        OVER_REQUESTS if limits.rpm.is_some() => Some(LimitKind::Requests),
        verdict => {
            return Err(LimitBackendError {
                message: format!(
                    "the admit script answered verdict {verdict} for limits it was not given"
                ),
            })
        }
    };
    Ok(rules::answer(&reply.counts, limits, now, refused_by))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(seconds: f64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs_f64(seconds)
    }

    fn reply(verdict: u8) -> ScriptReply {
        ScriptReply::new((verdict, 10, 0, 0, 400, 1_500_000))
    }

    const LIMITS: KeyLimits = KeyLimits {
        rpm: Some(10),
        tpm: Some(1_000),
        budget_usd: Some(2.0),
        budget_period: Some(Duration::from_secs(3_600)),
    };

    #[test]
    fn each_verdict_is_answered_by_core_from_the_counts_the_script_saw() {
        let now = at(3_600.0 * 10.0 + 900.0 + 30.0);
        for (verdict, refused_by) in [
            (ADMITTED, None),
            (OVER_BUDGET, Some(LimitKind::Budget)),
            (OVER_TOKENS, Some(LimitKind::Tokens)),
            (OVER_REQUESTS, Some(LimitKind::Requests)),
        ] {
            let reply = reply(verdict);
            assert_eq!(
                admission(&LIMITS, now, reply),
                Ok(rules::answer(&reply.counts, &LIMITS, now, refused_by)),
                "verdict {verdict}"
            );
        }
    }

    #[test]
    fn a_verdict_for_a_limit_not_given_is_a_backend_error() {
        let only_rpm = KeyLimits {
            rpm: Some(1),
            ..KeyLimits::default()
        };
        for verdict in [OVER_BUDGET, OVER_TOKENS, 9] {
            assert!(admission(&only_rpm, at(0.0), reply(verdict)).is_err());
        }
    }

    #[test]
    fn a_budget_key_names_the_period_core_puts_now_in() {
        let slots = Slots::at(&LIMITS, at(3_600.0 * 10.0 + 900.0));
        assert_eq!(slots.budget_key("k"), "gw:{k}:budget:3600:10");
        assert_eq!(slots.budget_ttl_secs(), Some(3_600));
        let forever = KeyLimits {
            budget_period: None,
            ..LIMITS
        };
        let slots = Slots::at(&forever, at(900.0));
        assert_eq!(slots.budget_key("k"), "gw:{k}:budget:forever");
        assert_eq!(slots.budget_ttl_secs(), None);
    }
}
