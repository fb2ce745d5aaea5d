//! From the file's schema to a [`GatewayConfig`]: defaults, and the checks that span several
//! values (unique key names, at least one account and model, guardrail fields, virtual
//! models against the configured models, prices, the limits backend).

use std::collections::{BTreeMap, HashSet};
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use gateway_adapter_bedrock::{
    is_embedding_model, BedrockAccountConfig, TimeoutOverrides, Timeouts,
};
use gateway_adapter_http::{GatewayKey, HttpSettings};
use gateway_adapter_redis::RedisLimits;
use gateway_core::guardrail::GuardrailPolicy;
use gateway_core::{
    CheckableGuardrail, ConfiguredGuardrail, GuardrailCatalog, GuardrailConfig, GuardrailTrace,
    ModelCatalog, ModelEntry, ModelKind, StreamProcessingMode, VirtualModelEntry,
    VirtualModelError,
};
use secrecy::ExposeSecret;

use super::raw::{
    AccountKind, LimitsBackendKind, RawAccount, RawConfig, RawConsole, RawGuardrail, RawLimits,
    RawTelemetry, RawVersion, RawVirtualModel,
};
use super::{
    invalid, ConfigError, ConsoleConfig, GatewayConfig, LimitsBackend, LimitsConfig,
    TelemetryConfig,
};

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Far above any core count worth sharding over; a typo such as 10000 fails loudly instead
/// of starting that many threads.
const MAX_WORKER_THREADS: usize = 1024;
/// Long enough for a model's long answer to finish streaming; what Kubernetes'
/// `terminationGracePeriodSeconds` must exceed (docs/operations.md).
const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 30_000;
/// An hour: longer than any answer streams, so a larger value is a typo (seconds taken for
/// milliseconds would be far smaller; an extra digit or two is not).
const MAX_SHUTDOWN_GRACE_MS: u64 = 3_600_000;
/// A request head needs a handful of lines (host, authorization, content-type, length);
/// fewer than this would refuse ordinary clients.
const MIN_MAX_HEADERS: usize = 8;
/// hyper keeps the parsed lines of a head at once; more than this is a way to spend memory.
const MAX_MAX_HEADERS: usize = 1024;
/// Ten minutes: a client that needs longer to send a head or a body is not one to wait for.
const MAX_READ_TIMEOUT_MS: u64 = 600_000;

impl RawConfig {
    pub(super) fn validate(self) -> Result<GatewayConfig, ConfigError> {
        let listen_text = self.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text.parse().map_err(|_| {
            invalid(
                "server.listen",
                format!("`{listen_text}` is not an address like 127.0.0.1:8080"),
            )
        })?;
        let max_body_bytes = self
            .server
            .max_body_bytes
            .unwrap_or(HttpSettings::DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes", "must be at least 1024"));
        }
        let max_concurrent_requests = match self.server.max_concurrent_requests {
            None => HttpSettings::DEFAULT_MAX_CONCURRENT_REQUESTS,
            Some(n) => NonZeroUsize::new(n).ok_or_else(|| {
                invalid("server.max_concurrent_requests", "must be greater than 0")
            })?,
        };
        let max_header_bytes = self
            .server
            .max_header_bytes
            .unwrap_or(HttpSettings::DEFAULT_MAX_HEADER_BYTES);
        let header_bytes = HttpSettings::MIN_MAX_HEADER_BYTES..=HttpSettings::MAX_MAX_HEADER_BYTES;
        if !header_bytes.contains(&max_header_bytes) {
            return Err(invalid(
                "server.max_header_bytes",
                format!(
                    "must be from {} to {}",
                    header_bytes.start(),
                    header_bytes.end()
                ),
            ));
        }
        let max_headers = self
            .server
            .max_headers
            .unwrap_or(HttpSettings::DEFAULT_MAX_HEADERS);
        if !(MIN_MAX_HEADERS..=MAX_MAX_HEADERS).contains(&max_headers) {
            return Err(invalid(
                "server.max_headers",
                format!("must be from {MIN_MAX_HEADERS} to {MAX_MAX_HEADERS}"),
            ));
        }
        let header_read_timeout = read_timeout(
            "server.header_read_timeout_ms",
            self.server.header_read_timeout_ms,
            HttpSettings::DEFAULT_HEADER_READ_TIMEOUT,
        )?;
        let body_read_timeout = read_timeout(
            "server.body_read_timeout_ms",
            self.server.body_read_timeout_ms,
            HttpSettings::DEFAULT_BODY_READ_TIMEOUT,
        )?;
        let max_connections = match self.server.max_connections {
            None => HttpSettings::DEFAULT_MAX_CONNECTIONS,
            Some(n) => NonZeroUsize::new(n)
                .ok_or_else(|| invalid("server.max_connections", "must be greater than 0"))?,
        };
        let max_streams_per_connection = match self.server.max_streams_per_connection {
            None => HttpSettings::DEFAULT_MAX_STREAMS_PER_CONNECTION,
            Some(n) => NonZeroU32::new(n).ok_or_else(|| {
                invalid(
                    "server.max_streams_per_connection",
                    "must be greater than 0",
                )
            })?,
        };
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
        let shutdown_grace_ms = self
            .server
            .shutdown_grace_ms
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE_MS);
        if shutdown_grace_ms > MAX_SHUTDOWN_GRACE_MS {
            return Err(invalid(
                "server.shutdown_grace_ms",
                format!("must be at most {MAX_SHUTDOWN_GRACE_MS} (one hour)"),
            ));
        }
        // The server's limits are the defaults every account and model inherits.
        let timeouts = TimeoutOverrides {
            connect_ms: self.server.connect_timeout_ms,
            first_byte_ms: self.server.first_byte_timeout_ms,
            stream_idle_ms: self.server.stream_idle_timeout_ms,
            total_ms: self.server.total_timeout_ms,
        }
        .apply_to(Timeouts::default());

