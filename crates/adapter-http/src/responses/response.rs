//! The Response object (`"object": "response"`), for a complete answer and for the events of
//! a streamed one, which carry it at their start and end.
//!
//! `output` holds, in the model's order: one `reasoning` item per reasoning block (its text
//! as a `summary_text`, its signature as `encrypted_content`, or for a redacted block
//! [`REDACTED_PREFIX`] and the data, so the item can be given back as it came), one `message`
//! item with the text as `output_text`, and one `function_call` item per tool call. Item ids
//! are the response id's random part with the item's position, so they are unique and the
//! conversion stays pure.
//!
//! `status` is `completed`, or `incomplete` when the model stopped at the token limit
//! (`incomplete_details.reason: "max_output_tokens"`) or a guardrail or content filter
//! intervened (`"content_filter"`; a Bedrock guardrail also sets `guardrail_intervened: true`,
//! and its trace is in `guardrail_trace`). Beside OpenAI's fields the object carries
//! `provider`, `bedrock_stop_reason`, and, when asked for, `additional_model_response_fields`.
//! Usage counts every prompt token in `input_tokens` (cache reads and writes included), the
//! cache reads in `input_tokens_details.cached_tokens`, and `cost_usd` for a priced model.

use gateway_core::{ChatResponse, Cost, ReasoningBlock, StopReason, Usage};
use serde::Serialize;
use serde_json::Value;

use super::input::REDACTED_PREFIX;
use crate::error::ApiError;
use crate::openai::PROVIDER;

/// One output item, as the complete answer holds it and the stream builds it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OutputItem {
    Reasoning {
        text: String,
        /// The signature, or a redacted block's data after [`REDACTED_PREFIX`].
        encrypted_content: Option<String>,
    },
    Message {
        text: String,
    },
    FunctionCall {
        call_id: String,
        name: String,
        /// The arguments as the JSON text the client gets.
        arguments: String,
    },
}

impl OutputItem {
    /// `rs`, `msg`, `fc`: the id prefix OpenAI uses for the item's type.
    fn id_prefix(&self) -> &'static str {
        match self {
            Self::Reasoning { .. } => "rs",
            Self::Message { .. } => "msg",
            Self::FunctionCall { .. } => "fc",
        }
    }

    /// A redacted reasoning block's item.
    pub(crate) fn redacted(data: &str) -> Self {
        Self::Reasoning {
            text: String::new(),
            encrypted_content: Some(format!("{REDACTED_PREFIX}{data}")),
        }
    }
}

/// The id of the item at `index` in response `response_id`'s output.
pub(crate) fn item_id(response_id: &str, item: &OutputItem, index: usize) -> String {
    let random = response_id.strip_prefix("resp_").unwrap_or(response_id);
    format!("{}_{random}_{index}", item.id_prefix())
}

/// A complete answer's output items.
pub(crate) fn output_items(response: &ChatResponse) -> Vec<OutputItem> {
    let mut items = Vec::with_capacity(response.reasoning.len() + 1 + response.tool_calls.len());
    for block in &response.reasoning {
        match block {
            ReasoningBlock::Thinking { text, signature } => items.push(OutputItem::Reasoning {
                text: text.clone(),
                encrypted_content: signature.clone(),
            }),
            ReasoningBlock::Redacted { data } => items.push(OutputItem::redacted(data)),
            // A block kind this adapter does not know yet has nothing to show.
            _ => {}
        }
    }
    // A message even when empty if there is nothing else, so `output_text` reads as "".
    if response.text.is_some() || response.tool_calls.is_empty() {
        items.push(OutputItem::Message {
            text: response.text.clone().unwrap_or_default(),
        });
    }
    for call in &response.tool_calls {
        items.push(OutputItem::FunctionCall {
            call_id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.input.to_string(),
        });
    }
    items
}

