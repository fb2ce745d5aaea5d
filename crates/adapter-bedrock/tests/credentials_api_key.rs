//! `api-key` accounts: the Bedrock API key the host passes (the gateway's config edge decides
//! between its config and `AWS_BEARER_TOKEN_BEDROCK`) is sent as `Authorization: Bearer`, never
//! SigV4, and the adapter reads no environment variable for it.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions fail the test on bad input, like the tests themselves"
)]

mod credentials_support;

use bedrock_sim::{BedrockSim, RecordedAuth};
use credentials_support::{converse, environment, OffsetClock, REGION};
use gateway_adapter_bedrock::{AccountCredentials, AuthConfig, RequestAuth};

const KEY: &str = "ABSKQmVkcm9ja0FQSUtleS1leGFtcGxlLWtleQ==";

// One test: it sets AWS_BEARER_TOKEN_BEDROCK.
#[tokio::test]
async fn api_key_is_sent_as_bearer_and_the_environment_is_not_read() {
    environment(&[]);
    // A different key in the environment must not replace the one passed in.
    std::env::set_var("AWS_BEARER_TOKEN_BEDROCK", "not-the-configured-key");
    let sim = BedrockSim::builder().api_key(KEY).start().await.unwrap();
    let configured = AuthConfig::ApiKey {
        key: KEY.try_into().unwrap(),
    };
    for _ in 0..2 {
        let account = AccountCredentials::from_config("keyed", &configured, REGION)
            .await
            .unwrap();
        account.probe().await.unwrap();
        let request_auth = account.get().await.unwrap();
        assert!(matches!(&request_auth, RequestAuth::Bearer(key) if &**key == KEY));
        assert!(!format!("{account:?} {request_auth:?} {configured:?}").contains(KEY));
        assert!(!account.invalidate(&request_auth));
        let (status, body) = converse(&sim, &request_auth, OffsetClock::default().shared()).await;
        assert_eq!(status, 200, "{body}");
    }
    let recorded = sim.requests();
    assert_eq!(recorded.len(), 2);
    assert!(recorded.iter().all(|r| r.auth == RecordedAuth::Bearer));
    assert_eq!(sim.sts_calls(), 0);
}
