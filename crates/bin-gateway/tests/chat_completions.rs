//! Non-streaming chat completions end to end: the real server, the real Bedrock adapter and
//! the simulator on loopback, which verifies every SigV4 signature.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use bedrock_sim::{Reply, Script};
use common::*;
use serde_json::json;

#[tokio::test]
async fn answers_an_openai_request_from_bedrock() {
    let gw = TestGateway::start(sim()).await;
    let (status, body) = gw
        .chat(&json!({
            "model": "sim/claude-3",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello there"}
            ],
            "max_tokens": 100,
            "temperature": 0.5
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["model"], "sim/claude-3");
    assert_eq!(body["provider"], "aws");
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["message"]["content"]
        .as_str()
        .unwrap()
        .contains("Hello there"));
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    let recorded = gw.sim.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].model_id, CLAUDE);
    assert_eq!(recorded[0].body["system"], json!([{"text": "Be brief."}]));
    assert_eq!(recorded[0].body["inferenceConfig"]["maxTokens"], 100);
}

#[tokio::test]
async fn sigv4_is_accepted_for_a_model_id_with_a_colon_and_an_inference_profile_arn() {
    let gw = TestGateway::start(sim()).await;
    for model in ["sim/claude-3", "sim/profile"] {
        let (status, body) = gw
            .chat(&json!({"model": model, "messages": user("hi")}))
            .await;
        assert_eq!(status, 200, "{model}: {body}");
    }
    let ids: Vec<_> = gw.sim.requests().into_iter().map(|r| r.model_id).collect();
    assert_eq!(ids, [CLAUDE, PROFILE_ARN]);
}

#[tokio::test]
async fn a_wrong_secret_is_rejected_by_bedrock_and_reported_without_leaking_it() {
    let config = BASE_CONFIG.replace("${SIM_SECRET}", "wrong/secret/value/for/this/key");
    let gw = TestGateway::start_with_config(sim(), &config, &[]).await;
    let (status, body) = gw
        .chat(&json!({"model": "sim/claude-3", "messages": user("hi")}))
        .await;
    assert_eq!(status, 502, "{body}");
    assert_openai_error(&body, "upstream_unauthorized");
    let text = body.to_string();
    assert!(text.contains("`sim`"), "names the account: {text}");
    assert!(!text.contains("wrong/secret"), "{text}");
    assert!(!text.contains("Signature="), "{text}");
}

