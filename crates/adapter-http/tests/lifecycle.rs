//! The server's life with a fake provider: an app replaced while a stream is open, the drain
//! (listener closed at once, streams finishing), the cut of what outlives it, and `/ready`.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "the harness outside #[test] fns should panic on a failed setup too"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use gateway_adapter_http::{serve_live, GatewayKey, HttpApp, HttpSettings, LiveApp, Phase};
use gateway_core::clock::{FixedClock, SharedClock};
use gateway_core::guardrail::GuardrailPolicy;
use gateway_core::{
    ChatEvent, ChatEventStream, ChatProvider, ChatResponse, ChatService, FinishReasonStyle,
    ModelCatalog, ModelEntry, ProviderError, ProviderRequest, StopReason, Usage,
};
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

const OLD_KEY: &str = "sk-old-key-1";
const NEW_KEY: &str = "sk-new-key-2";
/// A deadline for things that must happen promptly; never a way to wait for them.
const DEADLINE: Duration = Duration::from_secs(5);

/// Streams `before`, waits for the gate, then `after` and the end; tells when a stream is
/// dropped.
struct GatedProvider {
    gate: watch::Receiver<bool>,
    dropped: Mutex<Option<oneshot::Sender<()>>>,
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
impl ChatProvider for GatedProvider {
    async fn complete<'a>(&self, _: ProviderRequest<'a>) -> Result<ChatResponse, ProviderError> {
        Ok(ChatResponse {
            text: Some("done".into()),
            reasoning: vec![],
            tool_calls: vec![],
            stop_reason: StopReason::EndTurn,
            usage: Usage::default(),
            guardrail_trace: None,
            additional_model_response_fields: None,
        })
    }

    async fn stream<'a>(&self, _: ProviderRequest<'a>) -> Result<ChatEventStream, ProviderError> {
        let guard = DropSignal(self.dropped.lock().unwrap().take());
        let mut gate = self.gate.clone();
        let head = futures_util::stream::iter([
            Ok(ChatEvent::MessageStart),
            Ok(ChatEvent::TextDelta("before".into())),
        ]);
        let tail = futures_util::stream::once(async move {
            let _ = gate.wait_for(|open| *open).await;
        })
        .flat_map(|()| {
            futures_util::stream::iter([
                Ok(ChatEvent::TextDelta(" after".into())),
                Ok(ChatEvent::Stop(StopReason::EndTurn)),
                Ok(ChatEvent::Metadata {
                    usage: Usage::default(),
                    guardrail_trace: None,
                }),
            ])
        });
        Ok(Box::pin(head.chain(tail).map(move |event| {
            let _until_dropped = &guard;
            event
        })))
    }
}

fn settings(keys: &[&str]) -> HttpSettings {
    HttpSettings {
        keys: keys
            .iter()
            .enumerate()
            .map(|(i, key)| GatewayKey::new(format!("key-{i}"), (*key).into()))
            .collect(),
        // Far past any deadline here: a silent client must not hold the drain this long.
        header_read_timeout: Duration::from_secs(600),
        ..HttpSettings::default()
    }
}

fn service(provider: &Arc<GatedProvider>, models: &[&str]) -> ChatService {
    let catalog = ModelCatalog::new(models.iter().map(|model| ModelEntry {
        account: "acct".into(),
        model: (*model).into(),
        model_id: (*model).into(),
        region: "us-east-1".into(),
        guardrail: GuardrailPolicy::open(),
        finish_reason_style: FinishReasonStyle::Bedrock,
        family: None,
        drop_unsupported_params: false,
        price: None,
        kind: gateway_core::ModelKind::Chat,
    }))
    .unwrap();
    ChatService::new(Arc::new(catalog), provider.clone())
}

