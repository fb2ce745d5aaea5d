//! Failures on demand ([`Failure`], [`Fault`], [`Schedule`]) for Converse and ConverseStream,
//! the call counters, and two simulators (two accounts) side by side.

#![allow(
    clippy::unwrap_used,
    reason = "integration tests and their helper functions fail by panicking"
)]

mod common;

use std::time::Duration;

use bedrock_sim::{BedrockSim, Failure, Fault, Gate, Reply, Script, SimHandle};
use bytes::Bytes;
use common::*;
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OTHER: &str = "amazon.nova-pro-v1:0";
const TOO_MANY_TOKENS: &str = "Too many tokens, please wait before trying again.";
/// Both operations, as path suffixes.
const OPERATIONS: [&str; 2] = ["converse", "converse-stream"];
/// A bounded wait used only to show that something did NOT happen (never to synchronise).
const ABSENCE: Duration = Duration::from_millis(150);

async fn sim_failing(failure: Failure) -> SimHandle {
    init();
    BedrockSim::builder()
        .access_key(AKID, SECRET)
        .script(CLAUDE, Script::Reply(Reply::text("normal answer")))
        .failure(CLAUDE, failure)
        .start()
        .await
        .unwrap()
}

/// `op` on `model_id`: the status, the error type (empty on success) and the JSON body of a
/// Converse answer or HTTP error; for a successful stream, the event types as a JSON array.
async fn outcome(sim: &SimHandle, model_id: &str, op: &str) -> (u16, String, Value) {
    let req = hi_request(&sim.url(), model_id, op);
    let (_conn, resp) = send(sim.addr(), req).await;
    let status = resp.status();
    let kind = resp
        .headers()
        .get("x-amzn-errortype")
        .map(|_| error_type(resp.headers()))
        .unwrap_or_default();
    if op == "converse-stream" && status == StatusCode::OK {
        let frames = FrameReader::new(resp.into_body()).all().await;
        let kinds: Vec<Value> = frames.iter().map(|m| event(m).0.into()).collect();
        return (status.as_u16(), kind, kinds.into());
    }
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status.as_u16(),
        kind,
        serde_json::from_slice(&body).unwrap(),
    )
}

/// Just the status of `op` on `model_id`.
async fn status(sim: &SimHandle, model_id: &str, op: &str) -> u16 {
    outcome(sim, model_id, op).await.0
}

/// Sends `op` on [`CLAUDE`] on a fresh HTTP/1.1 connection: the response head, or the
/// client's error when the connection ended without one.
async fn try_send(sim: &SimHandle, op: &str) -> (Conn, Result<Response, hyper::Error>) {
    let mut conn = connect(sim.addr()).await;
    conn.sender.ready().await.unwrap();
    let answer = conn
        .sender
        .send_request(hi_request(&sim.url(), CLAUDE, op))
        .await;
    (conn, answer)
}

type Response = hyper::Response<hyper::body::Incoming>;

