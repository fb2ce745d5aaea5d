//! Streaming end to end: ConverseStream frames from the simulator relayed as OpenAI SSE,
//! frame by frame, with errors, cancellation and no buffering.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::time::{Duration, Instant};

use bedrock_sim::{stream, Gate, Script, StreamStep};
use common::*;
use serde_json::{json, Value};

fn stream_request(model: &str, include_usage: bool) -> Value {
    json!({
        "model": model,
        "stream": true,
        "stream_options": {"include_usage": include_usage},
        "messages": user("hi"),
    })
}

fn parse(event: &str) -> Value {
    serde_json::from_str(event).unwrap_or_else(|e| panic!("{e}: {event}"))
}

#[tokio::test]
async fn text_is_relayed_as_chunks_ending_with_done() {
    let sim = sim().script(
        CLAUDE,
        Script::Stream(stream::text(&["Hel", "lo", " world"], "end_turn", (7, 3))),
    );
    let gw = TestGateway::start(sim).await;
    let response = gw.stream(&stream_request("sim/claude-3", true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let events = SseReader::new(response).rest().await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| parse(e))
        .collect();
    let id = &chunks[0]["id"];
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(&chunk["id"], id);
        assert_eq!(chunk["created"], chunks[0]["created"]);
        assert_eq!(chunk["model"], "sim/claude-3");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello world");
    let finish = chunks
        .iter()
        .find(|c| c["choices"][0]["finish_reason"].is_string())
        .unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 7);
    assert_eq!(usage["usage"]["completion_tokens"], 3);

    assert_eq!(
        gw.sim.requests()[0].operation,
        bedrock_sim::Operation::ConverseStream
    );
}

#[tokio::test]
async fn the_first_chunk_arrives_before_bedrock_sends_its_last_frame() {
    let gate = Gate::new();
    let mut steps = stream::text(&["first", " second"], "end_turn", (1, 2));
    // Hold everything after the first text delta until the client has seen it.
    steps.insert(2, StreamStep::WaitFor(gate.clone()));
    let gw = TestGateway::start(sim().script(CLAUDE, Script::Stream(steps))).await;
    let mut reader = SseReader::new(gw.stream(&stream_request("sim/claude-3", false)).await);
    let role = parse(&reader.next().await.unwrap());
    assert_eq!(role["choices"][0]["delta"]["role"], "assistant");
    let first = parse(&reader.next().await.unwrap());
    assert_eq!(first["choices"][0]["delta"]["content"], "first");
    assert!(
        !gate.is_open(),
        "the client saw the first chunk while Bedrock still held the rest"
    );
    gate.open();
    let rest = reader.rest().await;
    assert_eq!(rest.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn a_client_hanging_up_drops_the_upstream_request_within_100ms() {
    let steps = vec![
        StreamStep::event("messageStart", json!({"role": "assistant"})),
        StreamStep::event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "thinking..."}}),
        ),
        StreamStep::Hold,
    ];
    let gw = TestGateway::start(sim().script(CLAUDE, Script::Stream(steps))).await;
    let mut reader = SseReader::new(gw.stream(&stream_request("sim/claude-3", false)).await);
    reader.next().await.unwrap();
    reader.next().await.unwrap();
    let hung_up = Instant::now();
    drop(reader);
    let dropped = tokio::time::timeout(Duration::from_secs(5), gw.sim.wait_stream_dropped())
        .await
        .expect("the gateway drops the upstream stream");
    let after = dropped.saturating_duration_since(hung_up);
    assert!(
        after < Duration::from_millis(100),
        "upstream dropped after {after:?}"
    );
}

