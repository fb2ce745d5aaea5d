//! Converse (`POST /model/{modelId}/converse`): answer shapes of every script, validation,
//! garbage answers, run-time script changes and recording.

#![allow(
    clippy::unwrap_used,
    reason = "integration tests and their helper functions fail by panicking"
)]

mod common;

use bedrock_sim::{BedrockSim, Operation, RecordedAuth, Reply, Script, StreamStep};
use common::*;
use serde_json::{json, Value};

async fn sim(script: Script) -> bedrock_sim::SimHandle {
    init();
    BedrockSim::builder()
        .access_key(AKID, SECRET)
        .script(CLAUDE, script)
        .start()
        .await
        .unwrap()
}

async fn converse(
    sim: &bedrock_sim::SimHandle,
    body: &Value,
) -> (http::StatusCode, http::HeaderMap, Value) {
    call_json(
        sim.addr(),
        bedrock_request(&sim.url(), CLAUDE, "converse", body, &Creds::test()),
    )
    .await
}

#[tokio::test]
async fn echo_answers_in_botocore_shape_and_records_the_request() {
    let sim = sim(Script::Echo).await;
    let body = json!({
        "system": [ { "text": "Be brief." } ],
        "messages": [
            { "role": "user", "content": [ { "text": "first question" } ] },
            { "role": "assistant", "content": [ { "text": "an answer" } ] },
            { "role": "user", "content": [ { "text": "hello there" } ] },
        ],
    });
    let (status, headers, value) = converse(&sim, &body).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers.contains_key("x-amzn-requestid"));
    assert_eq!(value["output"]["message"]["role"], "assistant");
    assert_eq!(
        value["output"]["message"]["content"],
        json!([{ "text": "You said: hello there" }])
    );
    assert_eq!(value["stopReason"], "end_turn");
    // 2 (system) + 2 + 2 + 2 words in, 4 words out.
    assert_eq!(
        value["usage"],
        json!({ "inputTokens": 8, "outputTokens": 4, "totalTokens": 12 })
    );
    assert!(value["metrics"]["latencyMs"].is_u64());
    assert!(value.get("trace").is_none());

    let recorded = sim.requests();
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.operation, Operation::Converse);
    assert_eq!(r.model_id, CLAUDE);
    assert_eq!(r.raw_path, format!("/model/{CLAUDE_PATH}/converse"));
    assert_eq!(r.body, body);
    assert_eq!(
        r.auth,
        RecordedAuth::SigV4 {
            access_key_id: AKID.to_owned(),
            session_token: None
        }
    );
    assert!(r.headers.contains_key("authorization"));
}

#[tokio::test]
async fn arn_model_ids_with_slashes_are_decoded() {
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0";
    let sim = sim(Script::Echo).await;
    sim.set_script(arn, Script::Reply(Reply::text("from the profile")));
    let req = hi_request(&sim.url(), arn, "converse");
    assert!(
        req.uri().path().contains("%2Fus.anthropic"),
        "{}",
        req.uri()
    );
    let (status, _, value) = call_json(sim.addr(), req).await;
    assert_eq!(status, 200, "{value}");
    assert_eq!(
        value["output"]["message"]["content"][0]["text"],
        "from the profile"
    );
    assert_eq!(sim.requests()[0].model_id, arn);
}

#[tokio::test]
async fn reply_script_with_tool_use_trace_and_additional_fields() {
    let reply = Reply::text("Let me check.")
        .tool_use("tooluse_1", "get_weather", json!({ "city": "Paris" }))
        .usage(30, 12)
        .trace(json!({ "promptRouter": { "invokedModelId": "x" } }))
        .additional_model_response_fields(json!({ "stop_sequence": null }));
    let sim = sim(Script::Reply(reply)).await;
    let (status, _, value) = converse(&sim, &converse_body("weather?")).await;
    assert_eq!(status, 200);
    assert_eq!(
        value,
        json!({
            "output": { "message": { "role": "assistant", "content": [
                { "text": "Let me check." },
                { "toolUse": { "toolUseId": "tooluse_1", "name": "get_weather", "input": { "city": "Paris" } } },
            ] } },
            "stopReason": "tool_use",
            "usage": { "inputTokens": 30, "outputTokens": 12, "totalTokens": 42 },
            "metrics": { "latencyMs": value["metrics"]["latencyMs"] },
            "trace": { "promptRouter": { "invokedModelId": "x" } },
            "additionalModelResponseFields": { "stop_sequence": null },
        })
    );
}

