//! A [`Completion`] to an Anthropic `message` body, and the stop reasons and usage both the
//! answer and the stream report.
//!
//! Content blocks come in the order Claude writes them: reasoning (`thinking` with its
//! signature, `redacted_thinking`), the text, then the tool calls. `model` is the name the
//! client sent. When Bedrock traced a guardrail, `guardrail_trace` carries the trace beside
//! Anthropic's fields (SDKs keep unknown fields).

use gateway_core::service::Completion;
use gateway_core::{FinishReasonStyle, ReasoningBlock, StopReason, Usage};
use serde::Serialize;
use serde_json::Value;

#[derive(Serialize)]
struct MessageJson<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<BlockJson<'a>>,
    stop_reason: &'a str,
    stop_sequence: Option<&'a str>,
    usage: UsageJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    guardrail_trace: Option<&'a Value>,
}

/// One content block of an answer.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum BlockJson<'a> {
    Text {
        text: &'a str,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a Value,
    },
}

impl<'a> BlockJson<'a> {
    pub(super) fn reasoning(block: &'a ReasoningBlock) -> Option<Self> {
        match block {
            ReasoningBlock::Thinking { text, signature } => Some(BlockJson::Thinking {
                thinking: text,
                signature: signature.as_deref().unwrap_or(""),
            }),
            ReasoningBlock::Redacted { data } => Some(BlockJson::RedactedThinking { data }),
            // A reasoning kind this door does not know has no Anthropic block.
            _ => None,
        }
    }
}

/// Anthropic's usage: `input_tokens` excludes the cached prompt, as Bedrock's does.
#[derive(Serialize, Default)]
pub(super) struct UsageJson {
    pub(super) input_tokens: u64,
    pub(super) output_tokens: u64,
    pub(super) cache_creation_input_tokens: u64,
    pub(super) cache_read_input_tokens: u64,
}

impl UsageJson {
    pub(super) fn new(usage: &Usage) -> Self {
        Self {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_creation_input_tokens: usage.cache_write_input_tokens.unwrap_or(0),
            cache_read_input_tokens: usage.cache_read_input_tokens.unwrap_or(0),
        }
    }
}

/// Anthropic's `stop_reason` for Bedrock's `stop`. Anthropic's own values where the meaning
/// is the same; otherwise Bedrock's name (`guardrail_intervened`, `content_filtered`,
/// `malformed_*`), as the chat-completions door does, unless the style is strict: then a
/// guardrail or content filter is `refusal` (Anthropic's "the model declined") and the
/// malformed outputs and unknown reasons `end_turn`.
pub(super) fn stop_reason(stop: &StopReason, style: FinishReasonStyle) -> &str {
    match (stop, style) {
        (StopReason::EndTurn, _) => "end_turn",
        (StopReason::ToolUse, _) => "tool_use",
        (StopReason::MaxTokens, _) => "max_tokens",
        (StopReason::StopSequence, _) => "stop_sequence",
        (StopReason::ModelContextWindowExceeded, _) => "model_context_window_exceeded",
        (
            StopReason::GuardrailIntervened | StopReason::ContentFiltered,
            FinishReasonStyle::Strict,
        ) => "refusal",
        (
            StopReason::MalformedModelOutput
            | StopReason::MalformedToolUse
            | StopReason::Unknown(_),
            FinishReasonStyle::Strict,
        ) => "end_turn",
        (StopReason::Unknown(_), _) => "end_turn",
        (other, _) => other.as_str(),
    }
}

/// The `message` body for `completion`, with the id the caller chose.
pub(crate) fn message_json(completion: &Completion, id: &str) -> Vec<u8> {
    let response = &completion.response;
    let mut content = Vec::with_capacity(response.reasoning.len() + 1 + response.tool_calls.len());
    content.extend(response.reasoning.iter().filter_map(BlockJson::reasoning));
    if let Some(text) = response.text.as_deref().filter(|text| !text.is_empty()) {
        content.push(BlockJson::Text { text });
    }
    content.extend(response.tool_calls.iter().map(|call| BlockJson::ToolUse {
        id: &call.id,
        name: &call.name,
        input: &call.input,
    }));
    let body = MessageJson {
        id,
        kind: "message",
        role: "assistant",
        model: &completion.model,
        content,
        stop_reason: stop_reason(&response.stop_reason, completion.finish_reason_style),
        // Converse does not say which sequence matched.
        stop_sequence: None,
        usage: UsageJson::new(&response.usage),
        guardrail_trace: response.guardrail_trace.as_ref(),
    };
    let mut out = Vec::with_capacity(512 + response.text.as_ref().map_or(0, String::len));
    // Serializing owned strings and numbers into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &body);
    out
}

/// The answer of `POST /v1/messages/count_tokens`: `{"input_tokens": N}`.
pub(crate) fn count_tokens_json(input_tokens: u64) -> Vec<u8> {
    format!("{{\"input_tokens\":{input_tokens}}}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anthropic::test_support::MESSAGE_ID;
    use crate::openai::test_support::route;
    use gateway_core::ChatResponse;
    use serde::Deserialize;

    /// A fixture: what the provider answered and the style the client gets.
    #[derive(Deserialize)]
    struct Fixture {
        style: FinishReasonStyle,
        response: ChatResponse,
    }

    #[test]
    fn completions_become_anthropic_messages() {
        insta::glob!("../../../../fixtures/anthropic/message", "*.json", |path| {
            let fixture: Fixture = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            let completion = Completion {
                model: "claude-sonnet".into(),
                cost: None,
                route: route(),
                finish_reason: fixture.response.stop_reason.finish_reason(fixture.style),
                finish_reason_style: fixture.style,
                response: fixture.response,
                attempts: vec![],
                limit_state: None,
            };
            let json = message_json(&completion, MESSAGE_ID);
            let value: Value = serde_json::from_slice(&json).unwrap();
            insta::assert_json_snapshot!(value);
        });
    }

    #[test]
    fn every_known_stop_reason_has_an_anthropic_value_in_each_style() {
        for stop in StopReason::KNOWN {
            let bedrock = stop_reason(&stop, FinishReasonStyle::Bedrock);
            let strict = stop_reason(&stop, FinishReasonStyle::Strict);
            assert!(
                [
                    "end_turn",
                    "tool_use",
                    "max_tokens",
                    "stop_sequence",
                    "refusal",
                    "model_context_window_exceeded"
                ]
                .contains(&strict),
                "{stop}: {strict}"
            );
            assert!(!bedrock.is_empty());
        }
        assert_eq!(
            stop_reason(&StopReason::GuardrailIntervened, FinishReasonStyle::Bedrock),
            "guardrail_intervened"
        );
    }
}
