//! The configuration file: TOML with `${VAR}` expansion, parsed into a raw form and then
//! validated into the values the adapters and the domain take.
//!
//! Every error names the key it is about, so a typo never passes silently.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use gateway_adapter_bedrock::{AuthConfig, BedrockAccountConfig};
use gateway_core::guardrail::GuardrailPolicy;
use gateway_core::{
    ConfiguredGuardrail, FinishReasonStyle, GuardrailConfig, GuardrailMode, GuardrailTrace,
    ModelEntry, StreamProcessingMode,
};
use serde::Deserialize;
use thiserror::Error;

/// Bodies larger than this are refused with 413 unless configured otherwise: room for
/// several base64 images.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Far above any core count worth sharding over; a typo such as 10000 fails loudly instead
/// of starting that many threads.
const MAX_WORKER_THREADS: usize = 1024;
const DEFAULT_SESSION_NAME: &str = "ai-gateway";

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

/// A validated configuration.
#[derive(Clone, PartialEq)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    /// How many single-threaded runtimes `serve` runs, one per OS thread; `None`: one per
    /// available core.
    pub worker_threads: Option<NonZeroUsize>,
    pub timeouts: UpstreamTimeouts,
    pub keys: Vec<KeyConfig>,
    pub accounts: Vec<BedrockAccountConfig>,
    pub models: Vec<ModelEntry>,
}

impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("listen", &self.listen)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("worker_threads", &self.worker_threads)
            .field("timeouts", &self.timeouts)
            .field("keys", &self.keys)
            .field("accounts", &self.accounts)
            .field("models", &self.models)
            .finish()
    }
}

/// Upstream time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    pub connect: Duration,
    /// Until Bedrock's response headers arrive.
    pub first_byte: Duration,
    /// Longest gap between two event-stream frames.
    pub stream_idle: Duration,
}

/// A gateway key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyConfig {
    pub name: String,
    pub key: String,
    pub finish_reason_style: Option<FinishReasonStyle>,
}

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .field("finish_reason_style", &self.finish_reason_style)
            .finish()
    }
}

impl GatewayConfig {
    /// Reads and validates a file, taking `${VAR}` from the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &|name| std::env::var(name).ok())
    }

    /// Parses and validates config text; `lookup` answers `${VAR}` references.
    pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        for (key, value) in table.iter_mut() {
            expand_value(key, value, lookup)?;
        }
        let raw: RawConfig =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let path = e.path().to_string();
                let key = if path == "." {
                    "(top level)".into()
                } else {
                    path
                };
                // toml repeats the path on a second line; the key is already in front.
                let message = e.into_inner().to_string();
                let first_line = message.lines().next().unwrap_or_default().to_owned();
                invalid(key, first_line)
            })?;
        raw.validate()
    }
}

