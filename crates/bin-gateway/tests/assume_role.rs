//! Assumed roles end to end: base credentials from the environment, STS AssumeRole at the
//! simulator, Bedrock calls signed with the temporary credentials and session token.
//!
//! The default chain reads process environment variables, so this binary sets them once for
//! all its tests (to the same values).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::sync::Once;

use bedrock_sim::{RecordedAuth, SimRole};
use common::*;
use serde_json::json;

const ROLE: &str = "arn:aws:iam::111122223333:role/bedrock-invoke";
const DENIED_ROLE: &str = "arn:aws:iam::111122223333:role/not-for-you";
const EXTERNAL_ID: &str = "external-id-for-tests";

fn base_identity_in_environment() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET);
        std::env::remove_var("AWS_SESSION_TOKEN");
        std::env::remove_var("AWS_PROFILE");
        std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/aws-config-for-tests");
        std::env::set_var(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials-for-tests",
        );
    });
}

const CONFIG: &str = r#"
[auth]
keys = [{ name = "tests", key = "test-gateway-key" }]

[accounts.cross-account]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "${SIM_URL}"
models.claude-3 = { model_id = "anthropic.claude-3-sonnet-20240229-v1:0" }

[accounts.cross-account.auth]
type = "assume-role"
role_arn = "arn:aws:iam::111122223333:role/bedrock-invoke"
external_id = "${EXTERNAL_ID}"
sts_endpoint = "${SIM_URL}"

[accounts.denied]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "${SIM_URL}"
models.claude-3 = { model_id = "anthropic.claude-3-sonnet-20240229-v1:0" }
auth = { type = "assume-role", role_arn = "arn:aws:iam::111122223333:role/not-for-you", sts_endpoint = "${SIM_URL}" }

[accounts.wrong-external-id]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "${SIM_URL}"
models.claude-3 = { model_id = "anthropic.claude-3-sonnet-20240229-v1:0" }
auth = { type = "assume-role", role_arn = "arn:aws:iam::111122223333:role/bedrock-invoke", external_id = "guessed-wrong", sts_endpoint = "${SIM_URL}" }

[accounts.static]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "${SIM_URL}"
models.claude-3 = { model_id = "anthropic.claude-3-sonnet-20240229-v1:0" }
auth = { type = "access-key", access_key_id = "AKIDTESTGATEWAY00001", secret_access_key = "${SIM_SECRET}" }

[accounts.chain]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "${SIM_URL}"
models.claude-3 = { model_id = "anthropic.claude-3-sonnet-20240229-v1:0" }
auth = { type = "default-chain" }
"#;

async fn gateway() -> TestGateway {
    base_identity_in_environment();
    let sim = sim()
        .role(SimRole::new(ROLE).external_id(EXTERNAL_ID))
        .role(SimRole::new(DENIED_ROLE).denied());
    TestGateway::start_with_config(sim, CONFIG, &[("EXTERNAL_ID", EXTERNAL_ID)]).await
}

#[tokio::test]
async fn requests_are_signed_with_the_assumed_roles_temporary_credentials() {
    let gw = gateway().await;
    let (status, body) = gw
        .chat(&json!({"model": "cross-account/claude-3", "messages": user("hi")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.sim.sts_calls(), 1);
    match &gw.sim.requests()[0].auth {
        RecordedAuth::SigV4 {
            access_key_id,
            session_token,
        } => {
            assert_ne!(
                access_key_id, ACCESS_KEY_ID,
                "signed with the role, not the base identity"
            );
            assert!(session_token.is_some(), "x-amz-security-token is sent");
        }
        other => panic!("expected SigV4, got {other:?}"),
    }
}

#[tokio::test]
async fn concurrent_requests_share_one_sts_call() {
    let gw = std::sync::Arc::new(gateway().await);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move {
                gw.chat(&json!({"model": "cross-account/claude-3", "messages": user("hi")}))
                    .await
            })
        })
        .collect();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(gw.sim.sts_calls(), 1);
}

