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
//! Governance: `gateway_tokens_total{key,model,kind}` (kind `input`, `output`, `cache_read`,
//! `cache_write`) and `gateway_cost_usd_total{key,model}` count what every answer consumed as
//! the service settled it (see [`crate::governance`]), `gateway_limited_requests_total{key,kind}`
//! the requests refused by a key's limits (kind `requests`, `tokens`, `budget`). Key labels
//! are the configured key names.
//!
//! GenAI semantic conventions, beside the series above: `gen_ai_client_token_usage`
//! (tokens per chat, `gen_ai_token_type` `input` or `output`), `gen_ai_server_request_duration`
//! (seconds from the request to the end of the answer, a stream's whole length included,
//! `error_type` naming a failure) and `gen_ai_server_time_to_first_token` (seconds, streams),
//! all by `gen_ai_request_model` (configured names, anything else `other`), with the
//! conventions' recommended buckets.
//!
//! `/metrics` needs no gateway key, like most exporters: operators should not expose it
//! publicly (bind the gateway to an internal network or filter the path at the edge).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use gateway_core::{CircuitState, Cost, LimitKind, ProviderError, Usage};
use http::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::connections::ConnectionLimit;
use crate::console::traffic::Traffic;
use crate::shed::ConcurrencyLimit;

/// A model label: a configured public name, or `other`. Shared, so recording costs no copy.
pub(crate) type ModelLabel = Arc<String>;

/// A key label: a configured key name (`-` for a caller without one).
pub(crate) type KeyLabel = Arc<String>;

/// The label of every configured key, made once.
#[derive(Debug)]
pub(crate) struct KeyLabels {
    by_name: HashMap<String, KeyLabel>,
    unnamed: KeyLabel,
}

impl KeyLabels {
    pub(crate) fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            by_name: names
                .into_iter()
                .map(|name| (name.to_owned(), Arc::new(name.to_owned())))
                .collect(),
            unnamed: Arc::new("-".to_owned()),
        }
    }

    /// Callers come from the configured keys only; any other name shares `-` with callers
    /// without one, so no series appear that configuration did not make.
    pub(crate) fn get(&self, name: Option<&str>) -> &KeyLabel {
        name.and_then(|name| self.by_name.get(name))
            .unwrap_or(&self.unnamed)
    }
}

/// The route a request took, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Endpoint {
    ChatCompletions,
    Responses,
    /// Anthropic's Messages API.
    Messages,
    /// Anthropic's token counting (`/v1/messages/count_tokens`).
    CountTokens,
    GuardrailCheck,
    Embeddings,
    Models,
    Health,
    Ready,
    Metrics,
    /// The web console, its assets and its admin API (`/console...`).
    Console,
    Other,
}