#[tokio::test]
async fn bedrock_errors_become_openai_errors_with_the_right_status() {
    let cases = [
        (Script::throttling(), 429, "rate_limit_exceeded"),
        (
            Script::error(400, "ValidationException", "messages: too long"),
            400,
            "upstream_validation_error",
        ),
        (
            Script::error(500, "InternalServerException", "boom"),
            502,
            "upstream_error",
        ),
        (
            Script::error(503, "ServiceUnavailableException", "later"),
            503,
            "upstream_unavailable",
        ),
        (
            Script::raw(502, "text/html", "<html>Bad Gateway</html>"),
            502,
            "upstream_error",
        ),
        (
            Script::raw(200, "application/json", "{\"output\": tru"),
            502,
            "upstream_protocol_error",
        ),
    ];
    let gw = TestGateway::start(sim()).await;
    for (script, status, code) in cases {
        let label = format!("{script:?}");
        gw.sim.set_script(CLAUDE, script);
        let (got, body) = gw
            .chat(&json!({"model": "sim/claude-3", "messages": user("hi")}))
            .await;
        assert_eq!(got.as_u16(), status, "{label}: {body}");
        assert_openai_error(&body, code);
    }
    gw.sim.set_script(
        CLAUDE,
        Script::error(400, "ValidationException", "messages: too long"),
    );
    let (_, body) = gw
        .chat(&json!({"model": "sim/claude-3", "messages": user("hi")}))
        .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("messages: too long"),
        "Bedrock's message reaches the client: {body}"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_503() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = BASE_CONFIG.replace("${SIM_URL}", &url);
    let gw = TestGateway::start_with_config(sim(), &config, &[]).await;
    let (status, body) = gw
        .chat(&json!({"model": "sim/claude-3", "messages": user("hi")}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_openai_error(&body, "upstream_unavailable");
}

#[tokio::test]
async fn unknown_models_are_404_and_never_reach_bedrock() {
    let gw = TestGateway::start(sim()).await;
    for model in ["sim/nope", "other/claude-3", "claude-3"] {
        let (status, body) = gw
            .chat(&json!({"model": model, "messages": user("hi")}))
            .await;
        assert_eq!(status, 404, "{model}: {body}");
        assert_openai_error(&body, "model_not_found");
    }
    assert!(gw.sim.requests().is_empty());
}

#[tokio::test]
async fn missing_or_wrong_gateway_keys_are_401_before_bedrock() {
    let gw = TestGateway::start(sim()).await;
    let request = json!({"model": "sim/claude-3", "messages": user("hi")});
    for key in [None, Some("wrong-key-123"), Some("")] {
        let (status, body) = gw.chat_as(key, &request).await;
        assert_eq!(status, 401, "{key:?}: {body}");
        assert_openai_error(&body, "invalid_api_key");
    }
    assert!(gw.sim.requests().is_empty());
}

#[tokio::test]
async fn bad_input_is_400_naming_the_field() {
    let gw = TestGateway::start(sim()).await;
    let cases = [
        (json!({"model": "sim/claude-3"}), "messages"),
        (json!({"model": "sim/claude-3", "messages": []}), "messages"),
        (
            json!({"model": "sim/claude-3", "messages": "hi"}),
            "messages",
        ),
        (
            json!({"model": "sim/claude-3", "messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (json!({"messages": user("hi")}), "model"),
        (
            json!({"model": "sim/claude-3", "messages": user("hi"), "temperature": "hot"}),
            "temperature",
        ),
    ];
    for (request, field) in cases {
        let (status, body) = gw.chat(&request).await;
        assert_eq!(status, 400, "{request}: {body}");
        let error = &body["error"];
        assert!(
            error["param"].as_str().unwrap_or_default().contains(field)
                || error["message"].as_str().unwrap().contains(field),
            "{request}: {body} should name {field}"
        );
    }
    let response = gw
        .send(
            http::Request::post(gw.url("/v1/chat/completions"))
                .header("authorization", format!("Bearer {KEY}"))
                .body(http_body_util::Full::new(bytes::Bytes::from_static(
                    b"{not json",
                )))
                .unwrap(),
        )
        .await;
    let (status, body) = json_of(response).await;
    assert_eq!(status, 400);
    assert_openai_error(&body, "invalid_json");
    assert!(gw.sim.requests().is_empty());
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let config = format!("[server]\nmax_body_bytes = 4096\n{BASE_CONFIG}");
    let gw = TestGateway::start_with_config(sim(), &config, &[]).await;
    let big = "x".repeat(10_000);
    let (status, body) = gw
        .chat(&json!({"model": "sim/claude-3", "messages": user(&big)}))
        .await;
    assert_eq!(status, 413, "{body}");
    assert_openai_error(&body, "request_too_large");
}

#[tokio::test]
async fn tool_calls_come_back_in_openai_shape() {
    let sim = sim().script(
        CLAUDE,
        Script::Reply(
            Reply::text("Checking.")
                .tool_use("tooluse_1", "get_weather", json!({"city": "Paris"}))
                .stop_reason("tool_use"),
        ),
    );
    let gw = TestGateway::start(sim).await;
    let (status, body) = gw
        .chat(&json!({
            "model": "sim/claude-3",
            "messages": user("weather in Paris?"),
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "tooluse_1");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: serde_json::Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Paris"}));
    let recorded = &gw.sim.requests()[0].body;
    assert_eq!(
        recorded["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );
}

#[tokio::test]
async fn fifty_concurrent_requests_all_succeed() {
    let gw = std::sync::Arc::new(TestGateway::start(sim()).await);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            gw.chat(&json!({"model": "sim/claude-3", "messages": user(&format!("request {i}"))}))
                .await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains(&format!("request {i}")));
    }
    assert_eq!(gw.sim.requests().len(), 50);
}

#[tokio::test]
async fn models_health_and_metrics() {
    let gw = TestGateway::start(sim()).await;
    let (status, body) = gw.get("/v1/models", Some(KEY)).await;
    assert_eq!(status, 200);
    let models: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(models["object"], "list");
    let ids: Vec<_> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["sim/claude-3", "sim/profile"]);
    assert_eq!(gw.get("/v1/models", None).await.0, 401);
    assert_eq!(gw.get("/health", None).await.0, 200);
    let (status, metrics) = gw.get("/metrics", None).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("# TYPE"), "{metrics}");
}

/// `fixtures/openai/request_refused_by_bedrock/`: requests the OpenAI parser accepts but
/// Converse cannot take (an assistant first turn, a last user message of blank text only).
/// The Bedrock adapter refuses them before any call, with a 400 naming the client's message
/// (for the first turn, the parser's former answer byte for byte).
#[tokio::test]
async fn requests_bedrock_cannot_take_get_a_400_naming_the_field_before_any_call() {
    let gw = TestGateway::start(sim()).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/openai/request_refused_by_bedrock");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    for path in paths {
        let mut request: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        // The fixtures name the parser tests' model; route them to the simulator's.
        request["model"] = json!("sim/claude-3");
        let (status, body) = gw.chat(&request).await;
        request["stream"] = json!(true);
        let (stream_status, stream_body) = json_of(gw.stream(&request).await).await;
        assert_eq!(
            (stream_status, &stream_body),
            (status, &body),
            "{}",
            path.display()
        );
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        insta::with_settings!({ snapshot_suffix => name, input_file => &path }, {
            insta::assert_json_snapshot!(json!({"status": status.as_u16(), "body": body}));
        });
    }
    assert!(gw.sim.requests().is_empty(), "nothing reached Bedrock");
}
