//! AWS's standard retry mode, per account.
//!
//! **What is retried**: throttling (`ThrottlingException`, or a 429 that names no exception),
//! transient server failures (`InternalServerException`, `ServiceUnavailableException`,
//! `ModelNotReadyException`, or a 500/502/503/504 that names none), connections that fail or
//! break before the answer is read, and the gateway's own connect and first-byte timeouts. Which
//! Bedrock exception is which is one column of [`crate::errors::EXCEPTIONS`]. Validation,
//! access denied, not found, model errors and the like fail the same way every time and are
//! never retried; neither is a stream once it produced an event (its answer has begun).
//!
//! **How long to wait**: full jitter, `rand[0, 1) × 2^(retry − 1)` seconds and at most
//! [`MAX_BACKOFF`], as botocore's `ExponentialBackoff`. The randomness comes from a [`Jitter`]
//! that tests seed.
//!
//! **How often**: besides `max_attempts`, a retry quota per account, AWS's token bucket of
//! [`QUOTA_CAPACITY`] tokens: a retry takes [`RetryReason::quota_cost`] of them, an answer on
//! the first attempt gives one back, an answer after retries the last retry's cost. An empty
//! bucket means no retries until answers refill it, so an upstream that is down is not sent
//! `max_attempts` times the traffic.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// The longest wait between two attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// Tokens in a full retry quota (and in a new one).
pub(crate) const QUOTA_CAPACITY: u32 = 500;

/// What an answer on the first attempt gives back to the quota.
const SUCCESS_REFILL: u32 = 1;

/// Why a failed attempt is tried again; also the `reason` label of the retry metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryReason {
    /// Bedrock throttled the call.
    Throttling,
    /// Bedrock failed in a way that passes (5xx, a model not ready yet).
    Transient,
    /// The gateway's connect, first-byte or body timeout expired.
    Timeout,
    /// The connection failed or broke before the answer was read.
    Connection,
}

impl RetryReason {
    const ALL: [Self; 4] = [
        Self::Throttling,
        Self::Transient,
        Self::Timeout,
        Self::Connection,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Throttling => "throttling",
            Self::Transient => "transient",
            Self::Timeout => "timeout",
            Self::Connection => "connection",
        }
    }

    /// Tokens a retry takes from the quota: AWS's 5, and 10 after a timeout or a broken
    /// connection, which cost the upstream (and the client) more.
    fn quota_cost(self) -> u32 {
        match self {
            Self::Throttling | Self::Transient => 5,
            Self::Timeout | Self::Connection => 10,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The wait before retry number `retry` (1 for the first), given a uniform `fraction` in
/// `[0, 1)`: full jitter over an exponential ceiling.
pub(crate) fn backoff(retry: u32, fraction: f64) -> Duration {
    let ceiling = 2f64.powi(retry.saturating_sub(1).min(16) as i32);
    Duration::from_secs_f64(fraction.clamp(0.0, 1.0) * ceiling).min(MAX_BACKOFF)
}

/// Where backoff jitter comes from: splitmix64 over an atomic state, so it needs no lock and
/// a seed makes the waits reproducible.
#[derive(Debug)]
pub(crate) struct Jitter(AtomicU64);

impl Jitter {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    pub(crate) fn seeded(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }

    pub(crate) fn random() -> Self {
        Self::seeded(fastrand::u64(..))
    }

    /// The next uniform fraction in `[0, 1)`.
    pub(crate) fn fraction(&self) -> f64 {
        let state = self
            .0
            .fetch_add(Self::GAMMA, Ordering::Relaxed)
            .wrapping_add(Self::GAMMA);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits make every f64 in [0, 1) with that spacing equally likely.
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// AWS's retry quota: a token bucket, lock-free.
#[derive(Debug)]
struct RetryQuota {
    tokens: AtomicU32,
}

impl RetryQuota {
    fn full() -> Self {
        Self {
            tokens: AtomicU32::new(QUOTA_CAPACITY),
        }
    }

    /// Takes `cost` tokens; false (and nothing taken) when fewer are left.
    fn acquire(&self, cost: u32) -> bool {
        self.tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tokens| {
                tokens.checked_sub(cost)
            })
            .is_ok()
    }

    fn release(&self, amount: u32) {
        // The closure always returns `Some`, so the update cannot fail.
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tokens| {
                Some(tokens.saturating_add(amount).min(QUOTA_CAPACITY))
            });
    }
}

/// One account's retry settings, quota and counts; shared by every clone of the provider, so
/// the quota is the account's whatever thread serves the request.
#[derive(Debug)]
pub(crate) struct AccountRetries {
    max_attempts: u32,
    quota: RetryQuota,
    retries: [AtomicU64; RetryReason::ALL.len()],
    quota_exhausted: AtomicU64,
}

/// A retry granted by [`AccountRetries::grant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Granted {
    /// How long to wait before the next attempt.
    pub(crate) delay: Duration,
    /// The tokens it took, given back if the call then succeeds.
    pub(crate) cost: u32,
}

impl AccountRetries {
    pub(crate) fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts,
            quota: RetryQuota::full(),
            retries: Default::default(),
            quota_exhausted: AtomicU64::new(0),
        }
    }

    /// Whether attempt number `attempt` (1 for the first), which failed for `reason`, is
    /// followed by another, and after how long. No when the attempts are used up, when the
    /// wait would end at or past `deadline` (the caller's total limit), or when the quota is
    /// empty (counted). A granted retry is counted and its cost taken from the quota.
    pub(crate) fn grant(
        &self,
        attempt: u32,
        reason: RetryReason,
        jitter: &Jitter,
        deadline: Option<Instant>,
    ) -> Option<Granted> {
        if attempt >= self.max_attempts {
            return None;
        }
        let delay = backoff(attempt, jitter.fraction());
        if deadline.is_some_and(|deadline| Instant::now() + delay >= deadline) {
            return None;
        }
        let cost = reason.quota_cost();
        if !self.quota.acquire(cost) {
            self.quota_exhausted.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.retries[reason.index()].fetch_add(1, Ordering::Relaxed);
        Some(Granted { delay, cost })
    }

    /// A call answered; `last_retry` is the last retry it was granted, if any.
    pub(crate) fn answered(&self, last_retry: Option<Granted>) {
        self.quota
            .release(last_retry.map_or(SUCCESS_REFILL, |granted| granted.cost));
    }
}

