//! `input`: a string (one user message) or a list of items. Message items with system or
//! developer roles go into the system prompt (after `instructions`); every other item is one
//! domain message, in the client's order: `message` items (user or assistant), `function_call`
//! items (an assistant tool call from history), `function_call_output` items (a tool result,
//! a user message) and `reasoning` items given back (assistant reasoning). Merging
//! consecutive same-role turns is the provider adapter's job, as for chat completions.
//!
//! A `reasoning` item is given back to the model only with its `encrypted_content`, which
//! holds the provider's signature (or, prefixed with [`REDACTED_PREFIX`], a redacted block):
//! without it no provider can verify the reasoning, so the item is skipped.

use crate::openai::request::thinking_blocks::redacted;
use gateway_core::request_limits::{
    check_count, check_tool_name, check_tool_use_id, MediaBudget, MAX_CONTENT_BLOCKS, MAX_MESSAGES,
};
use gateway_core::{
    ContentPart, Document, DocumentFormat, Image, ImageFormat, Message, ReasoningBlock, Role,
    SystemPart, ToolCall, ToolResult,
};
use serde_json::{Map, Value};

use crate::openai::request::data_url::{data_url, FILE, IMAGE};
use crate::openai::request::fields::{
    invalid_type, invalid_value, missing, optional_string, required_string, unsupported, At,
    RequestError,
};
use crate::openai::request::MessagePositions;

/// Where the domain's messages sit in `input`: system and developer items and skipped
/// reasoning items are not domain messages, every other item is one.
pub(crate) type InputPositions = MessagePositions;

/// How a redacted reasoning block travels in a reasoning item's `encrypted_content`, to tell
/// it from a signature (base64, so never holding `:`).
pub(crate) const REDACTED_PREFIX: &str = "redacted:";

/// `input`, split the domain's way.
pub(super) struct Input {
    pub(super) system: Vec<SystemPart>,
    pub(super) messages: Vec<Message>,
    pub(super) positions: InputPositions,
}

pub(super) fn input(value: Value) -> Result<Input, RequestError> {
    let at = At::Root("input");
    let items = match value {
        Value::String(text) => {
            return Ok(Input {
                system: Vec::new(),
                messages: vec![Message {
                    role: Role::User,
                    content: vec![ContentPart::Text(text)],
                }],
                positions: InputPositions::in_list("input", Vec::new()),
            })
        }
        Value::Array(items) => items,
        _ => return Err(invalid_type(&at, "a string or an array of input items")),
    };
    if items.is_empty() {
        return Err(invalid_value(&at, "must contain at least one item"));
    }
    check_count(items.len(), MAX_MESSAGES, "input items")
        .map_err(|message| invalid_value(&at, message))?;
    let mut media = MediaBudget::default();
    let mut system = Vec::new();
    let mut not_messages = Vec::new();
    let mut messages = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = at.index(i);
        let Value::Object(mut item) = item else {
            return Err(invalid_type(&at, "an input item object"));
        };
        let kind = match optional_string(&mut item, "type", &at)? {
            Some(kind) => kind,
            // Easy input messages (`{"role", "content"}`) may leave the type out.
            None if item.contains_key("role") => "message".to_owned(),
            None => return Err(missing(&at.key("type"))),
        };
        let message = match kind.as_str() {
            "message" => match message(&mut item, &at, &mut media)? {
                Some(message) => message,
                None => {
                    let content = item.remove("content").unwrap_or_default();
                    system_content(content, &at.key("content"), &mut system)?;
                    not_messages.push(i);
                    continue;
                }
            },
            "function_call" => Message {
                role: Role::Assistant,
                content: vec![ContentPart::ToolUse(function_call(&mut item, &at)?)],
            },
            "function_call_output" => Message {
                role: Role::User,
                content: vec![ContentPart::ToolResult(function_call_output(
                    &mut item, &at,
                )?)],
            },
            "reasoning" => match reasoning(&mut item, &at)? {
                Some(block) => Message {
                    role: Role::Assistant,
                    content: vec![ContentPart::Reasoning(block)],
                },
                None => {
                    not_messages.push(i);
                    continue;
                }
            },
            "item_reference" => {
                return Err(unsupported(
                    &at.key("type"),
                    "item references are not supported: the gateway is stateless and stores \
                     no items; send the item itself",
                ))
            }
            other => {
                return Err(unsupported(
                    &at.key("type"),
                    format!(
                        "input item type {other:?} is not supported: use message, \
                         function_call, function_call_output or reasoning"
                    ),
                ))
            }
        };
        messages.push(message);
    }
    if messages.is_empty() {
        return Err(invalid_value(
            &at,
            "must contain a user message besides system and developer messages",
        ));
    }
    Ok(Input {
        system,
        messages,
        positions: InputPositions::in_list("input", not_messages),
    })
}

