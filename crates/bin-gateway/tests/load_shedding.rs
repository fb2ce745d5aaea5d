//! Load shedding end to end: the real gateway with `[server] max_concurrent_requests`, in
//! front of a simulated model that holds every answer until the test lets it go.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::time::Duration;

use bedrock_sim::{stream, Gate, Script, StreamStep};
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::task::JoinSet;

const LIMIT: usize = 4;
const REQUESTS: usize = 10 * LIMIT;

/// Every answer of the model waits for `gate`, streamed or not.
fn stalled_model(gate: &Gate) -> bedrock_sim::SimBuilder {
    let mut steps = stream::text(&["held", " answer"], "end_turn", (1, 2));
    steps.insert(0, StreamStep::WaitFor(gate.clone()));
    sim().script(CLAUDE, Script::Stream(steps))
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test]
async fn ten_times_the_limit_at_once_is_served_up_to_the_limit_and_shed_past_it() {
    let gate = Gate::new();
    let config = format!("[server]\nmax_concurrent_requests = {LIMIT}\n{BASE_CONFIG}");
    let gw = TestGateway::start_with_config(stalled_model(&gate), &config, &[]).await;

    // Half streamed, half not, all at once; one connection each.
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut requests = JoinSet::new();
    for i in 0..REQUESTS {
        let request = gw.chat_request(
            Some(KEY),
            &json!({"model": "sim/claude-3", "messages": user("hi"), "stream": i % 2 == 0}),
        );
        let client = client.clone();
        requests.spawn(async move {
            let response = client.request(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            (parts, body)
        });
    }

    // The model answers nothing until the gate opens, so every request that finishes before
    // then was shed, and exactly the limit's worth are left holding a slot.
    for _ in 0..REQUESTS - LIMIT {
        let (parts, body) = tokio::time::timeout(Duration::from_secs(10), requests.join_next())
            .await
            .expect("shed requests are answered at once")
            .unwrap()
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parts.status, 503, "{body}");
        assert_eq!(parts.headers["retry-after"], "1");
        assert_openai_error(&body, "overloaded");
        assert_eq!(body["error"]["type"], "server_error");
    }
    assert_eq!(requests.len(), LIMIT);

    let (status, body) = gw.get("/health", None).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, r#"{"status":"ok"}"#)
    );
    let (status, _) = gw.get("/v1/models", Some(KEY)).await;
    assert_eq!(status, 200);
    let (status, metrics) = gw.get("/metrics", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(&metrics, "gateway_shed_requests_total"),
        (REQUESTS - LIMIT) as f64
    );
    assert_eq!(metric(&metrics, "gateway_in_flight_requests"), LIMIT as f64);

    gate.open();
    while let Some(finished) = requests.join_next().await {
        let (parts, body) = finished.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert_eq!(parts.status, 200, "{text}");
        assert!(
            text.contains("held")
                && (text.contains("\"chat.completion\"") || text.ends_with("data: [DONE]\n\n")),
            "{text}"
        );
    }
    assert_eq!(
        gw.sim.requests().len(),
        LIMIT,
        "shed requests never reached Bedrock"
    );

    // Slots came back with the answers.
    let (status, body) = gw
        .chat(&json!({"model": "sim/claude-3", "messages": user("again")}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, metrics) = gw.get("/metrics", None).await;
    assert_eq!(metric(&metrics, "gateway_in_flight_requests"), 0.0);
    assert_eq!(
        metric(&metrics, "gateway_shed_requests_total"),
        (REQUESTS - LIMIT) as f64
    );
}
