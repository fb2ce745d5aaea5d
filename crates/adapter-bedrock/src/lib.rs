//! `gateway-adapter-bedrock`: the [`ChatProvider`](gateway_core::ChatProvider) port over
//! AWS Bedrock Runtime's Converse and ConverseStream APIs.
//!
//! Wire types and conversions, SigV4 signing, per-account credentials and the event-stream
//! decoder live here; nothing outside this crate knows Bedrock's wire format.
#![forbid(unsafe_code)]

pub mod config;
pub mod credentials;

pub use config::{AuthConfig, BedrockAccountConfig};
pub use credentials::{AccountCredentials, CredentialsError, RequestAuth};
