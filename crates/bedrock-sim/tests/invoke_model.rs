//! InvokeModel (`POST /model/{modelId}/invoke`) for the embedding models: SigV4 verified,
//! recorded and failed on demand like Converse, answered with the model's own JSON.

#![allow(
    clippy::unwrap_used,
    reason = "integration tests and their helper functions fail by panicking"
)]

mod common;

use bedrock_sim::{BedrockSim, Failure, Fault, Operation};
use common::*;
use serde_json::json;

const TITAN: &str = "amazon.titan-embed-text-v2:0";
const COHERE: &str = "cohere.embed-english-v3";

async fn sim() -> bedrock_sim::SimHandle {
    init();
    BedrockSim::builder()
        .access_key(AKID, SECRET)
        .failure(COHERE, Failure::first_calls(1, Fault::throttling()))
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn signed_calls_get_vectors_and_the_token_count_header() {
    let sim = sim().await;
    let body = json!({"inputText": "one two three", "dimensions": 512});
    let (status, headers, answer) = call_json(
        sim.addr(),
        bedrock_request(&sim.url(), TITAN, "invoke", &body, &Creds::test()),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(headers["x-amzn-bedrock-input-token-count"], "3");
    assert_eq!(answer["inputTextTokenCount"], 3);
    assert_eq!(answer["embedding"].as_array().unwrap().len(), 512);
    let recorded = sim.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].operation, Operation::InvokeModel);
    assert_eq!(recorded[0].model_id, TITAN);
}

#[tokio::test]
async fn bad_signatures_and_invalid_bodies_are_refused() {
    let sim = sim().await;
    let body = json!({"inputText": "hi"});
    let wrong = Creds::long_term(AKID, "not-the-secret");
    let (status, _, _) = call_json(
        sim.addr(),
        bedrock_request(&sim.url(), TITAN, "invoke", &body, &wrong),
    )
    .await;
    assert_eq!(status, 403);
    let (status, headers, _) = call_json(
        sim.addr(),
        bedrock_request(
            &sim.url(),
            TITAN,
            "invoke",
            &json!({"inputText": "hi", "input_type": "search_query"}),
            &Creds::test(),
        ),
    )
    .await;
    assert_eq!(status, 400);
    assert!(headers["x-amzn-errortype"]
        .to_str()
        .unwrap()
        .starts_with("ValidationException"));
}

#[tokio::test]
async fn failures_apply_to_invoke_model_too() {
    let sim = sim().await;
    let body =
        json!({"texts": ["a", "b"], "input_type": "search_document", "embedding_types": ["float"]});
    let send = || {
        call_json(
            sim.addr(),
            bedrock_request(&sim.url(), COHERE, "invoke", &body, &Creds::test()),
        )
    };
    let (status, _, _) = send().await;
    assert_eq!(status, 429);
    let (status, _, answer) = send().await;
    assert_eq!(status, 200);
    assert_eq!(answer["embeddings"]["float"].as_array().unwrap().len(), 2);
}
