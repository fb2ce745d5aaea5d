//! OpenAI's Responses API (`POST /v1/responses`) end to end: the real server, the real
//! Bedrock adapter and the simulator on loopback, which verifies every SigV4 signature.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use bedrock_sim::{stream, Script, StreamStep};
use bytes::Bytes;
use common::*;
use http_body_util::Full;
use serde_json::{json, Value};

const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/// The base configuration plus a reasoning model and one with an enforced guardrail.
const MODELS: &str = r#"
[accounts.sim.models.sonnet]
model_id = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

[accounts.sim.models.enforced]
model_id = "anthropic.claude-3-sonnet-20240229-v1:0"
guardrail = { identifier = "gr-enforced", version = "2", trace = "enabled", mode = "enforced" }
"#;

async fn start(sim: bedrock_sim::SimBuilder) -> TestGateway {
    TestGateway::start_with_config(sim, &format!("{BASE_CONFIG}{MODELS}"), &[]).await
}

fn responses_request(
    gw: &TestGateway,
    path: &str,
    key: Option<&str>,
    body: &Value,
) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::post(gw.url(path)).header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    builder
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
        .unwrap()
}

/// POST /v1/responses and read the whole JSON answer.
async fn create(gw: &TestGateway, body: &Value) -> (http::StatusCode, Value) {
    json_of(
        gw.send(responses_request(gw, "/v1/responses", Some(KEY), body))
            .await,
    )
    .await
}

/// POST /v1/responses with `stream: true`: every event's data, parsed, after checking each
/// is numbered in order.
async fn create_streamed(gw: &TestGateway, body: &Value) -> Vec<Value> {
    let mut body = body.clone();
    body["stream"] = json!(true);
    let response = gw
        .send(responses_request(gw, "/v1/responses", Some(KEY), &body))
        .await;
    let status = response.status();
    let events = SseReader::new(response).rest().await;
    assert_eq!(status, 200, "{body}: {events:?}");
    let events: Vec<Value> = events
        .iter()
        .map(|event| serde_json::from_str(event).unwrap_or_else(|e| panic!("{e}: {event}")))
        .collect();
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event["sequence_number"], n as u64, "{events:?}");
    }
    events
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// The concatenated `delta`s of the events of type `kind`.
fn deltas(events: &[Value], kind: &str) -> String {
    events
        .iter()
        .filter(|e| e["type"] == kind)
        .map(|e| e["delta"].as_str().unwrap())
        .collect()
}

/// The text of the response's message items (what the SDKs call `output_text`).
fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().unwrap())
        .filter(|part| part["type"] == "output_text")
        .map(|part| part["text"].as_str().unwrap())
        .collect()
}

fn weather_tools() -> Value {
    json!([{
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }])
}

#[tokio::test]
async fn answers_a_plain_request_with_a_response_object() {
    let gw = start(sim()).await;
    let (status, body) = create(
        &gw,
        &json!({
            "model": "sim/claude-3",
            "instructions": "Be brief.",
            "input": "Hello there",
            "max_output_tokens": 100,
            "temperature": 0.5,
            "store": false,
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "response");
    assert!(body["id"].as_str().unwrap().starts_with("resp_"), "{body}");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], "sim/claude-3");
    assert!(body["created_at"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(body["incomplete_details"], Value::Null);
    let message = &body["output"][0];
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert!(output_text(&body).contains("Hello there"), "{body}");
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );

    let sent = &gw.sim.requests()[0];
    assert_eq!(sent.model_id, CLAUDE);
    assert_eq!(sent.body["system"], json!([{"text": "Be brief."}]));
    assert_eq!(sent.body["inferenceConfig"]["maxTokens"], 100);

    // The path without `/v1` is the same door.
    let response = gw
        .send(responses_request(
            &gw,
            "/responses",
            Some(KEY),
            &json!({"model": "sim/claude-3", "input": "hi"}),
        ))
        .await;
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "response");
}

