//! A prepared [`ProviderRequest`] to the Converse / ConverseStream request body.
//!
//! A pure function: the body borrows from the request, so nothing is copied until
//! serialization (but for the few values computed here, see [`crate::wire`]). What the
//! route's model can take comes from [`crate::model_family`]; each concept with rules of
//! its own has its module: [`crate::reasoning`], [`crate::structured_output`],
//! [`crate::cache_points`], [`crate::documents`], [`crate::request_options`], and the turn
//! rules [`crate::converse_turns`].
//!
//! Content: blank (whitespace-only) text and guarded text are dropped, in system and
//! messages alike (Bedrock refuses blank text blocks); reasoning from earlier turns is
//! given back verbatim to models that reason and left out for the others (which refuse
//! it); guarded text becomes `guardContent`, so a guardrail evaluates only what the client
//! marked.
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
//!   open schema `{"type": "object"}`, so Bedrock accepts the history;
//! - structured output through a forced tool ([`crate::structured_output`]) declares that
//!   tool (after any the history needs) and forces it.

use std::borrow::Cow;
use std::sync::LazyLock;

use gateway_core::{
    ChatRequest, ContentPart, ProviderError, ProviderRequest, ReasoningBlock, SystemPart,
    ToolChoice as DomainToolChoice,
};
use serde_json::{Map, Value};

use crate::cache_points::CachePoints;
use crate::converse_turns::converse_turns;
use crate::documents::DocumentNames;
use crate::model_family::ModelCapabilities;
use crate::reasoning::{reasoning_setting, ReasoningSetting};
use crate::request_options::{request_metadata, response_field_paths};
use crate::structured_output::{StructuredOutput, FORCED_TOOL_NAME};
use crate::wire::{
    ContentBlock, ConverseRequest, CountTokensRequest, DocumentBlock, DocumentSource, Empty,
    GuardrailConfiguration, GuardrailConverseContentBlock, GuardrailConverseTextBlock, ImageBlock,
    ImageSource, InferenceConfiguration, PerformanceConfiguration, ReasoningContentBlock,
    ReasoningTextBlock, ServiceTier, SpecificToolChoice, SystemContentBlock, Tool, ToolChoice,
    ToolConfiguration, ToolInputSchema, ToolResultBlock, ToolResultContentBlock, ToolResultStatus,
    ToolSpecification, ToolUseBlock,
};

/// Which Bedrock operation a body is for; they differ in path, in
/// `guardrailConfig.streamProcessingMode`, and CountTokens wraps the parts it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Converse,
    ConverseStream,
    /// CountTokens with a Converse input: the parts of the Converse body that are counted.
    CountTokens,
    /// InvokeModel: the model's own JSON (embeddings, see `crate::embeddings`).
    InvokeModel,
}

impl Operation {
    /// The last path segment, after `/model/{modelId}/`.
    pub fn path_suffix(self) -> &'static str {
        match self {
            Self::Converse => "converse",
            Self::ConverseStream => "converse-stream",
            Self::CountTokens => "count-tokens",
            Self::InvokeModel => "invoke",
        }
    }

    /// The GenAI operation name of the call's span.
    pub fn gen_ai_operation(self) -> &'static str {
        match self {
            // Counting tokens prepares a chat; GenAI names no operation of its own for it.
            Self::Converse | Self::ConverseStream | Self::CountTokens => "chat",
            Self::InvokeModel => "embeddings",
        }
    }
}

/// `{"type": "object"}`: the schema of tools the history uses but the request does not
/// declare, and of the forced tool for `json_object`.
pub(crate) static OPEN_SCHEMA: LazyLock<Value> =
    LazyLock::new(|| serde_json::json!({"type": "object"}));

