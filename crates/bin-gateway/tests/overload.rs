//! A bounded load test of the real `gateway serve` process: small limits
//! (`max_connections = 20`, `max_concurrent_requests = 10`), every chat slot held by a model
//! that does not answer, then rounds of ten times the connection limit in clients at once.
//! Every client is refused quickly (closed at accept, or 503 `overloaded`), `/health` answers
//! on an open connection throughout, and the process's memory after the rounds is what it
//! was after the first one.
//!
//! The process is learned from its log (the address it listens on) and its `/metrics`, never
//! by waiting a while.

#![cfg(target_os = "linux")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bedrock_sim::{stream, Gate, Script, SimHandle, StreamStep};
use common::process::GatewayProcess;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

const MAX_CONNECTIONS: usize = 20;
const MAX_CONCURRENT_REQUESTS: usize = 10;
const CLIENTS: usize = 10 * MAX_CONNECTIONS;
/// The first round warms the process up (allocator arenas, hyper's buffers, the metric
/// series); the others must leave its memory where the first did.
const ROUNDS: usize = 4;
/// A refusal is an accept and a close, or a head read and a 503 written: microseconds of
/// work. 500 ms leaves two orders of magnitude for a debug build on a loaded two-core CI
/// machine accepting 200 connections at once, and is still a small fraction of what an
/// unrefused client would wait here (forever: the model never answers until the end).
const REFUSAL_P99: Duration = Duration::from_millis(500);
/// Growth allowed between the first round and the last: a leak of one connection's
/// buffers per refused client (8 KiB and more each) would pass it within the 600 clients
/// of the later rounds, while allocator noise (a few pages per arena) stays well below.
const RSS_GROWTH_BYTES: u64 = 4 * 1024 * 1024;
/// Long enough for a loaded CI machine; never waited out unless something is wrong.
const DEADLINE: Duration = Duration::from_secs(20);

/// A keep-alive connection that asks the gateway things between the rounds and during them.
struct Observer(TcpStream);

impl Observer {
    async fn get(&mut self, path: &str) -> (u16, String) {
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
        self.0.write_all(request.as_bytes()).await.unwrap();
        tokio::time::timeout(DEADLINE, read_response(&mut self.0))
            .await
            .expect("the observer is answered in time")
    }

    async fn metric(&mut self, name: &str) -> f64 {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200);
        metric(&text, name).unwrap_or_else(|| panic!("no {name} in {text}"))
    }

    /// Asks `/metrics` until `name` reads `value`: each ask is one answered request.
    async fn until_metric(&mut self, name: &str, value: f64) {
        tokio::time::timeout(DEADLINE, async {
            while self.metric(name).await != value {}
        })
        .await
        .unwrap_or_else(|_| panic!("{name} never reached {value}"));
    }
}

/// One response: its status and body (by `content-length`).
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "closed early");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .map_or(0, |n| n.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8(body).unwrap())
}

fn chat_request() -> String {
    let body = json!({"model": "sim/claude-3", "messages": user("hi")}).to_string();
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// How one flooding client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Closed at accept (an end of stream or a reset, before any answer).
    Closed,
    /// Accepted, and its chat shed with 503 `overloaded`.
    Shed,
}

/// Connects, sends a chat, and reads whatever comes back until the gateway closes.
async fn flooding_client(addr: SocketAddr) -> (Refusal, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // A connection closed at accept may reset before or while the request is written.
    let _ = stream.write_all(chat_request().as_bytes()).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let elapsed = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    let refusal = if answer.is_empty() {
        Refusal::Closed
    } else {
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(answer.contains("\"overloaded\""), "{answer}");
        Refusal::Shed
    };
    (refusal, elapsed)
}

