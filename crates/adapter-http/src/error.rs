//! The one place that turns failures into OpenAI error JSON and HTTP statuses.
//!
//! | failure | status | `type` | `code` |
//! |---|---|---|---|
//! | body is not JSON | 400 | `invalid_request_error` | `invalid_json` |
//! | a field is missing / has the wrong type / a bad value / is unsupported | 400 | `invalid_request_error` | `missing_required_parameter` / `invalid_type` / `invalid_value` / `unsupported_value` (`param` = field path) |
//! | an unknown top-level field | 400 | `invalid_request_error` | `unknown_parameter` (`param` = the field) |
//! | an OpenAI parameter Bedrock cannot honour (`seed`, `n` > 1, ...), not dropped by configuration | 400 | `invalid_request_error` | `unsupported_parameter` (`param` = the parameter) |
//! | the model cannot do what a feature asks (reasoning, response format, cache points, ...) | 400 | `invalid_request_error` | `unsupported_value` (`param` = the feature's field, see [`feature_param`]) |
//! | no or wrong gateway key | 401 | `invalid_request_error` | `invalid_api_key` |
//! | unknown or malformed model name | 404 | `invalid_request_error` | `model_not_found` |
//! | guardrail policy refuses `guardrailConfig` | 400 | `invalid_request_error` | `guardrail_enforced` / `guardrail_not_allowed` |
//! | guardrail check: the guardrail is not configured for checks (by name, or by identifier and version) | 404 | `invalid_request_error` | `guardrail_not_found` (`param` = `guardrail`) |
//! | guardrail check: the key may not use the guardrail | 403 | `invalid_request_error` | `guardrail_not_allowed` (`param` = `guardrail`) |
//! | guardrail check: empty `content` | 400 | `invalid_request_error` | `invalid_value` (`param` = `content`) |
//! | unknown path | 404 | `invalid_request_error` | `unknown_url` |
//! | `/console...` while the console has no admin keys | 404 | `invalid_request_error` | `console_disabled` |
//! | the console's API without a valid admin key | 401 | `invalid_request_error` | `invalid_admin_key` |
//! | the console's API with a bad query parameter | 400 | `invalid_request_error` | `invalid_value` (`param` = the parameter) |
//! | wrong method | 405 | `invalid_request_error` | `method_not_allowed` |
//! | body over the limit | 413 | `invalid_request_error` | `request_too_large` |
//! | more header lines than `max_headers` (HTTP/2; hyper answers HTTP/1 itself) | 431 | `invalid_request_error` | `request_header_fields_too_large` |
//! | the body did not arrive within `body_read_timeout_ms` | 408 + `connection: close` | `invalid_request_error` | `request_timeout` |
//! | ambiguous `Content-Length` / `Transfer-Encoding` (smuggling shapes hyper lets through) | 400 + `connection: close` | `invalid_request_error` | `invalid_framing` |
//! | too many chat requests in flight (load shedding) | 503 + `retry-after` | `server_error` | `overloaded` |
//! | the gateway key is over its `rpm` / `tpm` | 429 + `retry-after` (when the limit frees up) | `requests` / `tokens` | `rate_limit_exceeded` |
//! | the gateway key spent its `budget_usd` | 429 (+ `retry-after` when the period ends, if it has one) | `insufficient_quota` | `insufficient_quota` |
//! | the limits backend failed and `on_backend_error = "deny"` | 503 + `retry-after` | `server_error` | `limits_unavailable` |
//! | not ready (`GET /ready`: an account's credentials unusable); not an OpenAI error, see [`NOT_READY`] | 503 | | |
//! | Bedrock `ValidationException` | 400 | `invalid_request_error` | `upstream_validation_error` |
//! | the provider cannot take the turn order (e.g. assistant first) | 400 | `invalid_request_error` | `invalid_value` (`param` = `messages[i].role`, the client's index) |
//! | Bedrock throttling / quota | 429 + `retry-after` | `rate_limit_error` | `rate_limit_exceeded` |
//! | Bedrock refused the operator's AWS credentials | 502 | `server_error` | `upstream_unauthorized` |
//! | AWS credentials could not be obtained | 502 | `server_error` | `credentials_unavailable` |
//! | Bedrock resource not found | 404 | `invalid_request_error` | `upstream_not_found` |
//! | model or connection timeout | 504 | `server_error` | `upstream_timeout` |
//! | model failed | 502 | `server_error` | `model_error` |
//! | Bedrock unavailable | 503 + `retry-after` | `server_error` | `upstream_unavailable` |
//! | Bedrock internal error | 502 | `server_error` | `upstream_error` |
//! | Bedrock answered garbage | 502 | `server_error` | `upstream_protocol_error` |
//!
//! Upstream credential failures are 502, never 401: OpenAI SDKs read 401 as "your API key is
//! wrong", and these are the operator's AWS credentials, not the client's key.