struct Server {
    url: String,
    addr: std::net::SocketAddr,
    live: LiveApp,
    provider: Arc<GatedProvider>,
    gate: watch::Sender<bool>,
    stream_dropped: Option<oneshot::Receiver<()>>,
    phase: watch::Sender<Phase>,
    stopped_accepting: Option<oneshot::Receiver<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start() -> Self {
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        let (gate, gate_rx) = watch::channel(false);
        let (dropped_tx, dropped_rx) = oneshot::channel();
        let provider = Arc::new(GatedProvider {
            gate: gate_rx,
            dropped: Mutex::new(Some(dropped_tx)),
        });
        let clock = SharedClock::new(FixedClock::at_unix(1_741_339_101));
        let app = HttpApp::new(service(&provider, &["gated"]), settings(&[OLD_KEY]), clock);
        let live = LiveApp::new(app);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (phase, phases) = watch::channel(Phase::Serving);
        let (stopped_tx, stopped_rx) = oneshot::channel();
        let task = tokio::spawn(serve_live(listener, live.clone(), phases, move || {
            let _ = stopped_tx.send(());
        }));
        Self {
            url: format!("http://{addr}"),
            addr,
            live,
            provider,
            gate,
            stream_dropped: Some(dropped_rx),
            phase,
            stopped_accepting: Some(stopped_rx),
            task,
        }
    }

    async fn send(&self, path: &str, key: &str, body: Option<serde_json::Value>) -> (u16, Bytes) {
        let response = self.request(path, key, body).await;
        let status = response.status().as_u16();
        let body = tokio::time::timeout(DEADLINE, response.into_body().collect())
            .await
            .expect("the body ends in time")
            .unwrap()
            .to_bytes();
        (status, body)
    }

    async fn request(
        &self,
        path: &str,
        key: &str,
        body: Option<serde_json::Value>,
    ) -> http::Response<Incoming> {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let builder = http::Request::builder()
            .uri(format!("{}{path}", self.url))
            .header("authorization", format!("Bearer {key}"));
        let request = match body {
            Some(body) => builder
                .method("POST")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string()))),
            None => builder.method("GET").body(Full::default()),
        };
        tokio::time::timeout(DEADLINE, client.request(request.unwrap()))
            .await
            .expect("the server answers in time")
            .unwrap()
    }

    async fn chat_status(&self, key: &str) -> u16 {
        self.send("/v1/chat/completions", key, Some(chat(false)))
            .await
            .0
    }

    /// Opens a stream and reads until its first text arrived: it now waits for the gate.
    async fn open_stream(&self) -> OpenStream {
        let response = self
            .request("/v1/chat/completions", OLD_KEY, Some(chat(true)))
            .await;
        assert_eq!(response.status(), 200);
        let mut stream = OpenStream {
            body: response.into_body().into_data_stream(),
            text: String::new(),
        };
        stream.read_until("before").await;
        stream
    }

    async fn finished(self) {
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the server returns")
            .unwrap()
            .unwrap();
    }
}

fn chat(stream: bool) -> serde_json::Value {
    json!({"model": "acct/gated", "messages": [{"role": "user", "content": "Hi"}], "stream": stream})
}

struct OpenStream {
    body: BodyDataStream<Incoming>,
    text: String,
}

impl OpenStream {
    async fn read_until(&mut self, wanted: &str) {
        while !self.text.contains(wanted) {
            let chunk = tokio::time::timeout(DEADLINE, self.body.next())
                .await
                .unwrap_or_else(|_| panic!("`{wanted}` in time, got {}", self.text));
            match chunk {
                Some(Ok(bytes)) => self.text.push_str(&String::from_utf8_lossy(&bytes)),
                other => panic!(
                    "the stream ended before `{wanted}` ({other:?}): {}",
                    self.text
                ),
            }
        }
    }

    /// Everything until the body ends, cleanly or not.
    async fn rest(mut self) -> String {
        while let Some(chunk) = tokio::time::timeout(DEADLINE, self.body.next())
            .await
            .expect("the stream ends in time")
        {
            match chunk {
                Ok(bytes) => self.text.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => break,
            }
        }
        self.text
    }
}

