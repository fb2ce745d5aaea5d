//! `POST /v1/embeddings` end to end: the real server, the Bedrock adapter signing InvokeModel
//! calls, and the simulator answering them (SigV4 verified).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use bedrock_sim::{Failure, Fault, Operation};
use common::*;
use http_body_util::Full;
use serde_json::{json, Value};

const COHERE: &str = "cohere.embed-english-v3";

/// The base configuration plus embedding models: two read from their ids, one declared by
/// `kind` (an application inference profile whose id names no model), a virtual model over
/// two of them, and a key with a small token limit.
const EMBEDDING_MODELS: &str = r#"
[accounts.sim.models.titan]
model_id = "amazon.titan-embed-text-v2:0"
price = { input = 2.0, output = 0.0 }

[accounts.sim.models.cohere]
model_id = "cohere.embed-english-v3"

[accounts.sim.models.declared]
model_id = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/emb1"
family = "cohere"
kind = "embedding"

[virtual_models."embed-ha"]
strategy = "failover"
targets = ["sim/cohere", "sim/titan"]
"#;

fn config() -> String {
    BASE_CONFIG.replace(
        r#"  { name = "strict", key = "test-strict-key", finish_reason_style = "strict" },"#,
        r#"  { name = "strict", key = "test-strict-key", finish_reason_style = "strict" },
  { name = "limited", key = "test-limited-key", tpm = 5 },"#,
    ) + EMBEDDING_MODELS
        + "\n[limits]\nbackend = \"memory\"\n"
}

async fn gateway(sim: bedrock_sim::SimBuilder) -> TestGateway {
    TestGateway::start_with_config(sim, &config(), &[]).await
}

async fn embed_as(gw: &TestGateway, key: &str, body: &Value) -> (http::response::Parts, Value) {
    let request = http::Request::post(gw.url("/v1/embeddings"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(bytes::Bytes::from(
            serde_json::to_vec(body).unwrap(),
        )))
        .unwrap();
    let response = gw.send(request).await;
    let (parts, body) = response.into_parts();
    let (_, value) = json_of(http::Response::from_parts(parts.clone(), body)).await;
    (parts, value)
}

async fn embed(gw: &TestGateway, body: &Value) -> (http::StatusCode, Value) {
    let (parts, value) = embed_as(gw, KEY, body).await;
    (parts.status, value)
}

/// An embedding as the f32s the gateway wrote (JSON numbers are their shortest f32 text).
fn vector(item: &Value) -> Vec<f32> {
    serde_json::from_value(item["embedding"].clone()).unwrap()
}

#[tokio::test]
async fn titan_embeds_a_batch_one_call_per_text_with_dimensions() {
    let gw = gateway(sim()).await;
    let (parts, body) = embed_as(
        &gw,
        KEY,
        &json!({"model": "sim/titan", "input": ["one two", "three", "one two"], "dimensions": 256}),
    )
    .await;
    assert_eq!(parts.status, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "sim/titan");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (index, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], index);
        assert_eq!(vector(item).len(), 256);
    }
    assert_eq!(vector(&data[0]), vector(&data[2]), "same text, same vector");
    assert_ne!(vector(&data[0]), vector(&data[1]));
    // One token per word, as the simulator counts.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 5, "total_tokens": 5})
    );
    assert_eq!(header(&parts, "x-gateway-target"), Some("sim/titan"));
    // 5 tokens at 2 USD per million.
    assert_eq!(header(&parts, "x-gateway-cost-usd"), Some("0.000010"));
    let calls = gw.sim.requests();
    assert_eq!(calls.len(), 3);
    assert!(calls
        .iter()
        .all(|call| call.operation == Operation::InvokeModel));
    assert_eq!(calls[0].body["dimensions"], 256);
}

