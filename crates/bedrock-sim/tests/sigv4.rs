//! SigV4 verification: requests signed by botocore (fixtures/sim/sigv4, an independent
//! signer) and by aws-sigv4 are accepted; wrong secrets, unknown keys, tampered bodies, wrong
//! services and clock skew are rejected with Bedrock's error names.

#![allow(
    clippy::unwrap_used,
    reason = "integration tests and their helper functions fail by panicking"
)]

mod common;

use std::time::Duration;

use bedrock_sim::{BedrockSim, RecordedAuth, SimHandle};
use common::*;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../fixtures/sim/sigv4/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn fixture_time(f: &Value) -> std::time::SystemTime {
    let compact = f["headers"]["X-Amz-Date"].as_str().unwrap();
    // 20240115T120000Z -> seconds since the epoch, via the same arithmetic as any civil date.
    let days = |y: i64, m: i64, d: i64| {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
    };
    let n = |a: usize, b: usize| compact[a..b].parse::<i64>().unwrap();
    let secs =
        days(n(0, 4), n(4, 6), n(6, 8)) * 86_400 + n(9, 11) * 3600 + n(11, 13) * 60 + n(13, 15);
    std::time::UNIX_EPOCH + Duration::from_secs(secs as u64)
}

/// Sends the fixture's request byte for byte (its own Host header) over a raw connection.
async fn replay(sim: &SimHandle, f: &Value, body_override: Option<&str>) -> (u16, String) {
    let body = body_override.unwrap_or_else(|| f["body"].as_str().unwrap());
    let mut request = format!("POST {} HTTP/1.1\r\n", f["path"].as_str().unwrap());
    for (name, value) in f["headers"].as_object().unwrap() {
        request.push_str(&format!("{name}: {}\r\n", value.as_str().unwrap()));
    }
    request.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    raw_http(sim.addr(), request.as_bytes()).await
}

async fn fixture_sim(f: &Value) -> SimHandle {
    init();
    BedrockSim::builder()
        .access_key(
            f["access_key_id"].as_str().unwrap(),
            f["secret_access_key"].as_str().unwrap(),
        )
        .clock_at(fixture_time(f))
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn botocore_signed_model_id_with_colon_is_accepted() {
    let f = fixture("converse_model_id_with_colon");
    let sim = fixture_sim(&f).await;
    let (status, response) = replay(&sim, &f, None).await;
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("You said: Hello there"));
    let recorded = &sim.requests()[0];
    assert_eq!(recorded.model_id, f["model_id"].as_str().unwrap());
    assert_eq!(recorded.raw_path, f["path"].as_str().unwrap());
}

#[tokio::test]
async fn botocore_signed_arn_with_session_token_is_accepted() {
    let f = fixture("converse_stream_arn_with_session_token");
    let key_id = f["access_key_id"].as_str().unwrap();
    let secret = f["secret_access_key"].as_str().unwrap();
    let token = f["session_token"].as_str().unwrap();
    init();
    let sim = BedrockSim::builder()
        .session_credentials(key_id, secret, token)
        .clock_at(fixture_time(&f))
        .start()
        .await
        .unwrap();
    let (status, response) = replay(&sim, &f, None).await;
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("application/vnd.amazon.eventstream"));
    let recorded = &sim.requests()[0];
    assert_eq!(recorded.model_id, f["model_id"].as_str().unwrap());
    assert_eq!(
        recorded.auth,
        RecordedAuth::SigV4 {
            access_key_id: key_id.to_owned(),
            session_token: Some(token.to_owned())
        }
    );

    // The same key as a long-term key (no token expected) is rejected: the token is invalid.
    let sim = fixture_sim(&f).await;
    let (status, response) = replay(&sim, &f, None).await;
    assert_eq!(status, 403, "{response}");
    assert!(response.contains("UnrecognizedClientException"));
}

#[tokio::test]
async fn tampered_botocore_request_is_rejected() {
    let f = fixture("converse_model_id_with_colon");
    let sim = fixture_sim(&f).await;
    let tampered = f["body"].as_str().unwrap().replace("Hello", "Hallo");
    let (status, response) = replay(&sim, &f, Some(&tampered)).await;
    assert_eq!(status, 403);
    assert!(
        response.contains("x-amzn-errortype: InvalidSignatureException:"),
        "{response}"
    );
    assert!(response.contains("The request signature we calculated does not match"));
}

#[test]
fn aws_sigv4_and_botocore_agree_on_the_fixtures() {
    // The same request signed by the Rust signer the gateway uses must carry botocore's exact
    // Authorization header: both encode the path label twice in the canonical request.
    for name in [
        "converse_model_id_with_colon",
        "converse_stream_arn_with_session_token",
    ] {
        let f = fixture(name);
        let creds = Creds {
            access_key_id: f["access_key_id"].as_str().unwrap().to_owned(),
            secret: f["secret_access_key"].as_str().unwrap().to_owned(),
            token: f["session_token"].as_str().map(str::to_owned),
        };
        let req = signed(
            "https://bedrock-runtime.us-east-1.amazonaws.com",
            f["path"].as_str().unwrap(),
            f["body"].as_str().unwrap().as_bytes(),
            &creds,
            "us-east-1",
            "bedrock",
            "application/json",
            fixture_time(&f),
        );
        assert_eq!(
            req.headers()["authorization"],
            f["headers"]["Authorization"].as_str().unwrap(),
            "{name}"
        );
        assert!(f["canonical_request"].as_str().unwrap().contains("%253A"));
    }
}

async fn sim() -> SimHandle {
    init();
    BedrockSim::builder()
        .access_key(AKID, SECRET)
        .start()
        .await
        .unwrap()
}

