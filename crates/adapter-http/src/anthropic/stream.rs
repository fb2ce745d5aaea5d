//! [`ChatEvent`]s to Anthropic's server-sent events.
//!
//! `message_start` and a `ping` open the stream; each block of the answer is a
//! `content_block_start`, its deltas (`text_delta`, `thinking_delta`, `signature_delta`,
//! `input_json_delta`) and a `content_block_stop`, numbered from 0 in the order they come.
//! A thinking block closes with its signature; a redacted one starts and stops at once.
//! `Stop` closes the open block and is held until Bedrock's usage arrives, so that
//! `message_delta` carries the stop reason and the usage together (all four counts: Bedrock
//! reports the input tokens only at the end, so `message_start` says 0). `message_stop`
//! ends the stream; a failure is one `error` event in Anthropic's error shape.

use bytes::Bytes;
use gateway_core::{ChatEvent, FinishReasonStyle, ProviderError, StopReason, Usage};
use serde::Serialize;
use serde_json::Value;

use super::error::anthropic_error_json;
use super::response::{stop_reason, UsageJson};
use crate::door::StreamEncoder;
use crate::error::ApiError;

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum EventJson<'a> {
    MessageStart {
        message: StartMessage<'a>,
    },
    Ping,
    ContentBlockStart {
        index: u32,
        content_block: StartBlock<'a>,
    },
    ContentBlockDelta {
        index: u32,
        delta: Delta<'a>,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: StopJson<'a>,
        usage: UsageJson,
        #[serde(skip_serializing_if = "Option::is_none")]
        guardrail_trace: Option<&'a Value>,
    },
    MessageStop,
}

impl EventJson<'_> {
    fn name(&self) -> &'static str {
        match self {
            EventJson::MessageStart { .. } => "message_start",
            EventJson::Ping => "ping",
            EventJson::ContentBlockStart { .. } => "content_block_start",
            EventJson::ContentBlockDelta { .. } => "content_block_delta",
            EventJson::ContentBlockStop { .. } => "content_block_stop",
            EventJson::MessageDelta { .. } => "message_delta",
            EventJson::MessageStop => "message_stop",
        }
    }
}

#[derive(Serialize)]
struct StartMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: UsageJson,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock<'a> {
    Text {
        text: &'static str,
    },
    Thinking {
        thinking: &'static str,
        signature: &'static str,
    },
    RedactedThinking {
        data: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: EmptyObject,
    },
}

/// `{}`: a tool call's input before its `input_json_delta`s.
#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
#[serde(tag = "type")]
enum Delta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct StopJson<'a> {
    stop_reason: &'a str,
    stop_sequence: Option<()>,
}

/// The kind of the block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// The tool call with this index (the domain's count).
    ToolUse(u32),
}

/// Turns one stream's events into Anthropic SSE bytes.
#[derive(Debug)]
pub(crate) struct MessageEncoder {
    id: String,
    model: String,
    style: FinishReasonStyle,
    started: bool,
    /// The block being streamed and its index.
    open: Option<(u32, Open)>,
    /// The index the next block gets.
    next_index: u32,
    held_stop: Option<StopReason>,
    /// `message_delta` went out.
    delta_sent: bool,
}

impl MessageEncoder {
    pub(crate) fn new(id: &str, model: &str, style: FinishReasonStyle) -> Self {
        Self {
            id: id.to_owned(),
            model: model.to_owned(),
            style,
            started: false,
            open: None,
            next_index: 0,
            held_stop: None,
            delta_sent: false,
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        write_event(
            out,
            &EventJson::MessageStart {
                message: StartMessage {
                    id: &self.id,
                    kind: "message",
                    role: "assistant",
                    model: &self.model,
                    content: [],
                    stop_reason: None,
                    stop_sequence: None,
                    usage: UsageJson::default(),
                },
            },
        );
        write_event(out, &EventJson::Ping);
    }

    /// Closes the open block, if any.
    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            write_event(out, &EventJson::ContentBlockStop { index });
        }
    }

    /// The index of an open block of `kind`, starting one (and closing another) if needed.
    fn block(&mut self, out: &mut Vec<u8>, kind: Open, start: StartBlock<'_>) -> u32 {
        if let Some((index, open)) = self.open {
            if open == kind {
                return index;
            }
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        write_event(
            out,
            &EventJson::ContentBlockStart {
                index,
                content_block: start,
            },
        );
        self.open = Some((index, kind));
        index
    }

    fn delta(&mut self, out: &mut Vec<u8>, usage: &Usage, trace: Option<&Value>) {
        let stop = self.held_stop.take().unwrap_or(StopReason::EndTurn);
        write_event(
            out,
            &EventJson::MessageDelta {
                delta: StopJson {
                    stop_reason: stop_reason(&stop, self.style),
                    stop_sequence: None,
                },
                usage: UsageJson::new(usage),
                guardrail_trace: trace,
            },
        );
        self.delta_sent = true;
    }
}

