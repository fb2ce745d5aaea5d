//! Bedrock error responses to [`ProviderError`].
//!
//! The exception name comes from the `x-amzn-ErrorType` header (`Kind:namespace`, the part
//! before `:`) or else the body's `__type` (`namespace#Kind`, the part after `#`); the
//! message from the body's `message` or `Message`. The kind decides the error; where it is
//! missing or unknown, the HTTP status does (see [`BedrockErrorResponse::into_provider_error`]
//! for the table).
//!
//! Messages reach clients, so they are bounded and, for credential errors, cut at the first
//! line: AWS's signature-mismatch message goes on to quote the canonical request, which
//! holds the session token.

use std::fmt;

use gateway_core::ProviderError;
use http::{HeaderMap, StatusCode};

use crate::wire::ErrorBody;

/// The longest upstream message passed on, in bytes.
const MAX_MESSAGE_BYTES: usize = 1024;

/// One Bedrock error answer, parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct BedrockErrorResponse {
    pub status: StatusCode,
    /// The exception name, e.g. `ThrottlingException`, when the answer named one.
    pub kind: Option<String>,
    /// Bedrock's message, bounded; `None` when the body had none or was not Bedrock JSON.
    pub message: Option<String>,
    pub body: ErrorBodyKind,
}

/// What an error answer's body was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorBodyKind {
    /// Bedrock's error JSON.
    Json,
    Empty,
    /// Anything else: HTML from a proxy, truncated JSON, text.
    NotJson,
}

impl fmt::Debug for BedrockErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BedrockErrorResponse")
            .field("status", &self.status)
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("body", &self.body)
            .finish()
    }
}

impl BedrockErrorResponse {
    /// Reads an error answer's status, headers and body.
    pub fn parse(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let parsed_body = serde_json::from_slice::<ErrorBody>(body).ok();
        let header_kind = headers
            .get("x-amzn-errortype")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(':').next())
            .map(str::trim)
            .filter(|kind| !kind.is_empty());
        let body_kind = parsed_body
            .as_ref()
            .and_then(|body| body.error_type.as_deref())
            .map(|value| value.rsplit('#').next().unwrap_or(value))
            // `__type` may carry a namespace after `:` too.
            .and_then(|value| value.split(':').next())
            .map(str::trim)
            .filter(|kind| !kind.is_empty());
        let message = parsed_body
            .as_ref()
            .and_then(ErrorBody::message)
            .map(bounded);
        Self {
            status,
            kind: header_kind.or(body_kind).map(str::to_owned),
            message,
            body: match parsed_body {
                Some(_) => ErrorBodyKind::Json,
                None if body.trim_ascii().is_empty() => ErrorBodyKind::Empty,
                None => ErrorBodyKind::NotJson,
            },
        }
    }

    /// True when Bedrock said the credentials expired: worth refreshing them and retrying
    /// once.
    pub fn is_expired_token(&self) -> bool {
        is_expired_token(self.kind.as_deref())
    }

    /// The domain error for this answer, naming `account` where credentials are at fault.
    ///
    /// | kind | error |
    /// |---|---|
    /// | `AccessDenied`, `UnrecognizedClient`, `InvalidSignature`, `ExpiredToken`, `IncompleteSignature`, `MissingAuthenticationToken`, `InvalidClientTokenId` | `Unauthorized` |
    /// | `Throttling`, `ServiceQuotaExceeded`, `ModelNotReady`, `TooManyRequests` | `Throttled` |
    /// | `ModelTimeout` | `Timeout` |
    /// | `ModelError`, `ModelStreamError` | `ModelError` |
    /// | `ServiceUnavailable` | `Unavailable` |
    /// | `InternalServer`, `InternalFailure` | `Upstream` |
    /// | `ResourceNotFound` | `NotFound` |
    /// | `Validation`, `Serialization`, `Conflict` | `InvalidRequest`, with Bedrock's message |
    /// | unknown or missing | by status: 401/403 `Unauthorized`, 404 `NotFound`, 408 `Timeout`, 429 `Throttled`, 503 `Unavailable`, other 4xx with a Bedrock message `InvalidRequest`, anything else (5xx, unparseable) `Upstream` |
    pub fn into_provider_error(self, account: &str) -> ProviderError {
        let class = self
            .kind
            .as_deref()
            .and_then(classify_kind)
            .unwrap_or_else(|| classify_status(self.status, self.message.is_some()));
        let message = self.message_for(class);
        match class {
            Class::Unauthorized => ProviderError::Unauthorized {
                account: account.to_owned(),
                message,
            },
            Class::Throttled => ProviderError::Throttled { message },
            Class::Timeout => ProviderError::Timeout { message },
            Class::ModelError => ProviderError::ModelError { message },
            Class::Unavailable => ProviderError::Unavailable { message },
            Class::NotFound => ProviderError::NotFound { message },
            Class::InvalidRequest => ProviderError::InvalidRequest { message },
            Class::Upstream => ProviderError::Upstream { message },
        }
    }

    fn message_for(&self, class: Class) -> String {
        let status = self.status.as_u16();
        match (&self.message, &self.kind, self.body) {
            (Some(message), _, _) if class == Class::Unauthorized => first_line(message).to_owned(),
            (Some(message), _, _) => message.clone(),
            (None, Some(kind), _) => format!("Bedrock answered HTTP {status} {kind}"),
            (None, None, ErrorBodyKind::Json) => {
                format!("Bedrock answered HTTP {status} without an error message")
            }
            (None, None, ErrorBodyKind::Empty) => {
                format!("Bedrock answered HTTP {status} with an empty body")
            }
            (None, None, ErrorBodyKind::NotJson) => format!(
                "Bedrock answered HTTP {status} with a body that is not Bedrock's error JSON"
            ),
        }
    }
}

