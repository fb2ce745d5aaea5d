//! `response_format` on Converse: native JSON Schema output where the model has it, else a
//! forced tool whose input is the answer.
//!
//! - `json_schema` on a model with native structured output (Claude Haiku, Sonnet and Opus
//!   4.5 and later, Qwen, DeepSeek, Mistral, OpenAI gpt-oss, Gemma, Nemotron, MiniMax,
//!   Kimi; see `crate::model_family`): `outputConfig.textFormat` with the schema as a JSON
//!   string.
//! - `json_schema` elsewhere, and `json_object` everywhere (native output needs a schema,
//!   and `{"type": "object"}` is refused by models that require closed objects): one tool,
//!   [`FORCED_TOOL_NAME`], whose input schema is the client's schema (`json_object`: any
//!   object), and `toolChoice` naming it. The answer's tool input is the JSON the client
//!   asked for; the response side unwraps it into text when [`StructuredOutput::forced_tool`] says so.
//!
//! Refused (`ProviderError::Unsupported`, `ResponseFormat`) where the forced tool cannot
//! work: client tools beside it (the model could not call them), a model without tools,
//! Claude while it thinks (extended thinking refuses a forced tool), and a schema whose
//! top-level `type` is not `object` (a tool's input is an object, and Bedrock refuses any
//! other input schema).

use gateway_core::{ChatRequest, JsonSchemaFormat, ProviderError, RequestFeature, ResponseFormat};
use serde_json::Value;

use crate::converse_request::OPEN_SCHEMA;
use crate::model_family::ModelCapabilities;
use crate::reasoning::anthropic_thinking_on;
use crate::wire::{
    JsonSchemaDefinition, OutputConfig, OutputFormat, OutputFormatStructure, OutputFormatType,
};

/// The tool that carries a structured answer on models without native structured output.
pub(crate) const FORCED_TOOL_NAME: &str = "json_response";

/// The forced tool's description when the schema has none.
const FORCED_TOOL_DESCRIPTION: &str = "Give your answer by calling this tool: its input is the \
     answer, as JSON matching the schema.";

/// How a request's `response_format` is sent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StructuredOutput<'a> {
    /// `outputConfig.textFormat`.
    Native(&'a JsonSchemaFormat),
    /// The forced tool, with this input schema.
    ForcedTool {
        schema: &'a Value,
        description: &'a str,
    },
}

impl<'a> StructuredOutput<'a> {
    /// How `request.response_format` goes to `model` (`model_id` names it in errors).
    pub fn of(
        request: &'a ChatRequest,
        model: &ModelCapabilities,
        model_id: &str,
    ) -> Result<Option<Self>, ProviderError> {
        let (schema, description) = match &request.response_format {
            None => return Ok(None),
            Some(ResponseFormat::JsonSchema(format)) if model.native_structured_output => {
                return Ok(Some(Self::Native(format)));
            }
            Some(ResponseFormat::JsonSchema(format)) => {
                (&format.schema, format.description.as_deref())
            }
            Some(ResponseFormat::JsonObject) => (&*OPEN_SCHEMA, None),
            Some(_) => {
                return Err(refused(format!(
                    "this kind of response_format cannot be sent to the model `{model_id}`"
                )))
            }
        };
        if !model.tools {
            return Err(refused(format!(
                "the model `{model_id}` has neither native structured output nor tools, so \
                 response_format cannot be honoured"
            )));
        }
        if !request.tools.is_empty() {
            return Err(refused(format!(
                "the model `{model_id}` gives structured output through a tool it is forced to \
                 call, so response_format cannot be combined with tools"
            )));
        }
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(refused(format!(
                "the model `{model_id}` gives structured output through a tool it is forced to \
                 call, whose input is a JSON object, so response_format's schema must have \
                 \"type\": \"object\" at the top level"
            )));
        }
        if anthropic_thinking_on(request, model) {
            return Err(refused(format!(
                "the model `{model_id}` gives structured output through a tool it is forced to \
                 call, which it refuses while it thinks; leave out reasoning or response_format"
            )));
        }
        Ok(Some(Self::ForcedTool {
            schema,
            // Bedrock refuses an empty tool description.
            description: description
                .filter(|text| !text.trim().is_empty())
                .unwrap_or(FORCED_TOOL_DESCRIPTION),
        }))
    }

    /// `outputConfig` for native output; `None` for the forced tool.
    pub fn output_config(&self) -> Result<Option<OutputConfig<'a>>, ProviderError> {
        let Self::Native(format) = self else {
            return Ok(None);
        };
        let schema = serde_json::to_string(&format.schema).map_err(|error| {
            ProviderError::InvalidRequest {
                message: format!("response_format's schema cannot be written as JSON: {error}"),
            }
        })?;
        Ok(Some(OutputConfig {
            text_format: OutputFormat {
                kind: OutputFormatType::JsonSchema,
                structure: OutputFormatStructure::JsonSchema(JsonSchemaDefinition {
                    schema,
                    name: &format.name,
                    description: format.description.as_deref(),
                }),
            },
        }))
    }
}

impl StructuredOutput<'_> {
    /// The name of the tool whose call is really the answer's text, when this output uses
    /// one: the response side turns that call into text and `tool_use` into `end_turn`.
    pub(crate) fn forced_tool(&self) -> Option<&'static str> {
        matches!(self, Self::ForcedTool { .. }).then_some(FORCED_TOOL_NAME)
    }
}

fn refused(message: String) -> ProviderError {
    ProviderError::Unsupported {
        feature: RequestFeature::ResponseFormat,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::{Reasoning, ReasoningEffort, Route};

    fn route(model_id: &str) -> Route {
        crate::test_support::route(model_id, None)
    }

    fn schema_request() -> ChatRequest {
        ChatRequest {
            response_format: Some(ResponseFormat::JsonSchema(JsonSchemaFormat {
                name: "answer".into(),
                description: None,
                schema: serde_json::json!({"type": "object"}),
                strict: Some(true),
            })),
            ..ChatRequest::default()
        }
    }

    fn forced(model_id: &str, request: &ChatRequest) -> Option<&'static str> {
        let route = route(model_id);
        let call = gateway_core::ProviderRequest::new(&route, request, None);
        crate::converse_request::converse_body_and_forced_tool(
            call,
            crate::converse_request::Operation::Converse,
        )
        .ok()
        .and_then(|(_, forced_tool)| forced_tool)
    }

    #[test]
    fn the_forced_tool_is_reported_exactly_when_the_body_uses_it() {
        let json_object = ChatRequest {
            response_format: Some(ResponseFormat::JsonObject),
            ..ChatRequest::default()
        };
        let schema = schema_request();
        let claude_4_5 = "global.anthropic.claude-sonnet-4-5-20250929-v1:0";
        let nova = "amazon.nova-pro-v1:0";
        assert_eq!(forced(claude_4_5, &schema), None);
        assert_eq!(forced(claude_4_5, &json_object), Some(FORCED_TOOL_NAME));
        assert_eq!(forced(nova, &schema), Some(FORCED_TOOL_NAME));
        assert_eq!(forced(nova, &ChatRequest::default()), None);
        // Refused requests never reach Bedrock, so there is nothing to unwrap.
        assert_eq!(forced("meta.llama3-70b-instruct-v1:0", &schema), None);
        let thinking = ChatRequest {
            reasoning: Some(Reasoning::Effort(ReasoningEffort::Low)),
            ..json_object
        };
        assert_eq!(forced(claude_4_5, &thinking), None);
    }
}
