//! Trace export end to end: the gateway's GenAI spans reach an in-process OTLP/HTTP
//! collector on loopback, continuing the client's W3C trace; a dead collector costs requests
//! nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::time::{Duration, Instant};

use bedrock_sim::{stream, Script, StreamStep};
use common::*;
use gateway::telemetry::Tracing;
use gateway_core::clock::SharedClock;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN_ID: &str = "b7ad6b7169203331";
/// How long the collector may take to get a flushed span: a bound, not a pause.
const DEADLINE: Duration = Duration::from_secs(20);

/// Exports to `endpoint` the spans of this thread (the test's current-thread runtime, where
/// the gateway serves too) until the guard goes.
fn trace_to(endpoint: &str) -> (Tracing, tracing::subscriber::DefaultGuard) {
    let traces = Tracing::start(endpoint).unwrap();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(traces.tracer())
        .with_filter(Targets::new().with_target("gen_ai", tracing::Level::TRACE));
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    (traces, guard)
}

/// Flushes on a blocking thread, so this runtime keeps serving the collector meanwhile.
async fn flush(traces: &Tracing) {
    let traces = traces.clone();
    tokio::task::spawn_blocking(move || traces.force_flush())
        .await
        .unwrap();
}

/// The spans received until one named `name` has arrived.
async fn spans_until(
    receiver: &mut mpsc::UnboundedReceiver<ExportTraceServiceRequest>,
    name: &str,
) -> Vec<Span> {
    let mut spans = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !spans.iter().any(|span: &Span| span.name == name) {
        let export = tokio::time::timeout_at(deadline, receiver.recv())
            .await
            .unwrap_or_else(|_| panic!("no span `{name}` within {DEADLINE:?}; got {spans:#?}"))
            .unwrap();
        spans.extend(
            export
                .resource_spans
                .into_iter()
                .flat_map(|resource| resource.scope_spans)
                .flat_map(|scope| scope.spans),
        );
    }
    spans
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(|attribute| attribute.value.as_ref())
        .and_then(|value| value.value.as_ref())
}

fn string(span: &Span, key: &str) -> String {
    match attribute(span, key) {
        Some(AnyValue::StringValue(value)) => value.clone(),
        other => panic!("{key}: {other:?} in {:#?}", span.attributes),
    }
}

fn int(span: &Span, key: &str) -> i64 {
    match attribute(span, key) {
        Some(AnyValue::IntValue(value)) => *value,
        other => panic!("{key}: {other:?} in {:#?}", span.attributes),
    }
}

fn double(span: &Span, key: &str) -> f64 {
    match attribute(span, key) {
        Some(AnyValue::DoubleValue(value)) => *value,
        other => panic!("{key}: {other:?} in {:#?}", span.attributes),
    }
}

