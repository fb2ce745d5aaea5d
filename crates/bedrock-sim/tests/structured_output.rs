//! Structured output (`outputConfig.textFormat`) and forced tools (`toolChoice`): minimal
//! valid answers, streamed and not, and the refusals (schema not JSON, unknown tool, tool
//! choice without tools).

#![allow(
    clippy::unwrap_used,
    reason = "integration tests and their helper functions fail by panicking"
)]

mod common;

use bedrock_sim::{minimal_instance, Script};
use common::*;
use serde_json::{json, Value};

fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string" },
            "age": { "type": "integer" },
            "role": { "type": "string", "enum": ["admin", "user"] },
            "tags": { "type": "array", "items": { "type": "string" } },
        },
        "required": ["name", "age", "role", "tags"],
        "additionalProperties": false,
    })
}

fn structured(schema: &str) -> Value {
    let mut body = converse_body("who?");
    body["outputConfig"] = json!({ "textFormat": {
        "type": "json_schema",
        "structure": { "jsonSchema": { "schema": schema, "name": "person" } },
    } });
    body
}

fn forced(tool_choice: Value) -> Value {
    let mut body = converse_body("who?");
    body["toolConfig"] = json!({
        "tools": [
            { "toolSpec": { "name": "other", "inputSchema": { "json": { "type": "object" } } } },
            { "toolSpec": { "name": "json_response", "inputSchema": { "json": person_schema() } } },
        ],
        "toolChoice": tool_choice,
    });
    body
}

#[tokio::test]
async fn json_schema_output_is_a_minimal_valid_instance() {
    let sim = sim_with(Script::Echo).await;
    let value = answer(&sim, &structured(&person_schema().to_string())).await;
    let text = value["output"]["message"]["content"][0]["text"]
        .as_str()
        .unwrap();
    let parsed: Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        parsed,
        json!({ "name": "example", "age": 0, "role": "admin", "tags": ["example"] })
    );
    assert_eq!(parsed, minimal_instance(&person_schema()));
    assert_eq!(value["stopReason"], "end_turn");

    // Streamed, the deltas concatenate to the same JSON.
    let events = stream_events(&sim, CLAUDE, &structured(&person_schema().to_string())).await;
    let streamed: String = events
        .iter()
        .filter_map(|(_, p)| p["delta"]["text"].as_str())
        .collect();
    assert_eq!(streamed, text);
}

#[tokio::test]
async fn a_schema_that_is_not_json_is_refused() {
    let sim = sim_with(Script::Echo).await;
    for schema in ["{not json", "[1, 2]", "\"a string\""] {
        refused(
            &sim,
            &structured(schema),
            "The JSON schema in outputConfig.textFormat.structure.jsonSchema.schema is not valid.",
        )
        .await;
    }
    let mut wrong_type = structured("{}");
    wrong_type["outputConfig"]["textFormat"]["type"] = json!("json_object");
    refused(
        &sim,
        &wrong_type,
        "Value 'json_object' at 'outputConfig.textFormat.type' failed to satisfy constraint: Member must satisfy enum value set: [json_schema]",
    )
    .await;
}

#[tokio::test]
async fn a_forced_tool_is_called_with_an_input_from_its_schema() {
    let sim = sim_with(Script::Echo).await;
    let body = forced(json!({ "tool": { "name": "json_response" } }));
    let value = answer(&sim, &body).await;
    assert_eq!(value["stopReason"], "tool_use");
    let content = value["output"]["message"]["content"].as_array().unwrap();
    assert_eq!(content.len(), 1);
    let tool_use = &content[0]["toolUse"];
    assert_eq!(tool_use["name"], "json_response");
    assert_eq!(tool_use["input"], minimal_instance(&person_schema()));
    // The id is stable for the same conversation.
    let again = answer(&sim, &body).await;
    assert_eq!(
        again["output"]["message"]["content"][0]["toolUse"]["toolUseId"],
        tool_use["toolUseId"]
    );

    // `any` calls the first tool.
    let any = answer(&sim, &forced(json!({ "any": {} }))).await;
    assert_eq!(
        any["output"]["message"]["content"][0]["toolUse"]["name"],
        "other"
    );
    // `auto` lets the model talk.
    let auto = answer(&sim, &forced(json!({ "auto": {} }))).await;
    assert_eq!(
        auto["output"]["message"]["content"][0]["text"],
        "You said: who?"
    );

    // Streamed: start, one input delta holding the JSON, stop; stop reason tool_use.
    let events = stream_events(&sim, CLAUDE, &body).await;
    assert_eq!(
        kinds(&events),
        [
            "messageStart",
            "contentBlockStart",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    assert_eq!(events[1].1["start"]["toolUse"]["name"], "json_response");
    let input: Value =
        serde_json::from_str(events[2].1["delta"]["toolUse"]["input"].as_str().unwrap()).unwrap();
    assert_eq!(input, minimal_instance(&person_schema()));
    assert_eq!(events[4].1["stopReason"], "tool_use");
}

#[tokio::test]
async fn tool_choice_must_name_a_tool_and_needs_tools() {
    let sim = sim_with(Script::Echo).await;
    refused(
        &sim,
        &forced(json!({ "tool": { "name": "missing" } })),
        "Tool 'missing' not found in the provided tools",
    )
    .await;
    let mut no_tools = converse_body("q");
    no_tools["toolConfig"] = json!({ "toolChoice": { "auto": {} } });
    refused(
        &sim,
        &no_tools,
        "Value null at 'toolConfig.tools' failed to satisfy constraint: Member must not be null",
    )
    .await;
    no_tools["toolConfig"]["tools"] = json!([]);
    refused(
        &sim,
        &no_tools,
        "Value '[]' at 'toolConfig.tools' failed to satisfy constraint: Member must have length greater than or equal to 1",
    )
    .await;
}
