//! Bedrock exceptions to [`ProviderError`]: HTTP error answers and ConverseStream's
//! mid-stream exception frames both go through one table, [`EXCEPTIONS`].
//!
//! For an HTTP answer the exception name comes from the `x-amzn-ErrorType` header (`Kind:namespace`, the part
//! before `:`) or else the body's `__type` (`namespace#Kind`, the part after `#`); the
//! message from the body's `message` or `Message`. The kind decides the error; where it is
//! missing or unknown, the HTTP status does (see [`BedrockErrorResponse::into_provider_error`]
//! for the table).
//!
//! Messages reach clients, so they are bounded and, for credential errors, cut at the first
//! line: AWS's signature-mismatch message goes on to quote the canonical request, which
//! holds the session token.

use std::borrow::Cow;
use std::fmt;

use gateway_core::ProviderError;
use http::{HeaderMap, StatusCode};

use crate::retry::RetryReason;
use crate::wire::ErrorBody;

/// The longest upstream message passed on, in bytes: upstream text goes into client error
/// bodies and logs, and a cap keeps a misbehaving upstream from inflating them.
const MAX_MESSAGE_BYTES: usize = 1024;

/// Every Bedrock exception the adapter knows, by name without the `Exception` suffix: the
/// error it becomes, and whether AWS's standard retry mode tries the call again ([`crate::retry`]:
/// throttling and transient failures yes; what would fail the same way again, no). HTTP
/// answers name them in PascalCase (`ThrottlingException`), stream frames in lowerCamelCase
/// (`throttlingException`); both match here.
pub(crate) const EXCEPTIONS: &[(&str, ErrorClass, Retry)] = &[
    ("AccessDenied", ErrorClass::Unauthorized, NEVER),
    ("UnrecognizedClient", ErrorClass::Unauthorized, NEVER),
    ("InvalidSignature", ErrorClass::Unauthorized, NEVER),
    // Refreshed and retried once by the provider, outside the retry mode.
    ("ExpiredToken", ErrorClass::Unauthorized, NEVER),
    ("IncompleteSignature", ErrorClass::Unauthorized, NEVER),
    (
        "MissingAuthenticationToken",
        ErrorClass::Unauthorized,
        NEVER,
    ),
    ("InvalidClientTokenId", ErrorClass::Unauthorized, NEVER),
    ("TokenRefreshRequired", ErrorClass::Unauthorized, NEVER),
    ("Throttling", ErrorClass::Throttled, THROTTLING),
    // An account quota (tokens per day, ...): not AWS's throttling codes, and it does not
    // pass within a retry's wait.
    ("ServiceQuotaExceeded", ErrorClass::Throttled, NEVER),
    // Modeled `retryable` in botocore's bedrock-runtime model.
    ("ModelNotReady", ErrorClass::Throttled, TRANSIENT),
    ("TooManyRequests", ErrorClass::Throttled, THROTTLING),
    // The model's own time limit: another attempt takes as long.
    ("ModelTimeout", ErrorClass::Timeout, NEVER),
    ("ModelError", ErrorClass::ModelError, NEVER),
    ("ModelStreamError", ErrorClass::ModelError, NEVER),
    ("ServiceUnavailable", ErrorClass::Unavailable, TRANSIENT),
    ("InternalServer", ErrorClass::Upstream, TRANSIENT),
    ("InternalFailure", ErrorClass::Upstream, TRANSIENT),
    ("ResourceNotFound", ErrorClass::NotFound, NEVER),
    ("Validation", ErrorClass::InvalidRequest, NEVER),
    ("Serialization", ErrorClass::InvalidRequest, NEVER),
    ("Conflict", ErrorClass::InvalidRequest, NEVER),
];

