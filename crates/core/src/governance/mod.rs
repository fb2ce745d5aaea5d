//! Governance: per-key rate limits, token budgets and what answers cost.
//!
//! The rules live here, pure: [`window`] is the sliding-window arithmetic every backend uses,
//! [`price`] turns usage into money. Where the counters live is a port, [`LimitStore`]: in
//! process for one replica, in Redis for many (an adapter). [`ChatService`](crate::ChatService)
//! admits a request before any provider call and records what the answer consumed after it.

pub mod memory;
pub mod price;
pub mod rules;
pub mod window;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::chat::Usage;
use crate::router::Route;

pub use memory::InMemoryLimits;
pub use price::{Cost, Price, PriceError};

/// The window of `rpm` and `tpm`.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// What one gateway key may consume. `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyLimits {
    /// Requests per minute (sliding window).
    pub rpm: Option<u32>,
    /// Tokens per minute (sliding window), counted from the provider's usage after each answer.
    pub tpm: Option<u64>,
    /// Spend allowed per budget period, in USD.
    pub budget_usd: Option<f64>,
    /// How long a budget lasts before it starts again from zero; `None`: never resets.
    pub budget_period: Option<Duration>,
}

impl KeyLimits {
    pub fn is_empty(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.budget_usd.is_none()
    }

    /// The budget in micro-USD, the unit spend is counted in.
    pub fn budget_micros(&self) -> Option<u64> {
        self.budget_usd.map(usd_to_micros)
    }

    /// The budget period holding `now`: periods are counted from the Unix epoch, so a `1d`
    /// budget starts again at midnight UTC and every replica agrees on the boundaries
    /// without talking to each other. Without a period there is one that never ends.
    pub fn budget_period(&self, now: SystemTime) -> BudgetPeriod {
        let Some(length) = self.budget_period else {
            return BudgetPeriod {
                index: 0,
                ends_in: None,
            };
        };
        // In whole nanoseconds, so the end of a period is exact.
        let since_epoch = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let length = length.as_nanos().max(1);
        let left = length - since_epoch % length;
        BudgetPeriod {
            index: u64::try_from(since_epoch / length).unwrap_or(u64::MAX),
            ends_in: Some(Duration::from_nanos(
                u64::try_from(left).unwrap_or(u64::MAX),
            )),
        }
    }
}

/// Which budget period `now` is in, and how long it lasts yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetPeriod {
    /// Periods since the Unix epoch; 0 when the budget never resets.
    pub index: u64,
    /// `None` when the budget never resets.
    pub ends_in: Option<Duration>,
}

/// USD to whole micro-USD (rounded; negative and non-finite amounts are 0).
fn usd_to_micros(usd: f64) -> u64 {
    let micros = usd * 1_000_000.0;
    if micros.is_finite() && micros > 0.0 {
        micros.round() as u64
    } else {
        0
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LimitKind {
    Requests,
    Tokens,
    Budget,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
            Self::Budget => "budget",
        }
    }
}

/// A limit and what is left of it (for the `x-ratelimit-*` headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remaining {
    pub limit: u64,
    pub remaining: u64,
}

/// Where a key stands after an admission decision: what is left once the admitted request
/// is counted (or, when it was refused, without it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitState {
    pub requests: Option<Remaining>,
    pub tokens: Option<Remaining>,
    /// Budget left in this period, in micro-USD.
    pub budget_remaining_micros: Option<u64>,
}

/// The answer to "may this key send a request now?".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Admission {
    /// Admitted; the request is counted against `rpm`.
    Admitted(LimitState),
    /// Refused by `kind`; trying again after `retry_after` may succeed (for a budget: when the
    /// period ends, or never).
    Limited {
        kind: LimitKind,
        retry_after: Option<Duration>,
        state: LimitState,
    },
}

/// What one answered request consumed, recorded against its key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumption {
    /// Every token of the request and answer (prompt incl. cache read/write + completion).
    pub tokens: u64,
    /// What the answer cost, in micro-USD (0 when the model has no price).
    pub cost_micros: u64,
}

/// The limit backend failed (unreachable, too slow, garbage). What the service then does is
/// [`OnBackendError`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the limits backend failed: {message}")]
pub struct LimitBackendError {
    pub message: String,
}

/// What to do with a request when the limits backend cannot answer in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBackendError {
    /// Serve the request unlimited (availability first; the default).
    #[default]
    Allow,
    /// Refuse it with 503 (limits first).
    Deny,
}

/// Where the counters live. Implementations must answer in bounded time: a slow or dead
/// backend returns [`LimitBackendError`] rather than hang the request.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// Decides whether `key` may send one more request at `now`, and counts it if so.
    async fn admit(
        &self,
        key: &str,
        limits: &KeyLimits,
        now: SystemTime,
    ) -> Result<Admission, LimitBackendError>;

    /// Records what an answered request of `key` consumed. Fire and forget: called where no
    /// future can be awaited (a stream's end, a client hanging up), so an implementation
    /// with I/O spawns it and reports failures through its own log and metrics.
    fn record(&self, key: &str, limits: &KeyLimits, consumption: Consumption, now: SystemTime);
}

/// What one answer consumed, as the service settled it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settlement<'a> {
    /// The gateway key's configured name, when the caller has one.
    pub key_name: Option<&'a str>,
    /// The target that answered.
    pub route: &'a Route,
    /// As the provider reported it, or estimated when `estimated`.
    pub usage: &'a Usage,
    /// At the route's price; `None` when the model has none.
    pub cost: Option<Cost>,
    /// The stream ended without the provider's usage (the client hung up, the stream was
    /// cut): `usage` is the service's estimate (see [`ChatService`](crate::ChatService)).
    pub estimated: bool,
}

/// Told what every answer consumed, when the service settles it (after a complete answer,
/// at a stream's usage report, or when a stream ends without one), whether or not its key
/// has limits. The HTTP adapter counts tokens and spend for `/metrics` this way.
pub trait UsageObserver: Send + Sync {
    fn settled(&self, settlement: &Settlement<'_>);
}
