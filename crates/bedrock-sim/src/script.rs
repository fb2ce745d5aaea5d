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

/// The behaviour of the simulator for one model id.
///
/// Set per model with [`crate::SimBuilder::script`] or [`crate::SimHandle::set_script`], or for
/// every other model with [`crate::SimBuilder::default_script`] (default [`Script::Echo`]).
#[derive(Debug, Clone)]
pub enum Script {
    /// Answers `You said: <text of the last user message>` with stop reason `end_turn`;
    /// streamed as several text deltas (one per word). `inputTokens` is the number of words in
    /// the request's text blocks (messages and system), `outputTokens` the answer's word count.
    Echo,
    /// A fixed Converse answer, also streamed as events when ConverseStream is called (see
    /// [`crate::stream::from_reply`]).
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
    /// `{NAME}`; if anything was masked the stop reason is `guardrail_intervened`, and with
    /// `guardrailConfig.trace` `enabled`/`enabled_full` the answer carries
    /// `trace.guardrail.outputAssessments.<guardrailId>[0].sensitiveInformationPolicy.piiEntities`.
    GuardrailMask,
    /// Like [`Script::Echo`] unless the request has a `guardrailConfig`: then the answer is
    /// `message`, stop reason `guardrail_intervened`, `outputTokens` 0, and with trace enabled
    /// `trace.guardrail.inputAssessment.<guardrailId>` (a blocked content filter).
    GuardrailBlockInput {
        /// The blocked-input message configured on the guardrail.
        message: String,
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
    /// `(inputTokens, outputTokens)`; `totalTokens` is their sum.
    pub usage: (u32, u32),
    /// `trace`, if any.
    pub trace: Option<Value>,
    /// `additionalModelResponseFields`, if any.
    pub additional_model_response_fields: Option<Value>,
}

impl Default for Reply {
    /// No content, stop reason `end_turn`, usage `(0, 0)`.
    fn default() -> Self {
        Self {
            content: Vec::new(),
            stop_reason: "end_turn".to_owned(),
            usage: (0, 0),
            trace: None,
            additional_model_response_fields: None,
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

    /// Sets `(inputTokens, outputTokens)`.
    #[must_use]
    pub fn usage(mut self, input_tokens: u32, output_tokens: u32) -> Self {
        self.usage = (input_tokens, output_tokens);
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

    /// The Converse response body for this reply (botocore's `ConverseResponse` shape).
    pub fn to_converse_json(&self, latency_ms: u64) -> Value {
        let mut out = json!({
            "output": { "message": { "role": "assistant", "content": self.content } },
            "stopReason": self.stop_reason,
            "usage": usage_json(self.usage),
            "metrics": { "latencyMs": latency_ms },
        });
        if let Some(map) = out.as_object_mut() {
            if let Some(trace) = &self.trace {
                map.insert("trace".to_owned(), trace.clone());
            }
            if let Some(fields) = &self.additional_model_response_fields {
                map.insert("additionalModelResponseFields".to_owned(), fields.clone());
            }
        }
        out
    }
}

pub(crate) fn usage_json((input, output): (u32, u32)) -> Value {
    json!({
        "inputTokens": input,
        "outputTokens": output,
        "totalTokens": input.saturating_add(output),
    })
}

pub(crate) fn word_count(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
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