/// Replaces `${VAR}` in every string below `value`.
fn expand_value(
    key: &str,
    value: &mut toml::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(s) if s.contains("${") => {
            *s = expand_string(key, s, lookup)?;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(&format!("{key}[{i}]"), item, lookup)?;
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                expand_value(&format!("{key}.{k}"), v, lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_string(
    key: &str,
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| invalid(key, "unterminated `${` (write `${NAME}`)"))?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(
                key,
                format!("`${{{name}}}` is not a valid variable name"),
            ));
        }
        let value = lookup(name).ok_or_else(|| ConfigError::MissingVariable {
            key: key.to_owned(),
            var: name.to_owned(),
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    auth: RawAuth,
    #[serde(default)]
    accounts: BTreeMap<String, RawAccount>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    max_body_bytes: Option<usize>,
    worker_threads: Option<usize>,
    connect_timeout_ms: Option<u64>,
    first_byte_timeout_ms: Option<u64>,
    stream_idle_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: String,
    key: String,
    finish_reason_style: Option<FinishReasonStyle>,
}

impl fmt::Debug for RawKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Flat structs with a `type` field rather than serde-tagged enums: tagged enums buffer
/// their content, and the error path would stop at the account instead of naming the key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    #[serde(rename = "type")]
    kind: AccountKind,
    region: String,
    endpoint: Option<String>,
    auth: RawAuthMethod,
    guardrail: Option<RawGuardrail>,
    allow_client_guardrails: Option<bool>,
    finish_reason_style: Option<FinishReasonStyle>,
    #[serde(default)]
    models: BTreeMap<String, RawModel>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum AccountKind {
    #[serde(rename = "aws-bedrock")]
    AwsBedrock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum AuthKind {
    AccessKey,
    AssumeRole,
    DefaultChain,
    ApiKey,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthMethod {
    #[serde(rename = "type")]
    kind: AuthKind,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    role_arn: Option<String>,
    external_id: Option<String>,
    session_name: Option<String>,
    duration_seconds: Option<u32>,
    sts_region: Option<String>,
    sts_endpoint: Option<String>,
    key: Option<String>,
}

impl fmt::Debug for RawAuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawAuthMethod")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    model_id: String,
    region: Option<String>,
    guardrail: Option<RawGuardrail>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGuardrail {
    identifier: String,
    version: RawVersion,
    trace: Option<String>,
    stream_processing_mode: Option<String>,
    #[serde(default)]
    mode: GuardrailMode,
}

/// Guardrail versions are strings on the wire; TOML users write `version = 1` as often as
/// `version = "1"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawVersion {
    Text(String),
    Number(u64),
}

impl RawConfig {
    fn validate(self) -> Result<GatewayConfig, ConfigError> {
        let listen_text = self.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text.parse().map_err(|_| {
            invalid(
                "server.listen",
                format!("`{listen_text}` is not an address like 127.0.0.1:8080"),
            )
        })?;
        let max_body_bytes = self.server.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes", "must be at least 1024"));
        }
        let worker_threads = match self.server.worker_threads {
            None => None,
            Some(n) if n > MAX_WORKER_THREADS => {
                return Err(invalid(
                    "server.worker_threads",
                    format!("must be at most {MAX_WORKER_THREADS}"),
                ))
            }
            Some(n) => Some(
                NonZeroUsize::new(n)
                    .ok_or_else(|| invalid("server.worker_threads", "must be greater than 0"))?,
            ),
        };
        let timeout =
            |key: &str, value: Option<u64>, default_ms: u64| match value.unwrap_or(default_ms) {
                0 => Err(invalid(format!("server.{key}"), "must be greater than 0")),
                ms => Ok(Duration::from_millis(ms)),
            };
        let timeouts = UpstreamTimeouts {
            connect: timeout("connect_timeout_ms", self.server.connect_timeout_ms, 5_000)?,
            first_byte: timeout(
                "first_byte_timeout_ms",
                self.server.first_byte_timeout_ms,
                120_000,
            )?,
            stream_idle: timeout(
                "stream_idle_timeout_ms",
                self.server.stream_idle_timeout_ms,
                120_000,
            )?,
        };

        let keys = validate_keys(self.auth.keys)?;
        let mut accounts = Vec::new();
        let mut models = Vec::new();
        for (name, account) in self.accounts {
            let RawAccount {
                kind: AccountKind::AwsBedrock,
                region,
                endpoint,
                auth,
                guardrail,
                allow_client_guardrails,
                finish_reason_style,
                models: raw_models,
            } = account;
            let key = format!("accounts.{name}");
            validate_name(&key, &name, false)?;
            validate_region(&format!("{key}.region"), &region)?;
            if let Some(endpoint) = &endpoint {
                validate_url(&format!("{key}.endpoint"), endpoint)?;
            }
            let account_guardrail = guardrail
                .map(|g| g.validate(&format!("{key}.guardrail")))
                .transpose()?;
            let allow_client_guardrails = allow_client_guardrails.unwrap_or(true);
            let finish_reason_style = finish_reason_style.unwrap_or_default();
            if raw_models.is_empty() {
                return Err(invalid(
                    format!("{key}.models"),
                    "an account needs at least one model",
                ));
            }
            for (model, raw) in raw_models {
                let model_key = format!("{key}.models.{model}");
                validate_name(&model_key, &model, true)?;
                if raw.model_id.trim().is_empty() {
                    return Err(invalid(
                        format!("{model_key}.model_id"),
                        "must not be empty",
                    ));
                }
                let model_region = match raw.region {
                    Some(region) => {
                        validate_region(&format!("{model_key}.region"), &region)?;
                        region
                    }
                    None => region.clone(),
                };
                let configured = match raw.guardrail {
                    Some(g) => Some(g.validate(&format!("{model_key}.guardrail"))?),
                    None => account_guardrail.clone(),
                };
                models.push(ModelEntry {
                    account: name.clone(),
                    model,
                    model_id: raw.model_id,
                    region: model_region,
                    guardrail: GuardrailPolicy {
                        configured,
                        allow_client_guardrails,
                    },
                    finish_reason_style,
                });
            }
            let auth = auth.validate(&format!("{key}.auth"))?;
            accounts.push(BedrockAccountConfig {
                name,
                region,
                endpoint,
                auth,
            });
        }
        if accounts.is_empty() {
            return Err(invalid("accounts", "configure at least one account"));
        }
        Ok(GatewayConfig {
            listen,
            max_body_bytes,
            worker_threads,
            timeouts,
            keys,
            accounts,
            models,
        })
    }
}

fn validate_keys(raw: Vec<RawKey>) -> Result<Vec<KeyConfig>, ConfigError> {
    if raw.is_empty() {
        return Err(invalid(
            "auth.keys",
            "configure at least one gateway key; clients send it as `Authorization: Bearer <key>`",
        ));
    }
    let mut names = HashSet::new();
    let mut secrets = HashSet::new();
    let mut keys = Vec::with_capacity(raw.len());
    for (i, key) in raw.into_iter().enumerate() {
        let at = format!("auth.keys[{i}]");
        if key.name.trim().is_empty() {
            return Err(invalid(format!("{at}.name"), "must not be empty"));
        }
        if key.key.len() < 8 || key.key.chars().any(char::is_whitespace) {
            return Err(invalid(
                format!("{at}.key"),
                "must be at least 8 characters with no white space",
            ));
        }
        if !names.insert(key.name.clone()) {
            return Err(invalid(
                format!("{at}.name"),
                format!("`{}` is used twice", key.name),
            ));
        }
        if !secrets.insert(key.key.clone()) {
            return Err(invalid(
                format!("{at}.key"),
                "the same key is configured twice",
            ));
        }
        keys.push(KeyConfig {
            name: key.name,
            key: key.key,
            finish_reason_style: key.finish_reason_style,
        });
    }
    Ok(keys)
}

fn validate_name(key: &str, name: &str, slash_allowed: bool) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.chars().all(|c| {
            c.is_ascii_alphanumeric() || "-_.:".contains(c) || (slash_allowed && c == '/')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            "names may use letters, digits, `-`, `_`, `.` and `:`",
        ))
    }
}

