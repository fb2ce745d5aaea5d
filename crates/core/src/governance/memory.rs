//! Counters in process memory: the limit store of a gateway that runs as one replica.
//!
//! One map from key name to that key's counters, behind one mutex held for a few integer
//! operations per request. Key names are the configured ones, so the map stays as small as
//! the configuration. Nothing survives a restart, and replicas do not see each other's
//! counts: several replicas need a shared store (Redis).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;

use super::rules::{decide, Counts, WindowCounts};
use super::{
    window, Admission, Consumption, KeyLimits, LimitBackendError, LimitStore, RATE_WINDOW,
};

/// A [`LimitStore`] in process memory. Never fails, never waits for anything but its lock.
#[derive(Debug, Default)]
pub struct InMemoryLimits {
    keys: Mutex<HashMap<String, KeyCounters>>,
}

/// One key's counts, each tagged with the window or period it belongs to.
#[derive(Debug, Default)]
struct KeyCounters {
    /// The fixed window the counts below are current in.
    window: u64,
    requests: WindowCounts,
    tokens: WindowCounts,
    /// The budget period `spent_micros` is in.
    period: u64,
    spent_micros: u64,
}

impl KeyCounters {
    /// Moves the counts to `now`: a new window makes the current counts the previous ones
    /// (or drops them, when more than one window passed); a new period starts spend at zero.
    /// An instant before the counts' own (a clock stepped back) counts as theirs.
    fn roll(&mut self, limits: &KeyLimits, now: SystemTime) {
        let window = window::position(now, RATE_WINDOW).index;
        if window > self.window {
            let next = window == self.window.saturating_add(1);
            for counts in [&mut self.requests, &mut self.tokens] {
                counts.previous = if next { counts.current } else { 0 };
                counts.current = 0;
            }
            self.window = window;
        }
        let period = limits.budget_period(now).index;
        if period > self.period {
            self.spent_micros = 0;
            self.period = period;
        }
    }

    fn counts(&self) -> Counts {
        Counts {
            requests: self.requests,
            tokens: self.tokens,
            spent_micros: self.spent_micros,
        }
    }
}

