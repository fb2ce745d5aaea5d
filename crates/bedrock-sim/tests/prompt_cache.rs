//! Prompt caching: cache write then read across requests (Converse and stream usage), expiry
//! on the simulator's clock, and the cache-point refusals (more than 4, bad type or ttl, after
//! a reasoning block).

#![allow(
    clippy::unwrap_used,
    reason = "integration tests and their helper functions fail by panicking"
)]

mod common;

use std::time::Duration;

use bedrock_sim::{BedrockSim, Reply, Script};
use common::*;
use serde_json::{json, Value};

const CACHE_POINT: &str = r#"{"cachePoint": {"type": "default"}}"#;

fn cache_point() -> Value {
    serde_json::from_str(CACHE_POINT).unwrap()
}

/// A 6-word system prompt and a 3-word tool cached together, then a question.
fn cached_request(question: &str) -> Value {
    json!({
        "system": [ { "text": "You are a very helpful assistant." }, cache_point() ],
        "messages": [ { "role": "user", "content": [ { "text": question } ] } ],
        "toolConfig": { "tools": [
            { "toolSpec": { "name": "lookup", "description": "Look things up", "inputSchema": { "json": { "type": "object" } } } },
            cache_point(),
        ] },
    })
}

#[tokio::test]
async fn first_request_writes_the_prefix_and_an_identical_prefix_reads_it() {
    let sim = sim_with(Script::Echo).await;
    let first = answer(&sim, &cached_request("what is rust")).await;
    // Cache order is tools (1 + 3 words), then system (6 words): 10 tokens up to the last
    // cache point, 3 after it.
    assert_eq!(
        first["usage"],
        json!({
            "inputTokens": 3, "outputTokens": 5, "totalTokens": 18,
            "cacheReadInputTokens": 0, "cacheWriteInputTokens": 10,
        })
    );
    let second = answer(&sim, &cached_request("and what is go")).await;
    assert_eq!(
        second["usage"],
        json!({
            "inputTokens": 4, "outputTokens": 6, "totalTokens": 20,
            "cacheReadInputTokens": 10, "cacheWriteInputTokens": 0,
        })
    );
    // A different system prompt is a different prefix; the tool prefix before it still hits.
    let mut other = cached_request("q");
    other["system"][0]["text"] = json!("You are terse.");
    let third = answer(&sim, &other).await;
    assert_eq!(third["usage"]["cacheReadInputTokens"], 4);
    assert_eq!(third["usage"]["cacheWriteInputTokens"], 3);

    // The streamed usage reports the same counts.
    let events = stream_events(&sim, CLAUDE, &cached_request("streamed")).await;
    let (kind, metadata) = events.last().unwrap();
    assert_eq!(kind, "metadata");
    assert_eq!(metadata["usage"]["cacheReadInputTokens"], 10);
    assert_eq!(metadata["usage"]["cacheWriteInputTokens"], 0);
    assert_eq!(metadata["usage"]["inputTokens"], 1);

    // Requests without cache points report no cache counts at all.
    let plain = answer(&sim, &converse_body("hi")).await;
    assert!(plain["usage"].get("cacheReadInputTokens").is_none());
}

#[tokio::test]
async fn cached_prefixes_expire_after_their_ttl_on_the_simulators_clock() {
    init();
    // Moving the clock would put the test's signatures outside the allowed skew.
    let sim = BedrockSim::builder()
        .verify_signatures(false)
        .start()
        .await
        .unwrap();
    answer(&sim, &cached_request("one")).await;
    sim.advance_clock(Duration::from_secs(299));
    let hit = answer(&sim, &cached_request("two")).await;
    assert_eq!(hit["usage"]["cacheReadInputTokens"], 10);
    // Reading refreshed the entry: another 299 s later it is still there; 301 s after that not.
    sim.advance_clock(Duration::from_secs(299));
    assert_eq!(
        answer(&sim, &cached_request("three")).await["usage"]["cacheReadInputTokens"],
        10
    );
    sim.advance_clock(Duration::from_secs(301));
    let miss = answer(&sim, &cached_request("four")).await;
    assert_eq!(miss["usage"]["cacheReadInputTokens"], 0);
    assert_eq!(miss["usage"]["cacheWriteInputTokens"], 10);

    // A one-hour cache point survives what expires a five-minute one.
    let mut long = cached_request("five");
    long["system"][1]["cachePoint"]["ttl"] = json!("1h");
    long["toolConfig"]["tools"][1]["cachePoint"]["ttl"] = json!("1h");
    answer(&sim, &long).await;
    sim.advance_clock(Duration::from_secs(1800));
    assert_eq!(
        answer(&sim, &long).await["usage"]["cacheReadInputTokens"],
        10
    );
}

#[tokio::test]
async fn more_than_four_cache_points_are_refused() {
    let sim = sim_with(Script::Echo).await;
    let mut body = cached_request("q");
    body["messages"][0]["content"] = json!([
        { "text": "a" }, cache_point(), { "text": "b" }, cache_point(), { "text": "c" }, cache_point(),
    ]);
    refused(
        &sim,
        &body,
        "A maximum of 4 blocks with cache_control may be provided. Found 5.",
    )
    .await;
    // Four are fine.
    body["messages"][0]["content"] =
        json!([{ "text": "a" }, cache_point(), { "text": "b" }, cache_point()]);
    answer(&sim, &body).await;
}

#[tokio::test]
async fn cache_point_type_and_ttl_must_be_in_their_enums() {
    let sim = sim_with(Script::Echo).await;
    let mut body = cached_request("q");
    body["system"][1] = json!({ "cachePoint": { "type": "ephemeral" } });
    refused(
        &sim,
        &body,
        "Value 'ephemeral' at 'system.2.member.cachePoint.type' failed to satisfy constraint: Member must satisfy enum value set: [default]",
    )
    .await;
    body["system"][1] = json!({ "cachePoint": { "type": "default", "ttl": "10m" } });
    refused(
        &sim,
        &body,
        "Value '10m' at 'system.2.member.cachePoint.ttl' failed to satisfy constraint: Member must satisfy enum value set: [5m, 1h]",
    )
    .await;
}

#[tokio::test]
async fn a_cache_point_right_after_a_reasoning_block_is_refused() {
    let sim = sim_with(Script::Echo).await;
    let reasoning = Reply::default().reasoning("hmm").content[0].clone();
    let body = json!({ "messages": [
        { "role": "user", "content": [{ "text": "q" }] },
        { "role": "assistant", "content": [reasoning, cache_point(), { "text": "a" }] },
        { "role": "user", "content": [{ "text": "q2" }] },
    ] });
    refused(
        &sim,
        &body,
        "Cache point cannot be inserted after reasoning block. Please remove the invalid cache point and try again.",
    )
    .await;
}
