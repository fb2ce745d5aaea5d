//! The HTTP server end to end on loopback, with a fake provider: auth, limits, routing,
//! errors, strict parameters, streaming, disconnects, metrics, shutdown, and governance (key
//! limits and budgets, their headers, cost and usage metrics).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "the harness outside #[test] fns should panic on a failed setup too"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use gateway_adapter_http::{
    serve, GatewayKey, HttpApp, HttpSettings, LimitBackendErrors, RetryCounters,
};
use gateway_core::clock::{FixedClock, SharedClock};
use gateway_core::guardrail::GuardrailPolicy;
use gateway_core::{
    ChatEvent, ChatEventStream, ChatProvider, ChatRequest, ChatResponse, ChatService,
    CircuitBreakerSettings, CircuitBreakers, FinishReasonStyle, InMemoryLimits, ModelCatalog,
    ModelEntry, OnBackendError, Price, ProviderError, ProviderRequest, RequestFeature, StopReason,
    Strategy, Usage, VirtualModelEntry,
};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};

const KEY: &str = "sk-test-team-a";
const STRICT_KEY: &str = "sk-test-strict";
/// A key whose clients may send parameters Bedrock cannot honour: they are dropped.
const DROP_KEY: &str = "sk-test-dropping";
/// `rpm = 2`, `tpm = 1000`.
const RPM_KEY: &str = "sk-test-rpm-limited";
/// `tpm = 50`: two answers of 28 tokens use it up.
const TPM_KEY: &str = "sk-test-tpm-limited";
/// `budget_usd = 0.0002`: two answers from `acct/priced` (0.00012 USD each) spend it.
const BUDGET_KEY: &str = "sk-test-budgeted";
/// `acct/priced`'s price: 3 USD per million input tokens, 15 per million output tokens.
const INPUT_PRICE: f64 = 3.0;
const OUTPUT_PRICE: f64 = 15.0;
const CREATED: u64 = 1_741_339_101;
/// A deadline for things that must happen promptly; never a way to wait for them.
const DEADLINE: Duration = Duration::from_secs(5);

fn no_instance_metadata() {
    static ONCE: Once = Once::new();
    // Nothing here builds the AWS default chain, but no test process may ever probe IMDS.
    ONCE.call_once(|| std::env::set_var("AWS_EC2_METADATA_DISABLED", "true"));
}

fn no_reasoning() -> ProviderError {
    ProviderError::Unsupported {
        feature: RequestFeature::Reasoning,
        message: "model `no-reasoning` cannot reason".into(),
    }
}

/// A provider whose behaviour is chosen by the route's model id.
#[derive(Default)]
struct FakeProvider {
    calls: AtomicUsize,
    last_request: Mutex<Option<ChatRequest>>,
    /// Signalled when an `endless` stream is dropped.
    stream_dropped: Mutex<Option<oneshot::Sender<()>>>,
    /// `slow` completions signal `entered`, then wait for `release`.
    entered: Notify,
    release: Notify,
}

fn response(text: &str, stop_reason: StopReason) -> ChatResponse {
    ChatResponse {
        text: Some(text.into()),
        reasoning: vec![],
        tool_calls: vec![],
        stop_reason,
        usage: Usage {
            input_tokens: 25,
            output_tokens: 3,
            total_tokens: 28,
            cache_read_input_tokens: None,
            cache_write_input_tokens: None,
        },
        guardrail_trace: None,
        additional_model_response_fields: None,
    }
}

fn events() -> Vec<Result<ChatEvent, ProviderError>> {
    vec![
        Ok(ChatEvent::MessageStart),
        Ok(ChatEvent::TextDelta("Hel".into())),
        Ok(ChatEvent::TextDelta("lo".into())),
        Ok(ChatEvent::Stop(StopReason::EndTurn)),
        Ok(ChatEvent::Metadata {
            usage: Usage::default(),
            guardrail_trace: None,
        }),
    ]
}

struct DropSignal(Option<oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[async_trait]
impl ChatProvider for FakeProvider {
    async fn complete<'a>(&self, call: ProviderRequest<'a>) -> Result<ChatResponse, ProviderError> {
        let route = call.route;
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.last_request.lock().unwrap() = Some(call.chat.clone());
        match route.model_id.as_str() {
            "text" => Ok(response("Hello!", StopReason::EndTurn)),
            "guardrail" => Ok(response("{NAME}", StopReason::GuardrailIntervened)),
            "throttled" => Err(ProviderError::Throttled {
                message: "Too many requests, please wait".into(),
            }),
            "unauthorized" => Err(ProviderError::Unauthorized {
                account: route.account.clone(),
                message: "The security token included in the request is invalid".into(),
            }),
            "no-reasoning" => Err(no_reasoning()),
            "slow" => {
                self.entered.notify_one();
                self.release.notified().await;
                Ok(response("finally", StopReason::EndTurn))
            }
            other => panic!("no behaviour for {other}"),
        }
    }

    async fn stream<'a>(
        &self,
        call: ProviderRequest<'a>,
    ) -> Result<ChatEventStream, ProviderError> {
        let route = call.route;
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.last_request.lock().unwrap() = Some(call.chat.clone());
        match route.model_id.as_str() {
            "text" => Ok(Box::pin(futures_util::stream::iter(events()))),
            "throttled" => Err(ProviderError::Throttled {
                message: "Too many requests, please wait".into(),
            }),
            "no-reasoning" => Err(no_reasoning()),
            "midstream-error" => {
                let mut items = events();
                items.truncate(2);
                items.push(Err(ProviderError::ModelError {
                    message: "The model stopped unexpectedly".into(),
                }));
                items.push(Ok(ChatEvent::TextDelta("never sent".into())));
                Ok(Box::pin(futures_util::stream::iter(items)))
            }
            "endless" => {
                let guard = DropSignal(self.stream_dropped.lock().unwrap().take());
                let mut items = events();
                items.truncate(2);
                let stream = futures_util::stream::iter(items)
                    .chain(futures_util::stream::pending())
                    .map(move |event| {
                        let _keep_alive_until_dropped = &guard;
                        event
                    });
                Ok(Box::pin(stream))
            }
            other => panic!("no behaviour for {other}"),
        }
    }
}