/// The Converse body for `call`: the client's request with the effective guardrail (never
/// the one the client asked for, which policy may have replaced), shaped for the route's
/// model. Fails, before any call, when the conversation breaks Converse's turn rules
/// ([`crate::converse_turns`]) or the model cannot honour a feature of the request
/// (`ProviderError::Unsupported`).
///
/// Also names the tool whose call the response side unwraps into text when the body forces
/// one: decided once, here, for both sides.
fn converse_request<'a>(
    call: ProviderRequest<'a>,
    operation: Operation,
) -> Result<(ConverseRequest<'a>, Option<&'static str>), ProviderError> {
    let request = call.chat;
    let model_id = call.route.model_id.as_str();
    let model = ModelCapabilities::of(call.route);
    check_inference_ranges(request, &model, model_id)?;
    let reasoning = reasoning_setting(request, &model, model_id)?;
    let structured_output = StructuredOutput::of(request, &model, model_id)?;
    let forced_tool = structured_output
        .as_ref()
        .and_then(StructuredOutput::forced_tool);
    let mut blocks = Blocks {
        keep_reasoning: model.reasoning.is_some(),
        cache_points: CachePoints::new(&model),
        documents: DocumentNames::default(),
    };
    let system = blocks.system(&request.system)?;
    let tool_config = tool_config(
        request,
        structured_output.as_ref(),
        &mut blocks.cache_points,
    )?;
    let messages = converse_turns(&request.messages, |part| blocks.content(part))?;
    let max_tokens = request.inference.max_tokens.or(reasoning
        .as_ref()
        .and_then(|setting| setting.default_max_tokens));
    let body = ConverseRequest {
        messages,
        system,
        inference_config: (!request.inference.is_empty() || max_tokens.is_some()).then(|| {
            InferenceConfiguration {
                max_tokens,
                temperature: request.inference.temperature,
                top_p: request.inference.top_p,
                stop_sequences: &request.inference.stop,
            }
        }),
        tool_config,
        guardrail_config: call.guardrail.map(|guardrail| GuardrailConfiguration {
            guardrail_identifier: &guardrail.identifier,
            guardrail_version: &guardrail.version,
            trace: guardrail.trace.map(|trace| trace.as_str()),
            stream_processing_mode: match operation {
                Operation::Converse | Operation::CountTokens | Operation::InvokeModel => None,
                Operation::ConverseStream => {
                    guardrail.stream_processing_mode.map(|mode| mode.as_str())
                }
            },
        }),
        additional_model_request_fields: additional_model_request_fields(
            request.additional_model_request_fields.as_ref(),
            reasoning,
        ),
        additional_model_response_field_paths: response_field_paths(
            &request.additional_model_response_field_paths,
        )?,
        request_metadata: request_metadata(&request.request_metadata)?,
        performance_config: request.latency.map(|latency| PerformanceConfiguration {
            latency: latency.as_str(),
        }),
        service_tier: request.service_tier.map(|tier| ServiceTier {
            kind: tier.as_str(),
        }),
        output_config: match &structured_output {
            Some(output) => output.output_config()?,
            None => None,
        },
    };
    Ok((body, forced_tool))
}

/// The serialized body, ready to sign and send (the tests' entry; the provider also needs
/// the forced tool).
#[cfg(any(test, feature = "test-util"))]
pub fn converse_body(
    call: ProviderRequest<'_>,
    operation: Operation,
) -> Result<Vec<u8>, ProviderError> {
    converse_body_and_forced_tool(call, operation).map(|(body, _)| body)
}

/// About how long the Converse JSON of `request` is: its text and inline media (which
/// dominate any large request) and a little for the structure around each part.
fn estimated_body_len(request: &ChatRequest) -> usize {
    const PER_PART: usize = 48;
    let system: usize = request
        .system
        .iter()
        .map(|part| match part {
            SystemPart::Text(text) | SystemPart::GuardedText(text) => text.len() + PER_PART,
            _ => PER_PART,
        })
        .sum();
    let messages: usize = request
        .messages
        .iter()
        .flat_map(|message| &message.content)
        .map(|part| match part {
            ContentPart::Text(text) | ContentPart::GuardedText(text) => text.len() + PER_PART,
            ContentPart::Image(image) => image.base64_data.len() + PER_PART,
            ContentPart::Document(document) => document.base64_data.len() + PER_PART,
            _ => 4 * PER_PART,
        })
        .sum();
    512 + system + messages
}

/// [`converse_body`], and the tool the response side unwraps into text (see
/// [`crate::structured_output`]).
pub(crate) fn converse_body_and_forced_tool(
    call: ProviderRequest<'_>,
    operation: Operation,
) -> Result<(Vec<u8>, Option<&'static str>), ProviderError> {
    // Sized for the request's bulk before writing: a long prompt or an inline image would
    // otherwise be copied again each time the buffer doubled.
    let mut body = Vec::with_capacity(estimated_body_len(call.chat));
    let (request, forced_tool) = converse_request(call, operation)?;
    match operation {
        Operation::CountTokens => {
            serde_json::to_writer(&mut body, &CountTokensRequest::converse(request))
        }
        // InvokeModel bodies are the model's own (`crate::embeddings`), never built here.
        Operation::Converse | Operation::ConverseStream | Operation::InvokeModel => {
            serde_json::to_writer(&mut body, &request)
        }
    }
    .map_err(|error| ProviderError::InvalidRequest {
        message: format!("the request cannot be written as Converse JSON: {error}"),
    })?;
    Ok((body, forced_tool))
}

