//! What Bedrock checks before calling the model: the conversation's shape and the rules
//! botocore's schema does not express. Each feature's own rules live in its module (documents,
//! cache points, reasoning, request options); this module runs them all, in Bedrock's order,
//! and returns the first `ValidationException` message.

use serde_json::Value;

use crate::reasoning::{self, Reasoning};
use crate::request::{content, messages, system, tool_spec};
use crate::{documents, options, prompt};

const MUST_START_WITH_USER: &str = "A conversation must start with a user message. Try again with a conversation that starts with a user message.";

/// Every check, in order; `Err` holds the `ValidationException` message.
pub(crate) fn check(request: &Value, model_id: &str) -> Result<(), String> {
    check_conversation(request)?;
    check_blank_text(request)?;
    check_tool_config(request)?;
    documents::check(request)?;
    prompt::check_cache_points(request)?;
    options::check(request)?;
    let reasoning = reasoning::requested(request, model_id);
    if reasoning == Some(Reasoning::ClaudeThinking) {
        reasoning::check_thinking_request(request)?;
    }
    reasoning::check_history(request, reasoning)
}

/// `messages` present, starting with a user turn, alternating, each with some content.
fn check_conversation(request: &Value) -> Result<(), String> {
    let Some(messages) = request.get("messages") else {
        return Err("1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null".to_owned());
    };
    let Some(messages) = messages.as_array() else {
        return Err("Malformed input request: messages must be an array".to_owned());
    };
    if messages.is_empty() {
        return Err(MUST_START_WITH_USER.to_owned());
    }
    for (i, message) in messages.iter().enumerate() {
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        match message.get("role").and_then(Value::as_str) {
            Some("assistant") if i == 0 => return Err(MUST_START_WITH_USER.to_owned()),
            Some(role @ ("user" | "assistant")) if role != expected => {
                return Err("A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.".to_owned());
            }
            Some("user" | "assistant") => {}
            _ => {
                return Err(format!("1 validation error detected: Value at 'messages.{}.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]", i + 1));
            }
        }
        match message.get("content").and_then(Value::as_array) {
            None => {
                return Err(format!("1 validation error detected: Value null at 'messages.{}.member.content' failed to satisfy constraint: Member must not be null", i + 1));
            }
            Some(blocks) if blocks.is_empty() => {
                return Err(format!("The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to the content field and try again."));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// No whitespace-only `text` block, in messages or in the system prompt.
fn check_blank_text(request: &Value) -> Result<(), String> {
    let blank = |block: &Value| {
        block
            .get("text")
            .and_then(Value::as_str)
            .is_some_and(|t| t.trim().is_empty())
    };
    for (i, block) in system(request).iter().enumerate() {
        if blank(block) {
            return Err(format!("The text field in the SystemContentBlock object at system.{i} is blank. Add text to the text field, and try again."));
        }
    }
    for (i, message) in messages(request).iter().enumerate() {
        for (j, block) in content(message).iter().enumerate() {
            if blank(block) {
                return Err(format!("The text field in the ContentBlock object at messages.{i}.content.{j} is blank. Add text to the text field, and try again."));
            }
        }
    }
    Ok(())
}

/// `toolConfig` when the history holds tool blocks; when present, at least one tool, and a
/// `toolChoice.tool` naming one of them.
fn check_tool_config(request: &Value) -> Result<(), String> {
    let Some(config) = request.get("toolConfig") else {
        let uses_tools = messages(request)
            .iter()
            .flat_map(content)
            .any(|block| block.get("toolUse").is_some() || block.get("toolResult").is_some());
        if uses_tools {
            return Err("The toolConfig field must be defined when using toolUse and toolResult content blocks.".to_owned());
        }
        return Ok(());
    };
    match config.get("tools").and_then(Value::as_array) {
        None => {
            return Err("1 validation error detected: Value null at 'toolConfig.tools' failed to satisfy constraint: Member must not be null".to_owned());
        }
        Some(list) if list.is_empty() => {
            return Err("1 validation error detected: Value '[]' at 'toolConfig.tools' failed to satisfy constraint: Member must have length greater than or equal to 1".to_owned());
        }
        Some(_) => {}
    }
    if let Some(name) = config
        .pointer("/toolChoice/tool/name")
        .and_then(Value::as_str)
    {
        if tool_spec(request, name).is_none() {
            return Err(format!("The model returned the following errors: tool_choice.name: Tool '{name}' not found in the provided tools. Name a tool from toolConfig.tools and try again."));
        }
    }
    Ok(())
}
