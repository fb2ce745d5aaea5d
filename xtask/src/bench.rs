//! `cargo xtask bench`: the gateway's overhead against a fixed-answer upstream, measured in
//! one run on one machine.
//!
//! Three paths to the same upstream (the simulator's fixed-answer mode, signatures not
//! verified) are compared: **direct** (client -> sim), **floor** (client -> a do-nothing
//! pass-through proxy -> sim) and **gateway** (client -> gateway -> sim). The sim, the floor
//! proxy and the gateway each run as their own release-built process, so the gateway's CPU
//! time can be read from `/proc`. Targets (design.md §6) are ratios to the floor, because
//! absolute times on shared 2-core machines are noise.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const MODEL_ID: &str = "anthropic.claude-3-sonnet-20240229-v1:0";
const HOLD_MODEL_ID: &str = "bench.hold";
const KEY: &str = "bench-gateway-key";
const OPENAI_BODY: &str =
    r#"{"model":"bench/fixed","messages":[{"role":"user","content":"Say hi"}],"max_tokens":16}"#;
const OPENAI_STREAM_BODY: &str = r#"{"model":"bench/fixed","stream":true,"messages":[{"role":"user","content":"Say hi"}],"max_tokens":16}"#;
const OPENAI_HOLD_BODY: &str =
    r#"{"model":"bench/hold","stream":true,"messages":[{"role":"user","content":"Say hi"}]}"#;
const CONVERSE_BODY: &str = r#"{"messages":[{"role":"user","content":[{"text":"Say hi"}]}],"inferenceConfig":{"maxTokens":16}}"#;

/// How much to measure.
struct Plan {
    latency_requests: usize,
    cpu_requests: usize,
    throughput_window: Duration,
    stream_requests: usize,
    open_streams: usize,
}

pub fn run(args: &[String]) -> ExitCode {
    let quick = args.iter().any(|a| a == "--quick");
    // The bench runs as a release binary; `cargo xtask bench` is a debug build that builds
    // the release binaries and hands over.
    if !args.iter().any(|a| a == "--inner") {
        return build_and_hand_over(quick);
    }
    let plan = if quick {
        Plan {
            latency_requests: 500,
            cpu_requests: 2_000,
            throughput_window: Duration::from_millis(500),
            stream_requests: 100,
            open_streams: 200,
        }
    } else {
        Plan {
            latency_requests: 5_000,
            cpu_requests: 20_000,
            throughput_window: Duration::from_secs(3),
            stream_requests: 1_000,
            open_streams: 1_000,
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(measure(&plan, quick)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn build_and_hand_over(quick: bool) -> ExitCode {
    let root = workspace_root();
    eprintln!("==> building release binaries");
    let built = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["build", "--release", "-p", "gateway", "-p", "xtask"])
        .status();
    if !matches!(built, Ok(s) if s.success()) {
        eprintln!("bench: release build failed");
        return ExitCode::FAILURE;
    }
    let mut inner = Command::new(root.join("target/release/xtask"));
    inner
        .current_dir(&root)
        .args(["bench", "--inner"])
        .env("AWS_EC2_METADATA_DISABLED", "true");
    if quick {
        inner.arg("--quick");
    }
    match inner.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

/// A child process killed when dropped.
struct Process {
    name: &'static str,
    child: Child,
}

impl Process {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// user + system CPU time so far.
    fn cpu_time(&self) -> Result<Duration, String> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .map_err(|e| format!("{}: {e}", self.name))?;
        // Fields after the parenthesised command name; utime and stime are 14 and 15.
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let total = ticks(11) + ticks(12);
        Ok(Duration::from_millis(
            total * 1000 / clock_ticks_per_second(),
        ))
    }

    /// Resident set size now and at its peak, in KiB.
    fn rss_kib(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

fn free_port() -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map_err(|e| e.to_string())
}

/// Starts `program args`, which prints its URL on the first stdout line.
fn spawn_printing_url(
    name: &'static str,
    program: &Path,
    args: &[&str],
) -> Result<(Process, String), String> {
    use std::io::BufRead;
    let mut child = Command::new(program)
        .args(args)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{name}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok((Process { name, child }, line.trim().to_owned()))
}

async fn wait_until_healthy(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut conn) = Conn::open(addr).await {
            if let Ok((200, _)) = conn.request("GET", "/health", None, "").await {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("gateway at {addr} did not become healthy"))
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            host: addr.to_string(),
        })
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: &'static str,
    ) -> Result<(u16, Bytes), String> {
        let response = self.start(method, path, key, body).await?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, bytes))
    }

    async fn start(
        &mut self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: &'static str,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let mut builder = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("content-type", "application/json");
        if let Some(key) = key {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        let request = builder
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .map_err(|e| e.to_string())?;
        self.sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())
    }
}

