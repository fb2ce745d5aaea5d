//! The sharded server `gateway serve` runs: several single-threaded runtimes on one address,
//! one metrics registry, and a shutdown that waits for every shard's in-flight requests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::time::Duration;

use bedrock_sim::{stream, Gate, Script, SimHandle, StreamStep};
use bytes::Bytes;
use common::*;
use gateway::config::GatewayConfig;
use gateway::wiring::{start_sharded, ShardedGateway};
use gateway_core::clock::SharedClock;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

const SHARDS: usize = 3;

async fn start(sim: bedrock_sim::SimBuilder) -> (SimHandle, ShardedGateway) {
    start_with(sim, "").await
}

/// `server` is more of the `[server]` table.
async fn start_with(sim: bedrock_sim::SimBuilder, server: &str) -> (SimHandle, ShardedGateway) {
    let sim = sim.start().await.unwrap();
    let config = sharded_config(&sim, BASE_CONFIG, server);
    let gateway = start_config(&config).await;
    (sim, gateway)
}

/// `base` (a configuration without `[server]`) on a free loopback port with [`SHARDS`]
/// threads, `server` more of the `[server]` table, in front of `sim`.
fn sharded_config(sim: &SimHandle, base: &str, server: &str) -> GatewayConfig {
    let sim_url = sim.url();
    let text =
        format!("{base}\n[server]\nlisten = \"127.0.0.1:0\"\nworker_threads = {SHARDS}\n{server}");
    GatewayConfig::parse(&text, &|name| match name {
        "SIM_URL" => Some(sim_url.clone()),
        "SIM_SECRET" => Some(SECRET.into()),
        _ => None,
    })
    .unwrap()
}

async fn start_config(config: &GatewayConfig) -> ShardedGateway {
    // Boxed: starting every shard is a large future.
    let gateway = Box::pin(start_sharded(config, SharedClock::system()))
        .await
        .unwrap();
    assert_eq!(gateway.shards(), SHARDS);
    gateway
}

