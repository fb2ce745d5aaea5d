//! What the operator configures about the HTTP side: gateway keys and limits.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use gateway_core::{FinishReasonStyle, GuardrailAllowList, KeyLimits};
use secrecy::SecretString;
use serde::de::{Deserializer, Error as _};
use serde::Deserialize;

use crate::console::ConsoleSettings;
use crate::trace::TraceExportFailures;
use crate::{LimitBackendErrors, RetryCounters};

/// A key clients send as `Authorization: Bearer <key>`. A host may deserialize it straight
/// from its configuration (`name`, `key`, `finish_reason_style`, `drop_unsupported_params`,
/// `rpm`, `tpm`, `budget_usd`, `budget_period`, `guardrails`), which checks each value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayKey {
    /// A name for logs and metrics; never the key.
    pub name: String,
    /// Never printed; compared in constant time.
    #[serde(deserialize_with = "key_secret")]
    pub key: SecretString,
    /// Overrides the account's finish-reason style for clients using this key.
    pub finish_reason_style: Option<FinishReasonStyle>,
    /// Overrides the account's `drop_unsupported_params` for clients using this key.
    #[serde(default)]
    pub drop_unsupported_params: Option<bool>,
    /// Requests per minute (sliding window); above 0.
    #[serde(default, deserialize_with = "above_zero")]
    pub rpm: Option<u32>,
    /// Tokens per minute (sliding window), counted from each answer's usage; above 0.
    #[serde(default, deserialize_with = "above_zero")]
    pub tpm: Option<u64>,
    /// USD the key may spend per `budget_period` (or ever); at least 0.
    #[serde(default, deserialize_with = "amount_of_usd")]
    pub budget_usd: Option<f64>,
    /// How long a budget lasts before it starts again, written `30d`, `12h`, `90m` or
    /// `3600s` (or `never`, the same as leaving it out).
    #[serde(default, deserialize_with = "period")]
    pub budget_period: Option<Duration>,
    /// The guardrails (configured names) this key may use at `POST /v1/guardrails/check`;
    /// absent or empty: none. The host checks the names against its configuration.
    #[serde(default)]
    pub guardrails: Vec<String>,
}

impl GatewayKey {
    /// A key named `name` with nothing but defaults.
    pub fn new(name: impl Into<String>, key: SecretString) -> Self {
        Self {
            name: name.into(),
            key,
            finish_reason_style: None,
            drop_unsupported_params: None,
            rpm: None,
            tpm: None,
            budget_usd: None,
            budget_period: None,
            guardrails: Vec::new(),
        }
    }

    /// The guardrails the key may check text against.
    pub fn guardrail_allow_list(&self) -> GuardrailAllowList {
        GuardrailAllowList::new(self.guardrails.iter().cloned())
    }

    /// What the key may consume.
    pub fn limits(&self) -> KeyLimits {
        KeyLimits {
            rpm: self.rpm,
            tpm: self.tpm,
            budget_usd: self.budget_usd,
            budget_period: self.budget_period,
        }
    }
}

fn above_zero<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default + PartialOrd,
{
    let value = T::deserialize(deserializer)?;
    if value > T::default() {
        Ok(Some(value))
    } else {
        Err(D::Error::custom("must be greater than 0"))
    }
}

fn amount_of_usd<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    let usd = f64::deserialize(deserializer)?;
    if usd.is_finite() && usd >= 0.0 {
        Ok(Some(usd))
    } else {
        Err(D::Error::custom("must be an amount of USD, at least 0"))
    }
}

fn period<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_period(&text).map_err(|problem| D::Error::custom(format!("`{text}` {problem}")))
}

/// `<whole number><s|m|h|d>` above 0, or `never`.
fn parse_period(text: &str) -> Result<Option<Duration>, &'static str> {
    if text == "never" {
        return Ok(None);
    }
    let not_a_period = "is not a period like 30d, 12h, 90m or 3600s (or never)";
    let unit_at = text.len().saturating_sub(1);
    let (number, unit) = (text.get(..unit_at), text.get(unit_at..));
    let seconds_per_unit = match unit {
        Some("s") => 1,
        Some("m") => 60,
        Some("h") => 3600,
        Some("d") => 86_400,
        _ => return Err(not_a_period),
    };
    let count: u64 = number
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse().ok())
        .ok_or(not_a_period)?;
    match count.checked_mul(seconds_per_unit) {
        Some(0) => Err("must be longer than 0"),
        Some(seconds) => Ok(Some(Duration::from_secs(seconds))),
        None => Err(not_a_period),
    }
}

