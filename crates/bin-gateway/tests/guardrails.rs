//! Bedrock Guardrails end to end: client pass-through, configured policy, interventions,
//! traces and the strict finish-reason style.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use bedrock_sim::{Reply, Script};
use common::*;
use serde_json::{json, Value};

/// The base configuration plus a model with an enforced guardrail and a strict account that
/// refuses client guardrails.
const GUARDRAIL_MODELS: &str = r#"
[accounts.sim.models.enforced]
model_id = "anthropic.claude-3-sonnet-20240229-v1:0"
guardrail = { identifier = "gr-enforced", version = "2", trace = "enabled", mode = "enforced" }

[accounts.locked]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "${SIM_URL}"
allow_client_guardrails = false
finish_reason_style = "strict"
auth = { type = "access-key", access_key_id = "AKIDTESTGATEWAY00001", secret_access_key = "${SIM_SECRET}" }
models.claude-3 = { model_id = "anthropic.claude-3-sonnet-20240229-v1:0" }
"#;

fn guarded_config() -> String {
    format!("{BASE_CONFIG}{GUARDRAIL_MODELS}")
}

async fn gateway(script: Script) -> TestGateway {
    TestGateway::start_with_config(sim().default_script(script), &guarded_config(), &[]).await
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../fixtures/seed/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_seed_scenario_answers_as_the_seed_shows() {
    let bedrock = fixture("bedrock_converse_response.json");
    let reply = Reply::text(
        bedrock["output"]["message"]["content"][0]["text"]
            .as_str()
            .unwrap(),
    )
    .stop_reason("guardrail_intervened")
    .usage(25, 320);
    let config = guarded_config().replace("accounts.sim", "accounts.internal-bedrock");
    let gw =
        TestGateway::start_with_config(sim().default_script(Script::Reply(reply)), &config, &[])
            .await;
    let (status, body) = gw.chat(&fixture("request.json")).await;
    assert_eq!(status, 200, "{body}");
    insta::assert_json_snapshot!(body, {
        ".id" => "[id]",
        ".created" => "[created]",
    });
    let sent = &gw.sim.requests()[0].body;
    assert_eq!(
        sent["guardrailConfig"],
        json!({"guardrailIdentifier": "xyz-123-768", "guardrailVersion": "1"})
    );
}

#[tokio::test]
async fn a_client_guardrail_reaches_bedrock_unchanged() {
    let gw = gateway(Script::Echo).await;
    let guardrail = json!({
        "guardrailIdentifier": "arn:aws:bedrock:us-east-1:123456789012:guardrail/abc123",
        "guardrailVersion": "DRAFT",
        "trace": "enabled_full"
    });
    let (status, body) = gw
        .chat(
            &json!({"model": "sim/claude-3", "messages": user("hi"), "guardrailConfig": guardrail}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.sim.requests()[0].body["guardrailConfig"], guardrail);

    // ConverseStream also takes streamProcessingMode; Converse does not.
    let mut streaming = guardrail.clone();
    streaming["streamProcessingMode"] = json!("async");
    let response = gw
        .stream(&json!({"model": "sim/claude-3", "stream": true, "messages": user("hi"), "guardrailConfig": streaming}))
        .await;
    SseReader::new(response).rest().await;
    assert_eq!(gw.sim.requests()[1].body["guardrailConfig"], streaming);
    let (_, _) = gw
        .chat(
            &json!({"model": "sim/claude-3", "messages": user("hi"), "guardrailConfig": streaming}),
        )
        .await;
    assert_eq!(gw.sim.requests()[2].body["guardrailConfig"], guardrail);
}

#[tokio::test]
async fn invalid_client_guardrails_are_400_and_never_sent() {
    let gw = gateway(Script::Echo).await;
    let cases = [
        (
            json!({"guardrailVersion": "1"}),
            "guardrailConfig.guardrailIdentifier",
        ),
        (
            json!({"guardrailIdentifier": "g"}),
            "guardrailConfig.guardrailVersion",
        ),
        (
            json!({"guardrailIdentifier": 5, "guardrailVersion": "1"}),
            "guardrailConfig.guardrailIdentifier",
        ),
        (
            json!({"guardrailIdentifier": "g", "guardrailVersion": "1", "trace": "yes"}),
            "guardrailConfig.trace",
        ),
        (
            json!({"guardrailIdentifier": "g", "guardrailVersion": "1", "streamProcessingMode": "later"}),
            "guardrailConfig.streamProcessingMode",
        ),
        (json!("gr-1"), "guardrailConfig"),
    ];
    for (guardrail, param) in cases {
        let (status, body) = gw
            .chat(&json!({"model": "sim/claude-3", "messages": user("hi"), "guardrailConfig": guardrail}))
            .await;
        assert_eq!(status, 400, "{guardrail}: {body}");
        assert_eq!(body["error"]["param"], param, "{body}");
    }
    assert!(gw.sim.requests().is_empty());
}

#[tokio::test]
async fn an_enforced_guardrail_is_applied_when_the_client_sends_none() {
    let gw = gateway(Script::GuardrailMask).await;
    let (status, body) = gw
        .chat(&json!({"model": "sim/enforced", "messages": user("Mail Jane Doe at jane@example.com")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        gw.sim.requests()[0].body["guardrailConfig"],
        json!({"guardrailIdentifier": "gr-enforced", "guardrailVersion": "2", "trace": "enabled"})
    );
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "guardrail_intervened");
    let content = choice["message"]["content"].as_str().unwrap();
    assert!(
        content.contains("{NAME}") && content.contains("{EMAIL}"),
        "{content}"
    );
    assert!(!content.contains("jane@example.com"), "{content}");
    assert!(
        body["guardrail_trace"]["outputAssessments"]["gr-enforced"].is_array(),
        "{body}"
    );
}

#[tokio::test]
async fn policy_refusals_never_reach_bedrock() {
    let gw = gateway(Script::Echo).await;
    let other = json!({"guardrailIdentifier": "mine", "guardrailVersion": "1"});
    let (status, body) = gw
        .chat(&json!({"model": "sim/enforced", "messages": user("hi"), "guardrailConfig": other}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_openai_error(&body, "guardrail_enforced");

    let (status, body) = gw
        .chat(
            &json!({"model": "locked/claude-3", "messages": user("hi"), "guardrailConfig": other}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_openai_error(&body, "guardrail_not_allowed");
    assert!(gw.sim.requests().is_empty());

    // Naming the enforced guardrail itself is fine.
    let same = json!({"guardrailIdentifier": "gr-enforced", "guardrailVersion": "2"});
    let (status, _) = gw
        .chat(&json!({"model": "sim/enforced", "messages": user("hi"), "guardrailConfig": same}))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_streamed_intervention_ends_with_guardrail_intervened_and_the_trace() {
    let gw = gateway(Script::GuardrailMask).await;
    let response = gw
        .stream(&json!({
            "model": "sim/claude-3",
            "stream": true,
            "messages": user("Write to Elon Musk at elon@example.com"),
            "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "1", "trace": "enabled"}
        }))
        .await;
    let events = SseReader::new(response).rest().await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(
        text.contains("{EMAIL}") && !text.contains("elon@"),
        "{text}"
    );
    let last = chunks.last().unwrap();
    assert_eq!(
        last["choices"][0]["finish_reason"], "guardrail_intervened",
        "{last}"
    );
    assert!(
        last["guardrail_trace"]["outputAssessments"]["gr-1"].is_array(),
        "{last}"
    );
}

#[tokio::test]
async fn blocked_input_is_reported_as_an_intervention() {
    let gw = gateway(Script::GuardrailBlockInput {
        message: "Sorry, I cannot help with that.".into(),
    })
    .await;
    let (status, body) = gw
        .chat(&json!({
            "model": "sim/claude-3",
            "messages": user("something forbidden"),
            "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "1", "trace": "enabled"}
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "guardrail_intervened");
    assert_eq!(
        choice["message"]["content"],
        "Sorry, I cannot help with that."
    );
    assert_eq!(body["usage"]["completion_tokens"], 0);
    assert!(
        body["guardrail_trace"]["inputAssessment"].is_object(),
        "{body}"
    );
}

#[tokio::test]
async fn the_trace_is_absent_unless_asked_for() {
    let gw = gateway(Script::GuardrailMask).await;
    let (_, body) = gw
        .chat(&json!({
            "model": "sim/claude-3",
            "messages": user("Hi Elon"),
            "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"}
        }))
        .await;
    assert_eq!(body["choices"][0]["finish_reason"], "guardrail_intervened");
    assert!(body.get("guardrail_trace").is_none(), "{body}");
}

#[tokio::test]
async fn strict_clients_get_content_filter_with_the_original_reason_beside_it() {
    let gw = gateway(Script::GuardrailMask).await;
    let request = json!({
        "model": "sim/enforced",
        "messages": user("Hi Elon"),
    });
    // Per gateway key.
    let (_, body) = gw.chat_as(Some(STRICT_KEY), &request).await;
    assert_eq!(
        body["choices"][0]["finish_reason"], "content_filter",
        "{body}"
    );
    assert_eq!(
        body["choices"][0]["bedrock_stop_reason"],
        "guardrail_intervened"
    );
    // The default style for other keys is unchanged.
    let (_, body) = gw.chat(&request).await;
    assert_eq!(body["choices"][0]["finish_reason"], "guardrail_intervened");

    // Per account: `locked` is strict for every key; it has no guardrail, so Bedrock's
    // content filter shows through as the same standard value.
    gw.sim.set_script(
        CLAUDE,
        Script::Reply(Reply::text("filtered").stop_reason("guardrail_intervened")),
    );
    let (_, body) = gw
        .chat(&json!({"model": "locked/claude-3", "messages": user("hi")}))
        .await;
    assert_eq!(
        body["choices"][0]["finish_reason"], "content_filter",
        "{body}"
    );

    // Streaming too.
    let response = gw
        .send(gw.chat_request(
            Some(STRICT_KEY),
            &json!({"model": "sim/enforced", "stream": true, "messages": user("Hi Elon")}),
        ))
        .await;
    let events = SseReader::new(response).rest().await;
    assert!(
        events
            .iter()
            .any(|e| e.contains("\"finish_reason\":\"content_filter\"")),
        "{events:?}"
    );
    assert!(!events
        .iter()
        .any(|e| e.contains("\"finish_reason\":\"guardrail_intervened\"")));
}
