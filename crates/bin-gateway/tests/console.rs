//! The web console's server side end to end: `/console` disabled by default, the admin key
//! (not a gateway key) on the API, the security headers on every answer, and what the
//! status, routes and traffic API show — never a secret.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use bytes::Bytes;
use common::{json_of, sim, user, TestGateway, KEY, SECRET};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

const ADMIN_KEY: &str = "test-console-admin-key";
/// A Bedrock API key of the second account: must never reach the console's answers.
const BEDROCK_API_KEY: &str = "bedrock-api-key-never-shown-1234";
const LIMITED_KEY: &str = "test-limited-gateway-key";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; font-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn console_config() -> String {
    format!(
        r#"
[auth]
keys = [
  {{ name = "tests", key = "{KEY}", guardrails = ["pii"] }},
  {{ name = "limited", key = "{LIMITED_KEY}", rpm = 600, tpm = 100000, budget_usd = 25.0, budget_period = "30d" }},
]

[console]
admin_keys = [{{ name = "ops", key = "{ADMIN_KEY}" }}]

[accounts.sim]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "${{SIM_URL}}"
auth = {{ type = "access-key", access_key_id = "AKIDTESTGATEWAY00001", secret_access_key = "${{SIM_SECRET}}" }}
retry = {{ max_attempts = 1 }}
circuit_breaker = {{ failures = 2, cooldown_ms = 30000 }}

[accounts.sim.models.claude-3]
model_id = "anthropic.claude-3-sonnet-20240229-v1:0"
price = {{ input = 3.0, output = 15.0 }}

[accounts.sim.models.profile]
model_id = "us.anthropic.claude-3-haiku-20240307-v1:0"

[accounts.keyed]
type = "aws-bedrock"
region = "eu-west-1"
auth = {{ type = "api-key", key = "{BEDROCK_API_KEY}" }}

[accounts.keyed.models.claude]
model_id = "anthropic.claude-3-haiku-20240307-v1:0"
price = {{ input = 0.25, output = 1.25 }}
guardrail = {{ identifier = "gr-123", version = "2", mode = "enforced" }}

[accounts.keyed.guardrails]
pii = {{ identifier = "gr-pii", version = "1" }}

[virtual_models."claude-ha"]
strategy = "failover"
targets = ["sim/claude-3", "keyed/claude"]

[virtual_models."claude-spread"]
strategy = "weighted"
targets = ["sim/claude-3", "sim/profile"]
weights = [3, 1]
"#
    )
}

async fn console_gateway() -> TestGateway {
    TestGateway::start_with_config(sim(), &console_config(), &[]).await
}

/// `method path` with `Authorization: Bearer <key>` when given: status, head and body.
async fn call(
    gw: &TestGateway,
    method: Method,
    path: &str,
    key: Option<&str>,
) -> (http::response::Parts, String) {
    let mut builder = http::Request::builder().method(method).uri(gw.url(path));
    if let Some(key) = key {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    let response = gw
        .send(builder.body(Full::<Bytes>::default()).unwrap())
        .await;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts, String::from_utf8_lossy(&body).into_owned())
}

fn header<'a>(parts: &'a http::response::Parts, name: &str) -> &'a str {
    parts
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

fn assert_secured(parts: &http::response::Parts, path: &str) {
    assert_eq!(header(parts, "content-security-policy"), CSP, "{path}");
    assert_eq!(header(parts, "x-content-type-options"), "nosniff", "{path}");
    assert_eq!(header(parts, "referrer-policy"), "no-referrer", "{path}");
    assert_eq!(header(parts, "x-frame-options"), "DENY", "{path}");
    assert!(parts.headers.get("set-cookie").is_none(), "{path}");
}

fn error_code(body: &str) -> Value {
    let value: Value = serde_json::from_str(body).unwrap();
    value["error"]["code"].clone()
}

#[tokio::test]
async fn without_admin_keys_every_console_url_is_a_404_saying_how_to_enable_it() {
    let gw = TestGateway::start(sim()).await;
    for (path, key) in [
        ("/console", None),
        ("/console/", None),
        ("/console/assets/app.js", None),
        ("/console/api/status", Some(KEY)),
        ("/console/api/traffic", None),
    ] {
        let (parts, body) = call(&gw, Method::GET, path, key).await;
        assert_eq!(parts.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error_code(&body), "console_disabled", "{path}");
        assert!(
            body.contains("the console is disabled: set [console] admin_keys (docs/console.md)"),
            "{path}: {body}"
        );
        assert_secured(&parts, path);
    }
}