/// [`CLIENTS`] clients at once while the observer checks `/health`; the refusals by kind
/// and the 99th percentile of their times.
async fn round(addr: SocketAddr, observer: &mut Observer) -> ([usize; 2], Duration) {
    let mut clients = JoinSet::new();
    for _ in 0..CLIENTS {
        clients.spawn(flooding_client(addr));
    }
    let flood = tokio::spawn(async move {
        let mut times = Vec::with_capacity(CLIENTS);
        let mut counts = [0usize; 2];
        while let Some(done) = clients.join_next().await {
            let (refusal, elapsed) = done.unwrap();
            counts[usize::from(refusal == Refusal::Shed)] += 1;
            times.push(elapsed);
        }
        (counts, times)
    });
    // One whole request at a time, so the connection is left clean for the next question.
    let health_checks = tokio::time::timeout(DEADLINE, async {
        let mut checks = 0;
        while checks == 0 || !flood.is_finished() {
            assert_eq!(
                observer.get("/health").await,
                (200, r#"{"status":"ok"}"#.into())
            );
            checks += 1;
        }
        checks
    })
    .await
    .expect("every client is refused in time");
    let (counts, mut times) = flood.await.unwrap();
    assert!(health_checks > 0);
    times.sort();
    let p99 = times[(times.len() * 99).div_ceil(100) - 1];
    (counts, p99)
}

fn config(sim: &SimHandle) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
worker_threads = 2
max_connections = {MAX_CONNECTIONS}
max_concurrent_requests = {MAX_CONCURRENT_REQUESTS}

[auth]
keys = [{{ name = "tests", key = "{KEY}" }}]

[accounts.sim]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "{url}"
auth = {{ type = "access-key", access_key_id = "{ACCESS_KEY_ID}", secret_access_key = "{SECRET}" }}
retry = {{ max_attempts = 1 }}
models.claude-3 = {{ model_id = "{CLAUDE}" }}
"#,
        url = sim.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_times_the_limits_are_refused_fast_while_health_answers_and_memory_stays_flat() {
    let gate = Gate::new();
    let mut steps = stream::text(&["held", " answer"], "end_turn", (1, 2));
    steps.insert(0, StreamStep::WaitFor(gate.clone()));
    let sim = sim()
        .script(CLAUDE, Script::Stream(steps))
        .start()
        .await
        .unwrap();
    let gateway = GatewayProcess::start("overload", &config(&sim)).await;
    let mut observer = Observer(TcpStream::connect(gateway.addr).await.unwrap());
    assert_eq!(observer.get("/health").await.0, 200);

    // Every chat slot held by a chat the model does not answer (one connection each).
    let mut held = JoinSet::new();
    for _ in 0..MAX_CONCURRENT_REQUESTS {
        let addr = gateway.addr;
        held.spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(chat_request().as_bytes()).await.unwrap();
            read_response(&mut stream).await
        });
    }
    observer
        .until_metric("gateway_in_flight_requests", MAX_CONCURRENT_REQUESTS as f64)
        .await;

    let mut rss_after_first = 0;
    for index in 0..ROUNDS {
        let ([closed, shed], p99) = round(gateway.addr, &mut observer).await;
        assert_eq!(closed + shed, CLIENTS);
        assert!(
            closed > 0 && shed > 0,
            "round {index}: {closed} closed, {shed} shed"
        );
        assert!(p99 < REFUSAL_P99, "round {index}: p99 {p99:?}");
        // The round is over once the gateway has seen every refused connection close.
        observer
            .until_metric(
                "gateway_open_connections",
                1.0 + MAX_CONCURRENT_REQUESTS as f64,
            )
            .await;
        if index == 0 {
            rss_after_first = gateway.rss_bytes();
        }
    }
    let refused = observer.metric("gateway_connections_refused_total").await;
    let shed = observer.metric("gateway_shed_requests_total").await;
    assert_eq!(refused + shed, (ROUNDS * CLIENTS) as f64);
    let rss_after = gateway.rss_bytes();
    assert!(
        rss_after <= rss_after_first + RSS_GROWTH_BYTES,
        "RSS grew from {rss_after_first} to {rss_after} bytes"
    );

    // The held chats were never disturbed: they finish once the model answers.
    gate.open();
    while let Some(answer) = held.join_next().await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        sim.requests().len(),
        MAX_CONCURRENT_REQUESTS,
        "refused chats never reached Bedrock"
    );
}
