//! OpenAI chat-completion request JSON to [`ChatRequest`].
//!
//! The body is parsed once: serde picks the known top-level fields (unknown ones are skipped
//! without allocating, since OpenAI SDKs keep adding fields) into `serde_json::Value`s, and
//! the validation below moves their strings into the domain request instead of copying them.
//! Every error names the field it is about, as a path such as `messages[2].content`.

//!
//! One module per concern: [`messages`] (the conversation), [`tools`], [`guardrail`]
//! (`guardrailConfig`), [`params`] (scalar parameters) and [`fields`] (error paths and
//! helpers). This module reads the top level and hands each field to its parser.

mod fields;
mod guardrail;
mod messages;
mod params;
mod tools;

use gateway_core::ChatRequest;
use serde::Deserialize;
use serde_json::Value;

pub(crate) use fields::{FieldErrorCode, RequestError};
pub(crate) use messages::MessagePositions;

use fields::{invalid_type, invalid_value, missing, optional, unsupported, At};
use guardrail::guardrail_config;
use messages::conversation;
use params::{boolean, number_in, positive_u32, response_format, stop_sequences, stream_options};
use tools::{check_tool_choice, tool_choice, tools};

/// The top-level fields the gateway reads. Fields Bedrock cannot honour but clients commonly
/// send (`user`, `seed`, `presence_penalty`, `frequency_penalty`, `logit_bias`,
/// `parallel_tool_calls`, `metadata`, `store`, `service_tier`, ...) are skipped like any
/// unknown field. JSON `null` reads as absent.
#[derive(Deserialize)]
struct RawRequest {
    model: Option<Value>,
    messages: Option<Value>,
    max_tokens: Option<Value>,
    max_completion_tokens: Option<Value>,
    temperature: Option<Value>,
    top_p: Option<Value>,
    stop: Option<Value>,
    tools: Option<Value>,
    tool_choice: Option<Value>,
    stream: Option<Value>,
    stream_options: Option<Value>,
    #[serde(rename = "guardrailConfig")]
    guardrail_config: Option<Value>,
    #[serde(rename = "additionalModelRequestFields")]
    additional_model_request_fields: Option<Value>,
    n: Option<Value>,
    response_format: Option<Value>,
    logprobs: Option<Value>,
    functions: Option<Value>,
}

/// A valid request and what is needed to report later errors in the client's terms.
#[derive(Debug)]
pub(crate) struct ParsedRequest {
    pub(crate) chat: ChatRequest,
    pub(crate) positions: MessagePositions,
}

/// Parses and validates an OpenAI chat-completion request body.
pub(crate) fn parse_chat_request(body: &[u8]) -> Result<ParsedRequest, RequestError> {
    let raw: RawRequest = serde_json::from_slice(body).map_err(|error| {
        RequestError::InvalidJson(if error.is_data() {
            // serde's message would name the private struct; the cause is the shape.
            "the request body must be a JSON object".to_owned()
        } else {
            format!("the request body is not valid JSON: {error}")
        })
    })?;
    convert(raw)
}

fn convert(raw: RawRequest) -> Result<ParsedRequest, RequestError> {
    let mut request = ChatRequest::default();

    let model = At::Root("model");
    request.model = match raw.model {
        None => return Err(missing(&model)),
        Some(Value::String(name)) if name.is_empty() => {
            return Err(invalid_value(&model, "must not be empty"))
        }
        Some(Value::String(name)) => name,
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

    request.requested_guardrail = optional(
        raw.guardrail_config,
        &At::Root("guardrailConfig"),
        guardrail_config,
    )?;
    request.additional_model_request_fields = optional(
        raw.additional_model_request_fields,
        &At::Root("additionalModelRequestFields"),
        |value, at| match value {
            Value::Object(_) => Ok(value),
            _ => Err(invalid_type(at, "an object")),
        },
    )?;

    optional(raw.n, &At::Root("n"), |value, at| match value.as_u64() {
        Some(1) => Ok(()),
        _ => Err(unsupported(at, "only n=1 is supported")),
    })?;
    optional(
        raw.response_format,
        &At::Root("response_format"),
        response_format,
    )?;
    optional(raw.logprobs, &At::Root("logprobs"), |value, at| {
        if boolean(value, at)? {
            Err(unsupported(at, "logprobs are not available from Bedrock"))
        } else {
            Ok(())
        }
    })?;
    if raw.functions.is_some() {
        return Err(unsupported(
            &At::Root("functions"),
            "the deprecated `functions` parameter is not supported: use `tools`",
        ));
    }
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