#[tokio::test]
async fn a_streamed_answer_has_the_responses_event_sequence() {
    let gw = start(sim()).await;
    let events = create_streamed(
        &gw,
        &json!({"model": "sim/claude-3", "input": "Hello there, stream me"}),
    )
    .await;
    let names = types(&events);
    assert_eq!(
        names[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ],
        "{names:?}"
    );
    assert!(names.contains(&"response.output_text.delta"), "{names:?}");
    assert_eq!(
        names[names.len() - 4..],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ],
        "{names:?}"
    );
    let text = deltas(&events, "response.output_text.delta");
    assert!(text.contains("Hello there"), "{text}");
    let last = &events.last().unwrap()["response"];
    assert_eq!(last["status"], "completed");
    assert_eq!(output_text(last), text);
    assert!(
        last["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "{last}"
    );
    assert_eq!(events[0]["response"]["id"], last["id"]);
}

#[tokio::test]
async fn function_tools_round_trip_through_output_items() {
    let gw = start(sim().script(
        CLAUDE,
        Script::thinking_tool_loop("get_weather", json!({"city": "Paris"})),
    ))
    .await;
    let question = json!({"role": "user", "content": "What is the weather in Paris?"});
    let (status, turn_1) = create(
        &gw,
        &json!({"model": "sim/claude-3", "input": [question], "tools": weather_tools(), "tool_choice": "auto"}),
    )
    .await;
    assert_eq!(status, 200, "{turn_1}");
    let sent = &gw.sim.requests()[0].body;
    assert_eq!(
        sent["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );
    let call = turn_1["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["type"] == "function_call")
        .unwrap_or_else(|| panic!("a function call: {turn_1}"))
        .clone();
    assert_eq!(call["name"], "get_weather");
    let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Paris"}));

    // Turn 2: the output items as they came, and the function's output.
    let mut input = vec![question];
    input.extend(turn_1["output"].as_array().unwrap().iter().cloned());
    input.push(json!({"type": "function_call_output", "call_id": call["call_id"], "output": "18 degrees, sunny"}));
    let (status, turn_2) = create(
        &gw,
        &json!({"model": "sim/claude-3", "input": input, "tools": weather_tools()}),
    )
    .await;
    assert_eq!(status, 200, "{turn_2}");
    assert_eq!(turn_2["status"], "completed");
    assert!(
        output_text(&turn_2).contains("18 degrees, sunny"),
        "{turn_2}"
    );
    let sent = &gw.sim.requests()[1].body;
    assert_eq!(
        sent["messages"][2]["content"][0]["toolResult"]["toolUseId"],
        call["call_id"]
    );

    // Streamed, the call comes as argument deltas and the last event holds it.
    let events = create_streamed(
        &gw,
        &json!({"model": "sim/claude-3", "input": "What is the weather in Paris?", "tools": weather_tools()}),
    )
    .await;
    let arguments = deltas(&events, "response.function_call_arguments.delta");
    let arguments: Value = serde_json::from_str(&arguments).unwrap();
    assert_eq!(arguments, json!({"city": "Paris"}));
    let done = events
        .iter()
        .find(|e| e["type"] == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(done["name"], "get_weather");
    let last = &events.last().unwrap()["response"];
    assert_eq!(last["status"], "completed");
    assert!(
        last["output"]
            .as_array()
            .unwrap()
            .iter()
            .any(|item| item["type"] == "function_call"),
        "{last}"
    );
}

#[tokio::test]
async fn reasoning_comes_back_as_reasoning_items_that_can_be_given_back() {
    let gw = start(sim().script(
        SONNET,
        Script::thinking_tool_loop("get_weather", json!({"city": "Paris"})),
    ))
    .await;
    let question = json!({"role": "user", "content": "What is the weather in Paris?"});
    let request = |input: Value| json!({"model": "sim/sonnet", "input": input, "tools": weather_tools(), "reasoning": {"effort": "low", "summary": "auto"}});
    let (status, turn_1) = create(&gw, &request(json!([question]))).await;
    assert_eq!(status, 200, "{turn_1}");
    let sent = &gw.sim.requests()[0].body;
    assert_eq!(
        sent["additionalModelRequestFields"]["thinking"],
        json!({"type": "enabled", "budget_tokens": 4096})
    );
    let output = turn_1["output"].as_array().unwrap();
    let reasoning = &output[0];
    assert_eq!(reasoning["type"], "reasoning", "{turn_1}");
    let text = reasoning["summary"][0]["text"].as_str().unwrap();
    assert_eq!(
        reasoning["encrypted_content"],
        bedrock_sim::reasoning_signature(text)
    );
    let call = output
        .iter()
        .find(|item| item["type"] == "function_call")
        .unwrap();

    // The sim refuses the second turn unless the signed reasoning comes back intact.
    let mut input = vec![question];
    input.extend(output.iter().cloned());
    input.push(
        json!({"type": "function_call_output", "call_id": call["call_id"], "output": "18 degrees"}),
    );
    let (status, turn_2) = create(&gw, &request(Value::Array(input))).await;
    assert_eq!(status, 200, "{turn_2}");
    let sent = &gw.sim.requests()[1].body;
    assert_eq!(
        sent["messages"][1]["content"][0]["reasoningContent"]["reasoningText"]["signature"],
        reasoning["encrypted_content"]
    );

    // Streamed, the reasoning is summary text deltas before the call.
    let events = create_streamed(&gw, &request(json!("What is the weather in Paris?"))).await;
    let streamed = deltas(&events, "response.reasoning_summary_text.delta");
    assert!(!streamed.is_empty(), "{events:?}");
    let names = types(&events);
    let summary_at = names
        .iter()
        .position(|n| *n == "response.reasoning_summary_text.delta");
    let call_at = names
        .iter()
        .position(|n| *n == "response.function_call_arguments.delta");
    assert!(summary_at < call_at, "{names:?}");
    let last = &events.last().unwrap()["response"];
    assert_eq!(
        last["output"][0]["encrypted_content"],
        bedrock_sim::reasoning_signature(&streamed)
    );
}

#[tokio::test]
async fn text_format_json_schema_reaches_bedrock_and_answers_json() {
    let gw = start(sim()).await;
    let schema = json!({
        "type": "object",
        "properties": {"city": {"type": "string"}, "temperature": {"type": "number"}},
        "required": ["city", "temperature"],
        "additionalProperties": false,
    });
    let (status, body) = create(
        &gw,
        &json!({
            "model": "sim/sonnet",
            "input": "The weather in Paris, as JSON.",
            "text": {"format": {"type": "json_schema", "name": "weather", "schema": schema, "strict": true}},
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sent = &gw.sim.requests()[0].body;
    let format = &sent["outputConfig"]["textFormat"];
    assert_eq!(format["type"], "json_schema", "{sent}");
    assert_eq!(format["structure"]["jsonSchema"]["name"], "weather");
    let answer: Value =
        serde_json::from_str(&output_text(&body)).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(
        answer["city"].is_string() && answer["temperature"].is_number(),
        "{answer}"
    );
}

#[tokio::test]
async fn a_guardrail_intervention_is_an_incomplete_response_with_its_trace() {
    let gw = start(sim().default_script(Script::GuardrailMask)).await;
    let request = json!({"model": "sim/enforced", "input": "Mail Jane Doe at jane@example.com"});
    let (status, body) = create(&gw, &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        gw.sim.requests()[0].body["guardrailConfig"],
        json!({"guardrailIdentifier": "gr-enforced", "guardrailVersion": "2", "trace": "enabled"})
    );
    assert_eq!(body["status"], "incomplete");
    assert_eq!(body["incomplete_details"]["reason"], "content_filter");
    assert_eq!(body["guardrail_intervened"], true);
    assert!(
        body["guardrail_trace"]["outputAssessments"]["gr-enforced"].is_array(),
        "{body}"
    );
    let text = output_text(&body);
    assert!(
        text.contains("{EMAIL}") && !text.contains("jane@example.com"),
        "{text}"
    );

    let events = create_streamed(&gw, &request).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.incomplete", "{events:?}");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "content_filter"
    );
    assert_eq!(last["response"]["guardrail_intervened"], true);
}

#[tokio::test]
async fn the_token_limit_is_an_incomplete_response() {
    let gw = start(sim().script(
        CLAUDE,
        Script::Reply(bedrock_sim::Reply::text("cut short").stop_reason("max_tokens")),
    ))
    .await;
    let (status, body) = create(
        &gw,
        &json!({"model": "sim/claude-3", "input": "hi", "max_output_tokens": 2}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "incomplete");
    assert_eq!(body["incomplete_details"]["reason"], "max_output_tokens");
}

#[tokio::test]
async fn stateful_requests_are_refused_before_bedrock() {
    let gw = start(sim()).await;
    for (field, value) in [
        ("previous_response_id", json!("resp_123")),
        ("store", json!(true)),
        ("conversation", json!("conv_1")),
    ] {
        let mut request = json!({"model": "sim/claude-3", "input": "hi"});
        request[field] = value;
        let (status, body) = create(&gw, &request).await;
        assert_eq!(status, 400, "{field}: {body}");
        assert_openai_error(&body, "unsupported_value");
        assert_eq!(body["error"]["param"], field);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("stateless"),
            "{body}"
        );
    }
    assert!(gw.sim.requests().is_empty(), "nothing reached Bedrock");
}

#[tokio::test]
async fn errors_are_openai_errors_with_the_chat_paths_statuses() {
    let gw = start(sim()).await;
    // No key: 401 before the body is read.
    let response = gw
        .send(responses_request(
            &gw,
            "/v1/responses",
            None,
            &json!({"model": "sim/claude-3", "input": "hi"}),
        ))
        .await;
    let (status, body) = json_of(response).await;
    assert_eq!(status, 401, "{body}");
    assert_openai_error(&body, "invalid_api_key");

    let (status, body) = create(&gw, &json!({"model": "sim/nope", "input": "hi"})).await;
    assert_eq!(status, 404, "{body}");
    assert_openai_error(&body, "model_not_found");

    let (status, body) = create(
        &gw,
        &json!({"model": "sim/claude-3", "input": "hi", "messages": []}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_openai_error(&body, "unknown_parameter");
    assert_eq!(body["error"]["param"], "messages");

    let (status, body) = create(
        &gw,
        &json!({"model": "sim/claude-3", "input": "hi", "top_logprobs": 2}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_openai_error(&body, "unsupported_parameter");
    assert_eq!(body["error"]["param"], "top_logprobs");

    // The provider's turn rule, reported at the client's input index.
    let (status, body) = create(
        &gw,
        &json!({"model": "sim/claude-3", "input": [
            {"role": "developer", "content": "rules"},
            {"role": "assistant", "content": "I start"},
            {"role": "user", "content": "hi"},
        ]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "input[1].role", "{body}");

    let (status, _) = gw.get("/v1/responses", Some(KEY)).await;
    assert_eq!(status, 405);

    gw.sim.set_script(CLAUDE, Script::throttling());
    let (status, body) = create(&gw, &json!({"model": "sim/claude-3", "input": "hi"})).await;
    assert_eq!(status, 429, "{body}");
    assert_openai_error(&body, "rate_limit_exceeded");

    // A failure mid-stream ends it with `response.failed`.
    let mut steps = stream::text(&["partial"], "end_turn", (1, 1));
    steps.truncate(2);
    steps.push(StreamStep::exception(
        "modelStreamErrorException",
        "model broke",
    ));
    gw.sim.set_script(CLAUDE, Script::Stream(steps));
    let events = create_streamed(&gw, &json!({"model": "sim/claude-3", "input": "hi"})).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed", "{events:?}");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(last["response"]["error"]["code"], "model_error");
    assert!(
        !types(&events).contains(&"response.completed"),
        "{events:?}"
    );

    let (_, metrics) = gw.get("/metrics", None).await;
    assert!(
        metrics.contains("endpoint=\"responses\""),
        "requests are counted under their own endpoint"
    );
}
