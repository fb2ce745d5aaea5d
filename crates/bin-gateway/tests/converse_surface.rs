//! The whole Converse surface end to end (issue 9): the real server, the real Bedrock adapter
//! and the simulator on loopback (verifying every SigV4 signature and Bedrock's own rules),
//! driven through the OpenAI JSON API, streaming and not. Each test starts one simulator and
//! checks both what the client gets and what reached Bedrock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use bedrock_sim::{Operation, Script};
use common::*;
use serde_json::{json, Value};

/// Claude Sonnet 4.5 through its US profile: thinks, caches, has native structured output.
const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
/// The same model by its bare id, which Bedrock serves only through inference profiles.
const SONNET_BARE: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";
/// Amazon Nova Pro: tools and caching, no native structured output, no reasoning.
const NOVA: &str = "amazon.nova-pro-v1:0";
/// An application inference profile: its ARN does not say which model stands behind it.
const APP_PROFILE: &str =
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6";

const CONFIG: &str = r#"
[auth]
keys = [
  { name = "tests", key = "test-gateway-key" },
  { name = "dropping", key = "test-dropping-key", drop_unsupported_params = true },
  { name = "never-dropping", key = "test-never-dropping-key", drop_unsupported_params = false },
]

[accounts.sim]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "${SIM_URL}"
auth = { type = "access-key", access_key_id = "AKIDTESTGATEWAY00001", secret_access_key = "${SIM_SECRET}" }

[accounts.sim.models.sonnet]
model_id = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

[accounts.sim.models.sonnet-bare]
model_id = "anthropic.claude-sonnet-4-5-20250929-v1:0"

[accounts.sim.models.sonnet-bare-streamed]
model_id = "anthropic.claude-sonnet-4-5-20250929-v1:0"

[accounts.sim.models.nova]
model_id = "amazon.nova-pro-v1:0"

[accounts.sim.models.claude-3-haiku]
model_id = "anthropic.claude-3-haiku-20240307-v1:0"

[accounts.sim.models.llama3]
model_id = "meta.llama3-70b-instruct-v1:0"

[accounts.sim.models.app-profile]
model_id = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"
family = "anthropic.claude"

[accounts.sim.models.app-profile-unnamed]
model_id = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"

[accounts.lenient]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "${SIM_URL}"
auth = { type = "access-key", access_key_id = "AKIDTESTGATEWAY00001", secret_access_key = "${SIM_SECRET}" }
drop_unsupported_params = true

[accounts.lenient.models.nova]
model_id = "amazon.nova-pro-v1:0"
"#;

const DROPPING_KEY: &str = "test-dropping-key";
const NEVER_DROPPING_KEY: &str = "test-never-dropping-key";

async fn start(sim: bedrock_sim::SimBuilder) -> TestGateway {
    TestGateway::start_with_config(sim, CONFIG, &[]).await
}

/// A streamed answer: asserts 200 and the closing `[DONE]`, returns the chunks.
async fn stream_chunks(gw: &TestGateway, body: &Value) -> Vec<Value> {
    let mut body = body.clone();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = gw.stream(&body).await;
    let status = response.status();
    let events = SseReader::new(response).rest().await;
    assert_eq!(status, 200, "{body}: {events:?}");
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    events[..events.len() - 1]
        .iter()
        .map(|event| serde_json::from_str(event).unwrap_or_else(|e| panic!("{e}: {event}")))
        .collect()
}

fn delta(chunk: &Value) -> &Value {
    &chunk["choices"][0]["delta"]
}

/// The concatenated `delta.<field>` strings of a stream.
fn streamed_text(chunks: &[Value], field: &str) -> String {
    chunks
        .iter()
        .filter_map(|chunk| delta(chunk)[field].as_str())
        .collect()
}

fn finish_reason(chunks: &[Value]) -> &Value {
    chunks
        .iter()
        .map(|chunk| &chunk["choices"][0]["finish_reason"])
        .find(|reason| reason.is_string())
        .expect("a finish chunk")
}

/// The usage of the last chunk (`choices: []`).
fn stream_usage(chunks: &[Value]) -> &Value {
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]), "{last}");
    &last["usage"]
}

fn assert_refused(status: http::StatusCode, body: &Value, code: &str, param: &str) {
    assert_eq!(status, 400, "{body}");
    assert_openai_error(body, code);
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert_eq!(body["error"]["param"], param, "{body}");
}

// ---------------------------------------------------------------------------------------------
// 1. Reasoning: a thinking tool loop over two turns.

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    }}])
}

fn thinking_sim() -> bedrock_sim::SimBuilder {
    sim().script(
        SONNET,
        Script::thinking_tool_loop("get_weather", json!({"city": "Paris"})),
    )
}

const QUESTION: &str = "What is the weather in Paris?";

fn first_turn(question: &str) -> Value {
    json!({
        "model": "sim/sonnet",
        "reasoning_effort": "low",
        "messages": user(question),
        "tools": weather_tools(),
    })
}

/// Turn 2: the assistant turn as the client got it (with `thinking_blocks`) and the result.
fn second_turn(question: &str, assistant: Value, tool_call_id: &str) -> Value {
    json!({
        "model": "sim/sonnet",
        "reasoning_effort": "low",
        "messages": [
            {"role": "user", "content": question},
            assistant,
            {"role": "tool", "tool_call_id": tool_call_id, "content": "18 degrees, sunny"},
        ],
        "tools": weather_tools(),
    })
}

