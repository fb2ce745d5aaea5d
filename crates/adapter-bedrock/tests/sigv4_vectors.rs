//! SigV4 against vectors signed by botocore (`fixtures/sigv4/generate.py`), an
//! implementation independent of the `aws-sigv4` crate both the adapter and bedrock-sim use:
//! a shared encoding mistake (a model id's `:` must be `%253A` in the canonical request)
//! would pass every simulator test but not these.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions fail the test on bad input, like the tests themselves"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use aws_credential_types::Credentials;
use bytes::Bytes;
use gateway_adapter_bedrock::testing::Operation;
use gateway_adapter_bedrock::testing::{host_header_value, Signer};
use gateway_adapter_bedrock::testing::{model_path, unsigned_request};
use gateway_adapter_bedrock::RequestAuth;
use gateway_core::clock::{FixedClock, SharedClock};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Vector {
    url: String,
    model_id: String,
    operation: String,
    /// The headers botocore signed, as given to it (plus `Host`, derived from the URL).
    headers: BTreeMap<String, String>,
    body: String,
    unix_time: u64,
    access_key_id: String,
    secret: String,
    session_token: Option<String>,
    region: String,
    service: String,
    expected_authorization: String,
    expected_headers: BTreeMap<String, String>,
}

fn vectors() -> Vec<(String, Vector)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sigv4");
    let mut vectors: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let vector = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                vector,
            )
        })
        .collect();
    vectors.sort_by(|a, b| a.0.cmp(&b.0));
    vectors
}

#[test]
fn the_adapter_signs_exactly_like_botocore() {
    let vectors = vectors();
    assert_eq!(
        vectors.len(),
        4,
        "model id and ARN, each with and without a session token"
    );
    for (name, v) in vectors {
        assert_eq!(
            v.service,
            gateway_adapter_bedrock::testing::SIGNING_NAME,
            "{name}"
        );
        let operation = match v.operation.as_str() {
            "converse" => Operation::Converse,
            "converse-stream" => Operation::ConverseStream,
            other => panic!("{name}: unknown operation {other}"),
        };
        let url = format!(
            "https://bedrock-runtime.{}.amazonaws.com{}",
            v.region,
            model_path(&v.model_id, operation)
        );
        assert_eq!(url, v.url, "{name}: URL");

        let mut request = unsigned_request(&url, operation, Bytes::from(v.body.clone())).unwrap();
        let host = host_header_value(request.uri()).unwrap();
        assert_eq!(Some(&host), v.headers.get("Host"), "{name}: host");
        assert_eq!(
            request.headers()["content-type"],
            v.headers["Content-Type"],
            "{name}: botocore signed the content-type we send"
        );

        let credentials = Credentials::new(
            &v.access_key_id,
            &v.secret,
            v.session_token.clone(),
            None,
            "fixture",
        );
        Signer::new(SharedClock::new(FixedClock::at_unix(v.unix_time)))
            .authorize(
                &RequestAuth::SigV4(credentials),
                &v.region,
                &host,
                &mut request,
                v.body.as_bytes(),
            )
            .unwrap();

        assert_eq!(
            request.headers()["authorization"],
            v.expected_authorization,
            "{name}: Authorization"
        );
        for (header, value) in &v.expected_headers {
            assert_eq!(
                request.headers()[header.as_str()],
                value.as_str(),
                "{name}: {header}"
            );
        }
        // Every header the request carries is either signed (and so given to botocore) or
        // one the adapter deliberately leaves unsigned; the HTTP client adds `host` and
        // `content-length`.
        let sent: BTreeSet<&str> = request.headers().keys().map(|k| k.as_str()).collect();
        let mut expected: BTreeSet<&str> =
            ["accept", "authorization", "content-type", "x-amz-date"].into();
        if v.session_token.is_some() {
            expected.insert("x-amz-security-token");
        }
        assert_eq!(sent, expected, "{name}: headers on the request");
        let accept = match operation {
            Operation::Converse | Operation::CountTokens | Operation::InvokeModel => {
                "application/json"
            }
            Operation::ConverseStream => "application/vnd.amazon.eventstream",
        };
        assert_eq!(request.headers()["accept"], accept, "{name}: accept");
    }
}

#[test]
fn a_different_time_or_body_changes_the_signature() {
    let (_, v) = vectors().into_iter().next().unwrap();
    let sign = |time: u64, body: &str| {
        let mut request =
            unsigned_request(&v.url, Operation::Converse, Bytes::from(body.to_owned())).unwrap();
        let credentials = Credentials::new(&v.access_key_id, &v.secret, None, None, "fixture");
        Signer::new(SharedClock::new(FixedClock::at_unix(time)))
            .authorize(
                &RequestAuth::SigV4(credentials),
                &v.region,
                "bedrock-runtime.us-east-1.amazonaws.com",
                &mut request,
                body.as_bytes(),
            )
            .unwrap();
        request.headers()["authorization"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let reference = sign(v.unix_time, &v.body);
    assert_ne!(reference, sign(v.unix_time + 1, &v.body));
    assert_ne!(reference, sign(v.unix_time, "{}"));
}
