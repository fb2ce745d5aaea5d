//! A prepared [`ProviderRequest`] to the Converse / ConverseStream request body.
//!
//! A pure function: the body borrows from the request, so nothing is copied until
//! serialization.
//!
//! Tool configuration, the one place with a judgement call:
//! - no tools and no tool blocks in the history: no `toolConfig`;
//! - `tool_choice: none` (OpenAI `none`) leaves `toolConfig` out, since Converse has no "none"
//!   choice, *unless* the history holds `toolUse`/`toolResult` blocks: Bedrock refuses such a
//!   request without a `toolConfig`, so the tools are kept and `toolChoice` is omitted (the
//!   model may then call a tool although the client said `none`; the alternative, rewriting
//!   the history as text, would change what the model sees);
//! - tool blocks in the history but no tools declared (clients that drop `tools` on the
//!   follow-up turn): the tools named by the history's `toolUse` blocks are declared with an
//!   open schema `{"type": "object"}`, so Bedrock accepts the history.

use std::sync::LazyLock;

use gateway_core::{
    ChatRequest, ContentPart, ProviderError, ProviderRequest, SystemPart,
    ToolChoice as DomainToolChoice,
};
use serde_json::Value;

use crate::converse_turns::converse_turns;
use crate::wire::{
    ContentBlock, ConverseRequest, Empty, GuardrailConfiguration, ImageBlock, ImageSource,
    InferenceConfiguration, SpecificToolChoice, SystemContentBlock, Tool, ToolChoice,
    ToolConfiguration, ToolInputSchema, ToolResultBlock, ToolResultContentBlock, ToolResultStatus,
    ToolSpecification, ToolUseBlock,
};

/// Which Bedrock operation a body is for; they differ in path and in
/// `guardrailConfig.streamProcessingMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Converse,
    ConverseStream,
}

impl Operation {
    /// The last path segment, after `/model/{modelId}/`.
    pub fn path_suffix(self) -> &'static str {
        match self {
            Self::Converse => "converse",
            Self::ConverseStream => "converse-stream",
        }
    }
}

/// Schema for tools the history uses but the request does not declare.
static OPEN_SCHEMA: LazyLock<Value> = LazyLock::new(|| serde_json::json!({"type": "object"}));

/// The Converse body for `call`: the client's request with the effective guardrail (never
/// the one the client asked for, which policy may have replaced). Fails, before any call,
/// when the conversation breaks Converse's turn rules ([`crate::converse_turns`]).
pub fn converse_request<'a>(
    call: ProviderRequest<'a>,
    operation: Operation,
) -> Result<ConverseRequest<'a>, ProviderError> {
    let request = call.chat;
    Ok(ConverseRequest {
        messages: converse_turns(&request.messages, content_block)?,
        system: request
            .system
            .iter()
            .map(system_block)
            .collect::<Result<_, _>>()?,
        inference_config: (!request.inference.is_empty()).then(|| InferenceConfiguration {
            max_tokens: request.inference.max_tokens,
            temperature: request.inference.temperature,
            top_p: request.inference.top_p,
            stop_sequences: &request.inference.stop,
        }),
        tool_config: tool_config(request)?,
        guardrail_config: call.guardrail.map(|guardrail| GuardrailConfiguration {
            guardrail_identifier: &guardrail.identifier,
            guardrail_version: &guardrail.version,
            trace: guardrail.trace.map(|trace| trace.as_str()),
            stream_processing_mode: match operation {
                Operation::Converse => None,
                Operation::ConverseStream => {
                    guardrail.stream_processing_mode.map(|mode| mode.as_str())
                }
            },
        }),
        additional_model_request_fields: request.additional_model_request_fields.as_ref(),
    })
}

/// The serialized body, ready to sign and send.
pub fn converse_body(
    call: ProviderRequest<'_>,
    operation: Operation,
) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(&converse_request(call, operation)?).map_err(|error| {
        ProviderError::InvalidRequest {
            message: format!("the request cannot be written as Converse JSON: {error}"),
        }
    })
}

