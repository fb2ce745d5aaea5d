//! Assume-role and default-chain accounts whose base credentials are the access keys in
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, against the simulator's STS and Bedrock.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions fail the test on bad input, like the tests themselves"
)]

mod credentials_support;

use std::time::Duration;

use bedrock_sim::{BedrockSim, SimHandle, SimRole};
use credentials_support::{
    converse, environment, sigv4, OffsetClock, BASE_KEY_ID, BASE_SECRET, REGION,
};
use gateway_adapter_bedrock::{AccountCredentials, AuthConfig};
use gateway_core::ProviderError;

const ROLE: &str = "arn:aws:iam::123456789012:role/bedrock-invoke";
const EXTERNAL_ID: &str = "ext-7f3a-secret";

fn setup() {
    environment(&[
        ("AWS_ACCESS_KEY_ID", BASE_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", BASE_SECRET),
    ]);
}

async fn sim_with(role: SimRole) -> SimHandle {
    BedrockSim::builder()
        .access_key(BASE_KEY_ID, BASE_SECRET)
        .role(role)
        .start()
        .await
        .unwrap()
}

fn assume_role(sim_url: &str, external_id: Option<&str>) -> AuthConfig {
    AuthConfig::AssumeRole {
        role_arn: ROLE.try_into().unwrap(),
        external_id: external_id.map(|id| id.try_into().unwrap()),
        session_name: "ai-gateway".try_into().unwrap(),
        duration_seconds: Some(3600.try_into().unwrap()),
        sts_region: None,
        sts_endpoint: Some(sim_url.try_into().unwrap()),
    }
}

#[tokio::test]
async fn assume_role_end_to_end() {
    setup();
    let sim = sim_with(SimRole::new(ROLE).external_id(EXTERNAL_ID)).await;
    let clock = OffsetClock::default();
    let account = AccountCredentials::from_config_with_clock(
        "internal-bedrock",
        &assume_role(&sim.url(), Some(EXTERNAL_ID)),
        REGION,
        clock.shared(),
    )
    .await
    .unwrap();
    assert_eq!(sim.sts_calls(), 0, "building must not call STS");

    account.probe().await.unwrap();
    let auth = account.get().await.unwrap();
    let (key_id, has_token) = sigv4(&auth);
    assert!(key_id.starts_with("ASIA"), "{key_id}");
    assert!(has_token);
    assert_eq!(sim.sts_calls(), 1, "probe and get share one AssumeRole");

    let (status, body) = converse(&sim, &auth, clock.shared()).await;
    assert_eq!(status, 200, "{body}");
    let recorded = sim.requests();
    assert_eq!(
        format!("{:?}", recorded[0].auth),
        format!("SigV4 {{ access_key_id: {key_id:?}, session_token: Some(\"<redacted>\") }}")
    );
}

#[tokio::test]
async fn default_chain_uses_the_environment_keys_without_sts() {
    setup();
    let sim = sim_with(SimRole::new(ROLE)).await;
    let clock = OffsetClock::default();
    let account = AccountCredentials::from_config_with_clock(
        "chain",
        &AuthConfig::DefaultChain {},
        REGION,
        clock.shared(),
    )
    .await
    .unwrap();
    let auth = account.get().await.unwrap();
    assert_eq!(sigv4(&auth), (BASE_KEY_ID.to_owned(), false));
    let (status, body) = converse(&sim, &auth, clock.shared()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sim.sts_calls(), 0);
    // Long-term keys do not expire: fetching them again would not help, so no retry.
    assert!(!account.invalidate(&auth));
    assert_eq!(sigv4(&account.get().await.unwrap()).0, BASE_KEY_ID);
}

#[tokio::test]
async fn refused_roles_name_account_and_role_and_spare_other_accounts() {
    setup();
    let sim = BedrockSim::builder()
        .access_key(BASE_KEY_ID, BASE_SECRET)
        .role(SimRole::new(ROLE).external_id(EXTERNAL_ID))
        .role(SimRole::new("arn:aws:iam::123456789012:role/revoked").denied())
        .start()
        .await
        .unwrap();
    let wrong_id = AccountCredentials::from_config(
        "partner",
        &assume_role(&sim.url(), Some("not-the-agreed-id")),
        REGION,
    )
    .await
    .unwrap();
    let revoked_config = AuthConfig::AssumeRole {
        role_arn: "arn:aws:iam::123456789012:role/revoked".try_into().unwrap(),
        external_id: None,
        session_name: "ai-gateway".try_into().unwrap(),
        duration_seconds: None,
        sts_region: Some("eu-west-1".try_into().unwrap()),
        sts_endpoint: Some(sim.url().try_into().unwrap()),
    };
    let revoked = AccountCredentials::from_config("revoked", &revoked_config, REGION)
        .await
        .unwrap();
    let healthy = AccountCredentials::from_config(
        "healthy",
        &assume_role(&sim.url(), Some(EXTERNAL_ID)),
        REGION,
    )
    .await
    .unwrap();

    let wrong_id_error = wrong_id.get().await.unwrap_err();
    let revoked_error = revoked.get().await.unwrap_err();
    for error in [&wrong_id_error, &revoked_error] {
        assert!(
            matches!(error, ProviderError::Credentials { .. }),
            "{error:?}"
        );
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("not-the-agreed-id"), "{shown}");
        assert!(!shown.contains(EXTERNAL_ID), "{shown}");
        assert!(!shown.contains(BASE_SECRET), "{shown}");
    }
    insta::assert_snapshot!("wrong_external_id", wrong_id_error.to_string());
    insta::assert_snapshot!("denied_role", revoked_error.to_string());

    let (key_id, has_token) = sigv4(&healthy.get().await.unwrap());
    assert!(key_id.starts_with("ASIA") && has_token);

    // Failures are not cached: the next request asks STS again.
    let calls = sim.sts_calls();
    assert!(wrong_id.get().await.is_err());
    assert_eq!(sim.sts_calls(), calls + 1);
}