/// An unsigned request as raw HTTP/1.1 bytes (for a simulator that does not verify).
fn raw_request(op: &str) -> Vec<u8> {
    let body = converse_body("hi").to_string();
    format!(
        "POST /model/{CLAUDE_PATH}/{op} HTTP/1.1\r\nhost: sim\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn unverified_sim_failing(failure: Failure) -> SimHandle {
    init();
    BedrockSim::builder()
        .verify_signatures(false)
        .failure(CLAUDE, failure)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn error_faults_answer_both_operations_before_any_body() {
    let cases = [
        (
            Fault::throttling(),
            429,
            "ThrottlingException",
            TOO_MANY_TOKENS,
        ),
        (
            Fault::service_unavailable(),
            503,
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
        ),
        (
            Fault::internal_server_error(),
            500,
            "InternalServerException",
            "The server encountered an internal error while processing the request.",
        ),
        (
            Fault::validation("bad input"),
            400,
            "ValidationException",
            "bad input",
        ),
        (
            Fault::access_denied(),
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        ),
        (
            Fault::not_found(),
            404,
            "ResourceNotFoundException",
            "Model not found.",
        ),
        (
            Fault::model_timeout(),
            408,
            "ModelTimeoutException",
            "Model has timed out in processing the request. Try your request again.",
        ),
        (
            Fault::model_error(),
            424,
            "ModelErrorException",
            "The system encountered an unexpected error during processing. Try your request again.",
        ),
        (
            Fault::error(429, "ModelNotReadyException", "warming up"),
            429,
            "ModelNotReadyException",
            "warming up",
        ),
    ];
    let sim = sim_failing(Failure::always(Fault::throttling())).await;
    for (fault, expected_status, expected_kind, expected_message) in cases {
        sim.set_failure(CLAUDE, Failure::always(fault));
        for op in OPERATIONS {
            let (status, kind, body) = outcome(&sim, CLAUDE, op).await;
            assert_eq!(status, expected_status, "{op} {expected_kind}");
            assert_eq!(kind, expected_kind, "{op}");
            assert_eq!(body["message"], expected_message, "{op}");
        }
    }
    // Other model ids keep their script.
    assert_eq!(status(&sim, OTHER, "converse").await, 200);
}

#[tokio::test]
async fn the_first_calls_fail_then_the_script_answers() {
    let sim = sim_failing(Failure::first_calls(2, Fault::throttling())).await;
    let mut statuses = Vec::new();
    for op in ["converse", "converse-stream", "converse", "converse-stream"] {
        statuses.push(status(&sim, CLAUDE, op).await);
    }
    assert_eq!(statuses, [429, 429, 200, 200]);
    assert_eq!(sim.calls(CLAUDE), 4);
    let (_, _, answer) = outcome(&sim, CLAUDE, "converse").await;
    assert_eq!(
        answer["output"]["message"]["content"][0]["text"],
        "normal answer"
    );

    // Setting it again starts the count again.
    sim.set_failure(
        CLAUDE,
        Failure::first_calls(1, Fault::service_unavailable()),
    );
    assert_eq!(status(&sim, CLAUDE, "converse").await, 503);
    assert_eq!(status(&sim, CLAUDE, "converse").await, 200);
    assert_eq!(sim.calls(CLAUDE), 7);
}

#[tokio::test]
async fn a_sequence_script_behind_a_failure_counts_only_the_calls_it_answers() {
    init();
    let sim = BedrockSim::builder()
        .access_key(AKID, SECRET)
        .script(
            CLAUDE,
            Script::Sequence(vec![
                Script::error(503, "ServiceUnavailableException", "busy"),
                Script::Echo,
            ]),
        )
        .failure(CLAUDE, Failure::first_calls(1, Fault::throttling()))
        .start()
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(status(&sim, CLAUDE, "converse").await);
    }
    assert_eq!(statuses, [429, 503, 200]);
}

#[tokio::test]
async fn a_window_fails_while_the_simulator_clock_is_inside_it() {
    let window = Duration::from_secs(30)..Duration::from_secs(90);
    let sim = sim_failing(Failure::during(window, Fault::throttling())).await;
    for op in OPERATIONS {
        assert_eq!(status(&sim, CLAUDE, op).await, 200, "before the window");
    }
    sim.advance_clock(Duration::from_secs(30));
    for op in OPERATIONS {
        assert_eq!(status(&sim, CLAUDE, op).await, 429, "inside the window");
    }
    sim.advance_clock(Duration::from_secs(60));
    for op in OPERATIONS {
        assert_eq!(status(&sim, CLAUDE, op).await, 200, "after the window");
    }

    // A window set at run time is measured from then.
    sim.set_failure(
        CLAUDE,
        Failure::during(
            Duration::ZERO..Duration::from_secs(10),
            Fault::internal_server_error(),
        ),
    );
    assert_eq!(status(&sim, CLAUDE, "converse").await, 500);
    sim.advance_clock(Duration::from_secs(10));
    assert_eq!(status(&sim, CLAUDE, "converse").await, 200);
}

#[tokio::test]
async fn always_fails_until_cleared() {
    let sim = sim_failing(Failure::always(Fault::service_unavailable())).await;
    for _ in 0..3 {
        assert_eq!(status(&sim, CLAUDE, "converse").await, 503);
    }
    sim.clear_failure(CLAUDE);
    assert_eq!(status(&sim, CLAUDE, "converse").await, 200);
}

#[tokio::test]
async fn close_ends_the_connection_without_an_answer() {
    let sim = sim_failing(Failure::always(Fault::Close)).await;
    for op in OPERATIONS {
        let err = try_send(&sim, op).await.1.unwrap_err();
        assert!(err.is_incomplete_message(), "{op}: {err}");
    }
    assert_eq!(sim.calls(CLAUDE), 2);

    // On the wire: the request is read, then an orderly close with not a byte answered.
    let sim = unverified_sim_failing(Failure::always(Fault::Close)).await;
    for op in OPERATIONS {
        let mut stream = TcpStream::connect(sim.addr()).await.unwrap();
        stream.write_all(&raw_request(op)).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        assert!(
            answer.is_empty(),
            "{op}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert_eq!(sim.calls(CLAUDE), 2);
}

#[tokio::test]
async fn reset_resets_the_connection_without_an_answer() {
    let sim = sim_failing(Failure::always(Fault::Reset)).await;
    for op in OPERATIONS {
        assert!(try_send(&sim, op).await.1.is_err(), "{op}");
    }

    let sim = unverified_sim_failing(Failure::always(Fault::Reset)).await;
    for op in OPERATIONS {
        let mut stream = TcpStream::connect(sim.addr()).await.unwrap();
        stream.write_all(&raw_request(op)).await.unwrap();
        let mut answer = Vec::new();
        let err = stream.read_to_end(&mut answer).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{op}");
        assert!(answer.is_empty(), "{op}");
    }
}

#[tokio::test]
async fn close_on_http2_ends_the_whole_connection() {
    let sim = sim_failing(Failure::first_calls(1, Fault::Close)).await;
    let stream = TcpStream::connect(sim.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let conn_task = tokio::spawn(conn);
    let err = sender
        .send_request(hi_request(&sim.url(), CLAUDE, "converse"))
        .await
        .unwrap_err();
    // The connection is gone, not just the stream: the task driving it ends (bounded, so a
    // connection left open fails the test instead of hanging it).
    let ended = tokio::time::timeout(Duration::from_secs(10), conn_task).await;
    assert!(ended.is_ok(), "the HTTP/2 connection stayed open: {err}");
    assert!(
        sender
            .send_request(hi_request(&sim.url(), CLAUDE, "converse"))
            .await
            .is_err(),
        "{err}"
    );
    assert_eq!(sim.calls(CLAUDE), 1);
}

#[tokio::test]
async fn a_stall_sends_nothing_until_released_then_the_script_answers() {
    for op in OPERATIONS {
        let gate = Gate::new();
        let sim = sim_failing(Failure::always(Fault::stall_until(&gate))).await;
        let mut pending = Box::pin(try_send(&sim, op));
        tokio::select! {
            _ = &mut pending => panic!("{op}: answered before the stalled call arrived"),
            () = sim.wait_calls(CLAUDE, 1) => {}
        }
        assert!(
            tokio::time::timeout(ABSENCE, &mut pending).await.is_err(),
            "{op}: no byte before the release"
        );
        gate.open();
        let (_conn, resp) = pending.await;
        let resp = resp.unwrap();
        assert_eq!(resp.status(), 200, "{op}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        if op == "converse" {
            let answer: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                answer["output"]["message"]["content"][0]["text"],
                "normal answer"
            );
        } else {
            assert!(!body.is_empty());
        }
    }
}

#[tokio::test]
async fn released_stalls_let_later_calls_through_at_once() {
    let gate = Gate::new();
    gate.open();
    let sim = sim_failing(Failure::always(Fault::stall_until(&gate))).await;
    assert_eq!(status(&sim, CLAUDE, "converse").await, 200);
}

#[tokio::test]
async fn a_stall_without_release_lasts_until_shutdown() {
    for op in OPERATIONS {
        let sim = sim_failing(Failure::always(Fault::stall())).await;
        let mut pending = Box::pin(try_send(&sim, op));
        tokio::select! {
            _ = &mut pending => panic!("{op}: answered before the stalled call arrived"),
            () = sim.wait_calls(CLAUDE, 1) => {}
        }
        assert!(tokio::time::timeout(ABSENCE, &mut pending).await.is_err());
        sim.shutdown();
        let (_conn, resp) = pending.await;
        let resp = resp.unwrap();
        assert_eq!(resp.status(), 503, "{op}");
        assert_eq!(error_type(resp.headers()), "ServiceUnavailableException");
    }
}

#[tokio::test]
async fn a_stream_is_cut_after_k_events() {
    let sim = sim_failing(Failure::always(Fault::cut_after_events(2))).await;
    let (_conn, resp) = try_send(&sim, "converse-stream").await;
    let resp = resp.unwrap();
    assert_eq!(resp.status(), 200);
    let mut reader = FrameReader::new(resp.into_body());
    assert_eq!(event(&reader.frame().await).0, "messageStart");
    assert_eq!(event(&reader.frame().await).0, "contentBlockDelta");
    assert!(matches!(reader.next().await, Next::BodyError(0)));

    // K = 0: the 200 head, then the cut.
    sim.set_failure(CLAUDE, Failure::always(Fault::cut_after_events(0)));
    let (_conn, resp) = try_send(&sim, "converse-stream").await;
    let resp = resp.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(matches!(
        FrameReader::new(resp.into_body()).next().await,
        Next::BodyError(0)
    ));

    // More than the answer has: every event, then a cut instead of the end.
    sim.set_failure(CLAUDE, Failure::always(Fault::cut_after_events(100)));
    let (_conn, resp) = try_send(&sim, "converse-stream").await;
    let resp = resp.unwrap();
    let mut reader = FrameReader::new(resp.into_body());
    let mut kinds = Vec::new();
    let end = loop {
        match reader.next().await {
            Next::Frame(m) => kinds.push(event(&m).0),
            other => break other,
        }
    };
    assert_eq!(kinds.first().map(String::as_str), Some("messageStart"));
    assert_eq!(kinds.last().map(String::as_str), Some("metadata"));
    assert!(matches!(end, Next::BodyError(0)), "{end:?}");
}

#[tokio::test]
async fn a_cut_converse_answer_sends_half_its_json() {
    let sim = sim_failing(Failure::always(Fault::cut_after_events(3))).await;
    let (_conn, resp) = try_send(&sim, "converse").await;
    let resp = resp.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let mut body = resp.into_body();
    let mut received = Vec::new();
    let ended = loop {
        match body.frame().await {
            Some(Ok(frame)) => received.extend_from_slice(&frame.into_data().unwrap()),
            Some(Err(e)) => break Err(e),
            None => break Ok(()),
        }
    };
    assert!(ended.is_err(), "the body must be cut");
    let text = String::from_utf8(received).unwrap();
    assert!(text.starts_with(r#"{""#), "{text}");
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
}

#[tokio::test]
async fn error_answers_are_not_cut() {
    let sim = sim_failing(Failure::always(Fault::cut_after_events(1))).await;
    sim.set_script(CLAUDE, Script::throttling());
    for op in OPERATIONS {
        let (status, kind, body) = outcome(&sim, CLAUDE, op).await;
        assert_eq!(
            (status, kind.as_str()),
            (429, "ThrottlingException"),
            "{op}"
        );
        assert!(body["message"].is_string());
    }
}

#[tokio::test]
async fn a_cut_stream_is_not_reported_as_dropped_by_the_client() {
    let sim = sim_failing(Failure::first_calls(1, Fault::cut_after_events(1))).await;
    let (_conn, resp) = try_send(&sim, "converse-stream").await;
    let resp = resp.unwrap();
    let mut reader = FrameReader::new(resp.into_body());
    reader.frame().await;
    assert!(matches!(reader.next().await, Next::BodyError(0)));
    // Then a stream the client does abandon: the first report must be for it.
    sim.set_script(CLAUDE, Script::Stall);
    let req = hi_request(&sim.url(), CLAUDE, "converse-stream");
    let (conn, resp) = send(sim.addr(), req).await;
    assert_eq!(resp.status(), 200);
    let left_at = std::time::Instant::now();
    conn.task.abort();
    drop(resp);
    assert!(sim.wait_stream_dropped().await >= left_at);
}

#[tokio::test]
async fn a_throttling_exception_can_be_the_first_stream_event() {
    let sim = sim_failing(Failure::first_calls(1, Fault::throttling_event())).await;
    let (_conn, resp) = try_send(&sim, "converse-stream").await;
    let resp = resp.unwrap();
    assert_eq!(resp.status(), 200);
    let mut reader = FrameReader::new(resp.into_body());
    let first = reader.frame().await;
    assert_eq!(
        header(&first, ":message-type").as_deref(),
        Some("exception")
    );
    let (kind, payload) = event(&first);
    assert_eq!(kind, "throttlingException");
    assert_eq!(payload["message"], TOO_MANY_TOKENS);
    assert!(matches!(reader.next().await, Next::End(0)));
    // The next call gets the script.
    let (status, _, kinds) = outcome(&sim, CLAUDE, "converse-stream").await;
    assert_eq!(status, 200);
    assert_eq!(kinds[0], "messageStart");

    // Converse answers the HTTP error of the exception.
    sim.set_failure(CLAUDE, Failure::always(Fault::throttling_event()));
    let (status, kind, body) = outcome(&sim, CLAUDE, "converse").await;
    assert_eq!((status, kind.as_str()), (429, "ThrottlingException"));
    assert_eq!(body["message"], TOO_MANY_TOKENS);
    sim.set_failure(
        CLAUDE,
        Failure::always(Fault::exception_event(
            "serviceUnavailableException",
            "down",
        )),
    );
    let (status, kind, _) = outcome(&sim, CLAUDE, "converse").await;
    assert_eq!(
        (status, kind.as_str()),
        (503, "ServiceUnavailableException")
    );
}

#[tokio::test]
async fn the_default_failure_covers_model_ids_without_their_own() {
    init();
    let sim = BedrockSim::builder()
        .access_key(AKID, SECRET)
        .failure(CLAUDE, Failure::always(Fault::access_denied()))
        .default_failure(Failure::always(Fault::service_unavailable()))
        .start()
        .await
        .unwrap();
    assert_eq!(status(&sim, CLAUDE, "converse").await, 403);
    assert_eq!(status(&sim, OTHER, "converse").await, 503);
    // A cross-region profile id uses its base model's failure.
    assert_eq!(status(&sim, &format!("us.{CLAUDE}"), "converse").await, 403);
    sim.clear_default_failure();
    assert_eq!(status(&sim, OTHER, "converse").await, 200);
    sim.set_default_failure(Failure::first_calls(1, Fault::throttling()));
    assert_eq!(status(&sim, OTHER, "converse").await, 429);
    assert_eq!(status(&sim, OTHER, "converse").await, 200);
}

#[tokio::test]
async fn calls_are_counted_per_model_id_and_can_be_awaited() {
    let sim = sim_failing(Failure::first_calls(1, Fault::throttling())).await;
    assert_eq!((sim.calls(CLAUDE), sim.total_calls()), (0, 0));
    sim.wait_calls(CLAUDE, 0).await;

    let calls: Vec<_> = (0..3)
        .map(|_| {
            let sim = sim.clone();
            tokio::spawn(async move { status(&sim, CLAUDE, "converse-stream").await })
        })
        .collect();
    sim.wait_calls(CLAUDE, 3).await;
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 429]);

    assert_eq!(status(&sim, OTHER, "converse").await, 200);
    // Unauthenticated calls count too.
    let unsigned = http::Request::builder()
        .method("POST")
        .uri(format!("{}/model/{}/converse", sim.url(), label(OTHER)))
        .body(http_body_util::Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(call(sim.addr(), unsigned).await.0, 403);
    sim.wait_total_calls(5).await;
    assert_eq!(
        (sim.calls(CLAUDE), sim.calls(OTHER), sim.total_calls()),
        (3, 2, 5)
    );
    assert_eq!(sim.requests().len(), 5);
    assert_eq!(sim.calls("never.called"), 0);
}

#[tokio::test]
async fn two_simulators_side_by_side_are_independent() {
    init();
    let window = Duration::ZERO..Duration::from_secs(60);
    let west_key = (
        "AKIDSIMWEST000000001",
        "west/secret/key/0123456789abcdefghijkl",
    );
    let east = BedrockSim::builder()
        .access_key(AKID, SECRET)
        .failure(CLAUDE, Failure::during(window.clone(), Fault::throttling()))
        .start()
        .await
        .unwrap();
    let west = BedrockSim::builder()
        .access_key(west_key.0, west_key.1)
        .failure(
            CLAUDE,
            Failure::during(window, Fault::service_unavailable()),
        )
        .start()
        .await
        .unwrap();
    assert_ne!(east.addr(), west.addr());
    let west_creds = Creds::long_term(west_key.0, west_key.1);
    let west_call =
        |op: &str| bedrock_request(&west.url(), CLAUDE, op, &converse_body("hi"), &west_creds);

    assert_eq!(status(&east, CLAUDE, "converse").await, 429);
    let (status_west, headers, _) = call(west.addr(), west_call("converse")).await;
    assert_eq!(status_west, 503);
    assert_eq!(error_type(&headers), "ServiceUnavailableException");

    // Each account knows only its own key.
    let (status_cross, headers, _) =
        call(west.addr(), hi_request(&west.url(), CLAUDE, "converse")).await;
    assert_eq!(status_cross, 403);
    assert_eq!(error_type(&headers), "UnrecognizedClientException");

    // Each has its own clock: the east window ends, the west one does not.
    east.advance_clock(Duration::from_secs(60));
    assert_eq!(status(&east, CLAUDE, "converse").await, 200);
    assert_eq!(call(west.addr(), west_call("converse-stream")).await.0, 503);

    // And its own failures and counters.
    west.clear_failure(CLAUDE);
    assert_eq!(call(west.addr(), west_call("converse")).await.0, 200);
    east.set_failure(CLAUDE, Failure::always(Fault::Close));
    assert!(try_send(&east, "converse").await.1.is_err());
    assert_eq!((east.calls(CLAUDE), east.total_calls()), (3, 3));
    assert_eq!((west.calls(CLAUDE), west.total_calls()), (4, 4));
}
