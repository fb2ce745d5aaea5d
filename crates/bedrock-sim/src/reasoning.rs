//! Simulated extended thinking: whether a request asks for reasoning, signatures that prove a
//! reasoning block comes back unmodified, sealed "redacted" reasoning, and the rules Bedrock
//! (Anthropic behind it) enforces on reasoning blocks in the history.

use aws_smithy_types::base64;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::model_id;
use crate::request::{block_kind, content, messages, thinking};

/// A prompt containing this string makes the simulated model add a `redactedContent` reasoning
/// block to its answer (when reasoning is on). It is the string Anthropic documents for testing
/// redacted thinking, so the same test prompt works against the real service.
pub const REDACTED_THINKING_TRIGGER: &str = "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING_46C9A13E193C177646C7398A98432ECCCE4C1253D5E2D82641AC0E52CC2876CB";

/// The key of the simulator's keyed hashes. It is public knowledge on purpose: a signature only
/// has to prove that text came back as the simulator wrote it, not to resist forgery.
const KEY: &[u8] = b"bedrock-sim/reasoning/v1";
/// Leading bytes of every sealed redacted-reasoning blob.
const REDACTED_MAGIC: &[u8] = b"bedrock-sim redacted reasoning\n";

fn keyed_hash(domain: &[u8], data: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(KEY);
    hasher.update(domain);
    hasher.update((data.len() as u64).to_be_bytes());
    hasher.update(data);
    hasher.finalize().into()
}

/// The `signature` the simulator gives a reasoning text (base64 of a keyed SHA-256 of the
/// text). On a later turn a `reasoningText` whose signature is not this is refused.
pub fn reasoning_signature(text: &str) -> String {
    base64::encode(keyed_hash(b"signature", text.as_bytes()))
}

/// The base64 `redactedContent` the simulator produces for `label`: a marker, the label and a
/// keyed hash of it, so a later turn can tell whether the blob came back intact.
pub fn redacted_reasoning_data(label: &str) -> String {
    let mut bytes = Vec::with_capacity(REDACTED_MAGIC.len() + label.len() + 32);
    bytes.extend_from_slice(REDACTED_MAGIC);
    bytes.extend_from_slice(label.as_bytes());
    bytes.extend_from_slice(&keyed_hash(b"redacted", label.as_bytes()));
    base64::encode(bytes)
}

fn redacted_data_is_intact(data: &str) -> bool {
    let Ok(bytes) = base64::decode(data) else {
        return false;
    };
    let Some(rest) = bytes.strip_prefix(REDACTED_MAGIC) else {
        return false;
    };
    let Some(split) = rest.len().checked_sub(32) else {
        return false;
    };
    let (label, mac) = rest.split_at(split);
    keyed_hash(b"redacted", label) == mac
}

/// How a request turns reasoning on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reasoning {
    /// Anthropic Claude: `additionalModelRequestFields.thinking.type` `enabled` (or `adaptive`).
    /// Claude's thinking rules (budget, temperature, tool choice, tool loops) apply.
    ClaudeThinking,
    /// Amazon Nova (`reasoningConfig.type: enabled`), OpenAI gpt-oss (`reasoning_effort`), or a
    /// model that always reasons (DeepSeek R1).
    Other,
}

/// Whether (and how) `request` asks `model_id` to reason.
pub(crate) fn requested(request: &Value, model_id: &str) -> Option<Reasoning> {
    if thinking(request).is_some() {
        return Some(Reasoning::ClaudeThinking);
    }
    let fields = request.get("additionalModelRequestFields");
    let nova = fields
        .and_then(|f| f.pointer("/reasoningConfig/type"))
        .and_then(Value::as_str)
        == Some("enabled");
    let gpt_oss = fields.and_then(|f| f.get("reasoning_effort")).is_some();
    let always = model_id::base(model_id).starts_with("deepseek.r1");
    (nova || gpt_oss || always).then_some(Reasoning::Other)
}

