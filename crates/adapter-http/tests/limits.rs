//! Limits before work, over raw TCP: oversized heads, too many headers, slow heads and
//! bodies, `Expect: 100-continue`, duplicate `Authorization`, the connection cap, and the
//! shapes of request smuggling. Each shows what hyper refuses on its own and what the
//! handler adds, that nothing refused reaches the provider, and that the refusals hyper
//! answers itself are logged.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "the harness outside #[test] fns should panic on a failed setup too"
)]

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use gateway_adapter_http::{serve, GatewayKey, HttpApp, HttpSettings};
use gateway_core::clock::{FixedClock, SharedClock};
use gateway_core::guardrail::GuardrailPolicy;
use gateway_core::{
    ChatEventStream, ChatProvider, ChatResponse, ChatService, FinishReasonStyle, ModelCatalog,
    ModelEntry, ProviderError, ProviderRequest, StopReason, Usage,
};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};

const KEY: &str = "sk-test-limits";
/// A deadline for things that must happen promptly; never a way to wait for them.
const DEADLINE: Duration = Duration::from_secs(5);
const CHAT: &str = r#"{"model":"acct/text","messages":[{"role":"user","content":"Hi"}]}"#;
/// Follows every smuggling shape: a second request that must never be answered.
const SMUGGLED: &str = "GET /health HTTP/1.1\r\nhost: x\r\n\r\n";

/// Answers every completion; counts the calls.
#[derive(Default)]
struct CountingProvider {
    calls: AtomicUsize,
}

#[async_trait]
impl ChatProvider for CountingProvider {
    async fn complete<'a>(&self, _: ProviderRequest<'a>) -> Result<ChatResponse, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(ChatResponse {
            text: Some("Hello!".into()),
            reasoning: vec![],
            tool_calls: vec![],
            stop_reason: StopReason::EndTurn,
            usage: Usage::default(),
            guardrail_trace: None,
            additional_model_response_fields: None,
        })
    }

    async fn stream<'a>(&self, _: ProviderRequest<'a>) -> Result<ChatEventStream, ProviderError> {
        unreachable!("no test streams")
    }
}

struct Gateway {
    addr: SocketAddr,
    provider: Arc<CountingProvider>,
    _shutdown: oneshot::Sender<()>,
}

impl Gateway {
    async fn start() -> Self {
        Self::start_with(HttpSettings::default()).await
    }

    async fn start_with(mut settings: HttpSettings) -> Self {
        let entry = ModelEntry {
            account: "acct".into(),
            model: "text".into(),
            model_id: "text".into(),
            region: "us-east-1".into(),
            guardrail: GuardrailPolicy::open(),
            finish_reason_style: FinishReasonStyle::Bedrock,
            family: None,
            drop_unsupported_params: false,
            price: None,
            kind: gateway_core::ModelKind::Chat,
        };
        let catalog = ModelCatalog::new([entry]).unwrap();
        let provider = Arc::new(CountingProvider::default());
        let service = ChatService::new(Arc::new(catalog), provider.clone());
        settings.keys = vec![GatewayKey::new("team-a", KEY.into())];
        let clock = SharedClock::new(FixedClock::at_unix(1_741_339_101));
        let app = HttpApp::new(service, settings, clock);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, Arc::new(app), async {
            let _ = rx.await;
        }));
        Self {
            addr,
            provider,
            _shutdown: tx,
        }
    }

    fn calls(&self) -> usize {
        self.provider.calls.load(Ordering::SeqCst)
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    /// Sends `request` on a new connection and reads until the server closes it.
    async fn exchange(&self, request: &[u8]) -> Exchange {
        let mut stream = self.connect().await;
        let peer = stream.local_addr().unwrap();
        // The server may refuse and close before the whole request is written.
        let _ = stream.write_all(request).await;
        Exchange {
            text: read_to_close(&mut stream).await,
            peer,
        }
    }
}

/// What came back on one connection, and the address the server saw it from.
struct Exchange {
    text: String,
    peer: SocketAddr,
}

impl Exchange {
    fn status(&self) -> Option<u16> {
        self.text.get(9..12).and_then(|code| code.parse().ok())
    }

    fn responses(&self) -> usize {
        self.text.matches("HTTP/1.1 ").count()
    }
}

