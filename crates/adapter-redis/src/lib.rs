//! Redis limits backend: per-key rate limits and budgets counted once across every replica.
//!
//! [`RedisLimits`] implements gateway-core's [`LimitStore`](gateway_core::LimitStore) with the
//! same sliding-window arithmetic as the in-process store (`gateway_core::governance::window`),
//! so switching `backend = "memory"` to `"redis"` changes where the counts live, not what they
//! allow. Admission is one atomic Lua script; recording is a spawned pipeline; every call is
//! bounded by a timeout and the connection heals by itself.
//!
//! ```no_run
//! # async fn example() -> Result<(), gateway_adapter_redis::RedisLimitsError> {
//! use std::time::Duration;
//! use gateway_adapter_redis::RedisLimits;
//!
//! let limits = RedisLimits::new("redis://127.0.0.1:6379", Duration::from_millis(100))?;
//! let errors = limits.backend_errors(); // read at each scrape
//! # let _ = errors.count();
//! # Ok(())
//! # }
//! ```

mod admission;
mod health;
mod keys;
mod store;

pub use health::BackendErrors;
pub use store::{RedisLimits, RedisLimitsError};
