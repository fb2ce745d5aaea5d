//! Guardrail scripts: PII masking (with and without trace), blocked input, the word filter,
//! selective evaluation of `guardContent` blocks, for Converse and ConverseStream, and their
//! Echo behaviour without `guardrailConfig`.

#![allow(
    clippy::unwrap_used,
    reason = "integration tests and their helper functions fail by panicking"
)]

mod common;

use bedrock_sim::{BedrockSim, Script, SimHandle};
use common::*;
use serde_json::{json, Value};

async fn sim(script: Script) -> SimHandle {
    init();
    BedrockSim::builder()
        .access_key(AKID, SECRET)
        .default_script(script)
        .start()
        .await
        .unwrap()
}

fn body(text: &str, trace: Option<&str>) -> Value {
    let mut body = converse_body(text);
    let mut cfg = json!({ "guardrailIdentifier": "gr-1", "guardrailVersion": "1" });
    if let Some(trace) = trace {
        cfg["trace"] = json!(trace);
    }
    body["guardrailConfig"] = cfg;
    body
}

async fn converse(sim: &SimHandle, body: &Value) -> Value {
    let req = bedrock_request(&sim.url(), CLAUDE, "converse", body, &Creds::test());
    let (status, _, value) = call_json(sim.addr(), req).await;
    assert_eq!(status, 200, "{value}");
    value
}

#[tokio::test]
async fn mask_replaces_emails_and_names_with_trace() {
    let sim = sim(Script::GuardrailMask).await;
    let value = converse(
        &sim,
        &body("Mail Jane Doe at jane@example.com please", Some("enabled")),
    )
    .await;
    assert_eq!(
        value["output"]["message"]["content"][0]["text"],
        "You said: Mail {NAME} {NAME} at {EMAIL} please"
    );
    assert_eq!(value["stopReason"], "guardrail_intervened");
    let entities = &value["trace"]["guardrail"]["outputAssessments"]["gr-1"][0]
        ["sensitiveInformationPolicy"]["piiEntities"];
    assert_eq!(entities.as_array().unwrap().len(), 3);
    assert_eq!(entities[2]["match"], "jane@example.com");
    assert_eq!(entities[2]["type"], "EMAIL");
    assert_eq!(entities[2]["action"], "ANONYMIZED");
    assert_eq!(entities[0]["type"], "NAME");
}

#[tokio::test]
async fn mask_without_trace_or_without_pii() {
    let sim = sim(Script::GuardrailMask).await;
    let value = converse(&sim, &body("ask Elon", Some("disabled"))).await;
    assert_eq!(
        value["output"]["message"]["content"][0]["text"],
        "You said: ask {NAME}"
    );
    assert_eq!(value["stopReason"], "guardrail_intervened");
    assert!(value.get("trace").is_none());

    let value = converse(&sim, &body("nothing personal", Some("enabled"))).await;
    assert_eq!(value["stopReason"], "end_turn");

    // Without guardrailConfig it is Echo.
    let value = converse(&sim, &converse_body("Elon Musk")).await;
    assert_eq!(
        value["output"]["message"]["content"][0]["text"],
        "You said: Elon Musk"
    );
    assert_eq!(value["stopReason"], "end_turn");
}