/// The retry counts of every account, read when metrics are scraped. Cheap to clone; clones
/// and every clone of the provider share the counters.
#[derive(Clone)]
pub struct RetryStats {
    /// By account name, sorted, so each scrape lists them alike.
    accounts: Arc<[(Arc<str>, Arc<AccountRetries>)]>,
}

impl std::fmt::Debug for RetryStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryStats")
            .field("accounts", &self.accounts.len())
            .finish_non_exhaustive()
    }
}

impl RetryStats {
    pub(crate) fn new(mut accounts: Vec<(Arc<str>, Arc<AccountRetries>)>) -> Self {
        accounts.sort_by(|a, b| a.0.cmp(&b.0));
        Self {
            accounts: accounts.into(),
        }
    }

    /// Calls `count(account, reason, retries)` for every account and every reason
    /// (`throttling`, `transient`, `timeout`, `connection`), zeros included.
    pub fn for_each_retry_count(&self, mut count: impl FnMut(&str, &'static str, u64)) {
        for (account, retries) in self.accounts.iter() {
            for reason in RetryReason::ALL {
                let retried = retries.retries[reason.index()].load(Ordering::Relaxed);
                count(account, reason.as_str(), retried);
            }
        }
    }

    /// Calls `count(account, times)` for every account: how often a retry was refused
    /// because the account's retry quota was empty.
    pub fn for_each_quota_exhausted(&self, mut count: impl FnMut(&str, u64)) {
        for (account, retries) in self.accounts.iter() {
            count(account, retries.quota_exhausted.load(Ordering::Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling_capped_at_twenty_seconds() {
        assert_eq!(backoff(1, 0.0), Duration::ZERO);
        assert_eq!(backoff(1, 0.5), Duration::from_millis(500));
        assert_eq!(backoff(2, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(3, 0.75), Duration::from_secs(3));
        assert_eq!(backoff(5, 0.999), Duration::from_secs_f64(0.999 * 16.0));
        assert_eq!(backoff(6, 0.999), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX, 0.999), MAX_BACKOFF);
    }

    #[test]
    fn jitter_is_uniform_in_the_unit_interval_and_reproducible_from_its_seed() {
        let a = Jitter::seeded(7);
        let b = Jitter::seeded(7);
        let fractions: Vec<f64> = (0..10_000).map(|_| a.fraction()).collect();
        assert!(fractions.iter().all(|f| (0.0..1.0).contains(f)));
        assert!(fractions.iter().all(|f| *f == b.fraction()));
        let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        assert_ne!(Jitter::seeded(8).fraction(), fractions[0]);
    }

    #[test]
    fn retries_stop_at_max_attempts() {
        let retries = AccountRetries::new(3);
        let jitter = Jitter::seeded(1);
        assert!(retries
            .grant(1, RetryReason::Throttling, &jitter, None)
            .is_some());
        assert!(retries
            .grant(2, RetryReason::Throttling, &jitter, None)
            .is_some());
        assert!(retries
            .grant(3, RetryReason::Throttling, &jitter, None)
            .is_none());
        assert!(AccountRetries::new(1)
            .grant(1, RetryReason::Transient, &jitter, None)
            .is_none());
    }

    #[test]
    fn the_quota_empties_by_the_cost_of_each_retry_and_refills_on_answers() {
        let retries = AccountRetries::new(10);
        let jitter = Jitter::seeded(1);
        // 500 tokens: 49 timeout retries (490) and 2 throttling retries (10) empty it.
        for _ in 0..49 {
            retries
                .grant(1, RetryReason::Timeout, &jitter, None)
                .unwrap();
        }
        for _ in 0..2 {
            retries
                .grant(1, RetryReason::Throttling, &jitter, None)
                .unwrap();
        }
        assert_eq!(
            retries.grant(1, RetryReason::Throttling, &jitter, None),
            None
        );
        assert_eq!(retries.quota_exhausted.load(Ordering::Relaxed), 1);

        // An answer after a retry gives that retry's cost back: one more retry fits.
        retries.answered(Some(Granted {
            delay: Duration::ZERO,
            cost: 5,
        }));
        assert!(retries
            .grant(1, RetryReason::Throttling, &jitter, None)
            .is_some());
        // Four first-attempt answers give back 4 tokens: not enough for a retry of 5.
        for _ in 0..4 {
            retries.answered(None);
        }
        assert_eq!(
            retries.grant(1, RetryReason::Throttling, &jitter, None),
            None
        );
        retries.answered(None);
        assert!(retries
            .grant(1, RetryReason::Throttling, &jitter, None)
            .is_some());
        assert_eq!(retries.quota_exhausted.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn answers_never_fill_the_quota_past_its_capacity() {
        let retries = AccountRetries::new(3);
        for _ in 0..10 {
            retries.answered(None);
        }
        assert_eq!(retries.quota.tokens.load(Ordering::Relaxed), QUOTA_CAPACITY);
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_waits_past_the_deadline() {
        let retries = AccountRetries::new(3);
        // Same seed, same fraction: `delay` is the wait the grant computes.
        let jitter = Jitter::seeded(0);
        let fraction = Jitter::seeded(0).fraction();
        let delay = backoff(1, fraction);
        let now = Instant::now();
        assert_eq!(
            retries.grant(1, RetryReason::Throttling, &jitter, Some(now + delay)),
            None,
            "a wait that ends at the deadline leaves no time for the attempt"
        );
        let jitter = Jitter::seeded(0);
        assert_eq!(
            retries.grant(
                1,
                RetryReason::Throttling,
                &jitter,
                Some(now + delay + Duration::from_millis(1))
            ),
            Some(Granted { delay, cost: 5 })
        );
        // The refusal took nothing from the quota and counted no retry.
        assert_eq!(
            retries.retries[RetryReason::Throttling.index()].load(Ordering::Relaxed),
            1
        );
        assert_eq!(
            retries.quota.tokens.load(Ordering::Relaxed),
            QUOTA_CAPACITY - 5
        );
    }

    #[test]
    fn stats_list_every_account_and_reason() {
        let a = Arc::new(AccountRetries::new(3));
        let b = Arc::new(AccountRetries::new(3));
        a.grant(1, RetryReason::Connection, &Jitter::seeded(1), None)
            .unwrap();
        let stats = RetryStats::new(vec![("b".into(), b), ("a".into(), a)]);
        let mut seen = Vec::new();
        stats.for_each_retry_count(|account, reason, n| {
            seen.push(format!("{account} {reason} {n}"))
        });
        assert_eq!(
            seen,
            [
                "a throttling 0",
                "a transient 0",
                "a timeout 0",
                "a connection 1",
                "b throttling 0",
                "b transient 0",
                "b timeout 0",
                "b connection 0"
            ]
        );
        let mut exhausted = Vec::new();
        stats.for_each_quota_exhausted(|account, n| exhausted.push((account.to_owned(), n)));
        assert_eq!(exhausted, [("a".to_owned(), 0), ("b".to_owned(), 0)]);
    }
}
