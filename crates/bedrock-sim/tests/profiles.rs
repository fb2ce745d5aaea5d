//! Models served only through inference profiles (`SimBuilder::profile_only`): the on-demand
//! refusal for bare ids and foundation-model ARNs, answers through geographic profiles.

#![allow(
    clippy::unwrap_used,
    reason = "integration tests and their helper functions fail by panicking"
)]

mod common;

use bedrock_sim::{BedrockSim, Reply, Script, SimHandle};
use common::*;

const SONNET_45: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";

async fn sim() -> SimHandle {
    init();
    BedrockSim::builder()
        .access_key(AKID, SECRET)
        .profile_only(SONNET_45)
        .script(SONNET_45, Script::Reply(Reply::text("from sonnet 4.5")))
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn bare_ids_are_refused_with_bedrocks_on_demand_message() {
    let sim = sim().await;
    for model_id in [
        SONNET_45.to_owned(),
        format!("arn:aws:bedrock:us-east-1::foundation-model/{SONNET_45}"),
    ] {
        for op in ["converse", "converse-stream"] {
            let req = bedrock_request(
                &sim.url(),
                &model_id,
                op,
                &converse_body("hi"),
                &Creds::test(),
            );
            let (status, headers, value) = call_json(sim.addr(), req).await;
            assert_eq!(status, 400, "{model_id} {op}");
            assert_eq!(error_type(&headers), "ValidationException");
            assert_eq!(
                value["message"],
                format!("Invocation of model ID {model_id} with on-demand throughput isn\u{2019}t supported. Retry your request with the ID or ARN of an inference profile that contains this model.")
            );
        }
    }
    // Other models are not affected.
    let (status, _, _) = converse_on(&sim, CLAUDE, &converse_body("hi")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn geographic_profiles_answer_with_the_base_models_script() {
    let sim = sim().await;
    for model_id in [
        format!("us.{SONNET_45}"),
        format!("eu.{SONNET_45}"),
        format!("apac.{SONNET_45}"),
        format!("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{SONNET_45}"),
    ] {
        let (status, _, value) = converse_on(&sim, &model_id, &converse_body("hi")).await;
        assert_eq!(status, 200, "{model_id}: {value}");
        if !model_id.starts_with("arn:") {
            assert_eq!(
                value["output"]["message"]["content"][0]["text"], "from sonnet 4.5",
                "{model_id}"
            );
        }
    }
    // A profile id with a script of its own uses it.
    sim.set_script(
        &format!("eu.{SONNET_45}"),
        Script::Reply(Reply::text("eu only")),
    );
    let (_, _, value) = converse_on(&sim, &format!("eu.{SONNET_45}"), &converse_body("hi")).await;
    assert_eq!(value["output"]["message"]["content"][0]["text"], "eu only");
}
