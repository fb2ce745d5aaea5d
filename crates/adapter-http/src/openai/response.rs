//! A [`Completion`] to OpenAI `chat.completion` JSON.
//!
//! Beside OpenAI's fields the answer carries `provider` (as the seed shows),
//! `choices[0].bedrock_stop_reason` (Bedrock's raw `stopReason`, so clients can tell a
//! guardrail from a content filter even in the strict style) and, when Bedrock traced a
//! guardrail, `guardrail_trace`. A reasoning model's answer has `message.reasoning_content`
//! (the readable reasoning) and `message.thinking_blocks` (every block with its signature, or
//! redacted, to be given back in the next turn), the names LiteLLM and Anthropic-minded
//! clients use; `message.additional_model_response_fields` holds what the request asked for
//! by path.
//!
//! Usage counts every prompt token in `prompt_tokens` (Bedrock's `inputTokens` excludes the
//! tokens read from and written to the prompt cache), and reports the cache counts apart.
//! When the model has a price, `usage.cost_usd` is what the answer cost (as the
//! `x-gateway-cost-usd` header says).

use gateway_core::service::Completion;
use gateway_core::{Cost, ReasoningBlock, ToolCall, Usage};
use serde::Serialize;
use serde_json::Value;

use super::PROVIDER;

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    provider: &'static str,
    choices: [Choice<'a>; 1],
    usage: UsageJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    guardrail_trace: Option<&'a Value>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    finish_reason: &'static str,
    bedrock_stop_reason: &'a str,
    logprobs: Option<()>,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(
        skip_serializing_if = "<[_]>::is_empty",
        serialize_with = "serialize_tool_calls"
    )]
    tool_calls: &'a [ToolCall],
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(
        skip_serializing_if = "<[_]>::is_empty",
        serialize_with = "serialize_thinking_blocks"
    )]
    thinking_blocks: &'a [ReasoningBlock],
    #[serde(skip_serializing_if = "Option::is_none")]
    additional_model_response_fields: Option<&'a Value>,
}

/// One reasoning block as clients give it back in `thinking_blocks` (Anthropic's shape).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ThinkingBlockJson<'a> {
    Thinking {
        thinking: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        signature: Option<&'a str>,
    },
    RedactedThinking {
        data: &'a str,
    },
}

impl<'a> ThinkingBlockJson<'a> {
    /// `None` for a block kind this adapter does not know yet (nothing to show for it).
    fn from_block(block: &'a ReasoningBlock) -> Option<Self> {
        match block {
            ReasoningBlock::Thinking { text, signature } => Some(Self::Thinking {
                thinking: text,
                signature: signature.as_deref(),
            }),
            ReasoningBlock::Redacted { data } => Some(Self::RedactedThinking { data }),
            _ => None,
        }
    }
}

fn serialize_thinking_blocks<S: serde::Serializer>(
    blocks: &&[ReasoningBlock],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(blocks.iter().filter_map(ThinkingBlockJson::from_block))
}

/// OpenAI usage; also used by the last stream chunk. When Bedrock reported a cache count,
/// `prompt_tokens_details.cached_tokens` (OpenAI's name) and `cache_read_input_tokens` /
/// `cache_creation_input_tokens` (Anthropic's, as LiteLLM reports them) say how many of the
/// prompt tokens were read from and written to the cache.
#[derive(Serialize)]
pub(crate) struct UsageJson {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_creation_input_tokens: Option<u64>,
    /// At the model's price; absent when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_usd: Option<f64>,
}

#[derive(Serialize)]
struct PromptTokensDetails {
    cached_tokens: u64,
}