/// The shortest key accepted from configuration: shorter ones are guessable.
pub const MIN_GATEWAY_KEY_CHARS: usize = 8;

/// A configured key: at least [`MIN_GATEWAY_KEY_CHARS`] characters, no white space (it
/// travels in a header, and a pasted line break would never match).
fn key_secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
    let key = String::deserialize(deserializer)?;
    if key.chars().count() < MIN_GATEWAY_KEY_CHARS || key.chars().any(char::is_whitespace) {
        return Err(D::Error::custom(format!(
            "must be at least {MIN_GATEWAY_KEY_CHARS} characters with no white space"
        )));
    }
    Ok(key.into())
}

/// A key that opens the console's admin API (`Authorization: Bearer <key>`). It is not a
/// gateway key: it calls no model, and no gateway key opens the console. A host may
/// deserialize it (`name`, `key`), which checks the key as a gateway key's is checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminKey {
    /// For the operator; never the key.
    pub name: String,
    /// Never printed; compared in constant time.
    #[serde(deserialize_with = "key_secret")]
    pub key: SecretString,
}

/// Limits and keys of the HTTP server.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub keys: Vec<GatewayKey>,
    /// Largest request body accepted; larger ones get 413. Images are inline base64, so
    /// this is generous.
    pub max_body_bytes: usize,
    /// The largest request head (request line and headers) a connection reads; a larger
    /// one is refused with 431 by hyper before any handler runs (HTTP/1: its read buffer,
    /// HTTP/2: `SETTINGS_MAX_HEADER_LIST_SIZE`). Between [`Self::MIN_MAX_HEADER_BYTES`] and
    /// [`Self::MAX_MAX_HEADER_BYTES`].
    pub max_header_bytes: usize,
    /// The most header lines a request may carry; more is 431.
    pub max_headers: usize,
    /// How long a client may take to send the request head (slowloris protection).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a whole chat body once its head arrived; past it
    /// the request gets 408 and the connection is closed.
    pub body_read_timeout: Duration,
    /// Connections open at once in the whole process (every runtime); a connection past it
    /// is closed as soon as it is accepted.
    pub max_connections: NonZeroUsize,
    /// Requests one HTTP/2 connection may run at once (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub max_streams_per_connection: NonZeroU32,
    /// Chat requests served at once, across every runtime of the process (a stream until
    /// its body ends or the client leaves); past it a chat gets 503 at once.
    pub max_concurrent_requests: NonZeroUsize,
    /// The upstream's retry counts, for `/metrics`; `None` leaves those metrics out.
    pub retry_counters: Option<Arc<dyn RetryCounters>>,
    /// The limits backend's failures, for `/metrics`; `None` (a backend that cannot fail,
    /// such as memory) leaves the metric out.
    pub limit_backend_errors: Option<Arc<dyn LimitBackendErrors>>,
    /// The trace exporter's failures, for `/metrics`; `None` (no exporter) leaves the
    /// metric out.
    pub trace_export_failures: Option<Arc<dyn TraceExportFailures>>,
    /// Send each chat's request id to Bedrock as the `requestMetadata` pair
    /// `gateway_request_id` (unless the client already sent Bedrock's 16 pairs).
    pub request_id_to_bedrock: bool,
    /// Chat spans carry the request body and the answer's text (`[telemetry]
    /// capture_content`); off by default, as prompts are the clients' data.
    pub capture_content: bool,
    /// The web console at `/console`; disabled (404) without admin keys, the default.
    pub console: ConsoleSettings,
}