#[tokio::test]
async fn a_replaced_app_serves_new_requests_while_an_open_stream_finishes_on_the_old_one() {
    let server = Server::start().await;
    let stream = server.open_stream().await;
    assert_eq!(server.chat_status(NEW_KEY).await, 401);

    let current = server.live.current();
    let reconfigured = current.reconfigured(
        service(&server.provider, &["gated"]),
        settings(&[OLD_KEY, NEW_KEY]),
    );
    server.live.replace(reconfigured);
    drop(current);

    assert_eq!(server.chat_status(NEW_KEY).await, 200);
    assert_eq!(server.chat_status(OLD_KEY).await, 200);
    server.gate.send_replace(true);
    let text = stream.rest().await;
    assert!(text.contains(" after"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");

    // One set of metrics across both apps: the requests of each are counted.
    let (_, metrics) = server.send("/metrics", OLD_KEY, None).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(
            r#"gateway_http_requests_total{endpoint="chat_completions",model="acct/gated",status="2xx"} 3"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"gateway_http_requests_total{endpoint="chat_completions",model="other",status="4xx"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("gateway_open_streams 0"), "{metrics}");
}

#[tokio::test]
async fn a_reconfigured_limit_counts_the_chats_already_in_flight() {
    let server = Server::start().await;
    let stream = server.open_stream().await;
    let current = server.live.current();
    let one_at_a_time = HttpSettings {
        max_concurrent_requests: std::num::NonZeroUsize::MIN,
        ..settings(&[OLD_KEY])
    };
    server
        .live
        .replace(current.reconfigured(service(&server.provider, &["gated"]), one_at_a_time));
    assert_eq!(
        server.chat_status(OLD_KEY).await,
        503,
        "the open stream holds the only slot"
    );
    server.gate.send_replace(true);
    stream.rest().await;
    assert_eq!(server.chat_status(OLD_KEY).await, 200);
}

#[tokio::test]
async fn draining_refuses_new_connections_and_lets_an_open_stream_finish() {
    let mut server = Server::start().await;
    let stream = server.open_stream().await;
    // Connected before the drain but silent: it has nothing to finish and must not hold it.
    let silent = TcpStream::connect(server.addr).await.unwrap();

    server.phase.send_replace(Phase::Draining);
    tokio::time::timeout(DEADLINE, server.stopped_accepting.take().unwrap())
        .await
        .expect("the listener closes at once")
        .unwrap();
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "a new connection is refused while draining"
    );
    assert!(
        !server.task.is_finished(),
        "the open stream holds the drain"
    );

    server.gate.send_replace(true);
    let text = stream.rest().await;
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    server.finished().await;
    drop(silent);
}

#[tokio::test]
async fn a_cut_closes_a_stream_that_outlives_the_drain() {
    let mut server = Server::start().await;
    let stream = server.open_stream().await;
    let dropped = server.stream_dropped.take().unwrap();
    server.phase.send_replace(Phase::Draining);
    tokio::time::timeout(DEADLINE, server.stopped_accepting.take().unwrap())
        .await
        .unwrap()
        .unwrap();

    server.phase.send_replace(Phase::Cut);
    let text = stream.rest().await;
    assert!(
        !text.contains("[DONE]"),
        "a cut stream never looks complete: {text}"
    );
    tokio::time::timeout(DEADLINE, dropped)
        .await
        .expect("the provider's stream is dropped")
        .unwrap();
    server.finished().await;
}

#[tokio::test]
async fn ready_answers_the_last_report_and_health_stays_up() {
    let server = Server::start().await;
    let app = server.live.current();
    app.readiness()
        .report([("west", "assume role `arn:aws:iam::1:role/r`: AccessDenied")]);
    for path in ["/ready", "/readyz"] {
        let (status, body) = server.send(path, "no key needed", None).await;
        assert_eq!(status, 503, "{path}");
        assert_eq!(
            String::from_utf8_lossy(&body),
            r#"{"status":"not_ready","accounts":{"west":"assume role `arn:aws:iam::1:role/r`: AccessDenied"}}"#
        );
    }
    let (status, _) = server.send("/health", "no key needed", None).await;
    assert_eq!(status, 200, "liveness does not depend on readiness");

    // A reloaded app answers from the same readiness.
    let reloaded = app.reconfigured(service(&server.provider, &["gated"]), settings(&[OLD_KEY]));
    reloaded.readiness().report([]);
    server.live.replace(reloaded);
    let (status, body) = server.send("/ready", "no key needed", None).await;
    assert_eq!((status, &body[..]), (200, &br#"{"status":"ready"}"#[..]));
    assert!(app.readiness().is_ready());
}
