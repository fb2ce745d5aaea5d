//! Anthropic's Messages API (`POST /v1/messages`) end to end: the real gateway in front of the
//! simulator, as an Anthropic SDK calls it (`x-api-key`, `anthropic-version`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use bedrock_sim::Script;
use bytes::Bytes;
use common::*;
use http_body_util::Full;
use serde_json::{json, Value};

const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/// The base configuration plus a Claude that thinks and a model with an enforced guardrail.
const MODELS: &str = r#"
[accounts.sim.models.sonnet]
model_id = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

[accounts.sim.models.enforced]
model_id = "anthropic.claude-3-sonnet-20240229-v1:0"
guardrail = { identifier = "gr-enforced", version = "2", mode = "enforced" }
"#;

async fn gateway(sim: bedrock_sim::SimBuilder) -> TestGateway {
    TestGateway::start_with_config(sim, &format!("{BASE_CONFIG}{MODELS}"), &[]).await
}

/// `POST /v1/messages` with these headers.
fn messages_request(headers: &[(&str, &str)], body: &Value) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::post("/").header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
        .unwrap()
}

/// As an Anthropic SDK sends it: `x-api-key` and `anthropic-version`.
async fn messages_as(gw: &TestGateway, key: &str, body: &Value) -> (http::StatusCode, Value) {
    send(
        gw,
        &[("x-api-key", key), ("anthropic-version", "2023-06-01")],
        body,
    )
    .await
}

async fn messages(gw: &TestGateway, body: &Value) -> (http::StatusCode, Value) {
    messages_as(gw, KEY, body).await
}

async fn send(
    gw: &TestGateway,
    headers: &[(&str, &str)],
    body: &Value,
) -> (http::StatusCode, Value) {
    json_of(gw.send(at(gw, messages_request(headers, body))).await).await
}

fn at(gw: &TestGateway, request: http::Request<Full<Bytes>>) -> http::Request<Full<Bytes>> {
    let (mut parts, body) = request.into_parts();
    parts.uri = gw.url("/v1/messages").parse().unwrap();
    http::Request::from_parts(parts, body)
}

/// A streamed answer's events, as (`type`, data) in order.
async fn stream(gw: &TestGateway, body: &Value) -> Vec<Value> {
    let mut body = body.clone();
    body["stream"] = json!(true);
    let response = gw
        .send(at(gw, messages_request(&[("x-api-key", KEY)], &body)))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "server-sent events"
    );
    SseReader::new(response)
        .rest()
        .await
        .iter()
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect()
}

fn assert_anthropic_error(body: &Value, error_type: &str) {
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], error_type, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[tokio::test]
async fn a_message_is_answered_in_anthropics_shape() {
    let gw = gateway(sim()).await;
    let (status, body) = messages(
        &gw,
        &json!({"model": "sim/claude-3", "max_tokens": 200, "system": "Be brief.",
            "stop_sequences": ["END"], "temperature": 0.5, "top_k": 20,
            "messages": [{"role": "user", "content": "Hello there"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "sim/claude-3", "the client's name");
    assert!(body["id"].as_str().unwrap().starts_with("msg_"), "{body}");
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": "You said: Hello there"}])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["stop_sequence"], Value::Null);
    assert!(
        body["usage"]["input_tokens"].as_u64().unwrap() > 0,
        "{body}"
    );
    assert_eq!(body["usage"]["output_tokens"], 4);

    let sent = &gw.sim.requests()[0].body;
    assert_eq!(sent["system"], json!([{"text": "Be brief."}]));
    assert_eq!(
        sent["inferenceConfig"],
        json!({"maxTokens": 200, "temperature": 0.5, "stopSequences": ["END"]})
    );
    assert_eq!(sent["additionalModelRequestFields"], json!({"top_k": 20}));
}

#[tokio::test]
async fn the_key_may_come_as_a_bearer_token_and_x_api_key_works_on_every_door() {
    let gw = gateway(sim()).await;
    let body = json!({"model": "sim/claude-3", "max_tokens": 10,
        "messages": [{"role": "user", "content": "Hi"}]});
    let bearer = format!("Bearer {KEY}");
    let (status, answer) = send(&gw, &[("authorization", &bearer)], &body).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = send(
        &gw,
        &[("authorization", &bearer), ("x-api-key", KEY)],
        &body,
    )
    .await;
    assert_eq!(status, 200, "the same key twice: {answer}");

    let chat = http::Request::post(gw.url("/v1/chat/completions"))
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            serde_json::to_vec(&json!({"model": "sim/claude-3", "messages": user("Hi")})).unwrap(),
        )))
        .unwrap();
    let (status, answer) = json_of(gw.send(chat).await).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "chat.completion");
}

