//! `cargo xtask bench`: the gateway's overhead against a fixed-answer upstream, measured in
//! one run on one machine.
//!
//! Paths to the same upstream (the simulator's fixed-answer mode, signatures not verified):
//! **direct** (client -> sim), the **nginx floor** (client -> nginx `proxy_pass` -> sim, when
//! nginx is installed), the **hyper floor** (client -> a do-nothing hyper pass-through -> sim)
//! and the **gateway** (client -> gateway -> sim). Each runs as its own release-built process,
//! so its CPU time and memory can be read from `/proc`. Targets are ratios to the nginx floor
//! (the hyper floor when nginx is missing), because absolute times on shared 2-core machines
//! are noise. `--only <group>[,<group>]` measures some groups (rows) alone.

mod client;
mod nginx;
mod payload;
mod procs;
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::bench_services::{DELTAS_MODEL_ID, DELTAS_PER_STREAM, HOLD_MODEL_ID};
use client::{Shot, Transport};
use payload::{payload, Content, Payload};
use procs::Process;
use report::{ratio, Row};

const MODEL_ID: &str = "anthropic.claude-3-sonnet-20240229-v1:0";
const KEY: &str = "bench-gateway-key";
const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// The connections of the CPU-per-request headline row.
const CPU_CONNECTIONS: usize = 64;
/// Streams in the fan-out row.
const FAN_OUT_STREAMS: usize = 256;
/// Streams one HTTP/2 client connection carries when held streams need HTTP/2 (the gateway's
/// default `max_streams_per_connection`).
const STREAMS_PER_H2_CONNECTION: usize = 100;
/// Configured keys and models of the second gateway.
const MANY_KEYS: usize = 10_000;
const MANY_MODELS: usize = 1_000;

/// A set of rows, measurable alone with `--only`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Group {
    Latency,
    Cpu,
    Bodies,
    Streams,
    Tls,
    Keys,
    Throughput,
    Memory,
}

impl Group {
    /// In the order they run (memory last: thousands of held streams leave the processes
    /// bigger).
    const ALL: [Self; 8] = [
        Self::Latency,
        Self::Cpu,
        Self::Bodies,
        Self::Streams,
        Self::Tls,
        Self::Keys,
        Self::Throughput,
        Self::Memory,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Latency => "latency",
            Self::Cpu => "cpu",
            Self::Bodies => "bodies",
            Self::Streams => "streams",
            Self::Tls => "tls",
            Self::Keys => "keys",
            Self::Throughput => "throughput",
            Self::Memory => "memory",
        }
    }
}

/// How much to measure.
struct Plan {
    quick: bool,
    latency_requests: usize,
    cpu_rounds: usize,
    cpu_requests: usize,
    /// Requests of 1 KiB for the body rows; larger bodies get proportionally fewer.
    body_requests: usize,
    stream_requests: usize,
    fan_out_rounds: usize,
    held_streams: Vec<usize>,
    throughput_window: Duration,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                latency_requests: 1_000,
                cpu_rounds: 3,
                cpu_requests: 12_800,
                body_requests: 2_000,
                stream_requests: 200,
                fan_out_rounds: 1,
                held_streams: vec![1_000],
                throughput_window: Duration::from_millis(500),
            }
        } else {
            Self {
                quick,
                latency_requests: 5_000,
                cpu_rounds: 5,
                cpu_requests: 32_000,
                body_requests: 8_000,
                stream_requests: 1_000,
                fan_out_rounds: 3,
                held_streams: vec![1_000, 10_000],
                throughput_window: Duration::from_secs(2),
            }
        }
    }

    /// Requests for a body of `size` bytes: fewer for big bodies, at least 100.
    fn body_requests(&self, size: usize) -> usize {
        (self.body_requests * 8 * KIB / (size + 7 * KIB)).max(100)
    }
}