/// Whether an exception is retried, and as what.
pub(crate) type Retry = Option<RetryReason>;
const NEVER: Retry = None;
const THROTTLING: Retry = Some(RetryReason::Throttling);
const TRANSIENT: Retry = Some(RetryReason::Transient);

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
            .map(|message| bounded(message).into_owned());
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

    /// True when Bedrock refused a bare model id because the model is served only through an
    /// inference profile (`ValidationException: Invocation of model ID ... with on-demand
    /// throughput isn’t supported. ...`; the apostrophe is typographic today, a plain one is
    /// accepted too): worth retrying once with the geographic profile
    /// ([`crate::inference_profile`]).
    pub fn is_on_demand_unsupported(&self) -> bool {
        let is_validation = self
            .kind
            .as_deref()
            .is_some_and(|kind| kind.eq_ignore_ascii_case("ValidationException"));
        is_validation
            && self.message.as_deref().is_some_and(|message| {
                [
                    "on-demand throughput isn’t supported",
                    "on-demand throughput isn't supported",
                ]
                .iter()
                .any(|phrase| message.contains(phrase))
            })
    }

    /// The domain error for this answer, naming `account` where credentials are at fault.
    ///
    /// A kind in [`EXCEPTIONS`] decides the error (`Validation` and the like keep Bedrock's
    /// message verbatim). An unknown or missing kind leaves it to the status: 401/403
    /// `Unauthorized`, 404 `NotFound`, 408 `Timeout`, 429 `Throttled`, 503 `Unavailable`,
    /// other 4xx with a Bedrock message `InvalidRequest`, anything else (5xx, unparseable)
    /// `Upstream`.
    pub fn into_provider_error(self, account: &str) -> ProviderError {
        let class = self.kind.as_deref().and_then(exception).map_or_else(
            || classify_status(self.status, self.message.is_some()),
            |(class, _)| class,
        );
        let message = self.message_for(class);
        class.error(account, message)
    }

    /// Why this answer is worth another attempt, if it is: the exception's entry in
    /// [`EXCEPTIONS`], or for an unknown or missing one the status, as AWS's standard mode
    /// reads it (429 throttling; 500, 502, 503, 504 transient).
    pub(crate) fn retry_reason(&self) -> Option<RetryReason> {
        match self.kind.as_deref().and_then(exception) {
            Some((_, retry)) => retry,
            None => match self.status.as_u16() {
                429 => Some(RetryReason::Throttling),
                500 | 502 | 503 | 504 => Some(RetryReason::Transient),
                _ => None,
            },
        }
    }

    fn message_for(&self, class: ErrorClass) -> String {
        let status = self.status.as_u16();
        match (&self.message, &self.kind, self.body) {
            (Some(message), _, _) if class == ErrorClass::Unauthorized => {
                first_line(message).to_owned()
            }
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

/// The error the provider makes of a Bedrock answer with a non-success status (tests only:
/// the provider parses first, to ask [`BedrockErrorResponse::is_expired_token`]).
#[cfg(any(test, feature = "test-util"))]
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

/// The error an exception becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    Unauthorized,
    Throttled,
    Timeout,
    ModelError,
    Unavailable,
    Upstream,
    NotFound,
    InvalidRequest,
}

impl ErrorClass {
    fn error(self, account: &str, message: String) -> ProviderError {
        match self {
            Self::Unauthorized => ProviderError::Unauthorized {
                account: account.to_owned(),
                message,
            },
            Self::Throttled => ProviderError::Throttled { message },
            Self::Timeout => ProviderError::Timeout { message },
            Self::ModelError => ProviderError::ModelError { message },
            Self::Unavailable => ProviderError::Unavailable { message },
            Self::NotFound => ProviderError::NotFound { message },
            Self::InvalidRequest => ProviderError::InvalidRequest { message },
            Self::Upstream => ProviderError::Upstream { message },
        }
    }
}

/// The class and retry of a named exception, `None` when [`EXCEPTIONS`] does not know it. The
/// first letter's case is ignored (HTTP answers capitalize it, stream frames do not), the rest
/// must match.
fn exception(kind: &str) -> Option<(ErrorClass, Retry)> {
    let base = kind.strip_suffix("Exception").unwrap_or(kind);
    let mut chars = base.chars();
    let first = chars.next()?;
    let rest = chars.as_str();
    EXCEPTIONS.iter().find_map(|&(name, class, retry)| {
        let mut name_chars = name.chars();
        let same = name_chars
            .next()
            .is_some_and(|c| c.eq_ignore_ascii_case(&first))
            && name_chars.as_str() == rest;
        same.then_some((class, retry))
    })
}

/// The error for a ConverseStream `exception` frame of type `kind` (e.g.
/// `throttlingException`) with JSON `payload`, and whether it is worth another attempt (only
/// before the stream produced an event): classified like an HTTP answer's kind, and a
/// non-retried `Upstream` when the kind is unknown (a stream has no status to fall back on).
/// The message names the kind, since a stream's errors reach the client mid-answer.
pub(crate) fn stream_exception(
    account: &str,
    kind: &str,
    payload: &[u8],
) -> (ProviderError, Option<RetryReason>) {
    let body: ErrorBody = serde_json::from_slice(payload).unwrap_or_default();
    let (class, retry) = exception(kind).unwrap_or((ErrorClass::Upstream, NEVER));
    let text = body.message().unwrap_or("(no message)");
    let text = match class {
        ErrorClass::Unauthorized => first_line(text),
        _ => text,
    };
    let error = class.error(account, format!("Bedrock {kind}: {}", bounded(text)));
    (error, retry)
}

fn classify_status(status: StatusCode, has_bedrock_message: bool) -> ErrorClass {
    match status.as_u16() {
        401 | 403 => ErrorClass::Unauthorized,
        404 => ErrorClass::NotFound,
        408 => ErrorClass::Timeout,
        429 => ErrorClass::Throttled,
        503 => ErrorClass::Unavailable,
        400..=499 if has_bedrock_message => ErrorClass::InvalidRequest,
        _ => ErrorClass::Upstream,
    }
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or_default().trim_end()
}

/// `message`, cut on a char boundary to at most [`MAX_MESSAGE_BYTES`] (plus an ellipsis).
fn bounded(message: &str) -> Cow<'_, str> {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.into();
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end]).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// The first error a ConverseStream body of one exception frame of type `kind` yields.
    async fn stream_error(kind: &str, payload: &str) -> ProviderError {
        let frame = bedrock_sim::encode_frame(
            &[(":message-type", "exception"), (":exception-type", kind)],
            payload.as_bytes(),
        )
        .unwrap();
        let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(frame)]);
        let mut events = crate::stream_events::converse_stream_events(
            "acct".into(),
            body,
            std::time::Duration::from_secs(60),
            None,
        );
        events.next().await.unwrap().unwrap_err()
    }

    #[tokio::test]
    async fn http_answers_and_stream_frames_map_every_exception_alike() {
        for &(name, class, retry) in EXCEPTIONS {
            let mut headers = HeaderMap::new();
            let http_kind = format!("{name}Exception");
            headers.insert(
                "x-amzn-errortype",
                http::HeaderValue::from_str(&http_kind).unwrap(),
            );
            let answer = BedrockErrorResponse::parse(
                StatusCode::INTERNAL_SERVER_ERROR,
                &headers,
                br#"{"message":"m"}"#,
            );
            assert_eq!(answer.retry_reason(), retry, "{http_kind}");
            // A status that would decide otherwise, so only the table can make them agree.
            let from_http = provider_error(
                "acct",
                StatusCode::INTERNAL_SERVER_ERROR,
                &headers,
                br#"{"message":"m"}"#,
            );
            let mut stream_kind = http_kind.clone();
            stream_kind[..1].make_ascii_lowercase();
            let from_stream = stream_error(&stream_kind, r#"{"message":"m"}"#).await;
            assert_eq!(stream_exception("acct", &stream_kind, b"{}").1, retry);
            let expected = class.error("acct", String::new());
            assert_eq!(from_http.kind(), expected.kind(), "{http_kind}");
            assert_eq!(from_stream.kind(), expected.kind(), "{stream_kind}");
            if let ProviderError::Unauthorized { account, .. } = &from_stream {
                assert_eq!(account, "acct");
            }
        }
    }

    #[test]
    fn aws_standard_mode_decides_what_is_retried() {
        use RetryReason::{Throttling, Transient};
        let retry = |status: u16, kind: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(kind) = kind {
                headers.insert(
                    "x-amzn-errortype",
                    http::HeaderValue::from_str(kind).unwrap(),
                );
            }
            let status = StatusCode::from_u16(status).unwrap();
            BedrockErrorResponse::parse(status, &headers, br#"{"message":"m"}"#).retry_reason()
        };
        for (status, kind, expected) in [
            (429, "ThrottlingException", Some(Throttling)),
            (429, "ModelNotReadyException", Some(Transient)),
            (500, "InternalServerException", Some(Transient)),
            (503, "ServiceUnavailableException", Some(Transient)),
            (400, "ServiceQuotaExceededException", None),
            (400, "ValidationException", None),
            (403, "AccessDeniedException", None),
            (404, "ResourceNotFoundException", None),
            (408, "ModelTimeoutException", None),
            (424, "ModelErrorException", None),
            // A named exception decides, whatever the status says.
            (503, "ValidationException", None),
        ] {
            assert_eq!(retry(status, Some(kind)), expected, "{status} {kind}");
        }
        // Without a known name, the status does.
        for (status, expected) in [
            (429, Some(Throttling)),
            (500, Some(Transient)),
            (502, Some(Transient)),
            (503, Some(Transient)),
            (504, Some(Transient)),
            (501, None),
            (400, None),
            (403, None),
            (404, None),
            (408, None),
        ] {
            assert_eq!(retry(status, None), expected, "{status}");
            assert_eq!(
                retry(status, Some("SomeNewException")),
                expected,
                "{status}"
            );
        }
    }

    #[tokio::test]
    async fn unknown_stream_exceptions_are_upstream_errors() {
        let error = stream_error("someNewException", r#"{"message":"hello"}"#).await;
        assert_eq!(
            error,
            ProviderError::Upstream {
                message: "Bedrock someNewException: hello".into()
            }
        );
    }

    #[tokio::test]
    async fn stream_credential_errors_keep_only_the_first_line() {
        let error = stream_error(
            "invalidSignatureException",
            r#"{"message":"signature mismatch\nCanonical request: x-amz-security-token:SECRET"}"#,
        )
        .await;
        assert_eq!(
            error,
            ProviderError::Unauthorized {
                account: "acct".into(),
                message: "Bedrock invalidSignatureException: signature mismatch".into()
            }
        );
    }

    #[test]
    fn only_the_on_demand_validation_error_asks_for_a_profile() {
        let answer = |kind: &str, message: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                "x-amzn-errortype",
                http::HeaderValue::from_str(kind).unwrap(),
            );
            let body = serde_json::json!({ "message": message }).to_string();
            BedrockErrorResponse::parse(StatusCode::BAD_REQUEST, &headers, body.as_bytes())
        };
        let typographic = "Invocation of model ID anthropic.claude-3-5-sonnet-20241022-v2:0 with on-demand throughput isn’t supported. Retry your request with the ID or ARN of an inference profile that contains this model.";
        let plain = typographic.replace('’', "'");
        assert!(answer("ValidationException", typographic).is_on_demand_unsupported());
        assert!(answer("ValidationException", &plain).is_on_demand_unsupported());
        assert!(
            !answer("ValidationException", "Malformed input request").is_on_demand_unsupported()
        );
        assert!(!answer("ThrottlingException", typographic).is_on_demand_unsupported());
    }

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
