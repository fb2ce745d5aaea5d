//! The configuration file: TOML with `${VAR}` expansion (`env`), deserialized (`raw`) straight
//! into the adapters' own validated types, then assembled and cross-checked (`validate`).
//!
//! Every error names the key it is about, so a typo never passes silently. Rules about a
//! single value live with the value's type in the adapter that uses it (an endpoint, a role
//! ARN, a gateway key); this module only checks what spans several values.

mod env;
mod raw;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::Path;
use std::time::Duration;

use gateway_adapter_bedrock::{BedrockAccountConfig, Timeouts};
use gateway_adapter_http::{AdminKey, GatewayKey};
use gateway_core::{
    CheckableGuardrail, CircuitBreakerSettings, ModelEntry, OnBackendError, VirtualModelEntry,
};
use secrecy::SecretString;
use thiserror::Error;

pub use env::API_KEY_ENV;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("not valid TOML: {0}")]
    Syntax(String),
    #[error("{key}: environment variable `{var}` is not set")]
    MissingVariable { key: String, var: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// A validated configuration. `Debug` shows no secret: keys and credentials are
/// `secrecy` secrets.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    /// Chat requests in flight before the gateway sheds load (503).
    pub max_concurrent_requests: NonZeroUsize,
    /// What a connection may cost before any handler runs; the `HttpSettings` fields of the
    /// same names (docs/configuration.md, docs/hardening.md).
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: NonZeroUsize,
    pub max_streams_per_connection: NonZeroU32,
    /// How many single-threaded runtimes `serve` runs, one per OS thread; `None`: one per
    /// available core.
    pub worker_threads: Option<NonZeroUsize>,
    /// How long a shutdown (SIGTERM) lets requests and streams in flight finish before it
    /// cuts them.
    pub shutdown_grace: Duration,
    /// Send each chat's `x-request-id` to Bedrock as `requestMetadata` `gateway_request_id`.
    pub request_id_to_bedrock: bool,
    pub timeouts: Timeouts,
    pub keys: Vec<GatewayKey>,
    pub accounts: Vec<BedrockAccountConfig>,
    pub models: Vec<ModelEntry>,
    /// Checked against `models` already: every target is one of them.
    pub virtual_models: Vec<VirtualModelEntry>,
    /// The guardrails offered at `POST /v1/guardrails/check`; names unique, and every name
    /// a key's `guardrails` lists is one of them.
    pub guardrails: Vec<CheckableGuardrail>,
    /// By account name; an account without one has no breaker.
    pub circuit_breakers: BTreeMap<String, CircuitBreakerSettings>,
    /// Where the keys' limits are counted.
    pub limits: LimitsConfig,
    pub telemetry: TelemetryConfig,
    pub console: ConsoleConfig,
}

/// `[console]`.
#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    /// The keys that open the console's admin API; names unique, none equal to another or
    /// to a gateway key. Empty: the console is disabled.
    pub admin_keys: Vec<AdminKey>,
}

/// `[telemetry]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL (`/v1/traces` is appended), as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; the environment variables win over it.
    pub otlp_endpoint: Option<String>,
    /// Spans carry the prompt and the answer; off by default.
    pub capture_content: bool,
}

/// `[limits]`.
#[derive(Debug, Clone, Default)]
pub struct LimitsConfig {
    pub backend: LimitsBackend,
    /// What a request gets when the backend cannot answer in time.
    pub on_backend_error: OnBackendError,
}

/// Where the counters of `rpm`, `tpm` and `budget_usd` live.
#[derive(Debug, Clone, Default)]
pub enum LimitsBackend {
    /// In this process: right for one replica.
    #[default]
    Memory,
    /// In Redis, shared by every replica using it.
    Redis {
        /// `redis://` or `unix://` (no TLS: `rediss://` is refused); may hold a password, so a
        /// secret.
        url: SecretString,
        /// Every call to Redis gets this long before `on_backend_error` decides.
        timeout: Duration,
    },
}

impl LimitsBackend {
    /// How long a Redis call may take when `redis_timeout_ms` is not set: far above a
    /// healthy Redis's sub-millisecond answers, and short enough that a dead one costs a
    /// request no noticeable delay.
    pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);
}

impl GatewayConfig {
    /// Reads and validates a file, taking `${VAR}` (and a missing api key) from the process
    /// environment.
    ///
    /// Only a regular file of at most [`MAX_CONFIG_BYTES`] is read, so a path swapped for a
    /// FIFO, a device or a runaway file fails the load (and a reload keeps the running
    /// configuration) instead of hanging or exhausting memory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read_config_file(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &|name| std::env::var(name).ok())
    }

    /// Parses and validates config text; `lookup` answers `${VAR}` references and
    /// [`API_KEY_ENV`].
    pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        env::expand_variables(&mut table, lookup)?;
        env::fill_api_keys(&mut table, lookup)?;
        let raw: raw::RawConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let path = e.path().to_string();
                // toml repeats the path on a second line; the key is already in front.
                let message = e.into_inner().to_string();
                let first_line = message.lines().next().unwrap_or_default();
                deserialize_error(&path, first_line)
            })?;
        raw.validate()
    }
}

/// The error for a deserialization failure at `path`. Serde buffers the internally tagged
/// `auth` table, so the path stops there; the adapter's auth fields then say
/// `<field>: <message>`, and the field moves into the key.
fn deserialize_error(path: &str, message: &str) -> ConfigError {
    if path == "." {
        return invalid("(top level)", message);
    }
    if path.ends_with("auth") {
        if let Some((field, rest)) = message.split_once(": ") {
            if !field.is_empty() && field.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                return invalid(format!("{path}.{field}"), rest);
            }
        }
    }
    invalid(path, message)
}

/// The largest configuration file read: far above any real one (thousands of keys and
/// models), far below what would strain memory.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

fn read_config_file(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let not_regular = || Error::new(ErrorKind::InvalidInput, "not a regular file");
    // Checked before opening too: opening a FIFO waits for a writer.
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    Ok(text)
}
