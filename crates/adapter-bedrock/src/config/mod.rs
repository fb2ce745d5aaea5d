//! What the adapter needs to know about one provider account: values that are checked when
//! they are made (`values`), how an account authenticates (`auth`) and how long to wait for
//! Bedrock (`timeouts`). A host deserializes its configuration straight into these types or
//! calls their constructors; nothing here is validated a second time later.

mod auth;
mod timeouts;
mod values;

pub use auth::AuthConfig;
pub use timeouts::{TimeLimit, Timeouts};
pub use values::{
    AccessKeyId, Endpoint, ExternalId, InvalidValue, Region, RequiredSecret, RoleArn,
    SessionDuration, SessionName,
};

/// One Bedrock account: where to call and how to authenticate.
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
}
