//! `gateway`: an OpenAI-compatible gateway in front of AWS Bedrock.
//!
//! The binary only parses the command line and wires the library together.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::config::TelemetryConfig;
use gateway::config::{ConfigError, GatewayConfig};
use gateway::telemetry::{traces_endpoint, TelemetryError, Tracing};
use gateway::wiring::{prepare, start_sharded, ShardedGateway};
use gateway_adapter_http::trace::GEN_AI_TARGET;
use gateway_core::clock::SharedClock;
use tracing::Level;
use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// mimalloc instead of the system allocator: a request allocates and frees many small buffers
/// (JSON values, header maps, strings) across two runtimes' threads, where glibc's malloc
/// spent ~9% of the gateway's CPU in the profile (docs/benchmarks.md, "Where the time goes").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(version, about = "OpenAI-compatible AI gateway for AWS Bedrock")]
struct Cli {
    /// Log format.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the OpenAI API with the given configuration.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file and exit (non-zero when invalid).
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// Also obtain each account's credentials (STS, default chain) without calling Bedrock.
        #[arg(long)]
        probe: bool,
    },
    /// Run the gateway against the built-in Bedrock simulator: no AWS account needed.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let traces = match trace_export(&cli.command) {
        Ok(traces) => traces,
        Err(e) => {
            init_logging(&cli.log_format, None);
            return fail(&e.to_string());
        }
    };
    init_logging(&cli.log_format, traces.as_ref());
    // Serving happens on the gateway's own threads (see `wiring`); this runtime only starts
    // them, waits for a signal, and runs `check` and the demo's simulator.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(cli.command));
    // Outside the runtime: the last spans go out before the process ends.
    if let Some(traces) = traces {
        traces.shutdown();
    }
    code
}

/// The trace exporter `serve` and `demo` start when an OTLP endpoint is set (the
/// environment, else `[telemetry] otlp_endpoint`). Read before logging starts so the
/// bridge layer is part of the subscriber; an unreadable file is `serve`'s to report.
fn trace_export(command: &Command) -> Result<Option<Tracing>, TelemetryError> {
    let telemetry = match command {
        Command::Serve { config } => GatewayConfig::load(config)
            .map(|config| config.telemetry)
            .unwrap_or_default(),
        Command::Demo { .. } => TelemetryConfig::default(),
        Command::Check { .. } => return Ok(None),
    };
    match traces_endpoint(&telemetry, |name| std::env::var(name).ok()) {
        Some(endpoint) => Tracing::start(&endpoint).map(Some),
        None => Ok(None),
    }
}

/// Logs to stderr, filtered by `RUST_LOG`; with `traces`, the `gen_ai` spans (and the
/// events inside them) go to the trace exporter, whatever `RUST_LOG` says. They stay out of
/// the logs: a span may carry content, and the logs already have their own lines.
fn init_logging(format: &str, traces: Option<&Tracing>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: escape codes would litter a log file or a
    // collector's lines.
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let logs = if format == "json" {
        logs.json().boxed()
    } else {
        logs.boxed()
    };
    // `Targets` rather than a closure: it tells tracing which callsites it can ever want, so a
    // span or event no layer records is never built (a closure filter, or an absent layer,
    // leaves every callsite "sometimes" interesting: the registry then built each request's
    // spans, ~5% of the gateway's CPU at `RUST_LOG=warn`).
    let not_traces = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target(GEN_AI_TARGET, LevelFilter::OFF);
    let logs = logs.with_filter(filter.and(not_traces));
    match traces {
        Some(traces) => {
            let traces = tracing_opentelemetry::layer()
                .with_tracer(traces.tracer())
                .with_filter(Targets::new().with_target(GEN_AI_TARGET, Level::TRACE));
            tracing_subscriber::registry()
                .with(logs)
                .with(traces)
                .init();
        }
        None => tracing_subscriber::registry().with(logs).init(),
    }
}

async fn run(command: Command) -> ExitCode {
    match command {
        Command::Check { config, probe } => check(&config, probe).await,
        // Boxed: it holds the configuration and the running gateway for the process's life.
        Command::Serve { config } => Box::pin(serve(&config)).await,
        Command::Demo { listen } => demo(listen).await,
    }
}

