//! `gateway-core`: the domain of the AI gateway.
//!
//! It knows chat requests and responses, model routing, guardrail policy and how Bedrock
//! stop reasons become OpenAI finish reasons, and it defines the ports that adapters
//! implement. It does no I/O and depends on no runtime, HTTP or AWS crate, so other hosts
//! can embed it and implement the ports themselves.
#![forbid(unsafe_code)]

pub mod chat;
pub mod clock;
pub mod error;
pub mod finish_reason;
pub mod guardrail;
pub mod ports;
pub mod router;
pub mod service;

pub use chat::*;
pub use error::{GatewayError, ProviderError};
pub use finish_reason::{FinishReason, FinishReasonStyle, StopReason};
pub use guardrail::{
    ConfiguredGuardrail, GuardrailConfig, GuardrailMode, GuardrailPolicyError, GuardrailTrace,
    StreamProcessingMode,
};
pub use ports::{ChatEventStream, ChatProvider, ModelRouter, ProviderRequest};
pub use router::{ModelCatalog, ModelEntry, Route, RouteError};
pub use service::{Caller, ChatService};
