//! Reasoning: signed reasoning blocks (Converse and stream deltas), redacted reasoning, the
//! thinking tool loop over two turns, and every refusal of reasoning history and of Claude's
//! thinking limits.

#![allow(
    clippy::unwrap_used,
    reason = "integration tests and their helper functions fail by panicking"
)]

mod common;

use bedrock_sim::{
    reasoning_signature, redacted_reasoning_data, Reply, Script, REDACTED_THINKING_TRIGGER,
};
use common::*;
use serde_json::{json, Value};

fn thinking(mut body: Value) -> Value {
    body["additionalModelRequestFields"] =
        json!({ "thinking": { "type": "enabled", "budget_tokens": 2048 } });
    body
}

fn weather_tools() -> Value {
    json!({ "tools": [ { "toolSpec": {
        "name": "get_weather",
        "description": "Weather of a city",
        "inputSchema": { "json": { "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] } },
    } } ] })
}

#[tokio::test]
async fn thinking_answers_start_with_a_signed_reasoning_block() {
    let sim = sim_with(Script::Echo).await;
    let value = answer(&sim, &thinking(converse_body("hello there"))).await;
    let content = value["output"]["message"]["content"].as_array().unwrap();
    assert_eq!(content.len(), 2);
    let reasoning = &content[0]["reasoningContent"]["reasoningText"];
    let text = reasoning["text"].as_str().unwrap();
    assert_eq!(text, "The user wrote 2 words; I will answer in 4 words.");
    assert_eq!(reasoning["signature"], reasoning_signature(text));
    assert_eq!(content[1], json!({ "text": "You said: hello there" }));
    // Output tokens count the reasoning too.
    assert_eq!(value["usage"]["outputTokens"], 11 + 4);

    // Without a reasoning setting there is no reasoning block.
    let plain = answer(&sim, &converse_body("hello there")).await;
    assert_eq!(
        plain["output"]["message"]["content"],
        json!([{ "text": "You said: hello there" }])
    );
}

#[tokio::test]
async fn nova_gpt_oss_and_deepseek_r1_reason_too() {
    let sim = sim_with(Script::Echo).await;
    let mut nova = converse_body("hi");
    nova["additionalModelRequestFields"] =
        json!({ "reasoningConfig": { "type": "enabled", "maxReasoningEffort": "low" } });
    let mut gpt_oss = converse_body("hi");
    gpt_oss["additionalModelRequestFields"] = json!({ "reasoning_effort": "high" });
    for body in [nova, gpt_oss] {
        let value = answer(&sim, &body).await;
        assert!(
            value["output"]["message"]["content"][0]["reasoningContent"].is_object(),
            "{value}"
        );
    }
    // DeepSeek R1 always reasons, also through a profile.
    let (status, _, value) = converse_on(&sim, "us.deepseek.r1-v1:0", &converse_body("hi")).await;
    assert_eq!(status, 200);
    assert!(value["output"]["message"]["content"][0]["reasoningContent"].is_object());
}

#[tokio::test]
async fn reasoning_streams_as_text_deltas_then_a_signature_before_the_answer() {
    let sim = sim_with(Script::Echo).await;
    let events = stream_events(&sim, CLAUDE, &thinking(converse_body("hello there"))).await;
    let reasoning: Vec<&Value> = events
        .iter()
        .filter(|(k, p)| k == "contentBlockDelta" && p["contentBlockIndex"] == 0)
        .map(|(_, p)| &p["delta"]["reasoningContent"])
        .collect();
    let (signature, pieces) = reasoning.split_last().unwrap();
    assert!(pieces.len() > 1, "reasoning is streamed in pieces");
    let text: String = pieces.iter().map(|d| d["text"].as_str().unwrap()).collect();
    assert_eq!(text, "The user wrote 2 words; I will answer in 4 words.");
    assert_eq!(signature["signature"], reasoning_signature(&text));
    // Block 0 (reasoning) stops before block 1 (text) starts; no contentBlockStart for either.
    let stop_0 = events
        .iter()
        .position(|(k, p)| k == "contentBlockStop" && p["contentBlockIndex"] == 0)
        .unwrap();
    let first_text = events
        .iter()
        .position(|(k, p)| k == "contentBlockDelta" && p["contentBlockIndex"] == 1)
        .unwrap();
    assert!(stop_0 < first_text);
    assert!(!kinds(&events).contains(&"contentBlockStart"));
    let answer: String = events
        .iter()
        .filter_map(|(_, p)| p["delta"]["text"].as_str())
        .collect();
    assert_eq!(answer, "You said: hello there");
}

#[tokio::test]
async fn redacted_reasoning_on_the_trigger_and_back_intact() {
    let sim = sim_with(Script::Echo).await;
    let prompt = format!("please {REDACTED_THINKING_TRIGGER}");
    let value = answer(&sim, &thinking(converse_body(&prompt))).await;
    let content = value["output"]["message"]["content"].clone();
    let text = content[0]["reasoningContent"]["reasoningText"]["text"]
        .as_str()
        .unwrap();
    assert_eq!(
        content[1]["reasoningContent"]["redactedContent"],
        redacted_reasoning_data(text)
    );
    assert!(content[2]["text"].is_string());

    // Streamed as one redactedContent delta of its own block.
    let events = stream_events(&sim, CLAUDE, &thinking(converse_body(&prompt))).await;
    let redacted: Vec<&Value> = events
        .iter()
        .filter_map(|(_, p)| p["delta"]["reasoningContent"].get("redactedContent"))
        .collect();
    assert_eq!(
        redacted,
        [&content[1]["reasoningContent"]["redactedContent"]]
    );

    // The assistant turn comes back intact: accepted; tampered: refused.
    let next = |assistant: Value| {
        thinking(json!({ "messages": [
            { "role": "user", "content": [{ "text": prompt }] },
            { "role": "assistant", "content": assistant },
            { "role": "user", "content": [{ "text": "and now?" }] },
        ] }))
    };
    answer(&sim, &next(content.clone())).await;
    let mut tampered = content.clone();
    // Valid base64, but not a blob the simulator sealed.
    tampered[1]["reasoningContent"]["redactedContent"] = json!("aGVsbG8gd29ybGQ=");
    refused(
        &sim,
        &next(tampered),
        "messages.1.content.1: Invalid `data` in `redacted_thinking` block",
    )
    .await;
}

#[tokio::test]
async fn thinking_tool_loop_over_two_turns_keeps_the_signature() {
    let sim = sim_with(Script::thinking_tool_loop(
        "get_weather",
        json!({ "city": "Paris" }),
    ))
    .await;
    let mut first = thinking(converse_body("weather in Paris?"));
    first["toolConfig"] = weather_tools();
    let turn_1 = answer(&sim, &first).await;
    assert_eq!(turn_1["stopReason"], "tool_use");
    let assistant = turn_1["output"]["message"]["content"].clone();
    assert!(assistant[0]["reasoningContent"]["reasoningText"]["signature"].is_string());
    let tool_use = &assistant[1]["toolUse"];
    assert_eq!(tool_use["name"], "get_weather");
    assert_eq!(tool_use["input"], json!({ "city": "Paris" }));
    let tool_use_id = tool_use["toolUseId"].as_str().unwrap().to_owned();
    assert!(tool_use_id.starts_with("tooluse_"), "{tool_use_id}");

    let second_turn = |assistant: Value| {
        let mut body = thinking(json!({ "messages": [
            { "role": "user", "content": [{ "text": "weather in Paris?" }] },
            { "role": "assistant", "content": assistant },
            { "role": "user", "content": [{ "toolResult": {
                "toolUseId": tool_use_id, "content": [{ "text": "18 degrees, sunny" }],
            } }] },
        ] }));
        body["toolConfig"] = weather_tools();
        body
    };
    let turn_2 = answer(&sim, &second_turn(assistant.clone())).await;
    assert_eq!(turn_2["stopReason"], "end_turn");
    let content = &turn_2["output"]["message"]["content"];
    assert!(content[0]["reasoningContent"]["reasoningText"]["signature"].is_string());
    assert_eq!(
        content[1]["text"],
        "get_weather returned: 18 degrees, sunny"
    );

    // The same loop streamed: reasoning, then the tool call with its start event.
    let events = stream_events(&sim, CLAUDE, &first).await;
    assert_eq!(
        kinds(&events)[events.len() - 6..],
        [
            "contentBlockStop",
            "contentBlockStart",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    assert_eq!(
        events[events.len() - 5].1["start"]["toolUse"]["toolUseId"],
        tool_use_id.as_str()
    );

    // Dropping the reasoning block of the tool-call turn breaks the loop, as on Bedrock.
    let without_reasoning = json!([assistant[1].clone()]);
    refused(
        &sim,
        &second_turn(without_reasoning),
        "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`",
    )
    .await;
    // So does an edited reasoning text (its signature no longer matches).
    let mut edited = assistant.clone();
    edited[0]["reasoningContent"]["reasoningText"]["text"] = json!("I changed my mind.");
    refused(
        &sim,
        &second_turn(edited),
        "messages.1.content.0: Invalid `signature` in `thinking` block",
    )
    .await;
    // And a reasoning text without its signature.
    let mut unsigned = assistant;
    unsigned[0]["reasoningContent"]["reasoningText"]
        .as_object_mut()
        .unwrap()
        .remove("signature");
    refused(
        &sim,
        &second_turn(unsigned),
        "messages.1.content.0.thinking.signature: Field required",
    )
    .await;
}

#[tokio::test]
async fn reasoning_blocks_must_come_first_in_an_assistant_turn() {
    let sim = sim_with(Script::Echo).await;
    let reasoning = Reply::default().reasoning("thinking").content[0].clone();
    let body = json!({ "messages": [
        { "role": "user", "content": [{ "text": "q" }] },
        { "role": "assistant", "content": [{ "text": "a" }, reasoning] },
        { "role": "user", "content": [{ "text": "q2" }] },
    ] });
    let message = refused(
        &sim,
        &body,
        "If an assistant message contains any thinking blocks, the first block must be thinking. Found text",
    )
    .await;
    assert!(!message.contains("model returned"), "a Bedrock-level rule");
}

#[tokio::test]
async fn claude_thinking_limits_are_enforced() {
    let sim = sim_with(Script::Echo).await;
    let mut small_budget = converse_body("q");
    small_budget["additionalModelRequestFields"] =
        json!({ "thinking": { "type": "enabled", "budget_tokens": 512 } });
    refused(
        &sim,
        &small_budget,
        "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
    )
    .await;

    let mut max_tokens = thinking(converse_body("q"));
    max_tokens["inferenceConfig"] = json!({ "maxTokens": 2048 });
    refused(
        &sim,
        &max_tokens,
        "`max_tokens` must be greater than `thinking.budget_tokens`",
    )
    .await;
    max_tokens["inferenceConfig"] = json!({ "maxTokens": 2049 });
    answer(&sim, &max_tokens).await;

    let mut temperature = thinking(converse_body("q"));
    temperature["inferenceConfig"] = json!({ "temperature": 0.2 });
    refused(
        &sim,
        &temperature,
        "`temperature` may only be set to 1 when thinking is enabled",
    )
    .await;

    let mut forced = thinking(converse_body("q"));
    forced["toolConfig"] = weather_tools();
    forced["toolConfig"]["toolChoice"] = json!({ "tool": { "name": "get_weather" } });
    let message = refused(
        &sim,
        &forced,
        "Thinking may not be enabled when tool_choice forces tool use.",
    )
    .await;
    assert!(message.starts_with("The model returned the following errors: "));
    forced["toolConfig"]["toolChoice"] = json!({ "auto": {} });
    answer(&sim, &forced).await;
}

#[tokio::test]
async fn reply_builders_make_verifiable_reasoning() {
    let reply = Reply::text("42")
        .reasoning("Let me count.")
        .redacted_reasoning("hidden");
    let sim = sim_with(Script::Reply(reply)).await;
    let value = answer(&sim, &converse_body("how many?")).await;
    let content = value["output"]["message"]["content"].clone();
    assert_eq!(
        content,
        json!([
            { "reasoningContent": { "reasoningText": {
                "text": "Let me count.", "signature": reasoning_signature("Let me count."),
            } } },
            { "reasoningContent": { "redactedContent": redacted_reasoning_data("hidden") } },
            { "text": "42" },
        ])
    );
    // The scripted reasoning is accepted back by the simulator.
    let next = thinking(json!({ "messages": [
        { "role": "user", "content": [{ "text": "how many?" }] },
        { "role": "assistant", "content": content },
        { "role": "user", "content": [{ "text": "sure?" }] },
    ] }));
    answer(&sim, &next).await;
}
