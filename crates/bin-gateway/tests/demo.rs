//! `gateway demo`: every model it lists answers as its description says, through the real
//! demo (simulator and gateway as `gateway demo` starts them).

#![cfg(feature = "demo")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use gateway::demo::{instructions, start_demo, Demo, DEMO_ADMIN_KEY, DEMO_CONFIG, DEMO_KEY};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use common::json_of;

struct DemoClient {
    demo: Demo,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl DemoClient {
    async fn start() -> Self {
        let demo = start_demo("127.0.0.1:0".parse().unwrap())
            .await
            .expect("the demo starts");
        Self {
            demo,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn chat(&self, body: &Value) -> (http::StatusCode, Value) {
        json_of(self.send(body).await).await
    }

    async fn embed(&self, body: &Value) -> (http::StatusCode, Value) {
        json_of(self.send_to("/v1/embeddings", body).await).await
    }

    async fn send(&self, body: &Value) -> http::Response<Incoming> {
        self.send_to("/v1/chat/completions", body).await
    }

    async fn send_to(&self, path: &str, body: &Value) -> http::Response<Incoming> {
        let request = http::Request::post(format!("{}{path}", self.demo.gateway.url()))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {DEMO_KEY}"))
            .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
            .unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .expect("the demo answers within 30 s")
            .unwrap()
    }

    async fn metrics(&self) -> String {
        let request = http::Request::get(format!("{}/metrics", self.demo.gateway.url()))
            .body(Full::default())
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    async fn shutdown(self) {
        self.demo.sim.shutdown();
        self.demo.gateway.shutdown().await.unwrap();
    }
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// The model names `demo.toml` configures, as clients write them: every account's
/// `<account>/<model>`, then the virtual models.
fn configured_models() -> Vec<String> {
    let config: toml::Value = toml::from_str(DEMO_CONFIG).unwrap();
    let mut names = Vec::new();
    for (account, settings) in config["accounts"].as_table().unwrap() {
        for model in settings["models"].as_table().unwrap().keys() {
            names.push(format!("{account}/{model}"));
        }
    }
    names.extend(config["virtual_models"].as_table().unwrap().keys().cloned());
    names
}

#[test]
fn the_instructions_list_every_configured_model() {
    let text = instructions("http://127.0.0.1:8080");
    for model in configured_models() {
        assert!(text.contains(&model), "{model} missing from:\n{text}");
    }
}

#[tokio::test]
async fn the_console_is_on_with_the_admin_key_the_banner_prints() {
    let text = instructions("http://127.0.0.1:8080");
    assert!(text.contains("http://127.0.0.1:8080/console"), "{text}");
    assert!(text.contains(DEMO_ADMIN_KEY), "{text}");
    let demo = DemoClient::start().await;
    let request = http::Request::get(format!("{}/console/api/status", demo.demo.gateway.url()))
        .header("authorization", format!("Bearer {DEMO_ADMIN_KEY}"))
        .body(Full::default())
        .unwrap();
    let (status, body) = json_of(demo.client.request(request).await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let accounts: Vec<&str> = body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|account| account["name"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, ["demo", "demo-east", "demo-west"], "{body}");
    assert!(!body.to_string().contains("demo/secret"), "{body}");
    demo.shutdown().await;
}

#[tokio::test]
async fn every_model_answers_as_described() {
    let demo = DemoClient::start().await;
    let expected_status = |model: &str| match model {
        "demo/throttled" | "demo-east/claude-3" => 429,
        _ => 200,
    };
    for model in configured_models() {
        let (status, body) = if model.ends_with("-embed") {
            demo.embed(&json!({"model": model, "input": ["Hello", "world"]}))
                .await
        } else {
            demo.chat(&json!({"model": model, "messages": user("Hello")}))
                .await
        };
        assert_eq!(status.as_u16(), expected_status(&model), "{model}: {body}");
    }
    demo.shutdown().await;
}

#[tokio::test]
async fn the_thinker_reasons_answers_in_json_and_caches() {
    let demo = DemoClient::start().await;
    let (status, body) = demo
        .chat(&json!({"model": "demo/thinker", "reasoning_effort": "low", "messages": user("Hi")}))
        .await;
    assert_eq!(status, 200, "{body}");
    let message = &body["choices"][0]["message"];
    assert!(
        message["reasoning_content"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{body}"
    );
    assert_eq!(message["thinking_blocks"][0]["type"], "thinking", "{body}");
    assert!(
        message["thinking_blocks"][0]["signature"].is_string(),
        "{body}"
    );

    // Claude Sonnet 4.5 has native structured output: outputConfig, not a forced tool.
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}},
        "required": ["city"], "additionalProperties": false});
    let (status, body) = demo
        .chat(&json!({"model": "demo/thinker", "messages": user("Where?"),
            "response_format": {"type": "json_schema",
                "json_schema": {"name": "place", "schema": schema}}}))
        .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value =
        serde_json::from_str(body["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert!(answer["city"].is_string(), "{body}");
    let sent = demo.demo.sim.requests().last().unwrap().body.clone();
    assert!(sent.pointer("/outputConfig/textFormat").is_some(), "{sent}");

    let cached = json!({"model": "demo/thinker", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "You are a careful assistant.",
            "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "Hello"}]});
    let (_, first) = demo.chat(&cached).await;
    let (_, second) = demo.chat(&cached).await;
    assert!(
        first["usage"]["cache_creation_input_tokens"].as_u64() > Some(0),
        "{first}"
    );
    assert!(
        second["usage"]["cache_read_input_tokens"].as_u64() > Some(0),
        "{second}"
    );
    demo.shutdown().await;
}

#[tokio::test]
async fn the_thinking_tool_loop_takes_its_thinking_blocks_back() {
    let demo = DemoClient::start().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let (status, first) = demo
        .chat(
            &json!({"model": "demo/thinker-tools", "reasoning_effort": "low",
            "tools": tools, "messages": user("Weather in Paris?")}),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let assistant = &first["choices"][0]["message"];
    let call = &assistant["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather", "{first}");
    let (status, second) = demo
        .chat(
            &json!({"model": "demo/thinker-tools", "reasoning_effort": "low", "tools": tools,
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": assistant["tool_calls"],
                    "thinking_blocks": assistant["thinking_blocks"]},
                {"role": "tool", "tool_call_id": call["id"], "content": "18 C, sunny"}]}),
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        second["choices"][0]["message"]["content"],
        "get_weather returned: 18 C, sunny"
    );
    demo.shutdown().await;
}

#[tokio::test]
async fn the_on_demand_model_is_retried_through_its_profile_and_nova_forces_a_tool() {
    let demo = DemoClient::start().await;
    let (status, body) = demo
        .chat(&json!({"model": "demo/on-demand", "messages": user("Hi")}))
        .await;
    assert_eq!(status, 200, "{body}");
    let called: Vec<String> = demo
        .demo
        .sim
        .requests()
        .into_iter()
        .map(|r| r.model_id)
        .collect();
    assert_eq!(
        called,
        [
            "anthropic.claude-haiku-4-5-20251001-v1:0",
            "us.anthropic.claude-haiku-4-5-20251001-v1:0"
        ]
    );

    let (status, body) = demo
        .chat(&json!({"model": "demo/nova", "messages": user("Give JSON"),
            "response_format": {"type": "json_object"}}))
        .await;
    assert_eq!(status, 200, "{body}");
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "stop", "{body}");
    assert!(choice["message"]["tool_calls"].is_null(), "{body}");
    let content: Value = serde_json::from_str(choice["message"]["content"].as_str().unwrap())
        .expect("the forced tool's input comes back as JSON text");
    assert!(content.is_object(), "{body}");
    let sent = demo.demo.sim.requests().last().unwrap().body.clone();
    assert_eq!(
        sent.pointer("/toolConfig/toolChoice/tool/name"),
        Some(&json!("json_response")),
        "{sent}"
    );
    demo.shutdown().await;
}

#[tokio::test]
async fn claude_ha_fails_over_to_the_west_and_then_skips_the_east() {
    let demo = DemoClient::start().await;
    let body = json!({"model": "claude-ha", "messages": user("Hello")});
    for _ in 0..3 {
        let response = demo.send(&body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-gateway-target"], "demo-west/claude-3");
    }
    // Two throttled answers opened the east's breaker: the third request skipped it.
    assert_eq!(demo.demo.sim.calls("demo.throttled"), 2);
    let metrics = demo.metrics().await;
    for line in [
        r#"gateway_circuit_state{target="demo-east/claude-3"} 1"#,
        r#"gateway_failovers_total{from="demo-east/claude-3",reason="throttled"} 2"#,
        r#"gateway_circuit_skips_total{target="demo-east/claude-3"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    demo.shutdown().await;
}
