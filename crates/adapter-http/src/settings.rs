//! What the operator configures about the HTTP side: gateway keys and limits.

use std::fmt;
use std::time::Duration;

use gateway_core::FinishReasonStyle;

/// A key clients send as `Authorization: Bearer <key>`.
#[derive(Clone)]
pub struct GatewayKey {
    /// A name for logs and metrics; never the key.
    pub name: String,
    pub key: String,
    /// Overrides the account's finish-reason style for clients using this key.
    pub finish_reason_style: Option<FinishReasonStyle>,
}

impl fmt::Debug for GatewayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayKey")
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .field("finish_reason_style", &self.finish_reason_style)
            .finish()
    }
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
}

impl HttpSettings {
    pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
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
            }],
            ..HttpSettings::default()
        };
        let debug = format!("{settings:?}");
        assert!(debug.contains("team-a"), "{debug}");
        assert!(!debug.contains("sk-very-secret"), "{debug}");
    }
}
