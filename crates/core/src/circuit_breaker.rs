//! Circuit breakers, one per target route: a target that keeps failing is skipped for a
//! while instead of making every request wait for its failure first.
//!
//! Closed: requests go through; `failures` consecutive failures (errors that
//! [`fail over`](crate::ProviderError::fails_over)) open it. Open: the target is skipped
//! until `cooldown` has passed on the [`Clock`](crate::clock::Clock). Then half-open: exactly
//! one request goes through as a probe while the others still skip the target; the probe's
//! success closes the breaker, its failure opens it for another cooldown. An answer resets
//! the count; an error that says nothing about the target (the request was invalid, the
//! model refused it) neither counts nor resets, and a probe that ends that way (or is
//! cancelled) lets the next request probe instead.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer};

use crate::clock::SharedClock;

/// When a target's breaker opens and for how long. A host deserializes it straight from its
/// configuration (`failures`, `cooldown_ms`, each above 0, each with a default); nothing
/// re-validates it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerSettings {
    /// Consecutive failures that open the breaker.
    #[serde(default = "default_failures", deserialize_with = "positive_count")]
    pub failures: NonZeroU32,
    /// How long an open breaker skips the target before a probe may try it.
    #[serde(
        rename = "cooldown_ms",
        default = "default_cooldown",
        deserialize_with = "positive_millis"
    )]
    pub cooldown: Duration,
}

impl CircuitBreakerSettings {
    pub const DEFAULT_FAILURES: NonZeroU32 = NonZeroU32::MIN.saturating_add(4);
    pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);
}

impl Default for CircuitBreakerSettings {
    fn default() -> Self {
        Self {
            failures: Self::DEFAULT_FAILURES,
            cooldown: Self::DEFAULT_COOLDOWN,
        }
    }
}

fn default_failures() -> NonZeroU32 {
    CircuitBreakerSettings::DEFAULT_FAILURES
}

fn default_cooldown() -> Duration {
    CircuitBreakerSettings::DEFAULT_COOLDOWN
}

const NOT_ZERO: &str = "must be greater than 0";

fn positive_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<NonZeroU32, D::Error> {
    NonZeroU32::new(u32::deserialize(deserializer)?)
        .ok_or_else(|| serde::de::Error::custom(NOT_ZERO))
}

fn positive_millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    match u64::deserialize(deserializer)? {
        0 => Err(serde::de::Error::custom(NOT_ZERO)),
        millis => Ok(Duration::from_millis(millis)),
    }
}

/// What a breaker currently does with requests.
///
/// Matched exhaustively by design: each state has its gauge value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    Closed,
    Open,
    /// The cooldown has passed: the next request (or the one in flight) is the probe.
    HalfOpen,
}

impl CircuitState {
    /// The value of the `gateway_circuit_state` gauge.
    pub fn gauge_value(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

/// The breakers of every target that has one, built once at start and shared by every
/// request (and every server thread).
#[derive(Debug, Default)]
pub struct CircuitBreakers {
    clock: SharedClock,
    /// In the order given, for a stable metrics listing.
    breakers: Vec<(String, Breaker)>,
    by_target: HashMap<String, usize>,
}

impl CircuitBreakers {
    /// Breakers for the given targets (public names `<account>/<model>`); other targets are
    /// never skipped. A target named twice keeps its first settings.
    pub fn new(
        clock: SharedClock,
        targets: impl IntoIterator<Item = (String, CircuitBreakerSettings)>,
    ) -> Self {
        let mut breakers = Vec::new();
        let mut by_target = HashMap::new();
        for (target, settings) in targets {
            if by_target.contains_key(&target) {
                continue;
            }
            by_target.insert(target.clone(), breakers.len());
            breakers.push((target, Breaker::new(settings)));
        }
        Self {
            clock,
            breakers,
            by_target,
        }
    }

    /// A permit to call `target`, or `None` when its breaker says to skip it. Settle the
    /// permit with the call's outcome; dropping it unsettled counts as neither.
    pub fn admit(&self, target: &str) -> Option<Permit<'_>> {
        let Some(breaker) = self.breaker(target) else {
            return Some(Permit::unguarded());
        };
        let probe = breaker.admit(self.clock.now())?;
        Some(Permit {
            guarded: Some((breaker, &self.clock)),
            probe,
        })
    }

    /// Every breaker's state, in the order given at start.
    pub fn states(&self) -> impl Iterator<Item = (&str, CircuitState)> + '_ {
        let now = self.clock.now();
        self.breakers
            .iter()
            .map(move |(target, breaker)| (target.as_str(), breaker.state(now)))
    }

    /// The state of `target`'s breaker, `None` when it has none.
    pub fn state(&self, target: &str) -> Option<CircuitState> {
        Some(self.breaker(target)?.state(self.clock.now()))
    }