fn strings(span: &Span, key: &str) -> Vec<String> {
    match attribute(span, key) {
        Some(AnyValue::ArrayValue(array)) => array
            .values
            .iter()
            .map(|value| match &value.value {
                Some(AnyValue::StringValue(text)) => text.clone(),
                other => panic!("{key}: {other:?}"),
            })
            .collect(),
        other => panic!("{key}: {other:?} in {:#?}", span.attributes),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn retried_config() -> String {
    BASE_CONFIG.replace(
        "retry = { max_attempts = 1 }",
        "retry = { max_attempts = 2 }",
    )
}

#[tokio::test]
async fn a_chat_exports_a_genai_span_in_the_clients_trace_with_bedrock_below_it() {
    let (endpoint, mut received) = otlp_collector().await;
    let (traces, _guard) = trace_to(&endpoint);
    // Throttled once: the retry shows on the Bedrock call's span.
    let sim = sim().script(
        CLAUDE,
        Script::Sequence(vec![Script::throttling(), Script::Echo]),
    );
    let gw =
        TestGateway::start_with_clock(sim, &retried_config(), &[], SharedClock::system()).await;
    let mut request = gw.chat_request(
        Some(KEY),
        &json!({
            "model": "sim/claude-3",
            "messages": user("a secret prompt"),
            "max_tokens": 50,
            "temperature": 0.5,
            "top_p": 0.25,
        }),
    );
    request.headers_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{CLIENT_SPAN_ID}-01")
            .parse()
            .unwrap(),
    );
    let (status, body) = json_of(gw.send(request).await).await;
    assert_eq!(status, 200, "{body}");
    flush(&traces).await;

    let spans = spans_until(&mut received, "chat sim/claude-3").await;
    let server = spans
        .iter()
        .find(|span| span.name == "chat sim/claude-3")
        .unwrap();
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(
        hex(&server.trace_id),
        TRACE_ID,
        "continues the client's trace"
    );
    assert_eq!(hex(&server.parent_span_id), CLIENT_SPAN_ID);
    assert_eq!(string(server, "gen_ai.operation.name"), "chat");
    assert_eq!(string(server, "gen_ai.provider.name"), "aws.bedrock");
    assert_eq!(string(server, "gen_ai.system"), "aws.bedrock");
    assert_eq!(string(server, "gen_ai.request.model"), "sim/claude-3");
    assert_eq!(string(server, "gen_ai.response.model"), CLAUDE);
    assert_eq!(
        strings(server, "gen_ai.response.finish_reasons"),
        ["end_turn"]
    );
    assert_eq!(
        int(server, "gen_ai.usage.input_tokens"),
        body["usage"]["prompt_tokens"].as_i64().unwrap()
    );
    assert_eq!(
        int(server, "gen_ai.usage.output_tokens"),
        body["usage"]["completion_tokens"].as_i64().unwrap()
    );
    assert!(int(server, "gen_ai.usage.output_tokens") > 0);
    assert_eq!(int(server, "gen_ai.request.max_tokens"), 50);
    assert_eq!(double(server, "gen_ai.request.temperature"), 0.5);
    assert_eq!(double(server, "gen_ai.request.top_p"), 0.25);
    assert_eq!(
        attribute(server, "gen_ai.request.stream"),
        Some(&AnyValue::BoolValue(false))
    );
    assert_eq!(attribute(server, "error.type"), None);
    // Content capture is off by default: no prompt, no answer.
    assert_eq!(attribute(server, "gen_ai.input.messages"), None);
    assert_eq!(attribute(server, "gen_ai.output.messages"), None);

    let bedrock = spans
        .iter()
        .find(|span| span.name == format!("chat {CLAUDE}"))
        .unwrap_or_else(|| panic!("no Bedrock span in {spans:#?}"));
    assert_eq!(bedrock.kind, SpanKind::Client as i32);
    assert_eq!(bedrock.trace_id, server.trace_id);
    assert_eq!(bedrock.parent_span_id, server.span_id);
    assert_eq!(string(bedrock, "server.address"), "127.0.0.1");
    assert_eq!(
        int(bedrock, "server.port"),
        i64::from(
            gw.sim
                .url()
                .rsplit(':')
                .next()
                .unwrap()
                .trim_end_matches('/')
                .parse::<u16>()
                .unwrap()
        )
    );
    assert_eq!(string(bedrock, "gen_ai.provider.name"), "aws.bedrock");
    assert!(
        bedrock.events.iter().any(|event| event.name == "retry"),
        "the retry is an event: {:#?}",
        bedrock.events
    );
    traces.shutdown();
}

#[tokio::test]
async fn a_streams_span_ends_with_the_stream_and_carries_its_usage() {
    let (endpoint, mut received) = otlp_collector().await;
    let (traces, _guard) = trace_to(&endpoint);
    let gw = TestGateway::start(sim().script(CLAUDE, Script::Echo)).await;
    let response = gw
        .stream(&json!({
            "model": "sim/claude-3",
            "stream": true,
            "messages": user("hello there"),
        }))
        .await;
    assert_eq!(response.status(), 200);
    let events = SseReader::new(response).rest().await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    flush(&traces).await;
    let spans = spans_until(&mut received, "chat sim/claude-3").await;
    let server = spans
        .iter()
        .find(|span| span.name == "chat sim/claude-3")
        .unwrap();
    assert_eq!(
        attribute(server, "gen_ai.request.stream"),
        Some(&AnyValue::BoolValue(true))
    );
    assert_eq!(
        strings(server, "gen_ai.response.finish_reasons"),
        ["end_turn"]
    );
    assert!(int(server, "gen_ai.usage.output_tokens") > 0);
    assert_eq!(string(server, "gen_ai.response.model"), CLAUDE);
    traces.shutdown();
}

#[tokio::test]
async fn the_bedrock_span_of_a_stream_lasts_to_its_end_and_names_a_mid_stream_failure() {
    let (endpoint, mut received) = otlp_collector().await;
    let (traces, _guard) = trace_to(&endpoint);
    let mut steps = stream::text(&["first", " second"], "end_turn", (1, 2));
    // After the first delta, well past the first event the provider reads before answering.
    steps.truncate(3);
    steps.push(StreamStep::Exception {
        exception_type: "modelStreamErrorException".into(),
        message: "the model broke off".into(),
    });
    let gw = TestGateway::start(sim().script(CLAUDE, Script::Stream(steps))).await;
    let response = gw
        .stream(&json!({"model": "sim/claude-3", "stream": true, "messages": user("hi")}))
        .await;
    assert_eq!(response.status(), 200);
    let events = SseReader::new(response).rest().await;
    assert!(
        events.iter().any(|event| event.contains("first")),
        "{events:?}"
    );
    flush(&traces).await;
    let spans = spans_until(&mut received, &format!("chat {CLAUDE}")).await;
    let bedrock = spans
        .iter()
        .find(|span| span.name == format!("chat {CLAUDE}"))
        .unwrap();
    assert_eq!(string(bedrock, "error.type"), "model_error");
    traces.shutdown();
}

#[tokio::test]
async fn a_dead_collector_neither_slows_nor_fails_requests() {
    // A port nobody listens on: every export is refused.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", closed.local_addr().unwrap());
    drop(closed);
    // A collector that takes connections and never answers: an export hangs until its
    // timeout, on the exporter's thread.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_endpoint = format!("http://{}/v1/traces", silent.local_addr().unwrap());

    for endpoint in [endpoint, silent_endpoint] {
        let (traces, guard) = trace_to(&endpoint);
        let gw = TestGateway::start(sim().script(CLAUDE, Script::Echo)).await;
        // An export under way while requests are served.
        let (stuck, _) = gw
            .chat(&json!({"model": "sim/claude-3", "messages": user("hi")}))
            .await;
        assert_eq!(stuck, 200);
        let flushing = traces.clone();
        std::thread::spawn(move || flushing.force_flush());
        let started = Instant::now();
        for _ in 0..20 {
            let (status, body) = gw
                .chat(&json!({"model": "sim/claude-3", "messages": user("hi")}))
                .await;
            assert_eq!(status, 200, "{body}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "20 requests took {:?} beside a dead collector",
            started.elapsed()
        );
        drop(guard);
    }
    drop(silent);
}

#[tokio::test]
async fn a_refused_export_is_counted() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", closed.local_addr().unwrap());
    drop(closed);
    let (traces, _guard) = trace_to(&endpoint);
    let config = format!(
        "{BASE_CONFIG}\n[console]\nadmin_keys = [{{ name = \"ops\", key = \"console-admin-key\" }}]\n"
    );
    let gw = TestGateway::start_with_config(sim().script(CLAUDE, Script::Echo), &config, &[]).await;
    let (status, _) = gw
        .chat(&json!({"model": "sim/claude-3", "messages": user("hi")}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(traces.failed_exports(), 0);
    flush(&traces).await;
    assert_eq!(traces.failed_exports(), 1);
    // The process's count (every exporter of this test binary adds to it) is on /metrics.
    let (status, metrics) = gw.get("/metrics", None).await;
    assert_eq!(status, 200);
    let shown: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("gateway_trace_export_failures_total "))
        .expect("the failure count is on /metrics")
        .parse()
        .unwrap();
    assert!(shown >= 1, "{shown}");
    // And on the console's status page.
    let (status, body) = gw
        .get("/console/api/status", Some("console-admin-key"))
        .await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["telemetry"]["otlp"], "on", "{body}");
    assert!(
        body["telemetry"]["export_failures"].as_u64().unwrap() >= 1,
        "{body}"
    );
}

#[tokio::test]
async fn content_is_on_the_span_only_when_the_operator_turns_it_on() {
    let (endpoint, mut received) = otlp_collector().await;
    let (traces, _guard) = trace_to(&endpoint);
    let config = format!("{BASE_CONFIG}\n[telemetry]\ncapture_content = true\n");
    let gw = TestGateway::start_with_config(sim().script(CLAUDE, Script::Echo), &config, &[]).await;
    let (status, body) = gw
        .chat(&json!({"model": "sim/claude-3", "messages": user("a secret prompt")}))
        .await;
    assert_eq!(status, 200, "{body}");
    flush(&traces).await;
    let spans = spans_until(&mut received, "chat sim/claude-3").await;
    let server = spans
        .iter()
        .find(|span| span.name == "chat sim/claude-3")
        .unwrap();
    assert!(string(server, "gen_ai.input.messages").contains("a secret prompt"));
    assert_eq!(
        string(server, "gen_ai.output.messages"),
        body["choices"][0]["message"]["content"].as_str().unwrap()
    );
    traces.shutdown();
}

#[tokio::test]
async fn a_failed_chat_names_its_error_on_both_spans() {
    let (endpoint, mut received) = otlp_collector().await;
    let (traces, _guard) = trace_to(&endpoint);
    let gw = TestGateway::start(sim().script(CLAUDE, Script::throttling())).await;
    let (status, body) = gw
        .chat(&json!({"model": "sim/claude-3", "messages": user("hi")}))
        .await;
    assert_eq!(status, 429, "{body}");
    flush(&traces).await;
    let spans = spans_until(&mut received, "chat sim/claude-3").await;
    let server = spans
        .iter()
        .find(|span| span.name == "chat sim/claude-3")
        .unwrap();
    assert_eq!(string(server, "error.type"), "429");
    let bedrock = spans
        .iter()
        .find(|span| span.name == format!("chat {CLAUDE}"))
        .unwrap();
    assert_eq!(string(bedrock, "error.type"), "throttled");
    traces.shutdown();
}
