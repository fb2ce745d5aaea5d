//! Request authentication: SigV4 (signing name `bedrock`) or a Bedrock API key.
//!
//! SigV4 uses `aws-sigv4`'s default settings: the canonical URI is the request path encoded
//! once more (`%3A` becomes `%253A`), which every AWS service but S3 expects and every model
//! id with a `:` depends on. The signed headers are exactly `content-type`, `host`,
//! `x-amz-date` and, with temporary credentials, `x-amz-security-token`; headers a request
//! gains later (`accept`, `content-length`, `user-agent`) stay unsigned, so proxies and the
//! HTTP stack can set them freely. The time comes from a [`SharedClock`], so tests sign
//! deterministically.

use std::fmt;

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use gateway_core::clock::SharedClock;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Request};
use thiserror::Error;

use crate::credentials::RequestAuth;

/// SigV4 signing name of Bedrock Runtime (not its endpoint prefix `bedrock-runtime`).
pub const SIGNING_NAME: &str = "bedrock";

/// Why a request could not be authenticated. Never carries a credential.
#[derive(Debug, Error)]
pub enum SigningError {
    #[error("could not sign the request: {0}")]
    Sign(String),
    #[error("the API key is not a valid HTTP header value")]
    InvalidApiKey,
}

/// Adds authentication headers to requests.
#[derive(Clone)]
pub struct Signer {
    clock: SharedClock,
    /// Built once: `SigningSettings::default()` allocates its excluded-header list.
    settings: SigningSettings,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(clock: SharedClock) -> Self {
        let mut settings = SigningSettings::default();
        // Only the headers chosen below are ever handed to the signer, so the default
        // exclusion list (authorization, user-agent, ...) has nothing to exclude; dropping it
        // makes the per-request clone free. Encoding and normalization stay the defaults.
        settings.excluded_headers = None;
        Self { clock, settings }
    }

    /// Authenticates `request`, whose URI must be absolute. `host` is the `Host` value the
    /// HTTP client will send (the URI's host, with the port unless it is the scheme's
    /// default); `body` is the exact body. Adds `authorization`, and for SigV4 `x-amz-date`
    /// and `x-amz-security-token` when the credentials carry a session token.
    pub fn authorize<B>(
        &self,
        auth: &RequestAuth,
        region: &str,
        host: &str,
        request: &mut Request<B>,
        body: &[u8],
    ) -> Result<(), SigningError> {
        match auth {
            RequestAuth::Bearer(key) => {
                let mut value = HeaderValue::try_from(format!("Bearer {key}"))
                    .map_err(|_| SigningError::InvalidApiKey)?;
                value.set_sensitive(true);
                request.headers_mut().insert(AUTHORIZATION, value);
                Ok(())
            }
            RequestAuth::SigV4(credentials) => {
                let identity = Identity::from(credentials.clone());
                let params = v4::SigningParams::builder()
                    .identity(&identity)
                    .region(region)
                    .name(SIGNING_NAME)
                    .time(self.clock.now())
                    .settings(self.settings.clone())
                    .build()
                    .map_err(|error| SigningError::Sign(error.to_string()))?
                    .into();
                let uri = request.uri().to_string();
                let content_type = request
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|value| value.to_str().ok());
                let headers = std::iter::once(("host", host))
                    .chain(content_type.map(|value| ("content-type", value)));
                let signable = SignableRequest::new(
                    request.method().as_str(),
                    uri,
                    headers,
                    SignableBody::Bytes(body),
                )
                .map_err(|error| SigningError::Sign(error.to_string()))?;
                let (instructions, _signature) = sign(signable, &params)
                    .map_err(|error| SigningError::Sign(error.to_string()))?
                    .into_parts();
                let (new_headers, _query) = instructions.into_parts();
                for header in new_headers {
                    let name = HeaderName::from_static(header.name());
                    let mut value = HeaderValue::from_str(header.value()).map_err(|_| {
                        SigningError::Sign(format!("the signer produced an invalid `{name}`"))
                    })?;
                    value.set_sensitive(header.sensitive() || name == AUTHORIZATION);
                    request.headers_mut().insert(name, value);
                }
                Ok(())
            }
        }
    }
}

/// The `Host` header value HTTP clients send for `uri`: the host, plus the port when it is
/// not the scheme's default.
pub fn host_header_value(uri: &http::Uri) -> Option<String> {
    let host = uri.host()?;
    let default_port = match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    };
    Some(match uri.port_u16() {
        Some(port) if Some(port) != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use gateway_core::clock::FixedClock;
    use std::sync::Arc;

    #[test]
    fn host_values_drop_default_ports_only() {
        let cases = [
            (
                "https://bedrock-runtime.us-east-1.amazonaws.com/x",
                "bedrock-runtime.us-east-1.amazonaws.com",
            ),
            ("https://example.com:443/x", "example.com"),
            ("http://127.0.0.1:80/x", "127.0.0.1"),
            ("http://127.0.0.1:9100/x", "127.0.0.1:9100"),
            ("https://example.com:8443", "example.com:8443"),
        ];
        for (uri, expected) in cases {
            let uri: http::Uri = uri.parse().unwrap();
            assert_eq!(host_header_value(&uri).as_deref(), Some(expected), "{uri}");
        }
    }

    #[test]
    fn bearer_keys_are_sent_as_is_and_marked_sensitive() {
        let signer = Signer::new(SharedClock::new(FixedClock::at_unix(0)));
        let mut request = Request::post("https://example.com/x").body(()).unwrap();
        signer
            .authorize(
                &RequestAuth::Bearer(Arc::from("bedrock-api-key-123")),
                "us-east-1",
                "example.com",
                &mut request,
                b"{}",
            )
            .unwrap();
        let value = &request.headers()[AUTHORIZATION];
        assert_eq!(value, "Bearer bedrock-api-key-123");
        assert!(value.is_sensitive());
        assert!(!request.headers().contains_key("x-amz-date"));
    }

    #[test]
    fn signing_errors_never_show_the_secret() {
        let signer = Signer::new(SharedClock::new(FixedClock::at_unix(0)));
        let mut request = Request::post("https://example.com/x").body(()).unwrap();
        let credentials = Credentials::new(
            "AKID",
            "SECRETSECRET",
            Some("bad\ntoken".into()),
            None,
            "test",
        );
        let err = signer
            .authorize(
                &RequestAuth::SigV4(credentials),
                "us-east-1",
                "example.com",
                &mut request,
                b"{}",
            )
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("SECRETSECRET") && !err.contains("bad\ntoken"),
            "{err}"
        );
    }
}
