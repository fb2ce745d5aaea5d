//! [`ChatEvent`]s to the Responses API's server-sent events.
//!
//! Each event is `event: <type>` and `data: {"type": <type>, "sequence_number": n, ...}`,
//! numbered from 0. The stream opens with `response.created` and `response.in_progress`;
//! each output item (see [`response`](super::response)) is opened with
//! `response.output_item.added` and closed with `response.output_item.done`, with between
//! them: for a message, `response.content_part.added`, `response.output_text.delta`s,
//! `response.output_text.done` and `response.content_part.done`; for reasoning,
//! `response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta`s and their
//! `.done`s; for a function call, `response.function_call_arguments.delta`s and `.done`. An
//! item closes when the next begins or the model stops. The last event carries the whole
//! Response object: `response.completed`, `response.incomplete` (token limit, guardrail) or,
//! when the provider fails midway, `response.failed` with the error.
//!
//! The output is kept as it streams, since the `.done` events and the last event repeat it.

use std::sync::Arc;

use bytes::Bytes;
use gateway_core::{ChatEvent, ProviderError, Route, ServiceTier, StopReason, Usage};
use serde::Serialize;
use serde_json::Value;

use super::response::{
    final_status, item_id, write_response, Ending, ItemJson, OutputItem, TextPart,
};
use crate::door::StreamEncoder;
use crate::error::ApiError;

/// Turns one stream's events into Responses SSE bytes.
pub(crate) struct ResponsesEncoder {
    id: String,
    created_at: u64,
    model: String,
    sequence_number: u64,
    started: bool,
    items: Vec<OutputItem>,
    /// The last item of `items` is still receiving deltas.
    open: Option<Open>,
    stop: Option<StopReason>,
    usage: Option<Usage>,
    guardrail_trace: Option<Value>,
    additional_fields: Option<Value>,
    /// The answering route and the tier asked for, which price the usage.
    pricing: (Arc<Route>, Option<ServiceTier>),
}

/// The item receiving deltas.
struct Open {
    item_id: String,
    /// A reasoning item whose summary part was added (its text began).
    summary_part: bool,
}

/// One event's type and fields (without `sequence_number`, which the writer adds).
#[derive(Serialize)]
#[serde(tag = "type")]
enum Event<'a> {
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded {
        output_index: usize,
        item: ItemJson<'a>,
    },
    #[serde(rename = "response.output_item.done")]
    OutputItemDone {
        output_index: usize,
        item: ItemJson<'a>,
    },
    #[serde(rename = "response.content_part.added")]
    ContentPartAdded {
        item_id: &'a str,
        output_index: usize,
        content_index: u32,
        part: TextPart<'a>,
    },
    #[serde(rename = "response.content_part.done")]
    ContentPartDone {
        item_id: &'a str,
        output_index: usize,
        content_index: u32,
        part: TextPart<'a>,
    },
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta {
        item_id: &'a str,
        output_index: usize,
        content_index: u32,
        delta: &'a str,
        logprobs: [(); 0],
    },
    #[serde(rename = "response.output_text.done")]
    OutputTextDone {
        item_id: &'a str,
        output_index: usize,
        content_index: u32,
        text: &'a str,
        logprobs: [(); 0],
    },
    #[serde(rename = "response.reasoning_summary_part.added")]
    SummaryPartAdded {
        item_id: &'a str,
        output_index: usize,
        summary_index: u32,
        part: TextPart<'a>,
    },
    #[serde(rename = "response.reasoning_summary_part.done")]
    SummaryPartDone {
        item_id: &'a str,
        output_index: usize,
        summary_index: u32,
        part: TextPart<'a>,
    },
    #[serde(rename = "response.reasoning_summary_text.delta")]
    SummaryTextDelta {
        item_id: &'a str,
        output_index: usize,
        summary_index: u32,
        delta: &'a str,
    },
    #[serde(rename = "response.reasoning_summary_text.done")]
    SummaryTextDone {
        item_id: &'a str,
        output_index: usize,
        summary_index: u32,
        text: &'a str,
    },
    #[serde(rename = "response.function_call_arguments.delta")]
    ArgumentsDelta {
        item_id: &'a str,
        output_index: usize,
        delta: &'a str,
    },
    #[serde(rename = "response.function_call_arguments.done")]
    ArgumentsDone {
        item_id: &'a str,
        output_index: usize,
        name: &'a str,
        arguments: &'a str,
    },
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::OutputItemAdded { .. } => "response.output_item.added",
            Self::OutputItemDone { .. } => "response.output_item.done",
            Self::ContentPartAdded { .. } => "response.content_part.added",
            Self::ContentPartDone { .. } => "response.content_part.done",
            Self::OutputTextDelta { .. } => "response.output_text.delta",
            Self::OutputTextDone { .. } => "response.output_text.done",
            Self::SummaryPartAdded { .. } => "response.reasoning_summary_part.added",
            Self::SummaryPartDone { .. } => "response.reasoning_summary_part.done",
            Self::SummaryTextDelta { .. } => "response.reasoning_summary_text.delta",
            Self::SummaryTextDone { .. } => "response.reasoning_summary_text.done",
            Self::ArgumentsDelta { .. } => "response.function_call_arguments.delta",
            Self::ArgumentsDone { .. } => "response.function_call_arguments.done",
        }
    }
}