fn chat(url: &str, stream: bool) -> http::Request<Full<Bytes>> {
    let body = json!({"model": "sim/claude-3", "messages": user("hi"), "stream": stream});
    http::Request::post(format!("{url}/v1/chat/completions"))
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

#[tokio::test]
async fn every_shard_serves_and_metrics_count_them_all() {
    let (_sim, gateway) = start(sim()).await;
    // No pooling: each request is a new connection, which the kernel spreads over the shards.
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http();
    let requests = 24;
    for _ in 0..requests {
        let response = client.request(chat(&gateway.url(), false)).await.unwrap();
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap();
    }
    let response = client
        .request(
            http::Request::get(format!("{}/metrics", gateway.url()))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let counted: f64 = text
        .lines()
        .filter(|line| {
            line.starts_with("gateway_http_requests_total{")
                && line.contains("sim/claude-3")
                && line.contains("status=\"2xx\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(counted, f64::from(requests), "{text}");
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_in_flight_streams_finish_and_stops_every_shard() {
    let gate = Gate::new();
    let mut steps = stream::text(&["first", " second"], "end_turn", (1, 2));
    steps.insert(2, StreamStep::WaitFor(gate.clone()));
    let (_sim, gateway) = start(sim().script(CLAUDE, Script::Stream(steps))).await;
    let url = gateway.url();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let mut reader = SseReader::new(client.request(chat(&url, true)).await.unwrap());
    assert!(reader.next().await.is_some(), "the role chunk");
    assert!(reader.next().await.is_some(), "the first text chunk");

    let shutdown = tokio::spawn(gateway.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !shutdown.is_finished(),
        "shutdown did not wait for the open stream"
    );
    gate.open();
    let rest = reader.rest().await;
    assert_eq!(rest.last().map(String::as_str), Some("[DONE]"));
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let fresh = Client::builder(TokioExecutor::new()).build_http();
    assert!(
        fresh.request(chat(&url, false)).await.is_err(),
        "a shard still accepts after shutdown"
    );
}

#[tokio::test]
async fn the_concurrency_limit_is_the_whole_process_not_each_shard() {
    let gate = Gate::new();
    let mut steps = stream::text(&["held"], "end_turn", (1, 1));
    steps.insert(0, StreamStep::WaitFor(gate.clone()));
    let (sim, gateway) = start_with(
        sim().script(CLAUDE, Script::Stream(steps)),
        "max_concurrent_requests = 1\n",
    )
    .await;
    let url = gateway.url();
    // No pooling: each request is a new connection, which the kernel spreads over the shards.
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http();
    // A stream's headers wait for its first event (so it can still fail over), which the
    // gate holds back: the held chat is in flight once Bedrock has it.
    let held = tokio::spawn(client.request(chat(&url, true)));
    tokio::time::timeout(Duration::from_secs(10), sim.wait_calls(CLAUDE, 1))
        .await
        .expect("the held chat reaches Bedrock");
    // With a limit per shard, most of these would land on a shard with a free slot.
    for _ in 0..4 * SHARDS {
        let response =
            tokio::time::timeout(Duration::from_secs(5), client.request(chat(&url, false)))
                .await
                .expect("shed at once, not served by a shard with a slot of its own")
                .unwrap();
        assert_eq!(response.status(), 503);
    }
    gate.open();
    let held = held.await.unwrap().unwrap();
    assert_eq!(held.status(), 200);
    let held = held.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&held).ends_with("data: [DONE]\n\n"));
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_reload_reaches_every_shard_and_metrics_follow_the_new_accounts() {
    let (sim, mut gateway) = start(sim()).await;
    // The strict key goes, a key and an account come.
    let base = format!(
        "{}\n[accounts.other]\ntype = \"aws-bedrock\"\nregion = \"us-west-2\"\nendpoint = \"${{SIM_URL}}\"\n\
         auth = {{ type = \"access-key\", access_key_id = \"{ACCESS_KEY_ID}\", secret_access_key = \"${{SIM_SECRET}}\" }}\n\
         models.claude-3 = {{ model_id = \"{CLAUDE}\" }}\n",
        BASE_CONFIG.replace(
            "{ name = \"strict\", key = \"test-strict-key\", finish_reason_style = \"strict\" }",
            "{ name = \"new\", key = \"test-new-gateway-key\" }",
        )
    );
    let config = sharded_config(&sim, &base, "");
    gateway.reload(&config).await.unwrap();

    // No pooling: each request is a new connection, which the kernel spreads over the shards.
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Full<Bytes>>();
    let models = |key: &str| {
        http::Request::get(format!("{}/v1/models", gateway.url()))
            .header("authorization", format!("Bearer {key}"))
            .body(Full::default())
            .unwrap()
    };
    for _ in 0..4 * SHARDS {
        let response = client
            .request(models("test-new-gateway-key"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(
            String::from_utf8_lossy(&body).contains("\"other/claude-3\""),
            "every shard lists the new account's model"
        );
        let response = client.request(models(STRICT_KEY)).await.unwrap();
        assert_eq!(response.status(), 401, "no shard knows the removed key");
    }
    let response = client
        .request(
            http::Request::get(format!("{}/metrics", gateway.url()))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains(r#"gateway_upstream_retries_total{account="other",reason="throttling"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"gateway_http_requests_total{endpoint="models",model="other",status="4xx"}"#
        ),
        "the metrics go on across the reload: {text}"
    );
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_reload_turns_the_console_on_everywhere_and_its_traffic_history_carries_on() {
    let (sim, mut gateway) = start(sim()).await;
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Full<Bytes>>();
    let url = gateway.url();
    let status_of = |key: &str| {
        http::Request::get(format!("{url}/console/api/traffic"))
            .header("authorization", format!("Bearer {key}"))
            .body(Full::default())
            .unwrap()
    };
    let response = client
        .request(status_of("console-admin-key"))
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "disabled until configured");
    for _ in 0..2 {
        assert_eq!(
            client.request(chat(&url, false)).await.unwrap().status(),
            200
        );
    }
    gateway.traffic_sampler().sample_now();

    let base = format!(
        "{BASE_CONFIG}\n[console]\nadmin_keys = [{{ name = \"ops\", key = \"console-admin-key\" }}]\n"
    );
    gateway
        .reload(&sharded_config(&sim, &base, ""))
        .await
        .unwrap();
    // Every shard (new connections spread over them) knows the admin key now.
    for _ in 0..4 * SHARDS {
        let response = client
            .request(status_of("console-admin-key"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let traffic: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let requests: f64 = traffic["models"][0]["requests_per_second"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rate| rate.as_f64().unwrap() * 5.0)
            .sum();
        assert!(
            (requests - 2.0).abs() < 1e-9,
            "the requests from before the reload: {traffic}"
        );
    }
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_reload_keeps_counting_the_keys_limits_where_it_was() {
    let limited = BASE_CONFIG.replace(
        "{ name = \"strict\", key = \"test-strict-key\", finish_reason_style = \"strict\" }",
        "{ name = \"limited\", key = \"test-limited-key\", rpm = 1 }",
    );
    let sim = sim().start().await.unwrap();
    let config = sharded_config(&sim, &limited, "");
    let mut gateway = start_config(&config).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url = gateway.url();
    let chat_as_limited = || {
        let body = json!({"model": "sim/claude-3", "messages": user("hi")});
        http::Request::post(format!("{url}/v1/chat/completions"))
            .header("authorization", "Bearer test-limited-key")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    };
    let first = client.request(chat_as_limited()).await.unwrap();
    assert_eq!(first.status(), 200);

    // The same file again: the key's minute must not start over.
    gateway.reload(&config).await.unwrap();
    let second = client.request(chat_as_limited()).await.unwrap();
    assert_eq!(
        second.status(),
        429,
        "a reload must not give a key its requests back"
    );
    gateway.shutdown().await.unwrap();
}