/// The Bedrock rules on reasoning blocks in the history:
///
/// - in an assistant message holding any reasoning block, the first block is a reasoning block;
/// - a `reasoningText.signature` must be the one the simulator gave that text
///   ([`reasoning_signature`]), and a `redactedContent` must be one it produced;
/// - with Claude thinking on, a `reasoningText` needs a signature, and when the conversation
///   ends with tool results, the assistant turn whose tool use they answer must start with its
///   reasoning block (Anthropic's "a final assistant message must start with a thinking block").
pub(crate) fn check_history(request: &Value, reasoning: Option<Reasoning>) -> Result<(), String> {
    let claude = reasoning == Some(Reasoning::ClaudeThinking);
    let messages = messages(request);
    for (i, message) in messages.iter().enumerate() {
        let content = content(message);
        let has_reasoning = content.iter().any(|b| b.get("reasoningContent").is_some());
        if has_reasoning {
            if let Some(first) = content
                .first()
                .filter(|b| b.get("reasoningContent").is_none())
            {
                return Err(format!(
                    "If an assistant message contains any thinking blocks, the first block must be thinking. Found {}",
                    block_kind(first)
                ));
            }
        }
        for (j, block) in content.iter().enumerate() {
            let Some(reasoning) = block.get("reasoningContent") else {
                continue;
            };
            if let Some(text_block) = reasoning.get("reasoningText") {
                let text = text_block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match text_block.get("signature").and_then(Value::as_str) {
                    Some(signature) if signature != reasoning_signature(text) => {
                        return Err(model_error(&format!(
                            "messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                        )));
                    }
                    None if claude => {
                        return Err(model_error(&format!(
                            "messages.{i}.content.{j}.thinking.signature: Field required"
                        )));
                    }
                    _ => {}
                }
            } else if let Some(data) = reasoning.get("redactedContent") {
                if !data.as_str().is_some_and(redacted_data_is_intact) {
                    return Err(model_error(&format!(
                        "messages.{i}.content.{j}: Invalid `data` in `redacted_thinking` block"
                    )));
                }
            }
        }
    }
    if claude {
        check_tool_loop(messages)?;
    }
    Ok(())
}

/// With Claude thinking on, a tool loop in progress (the last user turn holds tool results)
/// must give back the reasoning that came with the tool call.
fn check_tool_loop(messages: &[Value]) -> Result<(), String> {
    let [.., assistant, last_user] = messages else {
        return Ok(());
    };
    let continues_loop = content(last_user)
        .iter()
        .any(|b| b.get("toolResult").is_some());
    let assistant_blocks = content(assistant);
    let calls_tool = assistant_blocks.iter().any(|b| b.get("toolUse").is_some());
    match assistant_blocks.first() {
        Some(first) if continues_loop && calls_tool && first.get("reasoningContent").is_none() => {
            Err(model_error(&format!(
                "messages.{}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking",
                messages.len() - 2,
                block_kind(first)
            )))
        }
        _ => Ok(()),
    }
}

/// Claude's own limits on a thinking request: a budget of at least 1024 tokens, `maxTokens`
/// (when given) above the budget, `temperature` unset or 1, and no forced tool choice.
pub(crate) fn check_thinking_request(request: &Value) -> Result<(), String> {
    let Some(thinking) = thinking(request) else {
        return Ok(());
    };
    if let Some(budget) = thinking.get("budget_tokens") {
        let budget = budget.as_u64().unwrap_or(0);
        if budget < 1024 {
            return Err(model_error(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
            ));
        }
        let max_tokens = request
            .pointer("/inferenceConfig/maxTokens")
            .and_then(Value::as_u64);
        if max_tokens.is_some_and(|max| max <= budget) {
            return Err(model_error("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"));
        }
    }
    let temperature = request
        .pointer("/inferenceConfig/temperature")
        .and_then(Value::as_f64);
    if temperature.is_some_and(|t| (t - 1.0).abs() > f64::EPSILON) {
        return Err(model_error("`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility"));
    }
    let choice = request.pointer("/toolConfig/toolChoice");
    if choice.is_some_and(|c| c.get("any").is_some() || c.get("tool").is_some()) {
        return Err(model_error(
            "Thinking may not be enabled when tool_choice forces tool use.",
        ));
    }
    Ok(())
}

/// How Bedrock words an error the model provider (Anthropic) returned.
fn model_error(message: &str) -> String {
    format!("The model returned the following errors: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_deterministic_and_bound_to_the_text() {
        assert_eq!(reasoning_signature("a"), reasoning_signature("a"));
        assert_ne!(reasoning_signature("a"), reasoning_signature("b"));
        assert_eq!(reasoning_signature("a").len(), 44);
    }

    #[test]
    fn redacted_data_round_trips_and_detects_tampering() {
        let data = redacted_reasoning_data("secret");
        assert!(redacted_data_is_intact(&data));
        let mut bytes = base64::decode(&data).unwrap();
        let last = bytes.len() - 40;
        bytes[last] ^= 1;
        assert!(!redacted_data_is_intact(&base64::encode(bytes)));
        assert!(!redacted_data_is_intact("not base64!"));
        assert!(!redacted_data_is_intact(&base64::encode(b"short")));
    }
}
