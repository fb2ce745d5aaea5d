//! [`ChatEvent`]s to OpenAI `chat.completion.chunk` server-sent events.
//!
//! Every chunk of a stream shares the id, `created` and model, so that prefix is written once
//! and each event only serializes its delta. `Stop` is held back until `Metadata` arrives, so
//! the finish chunk (or, with `include_usage`, the usage chunk after it) can carry the
//! guardrail trace; the usage and trace always ride on the last chunk before `[DONE]`.
//!
//! Reasoning streams as `delta.reasoning_content`; a block's signature and a redacted block
//! come as `delta.thinking_blocks` with one block (the signature with empty `thinking`, the
//! text having been streamed already), so a client can rebuild the blocks to give back.
//! The model-specific response fields are held and sent on the finish chunk's delta as
//! `additional_model_response_fields`. The usage chunk of a stream from a priced model
//! carries `usage.cost_usd`, the cost the service records for it.

use std::sync::Arc;

use bytes::Bytes;
use gateway_core::{
    ChatEvent, FinishReasonStyle, ProviderError, Route, ServiceTier, StopReason, Usage,
};
use serde::Serialize;
use serde_json::Value;

use super::response::{ThinkingBlockJson, UsageJson};
use super::PROVIDER;
use crate::door::StreamEncoder;
use crate::error::ApiError;

const DONE: &[u8] = b"data: [DONE]\n\n";

/// Turns one stream's events into SSE bytes.
#[derive(Debug)]
pub(crate) struct ChunkEncoder {
    /// `data: {"id":…,"object":"chat.completion.chunk","created":…,"model":…,"provider":"aws","choices":`
    prefix: Vec<u8>,
    style: FinishReasonStyle,
    include_usage: bool,
    held_stop: Option<StopReason>,
    /// `AdditionalResponseFields`, until the finish chunk carries them.
    held_fields: Option<Value>,
    /// The answering route and the tier asked for, which price the usage.
    pricing: Option<(Arc<Route>, Option<ServiceTier>)>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_blocks: Option<[ThinkingBlockJson<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    additional_model_response_fields: Option<&'a Value>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct DeltaChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    finish_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bedrock_stop_reason: Option<&'a str>,
}

impl StreamEncoder for ChunkEncoder {
    fn event(&mut self, event: ChatEvent) -> Option<Bytes> {
        ChunkEncoder::event(self, event)
    }

    fn finish(&mut self) -> Bytes {
        ChunkEncoder::finish(self)
    }

    fn error(&mut self, error: &ProviderError) -> Bytes {
        ChunkEncoder::error(self, error)
    }
}

impl ChunkEncoder {
    pub(crate) fn new(
        id: &str,
        created: u64,
        model: &str,
        style: FinishReasonStyle,
        include_usage: bool,
    ) -> Self {
        let mut prefix = Vec::with_capacity(112 + id.len() + model.len());
        prefix.extend_from_slice(b"data: {\"id\":");
        write_json(&mut prefix, id);
        prefix.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        write_json(&mut prefix, &created);
        prefix.extend_from_slice(b",\"model\":");
        write_json(&mut prefix, model);
        prefix.extend_from_slice(b",\"provider\":");
        write_json(&mut prefix, PROVIDER);
        prefix.extend_from_slice(b",\"choices\":");
        Self {
            prefix,
            style,
            include_usage,
            held_stop: None,
            held_fields: None,
            pricing: None,
        }
    }

    /// The usage chunk carries the cost of the usage at `route`'s price under `tier`.
    pub(crate) fn priced_by(mut self, route: Arc<Route>, tier: Option<ServiceTier>) -> Self {
        self.pricing = Some((route, tier));
        self
    }

    /// The SSE bytes for one event; `None` when the event is held back (`Stop`).
    pub(crate) fn event(&mut self, event: ChatEvent) -> Option<Bytes> {
        if let ChatEvent::AdditionalResponseFields(fields) = event {
            self.held_fields = Some(fields);
            return None;
        }
        let delta = match &event {
            ChatEvent::MessageStart => Delta {
                role: Some("assistant"),
                content: Some(""),
                ..Delta::default()
            },
            ChatEvent::TextDelta(text) => Delta {
                content: Some(text),
                ..Delta::default()
            },
            ChatEvent::ReasoningDelta(text) => Delta {
                reasoning_content: Some(text),
                ..Delta::default()
            },
            ChatEvent::ReasoningSignature(signature) => Delta {
                thinking_blocks: Some([ThinkingBlockJson::Thinking {
                    thinking: "",
                    signature: Some(signature),
                }]),
                ..Delta::default()
            },
            ChatEvent::RedactedReasoning(data) => Delta {
                thinking_blocks: Some([ThinkingBlockJson::RedactedThinking { data }]),
                ..Delta::default()
            },
            ChatEvent::ToolCallStart { index, id, name } => Delta {
                tool_calls: Some([ToolCallDelta {
                    index: *index,
                    id: Some(id),
                    kind: Some("function"),
                    function: FunctionDelta {
                        name: Some(name),
                        arguments: "",
                    },
                }]),
                ..Delta::default()
            },
            ChatEvent::ToolCallDelta { index, arguments } => Delta {
                tool_calls: Some([ToolCallDelta {
                    index: *index,
                    id: None,
                    kind: None,
                    function: FunctionDelta {
                        name: None,
                        arguments,
                    },
                }]),
                ..Delta::default()
            },
            ChatEvent::Stop(reason) => {
                self.held_stop = Some(reason.clone());
                return None;
            }

            ChatEvent::Metadata {
                usage,
                guardrail_trace,
            } => return self.metadata(usage, guardrail_trace.as_ref()),
            // An event kind this encoder does not know carries nothing an OpenAI chunk can
            // show; skipping it keeps the stream valid.
            _ => return None,
        };
        let mut out = self.buffer(64);
        self.write_delta(&mut out, delta);
        Some(out.into())
    }

