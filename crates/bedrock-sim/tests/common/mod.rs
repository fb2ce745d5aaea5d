//! Shared test helpers: a tiny SigV4-signing hyper client, a raw HTTP/1.1 client for exact
//! requests, and an event-stream reader built on aws-smithy-eventstream's decoder.

#![allow(
    dead_code,
    reason = "each test crate uses a different subset of the helpers"
)]
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the calling test by panicking, like the tests themselves"
)]

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::event_stream::{HeaderValue as EsHeaderValue, Message};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

pub const AKID: &str = "AKIDSIMTEST000000001";
pub const SECRET: &str = "sim/test/secret/key/0123456789abcdefghij";
pub const REGION: &str = "us-east-1";
pub const CLAUDE: &str = "anthropic.claude-3-sonnet-20240229-v1:0";
pub const CLAUDE_PATH: &str = "anthropic.claude-3-sonnet-20240229-v1%3A0";

/// Every test process must not probe the instance-metadata service.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // Edition 2021: set_var is safe; it runs once, before any test spawns threads that read it.
    ONCE.call_once(|| std::env::set_var("AWS_EC2_METADATA_DISABLED", "true"));
}

/// Credentials a test signs with.
#[derive(Clone, Debug)]
pub struct Creds {
    pub access_key_id: String,
    pub secret: String,
    pub token: Option<String>,
}

impl Creds {
    pub fn long_term(access_key_id: &str, secret: &str) -> Self {
        Self {
            access_key_id: access_key_id.to_owned(),
            secret: secret.to_owned(),
            token: None,
        }
    }

    pub fn test() -> Self {
        Self::long_term(AKID, SECRET)
    }
}

/// Percent-encodes a model id as a URI label (every byte outside the unreserved set).
pub fn label(model_id: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(model_id, SET).to_string()
}

/// A user message body.
pub fn converse_body(text: &str) -> Value {
    json!({ "messages": [ { "role": "user", "content": [ { "text": text } ] } ] })
}

/// Builds a request for `url` + `path` and signs it with aws-sigv4 at `time`.
#[expect(
    clippy::too_many_arguments,
    reason = "every part of a SigV4 request, spelled out in tests"
)]
pub fn signed(
    base_url: &str,
    path: &str,
    body: &[u8],
    creds: &Creds,
    region: &str,
    service: &str,
    content_type: &str,
    time: SystemTime,
) -> Request<Full<Bytes>> {
    let uri: http::Uri = format!("{base_url}{path}").parse().unwrap();
    // hyper's low-level client does not add Host; real clients always send (and sign) it.
    let host = uri.authority().unwrap().as_str().to_owned();
    let mut req = Request::builder()
        .method("POST")
        .uri(uri)
        .header("host", host)
        .header("content-type", content_type)
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let identity: Identity = Credentials::new(
        &creds.access_key_id,
        &creds.secret,
        creds.token.clone(),
        None,
        "test",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let uri = req.uri().to_string();
    let signable = SignableRequest::new(
        "POST",
        uri,
        req.headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions.apply_to_request_http1x(&mut req);
    req
}

/// A signed Bedrock request (service `bedrock`, now).
pub fn bedrock_request(
    base_url: &str,
    model_id: &str,
    op: &str,
    body: &Value,
    creds: &Creds,
) -> Request<Full<Bytes>> {
    signed(
        base_url,
        &format!("/model/{}/{op}", label(model_id)),
        body.to_string().as_bytes(),
        creds,
        REGION,
        "bedrock",
        "application/json",
        now(),
    )
}

/// The usual test call: `op` on `model_id`, asking "hi", signed with the test keys.
pub fn hi_request(base_url: &str, model_id: &str, op: &str) -> Request<Full<Bytes>> {
    bedrock_request(base_url, model_id, op, &converse_body("hi"), &Creds::test())
}

#[expect(
    clippy::disallowed_methods,
    reason = "tests sign requests at the real time"
)]
pub fn now() -> SystemTime {
    SystemTime::now()
}

/// One HTTP/1.1 connection whose task the test controls: aborting it closes the socket.
pub struct Conn {
    pub sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    pub task: JoinHandle<()>,
}

pub async fn connect(addr: std::net::SocketAddr) -> Conn {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    Conn { sender, task }
}

/// Sends one request on a fresh connection and returns the response with its body unread.
pub async fn send(
    addr: std::net::SocketAddr,
    req: Request<Full<Bytes>>,
) -> (Conn, hyper::Response<Incoming>) {
    let mut conn = connect(addr).await;
    conn.sender.ready().await.unwrap();
    let resp = conn.sender.send_request(req).await.unwrap();
    (conn, resp)
}

/// Sends one request and reads the whole response.
pub async fn call(
    addr: std::net::SocketAddr,
    req: Request<Full<Bytes>>,
) -> (StatusCode, HeaderMap, Bytes) {
    let (_conn, resp) = send(addr, req).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}

/// Sends one request and parses the response body as JSON.
pub async fn call_json(
    addr: std::net::SocketAddr,
    req: Request<Full<Bytes>>,
) -> (StatusCode, HeaderMap, Value) {
    let (status, headers, body) = call(addr, req).await;
    let value =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"));
    (status, headers, value)
}

