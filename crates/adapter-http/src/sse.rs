//! The streaming response body: the provider's event stream, encoded chunk by chunk.
//!
//! hyper polls the body only when the connection can take more, and the body polls the
//! provider's stream only then: a slow client slows the upstream read instead of filling a
//! buffer. When the client goes away hyper drops the body, and with it the provider's stream.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt;
use gateway_core::{ChatEvent, ChatEventStream};
use http_body::{Body, Frame};

use crate::door::StreamEncoder;
use crate::metrics::OpenStream;
use crate::request_log::RequestLog;
use crate::shed::InFlight;
use crate::trace;

pub(crate) struct SseBody {
    /// The load-shedding slot, given back when the stream ends (before the last frame goes
    /// out) or the body is dropped. Declared first so it is dropped first: whoever learns
    /// that the provider's stream is gone finds the slot free already.
    slot: Option<InFlight>,
    /// `None` once the stream has ended or failed, so upstream resources go at once.
    events: Option<ChatEventStream>,
    /// The door's encoder: one call per event, a vtable away.
    encoder: Box<dyn StreamEncoder>,
    /// The account, for warnings about errors in the middle of the stream.
    account: Arc<String>,
    open: OpenStream,
    /// The request's span: what the stream logs carries the request id.
    span: tracing::Span,
    /// Written when the stream ends or the client goes away; boxed to keep the response
    /// body small.
    log: Option<Box<RequestLog>>,
    /// Boxed: most of the body's size otherwise, and only read once per event.
    trace: Option<Box<StreamTrace>>,
}

/// The request's span, held until the stream ends, and what it records at the end.
struct StreamTrace {
    span: tracing::Span,
    /// The model answering.
    model_id: String,
    /// Why the model stopped, held until the usage arrives.
    stop: Option<String>,
}

impl SseBody {
    pub(crate) fn new(
        events: ChatEventStream,
        encoder: Box<dyn StreamEncoder>,
        account: Arc<String>,
        open: OpenStream,
        span: tracing::Span,
    ) -> Self {
        Self {
            slot: None,
            events: Some(events),
            encoder,
            account,
            open,
            span,
            log: None,
            trace: None,
        }
    }

    /// Records the answer on the request's `span` and ends it with the stream.
    pub(crate) fn traced_by(mut self, span: tracing::Span, model_id: &str) -> Self {
        self.trace = Some(Box::new(StreamTrace {
            span,
            model_id: model_id.to_owned(),
            stop: None,
        }));
        self
    }

    fn trace_event(&mut self, event: &ChatEvent) {
        let Some(trace) = self.trace.as_mut() else {
            return;
        };
        match event {
            ChatEvent::Stop(reason) => trace.stop = Some(reason.as_str().to_owned()),
            ChatEvent::Metadata { usage, .. } => trace::record_response(
                &trace.span,
                &trace.model_id,
                trace.stop.as_deref().unwrap_or_default(),
                usage.prompt_tokens(),
                usage.output_tokens,
            ),
            _ => {}
        }
    }

    /// Holds `slot` for as long as the stream is open.
    pub(crate) fn holding(mut self, slot: InFlight) -> Self {
        self.slot = Some(slot);
        self
    }

    /// Writes `log` when the stream ends or the client goes away.
    pub(crate) fn log_when_done(&mut self, log: RequestLog) {
        self.log = Some(Box::new(log));
    }

    /// The stream is over: upstream resources and the slot go at once, not when hyper
    /// gets round to dropping the body.
    fn end(&mut self) {
        self.events = None;
        self.slot = None;
        if let Some(log) = self.log.take() {
            log.finish();
        }
        self.trace = None;
    }

    /// What the request log learns from an event on its way to the client.
    fn note(&mut self, event: &ChatEvent) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        match event {
            ChatEvent::TextDelta(_)
            | ChatEvent::ReasoningDelta(_)
            | ChatEvent::ToolCallStart { .. } => log.first_token(),
            ChatEvent::Stop(reason) => log.stopped(reason),
            ChatEvent::Metadata { usage, .. } => log.usage(*usage),
            _ => {}
        }
    }
}

impl fmt::Debug for SseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseBody")
            .field("ended", &self.events.is_none())
            .finish_non_exhaustive()
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let _in_request = this.span.clone().entered();
        loop {
            let Some(events) = this.events.as_mut() else {
                return Poll::Ready(None);
            };
            let bytes = match events.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(event))) => {
                    this.note(&event);
                    this.trace_event(&event);
                    match this.encoder.event(event) {
                        Some(bytes) => bytes,
                        None => continue,
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    if let Some(log) = this.log.as_mut() {
                        log.failed_midway(error.kind());
                    }
                    if let Some(trace) = &this.trace {
                        trace::record_error(&trace.span, error.kind());
                    }
                    this.end();
                    this.open.upstream_error(&error);
                    tracing::warn!(
                        kind = error.kind(),
                        account = %this.account,
                        "upstream error in the middle of a stream"
                    );
                    this.encoder.error(&error)
                }
                Poll::Ready(None) => {
                    this.end();
                    this.encoder.finish()
                }
            };
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.events.is_none()
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        // Still there: the client went away before the end.
        if let Some(mut log) = self.log.take() {
            log.client_gone();
            let _in_request = self.span.enter();
            log.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::{encode_stream, StreamFixture};
    use crate::metrics::Metrics;
    use crate::openai::chunk::ChunkEncoder;
    use crate::openai::test_support::{route, CREATED, ID};
    use crate::shed::ConcurrencyLimit;
    use futures_util::FutureExt;
    use gateway_core::{ChatEvent, FinishReasonStyle, ProviderError, StopReason};
    use http_body_util::BodyExt;
    use std::num::NonZeroUsize;

    #[test]
    fn event_sequences_become_exact_sse_text() {
        let metrics = Metrics::new();
        insta::glob!("../../../fixtures/openai/stream", "*.json", |path| {
            let fixture: StreamFixture =
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            let bytes = encode_stream(fixture, &route(), &metrics)
                .expect("the fixture names known error kinds and a valid price");
            let text = String::from_utf8(bytes).unwrap();
            // insta trims the final blank line; every event must still end with one.
            assert!(text.ends_with("\n\n"), "{text:?}");
            insta::assert_snapshot!(text);
        });
        assert!(
            metrics.encode().contains("gateway_open_streams 0"),
            "every body closed its stream"
        );
    }

    #[test]
    fn the_slot_is_given_back_with_the_last_frame_not_when_the_body_is_dropped() {
        let limit = ConcurrencyLimit::new(NonZeroUsize::MIN);
        for last in [
            Ok(ChatEvent::Stop(StopReason::EndTurn)),
            Err(ProviderError::ModelError {
                message: "The model stopped unexpectedly".into(),
            }),
        ] {
            let items = vec![Ok(ChatEvent::TextDelta("Hi".into())), last];
            let events: ChatEventStream = Box::pin(futures_util::stream::iter(items));
            let encoder =
                ChunkEncoder::new(ID, CREATED, "acct/model", FinishReasonStyle::Bedrock, false);
            let slot = limit.try_acquire().unwrap();
            let mut body = SseBody::new(
                events,
                Box::new(encoder),
                Arc::new("acct".into()),
                Metrics::new().open_stream(),
                tracing::Span::none(),
            )
            .holding(slot);
            while !body.is_end_stream() {
                assert_eq!(limit.in_flight(), 1, "held while the stream is open");
                body.frame().now_or_never().unwrap().unwrap().unwrap();
            }
            assert_eq!(
                limit.in_flight(),
                0,
                "given back before the body is dropped"
            );
            drop(body);
        }
    }
}
