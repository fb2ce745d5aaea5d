//! EKS IRSA: the pod's identity is a web identity token file plus `AWS_ROLE_ARN`, and its STS
//! endpoint comes from `AWS_ENDPOINT_URL_STS` (here: the simulator). `assume-role` accounts
//! exchange the token (AssumeRoleWithWebIdentity) and then assume their role (AssumeRole);
//! `default-chain` accounts use the pod role's credentials as they are.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions fail the test on bad input, like the tests themselves"
)]

mod credentials_support;

use bedrock_sim::{BedrockSim, SimRole};
use credentials_support::{converse, environment, scratch_dir, sigv4, OffsetClock, REGION};
use gateway_adapter_bedrock::{AccountCredentials, AuthConfig};

const POD_ROLE: &str = "arn:aws:iam::123456789012:role/gateway-pod";
const BEDROCK_ROLE: &str = "arn:aws:iam::210987654321:role/bedrock-invoke";
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpnYXRld2F5In0.c2lnbmF0dXJl";

fn assume(sts_endpoint: Option<String>) -> AuthConfig {
    AuthConfig::AssumeRole {
        role_arn: BEDROCK_ROLE.try_into().unwrap(),
        external_id: Some("partner-42".try_into().unwrap()),
        session_name: "ai-gateway".try_into().unwrap(),
        duration_seconds: None,
        sts_region: Some("us-west-2".try_into().unwrap()),
        sts_endpoint: sts_endpoint.map(|url| url.try_into().unwrap()),
    }
}

// One test: the environment points at this one simulator.
#[tokio::test]
async fn web_identity_then_assume_role() {
    let sim = BedrockSim::builder()
        .web_identity_token(TOKEN)
        .role(SimRole::new(POD_ROLE))
        .role(SimRole::new(BEDROCK_ROLE).external_id("partner-42"))
        .start()
        .await
        .unwrap();
    let token_file = scratch_dir().join("eks-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let token_path = token_file.to_str().unwrap().to_owned();
    let sim_url = sim.url();
    environment(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_path),
        ("AWS_ROLE_ARN", POD_ROLE),
        ("AWS_ENDPOINT_URL_STS", &sim_url),
    ]);
    let clock = OffsetClock::default();

    // sts_endpoint configured: AssumeRoleWithWebIdentity goes where the environment says,
    // AssumeRole where the config says (both the simulator here).
    let irsa = AccountCredentials::from_config_with_clock(
        "irsa",
        &assume(Some(sim.url())),
        REGION,
        clock.shared(),
    )
    .await
    .unwrap();
    let auth = irsa.get().await.unwrap();
    let (key_id, has_token) = sigv4(&auth);
    assert!(key_id.starts_with("ASIA") && has_token, "{key_id}");
    assert_eq!(
        sim.sts_calls(),
        2,
        "AssumeRoleWithWebIdentity, then AssumeRole"
    );
    let (status, body) = converse(&sim, &auth, clock.shared()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sigv4(&irsa.get().await.unwrap()).0, key_id);
    assert_eq!(sim.sts_calls(), 2, "cached");

    // No sts_endpoint: AssumeRole follows AWS_ENDPOINT_URL_STS as well, like any AWS SDK.
    let via_env = AccountCredentials::from_config_with_clock(
        "irsa-env",
        &assume(None),
        REGION,
        clock.shared(),
    )
    .await
    .unwrap();
    let auth = via_env.get().await.unwrap();
    assert!(sigv4(&auth).1);
    assert_eq!(sim.sts_calls(), 4);

    // default-chain: the pod role's own credentials.
    let pod = AccountCredentials::from_config_with_clock(
        "pod",
        &AuthConfig::DefaultChain {},
        REGION,
        clock.shared(),
    )
    .await
    .unwrap();
    let auth = pod.get().await.unwrap();
    let (pod_key, has_token) = sigv4(&auth);
    assert!(pod_key.starts_with("ASIA") && has_token);
    assert_eq!(sim.sts_calls(), 5);
    let (status, body) = converse(&sim, &auth, clock.shared()).await;
    assert_eq!(status, 200, "{body}");
}