async fn converse_with(
    sim: &SimHandle,
    creds: &Creds,
    region: &str,
    service: &str,
    time: std::time::SystemTime,
) -> (http::StatusCode, String, Value) {
    let req = signed(
        &sim.url(),
        &format!("/model/{CLAUDE_PATH}/converse"),
        converse_body("hi").to_string().as_bytes(),
        creds,
        region,
        service,
        "application/json",
        time,
    );
    let (status, headers, value) = call_json(sim.addr(), req).await;
    let kind = headers
        .get("x-amzn-errortype")
        .map(|_| error_type(&headers))
        .unwrap_or_default();
    (status, kind, value)
}

#[tokio::test]
async fn signed_request_in_any_region_is_accepted() {
    let sim = sim().await;
    for region in ["us-east-1", "us-west-2", "eu-central-1"] {
        let (status, kind, _) = converse_with(&sim, &Creds::test(), region, "bedrock", now()).await;
        assert_eq!(status, 200, "{region}: {kind}");
    }
}

#[tokio::test]
async fn wrong_secret_is_an_invalid_signature() {
    let sim = sim().await;
    let creds = Creds::long_term(AKID, "not-the-secret");
    let (status, kind, value) = converse_with(&sim, &creds, REGION, "bedrock", now()).await;
    assert_eq!(
        (status.as_u16(), kind.as_str()),
        (403, "InvalidSignatureException")
    );
    assert!(value["message"]
        .as_str()
        .unwrap()
        .starts_with("The request signature we calculated does not match"));
    // Rejected requests are recorded with what they presented.
    assert!(
        matches!(&sim.requests()[0].auth, RecordedAuth::SigV4 { access_key_id, .. } if access_key_id == AKID)
    );
}

#[tokio::test]
async fn unknown_key_is_unrecognized_client() {
    let sim = sim().await;
    let creds = Creds::long_term("AKIDUNKNOWN", SECRET);
    let (status, kind, value) = converse_with(&sim, &creds, REGION, "bedrock", now()).await;
    assert_eq!(
        (status.as_u16(), kind.as_str()),
        (403, "UnrecognizedClientException")
    );
    assert_eq!(
        value["message"],
        "The security token included in the request is invalid."
    );
}

#[tokio::test]
async fn wrong_signing_name_is_rejected() {
    let sim = sim().await;
    let (status, kind, value) =
        converse_with(&sim, &Creds::test(), REGION, "bedrock-runtime", now()).await;
    assert_eq!(
        (status.as_u16(), kind.as_str()),
        (403, "InvalidSignatureException")
    );
    assert!(value["message"].as_str().unwrap().contains("'bedrock'"));
}

#[tokio::test]
async fn clock_skew_of_five_minutes_is_allowed() {
    let sim = sim().await;
    let t = now();
    for (time, ok) in [
        (t - Duration::from_secs(4 * 60), true),
        (t + Duration::from_secs(4 * 60), true),
        (t - Duration::from_secs(10 * 60), false),
        (t + Duration::from_secs(10 * 60), false),
    ] {
        let (status, kind, _) = converse_with(&sim, &Creds::test(), REGION, "bedrock", time).await;
        if ok {
            assert_eq!(status, 200, "{kind}");
        } else {
            assert_eq!(
                (status.as_u16(), kind.as_str()),
                (403, "InvalidSignatureException")
            );
        }
    }
}

#[tokio::test]
async fn unsigned_headers_do_not_matter_but_signed_ones_do() {
    let sim = sim().await;
    let mut req = hi_request(&sim.url(), CLAUDE, "converse");
    req.headers_mut()
        .insert("x-extra", "added after signing".parse().unwrap());
    req.headers_mut()
        .insert("user-agent", "proxy/1.0".parse().unwrap());
    let (status, _, _) = call_json(sim.addr(), req).await;
    assert_eq!(status, 200);

    let mut req = hi_request(&sim.url(), CLAUDE, "converse");
    req.headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    let (status, headers, _) = call_json(sim.addr(), req).await;
    assert_eq!(status, 403);
    assert_eq!(error_type(&headers), "InvalidSignatureException");
}

#[tokio::test]
async fn missing_or_malformed_authorization() {
    let sim = sim().await;
    let request = |auth: Option<&str>| {
        let mut builder = http::Request::builder()
            .method("POST")
            .uri(format!("{}/model/{CLAUDE_PATH}/converse", sim.url()));
        if let Some(auth) = auth {
            builder = builder
                .header("authorization", auth)
                .header("x-amz-date", "20240115T120000Z");
        }
        builder
            .body(http_body_util::Full::new(bytes::Bytes::from(
                converse_body("x").to_string(),
            )))
            .unwrap()
    };
    let (status, headers, _) = call_json(sim.addr(), request(None)).await;
    assert_eq!(status, 403);
    assert_eq!(error_type(&headers), "MissingAuthenticationTokenException");
    let (status, headers, _) =
        call_json(sim.addr(), request(Some("AWS4-HMAC-SHA256 nonsense"))).await;
    assert_eq!(status, 403);
    assert_eq!(error_type(&headers), "IncompleteSignatureException");
}

#[tokio::test]
async fn builder_debug_redacts_secrets() {
    let builder = BedrockSim::builder()
        .access_key("AKIDVISIBLE", "super-secret-value")
        .api_key("api-key-value")
        .web_identity_token("jwt-value");
    let debug = format!("{builder:?}");
    assert!(debug.contains("AKIDVISIBLE"));
    for secret in ["super-secret-value", "api-key-value", "jwt-value"] {
        assert!(!debug.contains(secret), "{debug}");
    }
}