fn validate_region(key: &str, region: &str) -> Result<(), ConfigError> {
    let ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("`{region}` is not an AWS region like us-east-1"),
        ))
    }
}

fn validate_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid(key, "must start with https:// or http://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || url.parse::<http::Uri>().is_err() {
        return Err(invalid(key, format!("`{url}` is not a URL")));
    }
    Ok(())
}

impl RawAuthMethod {
    fn validate(self, key: &str) -> Result<AuthConfig, ConfigError> {
        let kind = self.kind;
        let used_by = |field: &str, value_set: bool, kinds: &[AuthKind]| {
            if value_set && !kinds.contains(&kind) {
                Err(invalid(
                    format!("{key}.{field}"),
                    format!("is not used with type = \"{}\"", kind.name()),
                ))
            } else {
                Ok(())
            }
        };
        use AuthKind::{AccessKey, ApiKey, AssumeRole};
        used_by("access_key_id", self.access_key_id.is_some(), &[AccessKey])?;
        used_by(
            "secret_access_key",
            self.secret_access_key.is_some(),
            &[AccessKey],
        )?;
        used_by("session_token", self.session_token.is_some(), &[AccessKey])?;
        used_by("key", self.key.is_some(), &[ApiKey])?;
        for (field, set) in [
            ("role_arn", self.role_arn.is_some()),
            ("external_id", self.external_id.is_some()),
            ("session_name", self.session_name.is_some()),
            ("duration_seconds", self.duration_seconds.is_some()),
            ("sts_region", self.sts_region.is_some()),
            ("sts_endpoint", self.sts_endpoint.is_some()),
        ] {
            used_by(field, set, &[AssumeRole])?;
        }
        let required = |field: &str, value: Option<String>| match value {
            Some(v) if !v.trim().is_empty() => Ok(v),
            Some(_) => Err(invalid(format!("{key}.{field}"), "must not be empty")),
            None => Err(invalid(
                format!("{key}.{field}"),
                format!("is required with type = \"{}\"", kind.name()),
            )),
        };
        Ok(match kind {
            AuthKind::AccessKey => AuthConfig::AccessKey {
                access_key_id: required("access_key_id", self.access_key_id)?,
                secret_access_key: required("secret_access_key", self.secret_access_key)?,
                session_token: self.session_token.filter(|t| !t.is_empty()),
            },
            AuthKind::AssumeRole => {
                let role_arn = required("role_arn", self.role_arn)?;
                if !role_arn.starts_with("arn:") || !role_arn.contains(":role/") {
                    return Err(invalid(
                        format!("{key}.role_arn"),
                        "must be a role ARN like arn:aws:iam::123456789012:role/bedrock-invoke",
                    ));
                }
                if let Some(d) = self.duration_seconds {
                    if !(900..=43_200).contains(&d) {
                        return Err(invalid(
                            format!("{key}.duration_seconds"),
                            "must be between 900 and 43200",
                        ));
                    }
                }
                if let Some(region) = &self.sts_region {
                    validate_region(&format!("{key}.sts_region"), region)?;
                }
                if let Some(endpoint) = &self.sts_endpoint {
                    validate_url(&format!("{key}.sts_endpoint"), endpoint)?;
                }
                let session_name = self
                    .session_name
                    .unwrap_or_else(|| DEFAULT_SESSION_NAME.into());
                let session_ok = (2..=64).contains(&session_name.len())
                    && session_name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "=,.@-_".contains(c));
                if !session_ok {
                    return Err(invalid(
                        format!("{key}.session_name"),
                        "must be 2-64 characters of letters, digits and =,.@-_",
                    ));
                }
                AuthConfig::AssumeRole {
                    role_arn,
                    external_id: self.external_id.filter(|e| !e.is_empty()),
                    session_name,
                    duration_seconds: self.duration_seconds,
                    sts_region: self.sts_region,
                    sts_endpoint: self.sts_endpoint,
                }
            }
            AuthKind::DefaultChain => AuthConfig::DefaultChain,
            AuthKind::ApiKey => AuthConfig::ApiKey {
                key: self.key.filter(|k| !k.is_empty()),
            },
        })
    }
}

