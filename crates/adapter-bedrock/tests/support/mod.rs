//! Shared setup of the test binaries that call the simulator with one static key: the key,
//! the simulator's and provider's fixed time, the simulator builder, the account's auth,
//! the provider's short test limits and a route.
#![allow(dead_code, reason = "each test binary uses a different part")]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bedrock_sim::{BedrockSim, SimBuilder};
use gateway_adapter_bedrock::{AuthConfig, Timeouts};
use gateway_core::{FinishReasonStyle, Route};

pub const KEY_ID: &str = "AKIDEXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub const NOW_UNIX: u64 = 1_705_320_000;

/// Both sides read this instant, so signatures never depend on the wall clock.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_UNIX)
}

/// A simulator that knows [`KEY_ID`] and whose clock reads [`now`]. Also keeps every
/// credential source away from instance metadata.
pub fn sim_builder() -> SimBuilder {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    BedrockSim::builder()
        .access_key(KEY_ID, SECRET)
        .clock_at(now())
}

/// [`KEY_ID`] with `secret`: the right one is [`SECRET`].
pub fn access_key(secret: &str) -> AuthConfig {
    AuthConfig::AccessKey {
        access_key_id: KEY_ID.try_into().unwrap(),
        secret_access_key: secret.try_into().unwrap(),
        session_token: None,
    }
}

/// Limits short enough for a stuck test to fail, long enough for a slow machine; no total.
pub fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        first_byte: Duration::from_secs(10),
        idle_stream: Duration::from_secs(10),
        total: None,
    }
}

/// The route of `public_name` in `account`, calling `model_id` in `region`.
pub fn route(account: &str, public_name: String, model_id: &str, region: &str) -> Route {
    Route {
        public_name,
        account: account.into(),
        model_id: model_id.into(),
        region: region.into(),
        guardrail: Default::default(),
        finish_reason_style: FinishReasonStyle::Bedrock,
        drop_unsupported_params: false,
        price: None,
        family: None,
        kind: gateway_core::ModelKind::Chat,
    }
}
