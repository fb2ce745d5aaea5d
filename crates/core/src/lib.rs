//! `gateway-core`: the domain of the AI gateway.
//!
//! It knows chat requests and responses, model routing, guardrail policy and how Bedrock
//! stop reasons become OpenAI finish reasons, and it defines the ports that adapters
//! implement. It does no I/O and depends on no runtime, HTTP or AWS crate, so other hosts
//! can embed it and implement the ports themselves.
//!
//! # Embedding
//!
//! A host supplies a [`ChatProvider`] (here one that answers every request the same way)
//! and a [`ModelCatalog`] (here one model, and a virtual model over it), then asks
//! [`ChatService`]. The service resolves the model, applies guardrail policy, fails over
//! between a virtual model's targets and maps the stop reason; the provider only sees a
//! prepared [`ProviderRequest`]. Core needs no runtime: the futures below are driven by a tiny
//! `block_on` written with the standard library.
//!
//! ```
//! use std::future::Future;
//! use std::sync::Arc;
//! use std::task::{Context, Poll, Wake, Waker};
//!
//! use gateway_core::guardrail::GuardrailPolicy;
//! use gateway_core::{
//!     Caller, ChatEventStream, ChatProvider, ChatRequest, ChatResponse, ChatService,
//!     ContentPart, FinishReason, FinishReasonStyle, Message, ModelCatalog, ModelEntry, ModelKind,
//!     ProviderError, ProviderRequest, Role, StopReason, Strategy, Usage, VirtualModelEntry,
//! };
//!
//! /// A provider that answers every request with the same text.
//! struct Canned;
//!
//! #[async_trait::async_trait]
//! impl ChatProvider for Canned {
//!     async fn complete<'a>(
//!         &self,
//!         request: ProviderRequest<'a>,
//!     ) -> Result<ChatResponse, ProviderError> {
//!         Ok(ChatResponse {
//!             text: Some(format!("{} says hello", request.route.model_id)),
//!             reasoning: vec![],
//!             tool_calls: vec![],
//!             stop_reason: StopReason::EndTurn,
//!             usage: Usage::default(),
//!             guardrail_trace: None,
//!             additional_model_response_fields: None,
//!         })
//!     }
//!
//!     async fn stream<'a>(
//!         &self,
//!         _request: ProviderRequest<'a>,
//!     ) -> Result<ChatEventStream, ProviderError> {
//!         Err(ProviderError::Unavailable { message: "no streaming here".into() })
//!     }
//! }
//!
//! /// Polls a future to completion on this thread, parking between polls.
//! fn block_on<F: Future>(future: F) -> F::Output {
//!     struct Unpark(std::thread::Thread);
//!     impl Wake for Unpark {
//!         fn wake(self: Arc<Self>) {
//!             self.0.unpark();
//!         }
//!     }
//!     let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
//!     let mut context = Context::from_waker(&waker);
//!     let mut future = std::pin::pin!(future);
//!     loop {
//!         match future.as_mut().poll(&mut context) {
//!             Poll::Ready(output) => return output,
//!             Poll::Pending => std::thread::park(),
//!         }
//!     }
//! }
//!
//! let catalog = ModelCatalog::new([ModelEntry {
//!     account: "local".into(),
//!     model: "echo".into(),
//!     model_id: "echo-v1".into(),
//!     region: "here".into(),
//!     guardrail: GuardrailPolicy::open(),
//!     finish_reason_style: FinishReasonStyle::Bedrock,
//!     family: None,
//!     drop_unsupported_params: false,
//!     price: None,
//!     kind: ModelKind::Chat,
//! }])
//! .expect("model names are unique")
//! .with_virtual_models([VirtualModelEntry {
//!     name: "echo-ha".into(),
//!     strategy: Strategy::Failover,
//!     targets: vec!["local/echo".into()],
//!     weights: None,
//! }])
//! .expect("the targets are configured models");
//! let service = ChatService::new(Arc::new(catalog), Arc::new(Canned));
//!
//! let request = ChatRequest {
//!     model: "echo-ha".into(),
//!     messages: vec![Message {
//!         role: Role::User,
//!         content: vec![ContentPart::Text("Hi".into())],
//!     }],
//!     ..ChatRequest::default()
//! };
//! let completion = block_on(service.complete(&Caller::default(), request))
//!     .expect("the canned provider always answers");
//! assert_eq!(completion.response.text.as_deref(), Some("echo-v1 says hello"));
//! assert_eq!(completion.finish_reason, FinishReason::Stop);
//! // The client's name for the model, and the target that answered.
//! assert_eq!(completion.model, "echo-ha");
//! assert_eq!(completion.route.public_name, "local/echo");
//! ```
#![forbid(unsafe_code)]

pub mod chat;
pub mod circuit_breaker;
pub mod clock;
pub mod credential_status;
pub mod document;
pub mod embedding;
pub mod error;
pub mod finish_reason;
pub mod governance;
pub mod guardrail;
pub mod guardrail_check;
pub mod media;
pub mod options;
pub mod ports;
mod random;
pub mod request_limits;
pub mod router;
pub mod service;

pub use chat::*;
pub use circuit_breaker::{CircuitBreakerSettings, CircuitBreakers, CircuitState};
pub use credential_status::{CredentialState, CredentialStatus};
pub use document::{Document, DocumentFormat};
pub use embedding::{EmbeddingInputType, EmbeddingRequest, EmbeddingResponse};
pub use error::{GatewayError, ProviderError, RequestFeature};
pub use finish_reason::{FinishReason, FinishReasonStyle, StopReason};
pub use governance::{
    Admission, Consumption, Cost, InMemoryLimits, KeyLimits, LimitBackendError, LimitKind,
    LimitState, LimitStore, OnBackendError, Price, PriceError, Remaining, Settlement,
    UsageObserver,
};
pub use guardrail::{
    ConfiguredGuardrail, GuardrailConfig, GuardrailMode, GuardrailPolicyError, GuardrailTrace,
    StreamProcessingMode,
};
pub use guardrail_check::{
    CheckableGuardrail, DuplicateGuardrailName, GuardrailAction, GuardrailAllowList,
    GuardrailCatalog, GuardrailCheckError, GuardrailCheckOutcome, GuardrailCheckRequest,
    GuardrailRef, GuardrailSource,
};
pub use media::{Base64, Base64Error, MediaError};
pub use options::{
    JsonSchemaFormat, Latency, Reasoning, ReasoningEffort, ResponseFormat, ServiceTier,
};
pub use ports::{
    ChatEventStream, ChatProvider, EmbeddingProvider, GuardrailChecker, ModelRouter,
    ProviderRequest,
};
pub use request_limits::RequestLimitError;
pub use router::{
    ModelCatalog, ModelEntry, ModelKind, Resolution, Route, RouteError, Strategy, VirtualModel,
    VirtualModelEntry, VirtualModelError,
};
pub use service::{
    Attempt, AttemptOutcome, Caller, ChatFailure, ChatService, Completion, CompletionStream,
    Embedded, GuardrailCheck, TokenCount,
};
