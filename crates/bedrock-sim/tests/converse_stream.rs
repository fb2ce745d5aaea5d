//! ConverseStream (`POST /model/{modelId}/converse-stream`): event-stream frames decoded with
//! aws-smithy-eventstream, every stream failure (exceptions, corrupt CRC, oversized prelude,
//! cut frames, holds) and client-drop detection.

#![allow(
    clippy::unwrap_used,
    reason = "integration tests and their helper functions fail by panicking"
)]

mod common;

use bedrock_sim::{stream, BedrockSim, Gate, Reply, Script, SimHandle, StreamStep};
use common::*;
use serde_json::{json, Value};

async fn sim(script: Script) -> SimHandle {
    init();
    BedrockSim::builder()
        .access_key(AKID, SECRET)
        .script(CLAUDE, script)
        .start()
        .await
        .unwrap()
}

async fn open_stream(sim: &SimHandle, body: &Value) -> (Conn, FrameReader) {
    let req = bedrock_request(&sim.url(), CLAUDE, "converse-stream", body, &Creds::test());
    let (conn, resp) = send(sim.addr(), req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    assert!(
        !resp.headers().contains_key("content-length"),
        "the body must be streamed"
    );
    (conn, FrameReader::new(resp.into_body()))
}

fn names(frames: &[aws_smithy_types::event_stream::Message]) -> Vec<String> {
    frames.iter().map(|m| event(m).0).collect()
}

#[tokio::test]
async fn echo_streams_several_text_deltas_in_bedrock_order() {
    let sim = sim(Script::Echo).await;
    let (_conn, mut reader) = open_stream(&sim, &converse_body("hello stream world")).await;
    let frames = reader.all().await;
    assert_eq!(
        names(&frames),
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    for frame in &frames {
        assert_eq!(header(frame, ":message-type").as_deref(), Some("event"));
        assert_eq!(
            header(frame, ":content-type").as_deref(),
            Some("application/json")
        );
        // Real Bedrock pads every payload with a random-length "p" field.
        assert!(event(frame).1["p"].as_str().is_some_and(|p| !p.is_empty()));
    }
    assert_eq!(event(&frames[0]).1["role"], "assistant");
    let text: String = frames
        .iter()
        .filter_map(|f| event(f).1["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "You said: hello stream world");
    assert_eq!(event(&frames[7]).1["stopReason"], "end_turn");
    let metadata = event(&frames[8]).1;
    assert_eq!(
        metadata["usage"],
        json!({ "inputTokens": 3, "outputTokens": 5, "totalTokens": 8 })
    );
    assert!(metadata["metrics"]["latencyMs"].is_u64());
    assert_eq!(
        sim.requests()[0].operation,
        bedrock_sim::Operation::ConverseStream
    );
}

#[tokio::test]
async fn reply_is_streamed_with_tool_blocks_and_trace() {
    let reply = Reply::text("Sure.")
        .tool_use("t-9", "search", json!({ "q": "x" }))
        .trace(json!({ "guardrail": {} }))
        .additional_model_response_fields(json!({ "k": 1 }));
    let sim = sim(Script::Reply(reply)).await;
    let (_conn, mut reader) = open_stream(&sim, &converse_body("go")).await;
    let events: Vec<(String, Value)> = reader.all().await.iter().map(event).collect();
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockStop",
            "contentBlockStart",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    assert_eq!(events[3].1["contentBlockIndex"], 1);
    assert_eq!(
        events[3].1["start"],
        json!({ "toolUse": { "toolUseId": "t-9", "name": "search" } })
    );
    assert_eq!(events[4].1["delta"]["toolUse"]["input"], r#"{"q":"x"}"#);
    assert_eq!(events[6].1["stopReason"], "tool_use");
    assert_eq!(
        events[6].1["additionalModelResponseFields"],
        json!({ "k": 1 })
    );
    assert_eq!(events[7].1["trace"], json!({ "guardrail": {} }));
}

#[tokio::test]
async fn scripted_streams_are_sent_exactly() {
    let steps = stream::tool_use(None, "tool-1", "calc", &[r#"{"a":"#, "1}"]);
    let sim = sim(Script::Stream(steps)).await;
    let (_conn, mut reader) = open_stream(&sim, &converse_body("go")).await;
    let events: Vec<(String, Value)> = reader.all().await.iter().map(event).collect();
    let mut inputs = String::new();
    for (kind, payload) in &events {
        if kind == "contentBlockDelta" {
            inputs.push_str(payload["delta"]["toolUse"]["input"].as_str().unwrap());
        }
    }
    assert_eq!(inputs, r#"{"a":1}"#);
    assert_eq!(events[1].1["start"]["toolUse"]["toolUseId"], "tool-1");
    assert_eq!(events.last().unwrap().1["usage"]["outputTokens"], 2);
}

#[tokio::test]
async fn exception_frames_mid_stream() {
    let mut steps = stream::text(&["Hel", "lo"], "end_turn", (1, 2));
    steps.truncate(2);
    steps.push(StreamStep::exception(
        "modelStreamErrorException",
        "the model stopped",
    ));
    let sim = sim(Script::Stream(steps)).await;
    let (_conn, mut reader) = open_stream(&sim, &converse_body("go")).await;
    let frames = reader.all().await;
    assert_eq!(frames.len(), 3);
    let exception = &frames[2];
    assert_eq!(
        header(exception, ":message-type").as_deref(),
        Some("exception")
    );
    assert_eq!(
        header(exception, ":exception-type").as_deref(),
        Some("modelStreamErrorException")
    );
    assert_eq!(
        event(exception).1,
        json!({ "message": "the model stopped" })
    );
}

#[tokio::test]
async fn errors_before_the_stream_are_plain_http_errors() {
    let sim = sim(Script::error(
        503,
        "ServiceUnavailableException",
        "try later",
    ))
    .await;
    let req = bedrock_request(
        &sim.url(),
        CLAUDE,
        "converse-stream",
        &converse_body("go"),
        &Creds::test(),
    );
    let (status, headers, value) = call_json(sim.addr(), req).await;
    assert_eq!(status, 503);
    assert_eq!(error_type(&headers), "ServiceUnavailableException");
    assert_eq!(value["message"], "try later");
}

#[tokio::test]
async fn corrupt_crc_fails_the_decoder() {
    let mut steps = stream::text(&["a", "b"], "end_turn", (1, 2));
    steps.insert(2, StreamStep::CorruptNextCrc);
    let sim = sim(Script::Stream(steps)).await;
    let (_conn, mut reader) = open_stream(&sim, &converse_body("go")).await;
    reader.frame().await;
    reader.frame().await;
    match reader.next().await {
        Next::DecodeError(e) => assert!(e.contains("checksum"), "{e}"),
        other => panic!("expected a checksum error, got {other:?}"),
    }
}

#[tokio::test]
async fn oversized_prelude_then_close() {
    let steps = vec![
        stream::text(&["a"], "end_turn", (1, 1)).remove(0),
        StreamStep::OversizedPrelude,
    ];
    let sim = sim(Script::Stream(steps)).await;
    let (_conn, mut reader) = open_stream(&sim, &converse_body("go")).await;
    reader.frame().await;
    match reader.next().await {
        Next::BodyError(_) | Next::End(_) => {}
        other => panic!("expected the body to stop, got {other:?}"),
    }
    // The decoder consumed the 12-byte prelude announcing 20 MiB and waits for more.
    assert!(reader.buffered().is_empty());
    let raw = bedrock_sim::encode_frame(&[], b"").unwrap();
    assert_eq!(raw.len(), 16);
    assert_eq!(bedrock_sim::OVERSIZED_FRAME_LEN, 20 * 1024 * 1024);
}

#[tokio::test]
async fn oversized_prelude_bytes_on_the_wire() {
    let sim = sim(Script::Stream(vec![StreamStep::OversizedPrelude])).await;
    let req = bedrock_request(
        &sim.url(),
        CLAUDE,
        "converse-stream",
        &converse_body("go"),
        &Creds::test(),
    );
    let (_conn, resp) = send(sim.addr(), req).await;
    let mut body = resp.into_body();
    use http_body_util::BodyExt;
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first.len(), 12);
    assert_eq!(
        u32::from_be_bytes(first[0..4].try_into().unwrap()),
        20 * 1024 * 1024
    );
    assert!(
        body.frame().await.unwrap().is_err(),
        "the body must end with an error"
    );
}

#[tokio::test]
async fn cut_mid_frame_sends_half_a_frame_then_fails() {
    let mut steps = stream::text(&["abc", "def"], "end_turn", (1, 2));
    steps.insert(2, StreamStep::CutMidFrame);
    let sim = sim(Script::Stream(steps)).await;
    let (_conn, mut reader) = open_stream(&sim, &converse_body("go")).await;
    reader.frame().await;
    reader.frame().await;
    match reader.next().await {
        Next::BodyError(_) => {}
        other => panic!("expected a cut body, got {other:?}"),
    }
}

#[tokio::test]
async fn raw_bytes_are_sent_verbatim() {
    let frame = bedrock_sim::encode_frame(
        &[
            (":message-type", "event"),
            (":event-type", "messageStart"),
            (":content-type", "application/json"),
        ],
        br#"{"role":"assistant"}"#,
    )
    .unwrap();
    let sim = sim(Script::Stream(vec![StreamStep::RawBytes(frame)])).await;
    let (_conn, mut reader) = open_stream(&sim, &converse_body("go")).await;
    let frames = reader.all().await;
    // No padding is added to raw bytes.
    assert_eq!(&frames[0].payload()[..], br#"{"role":"assistant"}"#);
}

#[tokio::test]
async fn gates_release_frames_deterministically() {
    let gate = Gate::new();
    let mut steps = stream::text(&["before", "after"], "end_turn", (1, 2));
    steps.insert(2, StreamStep::WaitFor(gate.clone()));
    let sim = sim(Script::Stream(steps)).await;
    let (_conn, mut reader) = open_stream(&sim, &converse_body("go")).await;
    assert_eq!(event(&reader.frame().await).0, "messageStart");
    assert_eq!(event(&reader.frame().await).1["delta"]["text"], "before");
    assert!(!gate.is_open());
    gate.open();
    let rest = reader.all().await;
    assert_eq!(event(&rest[0]).1["delta"]["text"], "after");
    assert_eq!(rest.len(), 4);
}

#[tokio::test]
async fn dropped_stream_is_reported() {
    let mut steps = stream::text(&["one", "two"], "end_turn", (1, 2));
    steps.insert(2, StreamStep::Hold);
    let sim = sim(Script::Stream(steps)).await;
    let (conn, mut reader) = open_stream(&sim, &converse_body("go")).await;
    reader.frame().await;
    reader.frame().await;
    let left_at = std::time::Instant::now();
    conn.task.abort();
    drop(reader);
    let dropped_at = sim.wait_stream_dropped().await;
    assert!(dropped_at >= left_at);
}

#[tokio::test]
async fn stall_sends_headers_then_nothing_until_the_client_leaves() {
    let sim = sim(Script::Stall).await;
    let (conn, reader) = open_stream(&sim, &converse_body("go")).await;
    let left_at = std::time::Instant::now();
    conn.task.abort();
    drop(reader);
    assert!(sim.wait_stream_dropped().await >= left_at);
}

#[tokio::test]
async fn finished_streams_are_not_reported_as_dropped() {
    let sim = sim(Script::Echo).await;
    let (_conn, mut reader) = open_stream(&sim, &converse_body("go")).await;
    reader.all().await;
    // Then a dropped one: the first report must be for it.
    sim.set_script(CLAUDE, Script::Stall);
    let (conn, reader) = open_stream(&sim, &converse_body("go")).await;
    let left_at = std::time::Instant::now();
    conn.task.abort();
    drop(reader);
    assert!(sim.wait_stream_dropped().await >= left_at);
}

#[tokio::test]
async fn fixed_stream_is_precomputed() {
    init();
    let sim = BedrockSim::builder()
        .verify_signatures(false)
        .default_script(Script::Fixed)
        .start()
        .await
        .unwrap();
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("{}/model/m/converse-stream", sim.url()))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
    let (_conn, resp) = send(sim.addr(), req).await;
    assert_eq!(resp.status(), 200);
    let frames = FrameReader::new(resp.into_body()).all().await;
    let text: String = frames
        .iter()
        .filter_map(|f| event(f).1["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "This is a fixed answer.");
    assert_eq!(event(frames.last().unwrap()).0, "metadata");
}

#[tokio::test]
async fn delays_are_honoured() {
    let mut steps = stream::text(&["x"], "end_turn", (1, 1));
    steps.insert(1, StreamStep::Delay(std::time::Duration::from_millis(20)));
    let sim = sim(Script::Stream(steps)).await;
    let started = std::time::Instant::now();
    let (_conn, mut reader) = open_stream(&sim, &converse_body("go")).await;
    assert_eq!(reader.all().await.len(), 5);
    assert!(started.elapsed() >= std::time::Duration::from_millis(20));
}
