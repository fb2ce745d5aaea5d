//! OpenAI chat-completion request JSON to [`ChatRequest`].
//!
//! The body is parsed once: serde picks the known top-level fields (unknown ones are skipped
//! without allocating, since OpenAI SDKs keep adding fields) into `serde_json::Value`s, and
//! the validation below moves their strings into the domain request instead of copying them.
//! Every error names the field it is about, as a path such as `messages[2].content`.

use std::fmt;

use gateway_core::{
    ChatRequest, ContentPart, GuardrailConfig, GuardrailTrace, Image, ImageFormat, Message, Role,
    StreamProcessingMode, ToolCall, ToolChoice, ToolResult, ToolSpec,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use thiserror::Error;

/// Why a request body is not an acceptable chat-completion request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum RequestError {
    #[error("{0}")]
    InvalidJson(String),
    #[error("{param}: {message}")]
    Field {
        /// Path of the offending field, e.g. `messages[2].content`.
        param: String,
        code: FieldErrorCode,
        message: String,
    },
}

/// OpenAI's `code` values for field errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldErrorCode {
    Missing,
    InvalidType,
    InvalidValue,
    Unsupported,
}

impl FieldErrorCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing_required_parameter",
            Self::InvalidType => "invalid_type",
            Self::InvalidValue => "invalid_value",
            Self::Unsupported => "unsupported_value",
        }
    }
}

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

/// Parses and validates an OpenAI chat-completion request body.
pub(crate) fn parse_chat_request(body: &[u8]) -> Result<ChatRequest, RequestError> {
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

fn convert(raw: RawRequest) -> Result<ChatRequest, RequestError> {
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

    let (system, messages) = match raw.messages {
        None => return Err(missing(&At::Root("messages"))),
        Some(value) => conversation(value)?,
    };
    request.system = system;
    request.messages = messages;

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
    Ok(request)
}

// ---------------------------------------------------------------------------------------
// Messages

/// System/developer texts and the alternating user/assistant turns.
fn conversation(value: Value) -> Result<(Vec<String>, Vec<Message>), RequestError> {
    let at = At::Root("messages");
    let Value::Array(items) = value else {
        return Err(invalid_type(&at, "a non-empty array of messages"));
    };
    if items.is_empty() {
        return Err(invalid_value(&at, "must contain at least one message"));
    }
    let mut system = Vec::new();
    let mut turns: Vec<Message> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = at.index(i);
        let Value::Object(mut message) = item else {
            return Err(invalid_type(&at, "a message object"));
        };
        let role_at = at.key("role");
        let role = match message.remove("role") {
            None | Some(Value::Null) => return Err(missing(&role_at)),
            Some(Value::String(role)) => role,
            Some(_) => return Err(invalid_type(&role_at, "a string")),
        };
        let content_at = at.key("content");
        let content = message.remove("content").filter(|v| !v.is_null());
        let (role, parts) = match role.as_str() {
            "system" | "developer" => {
                let content = content.ok_or_else(|| missing(&content_at))?;
                text_content(content, &content_at, |text| system.push(text))?;
                continue;
            }
            "user" => {
                let content = content.ok_or_else(|| missing(&content_at))?;
                (Role::User, user_content(content, &content_at)?)
            }
            "assistant" => (
                Role::Assistant,
                assistant_content(content, &mut message, &at)?,
            ),
            "tool" => (Role::User, vec![tool_result(content, &mut message, &at)?]),
            "function" => {
                return Err(unsupported(
                    &role_at,
                    "the deprecated `function` role is not supported: use `tool`",
                ))
            }
            other => {
                return Err(invalid_value(
                    &role_at,
                    format!(
                    "unknown role {other:?}: expected system, developer, user, assistant or tool"
                ),
                ))
            }
        };
        match turns.last_mut() {
            // Bedrock requires alternating turns; tool results are user turns too.
            Some(last) if last.role == role => last.content.extend(parts),
            Some(_) => turns.push(Message {
                role,
                content: parts,
            }),
            None if role == Role::Assistant => {
                return Err(invalid_value(
                    &role_at,
                    "the conversation must start with a user message (after any system or \
                     developer messages): Bedrock requires the first turn to be the user's",
                ))
            }
            None => turns.push(Message {
                role,
                content: parts,
            }),
        }
    }
    if turns.is_empty() {
        return Err(invalid_value(
            &at,
            "must contain a user message besides system and developer messages",
        ));
    }
    Ok((system, turns))
}

