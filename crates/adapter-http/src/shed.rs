//! Load shedding: at most `max_concurrent_requests` chat requests in flight; past that, a
//! request is refused at once rather than queued.
//!
//! Queueing would only hide the overload: requests would wait behind upstream calls that
//! take seconds, and the client could not tell a slow model from a saturated gateway. A
//! fast 503 with `retry-after` lets clients back off and a load balancer try another
//! instance. The count is one atomic, shared by every runtime of the process; taking and
//! giving back a slot never locks.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The limit and the count of requests holding a slot. Clones share the count.
#[derive(Debug, Clone)]
pub(crate) struct ConcurrencyLimit {
    in_flight: Arc<AtomicUsize>,
    max: usize,
}

impl ConcurrencyLimit {
    pub(crate) fn new(max: NonZeroUsize) -> Self {
        Self {
            in_flight: Arc::new(AtomicUsize::new(0)),
            max: max.get(),
        }
    }

    /// A limit of `max` on the same count: a reload changes the limit while the requests
    /// already in flight keep counting against it.
    pub(crate) fn with_max(&self, max: NonZeroUsize) -> Self {
        Self {
            in_flight: Arc::clone(&self.in_flight),
            max: max.get(),
        }
    }

    /// A slot, or `None` when all are taken. A compare-and-swap rather than an add then a
    /// subtract: a refused request never counts, even for an instant, so it can never make
    /// another one look over the limit.
    pub(crate) fn try_acquire(&self) -> Option<InFlight> {
        // The count guards no other memory, so no ordering beyond the atomic itself.
        self.in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        Some(InFlight {
            in_flight: Arc::clone(&self.in_flight),
        })
    }

    /// Requests holding a slot now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// A slot, given back when dropped: with the handler for a complete answer, with the body
/// for a stream (when it ends or the client goes away).
#[derive(Debug)]
pub(crate) struct InFlight {
    in_flight: Arc<AtomicUsize>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max: usize) -> ConcurrencyLimit {
        ConcurrencyLimit::new(NonZeroUsize::new(max).unwrap_or(NonZeroUsize::MIN))
    }

    #[test]
    fn slots_run_out_at_the_limit_and_come_back_when_dropped() {
        let limit = limit(2);
        let first = limit.try_acquire();
        let second = limit.try_acquire();
        assert!(first.is_some() && second.is_some());
        assert!(limit.try_acquire().is_none());
        assert!(limit.try_acquire().is_none());
        assert_eq!(limit.in_flight(), 2, "refused requests do not count");
        drop(first);
        assert_eq!(limit.in_flight(), 1);
        let third = limit.try_acquire();
        assert!(third.is_some());
        assert!(limit.try_acquire().is_none());
        drop((second, third));
        assert_eq!(limit.in_flight(), 0);
    }

    #[test]
    fn clones_share_one_count() {
        let limit = limit(1);
        let shard = limit.clone();
        let held = limit.try_acquire();
        assert!(held.is_some());
        assert!(shard.try_acquire().is_none());
        drop(held);
        assert!(shard.try_acquire().is_some());
    }

    #[test]
    fn a_new_limit_counts_the_requests_already_in_flight() {
        let old = limit(3);
        let held = (old.try_acquire(), old.try_acquire());
        let new = old.with_max(NonZeroUsize::MIN);
        assert!(new.try_acquire().is_none(), "two in flight, limit one");
        drop(held);
        assert_eq!(new.in_flight(), 0);
        assert!(new.try_acquire().is_some());
    }

    #[test]
    fn threads_racing_for_slots_never_exceed_the_limit() {
        let limit = limit(3);
        // Counted apart from the limit's own count, which is what is under test.
        let holders = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..10_000 {
                        if let Some(slot) = limit.try_acquire() {
                            let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            holders.fetch_sub(1, Ordering::SeqCst);
                            drop(slot);
                        }
                    }
                });
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= 3, "{peak:?}");
        assert_eq!(limit.in_flight(), 0);
    }
}