#[tokio::test]
async fn a_thinking_tool_loop_keeps_its_signature_across_two_turns() {
    let gw = start(thinking_sim()).await;

    let (status, turn_1) = gw.chat(&first_turn(QUESTION)).await;
    assert_eq!(status, 200, "{turn_1}");
    let sent = &gw.sim.requests()[0].body;
    assert_eq!(
        sent["additionalModelRequestFields"]["thinking"],
        json!({"type": "enabled", "budget_tokens": 4096})
    );
    assert_eq!(sent["inferenceConfig"]["maxTokens"], 4096 + 4096);
    let choice = &turn_1["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{turn_1}");
    let message = &choice["message"];
    let reasoning = message["reasoning_content"].as_str().unwrap();
    assert!(!reasoning.is_empty(), "{turn_1}");
    let blocks = message["thinking_blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1, "{turn_1}");
    assert_eq!(blocks[0]["type"], "thinking");
    assert_eq!(blocks[0]["thinking"], reasoning);
    assert_eq!(
        blocks[0]["signature"],
        bedrock_sim::reasoning_signature(reasoning)
    );
    let call = &message["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Paris"}));
    let call_id = call["id"].as_str().unwrap();

    // Turn 2 gives the assistant message back as it came, thinking blocks included.
    let mut assistant = message.clone();
    assistant["role"] = json!("assistant");
    let (status, turn_2) = gw
        .chat(&second_turn(QUESTION, assistant.clone(), call_id))
        .await;
    assert_eq!(status, 200, "{turn_2}");
    let sent = &gw.sim.requests()[1].body;
    assert_eq!(
        sent["messages"][1]["content"][0]["reasoningContent"]["reasoningText"],
        json!({"text": reasoning, "signature": blocks[0]["signature"]}),
        "the reasoning block leads the assistant turn, verbatim"
    );
    let answer = &turn_2["choices"][0];
    assert_eq!(answer["finish_reason"], "stop", "{turn_2}");
    assert_eq!(
        answer["message"]["content"],
        "get_weather returned: 18 degrees, sunny"
    );
    assert!(answer["message"]["thinking_blocks"][0]["signature"].is_string());

    // Clients that mark the end of each message for caching send a blank text part with
    // `cache_control` beside the tool calls: the blank text is dropped, and so is its cache
    // point, which Bedrock refuses right after a reasoning block.
    let mut marked = assistant.clone();
    marked["content"] =
        json!([{"type": "text", "text": "", "cache_control": {"type": "ephemeral"}}]);
    let (status, body) = gw.chat(&second_turn(QUESTION, marked, call_id)).await;
    assert_eq!(status, 200, "{body}");
    let sent = gw.sim.requests().pop().unwrap().body;
    let kinds: Vec<&str> = sent["messages"][1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|block| block.as_object().unwrap().keys().next().unwrap().as_str())
        .collect();
    assert_eq!(kinds, ["reasoningContent", "toolUse"], "{sent}");

    // An altered signature is refused by Bedrock (the simulator verifies it), so the test
    // above would fail if the gateway lost or changed it.
    let mut altered = assistant.clone();
    altered["thinking_blocks"][0]["signature"] = json!("c2lnbmF0dXJlIG9mIHNvbWV0aGluZyBlbHNl");
    let (status, refused) = gw.chat(&second_turn(QUESTION, altered, call_id)).await;
    assert_eq!(status, 400, "{refused}");
    assert_openai_error(&refused, "upstream_validation_error");
    let text = refused["error"]["message"].as_str().unwrap();
    assert!(text.contains("Invalid `signature`"), "{refused}");

    // Without its thinking blocks the turn is refused too (Claude's tool-loop rule).
    let mut forgotten = assistant;
    forgotten.as_object_mut().unwrap().remove("thinking_blocks");
    let (status, refused) = gw.chat(&second_turn(QUESTION, forgotten, call_id)).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("must start with a thinking block"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_streamed_thinking_tool_loop_delivers_the_reasoning_blocks_before_the_tool_call() {
    let gw = start(thinking_sim()).await;
    // Anthropic's test string: the model adds a redacted reasoning block.
    let question = format!("{QUESTION} {}", bedrock_sim::REDACTED_THINKING_TRIGGER);

    let chunks = stream_chunks(&gw, &first_turn(&question)).await;
    let reasoning = streamed_text(&chunks, "reasoning_content");
    assert!(!reasoning.is_empty(), "{chunks:?}");
    let block_deltas: Vec<(usize, &Value)> = chunks
        .iter()
        .enumerate()
        .filter_map(|(at, chunk)| {
            let blocks = delta(chunk)["thinking_blocks"].as_array()?;
            assert_eq!(blocks.len(), 1, "one block per delta: {chunk}");
            Some((at, &blocks[0]))
        })
        .collect();
    let [(signature_at, signed), (redacted_at, redacted)] = block_deltas[..] else {
        panic!("a signature and a redacted block: {chunks:?}");
    };
    assert_eq!(signed["type"], "thinking");
    assert_eq!(signed["thinking"], "");
    let signature = signed["signature"].as_str().unwrap();
    assert_eq!(signature, bedrock_sim::reasoning_signature(&reasoning));
    assert_eq!(redacted["type"], "redacted_thinking");
    let data = redacted["data"].as_str().unwrap();
    let first_tool_delta = chunks
        .iter()
        .position(|chunk| delta(chunk)["tool_calls"].is_array())
        .expect("a tool call delta");
    let last_reasoning_delta = chunks
        .iter()
        .rposition(|chunk| delta(chunk)["reasoning_content"].is_string())
        .unwrap();
    assert!(
        last_reasoning_delta < signature_at
            && signature_at < redacted_at
            && redacted_at < first_tool_delta,
        "reasoning, its signature, the redacted block, then the tool call: {chunks:?}"
    );
    let call = &delta(&chunks[first_tool_delta])["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let call_id = call["id"].as_str().unwrap().to_owned();
    let arguments: String = chunks
        .iter()
        .filter_map(|chunk| delta(chunk)["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(finish_reason(&chunks), "tool_calls");
    assert_eq!(
        gw.sim.requests()[0].operation,
        Operation::ConverseStream,
        "streamed all the way"
    );

    // Turn 2, streamed too, rebuilt the way a client accumulates deltas.
    let assistant = json!({
        "role": "assistant",
        "content": null,
        "reasoning_content": reasoning,
        "thinking_blocks": [
            {"type": "thinking", "thinking": reasoning, "signature": signature},
            {"type": "redacted_thinking", "data": data},
        ],
        "tool_calls": [{"id": call_id, "type": "function",
                        "function": {"name": "get_weather", "arguments": arguments}}],
    });
    let chunks = stream_chunks(&gw, &second_turn(&question, assistant.clone(), &call_id)).await;
    assert_eq!(
        streamed_text(&chunks, "content"),
        "get_weather returned: 18 degrees, sunny"
    );
    assert_eq!(finish_reason(&chunks), "stop");
    let sent = &gw.sim.requests()[1].body["messages"][1]["content"];
    assert_eq!(
        sent[1],
        json!({"reasoningContent": {"redactedContent": data}})
    );

    // The same turn with the reasoning text edited (its signature no longer matches), or
    // with the redacted block altered: refused by Bedrock before the stream starts.
    let mut edited = assistant.clone();
    edited["thinking_blocks"][0]["thinking"] = json!("I changed my mind.");
    let mut tampered = assistant;
    tampered["thinking_blocks"][1]["data"] = json!(format!("{}AAAA", &data[..data.len() - 4]));
    for (assistant, complaint) in [
        (edited, "Invalid `signature`"),
        (tampered, "Invalid `data` in `redacted_thinking`"),
    ] {
        let mut turn = second_turn(&question, assistant, &call_id);
        turn["stream"] = json!(true);
        let (status, refused) = json_of(gw.stream(&turn).await).await;
        assert_eq!(status, 400, "{refused}");
        assert_openai_error(&refused, "upstream_validation_error");
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(message.contains(complaint), "{refused}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Prompt caching.

fn cached_request(system: &str) -> Value {
    json!({
        "model": "sim/sonnet",
        "messages": [
            {"role": "system", "content": [
                {"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "user", "content": "What is the weather in Paris?"},
        ],
        "tools": [{"type": "function", "cache_control": {"type": "ephemeral", "ttl": "1h"},
                   "function": {"name": "get_weather", "description": "The weather in a city",
                                "parameters": {"type": "object"}}}],
    })
}

const SYSTEM: &str = "You are a meteorologist. Answer with the temperature and the sky, \
    in one short sentence, and never speculate about tomorrow.";

fn cache_counts(usage: &Value) -> (u64, u64, u64, u64) {
    (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["cache_creation_input_tokens"].as_u64().unwrap(),
        usage["cache_read_input_tokens"].as_u64().unwrap(),
        usage["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap(),
    )
}

#[tokio::test]
async fn a_cached_prompt_is_written_then_read_and_every_token_is_counted() {
    let gw = start(sim()).await;

    let (status, first) = gw.chat(&cached_request(SYSTEM)).await;
    assert_eq!(status, 200, "{first}");
    let sent = &gw.sim.requests()[0].body;
    assert_eq!(
        sent["system"],
        json!([{"text": SYSTEM}, {"cachePoint": {"type": "default"}}])
    );
    assert_eq!(
        sent["toolConfig"]["tools"][1],
        json!({"cachePoint": {"type": "default", "ttl": "1h"}})
    );
    let (prompt, written, read, cached) = cache_counts(&first["usage"]);
    // The simulator counts words: the tool (1 + its description) and the system prompt are
    // written to the cache, the question after the last cache point is Bedrock's input.
    let words = |text: &str| text.split_whitespace().count() as u64;
    let cached_prefix = 1 + words("The weather in a city") + words(SYSTEM);
    let input = words("What is the weather in Paris?");
    assert_eq!(written, cached_prefix, "{first}");
    assert_eq!((read, cached), (0, 0), "{first}");
    assert_eq!(prompt, input + read + written, "{first}");

    let (status, second) = gw.chat(&cached_request(SYSTEM)).await;
    assert_eq!(status, 200, "{second}");
    let usage = &second["usage"];
    assert_eq!(
        cache_counts(usage),
        (prompt, 0, written, written),
        "the second call reads what the first wrote: {second}"
    );
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        prompt + usage["completion_tokens"].as_u64().unwrap()
    );

    // The same prompt without cache points: Bedrock counts it all as input, and the
    // gateway's prompt_tokens was that total all along (input + read + write).
    let mut uncached = cached_request(SYSTEM);
    uncached["messages"][0]["content"][0]
        .as_object_mut()
        .unwrap()
        .remove("cache_control");
    uncached["tools"][0]
        .as_object_mut()
        .unwrap()
        .remove("cache_control");
    let (status, plain) = gw.chat(&uncached).await;
    assert_eq!(status, 200, "{plain}");
    assert_eq!(plain["usage"]["prompt_tokens"], prompt, "{plain}");
    assert!(
        plain["usage"].get("cache_read_input_tokens").is_none(),
        "no cache counts when Bedrock reported none: {plain}"
    );

    // Streamed: the usage chunk reads the cache as well ...
    let chunks = stream_chunks(&gw, &cached_request(SYSTEM)).await;
    assert_eq!(
        cache_counts(stream_usage(&chunks)),
        (prompt, 0, written, written)
    );
    // ... and with another system prompt reads the tools' prefix and writes the rest.
    let chunks = stream_chunks(&gw, &cached_request("Answer in French.")).await;
    let usage = stream_usage(&chunks);
    let (prompt, written, read, cached) = cache_counts(usage);
    assert!(written > 0 && read > 0 && read == cached, "{usage}");
    assert!(prompt > written + read, "{usage}");
}

#[tokio::test]
async fn more_than_four_cache_markers_are_refused_before_bedrock() {
    let gw = start(sim()).await;
    let ephemeral = json!({"type": "ephemeral"});
    // Four markers, Bedrock's limit: two system parts, a tool and a whole user message.
    let mut request = cached_request(SYSTEM);
    request["messages"] = json!([
        {"role": "system", "content": [
            {"type": "text", "text": "one", "cache_control": ephemeral},
            {"type": "text", "text": "two", "cache_control": ephemeral},
        ]},
        {"role": "user", "content": [
            {"type": "text", "text": "three"},
            {"type": "text", "text": "four"},
        ], "cache_control": ephemeral},
    ]);
    let (status, body) = gw.chat(&request).await;
    assert_eq!(status, 200, "four cache points are fine: {body}");
    assert_eq!(
        gw.sim.requests()[0]
            .body
            .to_string()
            .matches("cachePoint")
            .count(),
        4
    );

    // A fifth, on a user part, is one too many, streaming or not.
    request["messages"][1]["content"][0]["cache_control"] = ephemeral;
    let (status, body) = gw.chat(&request).await;
    assert_refused(status, &body, "unsupported_value", "cache_control");
    request["stream"] = json!(true);
    let (status, body) = json_of(gw.stream(&request).await).await;
    assert_refused(status, &body, "unsupported_value", "cache_control");
    assert_eq!(
        gw.sim.requests().len(),
        1,
        "only the first call reached Bedrock"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Documents.

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

/// Standard base64 with padding, written out so the test does not trust the gateway's own
/// decoder with its expectations.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn document_request(bytes: &[u8]) -> Value {
    json!({
        "model": "sim/sonnet",
        "messages": [
            {"role": "system", "content": "Summarise documents."},
            {"role": "user", "content": [
                {"type": "text", "text": "What does the report say?"},
                {"type": "file", "file": {
                    "filename": "Q3 report (final).pdf",
                    "file_data": format!("data:application/pdf;base64,{}", base64(bytes)),
                }},
            ]},
        ],
    })
}

#[tokio::test]
async fn a_pdf_file_part_is_read_as_a_document_with_a_valid_name() {
    let gw = start(sim()).await;
    let expected = format!(
        "Read document Q3 report (final) (pdf, {} bytes).",
        PDF.len()
    );

    let (status, body) = gw.chat(&document_request(PDF)).await;
    assert_eq!(status, 200, "{body}");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.starts_with(&expected), "{content}");
    let sent = &gw.sim.requests()[0].body;
    assert_eq!(
        sent["messages"][0]["content"][1],
        json!({"document": {"format": "pdf", "name": "Q3 report (final)",
                            "source": {"bytes": base64(PDF)}}})
    );

    let chunks = stream_chunks(&gw, &document_request(PDF)).await;
    assert!(
        streamed_text(&chunks, "content").starts_with(&expected),
        "{chunks:?}"
    );

    // Bytes that are not a PDF never reach Bedrock.
    let before = gw.sim.requests().len();
    let not_pdf = document_request(b"PK\x03\x04 this is a zip archive, not a PDF");
    let (status, body) = gw.chat(&not_pdf).await;
    assert_refused(
        status,
        &body,
        "invalid_value",
        "messages[1].content[1].file.file_data",
    );
    let mut streamed = not_pdf;
    streamed["stream"] = json!(true);
    let (status, body) = json_of(gw.stream(&streamed).await).await;
    assert_refused(
        status,
        &body,
        "invalid_value",
        "messages[1].content[1].file.file_data",
    );
    assert_eq!(gw.sim.requests().len(), before);
}

// ---------------------------------------------------------------------------------------------
// 4. Structured output.

fn city_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "temperature": {"type": "number"},
            "sunny": {"type": "boolean"},
        },
        "required": ["city", "temperature", "sunny"],
        "additionalProperties": false,
    })
}

fn json_schema_request(model: &str) -> Value {
    json!({
        "model": model,
        "messages": user("The weather in Paris, as JSON."),
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "weather", "description": "A city's weather", "schema": city_schema(), "strict": true
        }},
    })
}

/// `content` is JSON that `city_schema` accepts.
fn assert_valid_weather(content: &str) {
    let value: Value =
        serde_json::from_str(content).unwrap_or_else(|e| panic!("{e}: not JSON: {content}"));
    let object = value.as_object().unwrap_or_else(|| panic!("{content}"));
    assert!(object["city"].is_string(), "{content}");
    assert!(object["temperature"].is_number(), "{content}");
    assert!(object["sunny"].is_boolean(), "{content}");
    assert_eq!(object.len(), 3, "no additional properties: {content}");
}

fn assert_forced_tool(sent: &Value, schema: &Value) {
    assert_eq!(
        sent["toolConfig"],
        json!({
            "tools": [{"toolSpec": {
                "name": "json_response",
                "description": sent["toolConfig"]["tools"][0]["toolSpec"]["description"],
                "inputSchema": {"json": schema},
            }}],
            "toolChoice": {"tool": {"name": "json_response"}},
        }),
        "{sent}"
    );
    assert!(sent.get("outputConfig").is_none(), "{sent}");
}

#[tokio::test]
async fn json_schema_uses_output_config_where_the_model_has_it() {
    let gw = start(sim()).await;
    let (status, body) = gw.chat(&json_schema_request("sim/sonnet")).await;
    assert_eq!(status, 200, "{body}");
    let sent = &gw.sim.requests()[0].body;
    let format = &sent["outputConfig"]["textFormat"];
    assert_eq!(format["type"], "json_schema", "{sent}");
    let json_schema = &format["structure"]["jsonSchema"];
    assert_eq!(json_schema["name"], "weather");
    assert_eq!(json_schema["description"], "A city's weather");
    let schema: Value = serde_json::from_str(json_schema["schema"].as_str().unwrap()).unwrap();
    assert_eq!(schema, city_schema(), "the schema travels as a JSON string");
    assert!(sent.get("toolConfig").is_none(), "{sent}");
    let choice = &body["choices"][0];
    assert_valid_weather(choice["message"]["content"].as_str().unwrap());
    assert_eq!(choice["finish_reason"], "stop");

    let chunks = stream_chunks(&gw, &json_schema_request("sim/sonnet")).await;
    assert_valid_weather(&streamed_text(&chunks, "content"));
}

#[tokio::test]
async fn json_schema_and_json_object_use_a_forced_tool_elsewhere_and_answer_as_content() {
    let gw = start(sim()).await;
    for model in ["sim/nova", "sim/claude-3-haiku"] {
        let (status, body) = gw.chat(&json_schema_request(model)).await;
        assert_eq!(status, 200, "{model}: {body}");
        let sent = gw.sim.requests().pop().unwrap().body;
        assert_forced_tool(&sent, &city_schema());
        let choice = &body["choices"][0];
        assert_valid_weather(choice["message"]["content"].as_str().unwrap());
        assert_eq!(choice["finish_reason"], "stop", "{model}: {body}");
        assert!(choice["message"].get("tool_calls").is_none(), "{body}");
    }

    // json_object: the same forced tool with an open schema, on every model.
    for model in ["sim/nova", "sim/sonnet"] {
        let request = json!({
            "model": model,
            "messages": user("Anything, as a JSON object."),
            "response_format": {"type": "json_object"},
        });
        let (status, body) = gw.chat(&request).await;
        assert_eq!(status, 200, "{model}: {body}");
        let sent = gw.sim.requests().pop().unwrap().body;
        assert_forced_tool(&sent, &json!({"type": "object"}));
        let choice = &body["choices"][0];
        let content: Value =
            serde_json::from_str(choice["message"]["content"].as_str().unwrap()).unwrap();
        assert!(content.is_object(), "{body}");
        assert_eq!(choice["finish_reason"], "stop");
        assert!(choice["message"].get("tool_calls").is_none(), "{body}");
    }

    // Streamed: content deltas, never a tool call.
    let chunks = stream_chunks(&gw, &json_schema_request("sim/nova")).await;
    assert_valid_weather(&streamed_text(&chunks, "content"));
    assert!(
        chunks
            .iter()
            .all(|chunk| delta(chunk).get("tool_calls").is_none()),
        "{chunks:?}"
    );
    assert_eq!(finish_reason(&chunks), "stop");
    let sent = gw.sim.requests().pop().unwrap();
    assert_eq!(sent.operation, Operation::ConverseStream);
    assert_forced_tool(&sent.body, &city_schema());

    // The forced tool cannot share a request with the client's own tools.
    let mut with_tools = json_schema_request("sim/nova");
    with_tools["tools"] = weather_tools();
    let before = gw.sim.requests().len();
    let (status, body) = gw.chat(&with_tools).await;
    assert_refused(status, &body, "unsupported_value", "response_format");
    assert_eq!(gw.sim.requests().len(), before);
}

// ---------------------------------------------------------------------------------------------
// 5. The on-demand retry through the geographic inference profile.

#[tokio::test]
async fn a_bare_id_refused_on_demand_is_retried_once_through_the_us_profile_and_remembered() {
    let gw = start(sim().profile_only(SONNET_BARE)).await;
    let ids = |gw: &TestGateway| -> Vec<(Operation, String)> {
        gw.sim
            .requests()
            .into_iter()
            .map(|r| (r.operation, r.model_id))
            .collect()
    };
    let request = json!({"model": "sim/sonnet-bare", "messages": user("hi")});

    let (status, body) = gw.chat(&request).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("hi"));
    assert_eq!(
        ids(&gw),
        [
            (Operation::Converse, SONNET_BARE.to_owned()),
            (Operation::Converse, SONNET.to_owned()),
        ]
    );

    // Later calls on the route go straight to the profile, streamed ones too.
    let (status, body) = gw.chat(&request).await;
    assert_eq!(status, 200, "{body}");
    stream_chunks(&gw, &request).await;
    assert_eq!(
        ids(&gw)[2..],
        [
            (Operation::Converse, SONNET.to_owned()),
            (Operation::ConverseStream, SONNET.to_owned()),
        ]
    );

    // A stream can be the first call of its route: retried the same way.
    let chunks = stream_chunks(
        &gw,
        &json!({"model": "sim/sonnet-bare-streamed", "messages": user("hi")}),
    )
    .await;
    assert!(streamed_text(&chunks, "content").contains("hi"));
    assert_eq!(
        ids(&gw)[4..],
        [
            (Operation::ConverseStream, SONNET_BARE.to_owned()),
            (Operation::ConverseStream, SONNET.to_owned()),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Strict parameters.

/// Each parameter Bedrock cannot honour, with a value that asks for it.
fn unsupported_parameters() -> Vec<(&'static str, Value)> {
    vec![
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(2)),
        ("logit_bias", json!({"50256": -100})),
        ("audio", json!({"voice": "alloy", "format": "wav"})),
        ("modalities", json!(["text", "audio"])),
        ("prediction", json!({"type": "content", "content": "hello"})),
        ("presence_penalty", json!(0.5)),
        ("frequency_penalty", json!(0.5)),
        ("seed", json!(42)),
    ]
}

fn with_field(name: &str, value: &Value) -> Value {
    let mut request = json!({"model": "sim/nova", "messages": user("hi")});
    request[name] = value.clone();
    request
}

#[tokio::test]
async fn unknown_and_unsupported_parameters_are_400_naming_them() {
    let gw = start(sim()).await;

    let (status, body) = gw
        .chat(&with_field(
            "guardrail_config",
            &json!({"guardrailIdentifier": "g", "guardrailVersion": "1"}),
        ))
        .await;
    assert_refused(status, &body, "unknown_parameter", "guardrail_config");
    assert_eq!(
        body["error"]["message"],
        "Unrecognized request argument supplied: guardrail_config"
    );

    for (name, value) in unsupported_parameters() {
        let request = with_field(name, &value);
        let (status, body) = gw.chat(&request).await;
        assert_refused(status, &body, "unsupported_parameter", name);
        // The key's drop_unsupported_params = false wins over nothing: still refused.
        let (status, body) = gw.chat_as(Some(NEVER_DROPPING_KEY), &request).await;
        assert_refused(status, &body, "unsupported_parameter", name);
    }
    let mut streamed = with_field("seed", &json!(7));
    streamed["stream"] = json!(true);
    let (status, body) = json_of(gw.stream(&streamed).await).await;
    assert_refused(status, &body, "unsupported_parameter", "seed");

    // Accepted and ignored: the values that ask for nothing Bedrock lacks.
    let mut harmless = json!({
        "model": "sim/nova", "messages": user("hi"), "n": 1, "logprobs": false,
        "modalities": ["text"], "user": "u-1", "store": false, "parallel_tool_calls": true,
        "metadata": {"team": "a"},
    });
    let (status, body) = gw.chat(&harmless).await;
    assert_eq!(status, 200, "{body}");
    harmless["stream_options"] = json!({"include_usage": true});
    let (status, body) = gw.chat(&harmless).await;
    assert_eq!(status, 200, "{body}");

    // reasoning_effort on a model that cannot reason.
    let (status, body) = gw
        .chat(&json!({"model": "sim/llama3", "messages": user("hi"), "reasoning_effort": "high"}))
        .await;
    assert_refused(status, &body, "unsupported_value", "reasoning_effort");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("meta.llama3-70b-instruct-v1:0"),
        "names the model: {body}"
    );

    let sent: Vec<_> = gw.sim.requests().into_iter().map(|r| r.model_id).collect();
    assert_eq!(sent, [NOVA, NOVA], "only the harmless calls went out");
}

fn dropped_count(metrics: &str, parameter: &str) -> u64 {
    let series = format!("gateway_dropped_parameters_total{{parameter=\"{parameter}\"}}");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn a_key_or_account_that_drops_unsupported_parameters_is_served_and_counted() {
    let gw = start(sim()).await;
    let request = json!({
        "model": "sim/nova", "messages": user("hi"), "seed": 42, "presence_penalty": 0.5,
    });

    let (status, body) = gw.chat_as(Some(DROPPING_KEY), &request).await;
    assert_eq!(status, 200, "{body}");
    let sent = &gw.sim.requests()[0].body;
    assert!(
        !sent.to_string().contains("seed") && !sent.to_string().contains("penalty"),
        "{sent}"
    );
    let (_, metrics) = gw.get("/metrics", None).await;
    assert_eq!(dropped_count(&metrics, "seed"), 1, "{metrics}");
    assert_eq!(dropped_count(&metrics, "presence_penalty"), 1, "{metrics}");

    // The account's setting, with a key that says nothing.
    let mut on_lenient = request.clone();
    on_lenient["model"] = json!("lenient/nova");
    let (status, body) = gw.chat(&on_lenient).await;
    assert_eq!(status, 200, "{body}");
    let chunks = stream_chunks(&gw, &on_lenient).await;
    assert!(!streamed_text(&chunks, "content").is_empty());
    let (_, metrics) = gw.get("/metrics", None).await;
    assert_eq!(dropped_count(&metrics, "seed"), 3, "{metrics}");

    // A key's own `false` wins over the account's `true`.
    let (status, body) = gw.chat_as(Some(NEVER_DROPPING_KEY), &on_lenient).await;
    assert_refused(status, &body, "unsupported_parameter", "presence_penalty");
    let (_, metrics) = gw.get("/metrics", None).await;
    assert_eq!(
        dropped_count(&metrics, "seed"),
        3,
        "a refused request drops nothing"
    );

    // Type errors are refused even where the parameter would be dropped.
    let (status, body) = gw
        .chat_as(
            Some(DROPPING_KEY),
            &json!({"model": "sim/nova", "messages": user("hi"), "seed": "forty-two"}),
        )
        .await;
    assert_refused(status, &body, "invalid_type", "seed");
}

// ---------------------------------------------------------------------------------------------
// 7. Request options, guarded text and application inference profiles.

fn options_request() -> Value {
    json!({
        "model": "sim/sonnet",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Translate this:"},
            {"type": "guarded_text", "text": "Bonjour"},
        ]}],
        "service_tier": "priority",
        "performanceConfig": {"latency": "optimized"},
        "requestMetadata": {"team": "search", "ticket": "AB-12"},
        "additionalModelResponseFieldPaths": ["/stop_sequence"],
    })
}

#[tokio::test]
async fn request_options_reach_bedrock_and_response_fields_come_back() {
    let gw = start(sim()).await;

    let (status, body) = gw.chat(&options_request()).await;
    assert_eq!(status, 200, "{body}");
    let sent = &gw.sim.requests()[0].body;
    assert_eq!(sent["serviceTier"], json!({"type": "priority"}));
    assert_eq!(sent["performanceConfig"], json!({"latency": "optimized"}));
    assert_eq!(
        sent["requestMetadata"],
        json!({"team": "search", "ticket": "AB-12"})
    );
    assert_eq!(
        sent["additionalModelResponseFieldPaths"],
        json!(["/stop_sequence"])
    );
    assert_eq!(
        sent["messages"][0]["content"],
        json!([{"text": "Translate this:"}, {"guardContent": {"text": {"text": "Bonjour"}}}])
    );
    let message = &body["choices"][0]["message"];
    assert_eq!(
        message["additional_model_response_fields"],
        json!({"stop_sequence": null}),
        "{body}"
    );
    assert!(message["content"].as_str().unwrap().contains("Bonjour"));

    // OpenAI's `metadata` and `service_tier: auto` (Bedrock's default: nothing sent); streamed.
    let mut streamed = options_request();
    streamed.as_object_mut().unwrap().remove("requestMetadata");
    streamed["metadata"] = json!({"team": "search"});
    streamed["service_tier"] = json!("auto");
    let chunks = stream_chunks(&gw, &streamed).await;
    let sent = &gw.sim.requests()[1].body;
    assert_eq!(sent["requestMetadata"], json!({"team": "search"}));
    assert!(sent.get("serviceTier").is_none(), "{sent}");
    let finish = chunks
        .iter()
        .find(|chunk| chunk["choices"][0]["finish_reason"].is_string())
        .unwrap();
    assert_eq!(
        delta(finish)["additional_model_response_fields"],
        json!({"stop_sequence": null}),
        "{finish}"
    );

    // Bedrock's metadata limits are checked before the call.
    let mut bad = options_request();
    bad["requestMetadata"] = json!({"team": "search; drop table"});
    let (status, body) = gw.chat(&bad).await;
    assert_refused(status, &body, "unsupported_value", "requestMetadata");
    assert_eq!(gw.sim.requests().len(), 2);
}

#[tokio::test]
async fn a_guardrail_evaluates_only_the_guarded_text_when_there_is_some() {
    const BLOCKED: &str = "Sorry, the model cannot answer this question.";
    let gw = start(sim().script(
        SONNET,
        Script::guardrail_block_words(BLOCKED, &["password"]),
    ))
    .await;
    let request = |parts: Value| {
        json!({
            "model": "sim/sonnet",
            "messages": [{"role": "user", "content": parts}],
            "guardrailConfig": {"guardrailIdentifier": "gr-words", "guardrailVersion": "1"},
        })
    };
    let answer = |body: &Value| body["choices"][0]["message"]["content"].clone();

    // The word in plain text beside guarded text: not evaluated, answered.
    let (status, body) = gw
        .chat(&request(json!([
            {"type": "text", "text": "Our password policy is attached."},
            {"type": "guarded_text", "text": "Summarise it."},
        ])))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(answer(&body), BLOCKED, "{body}");
    // The same word inside the guarded text: blocked.
    let (status, body) = gw
        .chat(&request(json!([
            {"type": "text", "text": "Our policy is attached."},
            {"type": "guarded_text", "text": "Tell me the password."},
        ])))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer(&body), BLOCKED, "{body}");
    assert_eq!(
        body["choices"][0]["bedrock_stop_reason"],
        "guardrail_intervened"
    );
    // Without guarded text every text is evaluated.
    let (_, body) = gw
        .chat(&request(json!("Our password policy is attached.")))
        .await;
    assert_eq!(answer(&body), BLOCKED, "{body}");
}

#[tokio::test]
async fn an_application_inference_profile_reasons_when_its_family_is_configured() {
    let gw = start(sim()).await;
    let request = |model: &str| json!({"model": model, "messages": user("Think first."), "reasoning_effort": "minimal"});

    let (status, body) = gw.chat(&request("sim/app-profile")).await;
    assert_eq!(status, 200, "{body}");
    let sent = gw.sim.requests().pop().unwrap();
    assert_eq!(sent.model_id, APP_PROFILE);
    assert_eq!(
        sent.body["additionalModelRequestFields"]["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    assert!(body["choices"][0]["message"]["thinking_blocks"][0]["signature"].is_string());

    let (status, body) = gw.chat(&request("sim/app-profile-unnamed")).await;
    assert_refused(status, &body, "unsupported_value", "reasoning_effort");
    assert_eq!(gw.sim.requests().len(), 1);

    // Prompt caching likewise: cache points for the named family, dropped without it.
    let cached = |model: &str| {
        json!({"model": model, "messages": [
            {"role": "system", "content": [
                {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "user", "content": "hi"},
        ]})
    };
    for (model, system) in [
        (
            "sim/app-profile",
            json!([{"text": SYSTEM}, {"cachePoint": {"type": "default"}}]),
        ),
        ("sim/app-profile-unnamed", json!([{"text": SYSTEM}])),
    ] {
        let (status, body) = gw.chat(&cached(model)).await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(
            gw.sim.requests().pop().unwrap().body["system"],
            system,
            "{model}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Tool hygiene.

#[tokio::test]
async fn tool_history_without_tools_blank_parts_and_parallel_results_make_a_valid_call() {
    let gw = start(sim()).await;
    let request = json!({
        "model": "sim/nova",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "   "},
                {"type": "text", "text": "Weather in Paris and Rome?"},
            ]},
            {"role": "assistant", "content": [{"type": "text", "text": " \n"}], "tool_calls": [
                {"id": "call_paris", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_rome", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_paris", "content": "18 degrees"},
            {"role": "tool", "tool_call_id": "call_rome", "content": "[\"24 degrees\"]"},
            {"role": "user", "content": "Thanks. Which is warmer?"},
        ],
        "tool_choice": "auto",
    });

    let (status, body) = gw.chat(&request).await;
    assert_eq!(status, 200, "the simulator accepted it: {body}");
    let sent = &gw.sim.requests()[0].body;
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(
        messages[0]["content"],
        json!([{"text": "Weather in Paris and Rome?"}]),
        "blank text dropped"
    );
    assert_eq!(
        messages[1]["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["toolUse"]["toolUseId"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["call_paris", "call_rome"],
        "the blank text before the calls dropped: {sent}"
    );
    assert_eq!(
        messages.len(),
        3,
        "parallel results and the question: one user turn"
    );
    assert_eq!(messages[2]["role"], "user");
    assert_eq!(
        messages[2]["content"],
        json!([
            {"toolResult": {"toolUseId": "call_paris", "content": [{"text": "18 degrees"}]}},
            {"toolResult": {"toolUseId": "call_rome", "content": [{"text": "[\"24 degrees\"]"}]}},
            {"text": "Thanks. Which is warmer?"},
        ])
    );
    let tool_config = &sent["toolConfig"];
    assert!(
        tool_config["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "a valid toolConfig for the history: {sent}"
    );
    assert!(
        tool_config.get("toolChoice").is_none(),
        "tool_choice without tools not sent: {sent}"
    );

    // Streamed alike.
    let chunks = stream_chunks(&gw, &request).await;
    assert!(streamed_text(&chunks, "content").contains("Which is warmer?"));
    assert_eq!(gw.sim.requests()[1].body["toolConfig"], *tool_config);

    // A blank last message after the tool results is left out like any other blank message:
    // the tool results still end the conversation with the user's turn ...
    let mut blank_last = request.clone();
    blank_last["messages"][4]["content"] = json!(" ");
    let (status, body) = gw.chat(&blank_last).await;
    assert_eq!(status, 200, "{body}");
    let sent = gw.sim.requests().pop().unwrap().body;
    assert_eq!(sent["messages"].as_array().unwrap().len(), 3, "{sent}");
    // ... but after the assistant's answer it cannot be: the conversation would end with
    // the assistant's turn, which the model would continue instead of answering.
    let before = gw.sim.requests().len();
    let blank_question = json!({"model": "sim/nova", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Sunny."},
        {"role": "user", "content": [{"type": "text", "text": "\n"}]},
    ]});
    let (status, body) = gw.chat(&blank_question).await;
    assert_refused(status, &body, "invalid_value", "messages[3].role");
    assert_eq!(gw.sim.requests().len(), before);

    // tool_choice without tools and without tool history: no toolConfig at all.
    let (status, body) = gw
        .chat(
            &json!({"model": "sim/nova", "messages": user("hi"), "tool_choice": "auto",
                      "parallel_tool_calls": false}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sent = gw.sim.requests().pop().unwrap().body;
    assert!(sent.get("toolConfig").is_none(), "{sent}");
}

#[tokio::test]
async fn the_request_id_reaches_bedrock_when_the_operator_enables_it() {
    let config = format!("[server]\nrequest_id_to_bedrock = true\n{CONFIG}");
    let gw = TestGateway::start_with_config(sim(), &config, &[]).await;
    let mut request = gw.chat_request(Some(KEY), &options_request());
    request
        .headers_mut()
        .insert("x-request-id", http::HeaderValue::from_static("rid-e2e-1"));
    let response = gw.send(request).await;
    assert_eq!(response.headers()["x-request-id"], "rid-e2e-1");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        gw.sim.requests()[0].body["requestMetadata"],
        json!({"team": "search", "ticket": "AB-12", "gateway_request_id": "rid-e2e-1"})
    );
}