/// Reads until the server closes the connection; panics if it stays open past the deadline.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server closes the connection");
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response head and its `content-length` body from a connection left open.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        let mut byte = [0u8; 1];
        while !out.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "closed early");
            out.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&out).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .map_or(0, |n| n.trim().parse().unwrap());
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await.unwrap();
        out.extend_from_slice(&body);
    })
    .await
    .expect("a response arrives in time");
    String::from_utf8_lossy(&out).into_owned()
}

fn chat_head(extra_headers: &str) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\n{extra_headers}\r\n"
    )
}

fn chat_request(extra_headers: &str) -> String {
    format!(
        "{}{CHAT}",
        chat_head(&format!(
            "content-length: {}\r\n{extra_headers}",
            CHAT.len()
        ))
    )
}

/// Log lines written as JSON into memory; every write wakes the tests waiting for a line.
#[derive(Clone)]
struct CapturedLogs {
    bytes: Arc<Mutex<Vec<u8>>>,
    written: Arc<Notify>,
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.lock().unwrap().extend_from_slice(buf);
        self.written.notify_waiters();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// What the whole test process logs at `info` and above (one global subscriber: a
    /// connection's task may run on any thread).
    fn process() -> &'static Self {
        static LOGS: OnceLock<CapturedLogs> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Self {
                bytes: Arc::default(),
                written: Arc::default(),
            };
            let writer = logs.clone();
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_max_level(tracing::Level::INFO)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other test sets a global subscriber");
            logs
        })
    }

    fn refusal_of(&self, peer: SocketAddr) -> Option<Value> {
        let text = String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap();
        let peer = peer.to_string();
        text.lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .find(|line| {
                line["fields"]["message"] == "refused before the handler"
                    && line["fields"]["peer"] == peer.as_str()
            })
    }

    /// The line logged for the connection from `peer`, waiting for it to be written.
    async fn refusal_line(&self, peer: SocketAddr) -> Value {
        tokio::time::timeout(DEADLINE, async {
            loop {
                let written = self.written.notified();
                tokio::pin!(written);
                written.as_mut().enable();
                if let Some(line) = self.refusal_of(peer) {
                    return line;
                }
                written.await;
            }
        })
        .await
        .expect("the refusal is logged")
    }
}

fn assert_refusal_line(line: &Value, reason: &str, status: Option<u16>) {
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["target"], "gateway::request", "{line}");
    let fields = &line["fields"];
    assert_eq!(fields["reason"], reason, "{line}");
    assert_eq!(
        fields["status"],
        status.map_or(Value::Null, Value::from),
        "{line}"
    );
    let id = fields["request_id"].as_str().unwrap();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{line}"
    );
}

#[tokio::test]
async fn a_head_over_max_header_bytes_is_431_before_the_handler_and_logged() {
    let logs = CapturedLogs::process();
    let gateway = Gateway::start_with(HttpSettings {
        max_header_bytes: 16 * 1024,
        ..HttpSettings::default()
    })
    .await;
    // One header of 70 KB (the issue's case), then a head of many headers just over the limit.
    let huge = chat_request(&format!("x-big: {}\r\n", "a".repeat(70_000)));
    let many: String = (0..40)
        .map(|i| format!("x-h{i}: {}\r\n", "b".repeat(400)))
        .collect();
    for request in [huge, chat_request(&many)] {
        let answer = gateway.exchange(request.as_bytes()).await;
        assert_eq!(answer.status(), Some(431), "{}", answer.text);
        assert!(!answer.text.contains("x-request-id"), "hyper's answer");
        let line = logs.refusal_line(answer.peer).await;
        assert_refusal_line(&line, "head_too_large", Some(431));
    }
    // Just under the limit is served.
    let answer = gateway
        .exchange(
            chat_request(&format!(
                "x-big: {}\r\nconnection: close\r\n",
                "a".repeat(14_000)
            ))
            .as_bytes(),
        )
        .await;
    assert_eq!(answer.status(), Some(200), "{}", answer.text);
    assert_eq!(gateway.calls(), 1);
}