/// The exception name of a Bedrock error response.
pub fn error_type(headers: &HeaderMap) -> String {
    let value = headers.get("x-amzn-errortype").unwrap().to_str().unwrap();
    assert!(
        value.ends_with(":http://internal.amazon.com/coral/com.amazon.bedrock/"),
        "{value}"
    );
    value.split(':').next().unwrap().to_owned()
}

/// Reads an event-stream body frame by frame.
pub struct FrameReader {
    body: Incoming,
    buf: BytesMut,
    decoder: MessageFrameDecoder,
}

/// What [`FrameReader::next`] found.
#[derive(Debug)]
pub enum Next {
    Frame(Message),
    /// The body ended cleanly (with `n` undecoded bytes left over).
    End(usize),
    /// The body failed (connection cut) with `n` undecoded bytes buffered.
    BodyError(usize),
    /// The decoder rejected a frame.
    DecodeError(String),
}

impl FrameReader {
    pub fn new(body: Incoming) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
            decoder: MessageFrameDecoder::new(),
        }
    }

    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    pub async fn next(&mut self) -> Next {
        loop {
            match self.decoder.decode_frame(&mut self.buf) {
                Ok(DecodedFrame::Complete(message)) => return Next::Frame(message),
                Ok(DecodedFrame::Incomplete) => {}
                Err(e) => return Next::DecodeError(e.to_string()),
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(_)) => return Next::BodyError(self.buf.len()),
                None => return Next::End(self.buf.len()),
            }
        }
    }

    /// The next frame, panicking otherwise.
    pub async fn frame(&mut self) -> Message {
        match self.next().await {
            Next::Frame(m) => m,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// All frames up to a clean end.
    pub async fn all(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        loop {
            match self.next().await {
                Next::Frame(m) => out.push(m),
                Next::End(0) => return out,
                other => panic!("expected a frame or the end, got {other:?}"),
            }
        }
    }
}

/// A string header of an event-stream message.
pub fn header(message: &Message, name: &str) -> Option<String> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            EsHeaderValue::String(s) => Some(s.as_str().to_owned()),
            _ => None,
        })
}

/// `(":event-type" or ":exception-type", payload JSON)` of a message.
pub fn event(message: &Message) -> (String, Value) {
    let kind = header(message, ":event-type")
        .or_else(|| header(message, ":exception-type"))
        .unwrap();
    (kind, serde_json::from_slice(message.payload()).unwrap())
}

/// Sends raw bytes on a fresh connection and returns the whole answer (connection: close).
pub async fn raw_http(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A simulator with the test keys answering every model with `script`.
pub async fn sim_with(script: bedrock_sim::Script) -> bedrock_sim::SimHandle {
    init();
    bedrock_sim::BedrockSim::builder()
        .access_key(AKID, SECRET)
        .default_script(script)
        .start()
        .await
        .unwrap()
}

/// Converse on `model_id` with `body`: status, error type (empty on success) and body.
pub async fn converse_on(
    sim: &bedrock_sim::SimHandle,
    model_id: &str,
    body: &Value,
) -> (StatusCode, String, Value) {
    let req = bedrock_request(&sim.url(), model_id, "converse", body, &Creds::test());
    let (status, headers, value) = call_json(sim.addr(), req).await;
    let kind = if status.is_success() {
        String::new()
    } else {
        error_type(&headers)
    };
    (status, kind, value)
}

/// Converse on [`CLAUDE`], expecting 200; the answer.
pub async fn answer(sim: &bedrock_sim::SimHandle, body: &Value) -> Value {
    let (status, _, value) = converse_on(sim, CLAUDE, body).await;
    assert_eq!(status, 200, "{value}");
    value
}

/// Converse on [`CLAUDE`], expecting `400 ValidationException` whose message contains
/// `expected`, for both operations; the message.
pub async fn refused(sim: &bedrock_sim::SimHandle, body: &Value, expected: &str) -> String {
    let (status, kind, value) = converse_on(sim, CLAUDE, body).await;
    assert_eq!(status, 400, "{value}");
    assert_eq!(kind, "ValidationException");
    let message = value["message"].as_str().unwrap().to_owned();
    assert!(message.contains(expected), "{message}");
    let req = bedrock_request(&sim.url(), CLAUDE, "converse-stream", body, &Creds::test());
    let (status, headers, streamed) = call_json(sim.addr(), req).await;
    assert_eq!(status, 400, "stream: {streamed}");
    assert_eq!(error_type(&headers), "ValidationException");
    assert_eq!(streamed["message"], message.as_str());
    message
}

/// ConverseStream on `model_id`: every event as (type, payload without the padding field).
pub async fn stream_events(
    sim: &bedrock_sim::SimHandle,
    model_id: &str,
    body: &Value,
) -> Vec<(String, Value)> {
    let req = bedrock_request(
        &sim.url(),
        model_id,
        "converse-stream",
        body,
        &Creds::test(),
    );
    let (_conn, resp) = send(sim.addr(), req).await;
    assert_eq!(resp.status(), 200);
    FrameReader::new(resp.into_body())
        .all()
        .await
        .iter()
        .map(|m| {
            let (kind, mut payload) = event(m);
            if let Some(map) = payload.as_object_mut() {
                map.remove("p");
            }
            (kind, payload)
        })
        .collect()
}

/// The event types of `events`.
pub fn kinds(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(k, _)| k.as_str()).collect()
}