/// The client's `additionalModelRequestFields` with the generated reasoning member added.
/// The client's own keys win ([`crate::reasoning`] generates nothing for them), so the
/// client's object is only copied when something is added to it.
fn additional_model_request_fields(
    client: Option<&Value>,
    generated: Option<ReasoningSetting>,
) -> Option<Cow<'_, Value>> {
    let Some(ReasoningSetting { key, value, .. }) = generated else {
        return client.map(Cow::Borrowed);
    };
    let mut fields = match client {
        None => Map::new(),
        Some(Value::Object(fields)) => fields.clone(),
        // Not an object: Bedrock will refuse it as the client sent it.
        Some(other) => return Some(Cow::Borrowed(other)),
    };
    fields.entry(key).or_insert(value);
    Some(Cow::Owned(Value::Object(fields)))
}

/// Converse's ranges (botocore: `temperature` and `topP` 0 to 1) and the model's output
/// limit, checked before any call: Bedrock would refuse them after a round trip.
fn check_inference_ranges(
    request: &ChatRequest,
    model: &ModelCapabilities,
    model_id: &str,
) -> Result<(), ProviderError> {
    let inference = &request.inference;
    let out_of_range = |field: &str, value: f32| ProviderError::InvalidRequest {
        message: format!("{field}: Bedrock takes 0 to 1, not {value}"),
    };
    if let Some(temperature) = inference.temperature.filter(|t| !(0.0..=1.0).contains(t)) {
        return Err(out_of_range("temperature", temperature));
    }
    if let Some(top_p) = inference.top_p.filter(|p| !(0.0..=1.0).contains(p)) {
        return Err(out_of_range("top_p", top_p));
    }
    if let (Some(asked), Some(cap)) = (inference.max_tokens, model.max_output_tokens) {
        if asked > cap {
            return Err(ProviderError::InvalidRequest {
                message: format!(
                    "max_tokens: {model_id} writes at most {cap} tokens, {asked} were asked for"
                ),
            });
        }
    }
    Ok(())
}

/// A request kind this adapter was not written for (the domain's enums are non-exhaustive):
/// refused before any call rather than dropped, so the model never answers a different
/// question than the one asked.
fn unsupported(what: &str) -> ProviderError {
    ProviderError::InvalidRequest {
        message: format!("Bedrock Converse cannot take this {what}"),
    }
}

fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

/// Converts one request's system and message parts, counting what is counted per request.
struct Blocks {
    /// Reasoning from earlier turns is given back (the model reasons) or left out.
    keep_reasoning: bool,
    cache_points: CachePoints,
    documents: DocumentNames,
}

impl Blocks {
    fn system<'a>(
        &mut self,
        parts: &'a [SystemPart],
    ) -> Result<Vec<SystemContentBlock<'a>>, ProviderError> {
        let mut blocks = Vec::with_capacity(parts.len());
        for part in parts {
            let block = match part {
                SystemPart::Text(text) if is_blank(text) => None,
                SystemPart::Text(text) => Some(SystemContentBlock::Text(text)),
                SystemPart::GuardedText(text) if is_blank(text) => None,
                SystemPart::GuardedText(text) => {
                    Some(SystemContentBlock::GuardContent(guarded(text)))
                }
                SystemPart::CachePoint(point) => self
                    .cache_points
                    .block(point)?
                    .map(SystemContentBlock::CachePoint),
                _ => return Err(unsupported("kind of system part")),
            };
            blocks.extend(block);
        }
        Ok(blocks)
    }

    /// The block for `part`; `None` when it is left out.
    fn content<'a>(
        &mut self,
        part: &'a ContentPart,
    ) -> Result<Option<ContentBlock<'a>>, ProviderError> {
        Ok(Some(match part {
            ContentPart::Text(text) if is_blank(text) => return Ok(None),
            ContentPart::Text(text) => ContentBlock::Text(text),
            ContentPart::Image(image) => ContentBlock::Image(ImageBlock {
                format: image.format.as_str(),
                source: ImageSource::Bytes(&image.base64_data),
            }),
            ContentPart::Document(document) => ContentBlock::Document(DocumentBlock {
                format: document.format.as_str(),
                name: self.documents.name(document),
                source: DocumentSource::Bytes(&document.base64_data),
            }),
            ContentPart::GuardedText(text) if is_blank(text) => return Ok(None),
            ContentPart::GuardedText(text) => ContentBlock::GuardContent(guarded(text)),
            ContentPart::Reasoning(_) if !self.keep_reasoning => return Ok(None),
            ContentPart::Reasoning(reasoning) => {
                ContentBlock::ReasoningContent(reasoning_block(reasoning)?)
            }
            ContentPart::CachePoint(point) => match self.cache_points.block(point)? {
                Some(block) => ContentBlock::CachePoint(block),
                None => return Ok(None),
            },
            ContentPart::ToolUse(call) => ContentBlock::ToolUse(ToolUseBlock {
                tool_use_id: &call.id,
                name: &call.name,
                input: &call.input,
            }),
            ContentPart::ToolResult(result) => ContentBlock::ToolResult(ToolResultBlock {
                tool_use_id: &result.tool_use_id,
                content: vec![ToolResultContentBlock::Text(&result.content)],
                // Only some models (Anthropic's) accept `status`; sending it just for errors
                // keeps successful tool turns valid for every model.
                status: result.is_error.then_some(ToolResultStatus::Error),
            }),
            _ => return Err(unsupported("kind of content part")),
        }))
    }
}