#[tokio::test]
async fn tool_calls_stream_as_openai_tool_call_deltas() {
    let steps = stream::tool_use(
        Some("Let me check."),
        "tooluse_abc",
        "get_weather",
        &["{\"city\":", "\"Paris\"}"],
    );
    let gw = TestGateway::start(sim().script(CLAUDE, Script::Stream(steps))).await;
    let events = SseReader::new(gw.stream(&stream_request("sim/claude-3", false)).await)
        .rest()
        .await;
    let chunks: Vec<Value> = events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| parse(e))
        .collect();
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls[0]["index"], 0);
    assert_eq!(calls[0]["id"], "tooluse_abc");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let arguments: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, "{\"city\":\"Paris\"}");
    assert!(
        calls.iter().all(|c| c["index"] == 0),
        "index counts tool calls, not blocks"
    );
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str())
        .unwrap();
    assert_eq!(finish, "tool_calls");
}

/// A mid-stream failure is one error event, never a clean finish and `[DONE]`.
#[tokio::test]
async fn mid_stream_failures_end_with_an_error_event() {
    let cases: Vec<(&str, Vec<StreamStep>)> = vec![
        ("throttlingException", {
            let mut steps = stream::text(&["partial"], "end_turn", (1, 1));
            steps.truncate(2);
            steps.push(StreamStep::exception("throttlingException", "slow down"));
            steps
        }),
        ("modelStreamErrorException", {
            let mut steps = stream::text(&["partial"], "end_turn", (1, 1));
            steps.truncate(2);
            steps.push(StreamStep::exception(
                "modelStreamErrorException",
                "model broke",
            ));
            steps
        }),
        ("cut mid-frame", {
            let mut steps = stream::text(&["partial", "more"], "end_turn", (1, 1));
            steps.insert(2, StreamStep::CutMidFrame);
            steps
        }),
        ("corrupt crc", {
            let mut steps = stream::text(&["partial", "more"], "end_turn", (1, 1));
            steps.insert(2, StreamStep::CorruptNextCrc);
            steps
        }),
        ("oversized prelude", {
            let mut steps = stream::text(&["partial"], "end_turn", (1, 1));
            steps.insert(2, StreamStep::OversizedPrelude);
            steps
        }),
        ("ends before messageStop", {
            let mut steps = stream::text(&["partial"], "end_turn", (1, 1));
            steps.truncate(2);
            steps
        }),
    ];
    let gw = TestGateway::start(sim()).await;
    for (label, steps) in cases {
        gw.sim.set_script(CLAUDE, Script::Stream(steps));
        let response = gw.stream(&stream_request("sim/claude-3", true)).await;
        assert_eq!(response.status(), 200, "{label}");
        let events = SseReader::new(response).rest().await;
        let last = events
            .last()
            .unwrap_or_else(|| panic!("{label}: no events"));
        assert_ne!(last, "[DONE]", "{label}: {events:?}");
        let error = parse(last);
        assert_openai_error(&error, error["error"]["code"].as_str().unwrap());
        assert!(
            !events
                .iter()
                .any(|e| e.contains("\"finish_reason\":\"stop\"")),
            "{label}: never a clean stop: {events:?}"
        );
    }
}

#[tokio::test]
async fn errors_before_the_first_event_keep_their_http_status() {
    let gw = TestGateway::start(sim().script(CLAUDE, Script::throttling())).await;
    let response = gw.stream(&stream_request("sim/claude-3", false)).await;
    let (status, body) = json_of(response).await;
    assert_eq!(status, 429);
    assert_openai_error(&body, "rate_limit_exceeded");
}

#[tokio::test]
async fn a_silent_upstream_times_out_with_an_error_event() {
    let steps = vec![
        StreamStep::event("messageStart", json!({"role": "assistant"})),
        StreamStep::Hold,
    ];
    let config = format!("[server]\nstream_idle_timeout_ms = 300\n{BASE_CONFIG}");
    let gw =
        TestGateway::start_with_config(sim().script(CLAUDE, Script::Stream(steps)), &config, &[])
            .await;
    let events = SseReader::new(gw.stream(&stream_request("sim/claude-3", false)).await)
        .rest()
        .await;
    let error = parse(events.last().unwrap());
    assert_openai_error(&error, "upstream_timeout");
}
