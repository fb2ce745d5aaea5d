//! The load generator: keep-alive HTTP/1.1 (and HTTP/2 for many held streams) connections and
//! the measurements made with them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::procs::Process;

/// One request as a path's client sends it, again and again.
#[derive(Clone)]
pub struct Shot {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub path: Arc<str>,
    pub key: Option<&'static str>,
    pub body: Bytes,
}

impl Shot {
    fn request(&self) -> Result<http::Request<Full<Bytes>>, String> {
        let mut builder = http::Request::builder()
            .method("POST")
            .uri(&*self.path)
            .header("host", self.addr.to_string())
            .header("content-type", "application/json");
        if let Some(key) = self.key {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        builder
            .body(Full::new(self.body.clone()))
            .map_err(|e| e.to_string())
    }
}

/// An error with its causes ("connection error: Connection reset by peer"), for hyper's
/// errors, whose own message names only the kind.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

async fn connect(addr: SocketAddr) -> Result<TokioIo<TcpStream>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(TokioIo::new(stream))
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Self, String> {
        let (sender, connection) = http1::handshake(connect(addr).await?)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(Self { sender })
    }

    /// Sends `shot` and reads the whole answer, which must be a 200.
    pub async fn call(&mut self, shot: &Shot) -> Result<Bytes, String> {
        let response = self.start(shot).await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{}: reading the answer: {}", shot.name, chain(&e)))?
            .to_bytes();
        if status != 200 {
            return Err(format!(
                "{}: status {status}: {}",
                shot.name,
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            ));
        }
        Ok(bytes)
    }

    /// Sends `shot`; the answer's head must be a 200.
    pub async fn start(&mut self, shot: &Shot) -> Result<http::Response<Incoming>, String> {
        self.sender
            .ready()
            .await
            .map_err(|e| format!("{}: {}", shot.name, chain(&e)))?;
        self.sender
            .send_request(shot.request()?)
            .await
            .map_err(|e| format!("{}: sending: {}", shot.name, chain(&e)))
    }
}

/// Waits until a `GET /health` on `addr` answers 200.
pub async fn wait_healthy(name: &str, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut conn) = Conn::open(addr).await {
            let request = http::Request::builder()
                .uri("/health")
                .header("host", addr.to_string())
                .body(Full::new(Bytes::new()));
            if let Ok(request) = request {
                if conn.sender.ready().await.is_ok() {
                    if let Ok(response) = conn.sender.send_request(request).await {
                        if response.status() == 200 {
                            return Ok(());
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("{name} at {addr} did not become healthy"))
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::<u64>::new(3).map_err(|e| e.to_string())
}

/// Latency in µs of `requests` calls, one at a time on one connection, after a warm-up.
pub async fn latency(shot: &Shot, requests: usize) -> Result<Histogram<u64>, String> {
    let mut histogram = histogram()?;
    let mut conn = Conn::open(shot.addr).await?;
    for _ in 0..requests / 10 + 1 {
        conn.call(shot).await?;
    }
    for _ in 0..requests {
        let started = Instant::now();
        conn.call(shot).await?;
        let _ = histogram.record(micros(started.elapsed()));
    }
    Ok(histogram)
}

/// Time to the first body byte and to the end of the body in µs, streaming, one connection.
pub async fn first_byte(
    shot: &Shot,
    requests: usize,
) -> Result<(Histogram<u64>, Histogram<u64>), String> {
    let mut first = histogram()?;
    let mut last = histogram()?;
    let mut conn = Conn::open(shot.addr).await?;
    let warm_up = requests / 10 + 1;
    for i in 0..requests + warm_up {
        let started = Instant::now();
        let (first_at, _) = read_stream(conn.start(shot).await?, shot.name).await?;
        if i >= warm_up {
            let _ = first.record(micros(first_at.duration_since(started)));
            let _ = last.record(micros(started.elapsed()));
        }
    }
    Ok((first, last))
}

/// Reads a streamed answer to its end: when its first non-empty data frame came, and how many
/// bytes it had.
async fn read_stream(
    response: http::Response<Incoming>,
    name: &str,
) -> Result<(Instant, usize), String> {
    if response.status() != 200 {
        return Err(format!("{name}: stream status {}", response.status()));
    }
    let mut body = response.into_body();
    let mut first_at = None;
    let mut bytes = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("{name}: reading the stream: {}", chain(&e)))?;
        if let Some(data) = frame.data_ref() {
            if first_at.is_none() && !data.is_empty() {
                first_at = Some(Instant::now());
            }
            bytes += data.len();
        }
    }
    Ok((first_at.unwrap_or_else(Instant::now), bytes))
}

/// Opens `connections` connections and makes one call on each (so the proxy's upstream pool
/// is warm too).
async fn open_warm(shot: &Shot, connections: usize) -> Result<Vec<Conn>, String> {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut conn = Conn::open(shot.addr).await?;
        conn.call(shot).await?;
        conns.push(conn);
    }
    Ok(conns)
}