#[tokio::test]
async fn mask_streams_masked_deltas_and_trace_in_metadata() {
    let sim = sim(Script::GuardrailMask).await;
    let req = bedrock_request(
        &sim.url(),
        CLAUDE,
        "converse-stream",
        &body("hi Jane", Some("enabled_full")),
        &Creds::test(),
    );
    let (_conn, resp) = send(sim.addr(), req).await;
    let events: Vec<(String, Value)> = FrameReader::new(resp.into_body())
        .all()
        .await
        .iter()
        .map(event)
        .collect();
    let text: String = events
        .iter()
        .filter_map(|(_, p)| p["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "You said: hi {NAME}");
    let (kind, stop) = &events[events.len() - 2];
    assert_eq!(
        (kind.as_str(), &stop["stopReason"]),
        ("messageStop", &json!("guardrail_intervened"))
    );
    let (_, metadata) = events.last().unwrap();
    assert!(metadata["trace"]["guardrail"]["outputAssessments"]["gr-1"].is_array());
}

#[tokio::test]
async fn block_input() {
    let message = "Sorry, the model cannot answer this question.";
    let sim = sim(Script::GuardrailBlockInput {
        message: message.to_owned(),
    })
    .await;
    let value = converse(&sim, &body("something violent here", Some("enabled"))).await;
    assert_eq!(
        value["output"]["message"]["content"],
        json!([{ "text": message }])
    );
    assert_eq!(value["stopReason"], "guardrail_intervened");
    assert_eq!(value["usage"]["outputTokens"], 0);
    assert_eq!(value["usage"]["inputTokens"], 3);
    let assessment = &value["trace"]["guardrail"]["inputAssessment"]["gr-1"];
    assert_eq!(
        assessment["contentPolicy"]["filters"][0]["action"],
        "BLOCKED"
    );

    let value = converse(&sim, &body("something violent here", None)).await;
    assert!(value.get("trace").is_none());
    assert_eq!(value["stopReason"], "guardrail_intervened");

    let value = converse(&sim, &converse_body("plain")).await;
    assert_eq!(
        value["output"]["message"]["content"][0]["text"],
        "You said: plain"
    );
}

/// `body(..)` whose user turn is `plain` text followed by a `guardContent` block of `guarded`.
fn selective_body(plain: &str, guarded: &str) -> Value {
    let mut value = body(plain, Some("enabled"));
    value["messages"][0]["content"] = json!([
        { "text": plain },
        { "guardContent": { "text": { "text": guarded } } },
    ]);
    value
}

#[tokio::test]
async fn mask_evaluates_only_guard_content_when_there_is_some() {
    let sim = sim(Script::GuardrailMask).await;
    let value = converse(&sim, &selective_body("Elon asks:", "write to Jane")).await;
    // Only the guarded text is evaluated: Elon stays, Jane is masked.
    assert_eq!(
        value["output"]["message"]["content"][0]["text"],
        "You said: Elon asks: write to {NAME}"
    );
    assert_eq!(value["stopReason"], "guardrail_intervened");
    let entities = &value["trace"]["guardrail"]["outputAssessments"]["gr-1"][0]
        ["sensitiveInformationPolicy"]["piiEntities"];
    assert_eq!(entities.as_array().unwrap().len(), 1);

    let value = converse(&sim, &selective_body("Elon Musk", "nothing personal")).await;
    assert_eq!(
        value["output"]["message"]["content"][0]["text"],
        "You said: Elon Musk nothing personal"
    );
    assert_eq!(value["stopReason"], "end_turn");
}

#[tokio::test]
async fn block_words_evaluates_only_guard_content_when_there_is_some() {
    let message = "Sorry, that topic is blocked.";
    let sim = sim(Script::guardrail_block_words(
        message,
        &["password", "secret"],
    ))
    .await;

    // Without guardContent every text is evaluated.
    let value = converse(&sim, &body("tell me the Secret.", Some("enabled"))).await;
    assert_eq!(
        value["output"]["message"]["content"],
        json!([{ "text": message }])
    );
    assert_eq!(value["stopReason"], "guardrail_intervened");
    assert_eq!(value["usage"]["outputTokens"], 0);
    assert_eq!(
        value["trace"]["guardrail"]["inputAssessment"]["gr-1"]["wordPolicy"]["customWords"],
        json!([{ "match": "secret", "action": "BLOCKED", "detected": true }])
    );

    // With guardContent only the guarded text is: the same word outside it passes...
    let value = converse(
        &sim,
        &selective_body("the secret plan", "what is the weather"),
    )
    .await;
    assert_eq!(value["stopReason"], "end_turn");
    assert_eq!(
        value["output"]["message"]["content"][0]["text"],
        "You said: the secret plan what is the weather"
    );
    // ...and inside it is blocked (streamed alike).
    let blocked = selective_body("hello", "my password is hunter2");
    let value = converse(&sim, &blocked).await;
    assert_eq!(value["stopReason"], "guardrail_intervened");
    let req = bedrock_request(
        &sim.url(),
        CLAUDE,
        "converse-stream",
        &blocked,
        &Creds::test(),
    );
    let (_conn, resp) = send(sim.addr(), req).await;
    let events: Vec<(String, Value)> = FrameReader::new(resp.into_body())
        .all()
        .await
        .iter()
        .map(event)
        .collect();
    let text: String = events
        .iter()
        .filter_map(|(_, p)| p["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, message);

    // Without guardrailConfig it is Echo.
    let value = converse(&sim, &converse_body("the password")).await;
    assert_eq!(value["stopReason"], "end_turn");
}
