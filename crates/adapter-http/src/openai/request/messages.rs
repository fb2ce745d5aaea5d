//! `messages`: system and developer messages (into the system prompt), user turns, assistant
//! turns from history (reasoning, text and tool calls) and tool results. What a message's
//! `content` may hold is [`content`](super::content)'s concern; a `cache_control` on a whole
//! message puts a cache point after its last part.

use gateway_core::request_limits::{
    check_count, check_tool_name, check_tool_use_id, MediaBudget, MAX_CONTENT_BLOCKS, MAX_MESSAGES,
};
use gateway_core::{ContentPart, Message, Role, SystemPart, ToolCall, ToolResult};
use serde_json::{Map, Value};

use super::cache_control::{cache_control, push_cache_point};
use super::content::{content_parts, Holder};
use super::fields::{
    invalid_type, invalid_value, missing, required_object, required_string, unsupported, At,
    RequestError,
};
use super::thinking_blocks::thinking_blocks;
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessagePositions {
    /// The client's name for the list the messages came from: `messages` here, `input` on
    /// the Responses door.
    list: &'static str,
    /// Indices of system and developer messages, ascending (usually none or one).
    system: Vec<usize>,
}

impl Default for MessagePositions {
    fn default() -> Self {
        Self::in_list("messages", Vec::new())
    }
}

impl MessagePositions {
    /// Positions in the client's list `list`, whose items at the indices `system` (ascending)
    /// went into the system prompt and every other item became one domain message.
    pub(crate) fn in_list(list: &'static str, system: Vec<usize>) -> Self {
        Self { list, system }
    }

    pub(crate) fn list(&self) -> &'static str {
        self.list
    }

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
    check_count(items.len(), MAX_MESSAGES, "messages")
        .map_err(|message| invalid_value(&at, message))?;
    let mut media = MediaBudget::default();
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
        let (role, mut parts) = match role.as_str() {
            "system" | "developer" => {
                let content = content.ok_or_else(|| missing(&content_at))?;
                content_parts(content, &content_at, Holder::System, &mut media, |part| {
                    match part {
                        ContentPart::Text(text) => system.push(SystemPart::Text(text)),
                        ContentPart::GuardedText(text) => {
                            system.push(SystemPart::GuardedText(text))
                        }
                        ContentPart::CachePoint(point) => push_cache_point(&mut system, point),
                        // `Holder::System` lets no other part through.
                        _ => {}
                    }
                })?;
                if let Some(point) = cache_control(&mut message, &at)? {
                    push_cache_point(&mut system, point);
                }
                system_positions.push(i);
                continue;
            }
            "user" => {
                let content = content.ok_or_else(|| missing(&content_at))?;
                let mut parts = Vec::new();
                content_parts(content, &content_at, Holder::User, &mut media, |part| {
                    push_part(&mut parts, part)
                })?;
                (Role::User, parts)
            }
            "assistant" => (
                Role::Assistant,
                assistant_content(content, &mut message, &at, &mut media)?,
            ),
            "tool" => (
                Role::User,
                tool_result(content, &mut message, &at, &mut media)?,
            ),
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
        if let Some(point) = cache_control(&mut message, &at)? {
            push_cache_point(&mut parts, point);
        }
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
        positions: MessagePositions::in_list("messages", system_positions),
    })
}

/// Adds a part to a message's parts; a cache point right after another is merged with it.
fn push_part(parts: &mut Vec<ContentPart>, part: ContentPart) {
    match part {
        ContentPart::CachePoint(point) => push_cache_point(parts, point),
        part => parts.push(part),
    }
}

/// An assistant turn from history: its `thinking_blocks` first (reasoning precedes what it
/// led to), then its text (string, text or refusal parts, or null), then `tool_calls`.
/// `reasoning_content` is accepted and ignored: without a signature no provider can verify
/// it, so it cannot be given back.
fn assistant_content(
    content: Option<Value>,
    message: &mut Map<String, Value>,
    at: &At<'_>,
    media: &mut MediaBudget,
) -> Result<Vec<ContentPart>, RequestError> {
    let mut parts = Vec::new();
    message.remove("reasoning_content");
    match message.remove("thinking_blocks") {
        None | Some(Value::Null) => {}
        Some(blocks) => parts.extend(
            thinking_blocks(blocks, &at.key("thinking_blocks"))?
                .into_iter()
                .map(ContentPart::Reasoning),
        ),
    }
    if let Some(content) = content {
        content_parts(
            content,
            &at.key("content"),
            Holder::Assistant,
            media,
            |part| push_part(&mut parts, part),
        )?;
    }
    let has_text = parts
        .iter()
        .any(|part| matches!(part, ContentPart::Text(text) if !text.trim().is_empty()));

    let calls_at = at.key("tool_calls");
    let mut has_calls = false;
    match message.remove("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) => {
            check_count(calls.len(), MAX_CONTENT_BLOCKS, "tool calls")
                .map_err(|message| invalid_value(&calls_at, message))?;
            has_calls = !calls.is_empty();
            parts.reserve(calls.len());
            for (k, call) in calls.into_iter().enumerate() {
                parts.push(ContentPart::ToolUse(tool_call(call, &calls_at.index(k))?));
            }
        }
        Some(_) => return Err(invalid_type(&calls_at, "an array of tool calls")),
    }
    if !has_text && !has_calls {
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
    check_tool_use_id(&id).map_err(|message| invalid_value(&at.key("id"), message))?;
    check_function_type(&mut call, at)?;
    let function_at = at.key("function");
    let mut function = required_object(&mut call, "function", at, "an object")?;
    let name = required_string(&mut function, "name", &function_at)?;
    check_tool_name(&name).map_err(|message| invalid_value(&function_at.key("name"), message))?;
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

/// A tool message: one tool result, its text parts joined by line breaks. A cache point on
/// any of its parts can only go after the whole result.
fn tool_result(
    content: Option<Value>,
    message: &mut Map<String, Value>,
    at: &At<'_>,
    media: &mut MediaBudget,
) -> Result<Vec<ContentPart>, RequestError> {
    let tool_use_id = required_string(message, "tool_call_id", at)?;
    check_tool_use_id(&tool_use_id)
        .map_err(|message| invalid_value(&at.key("tool_call_id"), message))?;
    let content_at = at.key("content");
    let content = content.ok_or_else(|| missing(&content_at))?;
    let mut text = String::new();
    let mut cache_points: Vec<ContentPart> = Vec::new();
    content_parts(
        content,
        &content_at,
        Holder::Tool,
        media,
        |part| match part {
            ContentPart::Text(part) if text.is_empty() => text = part,
            ContentPart::Text(part) => {
                text.push('\n');
                text.push_str(&part);
            }
            ContentPart::CachePoint(point) => push_cache_point(&mut cache_points, point),
            // `Holder::Tool` lets no other part through.
            _ => {}
        },
    )?;
    let mut parts = Vec::with_capacity(1 + cache_points.len());
    parts.push(ContentPart::ToolResult(ToolResult {
        tool_use_id,
        content: text,
        is_error: false,
    }));
    parts.extend(cache_points);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_indices_map_back_to_the_clients_indices() {
        let positions = MessagePositions::in_list("messages", vec![0, 2, 3]);
        // OpenAI: [system, user, developer, system, assistant, user]
        let openai: Vec<usize> = (0..3).map(|i| positions.openai_index(i)).collect();
        assert_eq!(openai, vec![1, 4, 5]);
        assert_eq!(MessagePositions::default().openai_index(2), 2);
    }
}