    fn metadata(&mut self, usage: &Usage, trace: Option<&Value>) -> Option<Bytes> {
        let mut out = self.buffer(256);
        let finish_trace = if self.include_usage { None } else { trace };
        match self.held_stop.take() {
            Some(stop) => self.write_finish(&mut out, &stop, finish_trace),
            // No stop to carry the trace: it still reaches the client, on a choiceless chunk.
            None if finish_trace.is_some() => self.write_chunk(&mut out, None, None, finish_trace),
            None => {}
        }
        if self.include_usage {
            self.write_chunk(&mut out, None, Some(usage), trace);
        }
        (!out.is_empty()).then(|| out.into())
    }

    /// The end of a stream that ended normally: a finish chunk still held, then `[DONE]`.
    pub(crate) fn finish(&mut self) -> Bytes {
        let mut out = Vec::new();
        if let Some(stop) = self.held_stop.take() {
            out = self.buffer(DONE.len());
            self.write_finish(&mut out, &stop, None);
        }
        out.extend_from_slice(DONE);
        out.into()
    }

    /// One error event; the stream ends after it, without a finish chunk or `[DONE]`.
    pub(crate) fn error(&mut self, error: &ProviderError) -> Bytes {
        self.held_stop = None;
        self.held_fields = None;
        let api = ApiError::from_provider(error);
        let mut out = Vec::with_capacity(160 + api.message.len());
        out.extend_from_slice(b"data: ");
        api.write_json(&mut out);
        out.extend_from_slice(b"\n\n");
        out.into()
    }

    fn buffer(&self, extra: usize) -> Vec<u8> {
        Vec::with_capacity(self.prefix.len() + 64 + extra)
    }

    fn write_delta(&self, out: &mut Vec<u8>, delta: Delta<'_>) {
        let choice = DeltaChoice {
            index: 0,
            delta,
            finish_reason: None,
            bedrock_stop_reason: None,
        };
        self.write_chunk(out, Some(&choice), None, None);
    }

    /// The finish chunk, with the held response fields. (A stream without a stop has no
    /// finish chunk; the provider reports that as an error, and the fields go with it.)
    fn write_finish(&mut self, out: &mut Vec<u8>, stop: &StopReason, trace: Option<&Value>) {
        let fields = self.held_fields.take();
        let choice = DeltaChoice {
            index: 0,
            delta: Delta {
                additional_model_response_fields: fields.as_ref(),
                ..Delta::default()
            },
            finish_reason: Some(stop.finish_reason(self.style).as_str()),
            bedrock_stop_reason: Some(stop.as_str()),
        };
        self.write_chunk(out, Some(&choice), None, trace);
    }

    fn write_chunk(
        &self,
        out: &mut Vec<u8>,
        choice: Option<&DeltaChoice<'_>>,
        usage: Option<&Usage>,
        trace: Option<&Value>,
    ) {
        out.extend_from_slice(&self.prefix);
        match choice {
            Some(choice) => {
                out.push(b'[');
                write_json(out, choice);
                out.push(b']');
            }
            None => out.extend_from_slice(b"[]"),
        }
        if let Some(usage) = usage {
            let cost = self
                .pricing
                .as_ref()
                .and_then(|(route, tier)| route.cost(usage, *tier));
            out.extend_from_slice(b",\"usage\":");
            write_json(out, &UsageJson::new(usage, cost.as_ref()));
        }
        if let Some(trace) = trace {
            out.extend_from_slice(b",\"guardrail_trace\":");
            write_json(out, trace);
        }
        out.extend_from_slice(b"}\n\n");
    }
}

fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Serializing strings, numbers and JSON values into a Vec cannot fail.
    let _ = serde_json::to_writer(out, value);
}