/// A message item; `None` for system and developer messages, whose `content` the caller
/// puts in the system prompt.
fn message(
    item: &mut Map<String, Value>,
    at: &At<'_>,
    media: &mut MediaBudget,
) -> Result<Option<Message>, RequestError> {
    let role_at = at.key("role");
    let role = required_string(item, "role", at)?;
    let role = match role.as_str() {
        "system" | "developer" => return Ok(None),
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(invalid_value(
                &role_at,
                format!("unknown role {other:?}: expected user, assistant, system or developer"),
            ))
        }
    };
    let content_at = at.key("content");
    let content = match item.remove("content") {
        None | Some(Value::Null) => return Err(missing(&content_at)),
        Some(content) => content,
    };
    let content = match content {
        Value::String(text) => vec![ContentPart::Text(text)],
        Value::Array(parts) => {
            check_count(parts.len(), MAX_CONTENT_BLOCKS, "content parts")
                .map_err(|message| invalid_value(&content_at, message))?;
            let mut content = Vec::with_capacity(parts.len());
            for (j, part) in parts.into_iter().enumerate() {
                content.push(content_part(part, &content_at.index(j), role, media)?);
            }
            content
        }
        _ => {
            return Err(invalid_type(
                &content_at,
                "a string or an array of content parts",
            ))
        }
    };
    Ok(Some(Message { role, content }))
}

/// One part of a user or assistant message.
fn content_part(
    part: Value,
    at: &At<'_>,
    role: Role,
    media: &mut MediaBudget,
) -> Result<ContentPart, RequestError> {
    let Value::Object(mut part) = part else {
        return Err(invalid_type(at, "a content part object"));
    };
    let kind = required_string(&mut part, "type", at)?;
    Ok(match (kind.as_str(), role) {
        ("input_text", _) | ("output_text", Role::Assistant) => {
            ContentPart::Text(required_string(&mut part, "text", at)?)
        }
        ("refusal", Role::Assistant) => {
            ContentPart::Text(required_string(&mut part, "refusal", at)?)
        }
        ("input_image", Role::User) => {
            let image = input_image(&mut part, at)?;
            media
                .image(&image)
                .map_err(|message| invalid_value(&at.key("image_url"), message))?;
            ContentPart::Image(image)
        }
        ("input_file", Role::User) => {
            let document = input_file(&mut part, at)?;
            media
                .document(&document)
                .map_err(|message| invalid_value(&at.key("file_data"), message))?;
            ContentPart::Document(document)
        }
        (other, role) => {
            let allowed = match role {
                Role::User => "input_text, input_image or input_file",
                Role::Assistant => "output_text, refusal or input_text",
            };
            return Err(unsupported(
                &at.key("type"),
                format!("content part type {other:?} is not allowed here: use {allowed}"),
            ));
        }
    })
}

