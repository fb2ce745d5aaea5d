//! `TestGateway`: the real gateway and `bedrock-sim` on loopback, plus a small HTTP client.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

pub mod otlp;
#[cfg(unix)]
pub mod process;

#[allow(
    unused_imports,
    reason = "not every test binary runs a process or a collector"
)]
pub use otlp::otlp_collector;
#[allow(
    unused_imports,
    reason = "not every test binary runs a process or a collector"
)]
#[cfg(unix)]
pub use process::{message_of, GatewayProcess};

use std::time::Duration;

use bedrock_sim::{SimBuilder, SimHandle};
use bytes::Bytes;
use futures_util::StreamExt;
use gateway::config::GatewayConfig;
use gateway::wiring::{start_on_seeded, RunningGateway};
use gateway_core::clock::SharedClock;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpListener;

/// The environment the config fixtures are read with: every variable is set except
/// `NOT_SET_ANYWHERE` and the api-key fallback.
pub fn fixture_env(name: &str) -> Option<String> {
    match name {
        "NOT_SET_ANYWHERE" | gateway::config::API_KEY_ENV => None,
        other => Some(format!("value-of-{other}")),
    }
}

pub const KEY: &str = "test-gateway-key";
pub const STRICT_KEY: &str = "test-strict-key";
pub const ACCESS_KEY_ID: &str = "AKIDTESTGATEWAY00001";
pub const SECRET: &str = "test/secret/key/for/the/simulator";
pub const CLAUDE: &str = "anthropic.claude-3-sonnet-20240229-v1:0";
pub const PROFILE_ARN: &str =
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0";

/// The configuration every scenario starts from; `${SIM_URL}` is the simulator.
pub const BASE_CONFIG: &str = r#"
[auth]
keys = [
  { name = "tests", key = "test-gateway-key" },
  { name = "strict", key = "test-strict-key", finish_reason_style = "strict" },
]

[accounts.sim]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "${SIM_URL}"
auth = { type = "access-key", access_key_id = "AKIDTESTGATEWAY00001", secret_access_key = "${SIM_SECRET}" }
# These tests show what one Bedrock answer becomes; retries have tests of their own.
retry = { max_attempts = 1 }

[accounts.sim.models.claude-3]
model_id = "anthropic.claude-3-sonnet-20240229-v1:0"

[accounts.sim.models.profile]
model_id = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
"#;

pub fn sim() -> SimBuilder {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    bedrock_sim::BedrockSim::builder().access_key(ACCESS_KEY_ID, SECRET)
}

pub struct TestGateway {
    pub sim: SimHandle,
    pub gateway: RunningGateway,
    client: GatewayClient,
}

/// Its requests go to the gateway: `gw.chat(...)`, `gw.get(...)`.
impl std::ops::Deref for TestGateway {
    type Target = GatewayClient;

    fn deref(&self) -> &GatewayClient {
        &self.client
    }
}

