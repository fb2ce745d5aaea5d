//! Reading a Converse request body (already parsed as JSON): the few accessors every feature
//! module shares, so each reads the request the same way.

use serde_json::Value;

/// `messages` (empty when absent or not an array; validation refuses those first).
pub(crate) fn messages(request: &Value) -> &[Value] {
    request
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `system` blocks (empty when absent).
pub(crate) fn system(request: &Value) -> &[Value] {
    request
        .get("system")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `toolConfig.tools` (empty when absent).
pub(crate) fn tools(request: &Value) -> &[Value] {
    request
        .pointer("/toolConfig/tools")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The `toolSpec` of the tool called `name`.
pub(crate) fn tool_spec<'a>(request: &'a Value, name: &str) -> Option<&'a Value> {
    tools(request)
        .iter()
        .filter_map(|t| t.get("toolSpec"))
        .find(|spec| spec.get("name").and_then(Value::as_str) == Some(name))
}

/// The content blocks of one message.
pub(crate) fn content(message: &Value) -> &[Value] {
    message
        .get("content")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The last user message, if any.
pub(crate) fn last_user(request: &Value) -> Option<&Value> {
    messages(request)
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
}

/// `additionalModelRequestFields.thinking` when its `type` turns thinking on (`enabled`, or
/// `adaptive` on the newest Claude models).
pub(crate) fn thinking(request: &Value) -> Option<&Value> {
    request
        .pointer("/additionalModelRequestFields/thinking")
        .filter(|t| {
            matches!(
                t.get("type").and_then(Value::as_str),
                Some("enabled" | "adaptive")
            )
        })
}

/// The text of a `text` block, or of a `guardContent` text block.
pub(crate) fn block_text(block: &Value) -> Option<&str> {
    block
        .get("text")
        .and_then(Value::as_str)
        .or_else(|| guarded_text(block))
}

/// The text of a `guardContent` block (`guardContent.text.text`).
pub(crate) fn guarded_text(block: &Value) -> Option<&str> {
    block
        .pointer("/guardContent/text/text")
        .and_then(Value::as_str)
}

/// Anthropic's name for a Converse block's kind (as it appears in model error messages).
pub(crate) fn block_kind(block: &Value) -> &str {
    let key = block
        .as_object()
        .and_then(|map| map.keys().next())
        .map_or("unknown", String::as_str);
    match key {
        "toolUse" => "tool_use",
        "toolResult" => "tool_result",
        "reasoningContent" => "thinking",
        "cachePoint" => "cache_point",
        other => other,
    }
}

/// Whitespace-separated words in `text`: the simulator's token count.
pub(crate) fn word_count(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}
