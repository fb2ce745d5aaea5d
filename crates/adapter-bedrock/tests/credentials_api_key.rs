//! `api-key` accounts: a Bedrock API key from the config or `AWS_BEARER_TOKEN_BEDROCK`, sent as
//! `Authorization: Bearer`, never SigV4.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions fail the test on bad input, like the tests themselves"
)]

mod credentials_support;

use bedrock_sim::{BedrockSim, RecordedAuth};
use credentials_support::{converse, environment, OffsetClock, REGION};
use gateway_adapter_bedrock::{AccountCredentials, AuthConfig, CredentialsError, RequestAuth};

const KEY: &str = "ABSKQmVkcm9ja0FQSUtleS1leGFtcGxlLWtleQ==";

// One test: it changes AWS_BEARER_TOKEN_BEDROCK half-way.
#[tokio::test]
async fn api_key_from_config_or_environment() {
    environment(&[]);
    let from_env = AuthConfig::ApiKey { key: None };
    let Err(CredentialsError::Invalid { account, message }) =
        AccountCredentials::from_config("keyless", &from_env, REGION).await
    else {
        panic!("an api-key account without a key must not build");
    };
    assert_eq!(account, "keyless");
    insta::assert_snapshot!(message, @"auth type `api-key` needs `key` or the AWS_BEARER_TOKEN_BEDROCK environment variable");

    std::env::set_var("AWS_BEARER_TOKEN_BEDROCK", KEY);
    let sim = BedrockSim::builder().api_key(KEY).start().await.unwrap();
    let configured = AuthConfig::ApiKey {
        key: Some(KEY.into()),
    };
    for auth in [&from_env, &configured] {
        let account = AccountCredentials::from_config("keyed", auth, REGION)
            .await
            .unwrap();
        account.probe().await.unwrap();
        let request_auth = account.get().await.unwrap();
        assert!(matches!(&request_auth, RequestAuth::Bearer(key) if &**key == KEY));
        assert!(!format!("{account:?} {request_auth:?}").contains(KEY));
        assert!(!account.invalidate(&request_auth));
        let (status, body) = converse(&sim, &request_auth, OffsetClock::default().shared()).await;
        assert_eq!(status, 200, "{body}");
    }
    let recorded = sim.requests();
    assert_eq!(recorded.len(), 2);
    assert!(recorded.iter().all(|r| r.auth == RecordedAuth::Bearer));
    assert_eq!(sim.sts_calls(), 0);
}
