//! `messages`: system and developer texts, user turns (text and inline images), assistant
//! turns from history (text and tool calls) and tool results.

use gateway_core::{
    ContentPart, Image, ImageFormat, Message, Role, SystemPart, ToolCall, ToolResult,
};
use serde_json::{Map, Value};

use super::fields::{
    invalid_type, invalid_value, missing, required_object, required_string, unsupported, At,
    RequestError,
};
use super::tools::check_function_type;

/// OpenAI's `messages`, split the domain's way.
pub(super) struct Conversation {
    /// System and developer texts, in order.
    pub(super) system: Vec<SystemPart>,
    /// Every other message, one each, in the client's order: turn rules such as
    /// alternation belong to the provider adapter.
    pub(super) messages: Vec<Message>,
    pub(super) positions: MessagePositions,
}

/// Where the domain's messages sit in OpenAI's `messages`, which also holds the system and
/// developer messages the domain keeps apart; an error about `ChatRequest::messages[i]` is
/// reported as `messages[openai_index(i)]`, the index the client sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MessagePositions {
    /// Indices of system and developer messages, ascending (usually none or one).
    system: Vec<usize>,
}

impl MessagePositions {
    pub(crate) fn openai_index(&self, message_index: usize) -> usize {
        let mut index = message_index;
        for &system in &self.system {
            if system > index {
                break;
            }
            index += 1;
        }
        index
    }
}

/// System/developer texts and the other messages, with where each came from.
pub(super) fn conversation(value: Value) -> Result<Conversation, RequestError> {
    let at = At::Root("messages");
    let Value::Array(items) = value else {
        return Err(invalid_type(&at, "a non-empty array of messages"));
    };
    if items.is_empty() {
        return Err(invalid_value(&at, "must contain at least one message"));
    }
    let mut system = Vec::new();
    let mut system_positions = Vec::new();
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
                text_content(content, &content_at, |text| {
                    system.push(SystemPart::Text(text))
                })?;
                system_positions.push(i);
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
        turns.push(Message {
            role,
            content: parts,
        });
    }
    if turns.is_empty() {
        return Err(invalid_value(
            &at,
            "must contain a user message besides system and developer messages",
        ));
    }
    Ok(Conversation {
        system,
        messages: turns,
        positions: MessagePositions {
            system: system_positions,
        },
    })
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
    let mut function = required_object(&mut call, "function", at, "an object")?;
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
    let mut image_url = required_object(part, "image_url", at, "an object with a `url`")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_indices_map_back_to_the_clients_indices() {
        let positions = MessagePositions {
            system: vec![0, 2, 3],
        };
        // OpenAI: [system, user, developer, system, assistant, user]
        let openai: Vec<usize> = (0..3).map(|i| positions.openai_index(i)).collect();
        assert_eq!(openai, vec![1, 4, 5]);
        assert_eq!(MessagePositions::default().openai_index(2), 2);
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
