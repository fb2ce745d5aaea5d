//! Anthropic Messages request JSON (`POST /v1/messages`) to [`ChatRequest`].
//!
//! The top level is read once with the OpenAI door's strict reader (unknown keys and keys
//! given twice at any depth are refused), and the field helpers, `cache_control` and
//! `guardrailConfig` parsers are that door's: one rule each, whichever door a request
//! comes through. What Anthropic spells differently is read here: `system` as a string or
//! text blocks, typed content blocks (`image` and `document` with a `source`, `tool_use`,
//! `tool_result`, `thinking`, `redacted_thinking`), `tools` with `input_schema`,
//! `tool_choice` objects, `thinking`, `top_k` and `stop_sequences`.
//!
//! Messages map one to one (the system prompt is apart already), so an error the service
//! reports about `messages[i]` names the client's `messages[i]`.

use crate::openai::request::thinking_blocks::redacted;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use gateway_core::request_limits::{
    check_count, check_model_name, check_tool_name, check_tool_use_id, MediaBudget,
    MAX_CONTENT_BLOCKS, MAX_MESSAGES, MAX_TOOLS,
};
use gateway_core::{
    ChatRequest, ContentPart, Document, DocumentFormat, Image, ImageFormat, Message, Reasoning,
    ReasoningBlock, Role, SystemPart, ToolCall, ToolChoice, ToolResult, ToolSpec,
};
use serde_json::{Map, Value};

use crate::openai::request::cache_control::{cache_control, push_cache_point};
use crate::openai::request::fields::{
    duplicate_key, invalid_type, invalid_value, missing, optional, optional_string,
    required_object, required_string, unsupported, At, RequestError,
};
use crate::openai::request::guardrail::guardrail_config;
use crate::openai::request::params::{boolean, number_in, positive_u32, stop_sequences};
use crate::openai::request::raw::NamedTopLevel;

/// Every top-level field the door reads. Anthropic's own fields, then Bedrock's
/// `guardrailConfig` (as on the chat-completions door).
const FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "guardrailConfig",
];

/// Anthropic's smallest thinking budget.
const MIN_THINKING_BUDGET: u64 = 1024;

/// What a Messages body is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `POST /v1/messages`: `max_tokens` is required.
    Answer,
    /// `POST /v1/messages/count_tokens`: the same body, `max_tokens` optional (nothing is
    /// generated).
    CountTokens,
}

/// Parses and validates a Messages request body.
pub(crate) fn parse_messages_request(
    body: &[u8],
    purpose: Purpose,
) -> Result<ChatRequest, RequestError> {
    let mut top = NamedTopLevel::read(body, FIELDS).map_err(|error| {
        RequestError::InvalidJson(if error.is_data() {
            "the request body must be a JSON object".to_owned()
        } else {
            format!("the request body is not valid JSON: {error}")
        })
    })?;
    if let Some(param) = top.unknown.take() {
        return Err(RequestError::UnknownParameter { param });
    }
    if let Some(param) = top.duplicate {
        return Err(duplicate_key(param.to_owned()));
    }
    if let Some(path) = top.nested_duplicate.take() {
        return Err(duplicate_key(path));
    }
    let mut request = ChatRequest::default();

    let model = At::Root("model");
    request.model = match top.take("model") {
        None => return Err(missing(&model)),
        Some(Value::String(name)) => {
            check_model_name(&name).map_err(|message| invalid_value(&model, message))?;
            name
        }
        Some(_) => return Err(invalid_type(&model, "a string")),
    };
    let max_tokens = At::Root("max_tokens");
    request.inference.max_tokens = match top.take("max_tokens") {
        None if purpose == Purpose::Answer => return Err(missing(&max_tokens)),
        None => None,
        Some(value) => Some(positive_u32(value, &max_tokens)?),
    };

    let mut media = MediaBudget::default();
    request.system = optional(top.take("system"), &At::Root("system"), system)?.unwrap_or_default();
    request.messages = match top.take("messages") {
        None => return Err(missing(&At::Root("messages"))),
        Some(value) => messages(value, &mut media)?,
    };

    // Anthropic's sampling ranges (temperature 0 to 1, not OpenAI's 0 to 2).
    request.inference.temperature = optional(
        top.take("temperature"),
        &At::Root("temperature"),
        |v, at| number_in(v, at, 0.0, 1.0),
    )?;
    request.inference.top_p = optional(top.take("top_p"), &At::Root("top_p"), |v, at| {
        number_in(v, at, 0.0, 1.0)
    })?;
    // Converse has no top-k; Claude on Bedrock reads Anthropic's own `top_k` from the
    // model-specific request fields.
    request.additional_model_request_fields =
        optional(top.take("top_k"), &At::Root("top_k"), positive_u32)?
            .map(|top_k| serde_json::json!({ "top_k": top_k }));
    request.inference.stop = optional(
        top.take("stop_sequences"),
        &At::Root("stop_sequences"),
        stop_sequences,
    )?
    .unwrap_or_default();

    request.tools = optional(top.take("tools"), &At::Root("tools"), tools)?.unwrap_or_default();
    request.tool_choice = optional(
        top.take("tool_choice"),
        &At::Root("tool_choice"),
        tool_choice,
    )?;
    check_tool_choice(&request)?;

    request.reasoning = optional(top.take("thinking"), &At::Root("thinking"), thinking)?.flatten();
    optional(top.take("metadata"), &At::Root("metadata"), metadata)?;
    optional(
        top.take("service_tier"),
        &At::Root("service_tier"),
        service_tier,
    )?;
    request.stream = optional(top.take("stream"), &At::Root("stream"), boolean)?.unwrap_or(false);
    request.requested_guardrail = optional(
        top.take("guardrailConfig"),
        &At::Root("guardrailConfig"),
        guardrail_config,
    )?;
    Ok(request)
}

