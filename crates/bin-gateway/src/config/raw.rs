//! The file's schema: what serde reads, with `deny_unknown_fields` everywhere. Values with a
//! rule of their own are the adapters' types, so they are checked while being read.

use std::collections::BTreeMap;

use gateway_adapter_bedrock::AuthConfig;
use gateway_adapter_bedrock::{
    Endpoint, ModelFamily, Region, RetryConfig, TimeLimit, TimeoutOverrides,
};
use gateway_adapter_http::{AdminKey, GatewayKey};
use gateway_core::{
    CircuitBreakerSettings, FinishReasonStyle, GuardrailMode, ModelKind, OnBackendError, Price,
    Strategy,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    pub auth: RawAuth,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    #[serde(default)]
    pub accounts: BTreeMap<String, RawAccount>,
    #[serde(default)]
    pub virtual_models: BTreeMap<String, RawVirtualModel>,
    #[serde(default)]
    pub console: RawConsole,
}

/// `[console]`: the web console (docs/console.md); no admin keys, the default, disables it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    #[serde(default)]
    pub admin_keys: Vec<AdminKey>,
}

/// `[telemetry]`: trace export (docs/operations.md, "Tracing").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTelemetry {
    pub otlp_endpoint: Option<String>,
    pub capture_content: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub listen: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub worker_threads: Option<usize>,
    pub max_concurrent_requests: Option<usize>,
    pub max_header_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub header_read_timeout_ms: Option<u64>,
    pub body_read_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_streams_per_connection: Option<u32>,
    pub shutdown_grace_ms: Option<u64>,
    pub request_id_to_bedrock: Option<bool>,
    pub connect_timeout_ms: Option<TimeLimit>,
    pub first_byte_timeout_ms: Option<TimeLimit>,
    pub stream_idle_timeout_ms: Option<TimeLimit>,
    pub total_timeout_ms: Option<TimeLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub keys: Vec<GatewayKey>,
}

/// `[limits]`: where the keys' counters live. Every field may be left out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    #[serde(default)]
    pub backend: LimitsBackendKind,
    /// Read as a secret: a Redis URL may hold a password.
    pub redis_url: Option<secrecy::SecretString>,
    pub redis_timeout_ms: Option<u64>,
    #[serde(default)]
    pub on_backend_error: OnBackendError,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum LimitsBackendKind {
    #[default]
    Memory,
    Redis,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccount {
    #[serde(rename = "type")]
    pub kind: AccountKind,
    pub region: Region,
    pub endpoint: Option<Endpoint>,
    pub auth: AuthConfig,
    pub guardrail: Option<RawGuardrail>,
    pub allow_client_guardrails: Option<bool>,
    pub finish_reason_style: Option<FinishReasonStyle>,
    /// Drop OpenAI parameters Bedrock cannot honour instead of refusing the request.
    pub drop_unsupported_params: Option<bool>,
    /// Absent: the account's models are never skipped.
    pub circuit_breaker: Option<CircuitBreakerSettings>,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub timeouts: TimeoutOverrides,
    #[serde(default)]
    pub models: BTreeMap<String, RawModel>,
    /// The guardrails usable at `POST /v1/guardrails/check`, by name (unique across
    /// accounts), run with this account's credentials.
    #[serde(default)]
    pub guardrails: BTreeMap<String, RawCheckGuardrail>,
}

/// `[accounts.<name>.guardrails.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheckGuardrail {
    pub identifier: String,
    pub version: RawVersion,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub(super) enum AccountKind {
    #[serde(rename = "aws-bedrock")]
    AwsBedrock,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    pub model_id: String,
    pub region: Option<Region>,
    pub guardrail: Option<RawGuardrail>,
    /// The base model family of an id that does not name it (an application inference
    /// profile ARN), e.g. `anthropic.claude`; an unknown name is refused while reading.
    pub family: Option<ModelFamily>,
    #[serde(default)]
    pub timeouts: TimeoutOverrides,
    /// USD per million tokens; checked in `validate`.
    pub price: Option<Price>,
    /// `chat` or `embedding`; absent: read from `model_id` (Titan and Cohere embedding
    /// models are `embedding`, every other model `chat`).
    pub kind: Option<ModelKind>,
}

/// `[virtual_models."<name>"]`; the rules spanning its fields and the catalog are core's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVirtualModel {
    pub strategy: Strategy,
    pub targets: Vec<String>,
    pub weights: Option<Vec<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGuardrail {
    pub identifier: String,
    pub version: RawVersion,
    pub trace: Option<String>,
    pub stream_processing_mode: Option<String>,
    #[serde(default)]
    pub mode: GuardrailMode,
}

/// Guardrail versions are strings on the wire; TOML users write `version = 1` as often as
/// `version = "1"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawVersion {
    Text(String),
    Number(u64),
}
