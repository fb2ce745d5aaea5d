//! Secrets never leave the gateway: every kind of credential it holds (gateway keys, access
//! keys, session tokens, Bedrock API keys, external ids) is sent through every error path the
//! gateway has, on the real `gateway serve` process with debug logs and trace export on; then
//! every log line, every response (status line, headers and body), `/metrics` and every
//! exported span is searched for each of them.

#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use bedrock_sim::{Script, SimHandle, SimRole};
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use serde_json::json;

const GATEWAY_KEY: &str = "sk-sweep-gateway-key-5f0c2b9d71";
const OTHER_GATEWAY_KEY: &str = "sk-sweep-second-key-8e4a6c3f02";
const SESSION_ACCESS_KEY_ID: &str = "ASIASWEEPSESSION0001";
const SESSION_SECRET: &str = "sweep/session/secret/access/key/7Hq2";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjSWVlcFNlc3Npb25Ub2tlbg";
const WRONG_SECRET: &str = "sweep/wrong/secret/access/key/9Kd1";
const API_KEY: &str = "ABSKQmVkcm9ja0FQSUtleVN3ZWVwMDAx";
const WRONG_API_KEY: &str = "ABSKV3JvbmdCZWRyb2NrS2V5U3dlZXAwMg";
const EXTERNAL_ID: &str = "sweep-external-id-3a7b1c";
const WRONG_EXTERNAL_ID: &str = "sweep-wrong-external-id-6d2e";
const ADMIN_KEY: &str = "sweep-console-admin-key-4b9e1d";
const ROLE: &str = "arn:aws:iam::111122223333:role/bedrock-invoke";
const DENIED_ROLE: &str = "arn:aws:iam::111122223333:role/not-for-you";
const THROTTLED: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const BROKEN: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";
const CUT: &str = "anthropic.claude-3-opus-20240229-v1:0";

/// Every secret the gateway is given, by what it is. The base credentials of the assume-role
/// accounts (`ACCESS_KEY_ID`, `SECRET`) come from the process environment.
const SECRETS: &[(&str, &str)] = &[
    ("gateway key", GATEWAY_KEY),
    ("second gateway key", OTHER_GATEWAY_KEY),
    ("environment secret access key", SECRET),
    ("session secret access key", SESSION_SECRET),
    ("session token", SESSION_TOKEN),
    ("wrong secret access key", WRONG_SECRET),
    ("Bedrock API key", API_KEY),
    ("wrong Bedrock API key", WRONG_API_KEY),
    ("external id", EXTERNAL_ID),
    ("wrong external id", WRONG_EXTERNAL_ID),
    ("console admin key", ADMIN_KEY),
];

async fn simulator() -> SimHandle {
    sim()
        .session_credentials(SESSION_ACCESS_KEY_ID, SESSION_SECRET, SESSION_TOKEN)
        .api_key(API_KEY)
        .role(SimRole::new(ROLE).external_id(EXTERNAL_ID))
        .role(SimRole::new(DENIED_ROLE).denied())
        .script(THROTTLED, Script::throttling())
        .script(
            BROKEN,
            Script::error(500, "InternalServerException", "the model broke"),
        )
        .script(
            CUT,
            Script::CutBody {
                status: 200,
                content_type: "application/json".into(),
                body: Bytes::from_static(b"{\"output\":{\"mess"),
            },
        )
        .start()
        .await
        .unwrap()
}