/// `system`: a string, or an array of text blocks (each may carry a `cache_control`).
fn system(value: Value, at: &At<'_>) -> Result<Vec<SystemPart>, RequestError> {
    let blocks = match value {
        Value::String(text) => return Ok(vec![SystemPart::Text(text)]),
        Value::Array(blocks) => blocks,
        _ => return Err(invalid_type(at, "a string or an array of text blocks")),
    };
    check_count(blocks.len(), MAX_CONTENT_BLOCKS, "system blocks")
        .map_err(|message| invalid_value(at, message))?;
    let mut parts = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.into_iter().enumerate() {
        let at = at.index(i);
        let Value::Object(mut block) = block else {
            return Err(invalid_type(&at, "a text block object"));
        };
        let kind = required_string(&mut block, "type", &at)?;
        if kind != "text" {
            return Err(unsupported(
                &at.key("type"),
                format!("block type {kind:?} is not allowed in the system prompt: use text"),
            ));
        }
        parts.push(SystemPart::Text(required_string(&mut block, "text", &at)?));
        if let Some(point) = cache_control(&mut block, &at)? {
            push_cache_point(&mut parts, point);
        }
    }
    Ok(parts)
}

fn messages(value: Value, media: &mut MediaBudget) -> Result<Vec<Message>, RequestError> {
    let at = At::Root("messages");
    let Value::Array(items) = value else {
        return Err(invalid_type(&at, "a non-empty array of messages"));
    };
    if items.is_empty() {
        return Err(invalid_value(&at, "must contain at least one message"));
    }
    check_count(items.len(), MAX_MESSAGES, "messages")
        .map_err(|message| invalid_value(&at, message))?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| message(item, &at.index(i), media))
        .collect()
}

fn message(value: Value, at: &At<'_>, media: &mut MediaBudget) -> Result<Message, RequestError> {
    let Value::Object(mut message) = value else {
        return Err(invalid_type(at, "a message object"));
    };
    let role = match required_string(&mut message, "role", at)?.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(invalid_value(
                &at.key("role"),
                format!(
                    "unknown value {other:?}: expected user or assistant (the system prompt is \
                     the top-level `system`)"
                ),
            ))
        }
    };
    let content_at = at.key("content");
    let content = match message.remove("content") {
        None | Some(Value::Null) => return Err(missing(&content_at)),
        Some(Value::String(text)) => vec![ContentPart::Text(text)],
        Some(Value::Array(blocks)) => content_blocks(blocks, &content_at, role, media)?,
        Some(_) => {
            return Err(invalid_type(
                &content_at,
                "a string or an array of content blocks",
            ))
        }
    };
    Ok(Message { role, content })
}