impl StreamEncoder for MessageEncoder {
    fn event(&mut self, event: ChatEvent) -> Option<Bytes> {
        let mut out = Vec::new();
        self.start(&mut out);
        match &event {
            ChatEvent::MessageStart => {}
            ChatEvent::TextDelta(text) => {
                let index = self.block(&mut out, Open::Text, StartBlock::Text { text: "" });
                write_event(
                    &mut out,
                    &EventJson::ContentBlockDelta {
                        index,
                        delta: Delta::Text { text },
                    },
                );
            }
            ChatEvent::ReasoningDelta(thinking) => {
                let index = self.block(&mut out, Open::Thinking, THINKING_START);
                write_event(
                    &mut out,
                    &EventJson::ContentBlockDelta {
                        index,
                        delta: Delta::Thinking { thinking },
                    },
                );
            }
            ChatEvent::ReasoningSignature(signature) => {
                let index = self.block(&mut out, Open::Thinking, THINKING_START);
                write_event(
                    &mut out,
                    &EventJson::ContentBlockDelta {
                        index,
                        delta: Delta::Signature { signature },
                    },
                );
                // The signature closes its block: more reasoning is a new block.
                self.close(&mut out);
            }
            ChatEvent::RedactedReasoning(data) => {
                self.close(&mut out);
                let index = self.next_index;
                self.next_index += 1;
                write_event(
                    &mut out,
                    &EventJson::ContentBlockStart {
                        index,
                        content_block: StartBlock::RedactedThinking { data },
                    },
                );
                write_event(&mut out, &EventJson::ContentBlockStop { index });
            }
            ChatEvent::ToolCallStart { index, id, name } => {
                self.close(&mut out);
                self.block(
                    &mut out,
                    Open::ToolUse(*index),
                    StartBlock::ToolUse {
                        id,
                        name,
                        input: EmptyObject {},
                    },
                );
            }
            ChatEvent::ToolCallDelta { index, arguments } => {
                // Bedrock streams one tool call after another: arguments belong to the open one.
                if let Some((block, Open::ToolUse(call))) = self.open {
                    if call == *index {
                        write_event(
                            &mut out,
                            &EventJson::ContentBlockDelta {
                                index: block,
                                delta: Delta::InputJson {
                                    partial_json: arguments,
                                },
                            },
                        );
                    }
                }
            }
            ChatEvent::Stop(reason) => {
                self.close(&mut out);
                self.held_stop = Some(reason.clone());
            }
            ChatEvent::Metadata {
                usage,
                guardrail_trace,
            } => {
                self.close(&mut out);
                self.delta(&mut out, usage, guardrail_trace.as_ref());
            }
            // Model-specific response fields, and event kinds this encoder does not know,
            // have no Anthropic event.
            _ => {}
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    fn finish(&mut self) -> Bytes {
        let mut out = Vec::new();
        self.start(&mut out);
        self.close(&mut out);
        if !self.delta_sent {
            self.delta(&mut out, &Usage::default(), None);
        }
        write_event(&mut out, &EventJson::MessageStop);
        Bytes::from(out)
    }

    fn error(&mut self, error: &ProviderError) -> Bytes {
        let mut out = Vec::new();
        out.extend_from_slice(b"event: error\ndata: ");
        out.extend_from_slice(&anthropic_error_json(&ApiError::from_provider(error)));
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }
}

const THINKING_START: StartBlock<'static> = StartBlock::Thinking {
    thinking: "",
    signature: "",
};

fn write_event(out: &mut Vec<u8>, event: &EventJson<'_>) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.name().as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Serializing strings and numbers into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, event);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::FutureExt as _;
    use gateway_core::ChatEventStream;
    use http_body_util::BodyExt as _;
    use serde::Deserialize;

    use super::*;
    use crate::anthropic::test_support::MESSAGE_ID;
    use crate::metrics::Metrics;
    use crate::sse::SseBody;

    #[derive(Deserialize)]
    struct Fixture {
        style: FinishReasonStyle,
        steps: Vec<Step>,
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
            other => panic!("fixture names unknown error kind {other}"),
        }
    }

    #[test]
    fn event_sequences_become_anthropic_sse_text() {
        let metrics = Metrics::new();
        insta::glob!("../../../../fixtures/anthropic/stream", "*.json", |path| {
            let fixture: Fixture = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            let items: Vec<_> = fixture
                .steps
                .into_iter()
                .map(|step| match step {
                    Step::Event(event) => Ok(event),
                    Step::Error { error, message } => Err(provider_error(&error, message)),
                })
                .collect();
            let events: ChatEventStream = Box::pin(futures_util::stream::iter(items));
            let encoder = MessageEncoder::new(MESSAGE_ID, "claude-sonnet", fixture.style);
            let body = SseBody::new(
                events,
                Box::new(encoder),
                Arc::new("acct".into()),
                metrics.open_stream(),
                tracing::Span::none(),
            );
            // The events are all ready, so the body completes without a runtime.
            let bytes = body.collect().now_or_never().unwrap().unwrap().to_bytes();
            let text = String::from_utf8(bytes.to_vec()).unwrap();
            assert!(text.ends_with("\n\n"), "{text:?}");
            insta::assert_snapshot!(text);
        });
    }
}