/// The error for a Bedrock answer with a non-success status; `account` is named where the
/// account's credentials are at fault.
pub fn provider_error(
    account: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> ProviderError {
    BedrockErrorResponse::parse(status, headers, body).into_provider_error(account)
}

/// True for the exception names that mean "these credentials expired".
pub fn is_expired_token(kind: Option<&str>) -> bool {
    matches!(
        kind,
        Some("ExpiredTokenException" | "ExpiredToken" | "TokenRefreshRequired")
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Unauthorized,
    Throttled,
    Timeout,
    ModelError,
    Unavailable,
    Upstream,
    NotFound,
    InvalidRequest,
}

fn classify_kind(kind: &str) -> Option<Class> {
    let base = kind.strip_suffix("Exception").unwrap_or(kind);
    Some(match base {
        "AccessDenied"
        | "UnrecognizedClient"
        | "InvalidSignature"
        | "ExpiredToken"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "InvalidClientTokenId"
        | "TokenRefreshRequired" => Class::Unauthorized,
        "Throttling" | "ServiceQuotaExceeded" | "ModelNotReady" | "TooManyRequests" => {
            Class::Throttled
        }
        "ModelTimeout" => Class::Timeout,
        "ModelError" | "ModelStreamError" => Class::ModelError,
        "ServiceUnavailable" => Class::Unavailable,
        "InternalServer" | "InternalFailure" => Class::Upstream,
        "ResourceNotFound" => Class::NotFound,
        "Validation" | "Serialization" | "Conflict" => Class::InvalidRequest,
        _ => return None,
    })
}

fn classify_status(status: StatusCode, has_bedrock_message: bool) -> Class {
    match status.as_u16() {
        401 | 403 => Class::Unauthorized,
        404 => Class::NotFound,
        408 => Class::Timeout,
        429 => Class::Throttled,
        503 => Class::Unavailable,
        400..=499 if has_bedrock_message => Class::InvalidRequest,
        _ => Class::Upstream,
    }
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or_default().trim_end()
}

fn bounded(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_MESSAGE_BYTES + "…".len());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn signature_mismatch_details_are_not_passed_on() {
        let body = br#"{"message":"The request signature we calculated does not match the signature you provided.\n\nThe Canonical String for this request should have been\n'POST\nx-amz-security-token:FwoGZXIvSECRET'"}"#;
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amzn-errortype",
            http::HeaderValue::from_static("InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/"),
        );
        let err = provider_error("acct", StatusCode::FORBIDDEN, &headers, body);
        assert_eq!(
            err,
            ProviderError::Unauthorized {
                account: "acct".into(),
                message:
                    "The request signature we calculated does not match the signature you provided."
                        .into()
            }
        );
    }
}