/// What a path's client sends.
#[derive(Clone, Copy)]
struct Target {
    name: &'static str,
    addr: SocketAddr,
    path: &'static str,
    stream_path: &'static str,
    key: Option<&'static str>,
    body: &'static str,
    stream_body: &'static str,
}

async fn latency(target: Target, requests: usize) -> Result<Histogram<u64>, String> {
    let mut histogram = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let mut conn = Conn::open(target.addr).await?;
    for _ in 0..requests / 10 {
        conn.request("POST", target.path, target.key, target.body)
            .await?;
    }
    for _ in 0..requests {
        let started = Instant::now();
        let (status, _) = conn
            .request("POST", target.path, target.key, target.body)
            .await?;
        if status != 200 {
            return Err(format!("{}: status {status}", target.name));
        }
        let _ = histogram.record(micros(started.elapsed()));
    }
    Ok(histogram)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Time to first body byte and to the end of the body, streaming, one connection.
async fn streaming(
    target: Target,
    requests: usize,
) -> Result<(Histogram<u64>, Histogram<u64>), String> {
    let mut first = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let mut last = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let mut conn = Conn::open(target.addr).await?;
    for i in 0..requests + requests / 10 {
        let started = Instant::now();
        let response = conn
            .start("POST", target.stream_path, target.key, target.stream_body)
            .await?;
        if response.status() != 200 {
            return Err(format!(
                "{}: stream status {}",
                target.name,
                response.status()
            ));
        }
        let mut body = response.into_body();
        let mut first_at = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            if first_at.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
                first_at = Some(started.elapsed());
            }
        }
        if i >= requests / 10 {
            let _ = first.record(micros(first_at.unwrap_or_default()));
            let _ = last.record(micros(started.elapsed()));
        }
    }
    Ok((first, last))
}

/// Requests per second with `connections` concurrent keep-alive connections.
async fn throughput(target: Target, connections: usize, window: Duration) -> Result<f64, String> {
    let deadline = Instant::now() + window;
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(target.addr).await?;
            let mut done = 0u64;
            while Instant::now() < deadline {
                let (status, _) = conn
                    .request("POST", target.path, target.key, target.body)
                    .await?;
                if status != 200 {
                    return Err(format!("{}: status {status}", target.name));
                }
                done += 1;
            }
            Ok::<u64, String>(done)
        }));
    }
    let started = Instant::now();
    let mut total = 0u64;
    for task in tasks {
        total += task.await.map_err(|e| e.to_string())??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64().max(window.as_secs_f64()))
}

/// CPU time a process burns per request at 16 connections.
async fn cpu_per_request(
    target: Target,
    process: &Process,
    requests: usize,
) -> Result<Duration, String> {
    let connections = 16;
    let per_connection = requests / connections;
    let before = process.cpu_time()?;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(target.addr).await?;
            for _ in 0..per_connection {
                conn.request("POST", target.path, target.key, target.body)
                    .await?;
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let spent = process.cpu_time()?.saturating_sub(before);
    Ok(spent / u32::try_from(per_connection * connections).unwrap_or(u32::MAX))
}

/// Opens `count` streams through the gateway that the upstream holds open, and reads the
/// gateway's RSS while they are all open.
async fn open_streams(gateway: Target, process: &Process, count: usize) -> Result<u64, String> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let mut conn = Conn::open(gateway.addr).await?;
        let response = conn
            .start("POST", gateway.stream_path, gateway.key, OPENAI_HOLD_BODY)
            .await?;
        if response.status() != 200 {
            return Err(format!("held stream: status {}", response.status()));
        }
        let mut body = response.into_body();
        // Wait for the first chunk so the stream is really open end to end.
        let _ = body.frame().await;
        held.push((conn, body));
    }
    let (rss, _) = process.rss_kib();
    drop(held);
    Ok(rss)
}