impl HttpSettings {
    pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// Four times what browsers and SDKs send with large cookies and tracing headers, and
    /// far below hyper's own default (about 400 KiB), which let a 70 KB header through.
    pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
    /// hyper's smallest read buffer: it refuses (panics on) anything less.
    pub const MIN_MAX_HEADER_BYTES: usize = 8 * 1024;
    /// Beyond this a "head" is a way to make the gateway hold memory per connection.
    pub const MAX_MAX_HEADER_BYTES: usize = 1024 * 1024;
    /// hyper's own default, and Envoy's: no legitimate client comes near it.
    pub const DEFAULT_MAX_HEADERS: usize = 100;
    /// Long enough for a 32 MiB body over a slow link (about 9 Mbit/s), short enough that a
    /// client trickling a body cannot hold a slot for minutes.
    pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// Well under a default `ulimit -n` of 65536 with room for the upstream pools, and far
    /// above `max_concurrent_requests`, so idle keep-alive clients do not run into it first.
    pub const DEFAULT_MAX_CONNECTIONS: NonZeroUsize = match NonZeroUsize::new(4096) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    };
    /// What Envoy and most HTTP/2 servers advertise.
    pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: NonZeroU32 = match NonZeroU32::new(100) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    };
    /// Above what Bedrock's default quotas let one instance run at once, so it bites only
    /// when the gateway itself is flooded, and low enough to refuse a flood long before the
    /// process runs out of sockets or memory (each request may hold `max_body_bytes`).
    pub const DEFAULT_MAX_CONCURRENT_REQUESTS: NonZeroUsize = match NonZeroUsize::new(1024) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    };
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: Self::DEFAULT_MAX_HEADER_BYTES,
            max_headers: Self::DEFAULT_MAX_HEADERS,
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: Self::DEFAULT_BODY_READ_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_streams_per_connection: Self::DEFAULT_MAX_STREAMS_PER_CONNECTION,
            max_concurrent_requests: Self::DEFAULT_MAX_CONCURRENT_REQUESTS,
            retry_counters: None,
            limit_backend_errors: None,
            trace_export_failures: None,
            request_id_to_bedrock: false,
            capture_content: false,
            console: ConsoleSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let settings = HttpSettings {
            keys: vec![GatewayKey::new("team-a", "sk-very-secret".into())],
            ..HttpSettings::default()
        };
        let debug = format!("{settings:?}");
        assert!(debug.contains("team-a"), "{debug}");
        assert!(!debug.contains("sk-very-secret"), "{debug}");
    }

    #[test]
    fn deserialized_keys_are_checked_and_never_shown() {
        let key: GatewayKey =
            serde_json::from_value(serde_json::json!({"name": "a", "key": "sk-long-enough"}))
                .unwrap();
        assert!(!format!("{key:?}").contains("sk-long-enough"));
        for bad in ["short", "has white space"] {
            let error =
                serde_json::from_value::<GatewayKey>(serde_json::json!({"name": "a", "key": bad}))
                    .unwrap_err();
            assert_eq!(
                error.to_string(),
                "must be at least 8 characters with no white space"
            );
        }
    }

    #[test]
    fn limits_are_read_with_the_key_and_checked() {
        let key: GatewayKey = serde_json::from_value(serde_json::json!({
            "name": "a", "key": "sk-long-enough",
            "rpm": 600, "tpm": 200000, "budget_usd": 50.0, "budget_period": "30d"
        }))
        .unwrap();
        assert_eq!(
            key.limits(),
            KeyLimits {
                rpm: Some(600),
                tpm: Some(200_000),
                budget_usd: Some(50.0),
                budget_period: Some(Duration::from_secs(30 * 86_400)),
            }
        );
        let refused = |field: &str, value: serde_json::Value| {
            let mut key = serde_json::json!({"name": "a", "key": "sk-long-enough"});
            key[field] = value;
            serde_json::from_value::<GatewayKey>(key)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(refused("rpm", 0.into()), "must be greater than 0");
        assert_eq!(refused("tpm", 0.into()), "must be greater than 0");
        assert_eq!(
            refused("budget_usd", (-1.0).into()),
            "must be an amount of USD, at least 0"
        );
        assert_eq!(
            refused("budget_period", "0d".into()),
            "`0d` must be longer than 0"
        );
    }

    #[test]
    fn periods_are_whole_numbers_of_one_unit() {
        let day = 86_400;
        for (text, seconds) in [
            ("30d", Some(30 * day)),
            ("12h", Some(12 * 3600)),
            ("90m", Some(5400)),
            ("3600s", Some(3600)),
            ("never", None),
        ] {
            assert_eq!(
                parse_period(text),
                Ok(seconds.map(Duration::from_secs)),
                "{text}"
            );
        }
        for bad in [
            "",
            "d",
            "30",
            "1.5d",
            "-1d",
            "30 d",
            "1w",
            "30D",
            "99999999999999999999d",
        ] {
            assert!(parse_period(bad).is_err(), "{bad}");
        }
    }
}
