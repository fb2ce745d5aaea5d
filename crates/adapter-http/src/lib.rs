//! `gateway-adapter-http`: the OpenAI-compatible HTTP server.
//!
//! It turns OpenAI chat-completion requests into [`gateway_core::ChatRequest`]s, hands them
//! to [`gateway_core::ChatService`], and answers with OpenAI JSON or `chat.completion.chunk`
//! server-sent events. Every wire conversion is a pure function in the `openai` module with
//! snapshot tests over `fixtures/openai/`; `server` only does HTTP, and `error` is the one
//! place that maps failures to OpenAI error bodies and statuses.
//!
//! ```text
//! serve ─► HttpApp::handle ─► auth ─► body (limited) ─► openai::request ─► ChatService
//!                    ◄─ error | openai::response (JSON) | sse + openai::chunk (stream)
//! ```
#![forbid(unsafe_code)]

mod anthropic;
mod auth;
mod body;
mod connections;
mod console;
mod door;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod governance;
mod guardrail_check;
mod ids;
mod lifecycle;
mod metrics;
mod openai;
mod readiness;
mod request_id;
mod request_log;
mod responses;
mod retry_metrics;
mod server;
mod settings;
mod shed;
mod sse;
pub mod trace;

pub use console::{
    AccountDescription, ConsoleSettings, CredentialStatusSource, GuardrailDescription,
    LimitsBackendKind, TrafficSampler,
};
pub use governance::LimitBackendErrors;
pub use lifecycle::{serve, serve_live, LiveApp, Phase};
pub use readiness::Readiness;
pub use retry_metrics::RetryCounters;
pub use server::HttpApp;
pub use settings::{AdminKey, GatewayKey, HttpSettings};
pub use trace::TraceExportFailures;
