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