/// A string or an array of text parts (system, developer and tool messages), each text
/// handed to `push`.
fn text_content(
    content: Value,
    at: &At<'_>,
    mut push: impl FnMut(String),
) -> Result<(), RequestError> {
    match content {
        Value::String(text) => push(text),
        Value::Array(parts) => {
            for (j, part) in parts.into_iter().enumerate() {
                let at = at.index(j);
                let (kind, mut part) = typed_part(part, &at)?;
                match kind.as_str() {
                    "text" => push(required_string(&mut part, "text", &at)?),
                    other => {
                        return Err(unsupported(
                            &at.key("type"),
                            format!("content part type {other:?} is not allowed here: only text"),
                        ))
                    }
                }
            }
        }
        _ => return Err(invalid_type(at, "a string or an array of text parts")),
    }
    Ok(())
}

fn user_content(content: Value, at: &At<'_>) -> Result<Vec<ContentPart>, RequestError> {
    match content {
        Value::String(text) => Ok(vec![ContentPart::Text(text)]),
        Value::Array(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.into_iter().enumerate() {
                let at = at.index(j);
                let (kind, mut part) = typed_part(part, &at)?;
                out.push(match kind.as_str() {
                    "text" => ContentPart::Text(required_string(&mut part, "text", &at)?),
                    "image_url" => ContentPart::Image(image(&mut part, &at)?),
                    other => {
                        return Err(unsupported(
                            &at.key("type"),
                            format!(
                            "content part type {other:?} is not supported: use text or image_url"
                        ),
                        ))
                    }
                });
            }
            Ok(out)
        }
        _ => Err(invalid_type(at, "a string or an array of content parts")),
    }
}

/// An assistant turn from history: text (string, text or refusal parts, or null) and
/// `tool_calls`. Empty texts are dropped, since Bedrock rejects blank text blocks and
/// clients send `""` beside tool calls.
fn assistant_content(
    content: Option<Value>,
    message: &mut Map<String, Value>,
    at: &At<'_>,
) -> Result<Vec<ContentPart>, RequestError> {
    let mut parts = Vec::new();
    let content_at = at.key("content");
    match content {
        None => {}
        Some(Value::String(text)) => parts.push(ContentPart::Text(text)),
        Some(Value::Array(items)) => {
            for (j, part) in items.into_iter().enumerate() {
                let at = content_at.index(j);
                let (kind, mut part) = typed_part(part, &at)?;
                let text = match kind.as_str() {
                    "text" => required_string(&mut part, "text", &at)?,
                    "refusal" => required_string(&mut part, "refusal", &at)?,
                    other => {
                        return Err(unsupported(
                            &at.key("type"),
                            format!(
                                "content part type {other:?} is not allowed in assistant messages: \
                                 use text"
                            ),
                        ))
                    }
                };
                parts.push(ContentPart::Text(text));
            }
        }
        Some(_) => {
            return Err(invalid_type(
                &content_at,
                "a string, an array of text parts or null",
            ))
        }
    }
    parts.retain(|part| !matches!(part, ContentPart::Text(text) if text.is_empty()));

    let calls_at = at.key("tool_calls");
    match message.remove("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) => {
            parts.reserve(calls.len());
            for (k, call) in calls.into_iter().enumerate() {
                parts.push(ContentPart::ToolUse(tool_call(call, &calls_at.index(k))?));
            }
        }
        Some(_) => return Err(invalid_type(&calls_at, "an array of tool calls")),
    }
    if parts.is_empty() {
        return Err(invalid_value(
            at,
            "an assistant message needs non-empty content or tool_calls",
        ));
    }
    Ok(parts)
}

