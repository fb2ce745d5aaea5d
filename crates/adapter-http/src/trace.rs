//! The OpenTelemetry GenAI span of a chat request (semantic conventions for generative AI,
//! <https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/>).
//!
//! The span is a `tracing` span with target [`GEN_AI_TARGET`]; the binary decides whether an
//! OpenTelemetry layer exports it. Without one the span costs what a disabled `tracing` span
//! costs. Its kind is SERVER: the gateway serves the client's call; the call to Bedrock is
//! the CLIENT span below it (adapter-bedrock).

use std::fmt;
use std::sync::Arc;

use gateway_core::{ChatRequest, EmbeddingRequest};
use http::HeaderMap;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Array, StringValue, Value};
use opentelemetry_http::HeaderExtractor;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of every span and span event meant for the trace exporter, so the binary can
/// export these without exporting every log line.
pub const GEN_AI_TARGET: &str = "gen_ai";

/// The provider name of the GenAI conventions for Bedrock.
const PROVIDER: &str = "aws.bedrock";

/// The span of one chat request, continuing the client's trace when it sent a W3C
/// `traceparent`. Named `chat` until the body is read, then `chat <model>`.
pub(crate) fn chat_span(headers: &HeaderMap) -> Span {
    let span = tracing::info_span!(
        target: GEN_AI_TARGET,
        "chat",
        otel.kind = "server",
        otel.status_code = Empty,
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = PROVIDER,
        gen_ai.system = PROVIDER,
        gen_ai.request.model = Empty,
        gen_ai.request.max_tokens = Empty,
        gen_ai.request.temperature = Empty,
        gen_ai.request.top_p = Empty,
        gen_ai.request.stream = Empty,
        gen_ai.response.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.input.messages = Empty,
        gen_ai.output.messages = Empty,
        error.type = Empty,
    );
    continue_trace(&span, headers);
    span
}

/// The span of one embeddings request, as [`chat_span`]'s: named `embeddings` until the body
/// is read, then `embeddings <model>`.
pub(crate) fn embeddings_span(headers: &HeaderMap) -> Span {
    let span = tracing::info_span!(
        target: GEN_AI_TARGET,
        "embeddings",
        otel.kind = "server",
        otel.status_code = Empty,
        gen_ai.operation.name = "embeddings",
        gen_ai.provider.name = PROVIDER,
        gen_ai.system = PROVIDER,
        gen_ai.request.model = Empty,
        gen_ai.embeddings.dimension.count = Empty,
        gen_ai.response.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        error.type = Empty,
    );
    continue_trace(&span, headers);
    span
}

/// Makes `span` continue the client's trace when it sent a W3C `traceparent`.
fn continue_trace(span: &Span, headers: &HeaderMap) {
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    if parent.span().span_context().is_valid() {
        // Only fails when no OpenTelemetry layer is installed: then there is nothing to continue.
        let _ = span.set_parent(parent);
    }
}

/// What the client asked to embed (never the texts: they are content).
pub(crate) fn record_embeddings_request(span: &Span, request: &EmbeddingRequest) {
    span.context()
        .span()
        .update_name(format!("embeddings {}", request.model));
    span.record("gen_ai.request.model", request.model.as_str());
    if let Some(dimensions) = request.dimensions {
        span.record("gen_ai.embeddings.dimension.count", i64::from(dimensions));
    }
}

/// What answered, and the tokens it counted.
pub(crate) fn record_embeddings_response(span: &Span, model_id: &str, input_tokens: u64) {
    span.record("gen_ai.response.model", model_id);
    span.record("gen_ai.usage.input_tokens", saturating_i64(input_tokens));
}

/// What the client asked for; `content`, the request body, only when the operator turned
/// content capture on.
pub(crate) fn record_request(span: &Span, request: &ChatRequest, content: Option<&[u8]>) {
    // Without a trace exporter the span is disabled: nothing to name or fill.
    if span.is_disabled() {
        return;
    }
    // The OpenTelemetry span exists already (its parent was set when the request came in),
    // so it is renamed through the API rather than with `otel.name`.
    span.context()
        .span()
        .update_name(format!("chat {}", request.model));
    span.record("gen_ai.request.model", request.model.as_str());
    span.record("gen_ai.request.stream", request.stream);
    let options = &request.inference;
    if let Some(max_tokens) = options.max_tokens {
        span.record("gen_ai.request.max_tokens", i64::from(max_tokens));
    }
    if let Some(temperature) = options.temperature {
        span.record("gen_ai.request.temperature", f64::from(temperature));
    }
    if let Some(top_p) = options.top_p {
        span.record("gen_ai.request.top_p", f64::from(top_p));
    }
    if let Some(body) = content {
        span.record(
            "gen_ai.input.messages",
            String::from_utf8_lossy(body).as_ref(),
        );
    }
}

/// What answered: the model, why it stopped, the tokens.
pub(crate) fn record_response(
    span: &Span,
    model_id: &str,
    finish_reason: &str,
    input_tokens: u64,
    output_tokens: u64,
) {
    span.record("gen_ai.response.model", model_id);
    // As i64: the bridge records u64 fields as text.
    span.record("gen_ai.usage.input_tokens", saturating_i64(input_tokens));
    span.record("gen_ai.usage.output_tokens", saturating_i64(output_tokens));
    span.set_attribute(
        "gen_ai.response.finish_reasons",
        Value::Array(Array::String(vec![StringValue::from(
            finish_reason.to_owned(),
        )])),
    );
}

/// The answer's text; call only when the operator turned content capture on.
pub(crate) fn record_output(span: &Span, text: Option<&str>) {
    if let Some(text) = text {
        span.record("gen_ai.output.messages", text);
    }
}

/// The request failed: `kind` is the error's low-cardinality name.
pub(crate) fn record_error(span: &Span, kind: &str) {
    span.record("error.type", kind);
    span.record("otel.status_code", "ERROR");
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// How many trace exports failed (each failure drops its batch of spans), read when
/// `/metrics` is scraped as `gateway_trace_export_failures_total`. A host with a trace
/// exporter hands its count in [`crate::HttpSettings::trace_export_failures`].
pub trait TraceExportFailures: fmt::Debug + Send + Sync + 'static {
    /// Failed exports so far.
    fn failed_exports(&self) -> u64;
}

/// Encodes a [`TraceExportFailures`] at each scrape.
#[derive(Debug)]
pub(crate) struct TraceExportCollector(pub(crate) Arc<dyn TraceExportFailures>);

impl Collector for TraceExportCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let counter = ConstCounter::new(self.0.failed_exports());
        let metric = encoder.encode_descriptor(
            "gateway_trace_export_failures",
            "Span batches the trace collector refused or never got (their spans are dropped)",
            None,
            MetricType::Counter,
        )?;
        counter.encode(metric)
    }
}