/// How the response stands.
pub(crate) enum Ending<'a> {
    /// Streaming, before the end.
    InProgress,
    Stopped {
        stop: &'a StopReason,
        /// `None` when a stream ended without its usage.
        usage: Option<&'a Usage>,
        cost: Option<&'a Cost>,
        guardrail_trace: Option<&'a Value>,
        additional_fields: Option<&'a Value>,
    },
    /// A stream that failed midway.
    Failed(&'a ApiError),
}

/// `completed` or `incomplete` with its reason, for a stop.
fn status(stop: &StopReason) -> (&'static str, Option<&'static str>) {
    match stop {
        StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => {
            ("incomplete", Some("max_output_tokens"))
        }
        StopReason::GuardrailIntervened | StopReason::ContentFiltered => {
            ("incomplete", Some("content_filter"))
        }
        _ => ("completed", None),
    }
}

/// The status the stream's last event is named after: `completed`, `incomplete`, `failed`.
pub(crate) fn final_status(ending: &Ending<'_>) -> &'static str {
    match ending {
        Ending::InProgress => "in_progress",
        Ending::Stopped { stop, .. } => status(stop).0,
        Ending::Failed(_) => "failed",
    }
}

#[derive(Serialize)]
struct ResponseJson<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    error: Option<ErrorJson<'a>>,
    incomplete_details: Option<IncompleteDetails>,
    model: &'a str,
    output: Vec<ItemJson<'a>>,
    usage: Option<UsageJson>,
    store: bool,
    provider: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bedrock_stop_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    guardrail_intervened: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    guardrail_trace: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    additional_model_response_fields: Option<&'a Value>,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct IncompleteDetails {
    reason: &'static str,
}

/// One output item on the wire; also the `item` of the stream's item events.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ItemJson<'a> {
    Reasoning {
        id: String,
        summary: Vec<TextPart<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<&'a str>,
    },
    Message {
        id: String,
        status: &'static str,
        role: &'static str,
        content: Vec<TextPart<'a>>,
    },
    FunctionCall {
        id: String,
        call_id: &'a str,
        name: &'a str,
        arguments: &'a str,
        status: &'static str,
    },
}