/// The block types each role may send, for the error that refuses another.
fn allowed_blocks(role: Role) -> &'static str {
    match role {
        Role::User => "text, image, document or tool_result",
        Role::Assistant => "text, thinking, redacted_thinking or tool_use",
    }
}

/// A message's blocks, in order, each followed by its cache point if it has one.
fn content_blocks(
    blocks: Vec<Value>,
    at: &At<'_>,
    role: Role,
    media: &mut MediaBudget,
) -> Result<Vec<ContentPart>, RequestError> {
    check_count(blocks.len(), MAX_CONTENT_BLOCKS, "content blocks")
        .map_err(|message| invalid_value(at, message))?;
    let mut parts = Vec::with_capacity(blocks.len());
    for (j, block) in blocks.into_iter().enumerate() {
        let at = at.index(j);
        let Value::Object(mut block) = block else {
            return Err(invalid_type(&at, "a content block object"));
        };
        let kind = required_string(&mut block, "type", &at)?;
        parts.push(match (kind.as_str(), role) {
            // `citations` on text from an earlier answer: the gateway makes none, and they
            // add nothing the model needs to read its own text.
            ("text", _) => ContentPart::Text(required_string(&mut block, "text", &at)?),
            ("image", Role::User) => {
                let image = image(&mut block, &at)?;
                media
                    .image(&image)
                    .map_err(|message| invalid_value(&at.key("source").key("data"), message))?;
                ContentPart::Image(image)
            }
            ("document", Role::User) => {
                let document = document(&mut block, &at)?;
                media
                    .document(&document)
                    .map_err(|message| invalid_value(&at.key("source").key("data"), message))?;
                ContentPart::Document(document)
            }
            ("tool_result", Role::User) => ContentPart::ToolResult(tool_result(&mut block, &at)?),
            ("tool_use", Role::Assistant) => ContentPart::ToolUse(tool_use(&mut block, &at)?),
            ("thinking", Role::Assistant) => ContentPart::Reasoning(ReasoningBlock::Thinking {
                text: required_string(&mut block, "thinking", &at)?,
                signature: optional_string(&mut block, "signature", &at)?,
            }),
            ("redacted_thinking", Role::Assistant) => {
                let data = required_string(&mut block, "data", &at)?;
                ContentPart::Reasoning(redacted(data, &at.key("data"))?)
            }
            (other, role) => {
                return Err(unsupported(
                    &at.key("type"),
                    format!(
                        "content block type {other:?} is not allowed in {} messages: use {}",
                        match role {
                            Role::User => "user",
                            Role::Assistant => "assistant",
                        },
                        allowed_blocks(role)
                    ),
                ))
            }
        });
        if let Some(point) = cache_control(&mut block, &at)? {
            push_cache_point(&mut parts, point);
        }
    }
    Ok(parts)
}

/// A block's `source` object and its `type`; only `base64` (and `text` for documents) are
/// inline, and Bedrock takes nothing else.
fn source(
    block: &mut Map<String, Value>,
    at: &At<'_>,
    noun: &str,
    inline: &str,
) -> Result<(Map<String, Value>, String), RequestError> {
    let source_at = at.key("source");
    let mut source = required_object(block, "source", at, "a source object")?;
    let kind = required_string(&mut source, "type", &source_at)?;
    if kind == "url" || kind == "file" {
        return Err(unsupported(
            &source_at.key("type"),
            format!(
                "Bedrock needs {noun}s inline: send the {noun} as a {inline} source instead of \
                 a {kind} reference"
            ),
        ));
    }
    Ok((source, kind))
}

/// `{"type": "image", "source": {"type": "base64", "media_type", "data"}}`.
fn image(block: &mut Map<String, Value>, at: &At<'_>) -> Result<Image, RequestError> {
    let source_at = at.key("source");
    let (mut source, kind) = source(block, at, "image", "base64")?;
    if kind != "base64" {
        return Err(unsupported(
            &source_at.key("type"),
            format!("image source type {kind:?} is not supported: use base64"),
        ));
    }
    let media_type = required_string(&mut source, "media_type", &source_at)?;
    let format = ImageFormat::from_media_type(&media_type).ok_or_else(|| {
        unsupported(
            &source_at.key("media_type"),
            format!("image type {media_type:?} is not supported: use png, jpeg, gif or webp"),
        )
    })?;
    // The data is checked by its bytes with core's media rules where it is counted.
    let base64_data = required_string(&mut source, "data", &source_at)?;
    Ok(Image {
        format,
        base64_data,
    })
}

