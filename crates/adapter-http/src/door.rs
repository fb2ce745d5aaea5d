//! A chat API the gateway speaks (a "door"): OpenAI chat completions today, Anthropic Messages
//! and OpenAI Responses beside it.
//!
//! A door only converts: its request bodies to a [`ChatRequest`], and answers, stream events
//! and errors to its own wire shape. Everything else happens once, in the server's one chat
//! path, whichever door a request came through: load shedding, the gateway key, the body
//! limits, routing, guardrail policy, limits and budgets, failover, metrics, the log line and
//! the traces. So every rule holds on every door.

use bytes::Bytes;
use gateway_core::ProviderError;
use gateway_core::{ChatEvent, ChatRequest, Completion, CompletionStream, GatewayError};

use crate::error::ApiError;

/// One chat API's conversions. Implementations are stateless values (`&'static` constants):
/// what a request needs later travels in its [`ChatDoor::Context`].
pub(crate) trait ChatDoor: Sync {
    /// What a parsed request keeps for its answer: the client's options that shape it and
    /// what is needed to name the client's fields in an error the service reports later.
    type Context: Send + 'static;

    /// The request body as a domain request; an error names the field in the door's terms.
    fn parse(&self, body: &[u8]) -> Result<(ChatRequest, Self::Context), ApiError>;

    /// A complete answer's body. `created` is the Unix time the answer is stamped with.
    fn completion_body(
        &self,
        completion: &Completion,
        context: &Self::Context,
        created: u64,
    ) -> Vec<u8>;

    /// The encoder of a streamed answer's server-sent events.
    fn stream_encoder(
        &self,
        stream: &CompletionStream,
        context: Self::Context,
        created: u64,
    ) -> Box<dyn StreamEncoder>;

    /// The client's error for a request the service could not serve.
    fn gateway_error(&self, error: &GatewayError, context: &Self::Context) -> ApiError;

    /// An error's body in the door's shape.
    fn error_body(&self, error: &ApiError) -> Vec<u8>;

    /// The metric label of a parameter the service dropped (`drop_unsupported_params`), when
    /// it is one of the door's known parameters; others are not counted, so clients cannot
    /// make series.
    fn dropped_parameter_label(&self, parameter: &str) -> Option<&'static str>;
}

/// Writes one streamed answer, event by event, as server-sent events in a door's shape.
pub(crate) trait StreamEncoder: Send {
    /// The bytes for one event; `None` when the event is held back or has no counterpart.
    fn event(&mut self, event: ChatEvent) -> Option<Bytes>;

    /// The end of a stream that ended normally.
    fn finish(&mut self) -> Bytes;

    /// One error event; the stream ends after it.
    fn error(&mut self, error: &ProviderError) -> Bytes;
}