        let keys = validate_keys(self.auth.keys)?;
        let console = validate_console(self.console, &keys)?;
        let limits = self.limits.validate()?;
        let telemetry = self.telemetry.validate()?;
        let mut accounts = Vec::new();
        let mut models = Vec::new();
        let mut circuit_breakers = BTreeMap::new();
        let mut guardrails = Vec::new();
        for (name, account) in self.accounts {
            let RawAccount {
                kind: AccountKind::AwsBedrock,
                region,
                endpoint,
                auth,
                guardrail,
                allow_client_guardrails,
                finish_reason_style,
                drop_unsupported_params,
                circuit_breaker,
                retry,
                timeouts: account_timeouts,
                models: raw_models,
                guardrails: raw_guardrails,
            } = account;
            let key = format!("accounts.{name}");
            validate_name(&key, &name, false)?;
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
            let mut model_timeouts = BTreeMap::new();
            for (model, raw) in raw_models {
                let model_key = format!("{key}.models.{model}");
                validate_name(&model_key, &model, true)?;
                if raw.model_id.trim().is_empty() {
                    return Err(invalid(
                        format!("{model_key}.model_id"),
                        "must not be empty",
                    ));
                }
                let model_region = raw.region.as_ref().unwrap_or(&region).to_string();
                let configured = match raw.guardrail {
                    Some(g) => Some(g.validate(&format!("{model_key}.guardrail"))?),
                    None => account_guardrail.clone(),
                };
                if raw.timeouts != TimeoutOverrides::default() {
                    model_timeouts.insert(model.clone(), raw.timeouts);
                }
                if let Some(price) = &raw.price {
                    price.validate().map_err(|error| {
                        invalid(format!("{model_key}.price.{}", error.field), error.problem)
                    })?;
                }
                let kind = raw.kind.unwrap_or(if is_embedding_model(&raw.model_id) {
                    ModelKind::Embedding
                } else {
                    ModelKind::Chat
                });
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
                    // The route keeps the canonical name; the adapter reads it again.
                    family: raw.family.map(|family| family.as_str().to_owned()),
                    drop_unsupported_params: drop_unsupported_params.unwrap_or(false),
                    price: raw.price,
                    kind,
                });
            }
            for (guardrail, raw) in raw_guardrails {
                let guardrail_key = format!("{key}.guardrails.{guardrail}");
                validate_name(&guardrail_key, &guardrail, false)?;
                if raw.identifier.trim().is_empty() {
                    return Err(invalid(
                        format!("{guardrail_key}.identifier"),
                        "must not be empty",
                    ));
                }
                guardrails.push(CheckableGuardrail {
                    name: guardrail,
                    account: name.clone(),
                    guardrail: GuardrailConfig {
                        identifier: raw.identifier,
                        version: guardrail_version(&guardrail_key, raw.version)?,
                        trace: None,
                        stream_processing_mode: None,
                    },
                });
            }
            if let Some(settings) = circuit_breaker {
                circuit_breakers.insert(name.clone(), settings);
            }
            accounts.push(BedrockAccountConfig {
                name,
                region,
                endpoint,
                auth,
                retry,
                timeouts: account_timeouts,
                model_timeouts,
            });
        }
        if accounts.is_empty() {
            return Err(invalid("accounts", "configure at least one account"));
        }
        let virtual_models = validate_virtual_models(self.virtual_models, &models)?;
        validate_check_guardrails(&guardrails, &keys)?;
        Ok(GatewayConfig {
            listen,
            max_body_bytes,
            max_concurrent_requests,
            max_header_bytes,
            max_headers,
            header_read_timeout,
            body_read_timeout,
            max_connections,
            max_streams_per_connection,
            worker_threads,
            shutdown_grace: Duration::from_millis(shutdown_grace_ms),
            request_id_to_bedrock: self.server.request_id_to_bedrock.unwrap_or(false),
            timeouts,
            keys,
            accounts,
            models,
            virtual_models,
            guardrails,
            circuit_breakers,
            limits,
            telemetry,
            console,
        })
    }
}