impl Endpoint {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat_completions",
            Self::Responses => "responses",
            Self::Messages => "messages",
            Self::CountTokens => "count_tokens",
            Self::GuardrailCheck => "guardrail_check",
            Self::Embeddings => "embeddings",
            Self::Models => "models",
            Self::Health => "health",
            Self::Ready => "ready",
            Self::Metrics => "metrics",
            Self::Console => "console",
            Self::Other => "other",
        }
    }

    /// Endpoints that take `POST` (and only that).
    pub(crate) fn takes_posts(self) -> bool {
        self.is_chat()
            || matches!(
                self,
                Self::CountTokens | Self::GuardrailCheck | Self::Embeddings
            )
    }

    /// A request for a model (a chat or embeddings), which the console's traffic page counts.
    pub(crate) fn is_model_traffic(self) -> bool {
        self.is_chat() || self == Self::Embeddings
    }

    /// A chat door: a request that goes through the one chat path, and that the GenAI
    /// metrics count.
    pub(crate) fn is_chat(self) -> bool {
        matches!(
            self,
            Self::ChatCompletions | Self::Responses | Self::Messages
        )
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

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SpendLabels {
    key: KeyLabel,
    model: ModelLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TokenLabels {
    key: KeyLabel,
    model: ModelLabel,
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LimitedLabels {
    key: KeyLabel,
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GenAiTokenLabels {
    gen_ai_token_type: &'static str,
    gen_ai_request_model: ModelLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GenAiDurationLabels {
    gen_ai_request_model: ModelLabel,
    /// Empty (the same as absent to Prometheus) when the request succeeded.
    error_type: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GenAiModelLabels {
    gen_ai_request_model: ModelLabel,
}

/// The GenAI conventions' buckets for `gen_ai.client.token.usage`: 1, 4, 16 ... 4^13.
fn gen_ai_token_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 4.0, 14))
}

/// The GenAI conventions' buckets for `gen_ai.server.request.duration`: 0.01 s .. 81.92 s.
/// The console's traffic percentiles use them too, so they agree with `/metrics`.
pub(crate) fn gen_ai_duration_bounds() -> impl Iterator<Item = f64> {
    exponential_buckets(0.01, 2.0, 14)
}

fn gen_ai_duration_histogram() -> Histogram {
    Histogram::new(gen_ai_duration_bounds())
}

/// The GenAI conventions' buckets for `gen_ai.server.time_to_first_token`.
fn gen_ai_first_token_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ])
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

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
    tokens: Family<TokenLabels, Counter>,
    cost_usd: Family<SpendLabels, Counter<f64, AtomicU64>>,
    limited_requests: Family<LimitedLabels, Counter>,
    gen_ai_tokens: HistogramFamily<GenAiTokenLabels>,
    gen_ai_duration: HistogramFamily<GenAiDurationLabels>,
    gen_ai_first_token: HistogramFamily<GenAiModelLabels>,
    /// The console's per-model counts and their history.
    traffic: Arc<Traffic>,
    /// Each key's spend over every model, what `gateway_cost_usd` sums to per key: kept
    /// apart (and not exported) so the console reads a key's spend with one lookup, not
    /// one per configured model.
    spend_by_key: Family<KeyLabel, Counter<f64, AtomicU64>>,
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
        let tokens = Family::<TokenLabels, Counter>::default();
        let cost_usd = Family::<SpendLabels, Counter<f64, AtomicU64>>::default();
        let limited_requests = Family::<LimitedLabels, Counter>::default();
        let gen_ai_tokens: HistogramFamily<GenAiTokenLabels> =
            Family::new_with_constructor(gen_ai_token_histogram);
        let gen_ai_duration: HistogramFamily<GenAiDurationLabels> =
            Family::new_with_constructor(gen_ai_duration_histogram);
        let gen_ai_first_token: HistogramFamily<GenAiModelLabels> =
            Family::new_with_constructor(gen_ai_first_token_histogram);
        let mut registry = Registry::default();
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens per chat by gen_ai_token_type (input, output) and gen_ai_request_model",
            gen_ai_tokens.clone(),
        );
        registry.register(
            "gen_ai_server_request_duration",
            "Seconds from a chat request to the end of its answer (a stream's whole length), \
             by gen_ai_request_model and error_type when it failed",
            gen_ai_duration.clone(),
        );
        registry.register(
            "gen_ai_server_time_to_first_token",
            "Seconds from a streamed chat request to its first token, by gen_ai_request_model",
            gen_ai_first_token.clone(),
        );
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
        registry.register(
            "gateway_tokens",
            "Tokens answers consumed, by key, model and kind (input, output, cache_read, \
             cache_write); estimated for streams that ended without usage",
            tokens.clone(),
        );
        registry.register(
            "gateway_cost_usd",
            "What answers cost at the models' prices, in USD, by key and model",
            cost_usd.clone(),
        );
        registry.register(
            "gateway_limited_requests",
            "Requests refused by a key's limits, by key and kind (requests, tokens, budget)",
            limited_requests.clone(),
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
            tokens,
            cost_usd,
            limited_requests,
            gen_ai_tokens,
            gen_ai_duration,
            gen_ai_first_token,
            traffic: Arc::new(Traffic::new()),
            spend_by_key: Family::default(),
        }
    }

    /// The console's traffic counts, recorded with the GenAI metrics.
    pub(crate) fn traffic(&self) -> &Arc<Traffic> {
        &self.traffic
    }

    /// The spend of `key` on every model since start, in USD, as `gateway_cost_usd` counts
    /// it.
    pub(crate) fn spend_usd(&self, key: &KeyLabel) -> f64 {
        self.spend_by_key
            .get(key)
            .map_or(0.0, |counter| counter.get())
    }

    /// Records one chat under the GenAI names.
    pub(crate) fn gen_ai_request(
        &self,
        model: &ModelLabel,
        elapsed: Duration,
        first_token: Option<Duration>,
        usage: Option<&Usage>,
        error_type: Option<&'static str>,
    ) {
        self.gen_ai_duration
            .get_or_create(&GenAiDurationLabels {
                gen_ai_request_model: Arc::clone(model),
                error_type: error_type.unwrap_or(""),
            })
            .observe(elapsed.as_secs_f64());
        if let Some(first_token) = first_token {
            self.gen_ai_first_token
                .get_or_create(&GenAiModelLabels {
                    gen_ai_request_model: Arc::clone(model),
                })
                .observe(first_token.as_secs_f64());
        }
        if let Some(usage) = usage {
            for (gen_ai_token_type, tokens) in [
                ("input", usage.input_tokens),
                ("output", usage.output_tokens),
            ] {
                self.gen_ai_tokens
                    .get_or_create(&GenAiTokenLabels {
                        gen_ai_token_type,
                        gen_ai_request_model: Arc::clone(model),
                    })
                    .observe(tokens as f64);
            }
        }
    }

    /// Counts what one answer of `key` from `model` consumed, and its cost when priced.
    pub(crate) fn usage(
        &self,
        key: &KeyLabel,
        model: &ModelLabel,
        usage: &Usage,
        cost: Option<&Cost>,
    ) {
        let kinds = [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_input_tokens.unwrap_or(0)),
            ("cache_write", usage.cache_write_input_tokens.unwrap_or(0)),
        ];
        for (kind, tokens) in kinds {
            // Kinds an answer did not use make no series until one does.
            if tokens > 0 {
                self.tokens
                    .get_or_create(&TokenLabels {
                        key: Arc::clone(key),
                        model: Arc::clone(model),
                        kind,
                    })
                    .inc_by(tokens);
            }
        }
        if let Some(cost) = cost {
            let usd = cost.total_usd();
            self.cost_usd
                .get_or_create(&SpendLabels {
                    key: Arc::clone(key),
                    model: Arc::clone(model),
                })
                .inc_by(usd);
            self.spend_by_key.get_or_create(key).inc_by(usd);
        }
    }

    /// Counts a request `key`'s `kind` limit refused.
    pub(crate) fn limited(&self, key: &KeyLabel, kind: LimitKind) {
        self.limited_requests
            .get_or_create(&LimitedLabels {
                key: Arc::clone(key),
                kind: kind.as_str(),
            })
            .inc();
    }

    /// Exports the chat requests holding a slot of `limit` on every scrape.
    pub(crate) fn track_in_flight(&mut self, limit: ConcurrencyLimit) {
        self.registry
            .register_collector(Box::new(InFlightCollector(limit)));
    }

    /// Exports the connections `limit` counts open and refused on every scrape.
    pub(crate) fn track_connections(&mut self, limit: ConnectionLimit) {
        self.registry
            .register_collector(Box::new(ConnectionCollector(limit)));
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

/// Reads the connection counts at scrape time from the limit's own atomics.
#[derive(Debug)]
struct ConnectionCollector(ConnectionLimit);

impl Collector for ConnectionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let open = ConstGauge::new(i64::try_from(self.0.open()).unwrap_or(i64::MAX));
        let metric = encoder.encode_descriptor(
            "gateway_open_connections",
            "Client connections open in the process; at most max_connections",
            None,
            open.metric_type(),
        )?;
        open.encode(metric)?;
        let refused = ConstCounter::new(self.0.refused());
        let metric = encoder.encode_descriptor(
            "gateway_connections_refused",
            "Client connections closed as soon as accepted because max_connections were open",
            None,
            refused.metric_type(),
        )?;
        refused.encode(metric)
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