#[tokio::test]
async fn a_streamed_message_has_anthropics_event_sequence() {
    let gw = gateway(sim()).await;
    let events = stream(
        &gw,
        &json!({"model": "sim/claude-3", "max_tokens": 100,
            "messages": [{"role": "user", "content": "one two three"}]}),
    )
    .await;
    let kinds = types(&events);
    assert_eq!(
        kinds[..4],
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta"
        ]
    );
    assert_eq!(
        kinds[kinds.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert_eq!(events[0]["message"]["model"], "sim/claude-3");
    let text: String = events
        .iter()
        .filter(|event| event["type"] == "content_block_delta")
        .map(|event| {
            assert_eq!(event["delta"]["type"], "text_delta");
            event["delta"]["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(text, "You said: one two three");
    let delta = &events[events.len() - 2];
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 5);
    assert!(
        delta["usage"]["input_tokens"].as_u64().unwrap() > 0,
        "{delta}"
    );
}

fn weather_tools() -> Value {
    json!([{"name": "get_weather", "description": "The weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"]}}])
}

#[tokio::test]
async fn a_thinking_tool_loop_round_trips_its_signed_thinking_and_tool_blocks() {
    let gw = gateway(sim().script(
        SONNET,
        Script::thinking_tool_loop("get_weather", json!({"city": "Paris"})),
    ))
    .await;
    let question = json!({"role": "user", "content": "Weather in Paris?"});
    let first = json!({"model": "sim/sonnet", "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": weather_tools(), "messages": [question]});
    let (status, turn_1) = messages(&gw, &first).await;
    assert_eq!(status, 200, "{turn_1}");
    let sent = &gw.sim.requests()[0].body;
    assert_eq!(
        sent["additionalModelRequestFields"]["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(turn_1["stop_reason"], "tool_use");
    let content = turn_1["content"].as_array().unwrap();
    assert_eq!(content[0]["type"], "thinking", "{turn_1}");
    let thinking = content[0]["thinking"].as_str().unwrap();
    assert_eq!(
        content[0]["signature"],
        bedrock_sim::reasoning_signature(thinking)
    );
    let call = content.last().unwrap();
    assert_eq!(call["type"], "tool_use");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["input"], json!({"city": "Paris"}));

    // Turn 2 gives the assistant content back as it came, with the tool's result.
    let second = json!({"model": "sim/sonnet", "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": weather_tools(), "messages": [
            question,
            {"role": "assistant", "content": turn_1["content"]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"],
                "content": [{"type": "text", "text": "18 C, sunny"}]}]}]});
    let (status, turn_2) = messages(&gw, &second).await;
    assert_eq!(status, 200, "{turn_2}");
    let sent = &gw.sim.requests()[1].body;
    assert_eq!(
        sent["messages"][1]["content"][0]["reasoningContent"]["reasoningText"],
        json!({"text": thinking, "signature": content[0]["signature"]}),
        "the thinking block leads the assistant turn, verbatim"
    );
    assert_eq!(turn_2["stop_reason"], "end_turn");
    let text = turn_2["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|block| block["type"] == "text")
        .unwrap();
    assert_eq!(text["text"], "get_weather returned: 18 C, sunny");

    // The first turn streamed: a thinking block closed by its signature, then the tool call.
    let events = stream(&gw, &first).await;
    let blocks: Vec<&str> = events
        .iter()
        .filter(|event| event["type"] == "content_block_start")
        .map(|event| event["content_block"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(blocks, ["thinking", "tool_use"]);
    let deltas: Vec<&str> = events
        .iter()
        .filter(|event| event["type"] == "content_block_delta")
        .map(|event| event["delta"]["type"].as_str().unwrap())
        .collect();
    assert!(deltas.contains(&"thinking_delta"), "{deltas:?}");
    assert!(deltas.contains(&"signature_delta"), "{deltas:?}");
    let arguments: String = events
        .iter()
        .filter(|event| event["delta"]["type"] == "input_json_delta")
        .map(|event| event["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"city": "Paris"})
    );
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn a_guardrail_intervention_is_guardrail_intervened_or_refusal_in_strict_style() {
    let gw = gateway(sim().default_script(Script::GuardrailBlockInput {
        message: "Sorry, I cannot help with that.".into(),
    }))
    .await;
    let body = json!({"model": "sim/claude-3", "max_tokens": 100,
        "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "1", "trace": "enabled"},
        "messages": [{"role": "user", "content": "something forbidden"}]});
    let (status, answer) = messages(&gw, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stop_reason"], "guardrail_intervened");
    assert_eq!(
        answer["content"][0]["text"],
        "Sorry, I cannot help with that."
    );
    assert!(
        answer["guardrail_trace"]["inputAssessment"].is_object(),
        "{answer}"
    );
    assert_eq!(
        gw.sim.requests()[0].body["guardrailConfig"]["guardrailIdentifier"],
        "gr-1"
    );

    let (status, strict) = messages_as(&gw, STRICT_KEY, &body).await;
    assert_eq!(status, 200, "{strict}");
    assert_eq!(strict["stop_reason"], "refusal");

    let mut streamed = body.clone();
    streamed["model"] = json!("sim/enforced");
    streamed.as_object_mut().unwrap().remove("guardrailConfig");
    let events = stream(&gw, &streamed).await;
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap();
    assert_eq!(
        delta["delta"]["stop_reason"], "guardrail_intervened",
        "the model's enforced guardrail, streamed"
    );
    let sent = gw.sim.requests().last().unwrap().body.clone();
    assert_eq!(
        sent["guardrailConfig"]["guardrailIdentifier"],
        "gr-enforced"
    );
}

#[tokio::test]
async fn errors_come_in_anthropics_shape_with_the_gateways_statuses() {
    let gw = gateway(sim()).await;
    let hi = json!({"model": "sim/claude-3", "max_tokens": 10,
        "messages": [{"role": "user", "content": "Hi"}]});

    let (status, body) = send(&gw, &[], &hi).await;
    assert_eq!(status, 401);
    assert_anthropic_error(&body, "authentication_error");
    let (status, body) = messages_as(&gw, "wrong-key", &hi).await;
    assert_eq!(status, 401);
    assert_anthropic_error(&body, "authentication_error");
    let bearer = format!("Bearer {STRICT_KEY}");
    let (status, body) = send(&gw, &[("x-api-key", KEY), ("authorization", &bearer)], &hi).await;
    assert_eq!(status, 401, "two different keys");
    assert_anthropic_error(&body, "authentication_error");

    let mut unknown = hi.clone();
    unknown["model"] = json!("sim/nope");
    let (status, body) = messages(&gw, &unknown).await;
    assert_eq!(status, 404);
    assert_anthropic_error(&body, "not_found_error");

    let mut no_max_tokens = hi.clone();
    no_max_tokens.as_object_mut().unwrap().remove("max_tokens");
    let (status, body) = messages(&gw, &no_max_tokens).await;
    assert_eq!(status, 400);
    assert_anthropic_error(&body, "invalid_request_error");
    assert_eq!(
        body["error"]["message"],
        "max_tokens: missing required field"
    );

    gw.sim.set_script(common::CLAUDE, Script::throttling());
    let (status, body) = messages(&gw, &hi).await;
    assert_eq!(status, 429);
    assert_anthropic_error(&body, "rate_limit_error");

    gw.sim.set_script(
        common::CLAUDE,
        Script::error(500, "InternalServerException", "boom"),
    );
    let (status, body) = messages(&gw, &hi).await;
    assert_eq!(status, 502);
    assert_anthropic_error(&body, "api_error");

    assert_eq!(
        gw.sim.requests().len(),
        2,
        "only the throttled and failed requests reached Bedrock"
    );
}

#[tokio::test]
async fn count_tokens_asks_bedrock_and_is_not_metered() {
    let gw = gateway(sim()).await;
    let body = json!({"model": "sim/sonnet", "system": "Be brief.",
        "tools": weather_tools(),
        "messages": [{"role": "user", "content": "one two three four"}]});
    let request = messages_request(&[("x-api-key", KEY)], &body);
    let (mut parts, full) = request.into_parts();
    parts.uri = gw.url("/v1/messages/count_tokens").parse().unwrap();
    let response = gw.send(http::Request::from_parts(parts, full)).await;
    assert_eq!(response.headers()["x-gateway-target"], "sim/sonnet");
    let (status, answer) = json_of(response).await;
    assert_eq!(status, 200, "{answer}");
    // The simulator counts words: "Be brief." (2), the four words, the tool (1 + the 5 words
    // of its description).
    assert_eq!(answer, json!({"input_tokens": 12}));
    let sent = gw.sim.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].operation, bedrock_sim::Operation::CountTokens);
    assert_eq!(sent[0].model_id, SONNET);
    let converse = &sent[0].body["input"]["converse"];
    assert_eq!(converse["system"], json!([{"text": "Be brief."}]));
    assert_eq!(
        converse["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );
    assert!(sent[0].body.get("inferenceConfig").is_none());

    let post = |path: &str, headers: &[(&str, &str)], body: &Value| {
        let (mut parts, full) = messages_request(headers, body).into_parts();
        parts.uri = gw.url(path).parse().unwrap();
        http::Request::from_parts(parts, full)
    };
    let (status, refused) =
        json_of(gw.send(post("/v1/messages/count_tokens", &[], &body)).await).await;
    assert_eq!(status, 401);
    assert_anthropic_error(&refused, "authentication_error");
    let mut unknown = body.clone();
    unknown["model"] = json!("sim/nope");
    let (status, refused) = json_of(
        gw.send(post(
            "/v1/messages/count_tokens",
            &[("x-api-key", KEY)],
            &unknown,
        ))
        .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_anthropic_error(&refused, "not_found_error");
    assert_eq!(gw.sim.requests().len(), 1, "refused before Bedrock");
}