/// An HTTP client of one gateway, in process or not.
pub struct GatewayClient {
    base: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl TestGateway {
    /// The simulator as built, and the base config.
    pub async fn start(sim: SimBuilder) -> Self {
        Self::start_with_config(sim, BASE_CONFIG, &[]).await
    }

    /// `config` may use `${SIM_URL}`, `${SIM_SECRET}` and the extra variables given.
    pub async fn start_with_config(sim: SimBuilder, config: &str, vars: &[(&str, &str)]) -> Self {
        Self::start_with_clock(sim, config, vars, SharedClock::system()).await
    }

    /// As [`TestGateway::start_with_config`], with the gateway on `clock`.
    pub async fn start_with_clock(
        sim: SimBuilder,
        config: &str,
        vars: &[(&str, &str)],
        clock: SharedClock,
    ) -> Self {
        let sim = sim.start().await.unwrap();
        Self::serve(sim, config, vars, clock, None).await
    }

    /// The gateway in front of a simulator already started (`${SIM_URL}`; other simulators,
    /// e.g. one per account, through `vars`), on `clock`, with weighted virtual models drawing
    /// from `weighted_seed` when given.
    pub async fn serve(
        sim: SimHandle,
        config: &str,
        vars: &[(&str, &str)],
        clock: SharedClock,
        weighted_seed: Option<u64>,
    ) -> Self {
        let sim_url = sim.url();
        let config = GatewayConfig::parse(config, &|name| match name {
            "SIM_URL" => Some(sim_url.clone()),
            "SIM_SECRET" => Some(SECRET.into()),
            other => vars
                .iter()
                .find(|(k, _)| *k == other)
                .map(|(_, v)| (*v).to_owned()),
        })
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        // Boxed: starting a gateway is a large future, and every test awaits this one.
        let gateway = Box::pin(start_on_seeded(&config, listener, clock, weighted_seed))
            .await
            .unwrap();
        let client = GatewayClient::new(gateway.url());
        Self {
            sim,
            gateway,
            client,
        }
    }
}

impl GatewayClient {
    /// A client of the gateway at `base` (`http://host:port`).
    pub fn new(base: String) -> Self {
        Self {
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, request: http::Request<Full<Bytes>>) -> http::Response<Incoming> {
        tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .expect("the gateway answers within 30 s")
            .unwrap()
    }

    pub fn chat_request(&self, key: Option<&str>, body: &Value) -> http::Request<Full<Bytes>> {
        let mut builder = http::Request::post(self.url("/v1/chat/completions"))
            .header("content-type", "application/json");
        if let Some(key) = key {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        builder
            .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
            .unwrap()
    }

    /// POST /v1/chat/completions and read the whole JSON answer.
    pub async fn chat(&self, body: &Value) -> (http::StatusCode, Value) {
        self.chat_as(Some(KEY), body).await
    }

    pub async fn chat_as(&self, key: Option<&str>, body: &Value) -> (http::StatusCode, Value) {
        let response = self.send(self.chat_request(key, body)).await;
        json_of(response).await
    }

    /// POST /v1/chat/completions as `key`: the response's head (headers too) and JSON body.
    pub async fn chat_parts(&self, key: &str, body: &Value) -> (http::response::Parts, Value) {
        let response = self.send(self.chat_request(Some(key), body)).await;
        let (parts, body) = response.into_parts();
        let (_, value) = json_of(http::Response::from_parts(parts.clone(), body)).await;
        (parts, value)
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> (http::StatusCode, String) {
        let mut builder = http::Request::get(self.url(path));
        if let Some(key) = key {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        let response = self.send(builder.body(Full::default()).unwrap()).await;
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Starts a streaming request; the caller reads events with [`SseReader`].
    pub async fn stream(&self, body: &Value) -> http::Response<Incoming> {
        self.send(self.chat_request(Some(KEY), body)).await
    }
}

pub async fn json_of(response: http::Response<Incoming>) -> (http::StatusCode, Value) {
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, value)
}

/// Reads `data: ...` events one at a time, as they arrive.
pub struct SseReader {
    body: http_body_util::BodyDataStream<Incoming>,
    buffer: String,
}

impl SseReader {
    pub fn new(response: http::Response<Incoming>) -> Self {
        Self {
            body: response.into_body().into_data_stream(),
            buffer: String::new(),
        }
    }

    /// The next event's data, or None when the body ended. Waits at most 10 s.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect::<Vec<_>>()
                    .join("\n");
                return Some(data);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an SSE event within 10 s");
            match chunk {
                Some(Ok(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Every remaining event.
    pub async fn rest(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

/// A response header as text.
pub fn header<'a>(parts: &'a http::response::Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).map(|value| value.to_str().unwrap())
}

/// The value of one exact series line of `/metrics` (`name{labels}`), `None` when it is not
/// exposed.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The OpenAI error shape, with its parts.
pub fn assert_openai_error(body: &Value, code: &str) {
    let error = &body["error"];
    assert!(error["message"].is_string(), "error.message in {body}");
    assert!(error["type"].is_string(), "error.type in {body}");
    assert_eq!(error["code"], code, "error.code in {body}");
    assert!(error.get("param").is_some(), "error.param in {body}");
}

pub fn user(text: &str) -> Value {
    serde_json::json!([{"role": "user", "content": text}])
}