/// A system or developer message's content: a string or `input_text` parts.
fn system_content(
    content: Value,
    at: &At<'_>,
    system: &mut Vec<SystemPart>,
) -> Result<(), RequestError> {
    match content {
        Value::Null => Err(missing(at)),
        Value::String(text) => {
            system.push(SystemPart::Text(text));
            Ok(())
        }
        Value::Array(parts) => {
            check_count(parts.len(), MAX_CONTENT_BLOCKS, "content parts")
                .map_err(|message| invalid_value(at, message))?;
            for (j, part) in parts.into_iter().enumerate() {
                let at = at.index(j);
                let Value::Object(mut part) = part else {
                    return Err(invalid_type(&at, "a content part object"));
                };
                let kind = required_string(&mut part, "type", &at)?;
                if kind != "input_text" {
                    return Err(unsupported(
                        &at.key("type"),
                        format!(
                            "content part type {kind:?} is not allowed in system and developer \
                             messages: use input_text"
                        ),
                    ));
                }
                system.push(SystemPart::Text(required_string(&mut part, "text", &at)?));
            }
            Ok(())
        }
        _ => Err(invalid_type(at, "a string or an array of input_text parts")),
    }
}

/// `{"type": "input_image", "image_url": "data:image/png;base64,..."}`: Bedrock takes
/// images inline only.
fn input_image(part: &mut Map<String, Value>, at: &At<'_>) -> Result<Image, RequestError> {
    refuse_file_id(part, at, "image")?;
    let url_at = at.key("image_url");
    let url = required_string(part, "image_url", at)?;
    let (format, base64_data) = data_url(url, &url_at, &IMAGE, |media_type| {
        ImageFormat::from_media_type(media_type).ok_or_else(|| {
            unsupported(
                &url_at,
                format!("image type {media_type:?} is not supported: use png, jpeg, gif or webp"),
            )
        })
    })?;
    Ok(Image {
        format,
        base64_data,
    })
}

/// `{"type": "input_file", "filename"?, "file_data": "data:application/pdf;base64,..."}`;
/// the format comes from the media type, else from the file name's extension.
fn input_file(part: &mut Map<String, Value>, at: &At<'_>) -> Result<Document, RequestError> {
    refuse_file_id(part, at, "file")?;
    if part.get("file_url").is_some_and(|url| !url.is_null()) {
        return Err(unsupported(
            &at.key("file_url"),
            "Bedrock needs files inline: send the file as file_data \
             (data:application/pdf;base64,...) instead of a link",
        ));
    }
    let name = optional_string(part, "filename", at)?;
    let data_at = at.key("file_data");
    let url = required_string(part, "file_data", at)?;
    let (format, base64_data) = data_url(url, &data_at, &FILE, |media_type| {
        DocumentFormat::from_media_type(media_type)
            .or_else(|| name.as_deref().and_then(DocumentFormat::from_file_name))
            .ok_or_else(|| {
                let formats: Vec<&str> = DocumentFormat::ALL.iter().map(|f| f.as_str()).collect();
                unsupported(
                    &data_at,
                    format!(
                        "file type {media_type:?} is not supported: send one of {} (by media \
                         type, or by the filename's extension)",
                        formats.join(", ")
                    ),
                )
            })
    })?;
    Ok(Document {
        format,
        name,
        base64_data,
    })
}

fn refuse_file_id(part: &Map<String, Value>, at: &At<'_>, noun: &str) -> Result<(), RequestError> {
    if part.get("file_id").is_some_and(|id| !id.is_null()) {
        return Err(unsupported(
            &at.key("file_id"),
            format!(
                "uploaded files cannot be referenced (the gateway has no Files API): send the \
                 {noun} inline as a data URL"
            ),
        ));
    }
    Ok(())
}

