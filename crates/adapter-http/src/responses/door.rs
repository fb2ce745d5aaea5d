//! The OpenAI Responses door: the [`ChatDoor`] over this module's conversions.

use std::sync::Arc;

use gateway_core::{ChatRequest, Completion, CompletionStream, GatewayError};

use super::input::InputPositions;
use super::request::{parse_responses_request, UNSUPPORTED};
use super::response::response_body;
use super::stream::ResponsesEncoder;
use crate::door::{ChatDoor, StreamEncoder};
use crate::error::ApiError;
use crate::ids::response_id;

/// `POST /v1/responses`.
pub(crate) struct OpenAiResponses;

impl ChatDoor for OpenAiResponses {
    /// Where each domain message came from in the client's `input`, for errors.
    type Context = InputPositions;

    fn parse(&self, body: &[u8]) -> Result<(ChatRequest, InputPositions), ApiError> {
        let parsed = parse_responses_request(body).map_err(ApiError::from_request)?;
        Ok((parsed.chat, parsed.positions))
    }

    fn completion_body(
        &self,
        completion: &Completion,
        _context: &InputPositions,
        created: u64,
    ) -> Vec<u8> {
        response_body(
            &response_id(),
            created,
            &completion.model,
            &completion.response,
            completion.cost.as_ref(),
        )
    }

    fn stream_encoder(
        &self,
        stream: &CompletionStream,
        _context: InputPositions,
        created: u64,
    ) -> Box<dyn StreamEncoder> {
        Box::new(ResponsesEncoder::new(
            response_id(),
            created,
            &stream.model,
            (Arc::clone(&stream.route), stream.service_tier),
        ))
    }

    fn gateway_error(&self, error: &GatewayError, positions: &InputPositions) -> ApiError {
        let mut api = ApiError::from_gateway(error, positions);
        // The chat door's names for the fields a feature came through, in Responses terms.
        let renamed = match api.param.as_deref() {
            Some("reasoning_effort") => Some("reasoning.effort"),
            Some("response_format") => Some("text.format"),
            Some("file") => Some("input_file"),
            _ => None,
        };
        if let Some(param) = renamed {
            api.param = Some(param.into());
        }
        api
    }

    fn error_body(&self, error: &ApiError) -> Vec<u8> {
        error.to_json()
    }

    fn dropped_parameter_label(&self, parameter: &str) -> Option<&'static str> {
        UNSUPPORTED.into_iter().find(|known| *known == parameter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::{ProviderError, RequestFeature};

    fn param_of(error: GatewayError, positions: &InputPositions) -> Option<String> {
        OpenAiResponses
            .gateway_error(&error, positions)
            .param
            .map(|param| param.into_owned())
    }

    #[test]
    fn errors_name_the_fields_in_responses_terms() {
        let positions = InputPositions::in_list("input", vec![0]);
        let unsupported = |feature| {
            GatewayError::Provider(ProviderError::Unsupported {
                feature,
                message: "no".into(),
            })
        };
        assert_eq!(
            param_of(unsupported(RequestFeature::Reasoning), &positions).as_deref(),
            Some("reasoning.effort")
        );
        assert_eq!(
            param_of(unsupported(RequestFeature::ResponseFormat), &positions).as_deref(),
            Some("text.format")
        );
        // Domain message 1 is `input[2]`: `input[0]` went into the system prompt.
        let turn_order = GatewayError::Provider(ProviderError::TurnOrder {
            message_index: 1,
            message: "no".into(),
        });
        assert_eq!(
            param_of(turn_order, &positions).as_deref(),
            Some("input[2].role")
        );
    }
}
