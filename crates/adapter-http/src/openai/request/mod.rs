//! OpenAI chat-completion request JSON to [`ChatRequest`].
//!
//! The body is parsed once: [`raw`] reads the top level key by key into `serde_json::Value`s
//! (an unknown key is a 400 `unknown_parameter`, as OpenAI answers), and the validation below
//! moves their strings into the domain request instead of copying them. Every error names
//! the field it is about, as a path such as `messages[2].content`.
//!
//! One module per concern: [`raw`] (the top level), [`messages`] (the conversation),
//! [`content`] (what a message's content may hold), [`data_url`] and [`document`] (inline
//! images and files), [`cache_control`], [`thinking_blocks`] (reasoning given back),
//! [`tools`], [`guardrail`] (`guardrailConfig`), [`params`] (scalar parameters), [`options`]
//! (reasoning, response format, service tier and Bedrock's extras), [`openai_only`]
//! (parameters Bedrock has no counterpart for) and [`fields`] (error paths and helpers). This
//! module hands each field to its parser.

pub(crate) mod cache_control;
mod content;
pub(crate) mod data_url;
mod document;
pub(crate) mod fields;
pub(crate) mod guardrail;
mod messages;
mod openai_only;
pub(crate) mod options;
pub(crate) mod params;
pub(crate) mod raw;
pub(crate) mod thinking_blocks;
mod tools;

use gateway_core::request_limits::check_model_name;
use gateway_core::ChatRequest;

pub(crate) use fields::{FieldErrorCode, RequestError};
// Shared with the other OpenAI doors (embeddings), so a field error reads the same on each.
pub(crate) use fields::{
    duplicate_key, invalid_type, invalid_value, missing, optional, unsupported, At,
};
pub(crate) use messages::MessagePositions;
pub(crate) use openai_only::unsupported_parameter_name;
pub(crate) use params::{boolean, positive_u32};
pub(crate) use raw::strict_object;

use guardrail::guardrail_config;
use messages::conversation;
use params::{number_in, stop_sequences, stream_options};
use raw::RawRequest;
use serde_json::Value;
use tools::{check_tool_choice, tool_choice, tools};

/// A valid request and what is needed to report later errors in the client's terms.
#[derive(Debug)]
pub(crate) struct ParsedRequest {
    pub(crate) chat: ChatRequest,
    pub(crate) positions: MessagePositions,
}

/// Parses and validates an OpenAI chat-completion request body.
pub(crate) fn parse_chat_request(body: &[u8]) -> Result<ParsedRequest, RequestError> {
    convert(raw::read_top_level(body)?)
}

fn convert(mut raw: RawRequest) -> Result<ParsedRequest, RequestError> {
    openai_only::refuse_deprecated(&raw)?;
    openai_only::check_ignored(&mut raw)?;
    let mut request = ChatRequest {
        unsupported_parameters: openai_only::unsupported_parameters(&mut raw)?,
        ..ChatRequest::default()
    };

    let model = At::Root("model");
    request.model = match raw.model {
        None => return Err(missing(&model)),
        Some(Value::String(name)) => {
            check_model_name(&name).map_err(|message| invalid_value(&model, message))?;
            name
        }
        Some(_) => return Err(invalid_type(&model, "a string")),
    };

    let conversation = match raw.messages {
        None => return Err(missing(&At::Root("messages"))),
        Some(value) => conversation(value)?,
    };
    request.system = conversation.system;
    request.messages = conversation.messages;

    let max_tokens = optional(raw.max_tokens, &At::Root("max_tokens"), positive_u32)?;
    let max_completion_tokens = optional(
        raw.max_completion_tokens,
        &At::Root("max_completion_tokens"),
        positive_u32,
    )?;
    // `max_tokens` is deprecated in favour of `max_completion_tokens`.
    request.inference.max_tokens = max_completion_tokens.or(max_tokens);
    request.inference.temperature =
        optional(raw.temperature, &At::Root("temperature"), |v, at| {
            number_in(v, at, 0.0, 2.0)
        })?;
    request.inference.top_p = optional(raw.top_p, &At::Root("top_p"), |v, at| {
        number_in(v, at, 0.0, 1.0)
    })?;
    request.inference.stop =
        optional(raw.stop, &At::Root("stop"), stop_sequences)?.unwrap_or_default();

    request.tools = optional(raw.tools, &At::Root("tools"), tools)?.unwrap_or_default();
    request.tool_choice = optional(raw.tool_choice, &At::Root("tool_choice"), tool_choice)?;
    check_tool_choice(&request)?;

    request.stream = optional(raw.stream, &At::Root("stream"), boolean)?.unwrap_or(false);
    let include_usage = optional(
        raw.stream_options,
        &At::Root("stream_options"),
        stream_options,
    )?;
    // OpenAI refuses stream_options without stream; ignoring it is kinder and harmless.
    request.include_usage = request.stream && include_usage.unwrap_or(false);

    request.reasoning = options::reasoning(raw.reasoning_effort, raw.thinking)?;
    request.response_format = optional(
        raw.response_format,
        &At::Root("response_format"),
        options::response_format,
    )?
    .flatten();
    request.service_tier = optional(
        raw.service_tier,
        &At::Root("service_tier"),
        options::service_tier,
    )?
    .flatten();
    request.latency = optional(
        raw.performance_config,
        &At::Root("performanceConfig"),
        options::performance_config,
    )?
    .flatten();
    request.request_metadata = options::request_metadata(raw.request_metadata, raw.metadata)?;
    request.requested_guardrail = optional(
        raw.guardrail_config,
        &At::Root("guardrailConfig"),
        guardrail_config,
    )?;
    request.additional_model_request_fields = optional(
        raw.additional_model_request_fields,
        &At::Root("additionalModelRequestFields"),
        options::additional_model_request_fields,
    )?;
    request.additional_model_response_field_paths = optional(
        raw.additional_model_response_field_paths,
        &At::Root("additionalModelResponseFieldPaths"),
        options::additional_model_response_field_paths,
    )?
    .unwrap_or_default();
    Ok(ParsedRequest {
        chat: request,
        positions: conversation.positions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;

    /// The snapshots predate the split of `request.rs` into this directory: they stay in
    /// `openai/snapshots` under their old names (the module path is unchanged).
    macro_rules! in_openai_snapshots {
        ($body:block) => {
            insta::with_settings!({ snapshot_path => "../snapshots" }, $body)
        };
    }

    #[test]
    fn valid_requests_become_chat_requests() {
        in_openai_snapshots!({
            insta::glob!("../../../../../fixtures/openai/request", "*.json", |path| {
                let body = std::fs::read(path).unwrap();
                let request = parse_chat_request(&body)
                    .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
                    .chat;
                insta::assert_json_snapshot!(request);
            });
        });
    }

    #[test]
    fn invalid_requests_get_a_400_naming_the_field() {
        in_openai_snapshots!({
            insta::glob!(
                "../../../../../fixtures/openai/request_invalid",
                "*.json",
                |path| {
                    let body = std::fs::read(path).unwrap();
                    let error = parse_chat_request(&body).expect_err("the fixture is invalid");
                    let api = ApiError::from_request(error);
                    let json: Value = serde_json::from_slice(&api.to_json()).unwrap();
                    insta::assert_json_snapshot!(serde_json::json!({
                        "status": api.status.as_u16(),
                        "body": json,
                    }));
                }
            );
        });
    }
}
