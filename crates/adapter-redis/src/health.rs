//! Backend failures: counted for `/metrics`, logged once when Redis goes away and once when
//! it is back, so an outage under load is two warnings, not one per request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// How many calls to Redis failed (timed out, unreachable, or answered an error), for the
/// `gateway_limits_backend_errors_total` counter. Clones share one count.
#[derive(Debug, Clone, Default)]
pub struct BackendErrors {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    count: AtomicU64,
    /// Whether the last call failed, to log the transitions only.
    failing: AtomicBool,
}

impl BackendErrors {
    /// Failed calls since start.
    pub fn count(&self) -> u64 {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// Whether the last call failed (Redis unreachable, too slow or erring now).
    pub fn is_failing(&self) -> bool {
        self.shared.failing.load(Ordering::Relaxed)
    }

    pub(crate) fn failed(&self, operation: &'static str, error: &str) {
        self.shared.count.fetch_add(1, Ordering::Relaxed);
        if self.shared.failing.swap(true, Ordering::Relaxed) {
            tracing::debug!(operation, error, "limits backend (Redis) call failed");
        } else {
            tracing::warn!(
                operation,
                error,
                "limits backend (Redis) unavailable; requests follow `on_backend_error` until it answers again"
            );
        }
    }

    pub(crate) fn succeeded(&self) {
        // A load first: the common case (healthy) writes nothing shared.
        if self.shared.failing.load(Ordering::Relaxed)
            && self.shared.failing.swap(false, Ordering::Relaxed)
        {
            tracing::info!("limits backend (Redis) answers again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_count() {
        let errors = BackendErrors::default();
        let seen_by_metrics = errors.clone();
        errors.failed("admit", "timed out");
        errors.succeeded();
        errors.failed("record", "connection refused");
        assert_eq!(seen_by_metrics.count(), 2);
    }
}