/// A request kind this adapter was not written for (the domain's enums are non-exhaustive):
/// refused before any call rather than dropped, so the model never answers a different
/// question than the one asked.
fn unsupported(what: &str) -> ProviderError {
    ProviderError::InvalidRequest {
        message: format!("Bedrock Converse cannot take this {what}"),
    }
}

fn system_block(part: &SystemPart) -> Result<SystemContentBlock<'_>, ProviderError> {
    match part {
        SystemPart::Text(text) => Ok(SystemContentBlock::Text(text)),
        _ => Err(unsupported("kind of system part")),
    }
}

fn content_block(part: &ContentPart) -> Result<ContentBlock<'_>, ProviderError> {
    Ok(match part {
        ContentPart::Text(text) => ContentBlock::Text(text),
        ContentPart::Image(image) => ContentBlock::Image(ImageBlock {
            format: image.format.as_str(),
            source: ImageSource::Bytes(&image.base64_data),
        }),
        ContentPart::ToolUse(call) => ContentBlock::ToolUse(ToolUseBlock {
            tool_use_id: &call.id,
            name: &call.name,
            input: &call.input,
        }),
        ContentPart::ToolResult(result) => ContentBlock::ToolResult(ToolResultBlock {
            tool_use_id: &result.tool_use_id,
            content: vec![ToolResultContentBlock::Text(&result.content)],
            // Only some models (Anthropic's) accept `status`; sending it just for errors keeps
            // successful tool turns valid for every model.
            status: result.is_error.then_some(ToolResultStatus::Error),
        }),
        _ => return Err(unsupported("kind of content part")),
    })
}

fn history_has_tool_blocks(request: &ChatRequest) -> bool {
    request.messages.iter().any(|message| {
        message
            .content
            .iter()
            .any(|part| matches!(part, ContentPart::ToolUse(_) | ContentPart::ToolResult(_)))
    })
}