#[tokio::test]
async fn a_denied_role_fails_only_its_own_account_and_names_it() {
    let gw = gateway().await;
    for (model, role) in [
        ("denied/claude-3", DENIED_ROLE),
        ("wrong-external-id/claude-3", ROLE),
    ] {
        let (status, body) = gw
            .chat(&json!({"model": model, "messages": user("hi")}))
            .await;
        assert_eq!(status, 502, "{model}: {body}");
        assert_openai_error(&body, "credentials_unavailable");
        let message = body["error"]["message"].as_str().unwrap();
        let account = model.split('/').next().unwrap();
        assert!(message.contains(&format!("`{account}`")), "{message}");
        assert!(message.contains(role), "{message}");
        assert!(
            !message.contains("guessed-wrong"),
            "no external id: {message}"
        );
        assert!(!message.contains(SECRET), "{message}");
    }
    for model in [
        "cross-account/claude-3",
        "static/claude-3",
        "chain/claude-3",
    ] {
        let (status, body) = gw
            .chat(&json!({"model": model, "messages": user("hi")}))
            .await;
        assert_eq!(status, 200, "{model} keeps working: {body}");
    }
    // The failure is not cached: the next request asks STS again.
    let before = gw.sim.sts_calls();
    let (status, _) = gw
        .chat(&json!({"model": "denied/claude-3", "messages": user("hi")}))
        .await;
    assert_eq!(status, 502);
    assert!(gw.sim.sts_calls() > before);
}

#[tokio::test]
async fn the_default_chain_uses_the_environments_keys_without_sts() {
    let gw = gateway().await;
    let (status, body) = gw
        .chat(&json!({"model": "chain/claude-3", "messages": user("hi")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.sim.sts_calls(), 0);
    assert!(matches!(
        &gw.sim.requests()[0].auth,
        RecordedAuth::SigV4 { access_key_id, session_token: None } if access_key_id == ACCESS_KEY_ID
    ));
}

#[tokio::test]
async fn the_console_shows_each_accounts_credentials_as_its_cache_holds_them() {
    base_identity_in_environment();
    let sim = sim()
        .role(SimRole::new(ROLE).external_id(EXTERNAL_ID))
        .role(SimRole::new(DENIED_ROLE).denied());
    let config = format!(
        "{CONFIG}\n[console]\nadmin_keys = [{{ name = \"ops\", key = \"console-admin-key\" }}]\n"
    );
    let gw = TestGateway::start_with_config(sim, &config, &[("EXTERNAL_ID", EXTERNAL_ID)]).await;
    for model in ["cross-account/claude-3", "denied/claude-3"] {
        gw.chat(&json!({"model": model, "messages": user("hi")}))
            .await;
    }
    let (status, body) = gw
        .get("/console/api/status", Some("console-admin-key"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains(EXTERNAL_ID) && !body.contains(SECRET),
        "{body}"
    );
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let account = |name: &str| {
        status["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|account| account["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {status}"))
            .clone()
    };
    let assumed = account("cross-account");
    assert_eq!(assumed["auth"], "assume-role");
    assert_eq!(assumed["credentials"]["state"], "valid", "{assumed}");
    for time in ["valid_until", "last_refresh"] {
        let text = assumed["credentials"][time].as_str().unwrap();
        assert!(text.len() == 20 && text.ends_with('Z'), "{time}: {text}");
    }
    let denied = account("denied");
    assert_eq!(denied["credentials"]["state"], "error", "{denied}");
    assert!(
        denied["credentials"]["last_error"]
            .as_str()
            .unwrap()
            .contains(DENIED_ROLE),
        "{denied}"
    );
    // Never asked yet: nothing fetched.
    assert_eq!(account("chain")["credentials"]["state"], "unknown");
    assert_eq!(account("static")["credentials"]["state"], "valid");
}
