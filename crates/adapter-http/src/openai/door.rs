//! The OpenAI chat-completions door: the [`ChatDoor`] over this module's conversions.

use std::sync::Arc;

use gateway_core::{ChatRequest, Completion, CompletionStream, GatewayError};

use crate::door::{ChatDoor, StreamEncoder};
use crate::error::ApiError;
use crate::ids::completion_id;
use crate::openai::chunk::ChunkEncoder;
use crate::openai::request::{parse_chat_request, unsupported_parameter_name, MessagePositions};
use crate::openai::response::completion_json;

/// `POST /v1/chat/completions`.
pub(crate) struct OpenAiChat;

/// What an OpenAI request keeps for its answer.
pub(crate) struct OpenAiContext {
    /// Where each domain message came from in the client's `messages`, for errors.
    positions: MessagePositions,
    /// `stream_options.include_usage`: a final usage chunk.
    include_usage: bool,
}

impl OpenAiContext {
    /// The context of a request with no `messages` (a guardrail check): errors name no
    /// message.
    pub(crate) fn without_messages() -> Self {
        Self {
            positions: MessagePositions::default(),
            include_usage: false,
        }
    }
}

impl ChatDoor for OpenAiChat {
    type Context = OpenAiContext;

    fn parse(&self, body: &[u8]) -> Result<(ChatRequest, OpenAiContext), ApiError> {
        let parsed = parse_chat_request(body).map_err(ApiError::from_request)?;
        let context = OpenAiContext {
            positions: parsed.positions,
            include_usage: parsed.chat.include_usage,
        };
        Ok((parsed.chat, context))
    }

    fn completion_body(
        &self,
        completion: &Completion,
        _context: &OpenAiContext,
        created: u64,
    ) -> Vec<u8> {
        completion_json(completion, &completion_id(), created)
    }

    fn stream_encoder(
        &self,
        stream: &CompletionStream,
        context: OpenAiContext,
        created: u64,
    ) -> Box<dyn StreamEncoder> {
        Box::new(
            ChunkEncoder::new(
                &completion_id(),
                created,
                &stream.model,
                stream.finish_reason_style,
                context.include_usage,
            )
            .priced_by(Arc::clone(&stream.route), stream.service_tier),
        )
    }

    fn gateway_error(&self, error: &GatewayError, context: &OpenAiContext) -> ApiError {
        ApiError::from_gateway(error, &context.positions)
    }

    fn error_body(&self, error: &ApiError) -> Vec<u8> {
        error.to_json()
    }

    fn dropped_parameter_label(&self, parameter: &str) -> Option<&'static str> {
        unsupported_parameter_name(parameter)
    }
}
