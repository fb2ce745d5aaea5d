//! `serviceTier`, `performanceConfig`, `requestMetadata` and
//! `additionalModelResponseFieldPaths`: accepted and echoed (Converse and stream), and
//! refused outside botocore's constraints.

#![allow(
    clippy::unwrap_used,
    reason = "integration tests and their helper functions fail by panicking"
)]

mod common;

use bedrock_sim::{Reply, Script};
use common::*;
use serde_json::{json, Value};

fn with(options: Value) -> Value {
    let mut body = converse_body("hello");
    for (key, value) in options.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

#[tokio::test]
async fn options_are_accepted_and_echoed() {
    let sim = sim_with(Script::Echo).await;
    let body = with(json!({
        "serviceTier": { "type": "flex" },
        "performanceConfig": { "latency": "optimized" },
        "requestMetadata": { "team": "search", "trace-id": "a1:b2/c3" },
        "additionalModelResponseFieldPaths": ["/stop_sequence", "/usage/output_tokens", "/not_there"],
    }));
    let value = answer(&sim, &body).await;
    assert_eq!(value["serviceTier"], json!({ "type": "flex" }));
    assert_eq!(
        value["performanceConfig"],
        json!({ "latency": "optimized" })
    );
    assert_eq!(
        value["additionalModelResponseFields"],
        json!({ "stop_sequence": null, "usage": { "output_tokens": 3 } })
    );

    let events = stream_events(&sim, CLAUDE, &body).await;
    let (_, stop) = &events[events.len() - 2];
    assert_eq!(
        stop["additionalModelResponseFields"],
        json!({ "stop_sequence": null, "usage": { "output_tokens": 3 } })
    );
    let (_, metadata) = events.last().unwrap();
    assert_eq!(metadata["serviceTier"], json!({ "type": "flex" }));
    assert_eq!(
        metadata["performanceConfig"],
        json!({ "latency": "optimized" })
    );

    // Without the options, none of those fields.
    let plain = answer(&sim, &converse_body("hello")).await;
    for field in [
        "serviceTier",
        "performanceConfig",
        "additionalModelResponseFields",
    ] {
        assert!(plain.get(field).is_none(), "{field}");
    }
}

#[tokio::test]
async fn reply_scripts_get_the_requested_fields_unless_they_set_them() {
    let sim = sim_with(Script::Reply(Reply::text("fixed"))).await;
    let body = with(json!({
        "serviceTier": { "type": "priority" },
        "additionalModelResponseFieldPaths": ["/stop_sequence"],
    }));
    let value = answer(&sim, &body).await;
    assert_eq!(value["serviceTier"], json!({ "type": "priority" }));
    assert_eq!(
        value["additionalModelResponseFields"],
        json!({ "stop_sequence": null })
    );

    sim.set_script(
        CLAUDE,
        Script::Reply(
            Reply::text("fixed")
                .service_tier("default")
                .additional_model_response_fields(json!({ "mine": 1 })),
        ),
    );
    let value = answer(&sim, &body).await;
    assert_eq!(value["serviceTier"], json!({ "type": "default" }));
    assert_eq!(value["additionalModelResponseFields"], json!({ "mine": 1 }));
}

#[tokio::test]
async fn options_outside_botocore_constraints_are_refused() {
    let sim = sim_with(Script::Echo).await;
    let too_many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (
            json!({ "serviceTier": { "type": "turbo" } }),
            "Value 'turbo' at 'serviceTier.type' failed to satisfy constraint: Member must satisfy enum value set: [priority, default, flex, reserved]",
        ),
        (
            json!({ "performanceConfig": { "latency": "fast" } }),
            "Value 'fast' at 'performanceConfig.latency' failed to satisfy constraint: Member must satisfy enum value set: [standard, optimized]",
        ),
        (
            json!({ "requestMetadata": too_many }),
            "'requestMetadata' failed to satisfy constraint: Member must have length less than or equal to 16",
        ),
        (
            json!({ "requestMetadata": {} }),
            "'requestMetadata' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ),
        (
            json!({ "requestMetadata": { "bad key!": "v" } }),
            "Map keys must satisfy constraint",
        ),
        (
            json!({ "requestMetadata": { "k": "caf\u{e9}" } }),
            "Map value must satisfy constraint",
        ),
        (
            json!({ "requestMetadata": { "k": "x".repeat(257) } }),
            "Map value must satisfy constraint",
        ),
        (
            json!({ "additionalModelResponseFieldPaths": (0..11).map(|i| format!("/f{i}")).collect::<Vec<_>>() }),
            "'additionalModelResponseFieldPaths' failed to satisfy constraint: Member must have length less than or equal to 10",
        ),
        (
            json!({ "additionalModelResponseFieldPaths": [""] }),
            "at 'additionalModelResponseFieldPaths.1.member' failed to satisfy constraint: Member must have length between 1 and 256",
        ),
        (
            json!({ "additionalModelResponseFieldPaths": ["stop_sequence"] }),
            "is not a valid JSON Pointer",
        ),
    ];
    for (options, expected) in cases {
        refused(&sim, &with(options), expected).await;
    }
    // The limits themselves are fine.
    let sixteen: serde_json::Map<String, Value> =
        (0..16).map(|i| (format!("k{i}"), json!("v"))).collect();
    answer(
        &sim,
        &with(json!({
            "requestMetadata": sixteen,
            "additionalModelResponseFieldPaths": (0..10).map(|i| format!("/f{i}")).collect::<Vec<_>>(),
        })),
    )
    .await;
}