#[tokio::test]
async fn more_headers_than_max_headers_is_431() {
    let gateway = Gateway::start_with(HttpSettings {
        max_headers: 20,
        ..HttpSettings::default()
    })
    .await;
    // The chat's head has 4 lines of its own: 21 in all, then 20.
    let lines = |n: usize| -> String { (0..n).map(|i| format!("x-h{i}: v\r\n")).collect() };
    let answer = gateway.exchange(chat_request(&lines(17)).as_bytes()).await;
    assert_eq!(answer.status(), Some(431), "{}", answer.text);
    assert_eq!(gateway.calls(), 0);
    let answer = gateway
        .exchange(chat_request(&format!("{}connection: close\r\n", lines(15))).as_bytes())
        .await;
    assert_eq!(answer.status(), Some(200), "{}", answer.text);
}

#[tokio::test]
async fn http2_heads_with_more_headers_than_max_headers_are_431_with_a_request_id() {
    let gateway = Gateway::start_with(HttpSettings {
        max_headers: 20,
        ..HttpSettings::default()
    })
    .await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let mut request = http::Request::get(format!("http://{}/health", gateway.addr));
    for i in 0..25 {
        request = request.header(format!("x-h{i}"), "v");
    }
    let response = tokio::time::timeout(
        DEADLINE,
        client.request(request.body(Full::default()).unwrap()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 431);
    assert!(response.headers().contains_key("x-request-id"));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "request_header_fields_too_large");
}

#[tokio::test]
async fn a_head_slower_than_header_read_timeout_is_closed_and_logged() {
    let logs = CapturedLogs::process();
    let gateway = Gateway::start_with(HttpSettings {
        header_read_timeout: Duration::from_millis(100),
        ..HttpSettings::default()
    })
    .await;
    for partial in ["", "POST /v1/chat/completions HTTP/1.1\r\nhost:"] {
        let answer = gateway.exchange(partial.as_bytes()).await;
        assert_eq!(answer.text, "", "closed without an answer");
        let line = logs.refusal_line(answer.peer).await;
        assert_refusal_line(&line, "header_read_timeout", None);
    }
}

#[tokio::test]
async fn a_keep_alive_connection_left_idle_is_closed_without_a_refusal_line() {
    let logs = CapturedLogs::process();
    let gateway = Gateway::start_with(HttpSettings {
        header_read_timeout: Duration::from_millis(100),
        ..HttpSettings::default()
    })
    .await;
    let mut idle = gateway.connect().await;
    let idle_peer = idle.local_addr().unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200 "));
    assert_eq!(read_to_close(&mut idle).await, "", "closed once idle");
    // A stalled head on a new connection times out after the idle one closed, so its line
    // comes after anything the idle one would have logged.
    let stalled = gateway.exchange(b"GET /health HTTP/1.1\r\nhost:").await;
    logs.refusal_line(stalled.peer).await;
    assert_eq!(logs.refusal_of(idle_peer), None);
}