#[tokio::test]
async fn unreachable_sts_is_a_credentials_error_naming_the_role() {
    setup();
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let account = AccountCredentials::from_config(
        "internal-bedrock",
        &assume_role(&format!("http://127.0.0.1:{port}"), Some(EXTERNAL_ID)),
        REGION,
    )
    .await
    .unwrap();
    let error = tokio::time::timeout(Duration::from_secs(30), account.probe())
        .await
        .unwrap()
        .unwrap_err();
    let ProviderError::Credentials { account, message } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(account, "internal-bedrock");
    assert!(
        message.starts_with(&format!("assume role `{ROLE}`: ")),
        "{message}"
    );
    assert!(!message.contains(EXTERNAL_ID), "{message}");
    // The cause is the transport's own words (OS-specific), after the SDK's context.
    assert!(message.contains("dispatch failure"), "{message}");
}

#[tokio::test]
async fn credentials_bedrock_calls_expired_are_replaced_once() {
    setup();
    // Three-minute sessions; the simulator's clock then jumps past their end while ours does
    // not, as when credentials are revoked or the cache's clock is behind.
    let sim = BedrockSim::builder()
        .access_key(BASE_KEY_ID, BASE_SECRET)
        .role(SimRole::new(ROLE))
        .temp_credentials_ttl(Duration::from_secs(180))
        .start()
        .await
        .unwrap();
    let clock = OffsetClock::default();
    let account = AccountCredentials::from_config_with_clock(
        "internal-bedrock",
        &assume_role(&sim.url(), None),
        REGION,
        clock.shared(),
    )
    .await
    .unwrap();
    let stale = account.get().await.unwrap();
    sim.advance_clock(Duration::from_secs(200));
    let (status, body) = converse(&sim, &stale, clock.shared()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("expired"), "{body}");

    assert!(account.invalidate(&stale));
    let fresh = account.get().await.unwrap();
    assert_ne!(sigv4(&fresh).0, sigv4(&stale).0);
    let (status, body) = converse(&sim, &fresh, clock.shared()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sim.sts_calls(), 2);
    // A second report about the same stale credentials does not throw the fresh ones away.
    assert!(account.invalidate(&stale));
    assert_eq!(sigv4(&account.get().await.unwrap()).0, sigv4(&fresh).0);
    assert_eq!(sim.sts_calls(), 2);
}