impl InMemoryLimits {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` on `key`'s counters, rolled to `now`; the key's entry is made on first use.
    fn with_counters<R>(
        &self,
        key: &str,
        limits: &KeyLimits,
        now: SystemTime,
        f: impl FnOnce(&mut KeyCounters) -> R,
    ) -> R {
        // A panic elsewhere while holding the lock leaves plain integers behind: still usable.
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(counters) = keys.get_mut(key) {
            counters.roll(limits, now);
            return f(counters);
        }
        let counters = keys.entry(key.to_owned()).or_default();
        counters.roll(limits, now);
        f(counters)
    }
}

#[async_trait]
impl LimitStore for InMemoryLimits {
    async fn admit(
        &self,
        key: &str,
        limits: &KeyLimits,
        now: SystemTime,
    ) -> Result<Admission, LimitBackendError> {
        Ok(self.with_counters(key, limits, now, |counters| {
            let admission = decide(&counters.counts(), limits, now);
            if matches!(admission, Admission::Admitted(_)) {
                counters.requests.current = counters.requests.current.saturating_add(1);
            }
            admission
        }))
    }

    fn record(&self, key: &str, limits: &KeyLimits, consumption: Consumption, now: SystemTime) {
        self.with_counters(key, limits, now, |counters| {
            counters.tokens.current = counters.tokens.current.saturating_add(consumption.tokens);
            counters.spent_micros = counters
                .spent_micros
                .saturating_add(consumption.cost_micros);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::governance::{LimitKind, LimitState, Remaining};
    use std::time::Duration;

    const KEY: &str = "team-a";

    /// A clock at the start of a minute window (and of a day).
    fn clock() -> ManualClock {
        ManualClock::at_unix(1_699_920_000)
    }

    fn admit(store: &InMemoryLimits, limits: &KeyLimits, clock: &ManualClock) -> Admission {
        futures_util::FutureExt::now_or_never(store.admit(KEY, limits, clock.now()))
            .expect("the memory store never waits")
            .expect("the memory store never fails")
    }

    fn limited_by(admission: &Admission) -> Option<LimitKind> {
        match admission {
            Admission::Limited { kind, .. } => Some(*kind),
            Admission::Admitted(_) => None,
        }
    }

    fn retry_after(admission: &Admission) -> Option<Duration> {
        match admission {
            Admission::Limited { retry_after, .. } => *retry_after,
            Admission::Admitted(_) => None,
        }
    }

    #[test]
    fn the_request_after_the_rpm_th_in_a_minute_is_limited_and_not_counted() {
        let store = InMemoryLimits::new();
        let limits = KeyLimits {
            rpm: Some(3),
            ..KeyLimits::default()
        };
        let clock = clock();
        for remaining in [2, 1, 0] {
            assert_eq!(
                admit(&store, &limits, &clock),
                Admission::Admitted(LimitState {
                    requests: Some(Remaining {
                        limit: 3,
                        remaining
                    }),
                    ..LimitState::default()
                })
            );
        }
        let refused = admit(&store, &limits, &clock);
        assert_eq!(limited_by(&refused), Some(LimitKind::Requests));
        // All three fall out of the sliding minute only as the next window passes: one
        // request's worth has faded after a third of it, 80 s from now.
        let wait = retry_after(&refused).unwrap();
        assert!((wait.as_secs_f64() - 80.0).abs() < 0.01, "{wait:?}");
        // Refusals are not counted: still limited just before, admitted just after.
        clock.advance(wait - Duration::from_millis(100));
        assert_eq!(
            limited_by(&admit(&store, &limits, &clock)),
            Some(LimitKind::Requests)
        );
        clock.advance(Duration::from_millis(100));
        assert_eq!(limited_by(&admit(&store, &limits, &clock)), None);
    }

    #[test]
    fn keys_are_counted_apart() {
        let store = InMemoryLimits::new();
        let limits = KeyLimits {
            rpm: Some(1),
            ..KeyLimits::default()
        };
        let clock = clock();
        let now = clock.now();
        for key in ["a", "b"] {
            let admission = futures_util::FutureExt::now_or_never(store.admit(key, &limits, now));
            assert!(matches!(admission, Some(Ok(Admission::Admitted(_)))));
        }
        let again = futures_util::FutureExt::now_or_never(store.admit("a", &limits, now));
        assert!(matches!(again, Some(Ok(Admission::Limited { .. }))));
    }

    #[test]
    fn tokens_recorded_after_answers_limit_the_next_request() {
        let store = InMemoryLimits::new();
        let limits = KeyLimits {
            tpm: Some(1000),
            ..KeyLimits::default()
        };
        let clock = clock();
        let used = |tokens| Consumption {
            tokens,
            cost_micros: 0,
        };
        assert_eq!(limited_by(&admit(&store, &limits, &clock)), None);
        store.record(KEY, &limits, used(999), clock.now());
        // Still under the limit: admitted, and its answer may overshoot it.
        assert_eq!(limited_by(&admit(&store, &limits, &clock)), None);
        store.record(KEY, &limits, used(500), clock.now());
        let refused = admit(&store, &limits, &clock);
        assert_eq!(limited_by(&refused), Some(LimitKind::Tokens));
        let Admission::Limited { state, .. } = refused else {
            unreachable!()
        };
        assert_eq!(
            state.tokens,
            Some(Remaining {
                limit: 1000,
                remaining: 0
            })
        );
        // 1499 tokens must fade below 1000: the next window, then a third of it.
        let wait = retry_after(&refused).unwrap();
        assert!((wait.as_secs_f64() - 79.97).abs() < 0.01, "{wait:?}");
        clock.advance(wait);
        assert_eq!(limited_by(&admit(&store, &limits, &clock)), None);
    }

    #[test]
    fn a_spent_budget_refuses_until_its_period_ends() {
        let store = InMemoryLimits::new();
        let day = Duration::from_secs(86_400);
        let limits = KeyLimits {
            budget_usd: Some(0.5),
            budget_period: Some(day),
            ..KeyLimits::default()
        };
        let clock = clock();
        let spend = |cost_micros| Consumption {
            tokens: 0,
            cost_micros,
        };
        assert_eq!(limited_by(&admit(&store, &limits, &clock)), None);
        store.record(KEY, &limits, spend(400_000), clock.now());
        let Admission::Admitted(state) = admit(&store, &limits, &clock) else {
            panic!("0.1 USD is left");
        };
        assert_eq!(state.budget_remaining_micros, Some(100_000));
        store.record(KEY, &limits, spend(100_000), clock.now());
        clock.advance(Duration::from_secs(3600));
        let refused = admit(&store, &limits, &clock);
        assert_eq!(limited_by(&refused), Some(LimitKind::Budget));
        assert_eq!(retry_after(&refused), Some(day - Duration::from_secs(3600)));
        // The next period starts from nothing.
        clock.advance(day - Duration::from_secs(3600));
        let Admission::Admitted(state) = admit(&store, &limits, &clock) else {
            panic!("a new day, a new budget");
        };
        assert_eq!(state.budget_remaining_micros, Some(500_000));
    }

    #[test]
    fn a_budget_without_a_period_never_resets() {
        let store = InMemoryLimits::new();
        let limits = KeyLimits {
            budget_usd: Some(0.01),
            ..KeyLimits::default()
        };
        let clock = clock();
        store.record(
            KEY,
            &limits,
            Consumption {
                tokens: 10,
                cost_micros: 10_000,
            },
            clock.now(),
        );
        clock.advance(Duration::from_secs(400 * 86_400));
        let refused = admit(&store, &limits, &clock);
        assert_eq!(limited_by(&refused), Some(LimitKind::Budget));
        assert_eq!(retry_after(&refused), None);
    }

    #[test]
    fn counts_older_than_the_previous_window_are_forgotten() {
        let store = InMemoryLimits::new();
        let limits = KeyLimits {
            rpm: Some(2),
            ..KeyLimits::default()
        };
        let clock = clock();
        for _ in 0..2 {
            admit(&store, &limits, &clock);
        }
        // Into the next window: the previous window's two still weigh almost fully.
        clock.advance(Duration::from_secs(61));
        assert_eq!(
            limited_by(&admit(&store, &limits, &clock)),
            Some(LimitKind::Requests)
        );
        // Two windows on: nothing left of them.
        clock.advance(Duration::from_secs(60));
        let Admission::Admitted(state) = admit(&store, &limits, &clock) else {
            panic!("the old requests are gone");
        };
        assert_eq!(state.requests.map(|r| r.remaining), Some(1));
    }
}
