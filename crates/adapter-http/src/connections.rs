//! What a connection may cost before any handler runs: the size and count of its request
//! heads, how long it may take to send one, how many HTTP/2 streams it may run, and how many
//! connections the process keeps open at once.
//!
//! These are the process's: they are read when a server loop starts, and a reload does not
//! change them (a new app carries the old one's [`ConnectionSettings`]).

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::settings::HttpSettings;

/// The connection limits of [`HttpSettings`], and the one count of open connections.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionSettings {
    /// Within hyper's bounds already (see [`ConnectionSettings::new`]).
    pub(crate) max_header_bytes: usize,
    pub(crate) max_headers: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_streams_per_connection: NonZeroU32,
    pub(crate) limit: ConnectionLimit,
}

impl ConnectionSettings {
    /// `max_header_bytes` is held within [`HttpSettings::MIN_MAX_HEADER_BYTES`] and
    /// [`HttpSettings::MAX_MAX_HEADER_BYTES`]: hyper panics below the minimum, and a host that
    /// skipped the configuration's check must not take the server down with it.
    pub(crate) fn new(settings: &HttpSettings) -> Self {
        Self {
            max_header_bytes: settings.max_header_bytes.clamp(
                HttpSettings::MIN_MAX_HEADER_BYTES,
                HttpSettings::MAX_MAX_HEADER_BYTES,
            ),
            max_headers: settings.max_headers,
            header_read_timeout: settings.header_read_timeout,
            max_streams_per_connection: settings.max_streams_per_connection,
            limit: ConnectionLimit::new(settings.max_connections),
        }
    }

    /// HTTP/2's `SETTINGS_MAX_HEADER_LIST_SIZE` (a `u32`).
    pub(crate) fn max_header_list_size(&self) -> u32 {
        u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX)
    }
}

/// At most `max` connections open; clones share the counts.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionLimit {
    open: Arc<AtomicUsize>,
    refused: Arc<AtomicU64>,
    max: usize,
}

impl ConnectionLimit {
    fn new(max: NonZeroUsize) -> Self {
        Self {
            open: Arc::new(AtomicUsize::new(0)),
            refused: Arc::new(AtomicU64::new(0)),
            max: max.get(),
        }
    }

    /// A place for one more connection, or `None` (counted as refused) when all are taken.
    /// As with load shedding, a compare-and-swap: a refused connection never counts as open.
    pub(crate) fn try_open(&self) -> Option<OpenConnection> {
        let opened = self
            .open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            });
        if opened.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(OpenConnection {
            open: Arc::clone(&self.open),
        })
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections closed at accept since the start, because `max` were open.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// One open connection, counted until dropped (when its task ends, however it ends).
#[derive(Debug)]
pub(crate) struct OpenConnection {
    open: Arc<AtomicUsize>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_past_the_limit_are_refused_and_counted_until_one_closes() {
        let limit = ConnectionLimit::new(NonZeroUsize::MIN.saturating_add(1));
        let shard = limit.clone();
        let first = limit.try_open();
        let second = shard.try_open();
        assert!(first.is_some() && second.is_some());
        assert!(limit.try_open().is_none());
        assert!(shard.try_open().is_none());
        assert_eq!((limit.open(), limit.refused()), (2, 2));
        drop(first);
        assert_eq!(shard.open(), 1);
        assert!(
            shard.try_open().is_some(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn a_head_limit_outside_hypers_bounds_is_held_within_them() {
        for (configured, used) in [
            (0, HttpSettings::MIN_MAX_HEADER_BYTES),
            (usize::MAX, HttpSettings::MAX_MAX_HEADER_BYTES),
            (16_384, 16_384),
        ] {
            let settings = HttpSettings {
                max_header_bytes: configured,
                ..HttpSettings::default()
            };
            assert_eq!(ConnectionSettings::new(&settings).max_header_bytes, used);
        }
    }
}