/// One account per kind of credential, each also with a wrong twin, and models whose
/// upstream fails in each way the simulator can.
fn config(sim: &SimHandle, otlp: &str) -> String {
    let url = sim.url();
    let models = format!(
        r#"models.ok = {{ model_id = "{CLAUDE}" }}
models.throttled = {{ model_id = "{THROTTLED}" }}
models.broken = {{ model_id = "{BROKEN}" }}
models.cut = {{ model_id = "{CUT}" }}"#
    );
    let account = |name: &str, auth: String| {
        format!(
            r#"
[accounts.{name}]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "{url}"
retry = {{ max_attempts = 1 }}
auth = {auth}
{models}
"#
        )
    };
    let mut text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
worker_threads = 1
request_id_to_bedrock = true

[telemetry]
otlp_endpoint = "{otlp}"

[auth]
keys = [
  {{ name = "sweep", key = "{GATEWAY_KEY}" }},
  {{ name = "second", key = "{OTHER_GATEWAY_KEY}", rpm = 1 }},
]

[console]
admin_keys = [{{ name = "ops", key = "{ADMIN_KEY}" }}]
"#
    );
    let accounts = [
        (
            "session",
            format!(
                r#"{{ type = "access-key", access_key_id = "{SESSION_ACCESS_KEY_ID}", secret_access_key = "{SESSION_SECRET}", session_token = "{SESSION_TOKEN}" }}"#
            ),
        ),
        (
            "wrongkey",
            format!(
                r#"{{ type = "access-key", access_key_id = "{ACCESS_KEY_ID}", secret_access_key = "{WRONG_SECRET}" }}"#
            ),
        ),
        (
            "apikey",
            format!(r#"{{ type = "api-key", key = "{API_KEY}" }}"#),
        ),
        (
            "wrongapikey",
            format!(r#"{{ type = "api-key", key = "{WRONG_API_KEY}" }}"#),
        ),
        (
            "role",
            format!(
                r#"{{ type = "assume-role", role_arn = "{ROLE}", external_id = "{EXTERNAL_ID}", sts_endpoint = "{url}" }}"#
            ),
        ),
        (
            "wrongexternal",
            format!(
                r#"{{ type = "assume-role", role_arn = "{ROLE}", external_id = "{WRONG_EXTERNAL_ID}", sts_endpoint = "{url}" }}"#
            ),
        ),
        (
            "denied",
            format!(
                r#"{{ type = "assume-role", role_arn = "{DENIED_ROLE}", external_id = "{EXTERNAL_ID}", sts_endpoint = "{url}" }}"#
            ),
        ),
    ];
    for (name, auth) in accounts {
        text.push_str(&account(name, auth));
    }
    text
}

/// Everything one exchange showed the client: status line, headers, body.
async fn exchange(gateway: &GatewayProcess, request: http::Request<Full<Bytes>>) -> String {
    let response = gateway.send(request).await;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    format!(
        "{:?} {:?}\n{}",
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body)
    )
}