/// A read timeout in milliseconds: above 0, at most [`MAX_READ_TIMEOUT_MS`].
fn read_timeout(key: &str, ms: Option<u64>, default: Duration) -> Result<Duration, ConfigError> {
    match ms {
        None => Ok(default),
        Some(ms) if (1..=MAX_READ_TIMEOUT_MS).contains(&ms) => Ok(Duration::from_millis(ms)),
        Some(_) => Err(invalid(
            key,
            format!("must be from 1 to {MAX_READ_TIMEOUT_MS} (ten minutes)"),
        )),
    }
}

impl RawTelemetry {
    fn validate(self) -> Result<TelemetryConfig, ConfigError> {
        if let Some(endpoint) = &self.otlp_endpoint {
            let valid = endpoint
                .parse::<http::Uri>()
                .ok()
                .filter(|uri| matches!(uri.scheme_str(), Some("http" | "https")))
                .is_some_and(|uri| uri.host().is_some());
            if !valid {
                return Err(invalid(
                    "telemetry.otlp_endpoint",
                    "must be an http:// or https:// URL, e.g. http://127.0.0.1:4318",
                ));
            }
        }
        Ok(TelemetryConfig {
            otlp_endpoint: self.otlp_endpoint,
            capture_content: self.capture_content.unwrap_or(false),
        })
    }
}

impl RawLimits {
    /// `redis_url` and `redis_timeout_ms` are used with `backend = "redis"` only; with memory
    /// they are still checked, then unused, so switching backends is a one-line change.
    fn validate(self) -> Result<LimitsConfig, ConfigError> {
        if let Some(url) = &self.redis_url {
            // The Redis store's own check, without connecting: what it refuses at start is
            // refused here. Its message never repeats the URL, which may hold a password.
            RedisLimits::check_url(url.expose_secret())
                .map_err(|error| invalid("limits.redis_url", error.to_string()))?;
        }
        let timeout = match self.redis_timeout_ms {
            None => LimitsBackend::DEFAULT_REDIS_TIMEOUT,
            Some(0) => return Err(invalid("limits.redis_timeout_ms", "must be greater than 0")),
            Some(ms) => Duration::from_millis(ms),
        };
        let backend = match self.backend {
            LimitsBackendKind::Memory => LimitsBackend::Memory,
            LimitsBackendKind::Redis => LimitsBackend::Redis {
                url: self.redis_url.ok_or_else(|| {
                    invalid(
                        "limits.redis_url",
                        "backend = \"redis\" needs the server's URL, e.g. redis://127.0.0.1:6379",
                    )
                })?,
                timeout,
            },
        };
        Ok(LimitsConfig {
            backend,
            on_backend_error: self.on_backend_error,
        })
    }
}

/// Names are checked here; every other rule is the catalog's, so it is asked to build the
/// virtual models over the configured ones and its error is given the file's key.
fn validate_virtual_models(
    raw: BTreeMap<String, RawVirtualModel>,
    models: &[ModelEntry],
) -> Result<Vec<VirtualModelEntry>, ConfigError> {
    let mut entries = Vec::with_capacity(raw.len());
    for (name, model) in raw {
        validate_name(&format!("virtual_models.{name}"), &name, true)?;
        entries.push(VirtualModelEntry {
            name,
            strategy: model.strategy,
            targets: model.targets,
            weights: model.weights,
        });
    }
    if entries.is_empty() {
        return Ok(entries);
    }
    let catalog = ModelCatalog::new(models.iter().cloned())
        .map_err(|duplicate| invalid("accounts", duplicate.to_string()))?;
    catalog
        .with_virtual_models(entries.iter().cloned())
        .map_err(|error| virtual_model_error(&error))?;
    Ok(entries)
}

fn virtual_model_error(error: &VirtualModelError) -> ConfigError {
    let key = match error.field() {
        Some(field) => format!("virtual_models.{}.{field}", error.name),
        None => format!("virtual_models.{}", error.name),
    };
    invalid(key, error.problem.to_string())
}