    fn breaker(&self, target: &str) -> Option<&Breaker> {
        let &index = self.by_target.get(target)?;
        self.breakers.get(index).map(|(_, breaker)| breaker)
    }
}

/// Leave to call a target; tells its breaker how the call went.
#[derive(Debug)]
#[must_use = "settle the permit with the call's outcome"]
pub struct Permit<'a> {
    /// `None` for a target without a breaker.
    guarded: Option<(&'a Breaker, &'a SharedClock)>,
    /// This call is the half-open breaker's one probe.
    probe: bool,
}

impl Permit<'_> {
    fn unguarded() -> Self {
        Self {
            guarded: None,
            probe: false,
        }
    }

    /// The target answered.
    pub fn succeeded(mut self) {
        if let Some((breaker, _)) = self.guarded.take() {
            breaker.settle(self.probe, Outcome::Success);
        }
    }

    /// The target failed in a way that [fails over](crate::ProviderError::fails_over).
    pub fn failed(mut self) {
        if let Some((breaker, clock)) = self.guarded.take() {
            breaker.settle(self.probe, Outcome::Failure { now: clock.now() });
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some((breaker, _)) = self.guarded.take() {
            breaker.settle(self.probe, Outcome::Neither);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Success,
    Failure {
        now: SystemTime,
    },
    /// The call ended in a way that says nothing about the target, or was cancelled.
    Neither,
}

#[derive(Debug)]
struct Breaker {
    settings: CircuitBreakerSettings,
    state: Mutex<BreakerState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BreakerState {
    Closed { consecutive_failures: u32 },
    Open { until: SystemTime },
    HalfOpen { probe_in_flight: bool },
}

impl Breaker {
    fn new(settings: CircuitBreakerSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(BreakerState::Closed {
                consecutive_failures: 0,
            }),
        }
    }

    /// `Some(is_probe)` when a call may go through.
    fn admit(&self, now: SystemTime) -> Option<bool> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            BreakerState::Closed { .. } => Some(false),
            BreakerState::Open { until } if now < until => None,
            BreakerState::Open { .. }
            | BreakerState::HalfOpen {
                probe_in_flight: false,
            } => {
                *state = BreakerState::HalfOpen {
                    probe_in_flight: true,
                };
                Some(true)
            }
            BreakerState::HalfOpen {
                probe_in_flight: true,
            } => None,
        }
    }

    fn settle(&self, probe: bool, outcome: Outcome) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let open_until = |now: SystemTime| now.checked_add(self.settings.cooldown).unwrap_or(now);
        *state = match (*state, probe, outcome) {
            (_, true, Outcome::Success) => BreakerState::Closed {
                consecutive_failures: 0,
            },
            (_, true, Outcome::Failure { now }) => BreakerState::Open {
                until: open_until(now),
            },
            (_, true, Outcome::Neither) => BreakerState::HalfOpen {
                probe_in_flight: false,
            },
            (BreakerState::Closed { .. }, false, Outcome::Success) => BreakerState::Closed {
                consecutive_failures: 0,
            },
            (
                BreakerState::Closed {
                    consecutive_failures,
                },
                false,
                Outcome::Failure { now },
            ) => {
                let consecutive_failures = consecutive_failures.saturating_add(1);
                if consecutive_failures >= self.settings.failures.get() {
                    BreakerState::Open {
                        until: open_until(now),
                    }
                } else {
                    BreakerState::Closed {
                        consecutive_failures,
                    }
                }
            }
            // A call let through before the breaker opened says nothing about the probe's
            // turn; and a call that says nothing about the target changes nothing.
            (unchanged, false, _) => unchanged,
        };
    }

    fn state(&self, now: SystemTime) -> CircuitState {
        match *self.state.lock().unwrap_or_else(PoisonError::into_inner) {
            BreakerState::Closed { .. } => CircuitState::Closed,
            BreakerState::Open { until } if now < until => CircuitState::Open,
            BreakerState::Open { .. } | BreakerState::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const TARGET: &str = "east/claude";
    const COOLDOWN: Duration = Duration::from_secs(30);

    fn breakers(failures: u32) -> (CircuitBreakers, ManualClock) {
        let clock = ManualClock::at_unix(1_700_000_000);
        let settings = CircuitBreakerSettings {
            failures: NonZeroU32::new(failures).unwrap(),
            cooldown: COOLDOWN,
        };
        let breakers =
            CircuitBreakers::new(SharedClock::new(clock.clone()), [(TARGET.into(), settings)]);
        (breakers, clock)
    }

    fn fail(breakers: &CircuitBreakers, times: usize) {
        for _ in 0..times {
            breakers.admit(TARGET).unwrap().failed();
        }
    }

    #[test]
    fn consecutive_failures_open_the_breaker_for_the_cooldown() {
        let (breakers, clock) = breakers(3);
        fail(&breakers, 2);
        assert_eq!(breakers.state(TARGET), Some(CircuitState::Closed));
        fail(&breakers, 1);
        assert_eq!(breakers.state(TARGET), Some(CircuitState::Open));
        assert!(breakers.admit(TARGET).is_none());
        clock.advance(COOLDOWN - Duration::from_millis(1));
        assert!(breakers.admit(TARGET).is_none(), "still cooling down");
        clock.advance(Duration::from_millis(1));
        assert_eq!(breakers.state(TARGET), Some(CircuitState::HalfOpen));
    }

    #[test]
    fn a_success_resets_the_count() {
        let (breakers, _) = breakers(3);
        fail(&breakers, 2);
        breakers.admit(TARGET).unwrap().succeeded();
        fail(&breakers, 2);
        assert_eq!(breakers.state(TARGET), Some(CircuitState::Closed));
    }

    #[test]
    fn errors_that_say_nothing_about_the_target_neither_count_nor_reset() {
        let (breakers, _) = breakers(3);
        fail(&breakers, 2);
        drop(breakers.admit(TARGET).unwrap());
        assert_eq!(breakers.state(TARGET), Some(CircuitState::Closed));
        fail(&breakers, 1);
        assert_eq!(breakers.state(TARGET), Some(CircuitState::Open));
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through_and_its_success_closes() {
        let (breakers, clock) = breakers(1);
        fail(&breakers, 1);
        clock.advance(COOLDOWN);
        let probe = breakers.admit(TARGET).expect("the probe");
        assert!(breakers.admit(TARGET).is_none(), "a second request waits");
        assert_eq!(breakers.state(TARGET), Some(CircuitState::HalfOpen));
        probe.succeeded();
        assert_eq!(breakers.state(TARGET), Some(CircuitState::Closed));
        breakers.admit(TARGET).unwrap().succeeded();
    }

    #[test]
    fn a_failed_probe_opens_the_breaker_for_another_cooldown() {
        let (breakers, clock) = breakers(5);
        fail(&breakers, 5);
        clock.advance(COOLDOWN);
        breakers.admit(TARGET).unwrap().failed();
        assert_eq!(breakers.state(TARGET), Some(CircuitState::Open));
        clock.advance(COOLDOWN - Duration::from_millis(1));
        assert!(breakers.admit(TARGET).is_none());
        clock.advance(Duration::from_millis(1));
        assert!(breakers.admit(TARGET).is_some());
    }

    #[test]
    fn a_probe_that_proves_nothing_hands_the_turn_to_the_next_request() {
        let (breakers, clock) = breakers(1);
        fail(&breakers, 1);
        clock.advance(COOLDOWN);
        drop(breakers.admit(TARGET).unwrap());
        assert_eq!(breakers.state(TARGET), Some(CircuitState::HalfOpen));
        let probe = breakers.admit(TARGET).expect("the next request probes");
        assert!(breakers.admit(TARGET).is_none());
        probe.succeeded();
        assert_eq!(breakers.state(TARGET), Some(CircuitState::Closed));
    }

    #[test]
    fn calls_admitted_before_the_breaker_opened_do_not_close_it() {
        let (breakers, _) = breakers(1);
        let early = breakers.admit(TARGET).unwrap();
        fail(&breakers, 1);
        early.succeeded();
        assert_eq!(breakers.state(TARGET), Some(CircuitState::Open));
    }

    #[test]
    fn settings_read_from_configuration_default_and_refuse_zero() {
        let read = |json: &str| {
            serde_json::from_str::<CircuitBreakerSettings>(json).map_err(|e| e.to_string())
        };
        assert_eq!(read("{}"), Ok(CircuitBreakerSettings::default()));
        assert_eq!(
            read(r#"{"failures": 3, "cooldown_ms": 1500}"#),
            Ok(CircuitBreakerSettings {
                failures: NonZeroU32::new(3).unwrap(),
                cooldown: Duration::from_millis(1500),
            })
        );
        assert_eq!(CircuitBreakerSettings::default().failures.get(), 5);
        for zero in [r#"{"failures": 0}"#, r#"{"cooldown_ms": 0}"#] {
            let error = read(zero).unwrap_err();
            assert!(error.starts_with("must be greater than 0"), "{error}");
        }
        assert!(read(r#"{"cooldown": 1}"#)
            .unwrap_err()
            .contains("unknown field"));
    }

    #[test]
    fn targets_without_a_breaker_are_never_skipped() {
        let (breakers, _) = breakers(1);
        for _ in 0..10 {
            breakers.admit("west/claude").unwrap().failed();
        }
        assert!(breakers.admit("west/claude").is_some());
        assert_eq!(breakers.state("west/claude"), None);
        assert_eq!(
            breakers.states().collect::<Vec<_>>(),
            [(TARGET, CircuitState::Closed)]
        );
    }
}