use std::borrow::Cow;

use std::time::Duration;

use gateway_core::{GatewayError, GuardrailCheckError, LimitKind, ProviderError, RequestFeature};
use http::StatusCode;
use serde::Serialize;

use crate::openai::request::{FieldErrorCode, MessagePositions, RequestError};

const INVALID_REQUEST: &str = "invalid_request_error";
const SERVER_ERROR: &str = "server_error";
const RATE_LIMIT: &str = "rate_limit_error";

/// Seconds clients should wait before retrying a throttled or unavailable upstream, or a
/// gateway shedding load; Bedrock does not say, and OpenAI SDKs honour this header over
/// their own backoff.
const RETRY_AFTER_SECONDS: u64 = 1;

/// `GET /ready` when the host reported an account unusable; the body is readiness's own
/// (`{"status":"not_ready","accounts":{...}}`), for probes rather than OpenAI clients.
pub(crate) const NOT_READY: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

/// An error answer: status, OpenAI error body and retry hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) error_type: &'static str,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) param: Option<Cow<'static, str>>,
    /// Whole seconds for the `retry-after` header.
    pub(crate) retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    error_type: &'a str,
    code: &'a str,
    param: Option<&'a str>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        error_type: &'static str,
        code: &'static str,
        message: String,
    ) -> Self {
        Self {
            status,
            error_type,
            code,
            message,
            param: None,
            retry_after: None,
        }
    }

    fn with_param(mut self, param: impl Into<Cow<'static, str>>) -> Self {
        self.param = Some(param.into());
        self
    }

    fn with_retry_after(mut self) -> Self {
        self.retry_after = Some(RETRY_AFTER_SECONDS);
        self
    }

    /// `retry-after` in whole seconds, rounded up: a client retrying then is admitted.
    fn retrying_in(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait.map(|wait| wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        self
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            INVALID_REQUEST,
            "invalid_api_key",
            "missing or invalid gateway key: send `Authorization: Bearer <key>` or `x-api-key: <key>`".into(),
        )
    }

    pub(crate) fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            INVALID_REQUEST,
            "request_too_large",
            format!("the request body is larger than the gateway's limit of {limit} bytes"),
        )
    }

    pub(crate) fn body_unreadable() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "invalid_body",
            "the request body could not be read".into(),
        )
    }

    /// More header lines than `max_headers` (hyper refuses most before the handler; HTTP/2
    /// heads are counted here).
    pub(crate) fn too_many_headers(limit: usize) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            INVALID_REQUEST,
            "request_header_fields_too_large",
            format!("the request has more than the gateway's limit of {limit} header lines"),
        )
    }

    /// The body did not arrive within `body_read_timeout_ms`.
    pub(crate) fn body_timeout(timeout: Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            INVALID_REQUEST,
            "request_timeout",
            format!(
                "the request body did not arrive within {} ms",
                timeout.as_millis()
            ),
        )
    }

    /// `Content-Length` / `Transfer-Encoding` that two servers could read differently (the
    /// shapes of request smuggling).
    pub(crate) fn ambiguous_framing() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "invalid_framing",
            "the request's Content-Length or Transfer-Encoding is ambiguous: send one \
             Content-Length of digits, or `Transfer-Encoding: chunked` alone"
                .into(),
        )
    }

    /// The gateway sheds load: a server error the client may retry shortly, like an
    /// unavailable upstream but with its own code, so the client (and whoever reads its logs)
    /// can tell the gateway's limit from Bedrock's.
    pub(crate) fn overloaded() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            SERVER_ERROR,
            "overloaded",
            "the gateway has too many requests in flight; retry shortly".into(),
        )
        .with_retry_after()
    }

    pub(crate) fn unknown_url(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            INVALID_REQUEST,
            "unknown_url",
            format!("unknown URL ({method} {path})"),
        )
    }

    /// Any `/console` URL while no admin key is configured.
    pub(crate) fn console_disabled() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            INVALID_REQUEST,
            "console_disabled",
            "the console is disabled: set [console] admin_keys (docs/console.md)".into(),
        )
    }

    /// The console's API without an admin key it knows (a gateway key is not one).
    pub(crate) fn invalid_admin_key() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            INVALID_REQUEST,
            "invalid_admin_key",
            "missing or invalid admin key: send `Authorization: Bearer <admin key>` \
             (a [console] admin key, not a gateway key)"
                .into(),
        )
    }

    /// A query parameter of the console's API out of its range.
    pub(crate) fn invalid_query(param: &'static str, message: String) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            FieldErrorCode::InvalidValue.as_str(),
            message,
        )
        .with_param(param)
    }

    pub(crate) fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            INVALID_REQUEST,
            "method_not_allowed",
            format!("{path} does not accept {method}"),
        )
    }

    pub(crate) fn from_request(error: RequestError) -> Self {
        let message = error.to_string();
        match error {
            RequestError::InvalidJson(_) => Self::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "invalid_json",
                message,
            ),
            RequestError::Field { param, code, .. } => Self::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                code.as_str(),
                message,
            )
            .with_param(param),
            RequestError::UnknownParameter { param } => Self::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                FieldErrorCode::UnknownParameter.as_str(),
                message,
            )
            .with_param(param),
        }
    }

    /// A conversation the provider cannot take in this order: worded like the parser's field
    /// errors, since it is about a field the client sent and can fix.
    fn turn_order(list: &str, client_index: usize, message: &str) -> Self {
        let param = format!("{list}[{client_index}].role");
        Self::new(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            FieldErrorCode::InvalidValue.as_str(),
            format!("{param}: {message}"),
        )
        .with_param(param)
    }

    /// `positions` reports a provider's message index as the index the client sent.
    pub(crate) fn from_gateway(error: &GatewayError, positions: &MessagePositions) -> Self {
        match error {
            // OpenAI answers 404 `model_not_found` for any model it cannot serve, whatever
            // the reason (unknown, malformed, or one a later version adds).
            GatewayError::Route(route) => Self::new(
                StatusCode::NOT_FOUND,
                INVALID_REQUEST,
                "model_not_found",
                route.to_string(),
            )
            .with_param("model"),
            GatewayError::Guardrail(policy) => Self::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                policy.code(),
                policy.to_string(),
            )
            .with_param("guardrailConfig"),
            GatewayError::Provider(ProviderError::TurnOrder {
                message_index,
                message,
            }) => Self::turn_order(
                positions.list(),
                positions.openai_index(*message_index),
                message,
            ),
            GatewayError::Provider(provider) => Self::from_provider(provider),
            // Core's backstop behind this door's own checks (which name the client's path):
            // its paths are the domain's, with message indices made the client's.
            GatewayError::InvalidRequest(limit) => {
                let param = client_path(&limit.path, positions);
                Self::new(
                    StatusCode::BAD_REQUEST,
                    INVALID_REQUEST,
                    FieldErrorCode::InvalidValue.as_str(),
                    format!("{param}: {}", limit.message),
                )
                .with_param(param)
            }
            // Found before any call: the client named a model of the other kind.
            GatewayError::WrongModelKind { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "model_not_supported",
                error.to_string(),
            )
            .with_param("model"),
            GatewayError::UnsupportedParameter { param } => Self::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "unsupported_parameter",
                error.to_string(),
            )
            .with_param(param.clone()),
            // OpenAI's own answers: the limit's kind as the type for rate limits, and
            // `insufficient_quota` for a spent budget.
            GatewayError::RateLimited {
                kind, retry_after, ..
            } => {
                let (error_type, code) = match kind {
                    LimitKind::Requests => ("requests", "rate_limit_exceeded"),
                    LimitKind::Tokens => ("tokens", "rate_limit_exceeded"),
                    LimitKind::Budget => ("insufficient_quota", "insufficient_quota"),
                    // A limit this adapter does not know yet is still a rate limit.
                    _ => (RATE_LIMIT, "rate_limit_exceeded"),
                };
                Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    error_type,
                    code,
                    error.to_string(),
                )
                .retrying_in(*retry_after)
            }
            GatewayError::LimitsUnavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER_ERROR,
                "limits_unavailable",
                error.to_string(),
            )
            .with_retry_after(),
            GatewayError::GuardrailCheck(check) => {
                let (status, param) = match check {
                    GuardrailCheckError::UnknownGuardrail { .. }
                    | GuardrailCheckError::NotConfigured { .. } => {
                        (StatusCode::NOT_FOUND, Some("guardrail"))
                    }
                    GuardrailCheckError::NotAllowed { .. } => {
                        (StatusCode::FORBIDDEN, Some("guardrail"))
                    }
                    GuardrailCheckError::EmptyContent => (StatusCode::BAD_REQUEST, Some("content")),
                    // The host wired no checker: the gateway's fault, not the client's.
                    _ => (StatusCode::SERVICE_UNAVAILABLE, None),
                };
                let error_type = if status.is_server_error() {
                    SERVER_ERROR
                } else {
                    INVALID_REQUEST
                };
                let api = Self::new(status, error_type, check.code(), check.to_string());
                match param {
                    Some(param) => api.with_param(param),
                    None => api,
                }
            }
            // A failure kind this adapter does not know yet: the gateway's own fault until it
            // is mapped here.
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                SERVER_ERROR,
                "internal_error",
                other.to_string(),
            ),
        }
    }

    pub(crate) fn from_provider(error: &ProviderError) -> Self {
        let message = error.to_string();
        match error {
            ProviderError::InvalidRequest { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "upstream_validation_error",
                message,
            ),
            ProviderError::Unsupported { feature, .. } => {
                let api = Self::new(
                    StatusCode::BAD_REQUEST,
                    INVALID_REQUEST,
                    FieldErrorCode::Unsupported.as_str(),
                    message,
                );
                match feature_param(*feature) {
                    Some(param) => api.with_param(param),
                    None => api,
                }
            }
            // Without the client's message positions (see `from_gateway`) the index is the
            // domain's.
            ProviderError::TurnOrder {
                message_index,
                message,
            } => Self::turn_order("messages", *message_index, message),
            ProviderError::Throttled { .. } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                RATE_LIMIT,
                "rate_limit_exceeded",
                message,
            )
            .with_retry_after(),
            ProviderError::Unauthorized { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                SERVER_ERROR,
                "upstream_unauthorized",
                message,
            ),
            ProviderError::Credentials { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                SERVER_ERROR,
                "credentials_unavailable",
                message,
            ),
            ProviderError::NotFound { .. } => Self::new(
                StatusCode::NOT_FOUND,
                INVALID_REQUEST,
                "upstream_not_found",
                message,
            ),
            ProviderError::Timeout { .. } => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                SERVER_ERROR,
                "upstream_timeout",
                message,
            ),
            ProviderError::ModelError { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                SERVER_ERROR,
                "model_error",
                message,
            ),
            ProviderError::Unavailable { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER_ERROR,
                "upstream_unavailable",
                message,
            )
            .with_retry_after(),
            ProviderError::Upstream { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                SERVER_ERROR,
                "upstream_error",
                message,
            ),
            ProviderError::Protocol { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                SERVER_ERROR,
                "upstream_protocol_error",
                message,
            ),
            // A provider failure kind this adapter does not know yet: reported like any
            // upstream failure, under its own kind in the logs and metrics.
            _ => Self::new(
                StatusCode::BAD_GATEWAY,
                SERVER_ERROR,
                "upstream_error",
                message,
            ),
        }
    }

    /// `{"error":{"message","type","code","param"}}`.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        let envelope = Envelope {
            error: Body {
                message: &self.message,
                error_type: self.error_type,
                code: self.code,
                param: self.param.as_deref(),
            },
        };
        // Writing plain strings into a Vec cannot fail.
        let _ = serde_json::to_writer(out, &envelope);
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.message.len());
        self.write_json(&mut out);
        out
    }
}