fn chat(
    gateway: &GatewayProcess,
    authorization: Option<&str>,
    body: &serde_json::Value,
) -> http::Request<Full<Bytes>> {
    let mut request = http::Request::post(gateway.url("/v1/chat/completions"))
        .header("content-type", "application/json");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    request
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

#[tokio::test]
async fn no_credential_reaches_a_log_line_a_response_a_metric_or_a_span() {
    let sim = simulator().await;
    let (otlp, mut exports) = otlp_collector().await;
    let mut gateway = GatewayProcess::start_with_env(
        "secrets",
        &config(&sim, otlp.trim_end_matches("/v1/traces")),
        &[("RUST_LOG", "debug"), ("OTEL_BSP_SCHEDULE_DELAY", "50")],
    )
    .await;
    let bearer = format!("Bearer {GATEWAY_KEY}");
    let mut seen_by_clients = Vec::new();

    // Wrong, mangled and misplaced gateway keys.
    let near_misses = [
        None,
        Some(format!("Bearer {GATEWAY_KEY}x")),
        Some(format!("Bearer {}", &GATEWAY_KEY[1..])),
        Some(format!("bearer  {GATEWAY_KEY} trailing")),
        Some(format!("Basic {GATEWAY_KEY}")),
        Some(GATEWAY_KEY.to_owned()),
        Some(format!("Bearer {API_KEY}")),
        Some(format!("Bearer {SESSION_TOKEN}")),
    ];
    for authorization in &near_misses {
        let body = json!({"model": "session/ok", "messages": [{"role": "user", "content": "hi"}]});
        seen_by_clients
            .push(exchange(&gateway, chat(&gateway, authorization.as_deref(), &body)).await);
    }

    // Every account, every upstream outcome, streamed and not.
    for account in [
        "session",
        "wrongkey",
        "apikey",
        "wrongapikey",
        "role",
        "wrongexternal",
        "denied",
    ] {
        for model in ["ok", "throttled", "broken", "cut"] {
            for stream in [false, true] {
                let body = json!({
                    "model": format!("{account}/{model}"),
                    "stream": stream,
                    "messages": [{"role": "user", "content": "hi"}],
                });
                seen_by_clients
                    .push(exchange(&gateway, chat(&gateway, Some(&bearer), &body)).await);
            }
        }
    }

    // Requests refused before any upstream call: bad JSON, unknown fields and models, a
    // key over its limit, bodies that put a secret where an error message quotes the input.
    let second = format!("Bearer {OTHER_GATEWAY_KEY}");
    let refused = [
        (bearer.as_str(), json!({"model": "session/ok"})),
        (
            bearer.as_str(),
            json!({"model": "nope/nope", "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            bearer.as_str(),
            json!({"model": "session/ok", "messages": [{"role": "wizard", "content": "hi"}]}),
        ),
        (
            second.as_str(),
            json!({"model": "session/ok", "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            second.as_str(),
            json!({"model": "session/ok", "messages": [{"role": "user", "content": "hi"}]}),
        ),
    ];
    for (authorization, body) in &refused {
        seen_by_clients.push(exchange(&gateway, chat(&gateway, Some(authorization), body)).await);
    }
    let admin = format!("Bearer {ADMIN_KEY}");
    for path in [
        "/v1/models",
        "/health",
        "/ready",
        "/metrics",
        "/nope",
        "/console",
        "/console/api/status",
        "/console/api/routes",
        "/console/api/traffic",
    ] {
        for authorization in [None, Some(bearer.as_str()), Some(admin.as_str())] {
            let mut request = http::Request::get(gateway.url(path));
            if let Some(authorization) = authorization {
                request = request.header("authorization", authorization);
            }
            seen_by_clients.push(exchange(&gateway, request.body(Full::default()).unwrap()).await);
        }
    }
    let (_, metrics) = gateway.get_text("/metrics").await;

    // The console's status shows the failing account's credentials as an error naming its
    // role (and, as everything above, no secret).
    let request = http::Request::get(gateway.url("/console/api/status"))
        .header("authorization", &admin)
        .body(Full::default())
        .unwrap();
    let (parts, body) = gateway.send(request).await.into_parts();
    assert_eq!(parts.status, 200);
    let status: serde_json::Value =
        serde_json::from_slice(&body.collect().await.unwrap().to_bytes()).unwrap();
    let wrong_external = status["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|account| account["name"] == "wrongexternal")
        .unwrap_or_else(|| panic!("wrongexternal in {status}"));
    assert_eq!(wrong_external["auth"], "assume-role", "{status}");
    assert_eq!(wrong_external["credentials"]["state"], "error", "{status}");
    let error = wrong_external["credentials"]["last_error"]
        .as_str()
        .unwrap();
    assert!(error.contains(ROLE), "{error}");

    // A reload refused for a bad value next to the secrets, then a good one.
    let good = config(&sim, otlp.trim_end_matches("/v1/traces"));
    gateway
        .reload(
            &good.replace(
                &format!("external_id = \"{EXTERNAL_ID}\""),
                &format!("external_id = \"{EXTERNAL_ID} with spaces\""),
            ),
            "configuration not reloaded, the running one stays",
        )
        .await;
    gateway.reload(&good, "configuration reloaded").await;

    gateway.signal("TERM");
    let log: Vec<String> = gateway
        .rest_of_log()
        .await
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(gateway.exit_code().await, Some(0));
    let mut spans = Vec::new();
    while let Ok(export) = exports.try_recv() {
        spans.push(format!("{export:?}"));
    }

    assert!(log.len() > 50, "the sweep logged its requests: {log:#?}");
    assert!(
        spans
            .iter()
            .any(|span| span.contains("gen_ai.request.model")),
        "the spans were exported before the process exited"
    );
    assert!(
        seen_by_clients
            .iter()
            .any(|seen| seen.contains("credentials_unavailable"))
            && seen_by_clients
                .iter()
                .any(|seen| seen.contains("upstream_unauthorized")),
        "the credential failures were exercised: {seen_by_clients:#?}"
    );
    for (what, secret) in SECRETS {
        for (place, texts) in [
            ("log", &log),
            ("response", &seen_by_clients),
            ("span", &spans),
            ("metrics", &vec![metrics.clone()]),
        ] {
            if let Some(text) = texts.iter().find(|text| text.contains(secret)) {
                panic!("the {what} is in a {place}: {text}");
            }
        }
    }
}
