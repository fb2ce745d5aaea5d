//! The Anthropic Messages door: the [`ChatDoor`] over this module's conversions.

use gateway_core::{ChatRequest, Completion, CompletionStream, GatewayError};

use super::error::anthropic_error_json;
use super::request::{parse_messages_request, Purpose};
use super::response::message_json;
use super::stream::MessageEncoder;
use crate::door::{ChatDoor, StreamEncoder};
use crate::error::ApiError;
use crate::ids::message_id;
use crate::openai::request::MessagePositions;

/// `POST /v1/messages`.
pub(crate) struct AnthropicMessages;

/// Nothing to keep: Anthropic's messages are the domain's one to one, and no option of the
/// request shapes the answer.
pub(crate) struct AnthropicContext;

impl ChatDoor for AnthropicMessages {
    type Context = AnthropicContext;

    fn parse(&self, body: &[u8]) -> Result<(ChatRequest, AnthropicContext), ApiError> {
        let request =
            parse_messages_request(body, Purpose::Answer).map_err(ApiError::from_request)?;
        Ok((request, AnthropicContext))
    }

    fn completion_body(
        &self,
        completion: &Completion,
        _context: &AnthropicContext,
        _created: u64,
    ) -> Vec<u8> {
        message_json(completion, &message_id())
    }

    fn stream_encoder(
        &self,
        stream: &CompletionStream,
        _context: AnthropicContext,
        _created: u64,
    ) -> Box<dyn StreamEncoder> {
        Box::new(MessageEncoder::new(
            &message_id(),
            &stream.model,
            stream.finish_reason_style,
        ))
    }

    fn gateway_error(&self, error: &GatewayError, _context: &AnthropicContext) -> ApiError {
        // The domain's message indices are the client's (the system prompt is apart).
        ApiError::from_gateway(error, &MessagePositions::default())
    }

    fn error_body(&self, error: &ApiError) -> Vec<u8> {
        anthropic_error_json(error)
    }

    fn dropped_parameter_label(&self, _parameter: &str) -> Option<&'static str> {
        // The door marks no parameter unsupported: it refuses what it cannot send.
        None
    }
}