fn tool_call(call: Value, at: &At<'_>) -> Result<ToolCall, RequestError> {
    let Value::Object(mut call) = call else {
        return Err(invalid_type(at, "a tool call object"));
    };
    let id = required_string(&mut call, "id", at)?;
    check_function_type(&mut call, at)?;
    let function_at = at.key("function");
    let mut function = match call.remove("function") {
        None | Some(Value::Null) => return Err(missing(&function_at)),
        Some(Value::Object(function)) => function,
        Some(_) => return Err(invalid_type(&function_at, "an object")),
    };
    let name = required_string(&mut function, "name", &function_at)?;
    let arguments_at = function_at.key("arguments");
    let input = match function.remove("arguments") {
        None | Some(Value::Null) => return Err(missing(&arguments_at)),
        // Models send "" for functions without parameters.
        Some(Value::String(text)) if text.trim().is_empty() => Value::Object(Map::new()),
        Some(Value::String(text)) => serde_json::from_str(&text)
            .map_err(|error| invalid_value(&arguments_at, format!("is not valid JSON: {error}")))?,
        // Not OpenAI's format, but unambiguous.
        Some(object @ Value::Object(_)) => object,
        Some(_) => return Err(invalid_type(&arguments_at, "a JSON string")),
    };
    Ok(ToolCall { id, name, input })
}

fn tool_result(
    content: Option<Value>,
    message: &mut Map<String, Value>,
    at: &At<'_>,
) -> Result<ContentPart, RequestError> {
    let tool_use_id = required_string(message, "tool_call_id", at)?;
    let content_at = at.key("content");
    let content = content.ok_or_else(|| missing(&content_at))?;
    let mut text = String::new();
    text_content(content, &content_at, |part| {
        if text.is_empty() {
            text = part;
        } else {
            text.push('\n');
            text.push_str(&part);
        }
    })?;
    Ok(ContentPart::ToolResult(ToolResult {
        tool_use_id,
        content: text,
        is_error: false,
    }))
}

/// A content part object and its `type`.
fn typed_part(part: Value, at: &At<'_>) -> Result<(String, Map<String, Value>), RequestError> {
    let Value::Object(mut part) = part else {
        return Err(invalid_type(at, "a content part object"));
    };
    let kind = required_string(&mut part, "type", at)?;
    Ok((kind, part))
}

/// `{"image_url": {"url": "data:image/png;base64,..."}}`: Bedrock takes images inline only.
fn image(part: &mut Map<String, Value>, at: &At<'_>) -> Result<Image, RequestError> {
    let image_at = at.key("image_url");
    let mut image_url = match part.remove("image_url") {
        None | Some(Value::Null) => return Err(missing(&image_at)),
        Some(Value::Object(object)) => object,
        Some(_) => return Err(invalid_type(&image_at, "an object with a `url`")),
    };
    let url = required_string(&mut image_url, "url", &image_at)?;
    data_url(url, &image_at.key("url"))
}

fn data_url(mut url: String, at: &At<'_>) -> Result<Image, RequestError> {
    if starts_with_ignore_case(&url, "http://") || starts_with_ignore_case(&url, "https://") {
        return Err(unsupported(
            at,
            "Bedrock needs images inline: send the image as a data URL \
             (data:image/png;base64,...) instead of a link",
        ));
    }
    if !starts_with_ignore_case(&url, "data:") {
        return Err(invalid_value(
            at,
            "expected a data URL such as data:image/png;base64,...",
        ));
    }
    let Some(comma) = url.find(',') else {
        return Err(invalid_value(at, "the data URL has no `,` before the data"));
    };
    let header = &url["data:".len()..comma];
    let Some(media_type) = header.len().checked_sub(";base64".len()).and_then(|end| {
        let (media_type, encoding) = (header.get(..end)?, header.get(end..)?);
        encoding
            .eq_ignore_ascii_case(";base64")
            .then_some(media_type)
    }) else {
        return Err(invalid_value(at, "only base64 data URLs are supported"));
    };
    // Parameters such as `;name=x.png` may sit between the media type and `;base64`.
    let media_type = media_type.split(';').next().unwrap_or_default();
    let Some(format) = ImageFormat::from_media_type(media_type) else {
        return Err(unsupported(
            at,
            format!("image type {media_type:?} is not supported: use png, jpeg, gif or webp"),
        ));
    };
    let data = &url[comma + 1..];
    let is_base64 = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
    if data.is_empty() || !data.as_bytes().iter().all(is_base64) {
        return Err(invalid_value(at, "the image data is not valid base64"));
    }
    // In place: the image is often most of the body, so it is not copied again.
    url.drain(..=comma);
    Ok(Image {
        format,
        base64_data: url,
    })
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()))
}

