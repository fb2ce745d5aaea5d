//! The strict request model and content checked by its bytes, end to end: every request the
//! gateway refuses for its shape, its numbers or its media is a 400 from the real server,
//! streamed or not, and never reaches the simulator; odd model names never choose where a
//! request goes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use serde_json::{json, Value};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/openai/request_invalid"
);

/// POSTs `body` as it is (duplicate keys and all) and reads the JSON answer.
async fn post_raw(gw: &TestGateway, body: Vec<u8>) -> (http::StatusCode, Value) {
    let request = http::Request::post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {KEY}"))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    json_of(gw.send(request).await).await
}

/// The fixture's text aimed at the simulator's model, and, when it is an object, the same
/// text asking for a stream (inserted as the first key, so duplicate keys stay as written).
fn bodies(text: &str) -> Vec<Vec<u8>> {
    let text = text.replace("internal-bedrock/claude-3", "sim/claude-3");
    let mut bodies = vec![text.clone().into_bytes()];
    if let Some(rest) = text.trim_start().strip_prefix('{') {
        bodies.push(format!("{{\"stream\": true, {rest}").into_bytes());
    }
    bodies
}

#[tokio::test]
async fn every_invalid_request_fixture_is_a_400_that_never_reaches_bedrock() {
    let gw = TestGateway::start(sim()).await;
    let mut paths: Vec<_> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() > 100, "the fixtures are found");
    for path in &paths {
        let text = std::fs::read_to_string(path).unwrap();
        for body in bodies(&text) {
            let (status, answer) = post_raw(&gw, body).await;
            assert_eq!(status, 400, "{}: {answer}", path.display());
            assert!(answer["error"]["code"].is_string(), "{answer}");
        }
    }
    assert_eq!(gw.sim.total_calls(), 0, "nothing reached the simulator");

    // The same server serves a valid request: the refusals above were the requests' own.
    let (status, body) = gw
        .chat(&json!({"model": "sim/claude-3", "messages": user("hi")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.sim.total_calls(), 1);
}

/// PNG bytes padded to `len`: a real signature, so only the size can be refused.
fn png_data_url(len: usize) -> String {
    use base64::Engine as _;
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.resize(len, 0);
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

fn image_request(url: &str) -> Value {
    json!({
        "model": "sim/claude-3",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": url}},
        ]}],
    })
}

#[tokio::test]
async fn media_is_judged_by_its_bytes_and_size_before_any_call() {
    let gw = TestGateway::start(sim()).await;
    // 5 MB is over Bedrock's 3.75 MB per image.
    let (status, body) = gw.chat(&image_request(&png_data_url(5_000_000))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "messages[0].content[1].image_url");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("over Bedrock's limit of 3750000 bytes"),
        "{body}"
    );
    assert_eq!(gw.sim.total_calls(), 0);

    // Within the cap, the same bytes are sent as the PNG they are.
    let (status, body) = gw.chat(&image_request(&png_data_url(1_000))).await;
    assert_eq!(status, 200, "{body}");
    let sent = &gw.sim.requests()[0].body["messages"][0]["content"][1];
    assert_eq!(sent["image"]["format"], "png");
}

#[tokio::test]
async fn numbers_outside_the_models_range_are_refused_before_any_call() {
    let gw = TestGateway::start(sim()).await;
    let ask = |extra: Value| {
        let mut body = json!({"model": "sim/claude-3", "messages": user("hi")});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    // Claude 3 Sonnet writes at most 4096 tokens; Converse takes temperature 0 to 1.
    for extra in [
        json!({"max_tokens": 4097}),
        json!({"max_completion_tokens": 200000}),
        json!({"temperature": 1.5}),
    ] {
        let (status, body) = gw.chat(&ask(extra.clone())).await;
        assert_eq!(status, 400, "{extra}: {body}");
        let mut streamed = ask(extra.clone());
        streamed["stream"] = json!(true);
        let (status, body) = json_of(gw.stream(&streamed).await).await;
        assert_eq!(status, 400, "{extra} streamed: {body}");
    }
    assert_eq!(gw.sim.total_calls(), 0);
    let (status, body) = gw.chat(&ask(json!({"max_tokens": 4096}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        gw.sim.requests()[0].body["inferenceConfig"]["maxTokens"],
        4096
    );
}

#[tokio::test]
async fn odd_model_names_resolve_only_through_the_router() {
    let gw = TestGateway::start(sim()).await;
    let huge = format!("sim/{}", "m".repeat(1 << 20));
    let names = [
        "../sim/claude-3",
        "sim/../sim/claude-3",
        "sim/claude-3/../../other",
        "sim%2Fclaude-3",
        "sim%2fclaude-3",
        "sim/claude-3%00",
        "sim/claude-3\0",
        "sim/claude-3\r\nx-injected: 1",
        "https://attacker.example/model/x/converse",
        "http://169.254.169.254/latest/meta-data",
        "arn:aws:bedrock:us-east-1:999999999999:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
        CLAUDE,
        "other-account/claude-3",
        "sim/",
        "/claude-3",
        " sim/claude-3",
        &huge,
    ];
    for name in names {
        let (status, body) = gw
            .chat(&json!({"model": name, "messages": user("hi")}))
            .await;
        let shown: String = name.chars().take(80).collect();
        assert!(status == 400 || status == 404, "{shown:?}: {status} {body}");
        assert!(
            body.to_string().len() < 4096,
            "{shown:?}: the answer does not echo the name at length"
        );
    }
    assert_eq!(gw.sim.total_calls(), 0, "no odd name reached Bedrock");

    // Only the configured public names reach the simulator, and only their model ids.
    for name in ["sim/claude-3", "sim/profile"] {
        let (status, body) = gw
            .chat(&json!({"model": name, "messages": user("hi")}))
            .await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    let ids: Vec<_> = gw.sim.requests().into_iter().map(|r| r.model_id).collect();
    assert_eq!(ids, [CLAUDE, PROFILE_ARN]);
}