#[tokio::test]
async fn cohere_embeds_in_one_call_with_input_type_and_base64() {
    let gw = gateway(sim()).await;
    let (status, floats) = embed(
        &gw,
        &json!({"model": "sim/cohere", "input": ["a doc", "another doc"], "input_type": "search_query"}),
    )
    .await;
    assert_eq!(status, 200, "{floats}");
    let calls = gw.sim.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].body["input_type"], "search_query");
    assert_eq!(calls[0].body["texts"], json!(["a doc", "another doc"]));
    let (status, encoded) = embed(
        &gw,
        &json!({"model": "sim/cohere", "input": ["a doc", "another doc"], "input_type": "search_query", "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(status, 200, "{encoded}");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded["data"][1]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(decoded, vector(&floats["data"][1]));
    assert_eq!(decoded.len(), 1024);
}

#[tokio::test]
async fn a_model_declared_an_embedding_model_by_kind_is_one() {
    let gw = gateway(sim()).await;
    let (status, body) = embed(&gw, &json!({"model": "sim/declared", "input": "hello"})).await;
    // The simulator does not know the profile's model: its refusal shows the call was made.
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("embedding models only"),
        "{body}"
    );
    assert_eq!(gw.sim.requests()[0].body["input_type"], "search_document");
}

#[tokio::test]
async fn chat_on_an_embedding_model_and_embeddings_on_a_chat_model_are_400s() {
    let gw = gateway(sim()).await;
    let (status, body) = gw
        .chat(&json!({"model": "sim/titan", "messages": user("Hello")}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_openai_error(&body, "model_not_supported");
    assert_eq!(body["error"]["param"], "model");
    let (status, body) = embed(&gw, &json!({"model": "sim/claude-3", "input": "hi"})).await;
    assert_eq!(status, 400, "{body}");
    assert_openai_error(&body, "model_not_supported");
    let (status, body) = embed(&gw, &json!({"model": "sim/titan", "input": [1, 2, 3]})).await;
    assert_eq!(status, 400, "{body}");
    assert_openai_error(&body, "unsupported_value");
    let (status, body) = embed(
        &gw,
        &json!({"model": "sim/titan", "input": "hi", "dimensions": 300}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "dimensions");
    assert!(gw.sim.requests().is_empty(), "nothing reached Bedrock");
}

#[tokio::test]
async fn a_virtual_embedding_model_fails_over_and_keys_are_limited_by_tokens() {
    let gw = gateway(sim().failure(COHERE, Failure::first_calls(1, Fault::throttling()))).await;
    let (parts, body) = embed_as(&gw, KEY, &json!({"model": "embed-ha", "input": "hello"})).await;
    assert_eq!(parts.status, 200, "{body}");
    assert_eq!(header(&parts, "x-gateway-target"), Some("sim/titan"));
    assert_eq!(body["model"], "embed-ha");
    // 5 tokens a minute: the first request (6 words) is admitted, the next refused.
    let six = json!({"model": "sim/titan", "input": "one two three four five six"});
    let (parts, body) = embed_as(&gw, "test-limited-key", &six).await;
    assert_eq!(parts.status, 200, "{body}");
    let (parts, body) = embed_as(&gw, "test-limited-key", &six).await;
    assert_eq!(parts.status, 429, "{body}");
    let (_, metrics) = gw.get("/metrics", None).await;
    assert!(
        metrics.contains("endpoint=\"embeddings\""),
        "requests counted per endpoint:\n{metrics}"
    );
}

#[tokio::test]
async fn the_door_wants_a_key_and_a_post() {
    let gw = gateway(sim()).await;
    let (parts, body) = embed_as(
        &gw,
        "not-a-key",
        &json!({"model": "sim/titan", "input": "x"}),
    )
    .await;
    assert_eq!(parts.status, 401, "{body}");
    let response = gw
        .send(
            http::Request::get(gw.url("/v1/embeddings"))
                .header("authorization", format!("Bearer {KEY}"))
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert!(gw.sim.requests().is_empty());
}