pub fn run(args: &[String]) -> ExitCode {
    let quick = args.iter().any(|a| a == "--quick");
    let groups = match parse_only(args) {
        Ok(groups) => groups,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    // The bench runs as a release binary; `cargo xtask bench` is a debug build that builds
    // the release binaries and hands over.
    if !args.iter().any(|a| a == "--inner") {
        return build_and_hand_over(args);
    }
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
    match runtime.block_on(measure(&Plan::new(quick), &groups)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The groups `--only a,b` (or `--only=a,b`, repeatable) names; all without `--only`.
fn parse_only(args: &[String]) -> Result<Vec<Group>, String> {
    let mut named = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let list = if arg == "--only" {
            args.next().ok_or("--only needs a group")?.as_str()
        } else if let Some(list) = arg.strip_prefix("--only=") {
            list
        } else {
            continue;
        };
        for name in list.split(',').filter(|n| !n.is_empty()) {
            let group = Group::ALL
                .into_iter()
                .find(|g| g.name() == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = Group::ALL.iter().map(|g| g.name()).collect();
                    format!("unknown group `{name}`; groups: {}", names.join(", "))
                })?;
            named.push(group);
        }
    }
    if named.is_empty() {
        return Ok(Group::ALL.to_vec());
    }
    Ok(Group::ALL
        .into_iter()
        .filter(|g| named.contains(g))
        .collect())
}

fn build_and_hand_over(args: &[String]) -> ExitCode {
    let root = crate::workspace_root();
    eprintln!("==> building release binaries");
    let built = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["build", "--release", "-p", "gateway", "-p", "xtask"])
        .status();
    if !matches!(built, Ok(s) if s.success()) {
        eprintln!("bench: release build failed");
        return ExitCode::FAILURE;
    }
    let status = Command::new(root.join("target/release/xtask"))
        .current_dir(&root)
        .args(["bench", "--inner"])
        .args(args)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

/// A scratch directory for configs, certificates and nginx, removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("gateway-bench-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("nginx"))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a path's client speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Door {
    /// Converse straight to Bedrock's API (direct and the floors).
    Converse,
    /// OpenAI chat completions (the gateway).
    OpenAi,
}

/// A column of the table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Column {
    Direct,
    Nginx,
    Hyper,
    Gateway,
}

/// One path to the upstream: where the client connects, which process to watch, and the
/// column its figures go in.
#[derive(Clone, Copy)]
struct Hop<'a> {
    name: &'static str,
    addr: SocketAddr,
    door: Door,
    process: &'a Process,
    column: Column,
}

/// What to ask: a Bedrock model (Converse doors) and the same content in both dialects.
struct Call {
    model_id: &'static str,
    stream: bool,
    payload: Payload,
}

impl Call {
    fn new(model_id: &'static str, content: Content, size: usize, stream: bool) -> Self {
        let model = match model_id {
            HOLD_MODEL_ID => "bench/hold",
            DELTAS_MODEL_ID => "bench/deltas",
            _ => "bench/fixed",
        };
        Self {
            model_id,
            stream,
            payload: payload(model, content, size, stream),
        }
    }

    fn shot(&self, hop: &Hop<'_>) -> Shot {
        let (path, key, body) = match hop.door {
            Door::Converse => {
                let operation = if self.stream {
                    "converse-stream"
                } else {
                    "converse"
                };
                let label = self.model_id.replace(':', "%3A");
                (
                    format!("/model/{label}/{operation}"),
                    None,
                    self.payload.converse.clone(),
                )
            }
            Door::OpenAi => (
                "/v1/chat/completions".to_owned(),
                Some(KEY),
                self.payload.openai.clone(),
            ),
        };
        Shot {
            name: hop.name,
            addr: hop.addr,
            path: Arc::from(path),
            key,
            body,
        }
    }
}

/// A value per path; `None` where not measured.
struct PerHop<T> {
    direct: Option<T>,
    nginx: Option<T>,
    hyper: Option<T>,
    gateway: Option<T>,
}

impl<T> Default for PerHop<T> {
    fn default() -> Self {
        Self {
            direct: None,
            nginx: None,
            hyper: None,
            gateway: None,
        }
    }
}

impl<T> PerHop<T> {
    fn set(&mut self, column: Column, value: T) {
        let slot = match column {
            Column::Direct => &mut self.direct,
            Column::Nginx => &mut self.nginx,
            Column::Hyper => &mut self.hyper,
            Column::Gateway => &mut self.gateway,
        };
        *slot = Some(value);
    }

    /// The floor targets are judged against: nginx when it ran, else the hyper floor.
    fn judge(&self) -> Option<&T> {
        self.nginx.as_ref().or(self.hyper.as_ref())
    }

    fn row(&self, measure: impl Into<String>, cell: impl Fn(&T) -> String) -> Row {
        let show = |v: &Option<T>| v.as_ref().map(&cell).unwrap_or_default();
        Row {
            direct: show(&self.direct),
            nginx: show(&self.nginx),
            hyper: show(&self.hyper),
            gateway: show(&self.gateway),
            ..Row::new(measure)
        }
    }
}

/// Every path of one run.
struct Hops<'a> {
    direct: Hop<'a>,
    nginx: Option<Hop<'a>>,
    hyper: Hop<'a>,
    gateway: Hop<'a>,
    /// The floor targets are judged against.
    judge_name: &'static str,
}