#[tokio::test]
async fn the_api_takes_an_admin_key_and_nothing_else() {
    let gw = console_gateway().await;
    for path in [
        "/console/api/status",
        "/console/api/routes",
        "/console/api/traffic",
    ] {
        for key in [None, Some("wrong-admin-key"), Some(KEY), Some(LIMITED_KEY)] {
            let (parts, body) = call(&gw, Method::GET, path, key).await;
            assert_eq!(parts.status, StatusCode::UNAUTHORIZED, "{path} {key:?}");
            let error: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(error["error"]["code"], "invalid_admin_key", "{body}");
            assert_eq!(error["error"]["type"], "invalid_request_error", "{body}");
            assert_secured(&parts, path);
        }
        let (parts, _) = call(&gw, Method::GET, path, Some(ADMIN_KEY)).await;
        assert_eq!(parts.status, StatusCode::OK, "{path}");
    }
    // An x-api-key header is a gateway key's way in, not an admin key's.
    let request = http::Request::get(gw.url("/console/api/status"))
        .header("x-api-key", ADMIN_KEY)
        .body(Full::default())
        .unwrap();
    assert_eq!(gw.send(request).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_admin_key_calls_no_model() {
    let gw = console_gateway().await;
    let body = json!({"model": "sim/claude-3", "messages": user("Hello")});
    let (status, answer) = gw.chat_as(Some(ADMIN_KEY), &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_api_key");
    let (status, _) = gw.get("/v1/models", Some(ADMIN_KEY)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_console_answer_carries_the_security_headers() {
    let gw = console_gateway().await;
    for (path, key, content_type, cache) in [
        ("/console", None, "text/html; charset=utf-8", "no-store"),
        ("/console/", None, "text/html; charset=utf-8", "no-store"),
        (
            "/console/assets/app.js",
            None,
            "text/javascript; charset=utf-8",
            "no-cache",
        ),
        (
            "/console/assets/app.css",
            None,
            "text/css; charset=utf-8",
            "no-cache",
        ),
        (
            "/console/api/status",
            Some(ADMIN_KEY),
            "application/json",
            "no-store",
        ),
        (
            "/console/api/routes",
            Some(ADMIN_KEY),
            "application/json",
            "no-store",
        ),
        (
            "/console/api/traffic",
            Some(ADMIN_KEY),
            "application/json",
            "no-store",
        ),
    ] {
        let (parts, body) = call(&gw, Method::GET, path, key).await;
        assert_eq!(parts.status, StatusCode::OK, "{path}: {body}");
        assert_secured(&parts, path);
        assert_eq!(header(&parts, "content-type"), content_type, "{path}");
        assert_eq!(header(&parts, "cache-control"), cache, "{path}");
        assert!(!body.is_empty(), "{path}");
    }
    let (_, index) = call(&gw, Method::GET, "/console", None).await;
    assert!(index.contains(r#"src="/console/assets/app.js""#), "{index}");

    // HEAD: the same head, no body.
    let (parts, body) = call(&gw, Method::HEAD, "/console", None).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_secured(&parts, "HEAD /console");
    assert!(body.is_empty());
}

#[tokio::test]
async fn only_get_and_head_and_only_known_files() {
    let gw = console_gateway().await;
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        for path in ["/console", "/console/api/status"] {
            let (parts, body) = call(&gw, method.clone(), path, Some(ADMIN_KEY)).await;
            assert_eq!(
                parts.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(header(&parts, "allow"), "GET, HEAD");
            assert_eq!(error_code(&body), "method_not_allowed");
            assert_secured(&parts, path);
        }
    }
    for path in [
        "/console/assets/missing.js",
        "/console/assets/",
        "/console/assets/../index.html",
        "/console/api/unknown",
        "/console/elsewhere",
    ] {
        let (parts, body) = call(&gw, Method::GET, path, Some(ADMIN_KEY)).await;
        assert_eq!(parts.status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(error_code(&body), "unknown_url", "{path}");
        assert_secured(&parts, path);
    }
    let (parts, body) = call(
        &gw,
        Method::GET,
        "/console/api/traffic?minutes=16",
        Some(ADMIN_KEY),
    )
    .await;
    assert_eq!(parts.status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "invalid_value");
}

async fn admin_json(gw: &TestGateway, path: &str) -> (String, Value) {
    let request = http::Request::get(gw.url(path))
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .body(Full::default())
        .unwrap();
    let response = gw.send(request).await;
    let (parts, body) = response.into_parts();
    let text = String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert_eq!(parts.status, StatusCode::OK, "{path}: {text}");
    let value = serde_json::from_str(&text).unwrap();
    (text, value)
}

fn assert_no_secret(text: &str) {
    for secret in [SECRET, BEDROCK_API_KEY, KEY, LIMITED_KEY, ADMIN_KEY] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[tokio::test]
async fn status_lists_the_accounts_with_auth_and_region_and_no_secret() {
    let gw = console_gateway().await;
    // A request makes the account's credentials known to have been used.
    let (status, _) = gw
        .chat(&json!({"model": "sim/claude-3", "messages": user("Hello")}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (text, body) = admin_json(&gw, "/console/api/status").await;
    assert_no_secret(&text);
    assert_eq!(body["accounts"][1]["endpoint"], gw.sim.url());
    insta::assert_json_snapshot!(body, {
        ".version" => "[version]",
        ".started_at" => "[time]",
        ".uptime_seconds" => "[seconds]",
        ".accounts[1].endpoint" => "[simulator]",
    });
}

#[tokio::test]
async fn routes_list_models_virtual_models_and_keys_by_name_only() {
    let gw = console_gateway().await;
    // 1 000 000 input and output tokens cost 18 USD: spend shows on the key's line.
    let (status, answer) = gw
        .chat(&json!({"model": "sim/claude-3", "messages": user("Hello")}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let tokens = &answer["usage"];
    let spent = tokens["prompt_tokens"].as_f64().unwrap() * 3.0 / 1e6
        + tokens["completion_tokens"].as_f64().unwrap() * 15.0 / 1e6;
    let (text, body) = admin_json(&gw, "/console/api/routes").await;
    assert_no_secret(&text);
    let tests_key = &body["keys"][0];
    assert_eq!(tests_key["name"], "tests");
    assert!(
        (tests_key["spend_usd"].as_f64().unwrap() - spent).abs() < 1e-9,
        "{tests_key} after {answer}"
    );
    insta::assert_json_snapshot!(body, {".keys[0].spend_usd" => "[spend]"});
}

#[tokio::test]
async fn traffic_shows_the_requests_of_each_model() {
    let gw = console_gateway().await;
    let sampler = gw.gateway.traffic_sampler();
    sampler.sample_now();
    let chat = json!({"model": "sim/claude-3", "messages": user("Hello")});
    for _ in 0..3 {
        let (status, _) = gw.chat(&chat).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = gw
        .chat(&json!({"model": "sim/no-such-model", "messages": user("Hello")}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sampler.sample_now();

    let (_, body) = admin_json(&gw, "/console/api/traffic?minutes=1").await;
    assert_eq!(body["interval_seconds"], 5);
    // The two samples taken here, and any the 5 s sampler took meanwhile (a slow machine):
    // the counts are the same however they are split.
    let timestamps = body["timestamps"].as_array().unwrap();
    assert!(timestamps.len() >= 2, "{body}");
    let requests = |series: &Value| -> f64 {
        assert_eq!(series.as_array().unwrap().len(), timestamps.len(), "{body}");
        series
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() * 5.0)
            .sum()
    };
    let models = body["models"].as_array().unwrap();
    let claude = models
        .iter()
        .find(|model| model["model"] == "sim/claude-3")
        .unwrap_or_else(|| panic!("sim/claude-3 in {body}"));
    assert!(
        (requests(&claude["requests_per_second"]) - 3.0).abs() < 1e-9,
        "{body}"
    );
    assert_eq!(requests(&claude["errors_per_second"]), 0.0, "{body}");
    assert_eq!(requests(&claude["guardrail_interventions_per_second"]), 0.0);
    assert!(
        claude["latency_ms"]["p50"][0].is_null(),
        "before any request: {body}"
    );
    assert!(
        claude["latency_ms"]["p99"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p99| p99.as_f64().is_some_and(|ms| ms > 0.0)),
        "{body}"
    );
    // Unknown names share one series, as in /metrics.
    assert!(
        models.iter().any(|model| model["model"] == "other"),
        "{body}"
    );
    assert!((requests(&body["totals"]["requests_per_second"]) - 4.0).abs() < 1e-9);

    // The JSON API's default is the whole history (here: all of it).
    let (_, all) = admin_json(&gw, "/console/api/traffic").await;
    assert!(all["timestamps"].as_array().unwrap().len() >= timestamps.len());
}

#[tokio::test]
async fn the_admin_api_answers_openai_shaped_errors() {
    let gw = console_gateway().await;
    let request = http::Request::get(gw.url("/console/api/status"))
        .body(Full::default())
        .unwrap();
    let (status, body) = json_of(gw.send(request).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    common::assert_openai_error(&body, "invalid_admin_key");
}