impl UsageJson {
    pub(crate) fn new(usage: &Usage, cost: Option<&Cost>) -> Self {
        let prompt_tokens = usage.prompt_tokens();
        let cached =
            usage.cache_read_input_tokens.is_some() || usage.cache_write_input_tokens.is_some();
        let read = usage.cache_read_input_tokens.unwrap_or(0);
        let written = usage.cache_write_input_tokens.unwrap_or(0);
        Self {
            prompt_tokens,
            completion_tokens: usage.output_tokens,
            total_tokens: prompt_tokens.saturating_add(usage.output_tokens),
            prompt_tokens_details: cached.then_some(PromptTokensDetails {
                cached_tokens: read,
            }),
            cache_read_input_tokens: cached.then_some(read),
            cache_creation_input_tokens: cached.then_some(written),
            cost_usd: cost.map(Cost::total_usd),
        }
    }
}

/// OpenAI's tool-call shape; `arguments` is the input as a JSON string.
pub(crate) struct ToolCallJson<'a>(pub(crate) &'a ToolCall);

impl Serialize for ToolCallJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut call = serializer.serialize_struct("ToolCall", 3)?;
        call.serialize_field("id", &self.0.id)?;
        call.serialize_field("type", "function")?;
        call.serialize_field(
            "function",
            &Function {
                name: &self.0.name,
                arguments: &JsonString(&self.0.input),
            },
        )?;
        call.end()
    }
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    arguments: &'a JsonString<'a>,
}

/// Serializes a value as the string of its JSON text.
struct JsonString<'a>(&'a Value);

impl Serialize for JsonString<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

fn serialize_tool_calls<S: serde::Serializer>(
    calls: &&[ToolCall],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(calls.iter().map(ToolCallJson))
}

/// The `chat.completion` body for `completion`, with the id and `created` the caller chose.
pub(crate) fn completion_json(completion: &Completion, id: &str, created: u64) -> Vec<u8> {
    let response = &completion.response;
    let reasoning = response.reasoning_text();
    let body = ChatCompletion {
        id,
        object: "chat.completion",
        created,
        // The name the client sent, a virtual model's included.
        model: &completion.model,
        provider: PROVIDER,
        choices: [Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: response.text.as_deref(),
                tool_calls: &response.tool_calls,
                reasoning_content: reasoning.as_deref(),
                thinking_blocks: &response.reasoning,
                additional_model_response_fields: response
                    .additional_model_response_fields
                    .as_ref(),
            },
            finish_reason: completion.finish_reason.as_str(),
            bedrock_stop_reason: response.stop_reason.as_str(),
            logprobs: None,
        }],
        usage: UsageJson::new(&response.usage, completion.cost.as_ref()),
        guardrail_trace: response.guardrail_trace.as_ref(),
    };
    let mut out = Vec::with_capacity(512 + response.text.as_ref().map_or(0, String::len));
    // Serializing owned strings and numbers into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::test_support::{route, CREATED, ID};
    use gateway_core::{ChatResponse, FinishReasonStyle, Price, Route};
    use serde::Deserialize;
    use std::sync::Arc;

    /// A fixture: what the provider answered and the style the client gets, at the model's
    /// price if it has one.
    #[derive(Deserialize)]
    struct Fixture {
        style: FinishReasonStyle,
        response: ChatResponse,
        #[serde(default)]
        price: Option<Price>,
    }

    #[test]
    fn completions_become_openai_json() {
        insta::glob!("../../../../fixtures/openai/completion", "*.json", |path| {
            let fixture: Fixture = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            let route = Arc::new(Route {
                price: fixture.price,
                ..(*route()).clone()
            });
            let completion = Completion {
                model: "internal-bedrock/claude-3".into(),
                cost: route.cost(&fixture.response.usage, None),
                route,
                finish_reason: fixture.response.stop_reason.finish_reason(fixture.style),
                finish_reason_style: fixture.style,
                response: fixture.response,
                attempts: vec![],
                limit_state: None,
            };
            let json = completion_json(&completion, ID, CREATED);
            let value: Value = serde_json::from_slice(&json).unwrap();
            insta::assert_json_snapshot!(value);
        });
    }
}