impl<'a> Hops<'a> {
    fn judge(&self) -> Hop<'a> {
        self.nginx.unwrap_or(self.hyper)
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn p(h: &Histogram<u64>, q: f64) -> u64 {
    h.value_at_quantile(q)
}

fn size_label(size: usize) -> String {
    if size >= MIB {
        format!("{} MiB", size / MIB)
    } else {
        format!("{} KiB", size / KIB)
    }
}

fn addr_of(url: &str) -> Result<SocketAddr, String> {
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
        .parse()
        .map_err(|e| format!("url {url}: {e}"))
}

fn gateway_config(
    listen: SocketAddr,
    sim_url: &str,
    extra_keys: usize,
    extra_models: usize,
) -> String {
    use std::fmt::Write as _;
    let mut keys = String::new();
    for i in 0..extra_keys {
        let _ = write!(
            keys,
            r#"{{ name = "k{i}", key = "bench-extra-key-{i:06}" }}, "#
        );
    }
    let mut models = String::new();
    for i in 0..extra_models {
        let _ = writeln!(models, r#"models.m{i} = {{ model_id = "{MODEL_ID}" }}"#);
    }
    format!(
        r#"[server]
listen = "{listen}"
max_connections = 30000
max_concurrent_requests = 30000
max_streams_per_connection = {STREAMS_PER_H2_CONNECTION}
[auth]
keys = [{keys}{{ name = "bench", key = "{KEY}" }}]
[accounts.bench]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "{sim_url}"
auth = {{ type = "access-key", access_key_id = "AKIDBENCH", secret_access_key = "bench-secret" }}
{models}models.fixed = {{ model_id = "{MODEL_ID}" }}
models.hold = {{ model_id = "{HOLD_MODEL_ID}" }}
models.deltas = {{ model_id = "{DELTAS_MODEL_ID}" }}
"#
    )
}

/// Starts a gateway on `config` and waits until it answers `/health`.
async fn start_gateway(
    name: &'static str,
    binary: &Path,
    work: &Path,
    config: impl Fn(SocketAddr) -> String,
    ca_file: Option<&Path>,
) -> Result<(Process, SocketAddr), String> {
    let addr = procs::free_port()?;
    let config_path = work.join(format!("{}.toml", name.replace(' ', "-")));
    std::fs::write(&config_path, config(addr)).map_err(|e| e.to_string())?;
    let mut command = Command::new(binary);
    command
        .args(["serve", "--config"])
        .arg(&config_path)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    if let Some(ca_file) = ca_file {
        // rustls-native-certs reads only this file when it is set.
        command.env("SSL_CERT_FILE", ca_file);
    }
    let process = Process::new(name, command.spawn().map_err(|e| format!("{name}: {e}"))?);
    client::wait_healthy(name, addr).await?;
    Ok((process, addr))
}

/// A self-signed CA and a certificate for 127.0.0.1/localhost it signed, made with the
/// `openssl` CLI: (ca.pem, cert.pem, key.pem).
fn make_certificates(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let run = |args: &[&str]| -> Result<(), String> {
        let output = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .map_err(|e| format!("openssl: {e} (install openssl to measure the TLS rows)"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=gateway bench CA",
    ];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    run(&ca)?;
    let mut csr = vec!["req", "-new", "-subj", "/CN=localhost"];
    csr.extend(ec);
    csr.extend(["-keyout", "sim.key", "-out", "sim.csr"]);
    run(&csr)?;
    std::fs::write(
        dir.join("sim.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| e.to_string())?;
    run(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        "sim.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-extfile",
        "sim.ext",
        "-out",
        "sim.pem",
    ])?;
    Ok((dir.join("ca.pem"), dir.join("sim.pem"), dir.join("sim.key")))
}

async fn measure(plan: &Plan, groups: &[Group]) -> Result<(), String> {
    let started = Instant::now();
    let root = crate::workspace_root();
    let xtask_bin = root.join("target/release/xtask");
    let gateway_bin = root.join("target/release/gateway");
    let work = WorkDir::create()?;
    let nofile = procs::raise_nofile_limit();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let wants = |g: Group| groups.contains(&g);

    let (sim, sim_url) = procs::spawn_printing_url("sim", &xtask_bin, &["bench-sim"])?;
    let sim_addr = addr_of(&sim_url)?;

    // The HTTPS upstream, its CA, and the gateway that trusts it.
    let tls = if wants(Group::Tls) {
        let (ca, cert, key) = make_certificates(&work.0)?;
        let (tls_sim, tls_url) = procs::spawn_printing_url(
            "sim (TLS)",
            &xtask_bin,
            &[
                "bench-sim",
                "--tls",
                &cert.display().to_string(),
                &key.display().to_string(),
            ],
        )?;
        Some((tls_sim, tls_url, ca))
    } else {
        None
    };

    let nginx = match nginx::find() {
        Some(binary) => {
            let upstream_tls = match &tls {
                Some((_, url, ca)) => Some(nginx::TlsUpstream {
                    addr: addr_of(url)?,
                    ca_file: ca,
                }),
                None => None,
            };
            Some(
                nginx::start(
                    &binary,
                    &work.0.join("nginx"),
                    cores,
                    nofile,
                    sim_addr,
                    upstream_tls.as_ref(),
                )
                .await?,
            )
        }
        None => {
            eprintln!("{}", nginx::INSTALL_HINT);
            None
        }
    };
    let (hyper, hyper_url) =
        procs::spawn_printing_url("hyper floor", &xtask_bin, &["bench-floor", &sim_url])?;
    let (gateway, gateway_addr) = start_gateway(
        "gateway",
        &gateway_bin,
        &work.0,
        |listen| gateway_config(listen, &sim_url, 0, 0),
        None,
    )
    .await?;
    let idle_rss = gateway.rss_kib();

    let hops = Hops {
        direct: Hop {
            name: "direct",
            addr: sim_addr,
            door: Door::Converse,
            process: &sim,
            column: Column::Direct,
        },
        nginx: nginx.as_ref().map(|n| Hop {
            name: "nginx floor",
            addr: n.addr,
            door: Door::Converse,
            process: &n.process,
            column: Column::Nginx,
        }),
        hyper: Hop {
            name: "hyper floor",
            addr: addr_of(&hyper_url)?,
            door: Door::Converse,
            process: &hyper,
            column: Column::Hyper,
        },
        gateway: Hop {
            name: "gateway",
            addr: gateway_addr,
            door: Door::OpenAi,
            process: &gateway,
            column: Column::Gateway,
        },
        judge_name: if nginx.is_some() {
            "nginx"
        } else {
            "hyper floor"
        },
    };

    let mut rows = Vec::new();
    for group in groups {
        eprintln!("==> {}", group.name());
        let group_rows = match group {
            Group::Latency => latency_rows(plan, &hops).await?,
            Group::Cpu => cpu_rows(plan, &hops).await?,
            Group::Bodies => body_rows(plan, &hops).await?,
            Group::Streams => stream_rows(plan, &hops).await?,
            Group::Tls => match &tls {
                Some((_, tls_url, ca)) => {
                    let (tls_gateway, tls_gateway_addr) = start_gateway(
                        "gateway (TLS upstream)",
                        &gateway_bin,
                        &work.0,
                        |listen| gateway_config(listen, tls_url, 0, 0),
                        Some(ca),
                    )
                    .await?;
                    let nginx_tls = nginx.as_ref().and_then(|n| {
                        n.tls_addr.map(|addr| Hop {
                            name: "nginx floor (TLS upstream)",
                            addr,
                            door: Door::Converse,
                            process: &n.process,
                            column: Column::Nginx,
                        })
                    });
                    let gateway_tls = Hop {
                        name: "gateway (TLS upstream)",
                        addr: tls_gateway_addr,
                        door: Door::OpenAi,
                        process: &tls_gateway,
                        column: Column::Gateway,
                    };
                    tls_rows(plan, &hops, nginx_tls, gateway_tls).await?
                }
                None => Vec::new(),
            },
            Group::Keys => {
                let (many, many_addr) = start_gateway(
                    "gateway (10,000 keys)",
                    &gateway_bin,
                    &work.0,
                    |listen| gateway_config(listen, &sim_url, MANY_KEYS - 1, MANY_MODELS - 3),
                    None,
                )
                .await?;
                let many_hop = Hop {
                    name: "gateway (10,000 keys)",
                    addr: many_addr,
                    door: Door::OpenAi,
                    process: &many,
                    column: Column::Gateway,
                };
                key_rows(plan, &hops, many_hop).await?
            }
            Group::Throughput => throughput_rows(plan, &hops).await?,
            Group::Memory => memory_rows(plan, &hops, idle_rss, nofile).await?,
        };
        rows.extend(group_rows);
    }

    let names: Vec<&str> = groups.iter().map(|g| g.name()).collect();
    let header = format!(
        "Machine: {}\nCommit: {}\nMode: {}{}\nFloor judged against: {}\nDuration: {:.0} s\n",
        report::machine_description(),
        report::git_commit(),
        if plan.quick {
            "quick (smaller samples)"
        } else {
            "full"
        },
        if names.len() == Group::ALL.len() {
            String::new()
        } else {
            format!(", only {}", names.join(","))
        },
        hops.judge_name,
        started.elapsed().as_secs_f64(),
    );
    let table = report::table(&rows);
    eprintln!("\n{header}\n{table}");
    if !plan.quick && names.len() == Group::ALL.len() {
        report::write(&root, &header, &table)?;
        eprintln!("written to docs/benchmarks.md");
    }
    Ok(())
}

/// "gateway/nginx <= 1.0 (is r)", met when the gateway's value is at most the floor's.
fn versus_floor(hops: &Hops<'_>, gateway: f64, floor: f64) -> (String, bool) {
    let r = ratio(gateway, floor);
    (
        format!("gateway/{} <= 1.0 (is {r:.2})", hops.judge_name),
        r <= 1.0,
    )
}

async fn latency_rows(plan: &Plan, hops: &Hops<'_>) -> Result<Vec<Row>, String> {
    let call = Call::new(MODEL_ID, Content::Text, KIB, false);
    let mut measured = vec![hops.direct];
    measured.extend(hops.nginx);
    measured.extend([hops.hyper, hops.gateway]);
    let mut lat = PerHop::default();
    let histograms = latencies(plan.cpu_rounds, &measured, &call, plan.latency_requests).await?;
    for (hop, histogram) in measured.iter().zip(histograms) {
        lat.set(hop.column, histogram);
    }

    let direct = lat.direct.as_ref().ok_or("no direct latency")?;
    let (d50, d99) = (p(direct, 0.5), p(direct, 0.99));
    let added = |q: f64, d: u64| PerHop {
        direct: None,
        nginx: lat.nginx.as_ref().map(|h| p(h, q).saturating_sub(d)),
        hyper: lat.hyper.as_ref().map(|h| p(h, q).saturating_sub(d)),
        gateway: lat.gateway.as_ref().map(|h| p(h, q).saturating_sub(d)),
    };
    let added50 = added(0.5, d50);
    let added99 = added(0.99, d99);
    let g50 = added50.gateway.unwrap_or(0) as f64;
    let f50 = added50.judge().copied().unwrap_or(0) as f64;
    let (target50, met50) = versus_floor(hops, g50, f50);
    let g99 = added99.gateway.unwrap_or(0);
    Ok(vec![
        lat.row("latency p50, 1 conn, 1 KiB (µs)", |h| {
            p(h, 0.5).to_string()
        }),
        lat.row("latency p99, 1 conn, 1 KiB (µs)", |h| {
            p(h, 0.99).to_string()
        }),
        added50
            .row("added p50 vs direct, 1 conn (µs)", u64::to_string)
            .target(target50, met50),
        added99
            .row("added p99 vs direct, 1 conn (µs)", u64::to_string)
            .target("gateway <= 250", g99 <= 250),
    ])
}

/// Latency at one connection of each hop, measured in interleaved rounds (so a slow moment of
/// the machine does not land on one hop only), in the order of `hops`.
async fn latencies(
    rounds: usize,
    hops: &[Hop<'_>],
    call: &Call,
    requests: usize,
) -> Result<Vec<Histogram<u64>>, String> {
    let mut merged = Vec::with_capacity(hops.len());
    for _ in hops {
        merged.push(Histogram::<u64>::new(3).map_err(|e| e.to_string())?);
    }
    for _ in 0..rounds {
        for (hop, merged) in hops.iter().zip(&mut merged) {
            let histogram = client::latency(&call.shot(hop), requests / rounds).await?;
            merged.add(&histogram).map_err(|e| e.to_string())?;
        }
    }
    Ok(merged)
}

/// Median CPU per request of each floor and the gateway over interleaved rounds.
async fn cpu_rounds(
    rounds: usize,
    hops: &[Hop<'_>],
    call: &Call,
    connections: usize,
    requests: usize,
) -> Result<Vec<Duration>, String> {
    let mut samples = vec![Vec::new(); hops.len()];
    for round in 0..rounds {
        let mut line = format!("    round {}:", round + 1);
        for (hop, samples) in hops.iter().zip(&mut samples) {
            let cpu = client::cpu_per_request(&call.shot(hop), hop.process, connections, requests)
                .await?;
            line.push_str(&format!(" {} {} µs;", hop.name, us(cpu)));
            samples.push(cpu);
        }
        eprintln!("{line}");
    }
    Ok(samples.into_iter().map(median).collect())
}

async fn cpu_rows(plan: &Plan, hops: &Hops<'_>) -> Result<Vec<Row>, String> {
    let call = Call::new(MODEL_ID, Content::Text, KIB, false);
    let mut measured: Vec<Hop<'_>> = hops.nginx.into_iter().collect();
    measured.extend([hops.hyper, hops.gateway]);
    let medians = cpu_rounds(
        plan.cpu_rounds,
        &measured,
        &call,
        CPU_CONNECTIONS,
        plan.cpu_requests,
    )
    .await?;
    let mut cpu = PerHop::default();
    for (hop, median) in measured.iter().zip(medians) {
        cpu.set(hop.column, median);
    }
    let g = cpu.gateway.unwrap_or_default().as_secs_f64();
    let f = cpu.judge().copied().unwrap_or_default().as_secs_f64();
    let (target, met) = versus_floor(hops, g, f);
    Ok(vec![cpu
        .row(
            format!(
                "CPU per request, {CPU_CONNECTIONS} conns, 1 KiB (µs, median of {} rounds)",
                plan.cpu_rounds
            ),
            |d| us(*d),
        )
        .target(target, met)])
}

async fn body_rows(plan: &Plan, hops: &Hops<'_>) -> Result<Vec<Row>, String> {
    let sha_mib = payload::sha256_time(MIB);
    eprintln!("    SHA-256 of 1 MiB in this process: {} µs", us(sha_mib));
    let floor = hops.judge();
    let mut rows = Vec::new();
    for content in [Content::Text, Content::Image] {
        for size in [KIB, 64 * KIB, MIB] {
            let call = Call::new(MODEL_ID, content, size, false);
            let requests = plan.body_requests(size);
            let latency_requests = (requests / 4).max(50);
            let measured = [hops.direct, floor, hops.gateway];
            let lat = latencies(2, &measured, &call, latency_requests).await?;
            let d50 = p(&lat[0], 0.5);
            let mut added = PerHop::default();
            added.set(floor.column, p(&lat[1], 0.5).saturating_sub(d50));
            added.set(Column::Gateway, p(&lat[2], 0.5).saturating_sub(d50));

            let medians = cpu_rounds(1, &[floor, hops.gateway], &call, 16, requests).await?;
            let mut cpu = PerHop::default();
            let (floor_cpu, gateway_cpu) = (medians[0], medians[1]);
            cpu.set(floor.column, floor_cpu);
            cpu.set(Column::Gateway, gateway_cpu);

            let label = format!("{} {}", content.label(), size_label(size));
            rows.push(added.row(format!("{label}: added p50, 1 conn (µs)"), u64::to_string));
            let mut cpu_row = cpu.row(format!("{label}: CPU per request, 16 conns (µs)"), |d| {
                us(*d)
            });
            if size == MIB {
                let limit = floor_cpu * 2 + sha_mib;
                cpu_row = cpu_row.target(
                    format!(
                        "<= 2 x {} + SHA-256 of 1 MiB ({} µs) = {} (is {:.2}x)",
                        hops.judge_name,
                        us(sha_mib),
                        us(limit),
                        ratio(gateway_cpu.as_secs_f64(), limit.as_secs_f64())
                    ),
                    gateway_cpu <= limit,
                );
            }
            rows.push(cpu_row);
        }
    }
    Ok(rows)
}

async fn stream_rows(plan: &Plan, hops: &Hops<'_>) -> Result<Vec<Row>, String> {
    let floor = hops.judge();
    let call = Call::new(MODEL_ID, Content::Text, KIB, true);
    let n = plan.stream_requests;
    let (direct_first, direct_last) = client::first_byte(&call.shot(&hops.direct), n).await?;
    let (floor_first, floor_last) = client::first_byte(&call.shot(&floor), n).await?;
    let (gateway_first, gateway_last) = client::first_byte(&call.shot(&hops.gateway), n).await?;
    let d50 = p(&direct_first, 0.5);
    let mut first = PerHop {
        direct: Some(d50),
        gateway: Some(p(&gateway_first, 0.5)),
        ..PerHop::default()
    };
    first.set(floor.column, p(&floor_first, 0.5));
    let mut added = PerHop {
        gateway: Some(p(&gateway_first, 0.5).saturating_sub(d50)),
        ..PerHop::default()
    };
    added.set(floor.column, p(&floor_first, 0.5).saturating_sub(d50));
    let mut last = PerHop {
        direct: Some(p(&direct_last, 0.5)),
        gateway: Some(p(&gateway_last, 0.5)),
        ..PerHop::default()
    };
    last.set(floor.column, p(&floor_last, 0.5));
    let gateway_added = added.gateway.unwrap_or(0);

    // The fan-out: tokens relayed per CPU second.
    let deltas = Call::new(DELTAS_MODEL_ID, Content::Text, KIB, true);
    let tokens = (FAN_OUT_STREAMS * DELTAS_PER_STREAM) as f64;
    let mut per_core = PerHop::<f64>::default();
    for hop in [floor, hops.gateway] {
        let mut cpu = Duration::ZERO;
        for _ in 0..plan.fan_out_rounds {
            cpu +=
                client::fan_out_streams(&deltas.shot(&hop), hop.process, FAN_OUT_STREAMS).await?;
        }
        let core_rate = tokens * plan.fan_out_rounds as f64 / cpu.as_secs_f64().max(1e-9);
        eprintln!("    {}: {core_rate:.0} tokens/s per core", hop.name);
        per_core.set(hop.column, core_rate);
    }
    let g = per_core.gateway.unwrap_or(0.0);
    let f = per_core.judge().copied().unwrap_or(0.0);
    let fan = format!("{FAN_OUT_STREAMS} streams x {DELTAS_PER_STREAM} deltas");
    Ok(vec![
        first.row("stream first byte p50, 1 conn (µs)", u64::to_string),
        added
            .row("stream first byte added p50 (µs)", u64::to_string)
            .target(
                format!("gateway <= 100 (is {gateway_added})"),
                gateway_added <= 100,
            ),
        last.row("stream last byte p50, 1 conn (µs)", u64::to_string),
        Row {
            target: format!("gateway/{} is {:.2}", hops.judge_name, ratio(g, f)),
            ..per_core.row(format!("{fan}: tokens/s per core"), |v| format!("{v:.0}"))
        },
    ])
}

async fn tls_rows(
    plan: &Plan,
    hops: &Hops<'_>,
    nginx_tls: Option<Hop<'_>>,
    gateway_tls: Hop<'_>,
) -> Result<Vec<Row>, String> {
    let call = Call::new(MODEL_ID, Content::Text, KIB, false);
    let n = plan.latency_requests;
    let mut measured: Vec<Hop<'_>> = nginx_tls.into_iter().collect();
    measured.push(gateway_tls);
    let mut with_direct = vec![hops.direct];
    with_direct.extend(&measured);
    let lat = latencies(plan.cpu_rounds, &with_direct, &call, n).await?;
    let d50 = p(&lat[0], 0.5);
    let mut added = PerHop::default();
    for (hop, histogram) in measured.iter().zip(&lat[1..]) {
        added.set(hop.column, p(histogram, 0.5).saturating_sub(d50));
    }
    let medians = cpu_rounds(
        plan.cpu_rounds,
        &measured,
        &call,
        CPU_CONNECTIONS,
        plan.cpu_requests / 2,
    )
    .await?;
    let mut cpu = PerHop::default();
    for (hop, median) in measured.iter().zip(medians) {
        cpu.set(hop.column, median);
    }
    let ratio_note = |g: f64, f: f64| {
        if nginx_tls.is_some() {
            format!("gateway/nginx is {:.2}", ratio(g, f))
        } else {
            String::new()
        }
    };
    Ok(vec![
        Row {
            target: ratio_note(
                added.gateway.unwrap_or(0) as f64,
                added.nginx.unwrap_or(0) as f64,
            ),
            ..added.row(
                "TLS upstream: added p50 vs direct (plain), 1 conn (µs)",
                u64::to_string,
            )
        },
        Row {
            target: ratio_note(
                cpu.gateway.unwrap_or_default().as_secs_f64(),
                cpu.nginx.unwrap_or_default().as_secs_f64(),
            ),
            ..cpu.row(
                format!("TLS upstream: CPU per request, {CPU_CONNECTIONS} conns (µs)"),
                |d| us(*d),
            )
        },
    ])
}

async fn key_rows(plan: &Plan, hops: &Hops<'_>, many: Hop<'_>) -> Result<Vec<Row>, String> {
    let call = Call::new(MODEL_ID, Content::Text, KIB, false);
    // Smaller samples: a gateway whose cost grows with its keys would otherwise take minutes.
    let medians = cpu_rounds(
        plan.cpu_rounds,
        &[hops.gateway, many],
        &call,
        CPU_CONNECTIONS,
        plan.cpu_requests / 8,
    )
    .await?;
    let (one, lots) = (medians[0], medians[1]);
    let n = plan.latency_requests / 4;
    let lat = latencies(
        plan.cpu_rounds,
        &[hops.direct, hops.gateway, many],
        &call,
        n,
    )
    .await?;
    let d50 = p(&lat[0], 0.5);
    let one50 = p(&lat[1], 0.5).saturating_sub(d50);
    let lots50 = p(&lat[2], 0.5).saturating_sub(d50);
    let cpu_ratio = ratio(lots.as_secs_f64(), one.as_secs_f64());
    let label = format!("{MANY_KEYS} keys + {MANY_MODELS} models");
    Ok(vec![
        Row {
            gateway: format!("{} (1 key: {})", us(lots), us(one)),
            ..Row::new(format!(
                "{label}: CPU per request, {CPU_CONNECTIONS} conns (µs)"
            ))
        }
        .target(
            format!("same as 1 key, within 10% (is {cpu_ratio:.2})"),
            cpu_ratio <= 1.10,
        ),
        Row {
            gateway: format!("{lots50} (1 key: {one50})"),
            ..Row::new(format!("{label}: added p50, 1 conn (µs)"))
        },
    ])
}

async fn throughput_rows(plan: &Plan, hops: &Hops<'_>) -> Result<Vec<Row>, String> {
    let call = Call::new(MODEL_ID, Content::Text, KIB, false);
    let window = plan.throughput_window;
    let mut rows = Vec::new();
    for connections in [16, 64, 256] {
        let mut rate = PerHop {
            direct: Some(client::throughput(&call.shot(&hops.direct), connections, window).await?),
            ..PerHop::default()
        };
        if let Some(nginx) = &hops.nginx {
            rate.nginx = Some(client::throughput(&call.shot(nginx), connections, window).await?);
        }
        rate.hyper = Some(client::throughput(&call.shot(&hops.hyper), connections, window).await?);
        rate.gateway =
            Some(client::throughput(&call.shot(&hops.gateway), connections, window).await?);
        let mut row = rate.row(format!("throughput, {connections} conns (req/s)"), |r| {
            format!("{r:.0}")
        });
        if connections >= 64 {
            let g = rate.gateway.unwrap_or(0.0);
            let f = rate.judge().copied().unwrap_or(0.0);
            let r = ratio(g, f);
            row = row.target(
                format!("gateway/{} >= 1.0 (is {r:.2})", hops.judge_name),
                r >= 1.0,
            );
        }
        rows.push(row);
    }
    Ok(rows)
}

async fn memory_rows(
    plan: &Plan,
    hops: &Hops<'_>,
    idle_rss: u64,
    nofile: u64,
) -> Result<Vec<Row>, String> {
    let call = Call::new(HOLD_MODEL_ID, Content::Text, KIB, true);
    let mut rows = vec![Row {
        gateway: format!("{:.1}", idle_rss as f64 / 1024.0),
        ..Row::new("gateway RSS idle (MiB)")
    }
    .target("<= 30", idle_rss <= 30 * 1024)];
    for &count in &plan.held_streams {
        // Over HTTP/1.1 a proxy holds two sockets per stream (client and upstream); when the
        // open-file limit cannot take that, the clients multiplex over HTTP/2.
        let transport = if 2 * count as u64 + 256 <= nofile {
            Transport::Http1
        } else {
            Transport::Http2(STREAMS_PER_H2_CONNECTION)
        };
        let mut per_stream = PerHop::<f64>::default();
        let mut hop_list = vec![hops.gateway];
        // nginx's figure is for comparison where its clients can be HTTP/1.1 too.
        if let (Some(nginx), Transport::Http1) = (&hops.nginx, transport) {
            hop_list.push(*nginx);
        }
        for hop in hop_list {
            let fds = hop.process.open_fds();
            let before = hop.process.rss_kib();
            let held = client::hold_streams(&call.shot(&hop), count, transport).await?;
            let with = hop.process.rss_kib();
            drop(held);
            let kib = with.saturating_sub(before) as f64 / count as f64;
            eprintln!(
                "    {}: {count} streams, RSS {before} -> {with} KiB, {kib:.1} KiB per stream",
                hop.name
            );
            per_stream.set(hop.column, kib);
            // The next baseline is taken once the closed connections are gone.
            hop.process.wait_open_fds_at_most(fds + 16).await;
        }
        let clients = match transport {
            Transport::Http1 => "one HTTP/1.1 connection each".to_owned(),
            Transport::Http2(n) => {
                format!("HTTP/2 clients, {n} per connection (fd limit {nofile})")
            }
        };
        let mut row = per_stream.row(
            format!("memory per open stream, {count} streams, {clients} (KiB)"),
            |v| format!("{v:.1}"),
        );
        if count >= 10_000 {
            let g = per_stream.gateway.unwrap_or(f64::MAX);
            row = row.target("gateway <= 16", g <= 16.0);
        }
        rows.push(row);
    }
    rows.push(Row {
        gateway: format!("{:.1}", hops.gateway.process.peak_rss_kib() as f64 / 1024.0),
        ..Row::new("gateway peak RSS over the run (MiB)")
    });
    Ok(rows)
}