/// `{"type": "document", "source": {...}, "title"?}`: a base64 source with a media type
/// Bedrock takes, or a `text` source (plain text, encoded here). The title is the name.
fn document(block: &mut Map<String, Value>, at: &At<'_>) -> Result<Document, RequestError> {
    let source_at = at.key("source");
    let (mut source, kind) = source(block, at, "document", "base64 or text")?;
    let media_type = required_string(&mut source, "media_type", &source_at)?;
    let data = required_string(&mut source, "data", &source_at)?;
    let (format, base64_data) = match kind.as_str() {
        "base64" => {
            let format = DocumentFormat::from_media_type(&media_type).ok_or_else(|| {
                let formats: Vec<&str> = DocumentFormat::ALL.iter().map(|f| f.as_str()).collect();
                unsupported(
                    &source_at.key("media_type"),
                    format!(
                        "document type {media_type:?} is not supported: send one of {}",
                        formats.join(", ")
                    ),
                )
            })?;
            (format, data)
        }
        "text" if media_type.eq_ignore_ascii_case("text/plain") => {
            (DocumentFormat::Txt, STANDARD.encode(data))
        }
        "text" => {
            return Err(invalid_value(
                &source_at.key("media_type"),
                "a text source is text/plain",
            ))
        }
        other => {
            return Err(unsupported(
                &source_at.key("type"),
                format!("document source type {other:?} is not supported: use base64 or text"),
            ))
        }
    };
    if block.get("context").is_some_and(|value| !value.is_null()) {
        return Err(unsupported(
            &at.key("context"),
            "document context has no Bedrock counterpart: put it in a text block",
        ));
    }
    if let Some(citations) = block.remove("citations").filter(|value| !value.is_null()) {
        let enabled = citations.get("enabled").and_then(Value::as_bool);
        if enabled != Some(false) {
            return Err(unsupported(
                &at.key("citations"),
                "citations are not supported by the gateway",
            ));
        }
    }
    Ok(Document {
        format,
        name: optional_string(block, "title", at)?,
        base64_data,
    })
}

/// `{"type": "tool_use", "id", "name", "input"}` from an earlier answer.
fn tool_use(block: &mut Map<String, Value>, at: &At<'_>) -> Result<ToolCall, RequestError> {
    let id = required_string(block, "id", at)?;
    check_tool_use_id(&id).map_err(|message| invalid_value(&at.key("id"), message))?;
    let name = required_string(block, "name", at)?;
    check_tool_name(&name).map_err(|message| invalid_value(&at.key("name"), message))?;
    let input = match block.remove("input") {
        None | Some(Value::Null) => return Err(missing(&at.key("input"))),
        Some(input @ Value::Object(_)) => input,
        Some(_) => return Err(invalid_type(&at.key("input"), "an object")),
    };
    Ok(ToolCall { id, name, input })
}

/// `{"type": "tool_result", "tool_use_id", "content"?: string | [text blocks], "is_error"?}`.
/// Text blocks are joined by line breaks, as on the chat-completions door; the domain's tool
/// results are text.
fn tool_result(block: &mut Map<String, Value>, at: &At<'_>) -> Result<ToolResult, RequestError> {
    let tool_use_id = required_string(block, "tool_use_id", at)?;
    check_tool_use_id(&tool_use_id)
        .map_err(|message| invalid_value(&at.key("tool_use_id"), message))?;
    let content_at = at.key("content");
    let content = match block.remove("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text,
        Some(Value::Array(blocks)) => {
            check_count(blocks.len(), MAX_CONTENT_BLOCKS, "content blocks")
                .map_err(|message| invalid_value(&content_at, message))?;
            let mut texts = Vec::with_capacity(blocks.len());
            for (k, inner) in blocks.into_iter().enumerate() {
                let at = content_at.index(k);
                let Value::Object(mut inner) = inner else {
                    return Err(invalid_type(&at, "a text block object"));
                };
                let kind = required_string(&mut inner, "type", &at)?;
                if kind != "text" {
                    return Err(unsupported(
                        &at.key("type"),
                        format!("block type {kind:?} is not supported in a tool result: use text"),
                    ));
                }
                texts.push(required_string(&mut inner, "text", &at)?);
            }
            texts.join("\n")
        }
        Some(_) => {
            return Err(invalid_type(
                &content_at,
                "a string or an array of text blocks",
            ))
        }
    };
    let is_error = optional(block.remove("is_error"), &at.key("is_error"), boolean)?;
    Ok(ToolResult {
        tool_use_id,
        content,
        is_error: is_error.unwrap_or(false),
    })
}

