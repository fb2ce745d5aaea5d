//! `RedisLimits`: the [`LimitStore`] whose counters live in Redis, shared by every replica.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use gateway_core::{Admission, Consumption, KeyLimits, LimitBackendError, LimitState, LimitStore};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, Script};
use thiserror::Error;
use tokio::runtime::Handle;

use crate::admission::{self, ScriptReply, Slots, RATE_COUNT_TTL_SECS};
use crate::health::BackendErrors;

/// The admit script (see the file for its keys, arguments and reply).
const ADMIT_SCRIPT: &str = include_str!("admit.lua");

/// The longest pause between two reconnection attempts while Redis is away, so that it is
/// used again within about this long of coming back.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// The first pause between reconnection attempts (they double up to the maximum).
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(50);

/// Why a [`RedisLimits`] could not be built. Redis being unreachable is not one of them: it
/// connects lazily and reconnects by itself, and calls fail in bounded time until it answers.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RedisLimitsError {
    /// The URL is not one the client accepts (the message never repeats the URL: it may hold
    /// a password).
    #[error(
        "not a Redis URL this gateway can use (redis://[:password@]host[:port][/db] or \
         unix:///path/to/socket; rediss://, TLS, is not built in): {0}"
    )]
    InvalidUrl(#[source] RedisError),
    /// A zero timeout would fail every call.
    #[error("the Redis timeout must be longer than zero")]
    ZeroTimeout,
    /// Built outside a tokio runtime, which drives its connection.
    #[error("the Redis limits backend must be built inside a tokio runtime")]
    NoRuntime,
}

/// Per-key rate limits and budgets counted in Redis: every gateway replica pointed at the
/// same Redis enforces one limit. Cheap to clone; clones share the connection and the error
/// count.
///
/// Admission is one Lua script (EVALSHA, loaded again when Redis has forgotten it), atomic
/// across replicas; recording is an INCRBY/EXPIRE pipeline, spawned. Every call to Redis
/// takes at most the configured timeout, then fails with [`LimitBackendError`]; the
/// connection comes back by itself when Redis does.
#[derive(Clone)]
pub struct RedisLimits {
    shared: Arc<Shared>,
}

struct Shared {
    connection: ConnectionManager,
    admit_script: Script,
    timeout: Duration,
    errors: BackendErrors,
    /// Where `record` spawns when called outside any runtime.
    runtime: Handle,
}

impl std::fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimits")
            .field("timeout", &self.shared.timeout)
            .field("errors", &self.shared.errors.count())
            .finish_non_exhaustive()
    }
}

impl RedisLimits {
    /// A store on the Redis at `url` (`redis://[:password@]host:port[/db]`) whose every call
    /// answers within `timeout`. Connects lazily: Redis need not be up yet.
    ///
    /// Call inside a tokio runtime; the connection is driven by that runtime's tasks, so it
    /// must run as long as the store is used (callers on other runtimes are fine).
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RedisLimitsError> {
        if timeout.is_zero() {
            return Err(RedisLimitsError::ZeroTimeout);
        }
        let runtime = Handle::try_current().map_err(|_| RedisLimitsError::NoRuntime)?;
        let client = open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_min_delay(MIN_RECONNECT_DELAY)
            .set_max_delay(MAX_RECONNECT_DELAY);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(RedisLimitsError::InvalidUrl)?;
        Ok(Self {
            shared: Arc::new(Shared {
                connection,
                admit_script: Script::new(ADMIT_SCRIPT),
                timeout,
                errors: BackendErrors::default(),
                runtime,
            }),
        })
    }

    /// Whether [`RedisLimits::new`] takes `url`, without connecting: a configuration is
    /// checked with this, so it refuses exactly the URLs the store would.
    pub fn check_url(url: &str) -> Result<(), RedisLimitsError> {
        open(url).map(drop)
    }

    /// The count of failed calls, for `gateway_limits_backend_errors_total`.
    pub fn backend_errors(&self) -> BackendErrors {
        self.shared.errors.clone()
    }

