//! Prometheus metrics for `/metrics`.
//!
//! Label values come from fixed sets only: endpoints and status classes are constants, models
//! and targets are the configured names (anything else is `other`), upstream errors and
//! failover reasons are `ProviderError::kind()`, dropped parameters are the parser's fixed
//! list of unsupported OpenAI parameters. A client can therefore never create new series.
//!
//! Resilience: `gateway_failovers_total{from,reason}` counts a target's failures that passed
//! the request on to the next target of a virtual model (the error a client finally gets is
//! in `gateway_upstream_errors_total` instead), `gateway_circuit_skips_total{target}` the
//! requests that skipped a target because its circuit breaker was open, and
//! `gateway_circuit_state{target}` is each breaker's state when scraped (0 closed, 1 open,
//! 2 half-open).
//!
//! `/metrics` needs no gateway key, like most exporters: operators should not expose it
//! publicly (bind the gateway to an internal network or filter the path at the edge).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use gateway_core::{CircuitState, ProviderError};
use http::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::shed::ConcurrencyLimit;

/// A model label: a configured public name, or `other`. Shared, so recording costs no copy.
pub(crate) type ModelLabel = Arc<String>;

/// The route a request took, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Endpoint {
    ChatCompletions,
    Models,
    Health,
    Ready,
    Metrics,
    Other,
}

