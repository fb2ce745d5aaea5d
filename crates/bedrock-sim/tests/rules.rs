//! Bedrock rules botocore's schema does not express: blank text, empty messages, `toolConfig`
//! with tool blocks in the history (the reasoning, cache-point, document and tool-choice rules
//! are tested with their features).

#![allow(
    clippy::unwrap_used,
    reason = "integration tests and their helper functions fail by panicking"
)]

mod common;

use bedrock_sim::Script;
use common::*;
use serde_json::json;

#[tokio::test]
async fn blank_text_blocks_are_refused() {
    let sim = sim_with(Script::Echo).await;
    let body = json!({ "messages": [
        { "role": "user", "content": [{ "text": "question" }] },
        { "role": "assistant", "content": [{ "text": "answer" }, { "text": " \n\t" }] },
        { "role": "user", "content": [{ "text": "more" }] },
    ] });
    refused(
        &sim,
        &body,
        "The text field in the ContentBlock object at messages.1.content.1 is blank. Add text to the text field, and try again.",
    )
    .await;
    let mut system = converse_body("q");
    system["system"] = json!([{ "text": "be brief" }, { "text": "" }]);
    refused(
        &sim,
        &system,
        "The text field in the SystemContentBlock object at system.1 is blank.",
    )
    .await;
}

#[tokio::test]
async fn messages_without_content_are_refused() {
    let sim = sim_with(Script::Echo).await;
    let body = json!({ "messages": [
        { "role": "user", "content": [{ "text": "question" }] },
        { "role": "assistant", "content": [] },
        { "role": "user", "content": [{ "text": "more" }] },
    ] });
    refused(
        &sim,
        &body,
        "The content field in the Message object at messages.1 is empty.",
    )
    .await;
}

#[tokio::test]
async fn tool_blocks_in_the_history_need_a_tool_config() {
    let sim = sim_with(Script::Echo).await;
    let mut body = json!({ "messages": [
        { "role": "user", "content": [{ "text": "weather?" }] },
        { "role": "assistant", "content": [{ "toolUse": { "toolUseId": "t1", "name": "get_weather", "input": {} } }] },
        { "role": "user", "content": [{ "toolResult": { "toolUseId": "t1", "content": [{ "text": "sunny" }] } }] },
    ] });
    refused(
        &sim,
        &body,
        "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
    )
    .await;
    body["toolConfig"] = json!({ "tools": [{ "toolSpec": { "name": "get_weather", "inputSchema": { "json": { "type": "object" } } } }] });
    let value = answer(&sim, &body).await;
    // Tool-result text counts as input: 1 + 1 words of text and 1 (tool) + 0 description.
    assert_eq!(value["usage"]["inputTokens"], 3);
}