/// Serves until SIGTERM or Ctrl-C, then drains; SIGHUP reloads `path`.
async fn serve(path: &Path) -> ExitCode {
    let mut signals = Signals::new();
    let config = match GatewayConfig::load(path) {
        Ok(config) => config,
        Err(e) => return fail(&format!("{}: {e}", path.display())),
    };
    let mut gateway = match start_sharded(&config, SharedClock::system()).await {
        Ok(gateway) => gateway,
        Err(e) => return fail(&e.to_string()),
    };
    gateway.check_readiness();
    tracing::info!(
        addr = %gateway.addr(),
        threads = gateway.shards(),
        models = config.models.len(),
        "gateway listening"
    );
    loop {
        tokio::select! {
            result = gateway.wait() => {
                // One shard failing leaves the others serving; stop them rather than run
                // on with part of the capacity.
                let _ = gateway.shutdown().await;
                return exit_with(result);
            }
            signal = signals.next() => match signal {
                Signal::Stop => {
                    tracing::info!("shutting down");
                    return exit_with(gateway.shutdown().await);
                }
                Signal::Reload => reload(&mut gateway, path).await,
            },
        }
    }
}

/// Reads, validates and builds `path` as `serve` and `check` do, and swaps it in; anything
/// wrong leaves the running configuration serving, with one line naming the setting.
async fn reload(gateway: &mut ShardedGateway, path: &Path) {
    // File reads block; they stay off the runtime that drives the shards' handle.
    let owned = path.to_owned();
    let loaded = tokio::task::spawn_blocking(move || GatewayConfig::load(&owned))
        .await
        .unwrap_or_else(|join| {
            Err(ConfigError::Read {
                path: path.display().to_string(),
                source: std::io::Error::other(join),
            })
        });
    let outcome = match loaded {
        Ok(config) => gateway
            .reload(&config)
            .await
            .map(|()| config)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(config) => tracing::info!(
            models = config.models.len(),
            virtual_models = config.virtual_models.len(),
            keys = config.keys.len(),
            accounts = config.accounts.len(),
            "configuration reloaded"
        ),
        Err(e) => tracing::error!(
            "configuration not reloaded, the running one stays: {}: {e}",
            path.display()
        ),
    }
}

#[cfg(feature = "demo")]
async fn demo(listen: SocketAddr) -> ExitCode {
    use gateway::demo::{instructions, start_demo};
    let demo = match start_demo(listen).await {
        Ok(demo) => demo,
        Err(e) => return fail(&e.to_string()),
    };
    say(&instructions(&demo.gateway.url()));
    let mut signals = Signals::new();
    while let Signal::Reload = signals.next().await {
        tracing::info!("the demo has no configuration file to reload");
    }
    // The simulator answers the streams the gateway drains.
    let outcome = demo.gateway.shutdown().await;
    demo.sim.shutdown();
    exit_with(outcome)
}

#[cfg(not(feature = "demo"))]
async fn demo(_listen: SocketAddr) -> ExitCode {
    fail("this gateway was built without the Bedrock simulator (cargo feature `demo`); build it with default features to run the demo")
}

async fn check(path: &std::path::Path, probe: bool) -> ExitCode {
    let config = match GatewayConfig::load(path) {
        Ok(config) => config,
        Err(e) => return fail(&format!("{}: {e}", path.display())),
    };
    // Everything `serve` does before it listens, so `check` refuses what `serve` would.
    if let Err(e) = prepare(&config, SharedClock::system()).await {
        return fail(&e.to_string());
    }
    say(&format!(
        "{}: valid ({} accounts, {} models, {} gateway keys)",
        path.display(),
        config.accounts.len(),
        config.models.len(),
        config.keys.len()
    ));
    if !probe {
        return ExitCode::SUCCESS;
    }
    let mut healthy = true;
    for account in &config.accounts {
        let outcome = match gateway_adapter_bedrock::AccountCredentials::from_config(
            &account.name,
            &account.auth,
            account.region.as_str(),
        )
        .await
        {
            Ok(credentials) => credentials.probe().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => say(&format!(
                "account {}: credentials OK ({})",
                account.name,
                account.auth.kind()
            )),
            Err(e) => {
                healthy = false;
                say(&format!(
                    "account {}: credentials unusable: {e}",
                    account.name
                ));
            }
        }
    }
    if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[expect(clippy::print_stdout, reason = "the command's own output")]
fn say(text: &str) {
    println!("{text}");
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn exit_with(result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("server stopped: {e}")),
    }
}

enum Signal {
    /// SIGTERM or Ctrl-C (SIGINT): drain and exit.
    Stop,
    /// SIGHUP: reload the configuration file.
    Reload,
}

/// The signals the gateway acts on, listened for from its start: a SIGHUP while it starts is
/// a reload once it serves, not the end of the process.
struct Signals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self {
                terminate: signal(SignalKind::terminate()).ok(),
                hangup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => Signal::Stop,
                () = received(&mut self.terminate) => Signal::Stop,
                () = received(&mut self.hangup) => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}

/// The next delivery of `signal`; never, when it could not be listened for.
#[cfg(unix)]
async fn received(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            if signal.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}