/// `{"type": "function_call", "call_id", "name", "arguments": "<JSON>"}`.
fn function_call(item: &mut Map<String, Value>, at: &At<'_>) -> Result<ToolCall, RequestError> {
    let id = required_string(item, "call_id", at)?;
    check_tool_use_id(&id).map_err(|message| invalid_value(&at.key("call_id"), message))?;
    let name = required_string(item, "name", at)?;
    check_tool_name(&name).map_err(|message| invalid_value(&at.key("name"), message))?;
    let arguments_at = at.key("arguments");
    let arguments = required_string(item, "arguments", at)?;
    let input = if arguments.trim().is_empty() {
        // Models send "" for functions without parameters.
        Value::Object(Map::new())
    } else {
        serde_json::from_str(&arguments)
            .map_err(|error| invalid_value(&arguments_at, format!("is not valid JSON: {error}")))?
    };
    Ok(ToolCall { id, name, input })
}

/// `{"type": "function_call_output", "call_id", "output": "<text>" | [input_text parts]}`.
fn function_call_output(
    item: &mut Map<String, Value>,
    at: &At<'_>,
) -> Result<ToolResult, RequestError> {
    let tool_use_id = required_string(item, "call_id", at)?;
    check_tool_use_id(&tool_use_id)
        .map_err(|message| invalid_value(&at.key("call_id"), message))?;
    let output_at = at.key("output");
    let content = match item.remove("output") {
        None | Some(Value::Null) => return Err(missing(&output_at)),
        Some(Value::String(text)) => text,
        Some(Value::Array(parts)) => {
            check_count(parts.len(), MAX_CONTENT_BLOCKS, "output parts")
                .map_err(|message| invalid_value(&output_at, message))?;
            let mut text = String::new();
            for (j, part) in parts.into_iter().enumerate() {
                let at = output_at.index(j);
                let Value::Object(mut part) = part else {
                    return Err(invalid_type(&at, "an output part object"));
                };
                let kind = required_string(&mut part, "type", &at)?;
                if kind != "input_text" {
                    return Err(unsupported(
                        &at.key("type"),
                        format!("output part type {kind:?} is not supported: use input_text"),
                    ));
                }
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&required_string(&mut part, "text", &at)?);
            }
            text
        }
        Some(_) => {
            return Err(invalid_type(
                &output_at,
                "a string or an array of input_text parts",
            ))
        }
    };
    Ok(ToolResult {
        tool_use_id,
        content,
        is_error: false,
    })
}

/// A reasoning item given back: its text (the `content` reasoning texts, else the `summary`
/// texts, joined) and its `encrypted_content`; `None` without the latter (see the module
/// docs).
fn reasoning(
    item: &mut Map<String, Value>,
    at: &At<'_>,
) -> Result<Option<ReasoningBlock>, RequestError> {
    let content = texts(item.remove("content"), &at.key("content"), "reasoning_text")?;
    let summary = texts(item.remove("summary"), &at.key("summary"), "summary_text")?;
    let Some(encrypted) = optional_string(item, "encrypted_content", at)? else {
        return Ok(None);
    };
    if let Some(data) = encrypted.strip_prefix(REDACTED_PREFIX) {
        let at = at.key("encrypted_content");
        return redacted(data.to_owned(), &at).map(Some);
    }
    Ok(Some(ReasoningBlock::Thinking {
        text: if content.is_empty() { summary } else { content },
        signature: Some(encrypted),
    }))
}

/// The texts of a list of `{"type": kind, "text"}` parts, joined; absent is empty.
fn texts(value: Option<Value>, at: &At<'_>, kind: &str) -> Result<String, RequestError> {
    let parts = match value {
        None | Some(Value::Null) => return Ok(String::new()),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err(invalid_type(at, &format!("an array of {kind} parts"))),
    };
    let mut text = String::new();
    for (j, part) in parts.into_iter().enumerate() {
        let at = at.index(j);
        let Value::Object(mut part) = part else {
            return Err(invalid_type(&at, &format!("a {kind} part")));
        };
        let found = required_string(&mut part, "type", &at)?;
        if found != kind {
            return Err(invalid_value(
                &at.key("type"),
                format!("expected {kind:?}, found {found:?}"),
            ));
        }
        text.push_str(&required_string(&mut part, "text", &at)?);
    }
    Ok(text)
}