#[derive(Serialize)]
struct Numbered<'a> {
    #[serde(flatten)]
    event: &'a Event<'a>,
    sequence_number: u64,
}

impl StreamEncoder for ResponsesEncoder {
    fn event(&mut self, event: ChatEvent) -> Option<Bytes> {
        let mut out = Vec::new();
        self.start(&mut out);
        match event {
            ChatEvent::TextDelta(text) => {
                if !self.message_open() {
                    self.close(&mut out);
                    self.open_item(
                        &mut out,
                        OutputItem::Message {
                            text: String::new(),
                        },
                    );
                    if let Some(open) = &self.open {
                        let event = Event::ContentPartAdded {
                            item_id: &open.item_id,
                            output_index: self.items.len() - 1,
                            content_index: 0,
                            part: TextPart::OutputText {
                                text: "",
                                annotations: [],
                            },
                        };
                        write_event(&mut out, &mut self.sequence_number, &event);
                    }
                }
                self.write_delta(&mut out, &text);
            }
            ChatEvent::ReasoningDelta(text) => {
                if !self.reasoning_open() {
                    self.close(&mut out);
                    self.open_item(
                        &mut out,
                        OutputItem::Reasoning {
                            text: String::new(),
                            encrypted_content: None,
                        },
                    );
                }
                if let Some(open) = self.open.as_mut() {
                    if !open.summary_part {
                        open.summary_part = true;
                        let index = self.items.len() - 1;
                        write_event(
                            &mut out,
                            &mut self.sequence_number,
                            &Event::SummaryPartAdded {
                                item_id: &open.item_id,
                                output_index: index,
                                summary_index: 0,
                                part: TextPart::SummaryText { text: "" },
                            },
                        );
                    }
                }
                self.write_delta(&mut out, &text);
            }
            ChatEvent::ReasoningSignature(signature) => {
                if !self.reasoning_open() {
                    self.close(&mut out);
                    self.open_item(
                        &mut out,
                        OutputItem::Reasoning {
                            text: String::new(),
                            encrypted_content: None,
                        },
                    );
                }
                if let Some(OutputItem::Reasoning {
                    encrypted_content, ..
                }) = self.items.last_mut()
                {
                    *encrypted_content = Some(signature);
                }
                // The signature ends the block.
                self.close(&mut out);
            }
            ChatEvent::RedactedReasoning(data) => {
                self.close(&mut out);
                self.open_item(&mut out, OutputItem::redacted(&data));
                self.close(&mut out);
            }
            ChatEvent::ToolCallStart { id, name, .. } => {
                self.close(&mut out);
                self.open_item(
                    &mut out,
                    OutputItem::FunctionCall {
                        call_id: id,
                        name,
                        arguments: String::new(),
                    },
                );
            }
            ChatEvent::ToolCallDelta { arguments, .. } => {
                let call_open = self.open.is_some()
                    && matches!(self.items.last(), Some(OutputItem::FunctionCall { .. }));
                if call_open {
                    self.write_delta(&mut out, &arguments);
                }
            }
            ChatEvent::AdditionalResponseFields(fields) => self.additional_fields = Some(fields),
            ChatEvent::Stop(reason) => {
                self.close(&mut out);
                self.stop = Some(reason);
            }
            ChatEvent::Metadata {
                usage,
                guardrail_trace,
            } => {
                self.usage = Some(usage);
                self.guardrail_trace = guardrail_trace;
            }
            // `MessageStart` opens nothing by itself (the first content does), and an event
            // kind this encoder does not know carries nothing the Responses API can show.
            _ => {}
        }
        (!out.is_empty()).then(|| out.into())
    }

