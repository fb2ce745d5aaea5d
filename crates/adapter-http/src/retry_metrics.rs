//! Retry counts an upstream adapter keeps, shown on `/metrics` as they are at each scrape:
//! `gateway_upstream_retries_total{account,reason}` and
//! `gateway_retry_quota_exhausted_total{account}`. The HTTP adapter knows no provider; a host
//! hands it any [`RetryCounters`] in [`crate::HttpSettings::retry_counters`].
//!
//! Label values are the configured account names and the provider's fixed set of reasons, so
//! clients cannot create series.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

/// Counters of an upstream adapter's retries, read when `/metrics` is scraped.
pub trait RetryCounters: fmt::Debug + Send + Sync + 'static {
    /// Calls `count(account, reason, retries)` for every account and retry reason.
    fn for_each_retry_count(&self, count: &mut dyn FnMut(&str, &str, u64));

    /// Calls `count(account, times)` for every account: how often a retry was refused because
    /// the account's retry quota was empty.
    fn for_each_quota_exhausted(&self, count: &mut dyn FnMut(&str, u64));
}

/// Encodes a [`RetryCounters`] at each scrape.
#[derive(Debug)]
pub(crate) struct RetryCollector(pub(crate) Arc<dyn RetryCounters>);

impl Collector for RetryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        // The callbacks cannot return the encoder's error; the first one is kept and returned.
        let mut outcome = Ok(());
        {
            let mut family = encoder.encode_descriptor(
                "gateway_upstream_retries",
                "Upstream calls retried, by account and reason",
                None,
                MetricType::Counter,
            )?;
            self.0
                .for_each_retry_count(&mut |account, reason, retries| {
                    if outcome.is_ok() {
                        let labels = [("account", account), ("reason", reason)];
                        outcome = family
                            .encode_family(&labels)
                            .and_then(|series| ConstCounter::new(retries).encode(series));
                    }
                });
        }
        outcome?;
        let mut family = encoder.encode_descriptor(
            "gateway_retry_quota_exhausted",
            "Retries refused because the account's retry quota was empty",
            None,
            MetricType::Counter,
        )?;
        self.0.for_each_quota_exhausted(&mut |account, times| {
            if outcome.is_ok() {
                let labels = [("account", account)];
                outcome = family
                    .encode_family(&labels)
                    .and_then(|series| ConstCounter::new(times).encode(series));
            }
        });
        outcome
    }
}