fn gateway_config(listen: SocketAddr, sim_url: &str) -> String {
    format!(
        r#"[server]
listen = "{listen}"
[auth]
keys = [{{ name = "bench", key = "{KEY}" }}]
[accounts.bench]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "{sim_url}"
auth = {{ type = "access-key", access_key_id = "AKIDBENCH", secret_access_key = "bench-secret" }}
models.fixed = {{ model_id = "{MODEL_ID}" }}
models.hold = {{ model_id = "{HOLD_MODEL_ID}" }}
"#
    )
}

async fn measure(plan: &Plan, quick: bool) -> Result<(), String> {
    let root = workspace_root();
    let xtask_bin = root.join("target/release/xtask");
    let gateway_bin = root.join("target/release/gateway");

    let (_sim, sim_url) = spawn_printing_url("sim", &xtask_bin, &["bench-sim"])?;
    let sim_addr: SocketAddr = sim_url
        .trim_start_matches("http://")
        .parse()
        .map_err(|e| format!("sim url {sim_url}: {e}"))?;
    let (floor, floor_url) = spawn_printing_url("floor", &xtask_bin, &["bench-floor", &sim_url])?;
    let floor_addr: SocketAddr = floor_url
        .trim_start_matches("http://")
        .parse()
        .map_err(|e| format!("floor url {floor_url}: {e}"))?;

    let gateway_addr = free_port()?;
    let config_path =
        std::env::temp_dir().join(format!("gateway-bench-{}.toml", std::process::id()));
    std::fs::write(&config_path, gateway_config(gateway_addr, &sim_url))
        .map_err(|e| e.to_string())?;
    let gateway = Process {
        name: "gateway",
        child: Command::new(&gateway_bin)
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("gateway: {e}"))?,
    };
    wait_until_healthy(gateway_addr).await?;
    let (idle_rss, _) = gateway.rss_kib();

    let converse_path = "/model/anthropic.claude-3-sonnet-20240229-v1%3A0/converse";
    let converse_stream_path = "/model/anthropic.claude-3-sonnet-20240229-v1%3A0/converse-stream";
    let direct = Target {
        name: "direct",
        addr: sim_addr,
        path: converse_path,
        stream_path: converse_stream_path,
        key: None,
        body: CONVERSE_BODY,
        stream_body: CONVERSE_BODY,
    };
    let floor_target = Target {
        name: "floor",
        addr: floor_addr,
        ..direct
    };
    let via_gateway = Target {
        name: "gateway",
        addr: gateway_addr,
        path: "/v1/chat/completions",
        stream_path: "/v1/chat/completions",
        key: Some(KEY),
        body: OPENAI_BODY,
        stream_body: OPENAI_STREAM_BODY,
    };

    eprintln!("==> latency at 1 connection");
    let lat_direct = latency(direct, plan.latency_requests).await?;
    let lat_floor = latency(floor_target, plan.latency_requests).await?;
    let lat_gateway = latency(via_gateway, plan.latency_requests).await?;

    eprintln!("==> CPU per request");
    let cpu_floor = cpu_per_request(floor_target, &floor, plan.cpu_requests).await?;
    let cpu_gateway = cpu_per_request(via_gateway, &gateway, plan.cpu_requests).await?;

    eprintln!("==> streaming");
    let (ttfb_direct, ttlb_direct) = streaming(direct, plan.stream_requests).await?;
    let (ttfb_gateway, ttlb_gateway) = streaming(via_gateway, plan.stream_requests).await?;

    eprintln!("==> throughput");
    let mut throughput_rows = Vec::new();
    for connections in [16, 64, 256] {
        let d = throughput(direct, connections, plan.throughput_window).await?;
        let f = throughput(floor_target, connections, plan.throughput_window).await?;
        let g = throughput(via_gateway, connections, plan.throughput_window).await?;
        throughput_rows.push((connections, d, f, g));
    }

    eprintln!("==> {} open streams", plan.open_streams);
    let streams_rss = open_streams(via_gateway, &gateway, plan.open_streams).await?;
    let (_, peak_rss) = gateway.rss_kib();
    let _ = std::fs::remove_file(&config_path);

    let p = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q);
    let added_p50 = p(&lat_gateway, 0.5).saturating_sub(p(&lat_direct, 0.5));
    let added_p99 = p(&lat_gateway, 0.99).saturating_sub(p(&lat_direct, 0.99));
    let floor_p50 = p(&lat_floor, 0.5).saturating_sub(p(&lat_direct, 0.5));
    let floor_p99 = p(&lat_floor, 0.99).saturating_sub(p(&lat_direct, 0.99));
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| measure | direct | floor proxy | gateway | target | verdict |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|");
    let verdict = |ok: bool| if ok { "met" } else { "missed" };
    let _ = writeln!(
        table,
        "| latency p50, 1 conn (µs) | {} | {} | {} | | |",
        p(&lat_direct, 0.5),
        p(&lat_floor, 0.5),
        p(&lat_gateway, 0.5)
    );
    let _ = writeln!(
        table,
        "| latency p99, 1 conn (µs) | {} | {} | {} | | |",
        p(&lat_direct, 0.99),
        p(&lat_floor, 0.99),
        p(&lat_gateway, 0.99)
    );
    let _ = writeln!(
        table,
        "| added p50 vs direct (µs) | | {floor_p50} | {added_p50} | gateway/floor <= 1.0 (is {:.2}) | {} |",
        ratio(added_p50 as f64, floor_p50 as f64),
        verdict(added_p50 <= floor_p50)
    );
    let _ = writeln!(
        table,
        "| added p99 vs direct (µs) | | {floor_p99} | {added_p99} | <= 250 | {} |",
        verdict(added_p99 <= 250)
    );
    let _ = writeln!(
        table,
        "| CPU per request, 16 conns (µs) | | {} | {} | gateway/floor <= 1.0 (is {:.2}) | {} |",
        cpu_floor.as_micros(),
        cpu_gateway.as_micros(),
        ratio(cpu_gateway.as_secs_f64(), cpu_floor.as_secs_f64()),
        verdict(cpu_gateway <= cpu_floor)
    );
    let ttfb_added = p(&ttfb_gateway, 0.5).saturating_sub(p(&ttfb_direct, 0.5));
    let _ = writeln!(
        table,
        "| stream first byte p50 (µs) | {} | | {} | added <= 100 (is {ttfb_added}) | {} |",
        p(&ttfb_direct, 0.5),
        p(&ttfb_gateway, 0.5),
        verdict(ttfb_added <= 100)
    );
    let _ = writeln!(
        table,
        "| stream last byte p50 (µs) | {} | | {} | | |",
        p(&ttlb_direct, 0.5),
        p(&ttlb_gateway, 0.5)
    );
    let _ = writeln!(
        table,
        "| gateway RSS idle (MiB) | | | {:.1} | <= 30 | {} |",
        idle_rss as f64 / 1024.0,
        verdict(idle_rss <= 30 * 1024)
    );
    let _ = writeln!(
        table,
        "| gateway RSS, {} open streams (MiB) | | | {:.1} (peak {:.1}) | <= 150 | {} |",
        plan.open_streams,
        streams_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        verdict(peak_rss <= 150 * 1024)
    );
    for (connections, d, f, g) in &throughput_rows {
        let _ = writeln!(
            table,
            "| throughput, {connections} conns (req/s) | {d:.0} | {f:.0} | {g:.0} | | |"
        );
    }

    let machine = machine_description();
    let commit = git_commit();
    let header = format!(
        "Machine: {machine}\nCommit: {commit}\nMode: {}\n",
        if quick {
            "quick (smaller samples)"
        } else {
            "full"
        }
    );
    eprintln!("\n{header}\n{table}");
    if !quick {
        write_report(&root, &header, &table)?;
        eprintln!("written to docs/benchmarks.md");
    }
    Ok(())
}

fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cores} cores, {cpu}")
}

fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

const REPORT_MARKER: &str = "<!-- bench:latest -->";

fn write_report(root: &Path, header: &str, table: &str) -> Result<(), String> {
    let path = root.join("docs/benchmarks.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    let intro = existing
        .split(REPORT_MARKER)
        .next()
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| "# Benchmarks\n\nWritten by `cargo xtask bench`.\n\n".into());
    let report = format!("{intro}{REPORT_MARKER}\n## Latest run\n\n```\n{header}```\n\n{table}");
    std::fs::write(path, report).map_err(|e| e.to_string())
}