/// `output_text` (with OpenAI's empty `annotations`) or `summary_text`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum TextPart<'a> {
    OutputText { text: &'a str, annotations: [(); 0] },
    SummaryText { text: &'a str },
}

impl<'a> ItemJson<'a> {
    /// `item` at `index`; `done` says whether it is complete (the stream adds items before
    /// their content arrives: a message without parts, a reasoning item without summary).
    pub(crate) fn new(response_id: &str, item: &'a OutputItem, index: usize, done: bool) -> Self {
        let id = item_id(response_id, item, index);
        let status = if done { "completed" } else { "in_progress" };
        match item {
            OutputItem::Reasoning {
                text,
                encrypted_content,
            } => ItemJson::Reasoning {
                id,
                summary: if done && !text.is_empty() {
                    vec![TextPart::SummaryText { text }]
                } else {
                    Vec::new()
                },
                encrypted_content: if done {
                    encrypted_content.as_deref()
                } else {
                    None
                },
            },
            OutputItem::Message { text } => ItemJson::Message {
                id,
                status,
                role: "assistant",
                content: if done {
                    vec![TextPart::OutputText {
                        text,
                        annotations: [],
                    }]
                } else {
                    Vec::new()
                },
            },
            OutputItem::FunctionCall {
                call_id,
                name,
                arguments,
            } => ItemJson::FunctionCall {
                id,
                call_id,
                name,
                arguments: if done { arguments } else { "" },
                status,
            },
        }
    }
}

#[derive(Serialize)]
struct UsageJson {
    input_tokens: u64,
    input_tokens_details: InputTokensDetails,
    output_tokens: u64,
    total_tokens: u64,
    /// At the model's price; absent when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_usd: Option<f64>,
}

#[derive(Serialize)]
struct InputTokensDetails {
    cached_tokens: u64,
}

impl UsageJson {
    fn new(usage: &Usage, cost: Option<&Cost>) -> Self {
        let input_tokens = usage.prompt_tokens();
        Self {
            input_tokens,
            input_tokens_details: InputTokensDetails {
                cached_tokens: usage.cache_read_input_tokens.unwrap_or(0),
            },
            output_tokens: usage.output_tokens,
            total_tokens: input_tokens.saturating_add(usage.output_tokens),
            cost_usd: cost.map(Cost::total_usd),
        }
    }
}

/// The Response object as JSON, written into `out`.
pub(crate) fn write_response(
    out: &mut Vec<u8>,
    id: &str,
    created_at: u64,
    model: &str,
    items: &[OutputItem],
    ending: &Ending<'_>,
) {
    let mut response = ResponseJson {
        id,
        object: "response",
        created_at,
        status: final_status(ending),
        error: None,
        incomplete_details: None,
        model,
        output: items
            .iter()
            .enumerate()
            .map(|(index, item)| ItemJson::new(id, item, index, true))
            .collect(),
        usage: None,
        store: false,
        provider: PROVIDER,
        bedrock_stop_reason: None,
        guardrail_intervened: false,
        guardrail_trace: None,
        additional_model_response_fields: None,
    };
    match ending {
        Ending::InProgress => {}
        Ending::Stopped {
            stop,
            usage,
            cost,
            guardrail_trace,
            additional_fields,
        } => {
            response.incomplete_details = status(stop).1.map(|reason| IncompleteDetails { reason });
            response.usage = usage.map(|usage| UsageJson::new(usage, *cost));
            response.bedrock_stop_reason = Some(stop.as_str());
            response.guardrail_intervened = **stop == StopReason::GuardrailIntervened;
            response.guardrail_trace = *guardrail_trace;
            response.additional_model_response_fields = *additional_fields;
        }
        Ending::Failed(error) => {
            response.error = Some(ErrorJson {
                code: error.code,
                message: &error.message,
            });
        }
    }
    // Serializing strings, numbers and JSON values into a Vec cannot fail.
    let _ = serde_json::to_writer(out, &response);
}

/// A complete answer's body.
pub(crate) fn response_body(
    id: &str,
    created_at: u64,
    model: &str,
    response: &ChatResponse,
    cost: Option<&Cost>,
) -> Vec<u8> {
    let items = output_items(response);
    let mut out = Vec::with_capacity(512 + response.text.as_ref().map_or(0, String::len));
    write_response(
        &mut out,
        id,
        created_at,
        model,
        &items,
        &Ending::Stopped {
            stop: &response.stop_reason,
            usage: Some(&response.usage),
            cost,
            guardrail_trace: response.guardrail_trace.as_ref(),
            additional_fields: response.additional_model_response_fields.as_ref(),
        },
    );
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::openai::test_support::{route, CREATED};
    use gateway_core::Price;
    use serde::Deserialize;
    use std::sync::Arc;

    pub(crate) const ID: &str = "resp_0123456789abcdefghijklmnopqrs";

    /// A fixture: what the provider answered, from a model with `price` if it has one.
    #[derive(Deserialize)]
    struct Fixture {
        response: ChatResponse,
        #[serde(default)]
        price: Option<Price>,
    }

    #[test]
    fn completions_become_response_objects() {
        insta::glob!(
            "../../../../fixtures/responses/completion",
            "*.json",
            |path| {
                let fixture: Fixture =
                    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
                let route = Arc::new(gateway_core::Route {
                    price: fixture.price,
                    ..(*route()).clone()
                });
                let cost = route.cost(&fixture.response.usage, None);
                let body = response_body(
                    ID,
                    CREATED,
                    "internal-bedrock/claude-3",
                    &fixture.response,
                    cost.as_ref(),
                );
                let value: Value = serde_json::from_slice(&body).unwrap();
                insta::assert_json_snapshot!(value);
            }
        );
    }

    #[test]
    fn item_ids_carry_the_response_id_and_position() {
        let item = OutputItem::Message {
            text: String::new(),
        };
        assert_eq!(item_id(ID, &item, 2), "msg_0123456789abcdefghijklmnopqrs_2");
    }
}