#[tokio::test]
async fn a_malformed_head_is_400_before_the_handler_and_logged() {
    let logs = CapturedLogs::process();
    let gateway = Gateway::start().await;
    let answer = gateway
        .exchange(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n")
        .await;
    assert_eq!(answer.status(), Some(400), "{}", answer.text);
    let line = logs.refusal_line(answer.peer).await;
    assert_refusal_line(&line, "malformed_head", Some(400));
}

#[tokio::test]
async fn a_body_slower_than_body_read_timeout_is_408_and_the_connection_closes() {
    let gateway = Gateway::start_with(HttpSettings {
        body_read_timeout: Duration::from_millis(100),
        ..HttpSettings::default()
    })
    .await;
    for framing in ["content-length: 100\r\n", "transfer-encoding: chunked\r\n"] {
        let mut stream = gateway.connect().await;
        let partial = if framing.starts_with("content") {
            "{\"model\""
        } else {
            "8\r\n{\"model\"\r\n"
        };
        stream
            .write_all(format!("{}{partial}", chat_head(framing)).as_bytes())
            .await
            .unwrap();
        // Nothing more is sent: the answer comes from the timeout alone.
        let answer = read_to_close(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
    }
    assert_eq!(gateway.calls(), 0);
}

#[tokio::test]
async fn expect_100_continue_is_sent_only_for_a_request_that_will_be_read() {
    let gateway = Gateway::start_with(HttpSettings {
        max_body_bytes: 1024,
        ..HttpSettings::default()
    })
    .await;
    let expect = "expect: 100-continue\r\n";
    let refused = [
        (
            format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-wrong-key\r\ncontent-length: {}\r\n{expect}\r\n", CHAT.len()),
            401,
        ),
        (chat_head(&format!("content-length: 2000\r\n{expect}")), 413),
        (
            chat_head(&format!("transfer-encoding: chunked, chunked\r\n{expect}")),
            400,
        ),
    ];
    for (head, status) in refused {
        // The head alone: a client waiting for `100 Continue` sends nothing more.
        let mut stream = gateway.connect().await;
        stream.write_all(head.as_bytes()).await.unwrap();
        let answer = read_response(&mut stream).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
    }
    // An accepted head gets `100 Continue`, then the body is read and served.
    let mut stream = gateway.connect().await;
    stream
        .write_all(chat_head(&format!("content-length: {}\r\n{expect}", CHAT.len())).as_bytes())
        .await
        .unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(DEADLINE, stream.read_exact(&mut interim))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(CHAT.as_bytes()).await.unwrap();
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(gateway.calls(), 1);
}

#[tokio::test]
async fn two_authorization_headers_are_401_whatever_the_first_says() {
    let gateway = Gateway::start().await;
    for second in [KEY, "sk-wrong-key", ""] {
        for (path, request) in [
            (
                "chat",
                chat_request(&format!("authorization: Bearer {second}\r\n")),
            ),
            (
                "models",
                format!(
                    "GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
                     authorization: Bearer {second}\r\nconnection: close\r\n\r\n"
                ),
            ),
        ] {
            let mut stream = gateway.connect().await;
            stream.write_all(request.as_bytes()).await.unwrap();
            let answer = read_response(&mut stream).await;
            assert!(
                answer.starts_with("HTTP/1.1 401 "),
                "{path} {second:?}: {answer}"
            );
            assert!(answer.contains("invalid_api_key"), "{answer}");
        }
    }
    assert_eq!(gateway.calls(), 0);
}

/// A framing shape, who refuses it, and what the connection then does.
struct Shape {
    name: &'static str,
    request: String,
}

fn shape(name: &'static str, head_lines: &str, body: &str) -> Shape {
    Shape {
        name,
        request: format!("{}{body}{SMUGGLED}", chat_head(head_lines)),
    }
}

fn chunked_chat() -> String {
    format!("{:x}\r\n{CHAT}\r\n0\r\n\r\n", CHAT.len())
}

#[tokio::test]
async fn smuggling_shapes_are_400_and_close_the_connection() {
    let gateway = Gateway::start().await;
    let length = CHAT.len();
    let shapes = [
        // Refused by hyper (it answers 400 itself and closes).
        shape(
            "conflicting content-length",
            &format!(
                "content-length: {length}\r\ncontent-length: {}\r\n",
                length + 1
            ),
            CHAT,
        ),
        shape(
            "signed content-length",
            &format!("content-length: +{length}\r\n"),
            CHAT,
        ),
        shape("negative content-length", "content-length: -1\r\n", CHAT),
        shape(
            "content-length with a space before the colon",
            &format!("content-length : {length}\r\n"),
            CHAT,
        ),
        shape(
            "obs-fold",
            &format!("content-length: {length}\r\nx-folded: a\r\n b\r\n"),
            CHAT,
        ),
        shape(
            "transfer-encoding not ending in chunked",
            "transfer-encoding: chunked, gzip\r\n",
            &chunked_chat(),
        ),
        shape(
            "unknown transfer-encoding",
            "transfer-encoding: xchunked\r\n",
            &chunked_chat(),
        ),
        shape(
            "NUL in a header",
            &format!("content-length: {length}\r\nx-nul: a\0b\r\n"),
            CHAT,
        ),
        Shape {
            name: "transfer-encoding in HTTP/1.0",
            request: format!(
                "POST /v1/chat/completions HTTP/1.0\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
                 transfer-encoding: chunked\r\n\r\n{}{SMUGGLED}",
                chunked_chat()
            ),
        },
        // Let through by hyper, refused by the handler.
        shape(
            "content-length as a list",
            &format!("content-length: {length}, {length}\r\n"),
            CHAT,
        ),
        shape(
            "transfer-encoding with another coding",
            "transfer-encoding: gzip, chunked\r\n",
            &chunked_chat(),
        ),
        shape(
            "chunked twice",
            "transfer-encoding: chunked, chunked\r\n",
            &chunked_chat(),
        ),
        shape(
            "two transfer-encoding headers",
            "transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n",
            &chunked_chat(),
        ),
        // hyper refuses the body while the handler reads it.
        shape(
            "chunk size overflow",
            "transfer-encoding: chunked\r\n",
            "fffffffffffffffffff\r\nx\r\n0\r\n\r\n",
        ),
    ];
    for Shape { name, request } in shapes {
        let answer = gateway.exchange(request.as_bytes()).await;
        assert_eq!(answer.status(), Some(400), "{name}: {}", answer.text);
        assert_eq!(
            answer.responses(),
            1,
            "{name}: the smuggled request is never answered: {}",
            answer.text
        );
    }
    assert_eq!(gateway.calls(), 0);
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_read_as_chunked_once_and_the_connection_closes() {
    // hyper drops the Content-Length whichever comes first and closes the connection after
    // the answer (RFC 9112 6.1): the handler never sees both, and whatever a front proxy
    // read as the next request is never parsed.
    let gateway = Gateway::start().await;
    let length = CHAT.len();
    for head_lines in [
        format!("content-length: {length}\r\ntransfer-encoding: chunked\r\n"),
        format!("transfer-encoding: chunked\r\ncontent-length: {length}\r\n"),
    ] {
        let request = format!("{}{}{SMUGGLED}", chat_head(&head_lines), chunked_chat());
        let answer = gateway.exchange(request.as_bytes()).await;
        assert_eq!(answer.status(), Some(200), "{}", answer.text);
        assert_eq!(answer.responses(), 1, "{}", answer.text);
    }
    assert_eq!(gateway.calls(), 2);
}

#[tokio::test]
async fn past_max_connections_a_connection_is_closed_at_once_and_counted() {
    let gateway = Gateway::start_with(HttpSettings {
        max_connections: NonZeroUsize::new(2).unwrap(),
        ..HttpSettings::default()
    })
    .await;
    let health = "GET /health HTTP/1.1\r\nhost: x\r\n\r\n";
    // Two keep-alive connections, each known to be open once it was answered.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = gateway.connect().await;
        stream.write_all(health.as_bytes()).await.unwrap();
        assert!(read_response(&mut stream)
            .await
            .starts_with("HTTP/1.1 200 "));
        held.push(stream);
    }
    let refused = gateway.exchange(health.as_bytes()).await;
    assert_eq!(refused.text, "", "closed without an answer");
    // The held connections still serve, /metrics included.
    let first = &mut held[0];
    first
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let metrics = read_response(first).await;
    assert!(
        metrics.contains("\ngateway_open_connections 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\ngateway_connections_refused_total 1\n"),
        "{metrics}"
    );
    // A closed connection frees its place once the server has seen it close (each scrape
    // is a request answered, not a wait), then a new connection is served.
    drop(held.pop());
    let kept = &mut held[0];
    loop {
        kept.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        if read_response(kept)
            .await
            .contains("\ngateway_open_connections 1\n")
        {
            break;
        }
    }
    let served = gateway
        .exchange(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await;
    assert_eq!(served.status(), Some(200), "{}", served.text);
}

#[tokio::test]
async fn an_http2_head_over_max_header_bytes_never_reaches_the_handler() {
    let gateway = Gateway::start_with(HttpSettings {
        max_header_bytes: 16 * 1024,
        ..HttpSettings::default()
    })
    .await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let request = http::Request::post(format!("http://{}/v1/chat/completions", gateway.addr))
        .header("authorization", format!("Bearer {KEY}"))
        .header("x-big", "a".repeat(20_000))
        .body(Full::new(Bytes::from_static(CHAT.as_bytes())))
        .unwrap();
    let response = tokio::time::timeout(DEADLINE, client.request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 431);
    assert!(
        !response.headers().contains_key("x-request-id"),
        "the h2 crate's answer"
    );
    assert_eq!(gateway.calls(), 0);
}