    fn finish(&mut self) -> Bytes {
        let mut out = Vec::new();
        self.start(&mut out);
        self.close(&mut out);
        // A stream that ends normally has stopped; without a stop it ended at the turn's end.
        let stop = self.stop.take().unwrap_or(StopReason::EndTurn);
        // The stream's end: what was held goes into the last event.
        let usage = self.usage.take();
        let guardrail_trace = self.guardrail_trace.take();
        let additional_fields = self.additional_fields.take();
        let cost = usage
            .as_ref()
            .and_then(|usage| self.pricing.0.cost(usage, self.pricing.1));
        let ending = Ending::Stopped {
            stop: &stop,
            usage: usage.as_ref(),
            cost: cost.as_ref(),
            guardrail_trace: guardrail_trace.as_ref(),
            additional_fields: additional_fields.as_ref(),
        };
        self.write_response_event(&mut out, &ending);
        out.into()
    }

    fn error(&mut self, error: &ProviderError) -> Bytes {
        let mut out = Vec::new();
        self.start(&mut out);
        let api = ApiError::from_provider(error);
        self.write_response_event(&mut out, &Ending::Failed(&api));
        out.into()
    }
}

impl ResponsesEncoder {
    pub(crate) fn new(
        id: String,
        created_at: u64,
        model: &str,
        pricing: (Arc<Route>, Option<ServiceTier>),
    ) -> Self {
        Self {
            id,
            created_at,
            model: model.to_owned(),
            sequence_number: 0,
            started: false,
            items: Vec::new(),
            open: None,
            stop: None,
            usage: None,
            guardrail_trace: None,
            additional_fields: None,
            pricing,
        }
    }