impl AuthKind {
    fn name(self) -> &'static str {
        match self {
            Self::AccessKey => "access-key",
            Self::AssumeRole => "assume-role",
            Self::DefaultChain => "default-chain",
            Self::ApiKey => "api-key",
        }
    }
}

impl RawGuardrail {
    fn validate(self, key: &str) -> Result<ConfiguredGuardrail, ConfigError> {
        if self.identifier.trim().is_empty() {
            return Err(invalid(format!("{key}.identifier"), "must not be empty"));
        }
        let version = match self.version {
            RawVersion::Text(v) => v,
            RawVersion::Number(n) => n.to_string(),
        };
        if version != "DRAFT" && version.parse::<u32>().is_err() {
            return Err(invalid(
                format!("{key}.version"),
                "must be a version number or \"DRAFT\"",
            ));
        }
        let trace = self
            .trace
            .map(|t| {
                GuardrailTrace::parse(&t).ok_or_else(|| {
                    invalid(
                        format!("{key}.trace"),
                        format!("`{t}` is not one of {}", GuardrailTrace::ALL.join(", ")),
                    )
                })
            })
            .transpose()?;
        let stream_processing_mode = self
            .stream_processing_mode
            .map(|m| {
                StreamProcessingMode::parse(&m).ok_or_else(|| {
                    invalid(
                        format!("{key}.stream_processing_mode"),
                        format!(
                            "`{m}` is not one of {}",
                            StreamProcessingMode::ALL.join(", ")
                        ),
                    )
                })
            })
            .transpose()?;
        Ok(ConfiguredGuardrail {
            guardrail: GuardrailConfig {
                identifier: self.identifier,
                version,
                trace,
                stream_processing_mode,
            },
            mode: self.mode,
        })
    }
}
