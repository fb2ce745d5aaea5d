//! Bedrock error answers to `ProviderError`: every exception in shared/bedrock-wire.md, the
//! places the kind and message can come from, and bodies that are not Bedrock's at all.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions fail the test on bad input, like the tests themselves"
)]

use gateway_adapter_bedrock::testing::{is_expired_token, provider_error, BedrockErrorResponse};
use gateway_core::ProviderError;
use http::{HeaderMap, HeaderValue, StatusCode};

const ACCOUNT: &str = "internal-bedrock";

fn header(kind: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-amzn-ErrorType",
        HeaderValue::from_str(&format!(
            "{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
        ))
        .unwrap(),
    );
    headers
}

fn describe(error: &ProviderError) -> String {
    match error {
        ProviderError::Unauthorized { account, message } => {
            format!("{} account={account} {message:?}", error.kind())
        }
        other => format!("{} {:?}", other.kind(), other.to_string()),
    }
}

/// Every exception of the table, as Bedrock sends it: kind in the header, `{"message"}`.
#[test]
fn every_documented_exception_maps_to_its_error() {
    let table = [
        ("ValidationException", 400),
        ("ServiceQuotaExceededException", 400),
        ("AccessDeniedException", 403),
        ("UnrecognizedClientException", 403),
        ("InvalidSignatureException", 403),
        ("ExpiredTokenException", 403),
        ("ResourceNotFoundException", 404),
        ("ModelTimeoutException", 408),
        ("ModelErrorException", 424),
        ("ThrottlingException", 429),
        ("ModelNotReadyException", 429),
        ("InternalServerException", 500),
        ("ServiceUnavailableException", 503),
    ];
    let mut out = String::new();
    for (kind, status) in table {
        let body = format!(r#"{{"message":"{kind} says hello"}}"#);
        let error = provider_error(
            ACCOUNT,
            StatusCode::from_u16(status).unwrap(),
            &header(kind),
            body.as_bytes(),
        );
        out.push_str(&format!("{status} {kind:<32} => {}\n", describe(&error)));
    }
    insta::assert_snapshot!(out);
}

/// Where the kind and message come from, and answers that are not Bedrock JSON.
#[test]
fn kind_and_message_sources_and_garbage() {
    let none = HeaderMap::new();
    let cases: Vec<(&str, u16, HeaderMap, &[u8])> = vec![
        ("header kind, `message`", 400, header("ValidationException"), br#"{"message":"Malformed input request: #: extraneous key [foo] is not permitted"}"#),
        ("header kind, `Message`", 400, header("ValidationException"), br#"{"Message":"capitalized message"}"#),
        ("both `message` and `Message`", 400, header("ValidationException"), br#"{"message":"lower","Message":"upper"}"#),
        ("`__type` with namespace", 429, none.clone(), br#"{"__type":"com.amazon.coral.availability#ThrottlingException","message":"Too many requests"}"#),
        ("`__type` without namespace", 404, none.clone(), br#"{"__type":"ResourceNotFoundException","message":"Model not found"}"#),
        ("header wins over `__type`", 400, header("ValidationException"), br#"{"__type":"com.amazon#ThrottlingException","message":"m"}"#),
        ("unknown kind, 400, JSON message", 400, header("SomeNewException"), br#"{"message":"new thing"}"#),
        ("unknown kind, 409, JSON message", 409, header("ConflictishException"), br#"{"message":"conflict"}"#),
        ("unknown kind, 500", 500, header("SomeNewException"), br#"{"message":"boom"}"#),
        ("kind without message", 429, header("ThrottlingException"), b""),
        ("JSON without message or kind", 400, none.clone(), b"{}"),
        ("HTML 502 from a proxy", 502, none.clone(), b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
        ("HTML 503 from a proxy", 503, none.clone(), b"<html>Service Unavailable</html>"),
        ("HTML 400", 400, none.clone(), b"<html>Bad Request</html>"),
        ("empty 500", 500, none.clone(), b""),
        ("empty 403", 403, none.clone(), b""),
        ("empty 429", 429, none.clone(), b""),
        ("truncated JSON 400", 400, none.clone(), br#"{"message":"cut"#),
        ("non-JSON text 504", 504, none.clone(), b"upstream request timeout"),
        ("message is not a string", 400, header("ValidationException"), br#"{"message":42}"#),
    ];
    let mut out = String::new();
    for (what, status, headers, body) in cases {
        let error = provider_error(
            ACCOUNT,
            StatusCode::from_u16(status).unwrap(),
            &headers,
            body,
        );
        out.push_str(&format!("{what:<32} {status} => {}\n", describe(&error)));
    }
    insta::assert_snapshot!(out);
}

#[test]
fn validation_errors_carry_bedrocks_message_verbatim() {
    let message = "The model returned the following errors: messages: roles must alternate";
    let error = provider_error(
        ACCOUNT,
        StatusCode::BAD_REQUEST,
        &header("ValidationException"),
        format!(r#"{{"message":"{message}"}}"#).as_bytes(),
    );
    assert_eq!(
        error,
        ProviderError::InvalidRequest {
            message: message.into()
        }
    );
}

#[test]
fn only_expired_credentials_are_worth_a_refresh() {
    let parsed = |kind: &str| {
        BedrockErrorResponse::parse(StatusCode::FORBIDDEN, &header(kind), br#"{"message":"x"}"#)
    };
    assert!(parsed("ExpiredTokenException").is_expired_token());
    assert!(!parsed("InvalidSignatureException").is_expired_token());
    assert!(!parsed("AccessDeniedException").is_expired_token());
    assert!(is_expired_token(Some("ExpiredToken")));
    assert!(!is_expired_token(None));
    let from_body = BedrockErrorResponse::parse(
        StatusCode::FORBIDDEN,
        &HeaderMap::new(),
        br#"{"__type":"com.amazon.coral.service#ExpiredTokenException","message":"The security token included in the request is expired"}"#,
    );
    assert!(from_body.is_expired_token());
}

#[test]
fn huge_messages_are_bounded() {
    let body = format!(r#"{{"message":"{}"}}"#, "x".repeat(100_000));
    let error = provider_error(
        ACCOUNT,
        StatusCode::BAD_REQUEST,
        &header("ValidationException"),
        body.as_bytes(),
    );
    assert!(error.to_string().len() < 2_000);
}