impl Endpoint {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat_completions",
            Self::Models => "models",
            Self::Health => "health",
            Self::Ready => "ready",
            Self::Metrics => "metrics",
            Self::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    model: ModelLabel,
    status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FailoverLabels {
    from: ModelLabel,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TargetLabels {
    target: ModelLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ParameterLabels {
    parameter: &'static str,
}

fn latency_histogram() -> Histogram {
    // 250 µs .. ~65 s: gateway overhead is sub-millisecond, model answers take seconds.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 19))
}

/// Every metric the HTTP server records.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    upstream_errors: Family<UpstreamLabels, Counter>,
    dropped_parameters: Family<ParameterLabels, Counter>,
    open_streams: Gauge,
    shed_requests: Counter,
    failovers: Family<FailoverLabels, Counter>,
    circuit_skips: Family<TargetLabels, Counter>,
    circuit_state: Family<TargetLabels, Gauge>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let upstream_errors = Family::<UpstreamLabels, Counter>::default();
        let dropped_parameters = Family::<ParameterLabels, Counter>::default();
        let open_streams = Gauge::default();
        let shed_requests = Counter::default();
        let failovers = Family::<FailoverLabels, Counter>::default();
        let circuit_skips = Family::<TargetLabels, Counter>::default();
        let circuit_state = Family::<TargetLabels, Gauge>::default();
        let mut registry = Registry::default();
        registry.register(
            "gateway_http_requests",
            "HTTP requests by endpoint, model and status class",
            requests.clone(),
        );
        registry.register(
            "gateway_http_request_duration_seconds",
            "Time until the response head (for streams: until the first byte can be sent)",
            latency.clone(),
        );
        registry.register(
            "gateway_upstream_errors",
            "Provider errors by kind, before or during a stream",
            upstream_errors.clone(),
        );
        registry.register(
            "gateway_dropped_parameters",
            "Unsupported parameters dropped from accepted requests (drop_unsupported_params)",
            dropped_parameters.clone(),
        );
        registry.register(
            "gateway_open_streams",
            "Streaming responses currently open",
            open_streams.clone(),
        );
        registry.register(
            "gateway_shed_requests",
            "Chat requests refused with 503 because max_concurrent_requests were in flight",
            shed_requests.clone(),
        );
        registry.register(
            "gateway_failovers",
            "Target failures that passed a request on to the next target of a virtual model",
            failovers.clone(),
        );
        registry.register(
            "gateway_circuit_skips",
            "Requests that skipped a target because its circuit breaker was open",
            circuit_skips.clone(),
        );
        registry.register(
            "gateway_circuit_state",
            "Circuit breaker state per target: 0 closed, 1 open, 2 half-open",
            circuit_state.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            upstream_errors,
            dropped_parameters,
            open_streams,
            shed_requests,
            failovers,
            circuit_skips,
            circuit_state,
        }
    }

    /// Exports the chat requests holding a slot of `limit` on every scrape.
    pub(crate) fn track_in_flight(&mut self, limit: ConcurrencyLimit) {
        self.registry
            .register_collector(Box::new(InFlightCollector(limit)));
    }

    /// Counts one chat refused by load shedding.
    pub(crate) fn shed_request(&self) {
        self.shed_requests.inc();
    }

    pub(crate) fn record_request(
        &self,
        endpoint: Endpoint,
        model: &ModelLabel,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let status = match status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.as_str(),
                model: Arc::clone(model),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn upstream_error(&self, error: &ProviderError) {
        record_upstream_error(&self.upstream_errors, error);
    }

    /// Counts one parameter the gateway dropped from a request it then served.
    pub(crate) fn dropped_parameter(&self, parameter: &'static str) {
        self.dropped_parameters
            .get_or_create(&ParameterLabels { parameter })
            .inc();
    }

    /// Counts a failure of `from` after which the next target was tried.
    pub(crate) fn failover(&self, from: &ModelLabel, error: &ProviderError) {
        self.failovers
            .get_or_create(&FailoverLabels {
                from: Arc::clone(from),
                reason: error.kind(),
            })
            .inc();
    }

    /// Counts a request that skipped `target` because its breaker was open.
    pub(crate) fn circuit_skip(&self, target: &ModelLabel) {
        self.circuit_skips
            .get_or_create(&TargetLabels {
                target: Arc::clone(target),
            })
            .inc();
    }

    /// Sets `target`'s breaker state, read just before each scrape.
    pub(crate) fn circuit_state(&self, target: &ModelLabel, state: CircuitState) {
        self.circuit_state
            .get_or_create(&TargetLabels {
                target: Arc::clone(target),
            })
            .set(state.gauge_value());
    }

    /// Counts a stream as open until the guard is dropped.
    pub(crate) fn open_stream(&self) -> OpenStream {
        self.open_streams.inc();
        OpenStream {
            open_streams: self.open_streams.clone(),
            upstream_errors: self.upstream_errors.clone(),
        }
    }

    /// Adds metrics kept elsewhere, read at each scrape.
    /// Streams being sent now, in every app sharing these metrics.
    pub(crate) fn open_streams(&self) -> usize {
        usize::try_from(self.open_streams.get()).unwrap_or(0)
    }

    pub(crate) fn register_collector(&mut self, collector: Box<dyn Collector>) {
        self.registry.register_collector(collector);
    }

    /// The OpenMetrics text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Reads the count at scrape time: the limit's own atomic is the only count, so the gauge can
/// never disagree with what shedding decides on.
#[derive(Debug)]
struct InFlightCollector(ConcurrencyLimit);

impl Collector for InFlightCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let gauge = ConstGauge::new(i64::try_from(self.0.in_flight()).unwrap_or(i64::MAX));
        let metric = encoder.encode_descriptor(
            "gateway_in_flight_requests",
            "Chat requests in flight (a stream until it ends); at most max_concurrent_requests",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}

fn record_upstream_error(family: &Family<UpstreamLabels, Counter>, error: &ProviderError) {
    family
        .get_or_create(&UpstreamLabels { kind: error.kind() })
        .inc();
}

/// Held by a streaming body: the open-streams gauge counts it until dropped, and errors in
/// the middle of the stream are counted like those before it.
pub(crate) struct OpenStream {
    open_streams: Gauge,
    upstream_errors: Family<UpstreamLabels, Counter>,
}

impl OpenStream {
    pub(crate) fn upstream_error(&self, error: &ProviderError) {
        record_upstream_error(&self.upstream_errors, error);
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.open_streams.dec();
    }
}

impl fmt::Debug for OpenStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenStream").finish_non_exhaustive()
    }
}
