//! Governance over HTTP: the headers a limited key's responses carry, the cost header, and
//! the usage, spend and limits-backend metrics.
//!
//! - `x-ratelimit-limit-requests` / `x-ratelimit-remaining-requests` (a key with `rpm`) and
//!   `x-ratelimit-limit-tokens` / `x-ratelimit-remaining-tokens` (with `tpm`), OpenAI's
//!   headers, on every response after the key was admitted or refused: answers, streams,
//!   429s and upstream errors alike. Requests refused before admission (no key, a body that is
//!   not a valid request, an unknown model) carry none: the gateway did not count them.
//! - `x-gateway-cost-usd` on a non-streamed answer from a model with a price: what the
//!   answer cost, in USD with six decimals (the micro-USD spend is counted in). A stream's
//!   cost is `usage.cost_usd` in its usage chunk (`stream_options.include_usage`), since
//!   headers leave before the usage is known.

use std::fmt;
use std::sync::Arc;

use gateway_core::{Cost, LimitState, Settlement, UsageObserver};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

use crate::metrics::{KeyLabels, Metrics};
use crate::server::ModelIndex;

const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const COST: HeaderName = HeaderName::from_static("x-gateway-cost-usd");

/// The `x-ratelimit-*` headers for where a key stands.
pub(crate) fn insert_limit_headers(headers: &mut HeaderMap, state: &LimitState) {
    if let Some(requests) = state.requests {
        headers.insert(LIMIT_REQUESTS, HeaderValue::from(requests.limit));
        headers.insert(REMAINING_REQUESTS, HeaderValue::from(requests.remaining));
    }
    if let Some(tokens) = state.tokens {
        headers.insert(LIMIT_TOKENS, HeaderValue::from(tokens.limit));
        headers.insert(REMAINING_TOKENS, HeaderValue::from(tokens.remaining));
    }
}

/// `x-gateway-cost-usd`.
pub(crate) fn insert_cost_header(headers: &mut HeaderMap, cost: &Cost) {
    if let Ok(value) = HeaderValue::from_str(&usd(cost.total_micros())) {
        headers.insert(COST, value);
    }
}

/// Micro-USD as USD with six decimals, exactly (no floating point on the way).
pub(crate) fn usd(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// Counts every settled answer in `/metrics`: the service tells it (see
/// [`gateway_core::UsageObserver`]), streams cut short included.
pub(crate) struct UsageMetrics {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) models: Arc<ModelIndex>,
    pub(crate) keys: Arc<KeyLabels>,
}

impl UsageObserver for UsageMetrics {
    fn settled(&self, settlement: &Settlement<'_>) {
        self.metrics.usage(
            self.keys.get(settlement.key_name),
            &self.models.get(&settlement.route.public_name).label,
            settlement.usage,
            settlement.cost.as_ref(),
        );
    }
}

impl fmt::Debug for UsageMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageMetrics").finish_non_exhaustive()
    }
}

/// How often the limits backend failed (unreachable, too slow), read when `/metrics` is
/// scraped as `gateway_limits_backend_errors_total`. A host hands its backend's count in
/// [`crate::HttpSettings::limit_backend_errors`]; the backend logs each failure itself.
pub trait LimitBackendErrors: fmt::Debug + Send + Sync + 'static {
    /// Failures so far, admissions and records alike.
    fn errors(&self) -> u64;

    /// Whether the last call failed (the console's status page); a backend that cannot
    /// tell says no.
    fn failing(&self) -> bool {
        false
    }
}

/// Encodes a [`LimitBackendErrors`] at each scrape.
#[derive(Debug)]
pub(crate) struct LimitBackendCollector(pub(crate) Arc<dyn LimitBackendErrors>);

impl Collector for LimitBackendCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let counter = ConstCounter::new(self.0.errors());
        let metric = encoder.encode_descriptor(
            "gateway_limits_backend_errors",
            "Calls to the limits backend that failed or took too long (on_backend_error decided)",
            None,
            MetricType::Counter,
        )?;
        counter.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::Remaining;

    #[test]
    fn micro_usd_print_as_exact_usd() {
        assert_eq!(usd(0), "0.000000");
        assert_eq!(usd(16_500), "0.016500");
        assert_eq!(usd(50_000_001), "50.000001");
    }

    #[test]
    fn only_the_limits_a_key_has_get_headers() {
        let mut headers = HeaderMap::new();
        insert_limit_headers(
            &mut headers,
            &LimitState {
                requests: None,
                tokens: Some(Remaining {
                    limit: 1000,
                    remaining: 250,
                }),
                budget_remaining_micros: Some(5),
            },
        );
        let mut names: Vec<_> = headers
            .iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "x-ratelimit-limit-tokens: 1000",
                "x-ratelimit-remaining-tokens: 250"
            ]
        );
    }
}