/// Runs `per_connection` calls on each connection at once.
async fn hammer(shot: &Shot, conns: Vec<Conn>, per_connection: usize) -> Result<(), String> {
    let mut tasks = Vec::with_capacity(conns.len());
    for mut conn in conns {
        let shot = shot.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_connection {
                conn.call(&shot).await?;
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// CPU time `process` burns per request with `connections` concurrent connections.
pub async fn cpu_per_request(
    shot: &Shot,
    process: &Process,
    connections: usize,
    requests: usize,
) -> Result<Duration, String> {
    let per_connection = (requests / connections).max(1);
    let conns = open_warm(shot, connections).await?;
    let before = process.cpu_time()?;
    hammer(shot, conns, per_connection).await?;
    let spent = process.cpu_time()?.saturating_sub(before);
    Ok(spent / u32::try_from(per_connection * connections).unwrap_or(u32::MAX))
}

/// Requests per second with `connections` concurrent keep-alive connections.
pub async fn throughput(shot: &Shot, connections: usize, window: Duration) -> Result<f64, String> {
    let deadline = Instant::now() + window;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let shot = shot.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(shot.addr).await?;
            let mut done = 0u64;
            while Instant::now() < deadline {
                conn.call(&shot).await?;
                done += 1;
            }
            Ok::<u64, String>(done)
        }));
    }
    let mut total = 0u64;
    for task in tasks {
        total += task.await.map_err(|e| e.to_string())??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64().max(window.as_secs_f64()))
}

/// The CPU time `process` spends relaying `streams` concurrent streams, each on its own
/// connection, to their ends. (Their wall-clock time and first bytes say more about this
/// single-threaded load generator than about the proxy, so they are not reported.)
pub async fn fan_out_streams(
    shot: &Shot,
    process: &Process,
    streams: usize,
) -> Result<Duration, String> {
    let mut conns = Vec::with_capacity(streams);
    for _ in 0..streams {
        conns.push(Conn::open(shot.addr).await?);
    }
    let before = process.cpu_time()?;
    let mut tasks = Vec::with_capacity(streams);
    for mut conn in conns {
        let shot = shot.clone();
        tasks.push(tokio::spawn(async move {
            read_stream(conn.start(&shot).await?, shot.name).await
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(process.cpu_time()?.saturating_sub(before))
}

/// Streams held open: dropping this closes them.
pub struct Held {
    _bodies: Vec<Incoming>,
    _h1: Vec<Conn>,
    _h2: Vec<http2::SendRequest<Full<Bytes>>>,
}

/// How held-open streams reach the proxy.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One HTTP/1.1 connection per stream.
    Http1,
    /// HTTP/2 connections (prior knowledge) carrying this many streams each.
    Http2(usize),
}

/// Opens `count` streams the upstream holds open after its first event, waiting for each
/// stream's first body bytes so it is open end to end.
pub async fn hold_streams(shot: &Shot, count: usize, transport: Transport) -> Result<Held, String> {
    let mut held = Held {
        _bodies: Vec::with_capacity(count),
        _h1: Vec::new(),
        _h2: Vec::new(),
    };
    // Opened in batches, so the kernel's accept queues never overflow.
    let batch = 200;
    let mut opened = 0;
    while opened < count {
        let n = batch.min(count - opened);
        let mut tasks = Vec::with_capacity(n);
        match transport {
            Transport::Http1 => {
                for _ in 0..n {
                    let shot = shot.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut conn = Conn::open(shot.addr).await?;
                        let body = first_chunk(conn.start(&shot).await?, shot.name).await?;
                        Ok::<_, String>((body, Some(conn)))
                    }));
                }
            }
            Transport::Http2(per_connection) => {
                let mut sender = None;
                for i in 0..n {
                    if (opened + i) % per_connection == 0 || sender.is_none() {
                        let (s, connection) =
                            http2::handshake(TokioExecutor::new(), connect(shot.addr).await?)
                                .await
                                .map_err(|e| e.to_string())?;
                        tokio::spawn(connection);
                        held._h2.push(s.clone());
                        sender = Some(s);
                    }
                    let Some(mut sender) = sender.clone() else {
                        continue;
                    };
                    let shot = shot.clone();
                    tasks.push(tokio::spawn(async move {
                        sender.ready().await.map_err(|e| e.to_string())?;
                        let response = sender
                            .send_request(shot.request()?)
                            .await
                            .map_err(|e| e.to_string())?;
                        let body = first_chunk(response, shot.name).await?;
                        Ok::<_, String>((body, None))
                    }));
                }
            }
        }
        for task in tasks {
            let (body, conn) = task.await.map_err(|e| e.to_string())??;
            held._bodies.push(body);
            held._h1.extend(conn);
        }
        opened += n;
    }
    Ok(held)
}

async fn first_chunk(response: http::Response<Incoming>, name: &str) -> Result<Incoming, String> {
    if response.status() != 200 {
        return Err(format!("{name}: held stream status {}", response.status()));
    }
    let mut body = response.into_body();
    loop {
        match body.frame().await {
            Some(Ok(frame)) if frame.data_ref().is_some_and(|d| !d.is_empty()) => return Ok(body),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err(format!("{name}: held stream ended")),
        }
    }
}
