//! What the simulator answers: [`Script`] (per model id), [`Reply`] (a fixed Converse
//! answer), [`StreamStep`] (one step of a scripted ConverseStream body) and [`Gate`]
//! (deterministic synchronisation between a test and a stream).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::reasoning::{reasoning_signature, redacted_reasoning_data};
use crate::request::word_count;

/// The behaviour of the simulator for one model id.
///
/// Set per model with [`crate::SimBuilder::script`] or [`crate::SimHandle::set_script`], or for
/// every other model with [`crate::SimBuilder::default_script`] (default [`Script::Echo`]).
#[derive(Debug, Clone)]
pub enum Script {
    /// The simulated model. It answers, first match wins:
    /// - a forced tool (`toolChoice.tool`, or `any`: the first tool) -> a `toolUse` of it whose
    ///   input is [`crate::minimal_instance`] of its input schema, stop reason `tool_use`;
    /// - structured output (`outputConfig.textFormat`) -> the compact JSON of
    ///   [`crate::minimal_instance`] of the schema;
    /// - otherwise `Read document <name> (<format>, N bytes).` per document of the last user
    ///   message, then `You said: <its text and guardContent text>`, stop reason `end_turn`.
    ///
    /// When the request turns reasoning on (see the crate docs) a signed reasoning block comes
    /// first. Streamed as several deltas (one per word). `inputTokens` and the cache counts
    /// follow the prompt accounting of the crate docs, `outputTokens` is the answer's word
    /// count (reasoning included); `serviceTier`, `performanceConfig` and
    /// `additionalModelResponseFields` answer the request's options.
    Echo,
    /// A fixed Converse answer, also streamed as events when ConverseStream is called (see
    /// [`crate::stream::from_reply`]). `serviceTier`, `performanceConfig` and
    /// `additionalModelResponseFields` the request asks for are added unless the reply sets
    /// them; content and usage stay as scripted.
    Reply(Reply),
    /// A Bedrock error before any body: `status`, `x-amzn-ErrorType:
    /// <kind>:http://internal.amazon.com/coral/com.amazon.bedrock/` and `{"message": ...}`.
    Error {
        /// HTTP status, e.g. 429.
        status: u16,
        /// Exception name, e.g. `ThrottlingException`.
        kind: String,
        /// The `message` of the body.
        message: String,
    },
    /// An exact ConverseStream body. A Converse call with this script answers the aggregated
    /// message (text and tool blocks, stop reason, usage and trace from the events); an
    /// `Exception` step becomes the equivalent HTTP error, `Delay`/`WaitFor`/`Hold` are
    /// honoured and byte-level corruption steps are ignored.
    Stream(Vec<StreamStep>),
    /// A garbage answer sent verbatim (HTML 502, truncated JSON, a non-JSON 200, ...), with no
    /// `x-amzn-ErrorType`.
    Raw {
        /// HTTP status.
        status: u16,
        /// `content-type` header value.
        content_type: String,
        /// Exact body.
        body: Bytes,
    },
    /// Sends the status and headers (chunked, no length), then `body`, then closes the
    /// connection with an error: a body cut off mid-way (for either operation).
    CutBody {
        /// HTTP status.
        status: u16,
        /// `content-type` header value.
        content_type: String,
        /// The bytes sent before the connection is cut.
        body: Bytes,
    },
    /// Accepts the request and never finishes: Converse never answers; ConverseStream sends
    /// the 200 headers and then nothing. The body is dropped when the client leaves.
    Stall,
    /// Like [`Script::Echo`] unless the request has a `guardrailConfig`: then e-mail
    /// addresses in the answer become `{EMAIL}` and the names Elon, Musk, Jane and Doe become
    /// `{NAME}` (when the request has `guardContent` blocks, only in the text echoed from
    /// them: Bedrock's selective evaluation); if anything was masked the stop reason is `guardrail_intervened`, and with
    /// `guardrailConfig.trace` `enabled`/`enabled_full` the answer carries
    /// `trace.guardrail.outputAssessments.<guardrailId>[0].sensitiveInformationPolicy.piiEntities`.
    GuardrailMask,
    /// Like [`Script::Echo`] unless the request has a `guardrailConfig`: then the answer is
    /// `message`, stop reason `guardrail_intervened`, `outputTokens` 0, and with trace enabled
    /// `trace.guardrail.inputAssessment.<guardrailId>` (a blocked content filter). The filter
    /// blocks any input, so `guardContent` makes no difference here; see
    /// [`Script::GuardrailBlockWords`] for a filter that shows selective evaluation.
    GuardrailBlockInput {
        /// The blocked-input message configured on the guardrail.
        message: String,
    },
    /// Like [`Script::Echo`] unless the request has a `guardrailConfig`: then the guardrail's
    /// word filter reads the input (only the `guardContent` text when the request has
    /// `guardContent` blocks, else every text of system and messages) and, if it holds one of
    /// `words` (case-insensitive, whole words), answers `message` with stop reason
    /// `guardrail_intervened`, `outputTokens` 0 and, with trace enabled,
    /// `trace.guardrail.inputAssessment.<guardrailId>.wordPolicy.customWords`. Shows Bedrock's
    /// selective evaluation: the same words outside `guardContent` pass.
    GuardrailBlockWords {
        /// The blocked-input message configured on the guardrail.
        message: String,
        /// The words the filter blocks.
        words: Vec<String>,
    },
    /// A model in a tool loop: while the last user turn holds no `toolResult`, it calls `tool`
    /// with `input` (stop reason `tool_use`); once it does, it answers
    /// `<tool> returned: <text of the tool results>` (stop reason `end_turn`). When the
    /// request turns reasoning on, each answer starts with a signed reasoning block, so two
    /// turns make a thinking tool loop (the second turn is refused unless the first turn's
    /// reasoning block comes back intact). See [`Script::thinking_tool_loop`].
    ThinkingToolLoop {
        /// The tool called on the first turn (must be in the request's `toolConfig`).
        tool: String,
        /// The tool's input.
        input: Value,
    },
    /// Answers the n-th call for this model with the n-th script and every call after the
    /// last with the last one (e.g. `[Script::throttling(), Script::Echo]` to test retries).
    /// Scripts nested inside are resolved to their first element; an empty sequence is
    /// [`Script::Echo`]. The count restarts when the script is replaced.
    Sequence(Vec<Script>),
    /// The benchmark's fixed-answer mode: a constant tiny answer whose bytes are computed once
    /// at start. With signature verification off the request body is read but not parsed.
    Fixed,
}

