//! `gateway-adapter-bedrock`: the [`ChatProvider`](gateway_core::ChatProvider) port over
//! AWS Bedrock Runtime's Converse and ConverseStream APIs.
//!
//! Wire types and conversions, SigV4 signing, per-account credentials and the event-stream
//! decoder live here; nothing outside this crate knows Bedrock's wire format.
#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod converse_request;
pub mod converse_response;
mod converse_turns;
pub mod credentials;
pub mod errors;
pub mod event_stream;
pub mod provider;
pub mod signing;
pub(crate) mod stream_events;
pub mod wire;

pub use config::{AuthConfig, BedrockAccountConfig};
pub use credentials::{AccountCredentials, CredentialsError, RequestAuth};
pub use provider::{BedrockProvider, BuildError, Timeouts};