struct TestGateway {
    addr: std::net::SocketAddr,
    provider: Arc<FakeProvider>,
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestGateway {
    async fn start() -> Self {
        Self::start_with(HttpSettings {
            max_body_bytes: 64 * 1024,
            ..HttpSettings::default()
        })
        .await
    }

    async fn start_with(mut settings: HttpSettings) -> Self {
        no_instance_metadata();
        let entry = |model: &str| ModelEntry {
            account: "acct".into(),
            model: model.into(),
            model_id: model.into(),
            region: "us-east-1".into(),
            guardrail: GuardrailPolicy::open(),
            finish_reason_style: FinishReasonStyle::Bedrock,
            family: None,
            drop_unsupported_params: false,
            price: None,
            kind: gateway_core::ModelKind::Chat,
        };
        // Throttled like `throttled`, behind a circuit breaker.
        let flaky = ModelEntry {
            model: "flaky".into(),
            ..entry("throttled")
        };
        // Answers like `text`, at a price.
        let priced = ModelEntry {
            model: "priced".into(),
            price: Some(Price {
                input: INPUT_PRICE,
                output: OUTPUT_PRICE,
                ..Price::default()
            }),
            ..entry("text")
        };
        let catalog = ModelCatalog::new(
            [
                "text",
                "guardrail",
                "throttled",
                "unauthorized",
                "slow",
                "midstream-error",
                "endless",
                "no-reasoning",
            ]
            .map(entry)
            .into_iter()
            .chain([flaky, priced]),
        )
        .unwrap()
        .with_virtual_models([
            failover("ha", &["acct/throttled", "acct/text"]),
            failover("ha-down", &["acct/throttled", "acct/unauthorized"]),
            failover("flaky-ha", &["acct/flaky", "acct/text"]),
            failover("throttled-then-flaky", &["acct/throttled", "acct/flaky"]),
        ])
        .unwrap();
        let clock = SharedClock::new(FixedClock::at_unix(CREATED));
        let breakers = CircuitBreakers::new(
            clock.clone(),
            [(
                "acct/flaky".to_owned(),
                CircuitBreakerSettings {
                    failures: std::num::NonZeroU32::new(2).unwrap(),
                    // The clock stands still: once open, the breaker stays open.
                    cooldown: Duration::from_secs(60),
                },
            )],
        );
        let provider = Arc::new(FakeProvider::default());
        let service = ChatService::new(Arc::new(catalog), provider.clone())
            .with_circuit_breakers(Arc::new(breakers))
            .with_limits(Arc::new(InMemoryLimits::new()), OnBackendError::Allow)
            .with_clock(clock.clone());
        settings.keys = vec![
            GatewayKey::new("team-a", KEY.into()),
            GatewayKey {
                finish_reason_style: Some(FinishReasonStyle::Strict),
                ..GatewayKey::new("strict", STRICT_KEY.into())
            },
            GatewayKey {
                drop_unsupported_params: Some(true),
                ..GatewayKey::new("dropping", DROP_KEY.into())
            },
            GatewayKey {
                rpm: Some(2),
                tpm: Some(1000),
                ..GatewayKey::new("rpm-limited", RPM_KEY.into())
            },
            GatewayKey {
                tpm: Some(50),
                ..GatewayKey::new("tpm-limited", TPM_KEY.into())
            },
            GatewayKey {
                budget_usd: Some(0.0002),
                ..GatewayKey::new("budgeted", BUDGET_KEY.into())
            },
        ];
        let app = HttpApp::new(service, settings, clock);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Arc::new(app), async {
            let _ = rx.await;
        }));
        Self {
            addr,
            provider,
            shutdown: Some(tx),
            server,
        }
    }

    fn calls(&self) -> usize {
        self.provider.calls.load(Ordering::SeqCst)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: impl Into<Bytes>,
    ) -> (http::response::Parts, Bytes) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = http::Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("content-type", "application/json");
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let request = request.body(Full::new(body.into())).unwrap();
        let response = tokio::time::timeout(DEADLINE, client.request(request))
            .await
            .expect("the gateway answers in time")
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(DEADLINE, body.collect())
            .await
            .expect("the body ends in time")
            .unwrap()
            .to_bytes();
        (parts, body)
    }

    async fn chat(&self, body: Value) -> (http::response::Parts, Value) {
        self.chat_as(KEY, body).await
    }

    /// A chat with `key`; the body as JSON, or as a string holding the SSE text.
    async fn chat_as(&self, key: &str, body: Value) -> (http::response::Parts, Value) {
        let (parts, body) = self
            .send("POST", "/v1/chat/completions", Some(key), body.to_string())
            .await;
        let body = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        (parts, body)
    }

    async fn metrics(&self) -> String {
        let (_, body) = self.send("GET", "/metrics", None, "").await;
        String::from_utf8(body.to_vec()).unwrap()
    }

    fn last_request(&self) -> ChatRequest {
        self.provider.last_request.lock().unwrap().clone().unwrap()
    }
}

fn failover(name: &str, targets: &[&str]) -> VirtualModelEntry {
    VirtualModelEntry {
        name: name.into(),
        strategy: Strategy::Failover,
        targets: targets.iter().map(|&t| t.into()).collect(),
        weights: None,
    }
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]})
}

/// Sends raw bytes and reads the answer until the server closes or the deadline passes.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_401_and_never_reaches_the_provider() {
    let gateway = TestGateway::start().await;
    let body = chat_body("acct/text").to_string();
    for key in [
        None,
        Some("sk-wrong"),
        Some("sk-test-team-a-but-longer"),
        Some(""),
    ] {
        let (parts, body) = gateway
            .send("POST", "/v1/chat/completions", key, body.clone())
            .await;
        assert_eq!(parts.status, 401, "{key:?}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], Value::Null);
    }
    let (parts, _) = gateway.send("GET", "/v1/models", None, "").await;
    assert_eq!(parts.status, 401);
    assert_eq!(gateway.calls(), 0);
}

#[tokio::test]
async fn a_completion_is_openai_json_with_the_clients_model_name() {
    let gateway = TestGateway::start().await;
    for path in ["/v1/chat/completions", "/chat/completions"] {
        let (parts, body) = gateway
            .send("POST", path, Some(KEY), chat_body("acct/text").to_string())
            .await;
        assert_eq!(parts.status, 200);
        assert_eq!(parts.headers["content-type"], "application/json");
        let body: Value = serde_json::from_slice(&body).unwrap();
        let id = body["id"].as_str().unwrap();
        assert!(id.starts_with("chatcmpl-") && id.len() >= 33, "{id}");
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["created"], CREATED);
        assert_eq!(body["model"], "acct/text");
        assert_eq!(body["provider"], "aws");
        assert_eq!(body["choices"][0]["message"]["content"], "Hello!");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"]["total_tokens"], 28);
    }
    let request = gateway
        .provider
        .last_request
        .lock()
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(request.model, "acct/text");
    assert_eq!(gateway.calls(), 2);
}