impl Script {
    /// A [`Script::Error`].
    pub fn error(status: u16, kind: &str, message: &str) -> Self {
        Self::Error {
            status,
            kind: kind.to_owned(),
            message: message.to_owned(),
        }
    }

    /// A [`Script::Raw`].
    pub fn raw(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        Self::Raw {
            status,
            content_type: content_type.to_owned(),
            body: body.into(),
        }
    }

    /// A [`Script::ThinkingToolLoop`] calling `tool` with `input`.
    pub fn thinking_tool_loop(tool: &str, input: Value) -> Self {
        Self::ThinkingToolLoop {
            tool: tool.to_owned(),
            input,
        }
    }

    /// A [`Script::GuardrailBlockWords`].
    pub fn guardrail_block_words(message: &str, words: &[&str]) -> Self {
        Self::GuardrailBlockWords {
            message: message.to_owned(),
            words: words.iter().map(|w| (*w).to_owned()).collect(),
        }
    }

    /// `429 ThrottlingException` "Too many requests, please wait before trying again."
    pub fn throttling() -> Self {
        Self::error(
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        )
    }
}

/// A fixed Converse answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Converse `ContentBlock`s as JSON, e.g. `{"text": "hi"}` or `{"toolUse": {...}}`.
    pub content: Vec<Value>,
    /// `stopReason`.
    pub stop_reason: String,
    /// `(inputTokens, outputTokens)`; `totalTokens` is their sum plus the cache counts.
    pub usage: (u32, u32),
    /// `cacheReadInputTokens` / `cacheWriteInputTokens`, reported only when set.
    pub cache_usage: Option<CacheUsage>,
    /// `trace`, if any.
    pub trace: Option<Value>,
    /// `additionalModelResponseFields`, if any.
    pub additional_model_response_fields: Option<Value>,
    /// `serviceTier.type` of the answer, if any.
    pub service_tier: Option<String>,
    /// `performanceConfig.latency` of the answer, if any.
    pub performance_latency: Option<String>,
}

