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
use gateway_core::ChatEventStream;
use http_body::{Body, Frame};

use crate::metrics::OpenStream;
use crate::openai::chunk::ChunkEncoder;

pub(crate) struct SseBody {
    /// `None` once the stream has ended or failed, so upstream resources go at once.
    events: Option<ChatEventStream>,
    encoder: ChunkEncoder,
    /// The account, for warnings about errors in the middle of the stream.
    account: Arc<String>,
    open: OpenStream,
}

impl SseBody {
    pub(crate) fn new(
        events: ChatEventStream,
        encoder: ChunkEncoder,
        account: Arc<String>,
        open: OpenStream,
    ) -> Self {
        Self {
            events: Some(events),
            encoder,
            account,
            open,
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
        loop {
            let Some(events) = this.events.as_mut() else {
                return Poll::Ready(None);
            };
            let bytes = match events.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(event))) => match this.encoder.event(event) {
                    Some(bytes) => bytes,
                    None => continue,
                },
                Poll::Ready(Some(Err(error))) => {
                    this.events = None;
                    this.open.upstream_error(&error);
                    tracing::warn!(
                        kind = error.kind(),
                        account = %this.account,
                        "upstream error in the middle of a stream"
                    );
                    this.encoder.error(&error)
                }
                Poll::Ready(None) => {
                    this.events = None;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::openai::test_support::{CREATED, ID};
    use futures_util::FutureExt;
    use gateway_core::{ChatEvent, FinishReasonStyle, ProviderError};
    use http_body_util::BodyExt;
    use serde::Deserialize;

    /// A fixture: the events a provider streams, then what the client asked for.
    #[derive(Deserialize)]
    struct Fixture {
        style: FinishReasonStyle,
        include_usage: bool,
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
            "protocol" => ProviderError::Protocol { message },
            other => panic!("fixture names unknown error kind {other}"),
        }
    }

    #[test]
    fn event_sequences_become_exact_sse_text() {
        let metrics = Metrics::new();
        insta::glob!("../../../fixtures/openai/stream", "*.json", |path| {
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
            let encoder = ChunkEncoder::new(
                ID,
                CREATED,
                "internal-bedrock/claude-3",
                fixture.style,
                fixture.include_usage,
            );
            let body = SseBody::new(
                events,
                encoder,
                Arc::new("acct".into()),
                metrics.open_stream(),
            );
            // The events are all ready, so the body completes without a runtime.
            let bytes = body.collect().now_or_never().unwrap().unwrap().to_bytes();
            let text = String::from_utf8(bytes.to_vec()).unwrap();
            // insta trims the final blank line; every event must still end with one.
            assert!(text.ends_with("\n\n"), "{text:?}");
            insta::assert_snapshot!(text);
        });
        assert!(
            metrics.encode().contains("gateway_open_streams 0"),
            "every body closed its stream"
        );
    }
}
