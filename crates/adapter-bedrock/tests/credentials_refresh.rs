//! Assumed-role credentials are renewed before they expire, by exactly one STS call per
//! renewal, while concurrent requests keep getting valid credentials. Time is moved on both
//! sides (our clock and the simulator's) instead of waiting for real expiry.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions fail the test on bad input, like the tests themselves"
)]

mod credentials_support;

use std::collections::BTreeSet;
use std::time::Duration;

use bedrock_sim::{BedrockSim, SimRole};
use credentials_support::{
    converse, environment, sigv4, OffsetClock, BASE_KEY_ID, BASE_SECRET, REGION,
};
use gateway_adapter_bedrock::{AccountCredentials, AuthConfig};

const ROLE: &str = "arn:aws:iam::123456789012:role/bedrock-invoke";

/// Access key ids handed to `n` concurrent `get()`s.
async fn concurrent_gets(account: &AccountCredentials, n: usize) -> Vec<String> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let account = account.clone();
            tokio::spawn(async move { sigv4(&account.get().await.unwrap()).0 })
        })
        .collect();
    let mut keys = Vec::with_capacity(n);
    for task in tasks {
        keys.push(task.await.unwrap());
    }
    keys
}

fn distinct(keys: &[String]) -> BTreeSet<&str> {
    keys.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_is_one_sts_call_and_never_stalls_valid_credentials() {
    environment(&[
        ("AWS_ACCESS_KEY_ID", BASE_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", BASE_SECRET),
    ]);
    // One-hour sessions (the simulator's default): renewal starts 5 minutes before expiry.
    let sim = BedrockSim::builder()
        .access_key(BASE_KEY_ID, BASE_SECRET)
        .role(SimRole::new(ROLE))
        .start()
        .await
        .unwrap();
    let clock = OffsetClock::default();
    let advance = |by: Duration| {
        clock.advance(by);
        sim.advance_clock(by);
    };
    let auth = AuthConfig::AssumeRole {
        role_arn: ROLE.try_into().unwrap(),
        external_id: None,
        session_name: "ai-gateway".try_into().unwrap(),
        duration_seconds: None,
        sts_region: None,
        sts_endpoint: Some(sim.url().try_into().unwrap()),
    };
    let account = AccountCredentials::from_config_with_clock(
        "internal-bedrock",
        &auth,
        REGION,
        clock.shared(),
    )
    .await
    .unwrap();

    // A cold cache under load: one AssumeRole for everyone.
    let first = concurrent_gets(&account, 50).await;
    assert_eq!(distinct(&first).len(), 1);
    assert_eq!(sim.sts_calls(), 1);
    let first_key = first[0].clone();

    // 56 minutes later the credentials are inside the refresh window but still valid: every
    // caller is answered at once (old or, once the renewal landed, new credentials) and the
    // renewal is a single STS call.
    advance(Duration::from_secs(56 * 60));
    let during = concurrent_gets(&account, 50).await;
    assert!(distinct(&during).len() <= 2, "{during:?}");
    assert!(during.contains(&first_key) || sim.sts_calls() == 2);
    let second_key = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let key = sigv4(&account.get().await.unwrap()).0;
            if key != first_key {
                break key;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the background renewal never landed");
    assert_eq!(sim.sts_calls(), 2);
    let after = concurrent_gets(&account, 50).await;
    assert_eq!(distinct(&after), BTreeSet::from([second_key.as_str()]));
    assert_eq!(sim.sts_calls(), 2);

    // Two hours on, everything cached has expired: callers wait for exactly one more call.
    advance(Duration::from_secs(2 * 3600));
    let expired = concurrent_gets(&account, 50).await;
    assert_eq!(distinct(&expired).len(), 1);
    assert!(!expired.contains(&second_key));
    assert_eq!(sim.sts_calls(), 3);

    // And the simulator accepts them, at its (advanced) time.
    let current = account.get().await.unwrap();
    let (status, body) = converse(&sim, &current, clock.shared()).await;
    assert_eq!(status, 200, "{body}");
}
