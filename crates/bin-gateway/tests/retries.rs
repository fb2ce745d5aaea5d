//! Retries end to end: the account's `[retry]` and `[timeouts]` settings reach the Bedrock
//! adapter, a throttled call is answered after a retry, and `/metrics` counts it.
//!
//! On Tokio's paused clock, so the backoff waits cost no real time; the simulator and the
//! gateway answer on the same runtime.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use bedrock_sim::Script;
use common::*;
use serde_json::json;

/// [`BASE_CONFIG`] with the account's retries at `max_attempts` and `timeouts` (TOML).
fn config(max_attempts: u32, timeouts: &str) -> String {
    let retried = BASE_CONFIG.replace(
        "retry = { max_attempts = 1 }",
        &format!("retry = {{ max_attempts = {max_attempts} }}\ntimeouts = {timeouts}"),
    );
    assert_ne!(retried, BASE_CONFIG);
    retried
}

#[tokio::test(start_paused = true)]
async fn a_throttled_call_is_retried_and_counted() {
    let sim = sim().script(
        CLAUDE,
        Script::Sequence(vec![Script::throttling(), Script::Echo]),
    );
    let gw = TestGateway::start_with_config(sim, &config(3, "{}"), &[]).await;
    let (status, body) = gw
        .chat(&json!({"model": "sim/claude-3", "messages": user("hi")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.sim.requests().len(), 2);
    let (_, metrics) = gw.get("/metrics", None).await;
    for line in [
        r#"gateway_upstream_retries_total{account="sim",reason="throttling"} 1"#,
        r#"gateway_upstream_retries_total{account="sim",reason="transient"} 0"#,
        r#"gateway_retry_quota_exhausted_total{account="sim"} 0"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_account_s_total_limit_ends_a_stalled_call() {
    let sim = sim().script(CLAUDE, Script::Stall);
    let gw = TestGateway::start_with_config(sim, &config(3, "{ total_ms = 1500 }"), &[]).await;
    let (status, body) = gw
        .chat(&json!({"model": "sim/claude-3", "messages": user("hi")}))
        .await;
    assert_eq!(status, 504, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("total limit of 1500 ms"), "{message}");
}
