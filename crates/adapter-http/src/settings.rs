//! What the operator configures about the HTTP side: gateway keys and limits.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use gateway_core::FinishReasonStyle;
use secrecy::SecretString;
use serde::de::{Deserializer, Error as _};
use serde::Deserialize;

use crate::RetryCounters;

/// A key clients send as `Authorization: Bearer <key>`. A host may deserialize it straight
/// from its configuration (`name`, `key`, `finish_reason_style`), which checks the key's shape.
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

/// Limits and keys of the HTTP server.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub keys: Vec<GatewayKey>,
    /// Largest request body accepted; larger ones get 413. Images are inline base64, so
    /// this is generous.
    pub max_body_bytes: usize,
    /// How long a client may take to send the request head (slowloris protection).
    pub header_read_timeout: Duration,
    /// Chat requests served at once, across every runtime of the process (a stream until
    /// its body ends or the client leaves); past it a chat gets 503 at once.
    pub max_concurrent_requests: NonZeroUsize,
    /// The upstream's retry counts, for `/metrics`; `None` leaves those metrics out.
    pub retry_counters: Option<Arc<dyn RetryCounters>>,
}

impl HttpSettings {
    pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
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
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            max_concurrent_requests: Self::DEFAULT_MAX_CONCURRENT_REQUESTS,
            retry_counters: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let settings = HttpSettings {
            keys: vec![GatewayKey {
                name: "team-a".into(),
                key: "sk-very-secret".into(),
                finish_reason_style: None,
                drop_unsupported_params: None,
            }],
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
}