/// Prompt-cache token counts of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheUsage {
    /// `cacheReadInputTokens`: prompt tokens read from the cache.
    pub read_input_tokens: u32,
    /// `cacheWriteInputTokens`: prompt tokens written to the cache.
    pub write_input_tokens: u32,
}

impl Default for Reply {
    /// No content, stop reason `end_turn`, usage `(0, 0)`.
    fn default() -> Self {
        Self {
            content: Vec::new(),
            stop_reason: "end_turn".to_owned(),
            usage: (0, 0),
            cache_usage: None,
            trace: None,
            additional_model_response_fields: None,
            service_tier: None,
            performance_latency: None,
        }
    }
}

impl Reply {
    /// One text block, stop reason `end_turn`, usage `(10, <words in text>)`.
    pub fn text(text: &str) -> Self {
        Self {
            content: vec![json!({ "text": text })],
            usage: (10, word_count(text)),
            ..Self::default()
        }
    }

    /// Sets `stopReason`.
    #[must_use]
    pub fn stop_reason(mut self, stop_reason: &str) -> Self {
        stop_reason.clone_into(&mut self.stop_reason);
        self
    }

    /// Appends a `toolUse` block and sets the stop reason to `tool_use`.
    #[must_use]
    pub fn tool_use(mut self, tool_use_id: &str, name: &str, input: Value) -> Self {
        self.content.push(json!({
            "toolUse": { "toolUseId": tool_use_id, "name": name, "input": input }
        }));
        "tool_use".clone_into(&mut self.stop_reason);
        self
    }

    /// Adds a `reasoningContent.reasoningText` block signed by the simulator
    /// ([`crate::reasoning_signature`]) after the reasoning blocks already there (reasoning
    /// comes first in an answer, whatever the call order).
    #[must_use]
    pub fn reasoning(self, text: &str) -> Self {
        self.with_reasoning_block(json!({ "reasoningContent": { "reasoningText": {
            "text": text,
            "signature": reasoning_signature(text),
        } } }))
    }

    /// Adds a `reasoningContent.redactedContent` block the simulator can recognise on a later
    /// turn ([`crate::redacted_reasoning_data`] of `label`), after the reasoning blocks already
    /// there.
    #[must_use]
    pub fn redacted_reasoning(self, label: &str) -> Self {
        self.with_reasoning_block(json!({ "reasoningContent": {
            "redactedContent": redacted_reasoning_data(label),
        } }))
    }

    fn with_reasoning_block(mut self, block: Value) -> Self {
        let at = self
            .content
            .iter()
            .position(|b| b.get("reasoningContent").is_none())
            .unwrap_or(self.content.len());
        self.content.insert(at, block);
        self
    }

    /// Sets `(inputTokens, outputTokens)`.
    #[must_use]
    pub fn usage(mut self, input_tokens: u32, output_tokens: u32) -> Self {
        self.usage = (input_tokens, output_tokens);
        self
    }

    /// Sets `cacheReadInputTokens` and `cacheWriteInputTokens`.
    #[must_use]
    pub fn cache_usage(mut self, read_input_tokens: u32, write_input_tokens: u32) -> Self {
        self.cache_usage = Some(CacheUsage {
            read_input_tokens,
            write_input_tokens,
        });
        self
    }

    /// Sets `trace` (e.g. `{"guardrail": {...}}`).
    #[must_use]
    pub fn trace(mut self, trace: Value) -> Self {
        self.trace = Some(trace);
        self
    }

    /// Sets `additionalModelResponseFields`.
    #[must_use]
    pub fn additional_model_response_fields(mut self, fields: Value) -> Self {
        self.additional_model_response_fields = Some(fields);
        self
    }

    /// Sets `serviceTier` (`{"type": tier}`).
    #[must_use]
    pub fn service_tier(mut self, tier: &str) -> Self {
        self.service_tier = Some(tier.to_owned());
        self
    }

    /// Sets `performanceConfig` (`{"latency": latency}`).
    #[must_use]
    pub fn performance_latency(mut self, latency: &str) -> Self {
        self.performance_latency = Some(latency.to_owned());
        self
    }