// ---------------------------------------------------------------------------------------
// Parameters

fn positive_u32(value: Value, at: &At<'_>) -> Result<u32, RequestError> {
    match &value {
        Value::Number(number) => number
            .as_u64()
            .filter(|&n| n > 0)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| invalid_value(at, "must be a positive integer")),
        _ => Err(invalid_type(at, "a positive integer")),
    }
}

fn number_in(value: Value, at: &At<'_>, min: f64, max: f64) -> Result<f32, RequestError> {
    let Some(number) = value.as_f64() else {
        return Err(invalid_type(at, "a number"));
    };
    if !(min..=max).contains(&number) {
        return Err(invalid_value(
            at,
            format!("must be between {min} and {max}"),
        ));
    }
    // Within the checked range f32 only loses digits no sampler distinguishes.
    Ok(number as f32)
}

fn boolean(value: Value, at: &At<'_>) -> Result<bool, RequestError> {
    value.as_bool().ok_or_else(|| invalid_type(at, "a boolean"))
}

fn stop_sequences(value: Value, at: &At<'_>) -> Result<Vec<String>, RequestError> {
    let non_empty = |text: String, at: &At<'_>| {
        if text.is_empty() {
            Err(invalid_value(at, "stop sequences must not be empty"))
        } else {
            Ok(text)
        }
    };
    match value {
        Value::String(text) => Ok(vec![non_empty(text, at)?]),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let at = at.index(i);
                match item {
                    Value::String(text) => non_empty(text, &at),
                    _ => Err(invalid_type(&at, "a string")),
                }
            })
            .collect(),
        _ => Err(invalid_type(at, "a string or an array of strings")),
    }
}

fn tools(value: Value, at: &At<'_>) -> Result<Vec<ToolSpec>, RequestError> {
    let Value::Array(items) = value else {
        return Err(invalid_type(at, "an array of tools"));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| tool(item, &at.index(i)))
        .collect()
}

fn tool(value: Value, at: &At<'_>) -> Result<ToolSpec, RequestError> {
    let Value::Object(mut tool) = value else {
        return Err(invalid_type(at, "a tool object"));
    };
    check_function_type(&mut tool, at)?;
    let function_at = at.key("function");
    let mut function = match tool.remove("function") {
        None | Some(Value::Null) => return Err(missing(&function_at)),
        Some(Value::Object(function)) => function,
        Some(_) => return Err(invalid_type(&function_at, "an object")),
    };
    let name = required_string(&mut function, "name", &function_at)?;
    if name.is_empty() {
        return Err(invalid_value(&function_at.key("name"), "must not be empty"));
    }
    let description = match function.remove("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text),
        Some(_) => return Err(invalid_type(&function_at.key("description"), "a string")),
    };
    let parameters = match function.remove("parameters") {
        // OpenAI allows omitting them; Bedrock requires a schema.
        None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
        Some(schema @ Value::Object(_)) => schema,
        Some(_) => {
            return Err(invalid_type(
                &function_at.key("parameters"),
                "a JSON Schema object",
            ))
        }
    };
    Ok(ToolSpec {
        name,
        description,
        parameters,
    })
}

/// `type` of a tool or tool call: only `function` exists in OpenAI's chat API.
fn check_function_type(object: &mut Map<String, Value>, at: &At<'_>) -> Result<(), RequestError> {
    match object.remove("type") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(kind)) if kind == "function" => Ok(()),
        Some(Value::String(kind)) => Err(unsupported(
            &at.key("type"),
            format!("type {kind:?} is not supported: only function"),
        )),
        Some(_) => Err(invalid_type(&at.key("type"), "a string")),
    }
}