    /// `response.created` and `response.in_progress`, once.
    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        for name in ["response.created", "response.in_progress"] {
            self.write_response_event_named(out, name, &Ending::InProgress);
        }
    }

    fn message_open(&self) -> bool {
        self.open.is_some() && matches!(self.items.last(), Some(OutputItem::Message { .. }))
    }

    fn reasoning_open(&self) -> bool {
        self.open.is_some()
            && matches!(
                self.items.last(),
                Some(OutputItem::Reasoning {
                    encrypted_content: None,
                    ..
                })
            )
    }

    /// Adds `item` and announces it.
    fn open_item(&mut self, out: &mut Vec<u8>, item: OutputItem) {
        let index = self.items.len();
        let item_id = item_id(&self.id, &item, index);
        self.items.push(item);
        let item = &self.items[index];
        write_event(
            out,
            &mut self.sequence_number,
            &Event::OutputItemAdded {
                output_index: index,
                item: ItemJson::new(&self.id, item, index, false),
            },
        );
        self.open = Some(Open {
            item_id,
            summary_part: false,
        });
    }

    /// Appends a delta to the open item and sends it.
    fn write_delta(&mut self, out: &mut Vec<u8>, delta: &str) {
        let output_index = self.items.len().saturating_sub(1);
        let (Some(open), Some(item)) = (self.open.as_ref(), self.items.last_mut()) else {
            return;
        };
        let item_id = open.item_id.as_str();
        let event = match item {
            OutputItem::Message { text } => {
                text.push_str(delta);
                Event::OutputTextDelta {
                    item_id,
                    output_index,
                    content_index: 0,
                    delta,
                    logprobs: [],
                }
            }
            OutputItem::Reasoning { text, .. } => {
                text.push_str(delta);
                Event::SummaryTextDelta {
                    item_id,
                    output_index,
                    summary_index: 0,
                    delta,
                }
            }
            OutputItem::FunctionCall { arguments, .. } => {
                arguments.push_str(delta);
                Event::ArgumentsDelta {
                    item_id,
                    output_index,
                    delta,
                }
            }
        };
        write_event(out, &mut self.sequence_number, &event);
    }

    /// Closes the open item, if any: its `.done` events.
    fn close(&mut self, out: &mut Vec<u8>) {
        let Some(open) = self.open.take() else {
            return;
        };
        let Some(item) = self.items.last() else {
            return;
        };
        let output_index = self.items.len() - 1;
        let item_id = open.item_id.as_str();
        let sequence_number = &mut self.sequence_number;
        match item {
            OutputItem::Message { text } => {
                write_event(
                    out,
                    sequence_number,
                    &Event::OutputTextDone {
                        item_id,
                        output_index,
                        content_index: 0,
                        text,
                        logprobs: [],
                    },
                );
                write_event(
                    out,
                    sequence_number,
                    &Event::ContentPartDone {
                        item_id,
                        output_index,
                        content_index: 0,
                        part: TextPart::OutputText {
                            text,
                            annotations: [],
                        },
                    },
                );
            }
            OutputItem::Reasoning { text, .. } if open.summary_part => {
                write_event(
                    out,
                    sequence_number,
                    &Event::SummaryTextDone {
                        item_id,
                        output_index,
                        summary_index: 0,
                        text,
                    },
                );
                write_event(
                    out,
                    sequence_number,
                    &Event::SummaryPartDone {
                        item_id,
                        output_index,
                        summary_index: 0,
                        part: TextPart::SummaryText { text },
                    },
                );
            }
            OutputItem::Reasoning { .. } => {}
            OutputItem::FunctionCall {
                name, arguments, ..
            } => {
                write_event(
                    out,
                    sequence_number,
                    &Event::ArgumentsDone {
                        item_id,
                        output_index,
                        name,
                        arguments,
                    },
                );
            }
        }
        write_event(
            out,
            sequence_number,
            &Event::OutputItemDone {
                output_index,
                item: ItemJson::new(&self.id, item, output_index, true),
            },
        );
    }

    /// The last event: named after the response's status.
    fn write_response_event(&mut self, out: &mut Vec<u8>, ending: &Ending<'_>) {
        let name = match final_status(ending) {
            "incomplete" => "response.incomplete",
            "failed" => "response.failed",
            _ => "response.completed",
        };
        self.write_response_event_named(out, name, ending);
    }

    /// `{"type": name, "sequence_number": n, "response": {...}}`.
    fn write_response_event_named(&mut self, out: &mut Vec<u8>, name: &str, ending: &Ending<'_>) {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: {\"type\":\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\",\"sequence_number\":");
        // Writing a number into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &self.sequence_number);
        out.extend_from_slice(b",\"response\":");
        write_response(
            out,
            &self.id,
            self.created_at,
            &self.model,
            &self.items,
            ending,
        );
        out.extend_from_slice(b"}\n\n");
        self.sequence_number += 1;
    }
}

