//! Key limits, budgets and cost end to end: the real gateway with the memory backend, in
//! front of the simulator, on a clock the test moves.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::time::{Duration, UNIX_EPOCH};

use bedrock_sim::{Reply, Script, StreamStep};
use common::{
    assert_openai_error, header, metric, sim, user, SseReader, TestGateway, BASE_CONFIG, CLAUDE,
};
use gateway_core::clock::{ManualClock, SharedClock};
use serde_json::{json, Value};

/// The start of a minute (and of a day); the simulator's clock is frozen there too, so
/// signatures stay within its skew however the gateway's clock moves in a test.
const START: u64 = 1_699_920_000;

/// USD per million tokens of `sim/claude-3`.
const INPUT_PRICE: f64 = 3.0;
const OUTPUT_PRICE: f64 = 15.0;
const CACHE_READ_PRICE: f64 = 0.3;
const CACHE_WRITE_PRICE: f64 = 3.75;

/// `BASE_CONFIG` with limited keys, a price on `sim/claude-3` and the memory backend.
fn config() -> String {
    BASE_CONFIG
        .replace(
            r#"  { name = "strict", key = "test-strict-key", finish_reason_style = "strict" },"#,
            r#"  { name = "strict", key = "test-strict-key", finish_reason_style = "strict" },
  { name = "rpm-3", key = "test-rpm-3-key", rpm = 3, tpm = 100000 },
  { name = "budget", key = "test-budget-key", budget_usd = 0.01, budget_period = "1d" },"#,
        )
        .replace(
            "[accounts.sim.models.claude-3]\nmodel_id = \"anthropic.claude-3-sonnet-20240229-v1:0\"",
            "[accounts.sim.models.claude-3]\nmodel_id = \"anthropic.claude-3-sonnet-20240229-v1:0\"\n\
             price = { input = 3.0, output = 15.0, cache_read = 0.3, cache_write = 3.75 }",
        )
        + "\n[limits]\nbackend = \"memory\"\n"
}

/// The gateway and the clock it reads; [`advance`] moves the simulator's along.
async fn gateway(script: Script) -> (TestGateway, ManualClock) {
    let clock = ManualClock::at_unix(START);
    let sim = sim()
        .clock_at(UNIX_EPOCH + Duration::from_secs(START))
        .script(CLAUDE, script);
    let config = config();
    assert!(
        config.contains("price = {") && config.contains("rpm = 3"),
        "{config}"
    );
    let gateway =
        TestGateway::start_with_clock(sim, &config, &[], SharedClock::new(clock.clone())).await;
    (gateway, clock)
}

/// Moves the gateway's clock and the simulator's together, so signatures stay valid.
fn advance(gw: &TestGateway, clock: &ManualClock, by: Duration) {
    clock.advance(by);
    gw.sim.advance_clock(by);
}

fn ask() -> Value {
    json!({"model": "sim/claude-3", "messages": user("What does this cost?")})
}