fn tools(value: Value, at: &At<'_>) -> Result<Vec<ToolSpec>, RequestError> {
    let Value::Array(items) = value else {
        return Err(invalid_type(at, "an array of tools"));
    };
    check_count(items.len(), MAX_TOOLS, "tools").map_err(|message| invalid_value(at, message))?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| tool(item, &at.index(i)))
        .collect()
}

/// `{"name", "description"?, "input_schema", "cache_control"?}`; Anthropic's server tools
/// (a `type` other than `custom`) run on Anthropic's side and have no Bedrock counterpart.
fn tool(value: Value, at: &At<'_>) -> Result<ToolSpec, RequestError> {
    let Value::Object(mut tool) = value else {
        return Err(invalid_type(at, "a tool object"));
    };
    if let Some(kind) = optional_string(&mut tool, "type", at)? {
        if kind != "custom" {
            return Err(unsupported(
                &at.key("type"),
                format!("tool type {kind:?} is not supported: only client tools (custom)"),
            ));
        }
    }
    let name = required_string(&mut tool, "name", at)?;
    check_tool_name(&name).map_err(|message| invalid_value(&at.key("name"), message))?;
    let description = optional_string(&mut tool, "description", at)?;
    let parameters = match tool.remove("input_schema") {
        None | Some(Value::Null) => return Err(missing(&at.key("input_schema"))),
        Some(schema @ Value::Object(_)) => schema,
        Some(_) => {
            return Err(invalid_type(
                &at.key("input_schema"),
                "a JSON Schema object",
            ))
        }
    };
    Ok(ToolSpec {
        name,
        description,
        parameters,
        cache_point: cache_control(&mut tool, at)?,
    })
}

/// `{"type": "auto" | "any" | "none" | "tool", "name"?, "disable_parallel_tool_use"?}`.
/// `disable_parallel_tool_use` is checked and not sent: Converse has no such switch.
fn tool_choice(value: Value, at: &At<'_>) -> Result<ToolChoice, RequestError> {
    let Value::Object(mut choice) = value else {
        return Err(invalid_type(
            at,
            "an object such as {\"type\": \"auto\"} or {\"type\": \"tool\", \"name\": ...}",
        ));
    };
    optional(
        choice.remove("disable_parallel_tool_use"),
        &at.key("disable_parallel_tool_use"),
        boolean,
    )?;
    match required_string(&mut choice, "type", at)?.as_str() {
        "auto" => Ok(ToolChoice::Auto),
        "any" => Ok(ToolChoice::Any),
        "none" => Ok(ToolChoice::None),
        "tool" => {
            let name = required_string(&mut choice, "name", at)?;
            check_tool_name(&name).map_err(|message| invalid_value(&at.key("name"), message))?;
            Ok(ToolChoice::Tool(name))
        }
        other => Err(invalid_value(
            &at.key("type"),
            format!("unknown value {other:?}: expected auto, any, tool or none"),
        )),
    }
}

/// A choice that forces a tool needs that tool to exist; Bedrock would refuse it less clearly.
fn check_tool_choice(request: &ChatRequest) -> Result<(), RequestError> {
    let at = At::Root("tool_choice");
    match &request.tool_choice {
        Some(ToolChoice::Any) if request.tools.is_empty() => Err(invalid_value(
            &at.key("type"),
            "\"any\" needs at least one tool in `tools`",
        )),
        Some(ToolChoice::Tool(name)) if !request.tools.iter().any(|tool| &tool.name == name) => {
            Err(invalid_value(
                &at.key("name"),
                format!("no tool named {name:?} in `tools`"),
            ))
        }
        _ => Ok(()),
    }
}