    /// The Converse response body for this reply (botocore's `ConverseResponse` shape).
    pub fn to_converse_json(&self, latency_ms: u64) -> Value {
        let mut out = json!({
            "output": { "message": { "role": "assistant", "content": self.content } },
            "stopReason": self.stop_reason,
            "usage": self.usage_json(),
            "metrics": { "latencyMs": latency_ms },
        });
        if let Some(map) = out.as_object_mut() {
            if let Some(trace) = &self.trace {
                map.insert("trace".to_owned(), trace.clone());
            }
            if let Some(fields) = &self.additional_model_response_fields {
                map.insert("additionalModelResponseFields".to_owned(), fields.clone());
            }
            self.insert_tier_and_latency(map);
        }
        out
    }

    /// botocore's `TokenUsage`: the cache counts only when set, `totalTokens` the sum of all.
    pub(crate) fn usage_json(&self) -> Value {
        let (input, output) = self.usage;
        let cache = self.cache_usage.unwrap_or_default();
        let total = input
            .saturating_add(output)
            .saturating_add(cache.read_input_tokens)
            .saturating_add(cache.write_input_tokens);
        let mut usage = json!({
            "inputTokens": input,
            "outputTokens": output,
            "totalTokens": total,
        });
        if let (Some(map), Some(cache)) = (usage.as_object_mut(), self.cache_usage) {
            map.insert(
                "cacheReadInputTokens".to_owned(),
                cache.read_input_tokens.into(),
            );
            map.insert(
                "cacheWriteInputTokens".to_owned(),
                cache.write_input_tokens.into(),
            );
        }
        usage
    }

    /// `serviceTier` and `performanceConfig`, where a response or metadata event carries them.
    pub(crate) fn insert_tier_and_latency(&self, map: &mut serde_json::Map<String, Value>) {
        if let Some(tier) = &self.service_tier {
            map.insert("serviceTier".to_owned(), json!({ "type": tier }));
        }
        if let Some(latency) = &self.performance_latency {
            map.insert(
                "performanceConfig".to_owned(),
                json!({ "latency": latency }),
            );
        }
    }
}

/// One step of a scripted ConverseStream body.
#[derive(Debug, Clone)]
pub enum StreamStep {
    /// An `event` frame (`:message-type event`, `:event-type <event_type>`, `:content-type
    /// application/json`). If `payload` is an object the simulator adds a random-length `"p"`
    /// padding field, like real Bedrock.
    Event {
        /// e.g. `contentBlockDelta`.
        event_type: String,
        /// The JSON payload.
        payload: Value,
    },
    /// An `exception` frame (`:message-type exception`, `:exception-type <exception_type>`)
    /// with payload `{"message": ...}`.
    Exception {
        /// e.g. `throttlingException`.
        exception_type: String,
        /// The `message`.
        message: String,
    },
    /// Exact bytes (e.g. a corrupt frame built with [`crate::encode_frame`]).
    RawBytes(Bytes),
    /// The next frame is sent with its message CRC inverted.
    CorruptNextCrc,
    /// Sends a prelude announcing a 20 MiB frame (valid prelude CRC), then closes the body
    /// with an error.
    OversizedPrelude,
    /// Sends the first half of the next frame, then closes the body with an error.
    CutMidFrame,
    /// Waits before the next step.
    Delay(Duration),
    /// Waits until the test calls [`Gate::open`].
    WaitFor(Gate),
    /// Never continues (the body is dropped when the client leaves).
    Hold,
}

impl StreamStep {
    /// An [`StreamStep::Event`].
    pub fn event(event_type: &str, payload: Value) -> Self {
        Self::Event {
            event_type: event_type.to_owned(),
            payload,
        }
    }

    /// An [`StreamStep::Exception`].
    pub fn exception(exception_type: &str, message: &str) -> Self {
        Self::Exception {
            exception_type: exception_type.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// A one-shot gate: stream steps [`StreamStep::WaitFor`] it until a test calls
/// [`Gate::open`]. Clones share the same gate; once open it stays open.
#[derive(Clone, Default)]
pub struct Gate(Arc<GateInner>);

#[derive(Default)]
struct GateInner {
    open: AtomicBool,
    notify: Notify,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("open", &self.is_open())
            .finish()
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens the gate, releasing every current and future waiter.
    pub fn open(&self) {
        self.0.open.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// Whether [`Gate::open`] was called.
    pub fn is_open(&self) -> bool {
        self.0.open.load(Ordering::SeqCst)
    }

    /// Resolves once the gate is open.
    pub async fn wait(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_open() {
                return;
            }
            notified.await;
        }
    }
}
