//! Shared setup of the `credentials_*` test binaries: a process environment the AWS default
//! chain cannot escape from (no instance metadata, no developer `~/.aws`), a clock tests move
//! together with the simulator's, and one signed Converse call to the simulator.
//!
//! The environment is process-global, so each scenario that needs different variables is its
//! own test binary and sets them once, before any test of that binary builds a chain.
#![allow(dead_code, reason = "each test binary uses a different part")]

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, SystemTime};

use bedrock_sim::SimHandle;
use bytes::Bytes;
use gateway_adapter_bedrock::testing::build_client;
use gateway_adapter_bedrock::testing::{host_header_value, Signer};
use gateway_adapter_bedrock::RequestAuth;
use gateway_core::clock::{Clock, SharedClock, SystemClock};
use http_body_util::{BodyExt, Full};

pub const REGION: &str = "us-east-1";
pub const BASE_KEY_ID: &str = "AKIDBASEEXAMPLE";
pub const BASE_SECRET: &str = "base/secret/EXAMPLEKEY";
pub const MODEL_ID: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// Variables that would let the chain find credentials or endpoints outside the test.
const LEAKY: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_BEARER_TOKEN_BEDROCK",
];

/// Sets the process environment once per test binary: everything the chain could use from the
/// host is removed, instance metadata is disabled, and `vars` are set.
pub fn environment(vars: &[(&str, &str)]) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for name in LEAKY {
            std::env::remove_var(name);
        }
        let nowhere = scratch_dir().join("no-such-file");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_CONFIG_FILE", &nowhere);
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &nowhere);
        for (name, value) in vars {
            std::env::set_var(name, value);
        }
    });
}

/// A directory private to this test process.
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gateway-credentials-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The real clock plus an offset the test advances (together with the simulator's), so
/// credentials expire without waiting.
#[derive(Clone, Default)]
pub struct OffsetClock(Arc<Mutex<Duration>>);

impl OffsetClock {
    pub fn shared(&self) -> SharedClock {
        SharedClock::new(self.clone())
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> SystemTime {
        SystemClock.now() + *self.0.lock().unwrap()
    }
}

/// Sends one Converse request to the simulator authenticated with `auth`; returns the status
/// and body.
pub async fn converse(sim: &SimHandle, auth: &RequestAuth, clock: SharedClock) -> (u16, String) {
    let uri: http::Uri = format!(
        "{}/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        sim.url()
    )
    .parse()
    .unwrap();
    let body = br#"{"messages":[{"role":"user","content":[{"text":"hello there"}]}]}"#;
    let mut request = http::Request::post(uri.clone())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap();
    let host = host_header_value(&uri).unwrap();
    Signer::new(clock)
        .authorize(auth, REGION, &host, &mut request, body)
        .unwrap();
    let response = build_client(Duration::from_secs(2))
        .request(request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The access key id and whether a session token came with the credentials.
pub fn sigv4(auth: &RequestAuth) -> (String, bool) {
    match auth {
        RequestAuth::SigV4(credentials) => (
            credentials.access_key_id().to_owned(),
            credentials.session_token().is_some(),
        ),
        RequestAuth::Bearer(_) => panic!("expected SigV4 credentials, got {auth:?}"),
    }
}
