//! The one `info` line per request, and the GenAI metrics taken at the same moment.
//!
//! [`RequestLog`] collects what a request did as it goes: the key's name (never the key),
//! the model as the client sent it, the target that answered, the status, and for chats
//! the time to the first token, the token counts, Bedrock's stop reason and whether a
//! guardrail intervened. It never holds prompt or answer text. A completion writes it when
//! the response is ready; a stream carries it in its body and writes it when the stream
//! ends or the client goes away. The line is written inside the request's span, so it
//! carries `request_id` too.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_core::{StopReason, Usage};
use http::StatusCode;

use crate::metrics::{Endpoint, KeyLabel, Metrics, ModelLabel};

/// The log target of the per-request lines, so filters can keep or drop them alone.
pub(crate) const TARGET: &str = "gateway::request";

/// A model name longer than this is cut in the log: it came from the client.
const MAX_LOGGED_MODEL_CHARS: usize = 256;

/// Why an answer's error was given, as a short fixed name: the OpenAI error `code`, or
/// for an error in the middle of a stream the provider error's kind. Responses carry it in
/// their extensions so that the log and metrics learn it where every error is made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorType(pub(crate) &'static str);

/// What one request did so far; written once by [`RequestLog::finish`].
#[derive(Debug, Clone)]
pub(crate) struct RequestLog {
    started: Instant,
    endpoint: Endpoint,
    metrics: Arc<Metrics>,
    key: Option<KeyLabel>,
    /// As the client sent it.
    model: Option<Box<str>>,
    /// The bounded label of `model` for metrics (`other` until the model is known).
    model_label: ModelLabel,
    /// The `<account>/<model>` that answered or was called last.
    target: Option<ModelLabel>,
    status: StatusCode,
    error_type: Option<&'static str>,
    first_token: Option<Duration>,
    usage: Option<Usage>,
    stop: Option<StopReason>,
    /// For a stream: the client went away before its end.
    client_gone: bool,
}

impl RequestLog {
    pub(crate) fn start(
        started: Instant,
        endpoint: Endpoint,
        metrics: Arc<Metrics>,
        other_model: &ModelLabel,
    ) -> Self {
        Self {
            started,
            endpoint,
            metrics,
            key: None,
            model: None,
            model_label: Arc::clone(other_model),
            target: None,
            status: StatusCode::OK,
            error_type: None,
            first_token: None,
            usage: None,
            stop: None,
            client_gone: false,
        }
    }

    pub(crate) fn key(&mut self, key: &KeyLabel) {
        self.key = Some(Arc::clone(key));
    }

    pub(crate) fn model(&mut self, sent: &str, label: &ModelLabel) {
        let logged = match sent.char_indices().nth(MAX_LOGGED_MODEL_CHARS) {
            Some((cut, _)) => &sent[..cut],
            None => sent,
        };
        self.model = Some(logged.into());
        self.model_label = Arc::clone(label);
    }

    pub(crate) fn target(&mut self, target: &ModelLabel) {
        self.target = Some(Arc::clone(target));
    }

    pub(crate) fn status(&mut self, status: StatusCode, error_type: Option<ErrorType>) {
        self.status = status;
        if let Some(ErrorType(name)) = error_type {
            self.error_type = Some(name);
        }
    }

    /// An error after the response head (a stream's), named by its kind.
    pub(crate) fn failed_midway(&mut self, kind: &'static str) {
        self.error_type = Some(kind);
    }

    /// The first token (text, reasoning or a tool call) is ready to go out; later calls
    /// keep the first time.
    pub(crate) fn first_token(&mut self) {
        if self.first_token.is_none() {
            self.first_token = Some(self.started.elapsed());
        }
    }

    /// A completion's usage and stop reason.
    pub(crate) fn answered(&mut self, usage: Usage, stop: &StopReason) {
        self.usage = Some(usage);
        self.stop = Some(stop.clone());
    }

    pub(crate) fn stopped(&mut self, stop: &StopReason) {
        self.stop = Some(stop.clone());
    }

    pub(crate) fn usage(&mut self, usage: Usage) {
        self.usage = Some(usage);
    }

    pub(crate) fn client_gone(&mut self) {
        self.client_gone = true;
    }

    /// Writes the line and, for chats, the GenAI metrics.
    pub(crate) fn finish(self) {
        let elapsed = self.started.elapsed();
        let guardrail = match self.stop {
            Some(StopReason::GuardrailIntervened) => "intervened",
            _ => "none",
        };
        if self.endpoint.is_model_traffic() {
            // A stream that failed after its head answered 200 with an error type.
            let failed_midway = self.status.is_success() && self.error_type.is_some();
            self.metrics.traffic().record(
                &self.model_label,
                elapsed,
                self.status.is_server_error() || failed_midway,
                guardrail == "intervened",
            );
        }
        if self.endpoint.is_chat() {
            self.metrics.gen_ai_request(
                &self.model_label,
                elapsed,
                self.first_token,
                self.usage.as_ref(),
                self.error_type,
            );
        }
        let none = "-";
        let model: Cow<'_, str> = self.model.as_deref().map_or(Cow::Borrowed(none), |m| {
            // A client's text: control characters would break the text format's lines.
            if m.chars().any(char::is_control) {
                Cow::Owned(m.escape_default().to_string())
            } else {
                Cow::Borrowed(m)
            }
        });
        let line_fields = (
            self.key.as_deref().map_or(none, String::as_str),
            self.target.as_deref().map_or(none, String::as_str),
            self.error_type.unwrap_or(none),
            self.stop.as_ref().map_or(none, StopReason::as_str),
        );
        let (key, target, error_type, finish_reason) = line_fields;
        let latency_ms = millis(elapsed);
        let first_token_ms = self.first_token.map(millis);
        let input_tokens = self.usage.map(|usage| usage.input_tokens);
        let output_tokens = self.usage.map(|usage| usage.output_tokens);
        // Probes, scrapes and the console's polls come every few seconds: their lines are
        // `debug`.
        macro_rules! line {
            ($level:expr) => {
                tracing::event!(
                    target: TARGET,
                    $level,
                    endpoint = self.endpoint.as_str(),
                    key,
                    model = %model,
                    target,
                    status = self.status.as_u16(),
                    error_type,
                    latency_ms,
                    first_token_ms,
                    input_tokens,
                    output_tokens,
                    finish_reason,
                    guardrail,
                    client_gone = self.client_gone,
                    "request"
                )
            };
        }
        match self.endpoint {
            Endpoint::Health | Endpoint::Ready | Endpoint::Metrics | Endpoint::Console => {
                line!(tracing::Level::DEBUG)
            }
            _ => line!(tracing::Level::INFO),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