#[tokio::test]
async fn the_keys_finish_reason_style_applies() {
    let gateway = TestGateway::start().await;
    let (_, body) = gateway.chat(chat_body("acct/guardrail")).await;
    assert_eq!(body["choices"][0]["finish_reason"], "guardrail_intervened");
    let (_, body) = gateway
        .send(
            "POST",
            "/v1/chat/completions",
            Some(STRICT_KEY),
            chat_body("acct/guardrail").to_string(),
        )
        .await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(
        body["choices"][0]["bedrock_stop_reason"],
        "guardrail_intervened"
    );
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_413_without_reading_it() {
    let gateway = TestGateway::start().await;
    // Headers only: the server must answer without waiting for the gigabyte.
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ncontent-length: 1000000000\r\n\r\n"
    );
    let answer = raw_exchange(gateway.addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("request_too_large"), "{answer}");
    assert_eq!(gateway.calls(), 0);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let gateway = TestGateway::start_with(HttpSettings {
        max_body_bytes: 1024,
        ..HttpSettings::default()
    })
    .await;
    let mut request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..3 {
        request.extend_from_slice(b"200\r\n");
        request.extend_from_slice(&[b' '; 0x200]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_exchange(gateway.addr, &request).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(gateway.calls(), 0);
}

#[tokio::test]
async fn malformed_json_is_400_invalid_json() {
    let gateway = TestGateway::start().await;
    let (parts, body) = gateway
        .send("POST", "/v1/chat/completions", Some(KEY), "{\"model\": ")
        .await;
    assert_eq!(parts.status, 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
    assert_eq!(gateway.calls(), 0);
}

#[tokio::test]
async fn an_unknown_model_is_404_and_never_reaches_the_provider() {
    let gateway = TestGateway::start().await;
    for model in ["acct/nope", "nope"] {
        let (parts, body) = gateway.chat(chat_body(model)).await;
        assert_eq!(parts.status, 404, "{model}");
        assert_eq!(body["error"]["code"], "model_not_found");
        assert_eq!(body["error"]["param"], "model");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(model),
            "{body}"
        );
    }
    assert_eq!(gateway.calls(), 0);
}

#[tokio::test]
async fn provider_errors_map_to_openai_statuses() {
    let gateway = TestGateway::start().await;
    let (parts, body) = gateway.chat(chat_body("acct/throttled")).await;
    assert_eq!(parts.status, 429);
    assert_eq!(parts.headers["retry-after"], "1");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");

    // The operator's AWS credentials are wrong, not the client's key.
    let (parts, body) = gateway.chat(chat_body("acct/unauthorized")).await;
    assert_eq!(parts.status, 502);
    assert_eq!(body["error"]["code"], "upstream_unauthorized");
}

#[tokio::test]
async fn models_health_and_unknown_routes() {
    let gateway = TestGateway::start().await;
    for path in ["/v1/models", "/models"] {
        let (parts, body) = gateway.send("GET", path, Some(KEY), "").await;
        assert_eq!(parts.status, 200);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["object"], "list");
        assert_eq!(body["data"][0]["id"], "acct/text");
        assert_eq!(body["data"][0]["owned_by"], "acct");
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 14);
        let virtual_models: Vec<_> = data[10..]
            .iter()
            .map(|m| (m["id"].as_str().unwrap(), m["owned_by"].as_str().unwrap()))
            .collect();
        assert_eq!(
            virtual_models,
            [
                ("ha", "gateway"),
                ("ha-down", "gateway"),
                ("flaky-ha", "gateway"),
                ("throttled-then-flaky", "gateway")
            ]
        );
    }
    for path in ["/health", "/healthz"] {
        let (parts, body) = gateway.send("GET", path, None, "").await;
        assert_eq!(parts.status, 200, "{path}");
        assert_eq!(&body[..], br#"{"status":"ok"}"#);
    }
    // Nothing reported otherwise: an app exists, so its configuration is loaded.
    for path in ["/ready", "/readyz"] {
        let (parts, body) = gateway.send("GET", path, None, "").await;
        assert_eq!(parts.status, 200, "{path}");
        assert_eq!(&body[..], br#"{"status":"ready"}"#);
    }
    let (parts, body) = gateway.send("GET", "/v2/nothing", Some(KEY), "").await;
    assert_eq!(parts.status, 404);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "unknown_url");

    let (parts, _) = gateway
        .send("GET", "/v1/chat/completions", Some(KEY), "")
        .await;
    assert_eq!(parts.status, 405);
    assert_eq!(parts.headers["allow"], "POST");
    let (parts, _) = gateway.send("POST", "/v1/models", Some(KEY), "").await;
    assert_eq!(parts.status, 405);
}

#[tokio::test]
async fn streaming_sends_sse_chunks_then_done() {
    let gateway = TestGateway::start().await;
    let mut body = chat_body("acct/text");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (parts, body) = gateway
        .send("POST", "/v1/chat/completions", Some(KEY), body.to_string())
        .await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["content-type"], "text/event-stream");
    assert_eq!(parts.headers["cache-control"], "no-cache");
    assert_eq!(parts.headers["x-accel-buffering"], "no");
    let text = std::str::from_utf8(&body).unwrap();
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    assert!(events.iter().all(|e| e.starts_with("data: ")), "{text}");
    assert_eq!(events.last(), Some(&"data: [DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(&e["data: ".len()..]).unwrap())
        .collect();
    let ids: std::collections::HashSet<_> = chunks.iter().map(|c| c["id"].clone()).collect();
    assert_eq!(ids.len(), 1, "one id per stream");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello");
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(chunks[chunks.len() - 1]["choices"], json!([]));
    assert_eq!(chunks[chunks.len() - 1]["usage"]["total_tokens"], 0);
}

#[tokio::test]
async fn a_stream_that_fails_before_any_event_is_a_plain_http_error() {
    let gateway = TestGateway::start().await;
    let mut body = chat_body("acct/throttled");
    body["stream"] = json!(true);
    let (parts, body) = gateway.chat(body).await;
    assert_eq!(parts.status, 429);
    assert_eq!(parts.headers["content-type"], "application/json");
    assert_eq!(body["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn a_stream_error_midway_sends_one_error_event_and_no_done() {
    let gateway = TestGateway::start().await;
    let mut body = chat_body("acct/midstream-error");
    body["stream"] = json!(true);
    let (parts, body) = gateway
        .send("POST", "/v1/chat/completions", Some(KEY), body.to_string())
        .await;
    assert_eq!(parts.status, 200);
    let text = std::str::from_utf8(&body).unwrap();
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    assert_eq!(events.len(), 3, "{text}");
    let error: Value = serde_json::from_str(&events[2]["data: ".len()..]).unwrap();
    assert_eq!(
        error,
        json!({"error": {
            "message": "The model stopped unexpectedly",
            "type": "server_error",
            "code": "model_error",
            "param": null,
        }})
    );
    assert!(!text.contains("[DONE]") && !text.contains("never sent"));
}

/// A raw connection streaming `acct/endless`, once its first text delta arrived: the stream
/// is open and waiting upstream. `headers` are more request header lines (each ending `\r\n`).
async fn open_endless_stream(gateway: &TestGateway, headers: &str) -> TcpStream {
    let mut body = chat_body("acct/endless");
    body["stream"] = json!(true);
    let body = body.to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
         {headers}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("\"content\":\"Hel\"") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the server closed early");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the first chunks arrive");
    stream
}

#[tokio::test]
async fn a_client_disconnect_drops_the_providers_stream() {
    let logs = CapturedLogs::process();
    let gateway = TestGateway::start().await;
    let (dropped_tx, dropped_rx) = oneshot::channel();
    *gateway.provider.stream_dropped.lock().unwrap() = Some(dropped_tx);

    let stream = open_endless_stream(&gateway, "x-request-id: gone-1\r\n").await;
    drop(stream);

    tokio::time::timeout(DEADLINE, dropped_rx)
        .await
        .expect("the provider's stream is dropped after the client left")
        .unwrap();
    // Its line was written as the body went, before the provider's stream.
    let fields = &logs.request_line("gone-1")["fields"];
    assert_eq!(fields["client_gone"], true, "{fields}");
    assert!(fields["first_token_ms"].is_u64(), "{fields}");

    // The open-streams gauge went back down.
    let (_, metrics) = gateway.send("GET", "/metrics", None, "").await;
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    assert!(metrics.contains("gateway_open_streams 0"), "{metrics}");
}

#[tokio::test]
async fn metrics_count_requests_without_unbounded_labels() {
    let gateway = TestGateway::start().await;
    gateway.chat(chat_body("acct/text")).await;
    gateway.chat(chat_body("acct/throttled")).await;
    for i in 0..3 {
        gateway.chat(chat_body(&format!("acct/made-up-{i}"))).await;
    }
    let (parts, body) = gateway.send("GET", "/metrics", None, "").await;
    assert_eq!(parts.status, 200);
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains(
        r#"gateway_http_requests_total{endpoint="chat_completions",model="acct/text",status="2xx"} 1"#
    ), "{text}");
    assert!(text.contains(
        r#"gateway_http_requests_total{endpoint="chat_completions",model="other",status="4xx"} 3"#
    ), "{text}");
    assert!(
        text.contains(r#"gateway_upstream_errors_total{kind="throttled"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("gateway_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        !text.contains("made-up"),
        "client names never become labels"
    );
}

/// Retry counts as an upstream adapter keeps them, read anew at each scrape.
#[derive(Debug, Default)]
struct FakeRetries {
    throttled: AtomicUsize,
}

impl RetryCounters for FakeRetries {
    fn for_each_retry_count(&self, count: &mut dyn FnMut(&str, &str, u64)) {
        count(
            "acct",
            "throttling",
            self.throttled.load(Ordering::SeqCst) as u64,
        );
        count("acct", "timeout", 0);
        count("other", "throttling", 7);
    }

    fn for_each_quota_exhausted(&self, count: &mut dyn FnMut(&str, u64)) {
        count("acct", 2);
        count("other", 0);
    }
}

#[tokio::test]
async fn metrics_show_the_upstream_retry_counts_as_they_are_at_each_scrape() {
    let retries = Arc::new(FakeRetries::default());
    let gateway = TestGateway::start_with(HttpSettings {
        retry_counters: Some(retries.clone()),
        ..HttpSettings::default()
    })
    .await;
    let metrics = gateway.metrics().await;
    for line in [
        "# TYPE gateway_upstream_retries counter",
        r#"gateway_upstream_retries_total{account="acct",reason="throttling"} 0"#,
        r#"gateway_upstream_retries_total{account="acct",reason="timeout"} 0"#,
        r#"gateway_upstream_retries_total{account="other",reason="throttling"} 7"#,
        "# TYPE gateway_retry_quota_exhausted counter",
        r#"gateway_retry_quota_exhausted_total{account="acct"} 2"#,
        r#"gateway_retry_quota_exhausted_total{account="other"} 0"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    retries.throttled.store(3, Ordering::SeqCst);
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains(r#"gateway_upstream_retries_total{account="acct",reason="throttling"} 3"#),
        "{metrics}"
    );

    // Without counters, no such metric.
    let plain = TestGateway::start().await.metrics().await;
    assert!(!plain.contains("gateway_upstream_retries"), "{plain}");
}

#[tokio::test]
async fn http2_without_tls_is_served_too() {
    let gateway = TestGateway::start().await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let request = http::Request::get(gateway.url("/health"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = tokio::time::timeout(DEADLINE, client.request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let gateway = TestGateway::start_with(HttpSettings {
        header_read_timeout: Duration::from_millis(200),
        ..HttpSettings::default()
    })
    .await;
    for partial in [&b""[..], b"POST /v1/chat/completions HTTP/1.1\r\nhost:"] {
        let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
        stream.write_all(partial).await.unwrap();
        let mut buf = [0u8; 1024];
        let closed = tokio::time::timeout(DEADLINE, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {} // hyper may answer 408 first
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the server closed a stalled connection");
    }
}

#[tokio::test]
async fn garbage_never_takes_the_server_down() {
    // Some of it is an incomplete head: the short timeout closes those quickly.
    let gateway = TestGateway::start_with(HttpSettings {
        header_read_timeout: Duration::from_millis(200),
        ..HttpSettings::default()
    })
    .await;
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
        b"\r\n\r\n\r\n",
    ] {
        let _ = raw_exchange(gateway.addr, garbage).await;
    }
    let (parts, _) = gateway.send("GET", "/health", None, "").await;
    assert_eq!(parts.status, 200);
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let mut gateway = TestGateway::start().await;
    let provider = gateway.provider.clone();
    let entered = provider.entered.notified();
    let url = gateway.url("/v1/chat/completions");
    let in_flight = tokio::spawn(async move {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let request = http::Request::post(url)
            .header("authorization", format!("Bearer {KEY}"))
            .body(Full::new(Bytes::from(chat_body("acct/slow").to_string())))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    });
    tokio::time::timeout(DEADLINE, entered)
        .await
        .expect("the request reached the provider");

    gateway.shutdown.take().unwrap().send(()).unwrap();
    provider.release.notify_one();

    let (status, body) = tokio::time::timeout(DEADLINE, in_flight)
        .await
        .expect("the in-flight request finishes")
        .unwrap();
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("finally"));
    tokio::time::timeout(DEADLINE, &mut gateway.server)
        .await
        .expect("serve returns once the connection is done")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_unknown_parameter_is_400_naming_it() {
    let gateway = TestGateway::start().await;
    let mut body = chat_body("acct/text");
    // A misspelt `guardrailConfig` must not pass as "no guardrail".
    body["guardrail_config"] = json!({"guardrailIdentifier": "gr-1", "guardrailVersion": "1"});
    let (parts, body) = gateway.chat(body).await;
    assert_eq!(parts.status, 400);
    assert_eq!(
        body,
        json!({"error": {
            "message": "Unrecognized request argument supplied: guardrail_config",
            "type": "invalid_request_error",
            "code": "unknown_parameter",
            "param": "guardrail_config",
        }})
    );
    assert_eq!(gateway.calls(), 0);
}

#[tokio::test]
async fn an_unsupported_parameter_is_400_naming_it_and_never_reaches_the_provider() {
    let gateway = TestGateway::start().await;
    for stream in [false, true] {
        let mut body = chat_body("acct/text");
        body["stream"] = json!(stream);
        body["presence_penalty"] = json!(0.5);
        body["seed"] = json!(42);
        let (parts, body) = gateway.chat(body).await;
        assert_eq!(parts.status, 400, "stream: {stream}");
        assert_eq!(parts.headers["content-type"], "application/json");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "unsupported_parameter");
        // The first in the parser's fixed order, whatever the body's order.
        assert_eq!(body["error"]["param"], "presence_penalty");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("drop_unsupported_params"),
            "{body}"
        );
    }
    assert_eq!(gateway.calls(), 0);
    assert!(
        !gateway
            .metrics()
            .await
            .contains("gateway_dropped_parameters_total{"),
        "refused parameters are not counted as dropped"
    );
}

#[tokio::test]
async fn a_key_that_drops_unsupported_params_is_served_and_the_drops_counted() {
    let gateway = TestGateway::start().await;
    let mut body = chat_body("acct/text");
    body["seed"] = json!(42);
    body["n"] = json!(2);
    let (parts, answer) = gateway.chat_as(DROP_KEY, body.clone()).await;
    assert_eq!(parts.status, 200, "{answer}");
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello!");
    // The provider gets the request as the client sent it, and ignores those parameters.
    assert_eq!(gateway.last_request().unsupported_parameters, ["n", "seed"]);

    body["stream"] = json!(true);
    let (parts, answer) = gateway.chat_as(DROP_KEY, body).await;
    assert_eq!(parts.status, 200);
    assert!(
        answer.as_str().unwrap().ends_with("data: [DONE]\n\n"),
        "{answer}"
    );

    // Refused for another key, and then not counted.
    let mut refused = chat_body("acct/text");
    refused["seed"] = json!(1);
    let (parts, _) = gateway.chat(refused).await;
    assert_eq!(parts.status, 400);

    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains(r#"gateway_dropped_parameters_total{parameter="seed"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"gateway_dropped_parameters_total{parameter="n"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_feature_the_model_cannot_do_is_400_naming_the_clients_field() {
    let gateway = TestGateway::start().await;
    for stream in [false, true] {
        let mut body = chat_body("acct/no-reasoning");
        body["stream"] = json!(stream);
        body["reasoning_effort"] = json!("high");
        let (parts, body) = gateway.chat(body).await;
        assert_eq!(parts.status, 400, "stream: {stream}");
        assert_eq!(
            body,
            json!({"error": {
                "message": "model `no-reasoning` cannot reason",
                "type": "invalid_request_error",
                "code": "unsupported_value",
                "param": "reasoning_effort",
            }})
        );
    }
    assert_eq!(
        gateway.last_request().reasoning,
        Some(gateway_core::Reasoning::Effort(
            gateway_core::ReasoningEffort::High
        ))
    );
    // The client's request, not an upstream failure.
    assert!(
        !gateway
            .metrics()
            .await
            .contains("gateway_upstream_errors_total{"),
        "not counted as an upstream error"
    );
}

/// A gateway serving at most `max` chats at once.
async fn gateway_with_limit(max: usize) -> TestGateway {
    TestGateway::start_with(HttpSettings {
        max_concurrent_requests: std::num::NonZeroUsize::new(max).unwrap(),
        ..HttpSettings::default()
    })
    .await
}

/// Starts a `slow` chat and returns once the provider holds it: it then holds a slot until
/// `release` lets one `slow` chat go.
async fn hold_slow_chat(
    gateway: &TestGateway,
    held: &mut tokio::task::JoinSet<(http::StatusCode, Bytes)>,
) {
    let entered = gateway.provider.entered.notified();
    let url = gateway.url("/v1/chat/completions");
    held.spawn(async move {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let request = http::Request::post(url)
            .header("authorization", format!("Bearer {KEY}"))
            .body(Full::new(Bytes::from(chat_body("acct/slow").to_string())))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    });
    tokio::time::timeout(DEADLINE, entered)
        .await
        .expect("the chat reached the provider");
}

/// Lets one held `slow` chat finish and returns its answer.
async fn release_one(
    gateway: &TestGateway,
    held: &mut tokio::task::JoinSet<(http::StatusCode, Bytes)>,
) -> (http::StatusCode, Bytes) {
    gateway.provider.release.notify_one();
    tokio::time::timeout(DEADLINE, held.join_next())
        .await
        .expect("a released chat finishes")
        .unwrap()
        .unwrap()
}

fn assert_shed(parts: &http::response::Parts, body: &Value) {
    assert_eq!(parts.status, 503, "{body}");
    assert_eq!(parts.headers["retry-after"], "1");
    assert_eq!(parts.headers["content-type"], "application/json");
    assert_eq!(
        body,
        &json!({"error": {
            "message": "the gateway has too many requests in flight; retry shortly",
            "type": "server_error",
            "code": "overloaded",
            "param": null,
        }})
    );
}

#[tokio::test]
async fn past_the_limit_a_chat_is_shed_at_once_while_health_metrics_and_models_answer() {
    let gateway = gateway_with_limit(2).await;
    let mut held = tokio::task::JoinSet::new();
    hold_slow_chat(&gateway, &mut held).await;
    hold_slow_chat(&gateway, &mut held).await;

    for stream in [false, true] {
        let mut body = chat_body("acct/text");
        body["stream"] = json!(stream);
        let (parts, body) = gateway.chat(body).await;
        assert_shed(&parts, &body);
    }
    // Before authentication and before the body: a declared body that never comes does
    // not delay the answer.
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ncontent-length: 1000\r\n\r\n"
    );
    let answer = raw_exchange(gateway.addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"code\":\"overloaded\""), "{answer}");
    assert_eq!(gateway.calls(), 2, "shed chats never reach the provider");

    for path in ["/health", "/healthz", "/ready", "/readyz", "/v1/models"] {
        let (parts, _) = gateway.send("GET", path, Some(KEY), "").await;
        assert_eq!(parts.status, 200, "{path}");
    }
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("gateway_shed_requests_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gateway_in_flight_requests 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"gateway_http_requests_total{endpoint="chat_completions",model="other",status="5xx"} 3"#
        ),
        "{metrics}"
    );

    // A slot comes back when a held chat is answered, and the next chat is served.
    let (status, body) = release_one(&gateway, &mut held).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("finally"));
    let (parts, body) = gateway.chat(chat_body("acct/text")).await;
    assert_eq!(parts.status, 200, "{body}");
    // ... and only one: the other held chat still has its slot.
    let (parts, body) = gateway.chat(chat_body("acct/text")).await;
    assert_eq!(parts.status, 200, "{body}");
    hold_slow_chat(&gateway, &mut held).await;
    let (parts, body) = gateway.chat(chat_body("acct/text")).await;
    assert_shed(&parts, &body);

    for _ in 0..2 {
        let (status, _) = release_one(&gateway, &mut held).await;
        assert_eq!(status, 200);
    }
    assert!(gateway
        .metrics()
        .await
        .contains("gateway_in_flight_requests 0"));
}

#[tokio::test]
async fn a_stream_holds_its_slot_until_it_ends_or_the_client_hangs_up() {
    let gateway = gateway_with_limit(1).await;

    // A stream read to its end gave its slot back before its last bytes went out.
    let mut body = chat_body("acct/text");
    body["stream"] = json!(true);
    let (parts, answer) = gateway.chat(body).await;
    assert_eq!(parts.status, 200);
    assert!(answer.as_str().unwrap().ends_with("data: [DONE]\n\n"));
    let (parts, answer) = gateway.chat(chat_body("acct/text")).await;
    assert_eq!(parts.status, 200, "{answer}");

    // An open stream holds its slot after the handler returned its head.
    let (dropped_tx, dropped_rx) = oneshot::channel();
    *gateway.provider.stream_dropped.lock().unwrap() = Some(dropped_tx);
    let client = open_endless_stream(&gateway, "").await;
    let (parts, answer) = gateway.chat(chat_body("acct/text")).await;
    assert_shed(&parts, &answer);
    assert!(gateway
        .metrics()
        .await
        .contains("gateway_in_flight_requests 1"));

    // The client hangs up: the body is dropped, and the slot with it.
    drop(client);
    tokio::time::timeout(DEADLINE, dropped_rx)
        .await
        .expect("the provider's stream is dropped after the client left")
        .unwrap();
    let (parts, answer) = gateway.chat(chat_body("acct/text")).await;
    assert_eq!(parts.status, 200, "{answer}");
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("gateway_in_flight_requests 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gateway_shed_requests_total 1"),
        "{metrics}"
    );
}

fn target(parts: &http::response::Parts) -> Option<&str> {
    parts
        .headers
        .get("x-gateway-target")
        .map(|value| value.to_str().unwrap())
}

#[tokio::test]
async fn every_answer_names_the_target_that_gave_it() {
    let gateway = TestGateway::start().await;
    let (parts, body) = gateway.chat(chat_body("acct/text")).await;
    assert_eq!(target(&parts), Some("acct/text"));
    assert_eq!(body["model"], "acct/text");

    // The first target is throttled; the second answers, under the client's name.
    let (parts, body) = gateway.chat(chat_body("ha")).await;
    assert_eq!(parts.status, 200);
    assert_eq!(target(&parts), Some("acct/text"));
    assert_eq!(body["model"], "ha");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello!");
    assert_eq!(
        gateway.last_request().model,
        "ha",
        "the request is untouched"
    );

    let mut streamed = chat_body("ha");
    streamed["stream"] = json!(true);
    let (parts, body) = gateway.chat(streamed).await;
    assert_eq!(parts.status, 200);
    assert_eq!(target(&parts), Some("acct/text"));
    let text = body.as_str().unwrap();
    assert!(text.contains(r#""model":"ha""#), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}

#[tokio::test]
async fn an_error_names_the_target_called_last() {
    let gateway = TestGateway::start().await;
    let (parts, body) = gateway.chat(chat_body("acct/throttled")).await;
    assert_eq!(parts.status, 429);
    assert_eq!(target(&parts), Some("acct/throttled"));
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");

    // Credentials the upstream refuses do not fail over (and the client gets that error).
    let (parts, body) = gateway.chat(chat_body("ha-down")).await;
    assert_eq!(parts.status, 502);
    assert_eq!(target(&parts), Some("acct/unauthorized"));
    assert_eq!(body["error"]["code"], "upstream_unauthorized");

    // Nothing was called.
    let (parts, _) = gateway.chat(chat_body("acct/nope")).await;
    assert_eq!(parts.status, 404);
    assert_eq!(target(&parts), None);
}

#[tokio::test]
async fn metrics_count_failovers_skips_and_breaker_states() {
    let gateway = TestGateway::start().await;
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains(r#"gateway_circuit_state{target="acct/flaky"} 0"#),
        "{metrics}"
    );
    // Two failures open acct/flaky's breaker; the third request skips it.
    for _ in 0..3 {
        let (parts, _) = gateway.chat(chat_body("flaky-ha")).await;
        assert_eq!(parts.status, 200);
        assert_eq!(target(&parts), Some("acct/text"));
    }
    assert_eq!(
        gateway.calls(),
        5,
        "acct/flaky was called twice, acct/text three times"
    );
    gateway.chat(chat_body("ha")).await;
    let metrics = gateway.metrics().await;
    for line in [
        r#"gateway_failovers_total{from="acct/flaky",reason="throttled"} 2"#,
        r#"gateway_failovers_total{from="acct/throttled",reason="throttled"} 1"#,
        r#"gateway_circuit_skips_total{target="acct/flaky"} 1"#,
        r#"gateway_circuit_state{target="acct/flaky"} 1"#,
        r#"gateway_http_requests_total{endpoint="chat_completions",model="flaky-ha",status="2xx"} 3"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(
        !metrics.contains("gateway_upstream_errors_total{"),
        "errors absorbed by failing over never reached a client"
    );
}

#[tokio::test]
async fn a_failure_followed_only_by_skipped_targets_is_the_client_s_error_not_a_failover() {
    let gateway = TestGateway::start().await;
    // Two failures open acct/flaky's breaker.
    for _ in 0..2 {
        gateway.chat(chat_body("flaky-ha")).await;
    }
    // acct/throttled fails, acct/flaky is skipped: the client gets acct/throttled's 429,
    // which passed the request on to no one.
    let (parts, body) = gateway.chat(chat_body("throttled-then-flaky")).await;
    assert_eq!(parts.status, 429, "{body}");
    assert_eq!(target(&parts), Some("acct/throttled"));
    let metrics = gateway.metrics().await;
    for line in [
        r#"gateway_upstream_errors_total{kind="throttled"} 1"#,
        r#"gateway_circuit_skips_total{target="acct/flaky"} 1"#,
        r#"gateway_failovers_total{from="acct/flaky",reason="throttled"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(
        !metrics.contains(r#"gateway_failovers_total{from="acct/throttled""#),
        "{metrics}"
    );
}

/// `name: value` of a response's header, if it has it.
fn header<'a>(parts: &'a http::response::Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).map(|value| value.to_str().unwrap())
}

/// The four `x-ratelimit-*` headers, in the order limit/remaining of requests, then tokens.
fn rate_limit_headers(parts: &http::response::Parts) -> [Option<&str>; 4] {
    [
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
    ]
    .map(|name| header(parts, name))
}

#[tokio::test]
async fn every_response_of_a_limited_key_says_where_it_stands_until_it_is_limited() {
    let gateway = TestGateway::start().await;
    // 28 tokens an answer; the clock stands 21 s into a minute.
    let (parts, _) = gateway.chat_as(RPM_KEY, chat_body("acct/text")).await;
    assert_eq!(parts.status, 200);
    assert_eq!(
        rate_limit_headers(&parts),
        [Some("2"), Some("1"), Some("1000"), Some("1000")]
    );
    // A stream's headers say it too (its usage, none here, is recorded when it ends).
    let mut streamed = chat_body("acct/text");
    streamed["stream"] = json!(true);
    let (parts, _) = gateway.chat_as(RPM_KEY, streamed).await;
    assert_eq!(parts.status, 200);
    assert_eq!(
        rate_limit_headers(&parts),
        [Some("2"), Some("0"), Some("1000"), Some("972")]
    );
    let calls = gateway.calls();

    // The third request in the minute is refused before any call.
    let (parts, body) = gateway.chat_as(RPM_KEY, chat_body("acct/text")).await;
    assert_eq!(parts.status, 429);
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "requests");
    assert_eq!(
        body["error"]["message"],
        "this gateway key has reached its limit of 2 requests per minute; retry in 70 s"
    );
    // 39 s to the next window, then half of it until one of the two has faded.
    assert_eq!(header(&parts, "retry-after"), Some("70"));
    assert_eq!(
        rate_limit_headers(&parts),
        [Some("2"), Some("0"), Some("1000"), Some("972")]
    );
    assert_eq!(gateway.calls(), calls, "nothing reached the provider");

    // Keys without limits get no such headers.
    let (parts, _) = gateway.chat(chat_body("acct/text")).await;
    assert_eq!(rate_limit_headers(&parts), [None; 4]);
}

#[tokio::test]
async fn an_upstream_error_after_admission_carries_the_headers_too() {
    let gateway = TestGateway::start().await;
    let (parts, body) = gateway.chat_as(RPM_KEY, chat_body("acct/throttled")).await;
    assert_eq!(parts.status, 429);
    assert_eq!(
        body["error"]["type"], "rate_limit_error",
        "Bedrock's, not the key's"
    );
    assert_eq!(header(&parts, "retry-after"), Some("1"));
    assert_eq!(
        rate_limit_headers(&parts),
        [Some("2"), Some("1"), Some("1000"), Some("1000")]
    );
}

#[tokio::test]
async fn a_key_over_its_tokens_per_minute_is_refused_until_they_fade() {
    let gateway = TestGateway::start().await;
    for remaining in ["50", "22"] {
        let (parts, _) = gateway.chat_as(TPM_KEY, chat_body("acct/text")).await;
        assert_eq!(parts.status, 200);
        assert_eq!(
            rate_limit_headers(&parts),
            [None, None, Some("50"), Some(remaining)]
        );
    }
    let (parts, body) = gateway.chat_as(TPM_KEY, chat_body("acct/text")).await;
    assert_eq!(parts.status, 429);
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "tokens");
    // 56 tokens fade below 50 a ninth of the way into the next window: 39 s + 6.4 s.
    assert_eq!(header(&parts, "retry-after"), Some("46"));
    assert_eq!(
        rate_limit_headers(&parts),
        [None, None, Some("50"), Some("0")]
    );
}

#[tokio::test]
async fn answers_from_a_priced_model_say_what_they_cost_until_the_budget_is_spent() {
    let gateway = TestGateway::start().await;
    // 25 input tokens at 3 USD and 3 output tokens at 15 USD per million.
    for _ in 0..2 {
        let (parts, body) = gateway.chat_as(BUDGET_KEY, chat_body("acct/priced")).await;
        assert_eq!(parts.status, 200);
        assert_eq!(header(&parts, "x-gateway-cost-usd"), Some("0.000120"));
        assert_eq!(body["usage"]["cost_usd"], json!(0.00012));
    }
    let (parts, body) = gateway.chat_as(BUDGET_KEY, chat_body("acct/priced")).await;
    assert_eq!(parts.status, 429);
    assert_eq!(body["error"]["code"], "insufficient_quota");
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(
        header(&parts, "retry-after"),
        None,
        "a budget without a period never resets"
    );
    // An unpriced model's answers say nothing about cost.
    let (parts, body) = gateway.chat(chat_body("acct/text")).await;
    assert_eq!(header(&parts, "x-gateway-cost-usd"), None);
    assert!(body["usage"].get("cost_usd").is_none(), "{body}");

    // A stream's cost is in its usage chunk.
    let mut streamed = chat_body("acct/priced");
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (parts, body) = gateway.chat(streamed).await;
    assert_eq!(parts.status, 200);
    let text = body.as_str().unwrap();
    assert!(text.contains(r#""cost_usd":0.0"#), "{text}");
}

/// The value of the series `line_start` begins (labels included), from `metrics`.
fn series(metrics: &str, line_start: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(line_start)?.trim().parse().ok())
}

#[derive(Debug, Default)]
struct FakeBackendErrors(AtomicUsize);

impl LimitBackendErrors for FakeBackendErrors {
    fn errors(&self) -> u64 {
        self.0.load(Ordering::SeqCst) as u64
    }
}

#[tokio::test]
async fn metrics_count_tokens_spend_and_refusals_per_key_and_model() {
    let backend_errors = Arc::new(FakeBackendErrors::default());
    let gateway = TestGateway::start_with(HttpSettings {
        limit_backend_errors: Some(backend_errors.clone()),
        ..HttpSettings::default()
    })
    .await;
    for _ in 0..3 {
        gateway.chat_as(BUDGET_KEY, chat_body("acct/priced")).await;
    }
    gateway.chat_as(RPM_KEY, chat_body("acct/priced")).await;
    backend_errors.0.store(3, Ordering::SeqCst);
    let metrics = gateway.metrics().await;
    let budgeted = |series_name: &str, labels: &str| {
        series(
            &metrics,
            &format!("{series_name}{{key=\"budgeted\",{labels}}}"),
        )
    };
    let input = budgeted(
        "gateway_tokens_total",
        r#"model="acct/priced",kind="input""#,
    );
    let output = budgeted(
        "gateway_tokens_total",
        r#"model="acct/priced",kind="output""#,
    );
    assert_eq!((input, output), (Some(50.0), Some(6.0)), "{metrics}");
    let spent = budgeted("gateway_cost_usd_total", r#"model="acct/priced""#).unwrap();
    let priced = (50.0 * INPUT_PRICE + 6.0 * OUTPUT_PRICE) / 1e6;
    assert!((spent - priced).abs() < 1e-12, "{spent} != {priced}");
    assert_eq!(
        budgeted("gateway_limited_requests_total", r#"kind="budget""#),
        Some(1.0)
    );
    // Another key is counted apart.
    assert_eq!(
        series(
            &metrics,
            r#"gateway_tokens_total{key="rpm-limited",model="acct/priced",kind="input"}"#
        ),
        Some(25.0)
    );
    assert!(
        !metrics.contains(r#"kind="cache_read""#),
        "kinds never used have no series"
    );
    assert_eq!(
        series(&metrics, "gateway_limits_backend_errors_total"),
        Some(3.0)
    );
}

/// A provider whose stream sends some text and then waits for ever: the client hangs up.
#[tokio::test]
async fn a_stream_the_client_abandons_is_counted_from_what_it_streamed() {
    let gateway = TestGateway::start().await;
    let mut body = chat_body("acct/endless");
    body["stream"] = json!(true);
    let (dropped_tx, dropped_rx) = oneshot::channel();
    *gateway.provider.stream_dropped.lock().unwrap() = Some(dropped_tx);
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    let body = body.to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {RPM_KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Read until the first text delta has gone out, then hang up.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("Hel") {
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buf))
            .await
            .expect("the first events in time")
            .unwrap();
        assert!(n > 0, "the gateway closed early");
        seen.extend_from_slice(&buf[..n]);
    }
    drop(stream);
    tokio::time::timeout(DEADLINE, dropped_rx)
        .await
        .expect("the provider's stream is dropped")
        .unwrap();
    // "Hel": 3 characters, one token by the estimate; no input tokens are known.
    let metrics = gateway.metrics().await;
    assert_eq!(
        series(
            &metrics,
            r#"gateway_tokens_total{key="rpm-limited",model="acct/endless",kind="output"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        series(
            &metrics,
            r#"gateway_tokens_total{key="rpm-limited",model="acct/endless",kind="input"}"#
        ),
        None
    );
}

/// Sends `GET|POST path` with `x-request-id: id` (when given); the response's request id.
async fn request_id_of(
    gateway: &TestGateway,
    method: &str,
    path: &str,
    id: Option<&str>,
    body: Value,
) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method(method)
        .uri(gateway.url(path))
        .header("authorization", format!("Bearer {KEY}"));
    if let Some(id) = id {
        request = request.header("x-request-id", id);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = tokio::time::timeout(DEADLINE, client.request(request))
        .await
        .expect("the gateway answers in time")
        .unwrap();
    let status = response.status().as_u16();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (status, id)
}

fn is_generated(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn a_valid_request_id_comes_back_and_any_other_is_replaced() {
    let gateway = TestGateway::start().await;
    let chat = chat_body("acct/text");
    let (status, id) = request_id_of(
        &gateway,
        "POST",
        "/v1/chat/completions",
        Some("abc-1.2:x_y"),
        chat.clone(),
    )
    .await;
    assert_eq!((status, id.as_str()), (200, "abc-1.2:x_y"));
    for invalid in ["has space", "quote\"x", &"a".repeat(129)] {
        let (status, id) = request_id_of(
            &gateway,
            "POST",
            "/v1/chat/completions",
            Some(invalid),
            chat.clone(),
        )
        .await;
        assert_eq!(status, 200);
        assert!(is_generated(&id), "{invalid} gave {id}");
    }
    let (_, first) =
        request_id_of(&gateway, "POST", "/v1/chat/completions", None, chat.clone()).await;
    let (_, second) = request_id_of(&gateway, "POST", "/v1/chat/completions", None, chat).await;
    assert!(is_generated(&first) && is_generated(&second));
    assert_ne!(first, second);
}

#[tokio::test]
async fn every_response_carries_the_request_id() {
    let gateway = TestGateway::start().await;
    for (method, path, body, status) in [
        ("GET", "/health", Value::Null, 200),
        ("GET", "/ready", Value::Null, 200),
        ("GET", "/v1/models", Value::Null, 200),
        ("GET", "/metrics", Value::Null, 200),
        ("GET", "/nowhere", Value::Null, 404),
        ("GET", "/v1/chat/completions", Value::Null, 405),
        (
            "POST",
            "/v1/chat/completions",
            chat_body("acct/throttled"),
            429,
        ),
        ("POST", "/v1/chat/completions", chat_body("nope/none"), 404),
        ("POST", "/v1/chat/completions", json!({"model": 1}), 400),
    ] {
        let (got, id) = request_id_of(&gateway, method, path, Some("given-id"), body).await;
        assert_eq!((got, id.as_str()), (status, "given-id"), "{method} {path}");
    }
    let (status, id) = request_id_of(
        &gateway,
        "POST",
        "/v1/chat/completions",
        Some("given-id"),
        json!({"model": "acct/text", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!((status, id.as_str()), (200, "given-id"));
}

#[tokio::test]
async fn a_shed_request_carries_the_request_id() {
    let gateway = gateway_with_limit(1).await;
    let mut held = tokio::task::JoinSet::new();
    hold_slow_chat(&gateway, &mut held).await;
    let (status, id) = request_id_of(
        &gateway,
        "POST",
        "/v1/chat/completions",
        Some("shed-1"),
        chat_body("acct/text"),
    )
    .await;
    assert_eq!((status, id.as_str()), (503, "shed-1"));
    release_one(&gateway, &mut held).await;
}

#[tokio::test]
async fn the_request_id_reaches_bedrock_only_when_enabled() {
    let gateway = TestGateway::start().await;
    request_id_of(
        &gateway,
        "POST",
        "/v1/chat/completions",
        Some("rid-1"),
        chat_body("acct/text"),
    )
    .await;
    assert!(gateway.last_request().request_metadata.is_empty());

    let gateway = TestGateway::start_with(HttpSettings {
        request_id_to_bedrock: true,
        ..HttpSettings::default()
    })
    .await;
    let mut body = chat_body("acct/text");
    body["requestMetadata"] = json!({"team": "a"});
    request_id_of(
        &gateway,
        "POST",
        "/v1/chat/completions",
        Some("rid-2"),
        body,
    )
    .await;
    assert_eq!(
        gateway.last_request().request_metadata,
        [
            ("team".to_owned(), "a".to_owned()),
            ("gateway_request_id".to_owned(), "rid-2".to_owned())
        ]
    );
}

/// Log lines written as JSON into memory.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// What the whole test process logs at `info` and above, as JSON lines. One global
    /// subscriber: thread-local ones can miss events while other tests' threads register
    /// the same callsites. Tests tell their lines apart by request id.
    fn process() -> &'static Self {
        static LOGS: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Self::default();
            let writer = logs.clone();
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_max_level(tracing::Level::INFO)
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other test sets a global subscriber");
            logs
        })
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// The per-request line of the request with `request_id`.
    fn request_line(&self, request_id: &str) -> Value {
        let text = self.text();
        let mut lines = text
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|line| {
                // The request id is on the request's span, which may have the chat's trace
                // span (kept out of the gateway's own log output) inside it here.
                line["fields"]["message"] == "request"
                    && line["spans"].as_array().is_some_and(|spans| {
                        spans.iter().any(|span| span["request_id"] == request_id)
                    })
            });
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("no line for {request_id}: {text}"));
        assert!(lines.next().is_none(), "one line per request: {text}");
        line
    }
}

#[tokio::test]
async fn one_line_per_request_says_what_happened_and_never_the_key_or_the_text() {
    let logs = CapturedLogs::process();
    let gateway = TestGateway::start().await;
    let prompt = json!({"model": "acct/text", "messages": [{"role": "user", "content": "secret-prompt-words"}]});
    request_id_of(
        &gateway,
        "POST",
        "/v1/chat/completions",
        Some("log-1"),
        prompt,
    )
    .await;
    let line = logs.request_line("log-1");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "gateway::request");
    let fields = &line["fields"];
    for (field, expected) in [
        ("endpoint", json!("chat_completions")),
        ("key", json!("team-a")),
        ("model", json!("acct/text")),
        ("target", json!("acct/text")),
        ("status", json!(200)),
        ("error_type", json!("-")),
        ("input_tokens", json!(25)),
        ("output_tokens", json!(3)),
        ("finish_reason", json!("end_turn")),
        ("guardrail", json!("none")),
        ("client_gone", json!(false)),
    ] {
        assert_eq!(fields[field], expected, "{field} in {line}");
    }
    assert!(fields["latency_ms"].is_u64(), "{line}");
    assert!(
        fields.get("first_token_ms").is_none(),
        "not a stream: {line}"
    );

    // A guardrail's intervention and an error say so.
    request_id_of(
        &gateway,
        "POST",
        "/v1/chat/completions",
        Some("log-2"),
        chat_body("acct/guardrail"),
    )
    .await;
    assert_eq!(
        logs.request_line("log-2")["fields"]["guardrail"],
        "intervened"
    );
    request_id_of(
        &gateway,
        "POST",
        "/v1/chat/completions",
        Some("log-3"),
        chat_body("acct/throttled"),
    )
    .await;
    let fields = &logs.request_line("log-3")["fields"];
    assert_eq!(fields["status"], 429);
    assert_eq!(fields["error_type"], "rate_limit_exceeded");
    assert_eq!(fields["target"], "acct/throttled");

    // A stream's line is written at its end, with the time to its first token.
    let stream = json!({"model": "acct/text", "stream": true, "messages": [{"role": "user", "content": "secret-prompt-words"}]});
    request_id_of(
        &gateway,
        "POST",
        "/v1/chat/completions",
        Some("log-4"),
        stream,
    )
    .await;
    let fields = &logs.request_line("log-4")["fields"];
    assert!(fields["first_token_ms"].is_u64(), "{fields}");
    assert_eq!(fields["finish_reason"], "end_turn");
    assert_eq!(fields["client_gone"], false);

    let text = logs.text();
    for secret in [KEY, "secret-prompt-words", "Hello!", "Hel"] {
        assert!(!text.contains(secret), "{secret} logged: {text}");
    }
}

#[tokio::test]
async fn chats_are_measured_under_the_genai_names_too() {
    let gateway = TestGateway::start().await;
    gateway.chat(chat_body("acct/text")).await;
    gateway.chat(chat_body("acct/throttled")).await;
    gateway.chat(chat_body("unknown/model")).await;
    gateway
        .chat(json!({"model": "acct/text", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}))
        .await;
    let metrics = gateway.metrics().await;
    for (name, value) in [
        (
            r#"gen_ai_client_token_usage_count{gen_ai_token_type="input",gen_ai_request_model="acct/text"}"#,
            2.0,
        ),
        (
            r#"gen_ai_client_token_usage_sum{gen_ai_token_type="input",gen_ai_request_model="acct/text"}"#,
            25.0,
        ),
        (
            r#"gen_ai_client_token_usage_sum{gen_ai_token_type="output",gen_ai_request_model="acct/text"}"#,
            3.0,
        ),
        (
            r#"gen_ai_server_request_duration_count{gen_ai_request_model="acct/text",error_type=""}"#,
            2.0,
        ),
        (
            r#"gen_ai_server_request_duration_count{gen_ai_request_model="acct/throttled",error_type="rate_limit_exceeded"}"#,
            1.0,
        ),
        (
            r#"gen_ai_server_request_duration_count{gen_ai_request_model="other",error_type="model_not_found"}"#,
            1.0,
        ),
        (
            r#"gen_ai_server_time_to_first_token_count{gen_ai_request_model="acct/text"}"#,
            1.0,
        ),
    ] {
        assert_eq!(series(&metrics, name), Some(value), "{name} in\n{metrics}");
    }
    assert!(!metrics.contains("unknown/model"), "{metrics}");
}
