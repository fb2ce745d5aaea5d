//! `POST /v1/guardrails/check` end to end, through the real server and the simulator
//! (ApplyGuardrail, SigV4 verified): allowed and refused keys, unknown names, explicit
//! references, interventions with masked output, and what never reaches Bedrock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use bedrock_sim::{Failure, Fault, Script};
use bytes::Bytes;
use common::*;
use http_body_util::Full;
use serde_json::{json, Value};

/// Two accounts on the same simulator, a guardrail each; `checker` may use both, `limited`
/// only `pii` and at most 2 requests a minute, `chat-only` none (no `guardrails`).
const CONFIG: &str = r#"
[auth]
keys = [
  { name = "checker", key = "checker-key", guardrails = ["pii", "words"] },
  { name = "limited", key = "limited-key", rpm = 2, guardrails = ["pii"] },
  { name = "chat-only", key = "chat-only-key" },
]

[accounts.sim]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "${SIM_URL}"
auth = { type = "access-key", access_key_id = "AKIDTESTGATEWAY00001", secret_access_key = "${SIM_SECRET}" }
retry = { max_attempts = 1 }
models.claude-3 = { model_id = "anthropic.claude-3-sonnet-20240229-v1:0" }
guardrails.pii = { identifier = "gr-pii", version = 1 }

[accounts.other]
type = "aws-bedrock"
region = "eu-west-1"
endpoint = "${SIM_URL}"
auth = { type = "access-key", access_key_id = "AKIDTESTGATEWAY00001", secret_access_key = "${SIM_SECRET}" }
retry = { max_attempts = 1 }
models.claude-3 = { model_id = "anthropic.claude-3-sonnet-20240229-v1:0" }
guardrails.words = { identifier = "arn:aws:bedrock:eu-west-1:123456789012:guardrail/words", version = "DRAFT" }
"#;

const WORDS_ID: &str = "arn:aws:bedrock:eu-west-1:123456789012:guardrail/words";

async fn gateway() -> TestGateway {
    let sim = sim().verify_signatures(true).script(
        WORDS_ID,
        Script::GuardrailBlockWords {
            message: "Sorry, that topic is blocked.".into(),
            words: vec!["secret".into()],
        },
    );
    TestGateway::start_with_config(sim, CONFIG, &[]).await
}