    /// What [`LimitStore::record`] spawns, to be awaited: adds the tokens to the current
    /// window and the cost to the budget period.
    pub async fn record_now(
        &self,
        key: &str,
        limits: &KeyLimits,
        consumption: Consumption,
        now: SystemTime,
    ) -> Result<(), LimitBackendError> {
        let slots = Slots::at(limits, now);
        let mut pipeline = redis::pipe();
        if limits.tpm.is_some() && consumption.tokens > 0 {
            let tokens = slots.tokens_key(key);
            pipeline
                .incr(&tokens, consumption.tokens)
                .ignore()
                .expire(&tokens, expire_secs(RATE_COUNT_TTL_SECS))
                .ignore();
        }
        if limits.budget_usd.is_some() && consumption.cost_micros > 0 {
            let spend = slots.budget_key(key);
            pipeline.incr(&spend, consumption.cost_micros).ignore();
            if let Some(ttl) = slots.budget_ttl_secs() {
                pipeline.expire(&spend, expire_secs(ttl)).ignore();
            }
        }
        if pipeline.is_empty() {
            return Ok(());
        }
        let mut connection = self.shared.connection.clone();
        self.bounded("record", pipeline.exec_async(&mut connection))
            .await
    }

    /// Runs `call` under the timeout, counting and logging a failure.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, LimitBackendError> {
        // The connection's own response timeout is the same one: whichever fires first, it
        // is reported alike.
        let failure = match tokio::time::timeout(self.shared.timeout, call).await {
            Ok(Ok(value)) => {
                self.shared.errors.succeeded();
                return Ok(value);
            }
            Ok(Err(error)) if !error.is_timeout() => format!("Redis {operation} failed: {error}"),
            Ok(Err(_)) | Err(_) => format!(
                "Redis {operation} took longer than {} ms",
                self.shared.timeout.as_millis()
            ),
        };
        self.shared.errors.failed(operation, &failure);
        Err(LimitBackendError { message: failure })
    }
}

/// A client for `url` (parsing only: it connects on first use).
fn open(url: &str) -> Result<Client, RedisLimitsError> {
    Client::open(url).map_err(RedisLimitsError::InvalidUrl)
}

/// EXPIRE takes a signed count of seconds.
fn expire_secs(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// A limit as the script takes it: the number, or empty for none.
fn limit_arg(limit: Option<impl ToString>) -> String {
    limit.map(|limit| limit.to_string()).unwrap_or_default()
}

#[async_trait]
impl LimitStore for RedisLimits {
    async fn admit(
        &self,
        key: &str,
        limits: &KeyLimits,
        now: SystemTime,
    ) -> Result<Admission, LimitBackendError> {
        if limits.is_empty() {
            return Ok(Admission::Admitted(LimitState::default()));
        }
        let slots = Slots::at(limits, now);
        let mut invocation = self.shared.admit_script.prepare_invoke();
        invocation
            .key(slots.requests_key(key))
            .key(slots.previous_requests_key(key))
            .key(slots.tokens_key(key))
            .key(slots.previous_tokens_key(key))
            .key(slots.budget_key(key))
            // Rust prints the shortest text that parses back to the same double, so the
            // script computes with exactly the value core's functions see.
            .arg(slots.rate.elapsed.to_string())
            .arg(limit_arg(limits.rpm))
            .arg(limit_arg(limits.tpm))
            .arg(limit_arg(limits.budget_micros()))
            .arg(RATE_COUNT_TTL_SECS);
        let mut connection = self.shared.connection.clone();
        let reply = self
            .bounded("admit", invocation.invoke_async(&mut connection))
            .await?;
        admission::admission(limits, now, ScriptReply::new(reply)).inspect_err(|error| {
            self.shared.errors.failed("admit", &error.message);
        })
    }

    fn record(&self, key: &str, limits: &KeyLimits, consumption: Consumption, now: SystemTime) {
        let store = self.clone();
        let key = key.to_owned();
        let limits = *limits;
        let task = async move {
            // A failure is counted and logged in `bounded`; nobody waits for this one.
            let _ = store.record_now(&key, &limits, consumption, now).await;
        };
        match Handle::try_current() {
            Ok(current) => drop(current.spawn(task)),
            Err(_) => drop(self.shared.runtime.spawn(task)),
        }
    }
}