#[tokio::test]
async fn the_request_after_the_rpm_th_in_a_minute_is_limited_before_reaching_bedrock() {
    let (gw, clock) = gateway(Script::Echo).await;
    for remaining in ["2", "1", "0"] {
        let (parts, body) = gw.chat_parts("test-rpm-3-key", &ask()).await;
        assert_eq!(parts.status, 200, "{body}");
        assert_eq!(header(&parts, "x-ratelimit-limit-requests"), Some("3"));
        assert_eq!(
            header(&parts, "x-ratelimit-remaining-requests"),
            Some(remaining)
        );
        assert_eq!(header(&parts, "x-ratelimit-limit-tokens"), Some("100000"));
    }
    let (parts, body) = gw.chat_parts("test-rpm-3-key", &ask()).await;
    assert_eq!(parts.status, 429);
    assert_openai_error(&body, "rate_limit_exceeded");
    // The next window starts in 60 s; a third of it later one request's worth has faded.
    assert_eq!(header(&parts, "retry-after"), Some("81"));
    assert_eq!(header(&parts, "x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(gw.sim.calls(CLAUDE), 3, "the fourth never reached Bedrock");

    // Another key is not held to this one's limit.
    let (status, _) = gw.chat(&ask()).await;
    assert_eq!(status, 200);

    // When retry-after has passed, the key is admitted again.
    advance(&gw, &clock, Duration::from_secs(81));
    let (parts, _) = gw.chat_parts("test-rpm-3-key", &ask()).await;
    assert_eq!(parts.status, 200);
    let (_, metrics) = gw.get("/metrics", None).await;
    assert_eq!(
        metric(
            &metrics,
            r#"gateway_limited_requests_total{key="rpm-3",kind="requests"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_spent_budget_is_refused_with_insufficient_quota_until_the_next_day() {
    // 1000 input and 400 output tokens: 0.003 + 0.006 = 0.009 USD an answer.
    let (gw, clock) = gateway(Script::Reply(Reply::text("Expensive.").usage(1000, 400))).await;
    let (parts, body) = gw.chat_parts("test-budget-key", &ask()).await;
    assert_eq!(parts.status, 200, "{body}");
    assert_eq!(header(&parts, "x-gateway-cost-usd"), Some("0.009000"));
    assert_eq!(body["usage"]["cost_usd"], json!(0.009));
    // 0.001 USD left: still admitted, and the answer overspends it.
    let (parts, _) = gw.chat_parts("test-budget-key", &ask()).await;
    assert_eq!(parts.status, 200);
    advance(&gw, &clock, Duration::from_secs(3600));
    let (parts, body) = gw.chat_parts("test-budget-key", &ask()).await;
    assert_eq!(parts.status, 429);
    assert_openai_error(&body, "insufficient_quota");
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(
        header(&parts, "retry-after"),
        Some("82800"),
        "at midnight UTC"
    );
    assert_eq!(gw.sim.calls(CLAUDE), 2);

    advance(&gw, &clock, Duration::from_secs(82_800));
    let (parts, _) = gw.chat_parts("test-budget-key", &ask()).await;
    assert_eq!(parts.status, 200, "a new day, a new budget");
}

#[tokio::test]
async fn the_cost_metric_is_the_tokens_bedrock_reported_times_the_price() {
    // Every kind of token: uncached input, output, read from and written to the cache.
    let reply = Reply::text("Cached.").usage(120, 30).cache_usage(2000, 512);
    let (gw, _) = gateway(Script::Reply(reply)).await;
    let mut reported = [0u64; 4];
    let mut costs = 0.0;
    for _ in 0..3 {
        let (parts, answer) = gw.chat_parts("test-rpm-3-key", &ask()).await;
        assert_eq!(parts.status, 200, "{answer}");
        let usage = &answer["usage"];
        let read = usage["cache_read_input_tokens"].as_u64().unwrap();
        let written = usage["cache_creation_input_tokens"].as_u64().unwrap();
        let prompt = usage["prompt_tokens"].as_u64().unwrap();
        let output = usage["completion_tokens"].as_u64().unwrap();
        let kinds = [prompt - read - written, output, read, written];
        for (total, tokens) in reported.iter_mut().zip(kinds) {
            *total += tokens;
        }
        costs += header(&parts, "x-gateway-cost-usd")
            .unwrap()
            .parse::<f64>()
            .unwrap();
    }
    assert!(reported.iter().all(|&tokens| tokens > 0), "{reported:?}");

    let (_, metrics) = gw.get("/metrics", None).await;
    let tokens = |kind: &str| {
        metric(
            &metrics,
            &format!(r#"gateway_tokens_total{{key="rpm-3",model="sim/claude-3",kind="{kind}"}}"#),
        )
        .unwrap_or(0.0)
    };
    let counted = ["input", "output", "cache_read", "cache_write"].map(tokens);
    assert_eq!(counted, reported.map(|t| t as f64), "{metrics}");
    let priced = (counted[0] * INPUT_PRICE
        + counted[1] * OUTPUT_PRICE
        + counted[2] * CACHE_READ_PRICE
        + counted[3] * CACHE_WRITE_PRICE)
        / 1e6;
    let spent = metric(
        &metrics,
        r#"gateway_cost_usd_total{key="rpm-3",model="sim/claude-3"}"#,
    )
    .unwrap();
    assert!((spent - priced).abs() < 1e-9, "{spent} != {priced}");
    assert!((costs - priced).abs() < 1e-5, "headers {costs} != {priced}");
}

#[tokio::test]
async fn a_stream_is_counted_from_its_final_usage() {
    let (gw, _) = gateway(Script::Reply(
        Reply::text("Streamed and priced.").usage(100, 20),
    ))
    .await;
    let mut body = ask();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = gw
        .send(gw.chat_request(Some("test-rpm-3-key"), &body))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("x-ratelimit-remaining-requests")
            .unwrap(),
        "2"
    );
    let events = SseReader::new(response).rest().await;
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    // 100 x 3 + 20 x 15 micro-USD.
    assert_eq!(
        usage_chunk["usage"]["cost_usd"],
        json!(0.0006),
        "{usage_chunk}"
    );

    let (_, metrics) = gw.get("/metrics", None).await;
    for (kind, tokens) in [("input", 100.0), ("output", 20.0)] {
        assert_eq!(
            metric(
                &metrics,
                &format!(
                    r#"gateway_tokens_total{{key="rpm-3",model="sim/claude-3",kind="{kind}"}}"#
                )
            ),
            Some(tokens),
            "{metrics}"
        );
    }
    // The next request sees the stream's 120 tokens counted against the key.
    let (parts, _) = gw.chat_parts("test-rpm-3-key", &ask()).await;
    assert_eq!(
        header(&parts, "x-ratelimit-remaining-tokens"),
        Some("99880")
    );
}

#[tokio::test]
async fn a_stream_the_client_abandons_is_counted_from_what_it_streamed() {
    let steps = vec![
        StreamStep::event("messageStart", json!({"role": "assistant"})),
        StreamStep::event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "thinking..."}}),
        ),
        StreamStep::Hold,
    ];
    let (gw, _) = gateway(Script::Stream(steps)).await;
    let mut body = ask();
    body["stream"] = json!(true);
    let response = gw
        .send(gw.chat_request(Some("test-rpm-3-key"), &body))
        .await;
    let mut reader = SseReader::new(response);
    reader.next().await.unwrap();
    reader.next().await.unwrap();
    drop(reader);
    tokio::time::timeout(Duration::from_secs(5), gw.sim.wait_stream_dropped())
        .await
        .expect("the gateway drops the upstream stream");

    // Bedrock never reported usage: "thinking..." is 11 characters, 3 tokens by the
    // estimate, at the output price; no input tokens are known.
    let (_, metrics) = gw.get("/metrics", None).await;
    let series = |name: &str, labels: &str| {
        metric(
            &metrics,
            &format!(r#"{name}{{key="rpm-3",model="sim/claude-3"{labels}}}"#),
        )
    };
    assert_eq!(
        series("gateway_tokens_total", r#",kind="output""#),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(series("gateway_tokens_total", r#",kind="input""#), None);
    let spent = series("gateway_cost_usd_total", "").unwrap();
    assert!((spent - 3.0 * OUTPUT_PRICE / 1e6).abs() < 1e-12, "{spent}");
    // And against the key's tokens per minute, as the next request's headers say.
    let response = gw
        .send(gw.chat_request(Some("test-rpm-3-key"), &body))
        .await;
    assert_eq!(
        response
            .headers()
            .get("x-ratelimit-remaining-tokens")
            .unwrap(),
        "99997"
    );
}
