//! Credentials Bedrock reports expired while the cache still thought them fresh: the
//! provider invalidates them, fetches new ones and retries once, never more.
//!
//! The account assumes a role at bedrock-sim's STS on top of base keys from the environment,
//! so the process environment is set here, once, before any credential chain is built; this
//! binary's tests all use the same variables.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions fail the test on bad input, like the tests themselves"
)]

use std::sync::Once;
use std::time::Duration;

use bedrock_sim::{BedrockSim, RecordedAuth, Script, SimHandle, SimRole};
use gateway_adapter_bedrock::{
    AuthConfig, BedrockAccountConfig, BedrockProvider, RetryConfig, TimeoutOverrides,
};
use gateway_core::clock::SharedClock;
use gateway_core::{
    ChatProvider, ChatRequest, ContentPart, FinishReasonStyle, Message, ProviderError,
    ProviderRequest, Role, Route,
};

const ACCOUNT: &str = "assumed";
const BASE_KEY_ID: &str = "AKIDRETRYBASE";
const BASE_SECRET: &str = "retry/base/secret/EXAMPLEKEY";
const ROLE: &str = "arn:aws:iam::123456789012:role/bedrock-invoke";
const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const EXPIRED: &str = "The security token included in the request is expired";

/// The default chain sees only the base keys: no instance metadata, no `~/.aws`, no other
/// AWS variable from the host.
fn environment() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for name in [
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_STS",
            "AWS_BEARER_TOKEN_BEDROCK",
        ] {
            std::env::remove_var(name);
        }
        let nowhere = std::env::temp_dir().join("gateway-adapter-bedrock-no-such-aws-file");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_CONFIG_FILE", &nowhere);
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &nowhere);
        std::env::set_var("AWS_ACCESS_KEY_ID", BASE_KEY_ID);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", BASE_SECRET);
    });
}

async fn setup(script: Script) -> (SimHandle, BedrockProvider) {
    environment();
    let sim = BedrockSim::builder()
        .access_key(BASE_KEY_ID, BASE_SECRET)
        .role(SimRole::new(ROLE))
        .script(MODEL, script)
        .start()
        .await
        .unwrap();
    let account = BedrockAccountConfig {
        name: ACCOUNT.into(),
        region: "us-east-1".try_into().unwrap(),
        endpoint: Some(sim.url().try_into().unwrap()),
        auth: AuthConfig::AssumeRole {
            role_arn: ROLE.try_into().unwrap(),
            external_id: None,
            session_name: "ai-gateway".try_into().unwrap(),
            duration_seconds: Some(3600.try_into().unwrap()),
            sts_region: Some("us-east-1".try_into().unwrap()),
            sts_endpoint: Some(sim.url().try_into().unwrap()),
        },
        // The refresh is no retry of the retry mode: it happens with retries off too.
        retry: RetryConfig::NO_RETRIES,
        timeouts: TimeoutOverrides::default(),
        model_timeouts: Default::default(),
    };
    // The simulator's clock is the real one here, so the provider signs with it too.
    let provider = BedrockProvider::new(vec![account], SharedClock::system())
        .await
        .unwrap();
    (sim, provider)
}

fn route() -> Route {
    Route {
        public_name: format!("{ACCOUNT}/haiku"),
        account: ACCOUNT.into(),
        model_id: MODEL.into(),
        region: "us-east-1".into(),
        guardrail: Default::default(),
        finish_reason_style: FinishReasonStyle::Bedrock,
        drop_unsupported_params: false,
        price: None,
        family: None,
        kind: gateway_core::ModelKind::Chat,
    }
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![Message {
            role: Role::User,
            content: vec![ContentPart::Text("hello".into())],
        }],
        ..ChatRequest::default()
    }
}

fn session_tokens(sim: &SimHandle) -> Vec<Option<String>> {
    sim.requests()
        .into_iter()
        .map(|request| match request.auth {
            RecordedAuth::SigV4 { session_token, .. } => session_token,
            other => panic!("unexpected auth {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn expired_credentials_are_refreshed_and_the_request_retried_once() {
    let (sim, provider) = setup(Script::Sequence(vec![
        Script::error(403, "ExpiredTokenException", EXPIRED),
        Script::Echo,
    ]))
    .await;
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        provider.complete(ProviderRequest::new(&route(), &request(), None)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.text.as_deref(), Some("You said: hello"));
    assert_eq!(sim.sts_calls(), 2, "the stale credentials were replaced");
    let tokens = session_tokens(&sim);
    assert_eq!(tokens.len(), 2);
    assert!(tokens[0].is_some() && tokens[1].is_some());
    assert_ne!(tokens[0], tokens[1], "the retry used the new credentials");
}

#[tokio::test]
async fn a_second_expiry_is_not_retried_again() {
    let (sim, provider) = setup(Script::error(403, "ExpiredTokenException", EXPIRED)).await;
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        provider.complete(ProviderRequest::new(&route(), &request(), None)),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(
        err,
        ProviderError::Unauthorized {
            account: ACCOUNT.into(),
            message: EXPIRED.into()
        }
    );
    assert_eq!(sim.requests().len(), 2, "one attempt and one retry");
}