fn tool_choice(value: Value, at: &At<'_>) -> Result<ToolChoice, RequestError> {
    match value {
        Value::String(choice) => match choice.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Any),
            other => Err(invalid_value(
                at,
                format!("unknown value {other:?}: expected auto, none, required or a function"),
            )),
        },
        Value::Object(mut choice) => {
            check_function_type(&mut choice, at)?;
            let function_at = at.key("function");
            let mut function = match choice.remove("function") {
                None | Some(Value::Null) => return Err(missing(&function_at)),
                Some(Value::Object(function)) => function,
                Some(_) => return Err(invalid_type(&function_at, "an object")),
            };
            Ok(ToolChoice::Tool(required_string(
                &mut function,
                "name",
                &function_at,
            )?))
        }
        _ => Err(invalid_type(
            at,
            "\"auto\", \"none\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":...}}",
        )),
    }
}

/// A choice that forces a tool needs that tool to exist; Bedrock would refuse it less clearly.
fn check_tool_choice(request: &ChatRequest) -> Result<(), RequestError> {
    let at = At::Root("tool_choice");
    match &request.tool_choice {
        Some(ToolChoice::Any) if request.tools.is_empty() => Err(invalid_value(
            &at,
            "\"required\" needs at least one tool in `tools`",
        )),
        Some(ToolChoice::Tool(name)) if !request.tools.iter().any(|tool| &tool.name == name) => {
            Err(invalid_value(
                &at.key("function").key("name"),
                format!("no tool named {name:?} in `tools`"),
            ))
        }
        _ => Ok(()),
    }
}

fn stream_options(value: Value, at: &At<'_>) -> Result<bool, RequestError> {
    let Value::Object(mut options) = value else {
        return Err(invalid_type(at, "an object"));
    };
    match options.remove("include_usage") {
        None | Some(Value::Null) => Ok(false),
        Some(value) => boolean(value, &at.key("include_usage")),
    }
}

fn guardrail_config(value: Value, at: &At<'_>) -> Result<GuardrailConfig, RequestError> {
    let Value::Object(mut config) = value else {
        return Err(invalid_type(at, "an object"));
    };
    let identifier = required_string(&mut config, "guardrailIdentifier", at)?;
    if identifier.is_empty() {
        return Err(invalid_value(
            &at.key("guardrailIdentifier"),
            "must not be empty",
        ));
    }
    let version_at = at.key("guardrailVersion");
    let version = match config.remove("guardrailVersion") {
        None | Some(Value::Null) => return Err(missing(&version_at)),
        Some(Value::String(version)) if version.is_empty() => {
            return Err(invalid_value(&version_at, "must not be empty"))
        }
        Some(Value::String(version)) => version,
        // The seed's clients send `"1"`, but a bare number is an easy slip to forgive.
        Some(Value::Number(number)) if number.is_u64() => number.to_string(),
        Some(_) => {
            return Err(invalid_type(
                &version_at,
                "a string such as \"1\" or \"DRAFT\"",
            ))
        }
    };
    let trace = optional_enum(
        &mut config,
        "trace",
        at,
        GuardrailTrace::parse,
        &GuardrailTrace::ALL,
    )?;
    let stream_processing_mode = optional_enum(
        &mut config,
        "streamProcessingMode",
        at,
        StreamProcessingMode::parse,
        &StreamProcessingMode::ALL,
    )?;
    // A misspelt key would silently weaken a guardrail, so unknown keys are refused here
    // although they are ignored elsewhere.
    if let Some(key) = config.keys().next() {
        return Err(invalid_value(
            &at.key_owned(key),
            "unknown field: expected guardrailIdentifier, guardrailVersion, trace or \
             streamProcessingMode",
        ));
    }
    Ok(GuardrailConfig {
        identifier,
        version,
        trace,
        stream_processing_mode,
    })
}