/// Keys are checked one by one as they are read (`GatewayKey`); here, across the list.
fn validate_keys(keys: Vec<GatewayKey>) -> Result<Vec<GatewayKey>, ConfigError> {
    if keys.is_empty() {
        return Err(invalid(
            "auth.keys",
            "configure at least one gateway key; clients send it as `Authorization: Bearer <key>`",
        ));
    }
    unique_names_and_keys(
        "auth.keys",
        keys.iter()
            .map(|key| (key.name.as_str(), key.key.expose_secret())),
    )?;
    Ok(keys)
}

/// Every `(name, key)` of the list at `list` named, and no name or key twice; errors name
/// the entry, never a key.
fn unique_names_and_keys<'a>(
    list: &str,
    keys: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    let mut secrets = HashSet::new();
    for (i, (name, key)) in keys.enumerate() {
        let at = format!("{list}[{i}]");
        if name.trim().is_empty() {
            return Err(invalid(format!("{at}.name"), "must not be empty"));
        }
        if !names.insert(name) {
            return Err(invalid(
                format!("{at}.name"),
                format!("`{name}` is used twice"),
            ));
        }
        if !secrets.insert(key) {
            return Err(invalid(
                format!("{at}.key"),
                "the same key is configured twice",
            ));
        }
    }
    Ok(())
}

/// Admin keys: named, unique, and none of them a gateway key, so that a key leaked from a
/// client never opens the console and an admin key never calls a model. Errors never show a
/// key.
fn validate_console(
    console: RawConsole,
    gateway_keys: &[GatewayKey],
) -> Result<ConsoleConfig, ConfigError> {
    let admin_keys = console
        .admin_keys
        .iter()
        .map(|admin| (admin.name.as_str(), admin.key.expose_secret()));
    unique_names_and_keys("console.admin_keys", admin_keys)?;
    for (i, admin) in console.admin_keys.iter().enumerate() {
        let at = format!("console.admin_keys[{i}]");
        if let Some(gateway) = gateway_keys
            .iter()
            .find(|gateway| gateway.key.expose_secret() == admin.key.expose_secret())
        {
            return Err(invalid(
                format!("{at}.key"),
                format!(
                    "is also the gateway key `{}`: an admin key must differ from every gateway key",
                    gateway.name
                ),
            ));
        }
    }
    Ok(ConsoleConfig {
        admin_keys: console.admin_keys,
    })
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

/// A guardrail version as Bedrock takes it: a number or `DRAFT`. `key` is the guardrail's.
fn guardrail_version(key: &str, version: RawVersion) -> Result<String, ConfigError> {
    let version = match version {
        RawVersion::Text(v) => v,
        RawVersion::Number(n) => n.to_string(),
    };
    if version != "DRAFT" && version.parse::<u32>().is_err() {
        return Err(invalid(
            format!("{key}.version"),
            "must be a version number or \"DRAFT\"",
        ));
    }
    Ok(version)
}

/// Guardrail names are unique across accounts (the catalog's rule, asked here), and a key
/// lists only configured ones: a typo would otherwise silently deny the key.
fn validate_check_guardrails(
    guardrails: &[CheckableGuardrail],
    keys: &[GatewayKey],
) -> Result<(), ConfigError> {
    let catalog = GuardrailCatalog::new(guardrails.iter().cloned()).map_err(|duplicate| {
        let accounts: Vec<&str> = guardrails
            .iter()
            .filter(|guardrail| guardrail.name == duplicate.0)
            .map(|guardrail| guardrail.account.as_str())
            .collect();
        invalid(
            format!(
                "accounts.{}.guardrails.{}",
                accounts.last().copied().unwrap_or("-"),
                duplicate.0
            ),
            format!(
                "{duplicate} (also in accounts.{})",
                accounts.first().copied().unwrap_or("-")
            ),
        )
    })?;
    for (i, key) in keys.iter().enumerate() {
        for (j, name) in key.guardrails.iter().enumerate() {
            if catalog.get(name).is_none() {
                return Err(invalid(
                    format!("auth.keys[{i}].guardrails[{j}]"),
                    format!(
                        "`{name}` is not a guardrail configured under any account's guardrails"
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl RawGuardrail {
    fn validate(self, key: &str) -> Result<ConfiguredGuardrail, ConfigError> {
        if self.identifier.trim().is_empty() {
            return Err(invalid(format!("{key}.identifier"), "must not be empty"));
        }
        let version = guardrail_version(key, self.version)?;
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