fn tool_config(request: &ChatRequest) -> Result<Option<ToolConfiguration<'_>>, ProviderError> {
    let history_needs_tools = history_has_tool_blocks(request);
    let choice_none = matches!(request.tool_choice, Some(DomainToolChoice::None));
    if choice_none && !history_needs_tools {
        return Ok(None);
    }
    if !request.tools.is_empty() {
        let tool_choice = match &request.tool_choice {
            None | Some(DomainToolChoice::None) => None,
            Some(DomainToolChoice::Auto) => Some(ToolChoice::Auto(Empty {})),
            Some(DomainToolChoice::Any) => Some(ToolChoice::Any(Empty {})),
            Some(DomainToolChoice::Tool(name)) => {
                Some(ToolChoice::Tool(SpecificToolChoice { name }))
            }
            Some(_) => return Err(unsupported("tool_choice")),
        };
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                Tool::ToolSpec(ToolSpecification {
                    name: &tool.name,
                    description: tool.description.as_deref(),
                    input_schema: ToolInputSchema::Json(&tool.parameters),
                })
            })
            .collect();
        return Ok(Some(ToolConfiguration { tools, tool_choice }));
    }
    if !history_needs_tools {
        return Ok(None);
    }
    let mut names: Vec<&str> = Vec::new();
    for message in &request.messages {
        for part in &message.content {
            if let ContentPart::ToolUse(call) = part {
                if !names.contains(&call.name.as_str()) {
                    names.push(&call.name);
                }
            }
        }
    }
    // Tool results alone (their calls trimmed from the history) name no tool to declare.
    if names.is_empty() {
        return Ok(None);
    }
    Ok(Some(ToolConfiguration {
        tools: names
            .into_iter()
            .map(|name| {
                Tool::ToolSpec(ToolSpecification {
                    name,
                    description: None,
                    input_schema: ToolInputSchema::Json(&OPEN_SCHEMA),
                })
            })
            .collect(),
        tool_choice: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::{
        GuardrailConfig, GuardrailTrace, Role, Route, StreamProcessingMode, ToolCall, ToolResult,
        ToolSpec,
    };

    fn route() -> Route {
        Route {
            public_name: "acct/model".into(),
            account: "acct".into(),
            model_id: "model".into(),
            region: "us-east-1".into(),
            guardrail: Default::default(),
            finish_reason_style: Default::default(),
            drop_unsupported_params: false,
            family: None,
        }
    }

    /// The body for `request` with `guardrail` as the effective guardrail.
    fn body(
        request: &ChatRequest,
        guardrail: Option<&GuardrailConfig>,
        operation: Operation,
    ) -> Value {
        let route = route();
        serde_json::to_value(
            converse_request(ProviderRequest::new(&route, request, guardrail), operation).unwrap(),
        )
        .unwrap()
    }

    fn with_tool_history(tools: Vec<ToolSpec>, choice: Option<DomainToolChoice>) -> ChatRequest {
        ChatRequest {
            messages: vec![
                gateway_core::Message {
                    role: Role::User,
                    content: vec![ContentPart::Text("weather?".into())],
                },
                gateway_core::Message {
                    role: Role::Assistant,
                    content: vec![ContentPart::ToolUse(ToolCall {
                        id: "t1".into(),
                        name: "get_weather".into(),
                        input: serde_json::json!({"city": "Paris"}),
                    })],
                },
                gateway_core::Message {
                    role: Role::User,
                    content: vec![ContentPart::ToolResult(ToolResult {
                        tool_use_id: "t1".into(),
                        content: "sunny".into(),
                        is_error: false,
                    })],
                },
            ],
            tools,
            tool_choice: choice,
            ..ChatRequest::default()
        }
    }

    #[test]
    fn choice_none_without_tool_history_omits_tool_config() {
        let request = ChatRequest {
            tools: vec![ToolSpec {
                name: "f".into(),
                description: None,
                parameters: serde_json::json!({"type": "object"}),
                cache_point: None,
            }],
            tool_choice: Some(DomainToolChoice::None),
            ..ChatRequest::default()
        };
        assert_eq!(
            body(&request, None, Operation::Converse).get("toolConfig"),
            None
        );
    }

    #[test]
    fn tool_history_without_declared_tools_declares_the_used_ones() {
        let request = with_tool_history(vec![], Some(DomainToolChoice::None));
        assert_eq!(
            body(&request, None, Operation::Converse)["toolConfig"],
            serde_json::json!({"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]})
        );
    }

    #[test]
    fn stream_processing_mode_is_only_sent_to_converse_stream() {
        let guardrail = GuardrailConfig {
            identifier: "gr".into(),
            version: "1".into(),
            trace: None,
            stream_processing_mode: Some(StreamProcessingMode::Async),
        };
        let request = ChatRequest::default();
        let converse = body(&request, Some(&guardrail), Operation::Converse);
        let stream = body(&request, Some(&guardrail), Operation::ConverseStream);
        assert_eq!(
            converse["guardrailConfig"],
            serde_json::json!({"guardrailIdentifier": "gr", "guardrailVersion": "1"})
        );
        assert_eq!(
            stream["guardrailConfig"]["streamProcessingMode"],
            serde_json::json!("async")
        );
    }

    #[test]
    fn the_effective_guardrail_is_sent_not_the_requested_one() {
        let requested = GuardrailConfig {
            identifier: "client".into(),
            version: "1".into(),
            trace: Some(GuardrailTrace::EnabledFull),
            stream_processing_mode: None,
        };
        let effective = GuardrailConfig {
            identifier: "policy".into(),
            version: "2".into(),
            trace: None,
            stream_processing_mode: None,
        };
        let request = ChatRequest {
            requested_guardrail: Some(requested),
            ..ChatRequest::default()
        };
        assert_eq!(
            body(&request, Some(&effective), Operation::Converse)["guardrailConfig"],
            serde_json::json!({"guardrailIdentifier": "policy", "guardrailVersion": "2"})
        );
        assert_eq!(
            body(&request, None, Operation::Converse).get("guardrailConfig"),
            None
        );
    }
}