/// One numbered event as SSE.
fn write_event(out: &mut Vec<u8>, sequence_number: &mut u64, event: &Event<'_>) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.name().as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Serializing strings, numbers and JSON values into a Vec cannot fail.
    let _ = serde_json::to_writer(
        &mut *out,
        &Numbered {
            event,
            sequence_number: *sequence_number,
        },
    );
    out.extend_from_slice(b"\n\n");
    *sequence_number += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::test_support::{route, CREATED};
    use crate::responses::response::tests::ID;
    use gateway_core::Price;
    use serde::Deserialize;

    /// A fixture: the events a provider streams (or an error in their place), from a model
    /// with `price` if it has one.
    #[derive(Deserialize)]
    struct Fixture {
        steps: Vec<Step>,
        #[serde(default)]
        price: Option<Price>,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Step {
        Event(ChatEvent),
        Error { error: String, message: String },
    }

    fn provider_error(kind: &str, message: String) -> ProviderError {
        match kind {
            "throttled" => ProviderError::Throttled { message },
            "model_error" => ProviderError::ModelError { message },
            "protocol" => ProviderError::Protocol { message },
            other => panic!("fixture names unknown error kind {other}"),
        }
    }

    /// The stream's bytes as the SSE body writes them: each event's, then the end's (an
    /// error ends the stream).
    fn encode(fixture: Fixture) -> String {
        let route = Arc::new(Route {
            price: fixture.price,
            ..(*route()).clone()
        });
        let mut encoder = ResponsesEncoder::new(
            ID.to_owned(),
            CREATED,
            "internal-bedrock/claude-3",
            (route, None),
        );
        let mut out = Vec::new();
        for step in fixture.steps {
            match step {
                Step::Event(event) => {
                    if let Some(bytes) = encoder.event(event) {
                        out.extend_from_slice(&bytes);
                    }
                }
                Step::Error { error, message } => {
                    out.extend_from_slice(&encoder.error(&provider_error(&error, message)));
                    return String::from_utf8(out).unwrap();
                }
            }
        }
        out.extend_from_slice(&encoder.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn event_sequences_become_responses_events() {
        insta::glob!("../../../../fixtures/responses/stream", "*.json", |path| {
            let fixture: Fixture = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            let text = encode(fixture);
            // insta trims the final blank line; every event must still end with one.
            assert!(text.ends_with("\n\n"), "{text:?}");
            insta::assert_snapshot!(text);
        });
    }

    /// Every event is numbered in order from 0, names its type twice alike, and the
    /// deltas of each item add up to its `.done` text.
    #[test]
    fn events_are_numbered_and_deltas_add_up() {
        insta::glob!("../../../../fixtures/responses/stream", "*.json", |path| {
            let fixture: Fixture = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            let text = encode(fixture);
            let mut deltas: std::collections::HashMap<String, String> = Default::default();
            for (n, block) in text.split_terminator("\n\n").enumerate() {
                let (name, data) = block
                    .strip_prefix("event: ")
                    .and_then(|rest| rest.split_once("\ndata: "))
                    .unwrap_or_else(|| panic!("{}: not an event: {block:?}", path.display()));
                let data: Value = serde_json::from_str(data).unwrap();
                assert_eq!(data["type"], name, "{}", path.display());
                assert_eq!(data["sequence_number"], n as u64, "{}", path.display());
                let key = data["item_id"].as_str().unwrap_or_default().to_owned();
                if let Some(delta) = data["delta"].as_str() {
                    deltas.entry(key.clone()).or_default().push_str(delta);
                }
                let done = data["text"].as_str().or(data["arguments"].as_str());
                if name.ends_with(".done") && !name.contains("part") {
                    if let Some(done) = done {
                        assert_eq!(
                            deltas.get(&key).map_or("", String::as_str),
                            done,
                            "{}",
                            path.display()
                        );
                    }
                }
            }
        });
    }
}