#[tokio::test]
async fn error_script_answers_the_bedrock_error_shape() {
    let sim = sim(Script::throttling()).await;
    let (status, headers, value) = converse(&sim, &converse_body("hi")).await;
    assert_eq!(status, 429);
    assert_eq!(error_type(&headers), "ThrottlingException");
    assert_eq!(
        value,
        json!({ "message": "Too many requests, please wait before trying again." })
    );

    sim.set_script(
        CLAUDE,
        Script::error(424, "ModelErrorException", "the model failed"),
    );
    let (status, headers, _) = converse(&sim, &converse_body("hi")).await;
    assert_eq!(status, 424);
    assert_eq!(error_type(&headers), "ModelErrorException");
}

#[tokio::test]
async fn raw_garbage_is_sent_verbatim() {
    let sim = sim(Script::raw(
        502,
        "text/html",
        "<html><body>502 Bad Gateway</body></html>",
    ))
    .await;
    let req = hi_request(&sim.url(), CLAUDE, "converse");
    let (status, headers, body) = call(sim.addr(), req).await;
    assert_eq!(status, 502);
    assert_eq!(headers["content-type"], "text/html");
    assert!(!headers.contains_key("x-amzn-errortype"));
    assert_eq!(&body[..], b"<html><body>502 Bad Gateway</body></html>");

    sim.set_script(
        CLAUDE,
        Script::raw(200, "application/json", r#"{"output":{"mess"#),
    );
    let req = hi_request(&sim.url(), CLAUDE, "converse");
    let (status, _, body) = call(sim.addr(), req).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_slice::<Value>(&body).is_err());
}

