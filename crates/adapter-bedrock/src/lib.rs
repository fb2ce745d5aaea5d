//! `gateway-adapter-bedrock`: the [`ChatProvider`](gateway_core::ChatProvider) port over
//! AWS Bedrock Runtime's Converse and ConverseStream APIs, and the
//! [`EmbeddingProvider`](gateway_core::EmbeddingProvider) port over InvokeModel.
//!
//! Wire types and conversions, SigV4 signing, per-account credentials and the event-stream
//! decoder live here; nothing outside this crate knows Bedrock's wire format.
#![forbid(unsafe_code)]

// Modules stay private: hosts use the re-exports below; tests reach the rest through
// `testing` (feature `test-util`).
mod apply_guardrail;
mod cache_points;
mod client;
mod config;
mod converse_request;
mod converse_response;
mod converse_turns;
mod credentials;
mod documents;
mod embeddings;
mod errors;
mod event_stream;
mod inference_profile;
mod model_family;
mod provider;
mod reasoning;
mod request_options;
mod retry;
mod signing;
mod stream_events;
mod structured_output;
#[cfg(test)]
mod test_support;
#[cfg(feature = "test-util")]
pub mod testing;
mod wire;

pub use client::{build_client, HttpClient as BedrockHttpClient};
pub use config::{
    AccessKeyId, AuthConfig, BedrockAccountConfig, Endpoint, ExternalId, InvalidValue, MaxAttempts,
    Region, RequiredSecret, RetryConfig, RoleArn, SessionDuration, SessionName, TimeLimit,
    TimeoutOverrides, Timeouts,
};
pub use credentials::{AccountCredentials, CredentialsError, RequestAuth};
pub use embeddings::is_embedding_model;
pub use inference_profile::names_inference_profile;
pub use model_family::{ModelFamily, UnknownModelFamily};
pub use provider::{BedrockProvider, BuildError};
pub use retry::RetryStats;