/// `{"type": "enabled", "budget_tokens"}` is given to the model as Anthropic wrote it (Claude
/// on Bedrock reads the same object); `{"type": "disabled"}` is no reasoning.
/// The budget is not compared with `max_tokens`: with interleaved thinking (a beta Claude
/// Code uses) it may exceed it, and the model knows which applies.
fn thinking(value: Value, at: &At<'_>) -> Result<Option<Reasoning>, RequestError> {
    let Value::Object(mut setting) = value else {
        return Err(invalid_type(
            at,
            "an object such as {\"type\": \"enabled\", \"budget_tokens\": 2048}",
        ));
    };
    match required_string(&mut setting, "type", at)?.as_str() {
        "disabled" => Ok(None),
        "enabled" => {
            let budget_at = at.key("budget_tokens");
            let budget = match setting.get("budget_tokens") {
                None | Some(Value::Null) => return Err(missing(&budget_at)),
                Some(budget) => positive_u32(budget.clone(), &budget_at)?,
            };
            if u64::from(budget) < MIN_THINKING_BUDGET {
                return Err(invalid_value(
                    &budget_at,
                    format!("must be at least {MIN_THINKING_BUDGET}"),
                ));
            }
            setting.insert("type".into(), Value::String("enabled".into()));
            Ok(Some(Reasoning::Thinking(Value::Object(setting))))
        }
        other => Err(invalid_value(
            &at.key("type"),
            format!("unknown value {other:?}: expected enabled or disabled"),
        )),
    }
}

/// `{"user_id"?}`: checked and not sent. Anthropic uses it to tell end users apart for abuse
/// detection; Bedrock has no counterpart, and its `requestMetadata` refuses characters an id
/// may well hold.
fn metadata(value: Value, at: &At<'_>) -> Result<(), RequestError> {
    let Value::Object(mut metadata) = value else {
        return Err(invalid_type(at, "an object such as {\"user_id\": \"...\"}"));
    };
    optional_string(&mut metadata, "user_id", at)?;
    match metadata.keys().next() {
        Some(key) => Err(invalid_value(
            &at.key_owned(key),
            "unknown field: expected user_id",
        )),
        None => Ok(()),
    }
}

/// `auto` | `standard_only`: checked and not sent. Both are Bedrock's default tier here;
/// Anthropic's priority capacity has no Bedrock counterpart this door could ask for.
fn service_tier(value: Value, at: &At<'_>) -> Result<(), RequestError> {
    match value {
        Value::String(tier) if tier == "auto" || tier == "standard_only" => Ok(()),
        Value::String(tier) => Err(invalid_value(
            at,
            format!("unknown value {tier:?}: expected auto or standard_only"),
        )),
        _ => Err(invalid_type(at, "a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anthropic::error::anthropic_error_json;
    use crate::error::ApiError;

    #[test]
    fn valid_requests_become_chat_requests() {
        insta::glob!("../../../../fixtures/anthropic/request", "*.json", |path| {
            let body = std::fs::read(path).unwrap();
            let request = parse_messages_request(&body, Purpose::Answer)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            insta::assert_json_snapshot!(request);
        });
    }

    #[test]
    fn invalid_requests_get_a_400_naming_the_field() {
        insta::glob!(
            "../../../../fixtures/anthropic/request_invalid",
            "*.json",
            |path| {
                let body = std::fs::read(path).unwrap();
                let error = parse_messages_request(&body, Purpose::Answer)
                    .expect_err("the fixture is invalid");
                let api = ApiError::from_request(error);
                let json: Value = serde_json::from_slice(&anthropic_error_json(&api)).unwrap();
                insta::assert_json_snapshot!(serde_json::json!({
                    "status": api.status.as_u16(),
                    "body": json,
                }));
            }
        );
    }

    #[test]
    fn counting_tokens_needs_no_max_tokens() {
        let body = br#"{"model": "m", "messages": [{"role": "user", "content": "Hi"}]}"#;
        assert!(parse_messages_request(body, Purpose::Answer).is_err());
        let request = parse_messages_request(body, Purpose::CountTokens).unwrap();
        assert_eq!(request.inference.max_tokens, None);
    }

    #[test]
    fn plain_text_documents_are_encoded() {
        let body = br#"{"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "hello"}}]}]}"#;
        let request = parse_messages_request(body, Purpose::Answer).unwrap();
        let ContentPart::Document(document) = &request.messages[0].content[0] else {
            panic!("a document");
        };
        assert_eq!(document.base64_data, STANDARD.encode("hello"));
        assert_eq!(document.format, DocumentFormat::Txt);
    }
}