fn guarded(text: &str) -> GuardrailConverseContentBlock<'_> {
    GuardrailConverseContentBlock::Text(GuardrailConverseTextBlock { text })
}

fn reasoning_block(block: &ReasoningBlock) -> Result<ReasoningContentBlock<'_>, ProviderError> {
    Ok(match block {
        ReasoningBlock::Thinking { text, signature } => {
            ReasoningContentBlock::ReasoningText(ReasoningTextBlock {
                text,
                signature: signature.as_deref(),
            })
        }
        ReasoningBlock::Redacted { data } => ReasoningContentBlock::RedactedContent(data),
        _ => return Err(unsupported("kind of reasoning block")),
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

/// The tools the history's `toolUse` blocks name, once each, with an open schema.
fn tools_named_by_history(request: &ChatRequest) -> Vec<Tool<'_>> {
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
    names
        .into_iter()
        .map(|name| {
            Tool::ToolSpec(ToolSpecification {
                name,
                description: None,
                input_schema: ToolInputSchema::Json(&OPEN_SCHEMA),
            })
        })
        .collect()
}

fn tool_config<'a>(
    request: &'a ChatRequest,
    structured_output: Option<&StructuredOutput<'a>>,
    cache_points: &mut CachePoints,
) -> Result<Option<ToolConfiguration<'a>>, ProviderError> {
    let history_needs_tools = history_has_tool_blocks(request);
    let (tools, tool_choice) = if let Some(StructuredOutput::ForcedTool {
        schema,
        description,
    }) = structured_output
    {
        // `StructuredOutput::of` refused client tools beside the forced one. A history call
        // of a tool with the forced tool's name is declared once, as the forced tool (Bedrock
        // refuses two tools of one name).
        let mut tools = if history_needs_tools {
            tools_named_by_history(request)
        } else {
            Vec::new()
        };
        tools.retain(|tool| !matches!(tool, Tool::ToolSpec(spec) if spec.name == FORCED_TOOL_NAME));
        tools.push(Tool::ToolSpec(ToolSpecification {
            name: FORCED_TOOL_NAME,
            description: Some(description),
            input_schema: ToolInputSchema::Json(schema),
        }));
        let choice = ToolChoice::Tool(SpecificToolChoice {
            name: FORCED_TOOL_NAME,
        });
        (tools, Some(choice))
    } else if request.tools.is_empty() {
        if !history_needs_tools {
            return Ok(None);
        }
        (tools_named_by_history(request), None)
    } else {
        let choice_none = matches!(request.tool_choice, Some(DomainToolChoice::None));
        if choice_none && !history_needs_tools {
            return Ok(None);
        }
        let tool_choice = match &request.tool_choice {
            None | Some(DomainToolChoice::None) => None,
            Some(DomainToolChoice::Auto) => Some(ToolChoice::Auto(Empty {})),
            Some(DomainToolChoice::Any) => Some(ToolChoice::Any(Empty {})),
            Some(DomainToolChoice::Tool(name)) => {
                Some(ToolChoice::Tool(SpecificToolChoice { name }))
            }
            Some(_) => return Err(unsupported("tool_choice")),
        };
        let mut tools = Vec::with_capacity(request.tools.len());
        for tool in &request.tools {
            tools.push(Tool::ToolSpec(ToolSpecification {
                name: &tool.name,
                // Bedrock refuses an empty description; a blank one says nothing either.
                description: tool.description.as_deref().filter(|text| !is_blank(text)),
                input_schema: ToolInputSchema::Json(&tool.parameters),
            }));
            if let Some(point) = &tool.cache_point {
                tools.extend(cache_points.block(point)?.map(Tool::CachePoint));
            }
        }
        (tools, tool_choice)
    };
    // Tool results alone (their calls trimmed from the history) name no tool to declare.
    if tools.is_empty() {
        return Ok(None);
    }
    Ok(Some(ToolConfiguration { tools, tool_choice }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::{
        GuardrailConfig, GuardrailTrace, Role, Route, StreamProcessingMode, ToolCall, ToolResult,
        ToolSpec,
    };

    fn route() -> Route {
        crate::test_support::route("model", None)
    }

    /// The body for `request` with `guardrail` as the effective guardrail.
    fn body(
        request: &ChatRequest,
        guardrail: Option<&GuardrailConfig>,
        operation: Operation,
    ) -> Value {
        let route = route();
        let (body, _) =
            converse_request(ProviderRequest::new(&route, request, guardrail), operation).unwrap();
        serde_json::to_value(body).unwrap()
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
