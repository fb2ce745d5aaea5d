//! Virtual models end to end: the configuration's `[virtual_models]` and
//! `[accounts.*.circuit_breaker]` wired into the real server and Bedrock adapter, against the
//! simulator playing two accounts (one model id each, so each can fail on its own).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use bedrock_sim::Script;
use common::*;
use serde_json::{json, Value};

const WEST_MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

/// East is tried first and opens its breaker after two failures; the clock is the system's
/// and the cooldown an hour, so once open it stays open for the test.
const CONFIG: &str = r#"
[auth]
keys = [{ name = "tests", key = "test-gateway-key" }]

[accounts.east]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "${SIM_URL}"
auth = { type = "access-key", access_key_id = "AKIDTESTGATEWAY00001", secret_access_key = "${SIM_SECRET}" }
circuit_breaker = { failures = 2, cooldown_ms = 3600000 }
models.claude-3 = { model_id = "anthropic.claude-3-sonnet-20240229-v1:0" }

[accounts.west]
type = "aws-bedrock"
region = "us-west-2"
endpoint = "${SIM_URL}"
auth = { type = "access-key", access_key_id = "AKIDTESTGATEWAY00001", secret_access_key = "${SIM_SECRET}" }
models.claude-3 = { model_id = "anthropic.claude-3-5-sonnet-20240620-v1:0" }

[virtual_models."claude-ha"]
strategy = "failover"
targets = ["east/claude-3", "west/claude-3"]
"#;

fn body(stream: bool) -> Value {
    json!({
        "model": "claude-ha",
        "messages": [{"role": "user", "content": "Hello there"}],
        "stream": stream,
    })
}

fn target(response: &http::Response<hyper::body::Incoming>) -> String {
    response.headers()["x-gateway-target"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn calls_to(gw: &TestGateway, model_id: &str) -> usize {
    gw.sim
        .requests()
        .iter()
        .filter(|request| request.model_id == model_id)
        .count()
}

// On Tokio's paused clock: the east's retries wait no real time.
#[tokio::test(start_paused = true)]
async fn a_throttled_account_fails_over_then_its_breaker_skips_it() {
    let gw =
        TestGateway::start_with_config(sim().script(CLAUDE, Script::throttling()), CONFIG, &[])
            .await;

    for _ in 0..2 {
        let response = gw.send(gw.chat_request(Some(KEY), &body(false))).await;
        assert_eq!(target(&response), "west/claude-3");
        let (status, answer) = json_of(response).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["model"], "claude-ha", "the client's name for it");
    }
    let east_calls = calls_to(&gw, CLAUDE);
    assert!(east_calls >= 2, "east was tried for each request");

    // East's breaker is open: streams go straight to the west.
    let response = gw.send(gw.chat_request(Some(KEY), &body(true))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(target(&response), "west/claude-3");
    let events = SseReader::new(response).rest().await;
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    assert!(events[0].contains(r#""model":"claude-ha""#), "{events:?}");
    assert_eq!(calls_to(&gw, CLAUDE), east_calls, "east was skipped");
    assert_eq!(calls_to(&gw, WEST_MODEL), 3);

    let (_, models) = gw.get("/v1/models", Some(KEY)).await;
    let models: Value = serde_json::from_str(&models).unwrap();
    let ids: Vec<_> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["east/claude-3", "west/claude-3", "claude-ha"]);

    let (_, metrics) = gw.get("/metrics", None).await;
    for line in [
        r#"gateway_failovers_total{from="east/claude-3",reason="throttled"} 2"#,
        r#"gateway_circuit_skips_total{target="east/claude-3"} 1"#,
        r#"gateway_circuit_state{target="east/claude-3"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}