#[tokio::test]
async fn cut_body_closes_the_connection_mid_body() {
    let sim = sim(Script::CutBody {
        status: 200,
        content_type: "application/json".to_owned(),
        body: bytes::Bytes::from_static(br#"{"output":{"message":{"role":"assis"#),
    })
    .await;
    let req = hi_request(&sim.url(), CLAUDE, "converse");
    let (_conn, resp) = send(sim.addr(), req).await;
    assert_eq!(resp.status(), 200);
    use http_body_util::BodyExt;
    let err = resp.into_body().collect().await.unwrap_err();
    assert!(
        err.is_incomplete_message() || err.to_string().contains("error"),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_bodies_are_validation_exceptions() {
    let sim = sim(Script::Echo).await;
    let cases = [
        ("not json", "Malformed input request"),
        (
            r#"{"inferenceConfig":{}}"#,
            "'messages' failed to satisfy constraint: Member must not be null",
        ),
        (r#"{"messages":[]}"#, "must start with a user message"),
        (
            r#"{"messages":[{"role":"assistant","content":[{"text":"x"}]}]}"#,
            "must start with a user message",
        ),
        (
            r#"{"messages":[{"role":"user","content":[{"text":"x"}]},{"role":"user","content":[{"text":"y"}]}]}"#,
            "must alternate between user and assistant",
        ),
        (
            r#"{"messages":[{"role":"user","content":[{"toolResult":{"toolUseId":"t","content":[{"text":"1"}]}}]}]}"#,
            "toolConfig field must be defined",
        ),
    ];
    for (body, expected) in cases {
        let req = signed(
            &sim.url(),
            &format!("/model/{CLAUDE_PATH}/converse"),
            body.as_bytes(),
            &Creds::test(),
            REGION,
            "bedrock",
            "application/json",
            now(),
        );
        let (status, headers, value) = call_json(sim.addr(), req).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error_type(&headers), "ValidationException");
        let message = value["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
    // Rejected requests are recorded too (malformed JSON as Null).
    assert_eq!(sim.requests().len(), cases.len());
    assert_eq!(sim.requests()[0].body, Value::Null);
}

#[tokio::test]
async fn unknown_operations_are_404() {
    let sim = sim(Script::Echo).await;
    for path in [
        "/model/x/invoke-with-response-stream",
        "/v1/chat/completions",
        "/model/a/b/converse",
    ] {
        let req = signed(
            &sim.url(),
            path,
            b"{}",
            &Creds::test(),
            REGION,
            "bedrock",
            "application/json",
            now(),
        );
        let (status, headers, _) = call_json(sim.addr(), req).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(error_type(&headers), "UnknownOperationException");
    }
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn stream_scripts_are_aggregated_for_converse() {
    let mut steps = bedrock_sim::stream::tool_use(
        Some("Checking."),
        "t-1",
        "lookup",
        &[r#"{"q":"#, r#""rust"}"#],
    );
    steps.insert(1, StreamStep::Delay(std::time::Duration::from_millis(1)));
    let sim = sim(Script::Stream(steps)).await;
    let (status, _, value) = converse(&sim, &converse_body("go")).await;
    assert_eq!(status, 200, "{value}");
    assert_eq!(
        value["output"]["message"]["content"],
        json!([
            { "text": "Checking." },
            { "toolUse": { "toolUseId": "t-1", "name": "lookup", "input": { "q": "rust" } } },
        ])
    );
    assert_eq!(value["stopReason"], "tool_use");
    assert_eq!(value["usage"]["outputTokens"], 2);

    let mut steps = bedrock_sim::stream::text(&["par", "tial"], "end_turn", (1, 2));
    steps.insert(2, StreamStep::exception("throttlingException", "slow down"));
    sim.set_script(CLAUDE, Script::Stream(steps));
    let (status, headers, value) = converse(&sim, &converse_body("go")).await;
    assert_eq!(status, 429);
    assert_eq!(error_type(&headers), "ThrottlingException");
    assert_eq!(value["message"], "slow down");
}

#[tokio::test]
async fn stall_never_answers_converse() {
    let sim = sim(Script::Stall).await;
    let req = hi_request(&sim.url(), CLAUDE, "converse");
    let mut conn = connect(sim.addr()).await;
    conn.sender.ready().await.unwrap();
    let pending = conn.sender.send_request(req);
    // A bounded wait to show absence of an answer (not used to synchronise).
    let outcome = tokio::time::timeout(std::time::Duration::from_millis(200), pending).await;
    assert!(outcome.is_err(), "a stalled Converse must not answer");
    // The request was accepted and recorded.
    assert_eq!(sim.requests().len(), 1);
}

#[tokio::test]
async fn fixed_mode_without_verification_accepts_anything() {
    init();
    let sim = BedrockSim::builder()
        .verify_signatures(false)
        .default_script(Script::Fixed)
        .start()
        .await
        .unwrap();
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("{}/model/any-model/converse", sim.url()))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"not even json",
        )))
        .unwrap();
    let (status, headers, value) = call_json(sim.addr(), req).await;
    assert_eq!(status, 200);
    assert!(headers.contains_key("content-length"));
    assert_eq!(
        value["output"]["message"]["content"][0]["text"],
        "This is a fixed answer."
    );
    assert_eq!(value["usage"]["totalTokens"], 13);
    assert_eq!(sim.requests()[0].auth, RecordedAuth::Unsigned);
}

#[tokio::test]
async fn record_requests_can_be_turned_off() {
    init();
    let sim = BedrockSim::builder()
        .access_key(AKID, SECRET)
        .record_requests(false)
        .start()
        .await
        .unwrap();
    let (status, _, _) = converse(&sim, &converse_body("hi")).await;
    assert_eq!(status, 200);
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn bearer_api_keys() {
    init();
    let sim = BedrockSim::builder()
        .api_key("bedrock-api-key-1")
        .start()
        .await
        .unwrap();
    let request = |key: &str| {
        http::Request::builder()
            .method("POST")
            .uri(format!("{}/model/{CLAUDE_PATH}/converse", sim.url()))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                converse_body("hi").to_string(),
            )))
            .unwrap()
    };
    let (status, _, value) = call_json(sim.addr(), request("bedrock-api-key-1")).await;
    assert_eq!(status, 200, "{value}");
    assert_eq!(sim.requests()[0].auth, RecordedAuth::Bearer);

    let (status, headers, _) = call_json(sim.addr(), request("wrong-key")).await;
    assert_eq!(status, 403);
    assert_eq!(error_type(&headers), "AccessDeniedException");
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let sim = sim(Script::Echo).await;
    let mut conn = connect(sim.addr()).await;
    for i in 0..3 {
        let req = bedrock_request(
            &sim.url(),
            CLAUDE,
            "converse",
            &converse_body(&format!("n{i}")),
            &Creds::test(),
        );
        conn.sender.ready().await.unwrap();
        let resp = conn.sender.send_request(req).await.unwrap();
        use http_body_util::BodyExt;
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value["output"]["message"]["content"][0]["text"],
            format!("You said: n{i}")
        );
    }
    assert_eq!(sim.requests().len(), 3);
}

#[tokio::test]
async fn shutdown_stops_accepting_connections() {
    let sim = sim(Script::Echo).await;
    let addr = sim.addr();
    sim.shutdown();
    // The listener is closed once the accept loop sees the signal; connecting then fails.
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused);
}

#[tokio::test]
async fn sequences_answer_call_by_call_then_repeat_the_last() {
    let sim = sim(Script::Sequence(vec![
        Script::throttling(),
        Script::error(503, "ServiceUnavailableException", "busy"),
        Script::Reply(Reply::text("finally")),
    ]))
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(converse(&sim, &converse_body("hi")).await.0.as_u16());
    }
    assert_eq!(statuses, [429, 503, 200, 200]);
    // Replacing the script restarts the count.
    sim.set_script(
        CLAUDE,
        Script::Sequence(vec![Script::throttling(), Script::Echo]),
    );
    assert_eq!(converse(&sim, &converse_body("hi")).await.0, 429);
    assert_eq!(converse(&sim, &converse_body("hi")).await.0, 200);
}
