//! Converse response body to domain [`ChatResponse`].
//!
//! Pure functions. Text blocks are concatenated in order, reasoning blocks (text with its
//! signature, or redacted bytes) are kept in order, `toolUse` blocks become tool calls, and
//! the stop reason goes through [`StopReason::parse`], so a value this build does not know
//! survives as `Unknown` instead of failing the request.
//!
//! A request that forced a tool to get structured output (see [`crate::structured_output`])
//! names that tool: its `toolUse` is the answer, so its input becomes text (compact JSON, in
//! block order) rather than a tool call, and the `tool_use` stop it caused is `end_turn`.

use gateway_core::{ChatResponse, ProviderError, ReasoningBlock, StopReason, ToolCall, Usage};

use crate::wire::{ConverseResponse, TokenUsage};

/// Parses and converts a Converse response body; `unwrap_tool` names the forced tool whose
/// input is the answer's text. A body that is not Converse JSON is a
/// [`ProviderError::Protocol`].
pub fn parse_converse_response(
    body: &[u8],
    unwrap_tool: Option<&str>,
) -> Result<ChatResponse, ProviderError> {
    let wire: ConverseResponse =
        serde_json::from_slice(body).map_err(|error| ProviderError::Protocol {
            // serde's message names the position and the expectation, never body content
            // beyond a field name.
            message: format!("Bedrock answered a Converse response that is not valid: {error}"),
        })?;
    Ok(chat_response(wire, unwrap_tool))
}

/// The domain answer for a parsed Converse response (`unwrap_tool` as in
/// [`parse_converse_response`]).
pub fn chat_response(wire: ConverseResponse, unwrap_tool: Option<&str>) -> ChatResponse {
    let mut text: Option<String> = None;
    let mut unwrapped = false;
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
            if Some(tool_use.name.as_str()) == unwrap_tool {
                // `Value`'s Display is compact JSON.
                append(&mut text, tool_use.input.to_string());
                unwrapped = true;
            } else {
                tool_calls.push(ToolCall {
                    id: tool_use.tool_use_id,
                    name: tool_use.name,
                    input: tool_use.input,
                });
            }
        }
    }
    let stop_reason = unwrapped_stop(
        StopReason::parse(&wire.stop_reason),
        unwrapped,
        tool_calls.is_empty(),
    );
    ChatResponse {
        text,
        reasoning,
        tool_calls,
        stop_reason,
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

/// The stop reason the client sees: a `tool_use` stop that only the unwrapped forced tool
/// caused is the end of the answer (the client asked for JSON, not for a tool call). Shared
/// with the stream mapper, so both paths decide alike.
pub(crate) fn unwrapped_stop(
    reason: StopReason,
    unwrapped: bool,
    no_other_tool_calls: bool,
) -> StopReason {
    match reason {
        StopReason::ToolUse if unwrapped && no_other_tool_calls => StopReason::EndTurn,
        other => other,
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
            let err = parse_converse_response(body, None).unwrap_err();
            assert_eq!(err.kind(), "upstream_protocol_error", "{body:?}");
        }
    }

    #[test]
    fn the_forced_tool_is_text_only_when_named() {
        let body = br#"{"output":{"message":{"role":"assistant","content":[
            {"toolUse":{"toolUseId":"a","name":"json_response","input":{"x":1}}},
            {"toolUse":{"toolUseId":"b","name":"get_weather","input":{}}}
        ]}},"stopReason":"tool_use","usage":{}}"#;
        let unwrapped = parse_converse_response(body, Some("json_response")).unwrap();
        assert_eq!(unwrapped.text.as_deref(), Some(r#"{"x":1}"#));
        assert_eq!(unwrapped.tool_calls.len(), 1);
        assert_eq!(unwrapped.tool_calls[0].name, "get_weather");
        // Another tool was called, so the stop reason stays.
        assert_eq!(unwrapped.stop_reason, StopReason::ToolUse);

        let plain = parse_converse_response(body, None).unwrap();
        assert_eq!(plain.text, None);
        assert_eq!(plain.tool_calls.len(), 2);
    }

    #[test]
    fn a_response_without_text_has_no_text() {
        let response = parse_converse_response(
            br#"{"output":{"message":{"role":"assistant","content":[]}},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":0,"totalTokens":1}}"#,
            None,
        )
        .unwrap();
        assert_eq!(response.text, None);
        assert!(response.reasoning.is_empty());
    }
}
