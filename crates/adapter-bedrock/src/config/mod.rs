//! What the adapter needs to know about one provider account: values that are checked when
//! they are made (`values`), how an account authenticates (`auth`), how long to wait for
//! Bedrock (`timeouts`) and how often to try (`retry`). A host deserializes its configuration
//! straight into these types or calls their constructors; nothing here is validated a second
//! time later.

use std::collections::BTreeMap;

mod auth;
mod retry;
mod timeouts;
mod values;

pub use auth::AuthConfig;
pub use retry::{MaxAttempts, RetryConfig};
pub use timeouts::{TimeLimit, TimeoutOverrides, Timeouts};
pub use values::{
    AccessKeyId, Endpoint, ExternalId, InvalidValue, Region, RequiredSecret, RoleArn,
    SessionDuration, SessionName,
};

/// One Bedrock account: where to call, how to authenticate, how often to try and how long to
/// wait.
#[derive(Debug, Clone)]
pub struct BedrockAccountConfig {
    /// The account's name (the model-name prefix clients use).
    pub name: String,
    /// Default region for this account's models.
    pub region: Region,
    /// Bedrock Runtime base URL override (VPC endpoint, FIPS, tests). `None` means
    /// `https://bedrock-runtime.{region}.amazonaws.com`.
    pub endpoint: Option<Endpoint>,
    pub auth: AuthConfig,
    pub retry: RetryConfig,
    /// This account's limits over the provider's defaults
    /// ([`crate::BedrockProvider::with_timeouts`]).
    pub timeouts: TimeoutOverrides,
    /// Limits of single models over the account's, by the model's name in the account (the
    /// part of the public name after `<account>/`).
    pub model_timeouts: BTreeMap<String, TimeoutOverrides>,
}