fn optional_enum<T>(
    object: &mut Map<String, Value>,
    key: &'static str,
    at: &At<'_>,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &[&str],
) -> Result<Option<T>, RequestError> {
    let at = at.key(key);
    match object.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => parse(&value).map(Some).ok_or_else(|| {
            invalid_value(
                &at,
                format!(
                    "unknown value {value:?}: expected one of {}",
                    allowed.join(", ")
                ),
            )
        }),
        Some(_) => Err(invalid_type(&at, "a string")),
    }
}

fn response_format(value: Value, at: &At<'_>) -> Result<(), RequestError> {
    let Value::Object(mut format) = value else {
        return Err(invalid_type(at, "an object"));
    };
    let kind = required_string(&mut format, "type", at)?;
    match kind.as_str() {
        "text" => Ok(()),
        "json_object" | "json_schema" => Err(unsupported(
            &at.key("type"),
            format!("{kind} is not supported by this gateway: describe the format in the prompt or use a tool"),
        )),
        other => Err(invalid_value(
            &at.key("type"),
            format!("unknown value {other:?}: expected text"),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

/// Applies `parse` to a present, non-null value.
fn optional<T>(
    value: Option<Value>,
    at: &At<'_>,
    parse: impl FnOnce(Value, &At<'_>) -> Result<T, RequestError>,
) -> Result<Option<T>, RequestError> {
    value.map(|value| parse(value, at)).transpose()
}

fn required_string(
    object: &mut Map<String, Value>,
    key: &'static str,
    at: &At<'_>,
) -> Result<String, RequestError> {
    match object.remove(key) {
        None | Some(Value::Null) => Err(missing(&at.key(key))),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(invalid_type(&at.key(key), "a string")),
    }
}

/// Where a value sits in the request, built on the stack and formatted only for errors.
#[derive(Clone, Copy)]
enum At<'a> {
    Root(&'static str),
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl<'a> At<'a> {
    fn key(&'a self, key: &'static str) -> At<'a> {
        At::Key(self, key)
    }

    fn key_owned(&'a self, key: &'a str) -> At<'a> {
        At::Key(self, key)
    }

    fn index(&'a self, index: usize) -> At<'a> {
        At::Index(self, index)
    }
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Root(name) => f.write_str(name),
            At::Key(parent, key) => write!(f, "{parent}.{key}"),
            At::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

fn field_error(at: &At<'_>, code: FieldErrorCode, message: impl Into<String>) -> RequestError {
    RequestError::Field {
        param: at.to_string(),
        code,
        message: message.into(),
    }
}

fn missing(at: &At<'_>) -> RequestError {
    field_error(at, FieldErrorCode::Missing, "missing required field")
}

fn invalid_type(at: &At<'_>, expected: &str) -> RequestError {
    field_error(
        at,
        FieldErrorCode::InvalidType,
        format!("expected {expected}"),
    )
}

fn invalid_value(at: &At<'_>, message: impl Into<String>) -> RequestError {
    field_error(at, FieldErrorCode::InvalidValue, message)
}

fn unsupported(at: &At<'_>, message: impl Into<String>) -> RequestError {
    field_error(at, FieldErrorCode::Unsupported, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;

    #[test]
    fn valid_requests_become_chat_requests() {
        insta::glob!("../../../../fixtures/openai/request", "*.json", |path| {
            let body = std::fs::read(path).unwrap();
            let request = parse_chat_request(&body)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            insta::assert_json_snapshot!(request);
        });
    }

    #[test]
    fn invalid_requests_get_a_400_naming_the_field() {
        insta::glob!(
            "../../../../fixtures/openai/request_invalid",
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
    }

    #[test]
    fn image_data_is_moved_not_copied() {
        let url = String::from("data:image/png;base64,iVBORw0KGgo=");
        let pointer = url.as_ptr();
        let image = data_url(url, &At::Root("url")).unwrap();
        assert_eq!(image.base64_data, "iVBORw0KGgo=");
        assert_eq!(image.format, ImageFormat::Png);
        assert_eq!(image.base64_data.as_ptr(), pointer, "same allocation");
    }
}