/// The request field through which the client asked for `feature`, in OpenAI's terms where
/// OpenAI has one and Bedrock's where the client used Bedrock's name.
fn feature_param(feature: RequestFeature) -> Option<&'static str> {
    Some(match feature {
        RequestFeature::Reasoning => "reasoning_effort",
        RequestFeature::ResponseFormat => "response_format",
        RequestFeature::CachePoint => "cache_control",
        RequestFeature::Document => "file",
        RequestFeature::ServiceTier => "service_tier",
        RequestFeature::Latency => "performanceConfig",
        RequestFeature::RequestMetadata => "requestMetadata",
        RequestFeature::AdditionalResponseFields => "additionalModelResponseFieldPaths",
        RequestFeature::EmbeddingDimensions => "dimensions",
        RequestFeature::EmbeddingNormalize => "normalize",
        RequestFeature::EmbeddingInputType => "input_type",
        // A feature this adapter does not know yet: the message still says what failed.
        _ => return None,
    })
}

/// A domain path (`messages[2].content[0]`) with the message index the client sent.
fn client_path(path: &str, positions: &MessagePositions) -> String {
    let index = path
        .strip_prefix("messages[")
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(index, rest)| Some((index.parse::<usize>().ok()?, rest)));
    match index {
        Some((index, rest)) => format!(
            "{}[{}]{rest}",
            positions.list(),
            positions.openai_index(index)
        ),
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::{GuardrailPolicyError, LimitState, Remaining, RouteError};

    const EVERY_FEATURE: [RequestFeature; 8] = [
        RequestFeature::Reasoning,
        RequestFeature::ResponseFormat,
        RequestFeature::CachePoint,
        RequestFeature::Document,
        RequestFeature::ServiceTier,
        RequestFeature::Latency,
        RequestFeature::RequestMetadata,
        RequestFeature::AdditionalResponseFields,
    ];

    fn every_provider_error() -> Vec<ProviderError> {
        let message = || "upstream said no".to_string();
        let mut errors = vec![
            ProviderError::InvalidRequest { message: message() },
            ProviderError::TurnOrder {
                message_index: 0,
                message: message(),
            },
            ProviderError::Unauthorized {
                account: "internal-bedrock".into(),
                message: message(),
            },
            ProviderError::Credentials {
                account: "internal-bedrock".into(),
                message: message(),
            },
            ProviderError::NotFound { message: message() },
            ProviderError::Throttled { message: message() },
            ProviderError::Timeout { message: message() },
            ProviderError::ModelError { message: message() },
            ProviderError::Unavailable { message: message() },
            ProviderError::Upstream { message: message() },
            ProviderError::Protocol { message: message() },
        ];
        errors.extend(EVERY_FEATURE.map(|feature| ProviderError::Unsupported {
            feature,
            message: format!("the model cannot do {feature:?}"),
        }));
        errors
    }

    fn limit_state() -> LimitState {
        LimitState {
            requests: Some(Remaining {
                limit: 600,
                remaining: 0,
            }),
            tokens: Some(Remaining {
                limit: 200_000,
                remaining: 0,
            }),
            budget_remaining_micros: Some(0),
        }
    }

    fn row(name: &str, error: &ApiError) -> String {
        format!(
            "{name:<24} {} retry-after={:<4} {}\n",
            error.status.as_u16(),
            error.retry_after.map_or("-".to_owned(), |s| s.to_string()),
            String::from_utf8_lossy(&error.to_json())
        )
    }

    #[test]
    fn every_gateway_error_maps_to_a_status_and_openai_body() {
        let mut table = String::new();
        for provider in every_provider_error() {
            table.push_str(&row(provider.kind(), &ApiError::from_provider(&provider)));
        }
        let domain = [
            GatewayError::Route(RouteError::UnknownModel("acct/nope".into())),
            GatewayError::Route(RouteError::MalformedName("claude".into())),
            GatewayError::Guardrail(GuardrailPolicyError::ClientGuardrailsDisallowed),
            GatewayError::Guardrail(GuardrailPolicyError::Enforced {
                configured_identifier: "gr-1".into(),
                configured_version: "1".into(),
                requested_identifier: "gr-2".into(),
                requested_version: "3".into(),
            }),
            GatewayError::UnsupportedParameter {
                param: "seed".into(),
            },
            GatewayError::RateLimited {
                kind: LimitKind::Requests,
                retry_after: Some(Duration::from_millis(6_001)),
                state: limit_state(),
            },
            GatewayError::RateLimited {
                kind: LimitKind::Tokens,
                retry_after: Some(Duration::from_secs(80)),
                state: limit_state(),
            },
            GatewayError::RateLimited {
                kind: LimitKind::Budget,
                retry_after: Some(Duration::from_secs(86_399)),
                state: limit_state(),
            },
            GatewayError::RateLimited {
                kind: LimitKind::Budget,
                retry_after: None,
                state: limit_state(),
            },
            GatewayError::LimitsUnavailable,
            GatewayError::InvalidRequest(gateway_core::RequestLimitError::new(
                "messages[2].content[0].name",
                "contains ' ': tool names may only hold letters, digits, `_` and `-`",
            )),
            GatewayError::GuardrailCheck(GuardrailCheckError::UnknownGuardrail {
                name: "nope".into(),
            }),
            GatewayError::GuardrailCheck(GuardrailCheckError::NotConfigured {
                identifier: "gr-1".into(),
                version: "9".into(),
            }),
            GatewayError::GuardrailCheck(GuardrailCheckError::NotAllowed { name: "pii".into() }),
            GatewayError::GuardrailCheck(GuardrailCheckError::EmptyContent),
            GatewayError::GuardrailCheck(GuardrailCheckError::NoChecker),
            GatewayError::WrongModelKind {
                model: "acct/titan-embed".into(),
                kind: gateway_core::ModelKind::Embedding,
                requested: gateway_core::ModelKind::Chat,
            },
        ];
        for error in &domain {
            let api = ApiError::from_gateway(error, &MessagePositions::default());
            table.push_str(&row(api.code, &api));
        }
        for api in [
            ApiError::unauthorized(),
            ApiError::body_too_large(1024),
            ApiError::body_unreadable(),
            ApiError::too_many_headers(100),
            ApiError::body_timeout(Duration::from_secs(30)),
            ApiError::ambiguous_framing(),
            ApiError::overloaded(),
            ApiError::unknown_url(&http::Method::GET, "/v2/nothing"),
            ApiError::method_not_allowed(&http::Method::DELETE, "/v1/chat/completions"),
        ] {
            table.push_str(&row(api.code, &api));
        }
        insta::assert_snapshot!(table);
    }

    #[test]
    fn upstream_credential_failures_are_never_401() {
        for provider in every_provider_error() {
            assert_ne!(
                ApiError::from_provider(&provider).status,
                StatusCode::UNAUTHORIZED,
                "{provider:?}"
            );
        }
    }
}