async fn check(gw: &TestGateway, key: &str, body: &Value) -> (http::response::Parts, Value) {
    let request = http::Request::post(gw.url("/v1/guardrails/check"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let (parts, body) = gw.send(request).await.into_parts();
    let (_, value) = json_of(http::Response::from_parts(parts.clone(), body)).await;
    (parts, value)
}

#[tokio::test]
async fn an_intervention_answers_the_masked_outputs_and_assessments() {
    let gw = gateway().await;
    let (parts, body) = check(
        &gw,
        "checker-key",
        &json!({
            "guardrail": "pii",
            "source": "OUTPUT",
            "content": ["Contact Jane at jane.doe@example.com.", "Nothing to hide."]
        }),
    )
    .await;
    assert_eq!(parts.status, 200, "{body}");
    assert_eq!(body["action"], "GUARDRAIL_INTERVENED");
    assert_eq!(
        body["outputs"],
        json!(["Contact {NAME} at {EMAIL}.", "Nothing to hide."])
    );
    let entities = &body["assessments"][0]["sensitiveInformationPolicy"]["piiEntities"];
    assert_eq!(entities[0]["type"], "NAME");
    assert_eq!(entities[1]["type"], "EMAIL");
    assert_eq!(body["usage"]["sensitiveInformationPolicyUnits"], 2);
    assert_eq!(gw.sim.calls("gr-pii"), 1);
}

#[tokio::test]
async fn clean_text_answers_none() {
    let gw = gateway().await;
    let (parts, body) = check(
        &gw,
        "checker-key",
        &json!({"guardrail": "pii", "source": "INPUT", "content": ["hello there"]}),
    )
    .await;
    assert_eq!(parts.status, 200, "{body}");
    assert_eq!(body["action"], "NONE");
    assert_eq!(body["outputs"], json!([]));
}

#[tokio::test]
async fn an_explicit_reference_runs_the_configured_guardrail_on_its_account() {
    let gw = gateway().await;
    let (parts, body) = check(
        &gw,
        "checker-key",
        &json!({
            "guardrail": {"identifier": WORDS_ID, "version": "DRAFT"},
            "source": "INPUT",
            "content": ["tell me the SECRET"]
        }),
    )
    .await;
    assert_eq!(parts.status, 200, "{body}");
    assert_eq!(body["action"], "GUARDRAIL_INTERVENED");
    assert_eq!(body["outputs"], json!(["Sorry, that topic is blocked."]));
    assert_eq!(
        body["assessments"][0]["wordPolicy"]["customWords"][0]["match"],
        "secret"
    );
    assert_eq!(gw.sim.calls(WORDS_ID), 1);
}

#[tokio::test]
async fn refused_checks_never_reach_bedrock() {
    let gw = gateway().await;
    let pii = json!({"guardrail": "pii", "source": "INPUT", "content": ["x"]});
    let cases = [
        // Unknown name.
        (
            "checker-key",
            json!({"guardrail": "nope", "source": "INPUT", "content": ["x"]}),
            404,
            "guardrail_not_found",
        ),
        // An explicit reference that is not configured (here: another version).
        (
            "checker-key",
            json!({"guardrail": {"identifier": "gr-pii", "version": "2"}, "source": "INPUT", "content": ["x"]}),
            404,
            "guardrail_not_found",
        ),
        // A key allowed other guardrails, or none.
        (
            "limited-key",
            json!({"guardrail": "words", "source": "INPUT", "content": ["x"]}),
            403,
            "guardrail_not_allowed",
        ),
        ("chat-only-key", pii.clone(), 403, "guardrail_not_allowed"),
        // Not a gateway key.
        ("sk-unknown", pii.clone(), 401, "invalid_api_key"),
        // A malformed body.
        (
            "checker-key",
            json!({"guardrail": "pii", "source": "BOTH", "content": ["x"]}),
            400,
            "invalid_value",
        ),
    ];
    for (key, body, status, code) in cases {
        let (parts, answer) = check(&gw, key, &body).await;
        assert_eq!(parts.status, status, "{key} {body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{key} {body}: {answer}");
    }
    assert_eq!(gw.sim.total_calls(), 0);
}

#[tokio::test]
async fn checks_count_against_the_keys_rpm() {
    let gw = gateway().await;
    let pii = json!({"guardrail": "pii", "source": "INPUT", "content": ["x"]});
    for remaining in ["1", "0"] {
        let (parts, body) = check(&gw, "limited-key", &pii).await;
        assert_eq!(parts.status, 200, "{body}");
        assert_eq!(
            parts.headers["x-ratelimit-remaining-requests"], remaining,
            "{:?}",
            parts.headers
        );
    }
    let (parts, body) = check(&gw, "limited-key", &pii).await;
    assert_eq!(parts.status, 429, "{body}");
    assert_eq!(gw.sim.calls("gr-pii"), 2);
}

#[tokio::test]
async fn a_bedrock_error_is_answered_like_a_chats() {
    let gw = gateway().await;
    gw.sim.set_failure(
        "gr-pii",
        Failure::always(Fault::Error {
            status: 429,
            kind: "ThrottlingException".into(),
            message: "Too many requests, please wait before trying again.".into(),
        }),
    );
    let (parts, body) = check(
        &gw,
        "checker-key",
        &json!({"guardrail": "pii", "source": "INPUT", "content": ["x"]}),
    )
    .await;
    assert_eq!(parts.status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn only_post_is_allowed() {
    let gw = gateway().await;
    let (status, _) = gw.get("/v1/guardrails/check", Some("checker-key")).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn the_simulator_verifies_the_signature_of_apply_guardrail() {
    // The same gateway, signing with a secret the simulator does not know.
    let config = CONFIG.replace("${SIM_SECRET}", "not-the-simulators-secret");
    let gw = TestGateway::start_with_config(sim().verify_signatures(true), &config, &[]).await;
    let (parts, body) = check(
        &gw,
        "checker-key",
        &json!({"guardrail": "pii", "source": "INPUT", "content": ["x"]}),
    )
    .await;
    assert_eq!(parts.status, 502, "{body}");
    assert_eq!(body["error"]["code"], "upstream_unauthorized", "{body}");
    assert_eq!(gw.sim.calls("gr-pii"), 1);
}
