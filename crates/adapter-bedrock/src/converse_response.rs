//! Converse response body to domain [`ChatResponse`].
//!
//! Pure functions. Text blocks are concatenated in order, reasoning text likewise (redacted
//! reasoning has no text to show and is dropped), `toolUse` blocks become tool calls, and
//! the stop reason goes through [`StopReason::parse`], so a value this build does not know
//! survives as `Unknown` instead of failing the request.

use gateway_core::{ChatResponse, ProviderError, ReasoningBlock, StopReason, ToolCall, Usage};

use crate::wire::{ConverseResponse, TokenUsage};

/// Parses and converts a Converse response body. A body that is not Converse JSON is a
/// [`ProviderError::Protocol`].
pub fn parse_converse_response(body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let wire: ConverseResponse =
        serde_json::from_slice(body).map_err(|error| ProviderError::Protocol {
            // serde's message names the position and the expectation, never body content
            // beyond a field name.
            message: format!("Bedrock answered a Converse response that is not valid: {error}"),
        })?;
    Ok(chat_response(wire))
}

/// The domain answer for a parsed Converse response.
pub fn chat_response(wire: ConverseResponse) -> ChatResponse {
    let mut text: Option<String> = None;
    let mut reasoning = Vec::new();
    let mut tool_calls = Vec::new();
    for block in wire
        .output
        .message
        .into_iter()
        .flat_map(|message| message.content)
    {
        if let Some(block_text) = block.text {
            append(&mut text, block_text);
        }
        if let Some(content) = block.reasoning_content {
            if let Some(thinking) = content.reasoning_text {
                reasoning.push(ReasoningBlock::Thinking {
                    text: thinking.text,
                    signature: thinking.signature,
                });
            } else if let Some(data) = content.redacted_content {
                reasoning.push(ReasoningBlock::Redacted { data });
            }
        }
        if let Some(tool_use) = block.tool_use {
            tool_calls.push(ToolCall {
                id: tool_use.tool_use_id,
                name: tool_use.name,
                input: tool_use.input,
            });
        }
    }
    ChatResponse {
        text,
        reasoning,
        tool_calls,
        stop_reason: StopReason::parse(&wire.stop_reason),
        usage: usage(wire.usage),
        guardrail_trace: wire.trace.and_then(|trace| trace.guardrail),
        additional_model_response_fields: wire.additional_model_response_fields,
    }
}

/// Domain usage from Bedrock's token counts.
pub fn usage(wire: TokenUsage) -> Usage {
    Usage {
        input_tokens: wire.input_tokens,
        output_tokens: wire.output_tokens,
        total_tokens: wire.total_tokens,
        cache_read_input_tokens: wire.cache_read_input_tokens,
        cache_write_input_tokens: wire.cache_write_input_tokens,
    }
}

fn append(into: &mut Option<String>, piece: String) {
    match into {
        Some(existing) => existing.push_str(&piece),
        None => *into = Some(piece),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_protocol_error() {
        for body in [
            &b"<html>oops</html>"[..],
            b"",
            b"{}",
            b"{\"stopReason\": 3}",
        ] {
            let err = parse_converse_response(body).unwrap_err();
            assert_eq!(err.kind(), "upstream_protocol_error", "{body:?}");
        }
    }

    #[test]
    fn a_response_without_text_has_no_text() {
        let response = parse_converse_response(
            br#"{"output":{"message":{"role":"assistant","content":[]}},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":0,"totalTokens":1}}"#,
        )
        .unwrap();
        assert_eq!(response.text, None);
        assert!(response.reasoning.is_empty());
    }
}
