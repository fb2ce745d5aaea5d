//! Trace export: the `gen_ai` spans of adapter-http and adapter-bedrock, sent over OTLP/HTTP
//! (protobuf) by the OpenTelemetry SDK's batch processor (docs/operations.md, "Tracing").
//!
//! The batch processor runs on its own thread with a bounded queue: a request only hands
//! its finished span to the queue; when the queue is full (a slow or dead collector) the
//! span is dropped, never waited for. The exporter's HTTP client runs on a small runtime of
//! its own, so an export never takes a thread from the gateway's runtimes.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use gateway_adapter_bedrock::{build_client, BedrockHttpClient};
use gateway_adapter_http::TraceExportFailures;
use http_body_util::{BodyExt, Full};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::config::TelemetryConfig;

/// The path OTLP/HTTP collectors take traces on, below `OTEL_EXPORTER_OTLP_ENDPOINT`.
const TRACES_PATH: &str = "/v1/traces";
/// How long one export may take before it counts as failed (and its spans as dropped).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The `service.name` of the spans unless `OTEL_SERVICE_NAME` says otherwise.
const SERVICE_NAME: &str = "ai-gateway";

/// Failed exports of every exporter the process started. The exporter, like the `tracing`
/// subscriber that feeds it, is the process's, so `/metrics` shows one count whichever app
/// (and whichever reload of it) serves the scrape.
static PROCESS_FAILED_EXPORTS: AtomicU64 = AtomicU64::new(0);
/// Whether an exporter was started: without one there is no failure count to show.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The process's failed trace exports for `/metrics`, once an exporter was started.
pub fn export_failures() -> Option<Arc<dyn TraceExportFailures>> {
    EXPORTING
        .load(Ordering::Relaxed)
        .then(|| Arc::new(ProcessExportFailures) as Arc<dyn TraceExportFailures>)
}

#[derive(Debug)]
struct ProcessExportFailures;

impl TraceExportFailures for ProcessExportFailures {
    fn failed_exports(&self) -> u64 {
        PROCESS_FAILED_EXPORTS.load(Ordering::Relaxed)
    }
}

/// Where traces go: the standard environment variables win over the file, as in every
/// OpenTelemetry SDK, so a deployment can point one image at its collector without editing
/// the configuration. `env` reads a variable (the process environment outside tests).
pub fn traces_endpoint(
    config: &TelemetryConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let set = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    if let Some(endpoint) = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Some(endpoint);
    }
    let base = set("OTEL_EXPORTER_OTLP_ENDPOINT").or_else(|| config.otlp_endpoint.clone())?;
    Some(format!("{}{TRACES_PATH}", base.trim_end_matches('/')))
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot start the trace exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("cannot start the trace exporter's runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// The trace pipeline: keep it for the life of the process and [`Self::shutdown`] it last,
/// so the spans still queued go out.
#[derive(Debug, Clone)]
pub struct Tracing {
    provider: SdkTracerProvider,
    failures: Arc<AtomicU64>,
}

impl Tracing {
    /// Exports to `endpoint` (a full OTLP/HTTP traces URL) and makes W3C trace context the
    /// propagator, so a client's `traceparent` continues its trace.
    pub fn start(endpoint: &str) -> Result<Self, TelemetryError> {
        let failures = Arc::new(AtomicU64::new(0));
        let client = ExportClient::new(Arc::clone(&failures))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build()?;
        let service_name = std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| SERVICE_NAME.to_owned());
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service_name).build())
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        EXPORTING.store(true, Ordering::Relaxed);
        Ok(Self { provider, failures })
    }

    /// The tracer the `tracing` bridge layer records with.
    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer("gateway")
    }

    /// Exports failed so far (each failed export drops its batch of spans).
    pub fn failed_exports(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Sends every finished span now. Blocks: call it outside the async runtimes' threads
    /// or on a blocking thread.
    pub fn force_flush(&self) {
        if let Err(error) = self.provider.force_flush() {
            tracing::warn!(%error, "flushing the trace exporter failed");
        }
    }

    /// Flushes and stops the exporter.
    pub fn shutdown(&self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "stopping the trace exporter failed");
        }
    }
}

/// The exporter's HTTP client: adapter-bedrock's hyper client (HTTP and HTTPS) on a
/// current-thread runtime of its own. The batch processor calls it from its own thread.
struct ExportClient {
    runtime: tokio::runtime::Runtime,
    client: BedrockHttpClient,
    failures: Arc<AtomicU64>,
}

impl fmt::Debug for ExportClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportClient").finish_non_exhaustive()
    }
}

impl ExportClient {
    fn new(failures: Arc<AtomicU64>) -> Result<Self, std::io::Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // The connector's timers and pool belong to the runtime that drives it.
        let client = {
            let _entered = runtime.enter();
            build_client(CONNECT_TIMEOUT)
        };
        Ok(Self {
            runtime,
            client,
            failures,
        })
    }

    fn send_blocking(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = request.map(Full::new);
        self.runtime.block_on(async {
            let response = tokio::time::timeout(EXPORT_TIMEOUT, self.client.request(request))
                .await
                .map_err(|_| "the collector did not answer in time")??;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok(Response::from_parts(parts, body))
        })
    }

    fn count(&self, outcome: &Result<Response<Bytes>, HttpError>) {
        let failed = match outcome {
            Ok(response) => !response.status().is_success(),
            Err(_) => true,
        };
        if failed {
            PROCESS_FAILED_EXPORTS.fetch_add(1, Ordering::Relaxed);
            let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            // One line per failed batch (every few seconds at most), never per request.
            match outcome {
                Ok(response) => tracing::warn!(
                    status = response.status().as_u16(),
                    failures,
                    "the trace collector refused a batch of spans; they are dropped"
                ),
                Err(error) => tracing::warn!(
                    %error,
                    failures,
                    "the trace collector is unreachable; a batch of spans is dropped"
                ),
            }
        }
    }
}

#[async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        // The batch processor's thread is outside any runtime; should a caller be inside
        // one, the blocking send moves to a scoped thread rather than block that runtime.
        let outcome = if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|scope| {
                scope
                    .spawn(|| self.send_blocking(request))
                    .join()
                    .unwrap_or_else(|_| Err("the export thread panicked".into()))
            })
        } else {
            self.send_blocking(request)
        };
        self.count(&outcome);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoint: Option<&str>) -> TelemetryConfig {
        TelemetryConfig {
            otlp_endpoint: endpoint.map(str::to_owned),
            capture_content: false,
        }
    }

    #[test]
    fn the_environment_wins_over_the_file_and_the_traces_variable_over_the_base() {
        let file = config(Some("http://file:4318/"));
        assert_eq!(
            traces_endpoint(&file, |_| None).as_deref(),
            Some("http://file:4318/v1/traces")
        );
        let base = |name: &str| {
            (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://env:4318".to_owned())
        };
        assert_eq!(
            traces_endpoint(&file, base).as_deref(),
            Some("http://env:4318/v1/traces")
        );
        let both = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => Some("http://env:4318/custom".to_owned()),
            _ => Some("http://env:4318".to_owned()),
        };
        assert_eq!(
            traces_endpoint(&file, both).as_deref(),
            Some("http://env:4318/custom")
        );
        assert_eq!(traces_endpoint(&config(None), |_| None), None);
        assert_eq!(
            traces_endpoint(&config(None), |_| Some(" ".to_owned())),
            None
        );
    }
}
