//! Anthropic's error shape: `{"type": "error", "error": {"type", "message"}}`.
//!
//! The status and message are the gateway's own (the one table in [`crate::error`]); the
//! `type` is Anthropic's name for that status, which Anthropic SDKs map to their exception
//! classes. A shed request is `overloaded_error` under 503 (Anthropic answers 529, which
//! proxies and load balancers in front of the gateway would not understand).

use http::StatusCode;
use serde::Serialize;

use crate::error::ApiError;

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    error_type: &'static str,
    message: &'a str,
}

/// Anthropic's error `type` for `error`.
pub(crate) fn error_type(error: &ApiError) -> &'static str {
    match error.status {
        StatusCode::UNAUTHORIZED => "authentication_error",
        StatusCode::FORBIDDEN => "permission_error",
        StatusCode::NOT_FOUND => "not_found_error",
        StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
        StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
        StatusCode::SERVICE_UNAVAILABLE if error.code == "overloaded" => "overloaded_error",
        status if status.is_server_error() => "api_error",
        _ => "invalid_request_error",
    }
}

/// `error`'s body in Anthropic's shape.
pub(crate) fn anthropic_error_json(error: &ApiError) -> Vec<u8> {
    let envelope = Envelope {
        kind: "error",
        error: Body {
            error_type: error_type(error),
            message: &error.message,
        },
    };
    let mut out = Vec::with_capacity(64 + error.message.len());
    // Writing plain strings into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &envelope);
    out
}

#[cfg(test)]
mod tests {
    use gateway_core::ProviderError;
    use serde_json::Value;

    use super::*;

    #[test]
    fn each_status_has_anthropics_error_type() {
        let message = || "m".to_owned();
        let cases = [
            (ApiError::unauthorized(), "authentication_error"),
            (ApiError::body_too_large(10), "request_too_large"),
            (ApiError::overloaded(), "overloaded_error"),
            (ApiError::body_unreadable(), "invalid_request_error"),
            (
                ApiError::unknown_url(&http::Method::POST, "/v1/x"),
                "not_found_error",
            ),
            (
                ApiError::from_provider(&ProviderError::Throttled { message: message() }),
                "rate_limit_error",
            ),
            (
                ApiError::from_provider(&ProviderError::Unavailable { message: message() }),
                "api_error",
            ),
            (
                ApiError::from_provider(&ProviderError::ModelError { message: message() }),
                "api_error",
            ),
            (
                ApiError::from_provider(&ProviderError::InvalidRequest { message: message() }),
                "invalid_request_error",
            ),
        ];
        for (error, expected) in cases {
            let body: Value = serde_json::from_slice(&anthropic_error_json(&error)).unwrap();
            assert_eq!(body["type"], "error");
            assert_eq!(body["error"]["type"], expected, "{error:?}");
            assert_eq!(body["error"]["message"], error.message.as_str());
        }
    }
}
