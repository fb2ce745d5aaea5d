//! ConverseStream events to domain [`ChatEvent`]s.
//!
//! Follows botocore's `ConverseStreamOutput` union: each event-stream message carries
//! `:message-type` (`event` or `exception`) and `:event-type` / `:exception-type`, with a JSON
//! payload (its types are in [`crate::wire`]; exception frames map through
//! [`crate::errors`]). Unknown event types and unknown JSON fields (real payloads carry a
//! random-length `p` padding field) are ignored, so newer Bedrock releases do not break the gateway.
//!
//! The stream is lazy and frame-by-frame: each event is yielded as soon as its frame is
//! decoded, nothing is buffered beyond the current frame, and dropping the stream drops the
//! response body, which is how a client's cancellation reaches the upstream connection.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_types::event_stream::Message;
use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;
use gateway_core::{ChatEvent, ChatEventStream, ProviderError, StopReason};
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::time::{Instant, Sleep};

use crate::converse_response::usage;
use crate::errors::stream_exception;
use crate::event_stream::{EventStreamError, MessageStream};
use crate::wire::{
    ContentBlockDeltaEvent, ContentBlockStartEvent, MessageStopEvent, MetadataEvent,
};

/// Decodes a ConverseStream response body into domain events.
///
/// The caller has already checked the HTTP status. `idle_timeout` bounds the wait for each
/// frame, the first one included.
pub(crate) fn chat_events(
    account: Arc<str>,
    body: hyper::body::Incoming,
    idle_timeout: Duration,
) -> ChatEventStream {
    converse_stream_events(account, body.into_data_stream(), idle_timeout)
}

/// [`chat_events`] over any stream of body chunks; tests feed it arbitrary chunkings.
///
/// Must be polled inside a Tokio runtime (the idle timer is Tokio's).
pub fn converse_stream_events<S, E>(
    account: Arc<str>,
    body: S,
    idle_timeout: Duration,
) -> ChatEventStream
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    Box::pin(ConverseEvents {
        account,
        messages: MessageStream::new(body),
        mapper: EventMapper::default(),
        idle_timeout,
        idle: None,
        done: false,
    })
}

struct ConverseEvents<S> {
    account: Arc<str>,
    messages: MessageStream<S>,
    mapper: EventMapper,
    idle_timeout: Duration,
    /// Created on first poll, so constructing the stream needs no runtime; reset per frame
    /// rather than re-created, to keep one timer registration per stream.
    idle: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl<S> ConverseEvents<S> {
    fn fail(&mut self, error: ProviderError) -> Poll<Option<Result<ChatEvent, ProviderError>>> {
        tracing::debug!(account = %self.account, kind = error.kind(), %error, "ConverseStream failed");
        self.done = true;
        Poll::Ready(Some(Err(error)))
    }
}

impl<S, E> Stream for ConverseEvents<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    type Item = Result<ChatEvent, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let idle_timeout = this.idle_timeout;
        loop {
            match this.messages.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(message))) => {
                    if let Some(idle) = this.idle.as_mut() {
                        idle.as_mut().reset(deadline(idle_timeout));
                    }
                    match this.mapper.map(&this.account, &message) {
                        Ok(Some(event)) => return Poll::Ready(Some(Ok(event))),
                        Ok(None) => {}
                        Err(error) => return this.fail(error),
                    }
                }
                Poll::Ready(Some(Err(error))) => return this.fail(protocol_error(error)),
                Poll::Ready(None) => {
                    if this.mapper.stopped {
                        this.done = true;
                        return Poll::Ready(None);
                    }
                    return this.fail(ProviderError::Protocol {
                        message: "stream ended before messageStop".into(),
                    });
                }
                Poll::Pending => {
                    let idle = this
                        .idle
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle_timeout)));
                    if idle.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    return this.fail(ProviderError::Timeout {
                        message: format!(
                            "Bedrock sent no stream event for {} ms",
                            idle_timeout.as_millis()
                        ),
                    });
                }
            }
        }
    }
}

/// `now + timeout`, saturating: a configured "never" must not overflow.
fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

fn protocol_error(error: EventStreamError) -> ProviderError {
    ProviderError::Protocol {
        message: match error {
            // The transport error's own text (hyper's) says nothing useful to a client and
            // might change between versions; keep the client message stable.
            EventStreamError::Transport(_) => "reading the Bedrock event stream failed".into(),
            other => other.to_string(),
        },
    }
}

/// Turns messages into events, remembering which content blocks are tool calls.
#[derive(Debug, Default)]
struct EventMapper {
    /// `contentBlockIndex` of each tool block -> its tool-call index (0, 1, ...).
    tool_blocks: HashMap<u64, u32>,
    stopped: bool,
}

impl EventMapper {
    /// The event for `message`; `account` is named by errors its credentials caused.
    fn map(
        &mut self,
        account: &str,
        message: &Message,
    ) -> Result<Option<ChatEvent>, ProviderError> {
        let message_type = header(message, ":message-type");
        match message_type {
            Some("event") => self.map_event(message),
            Some("exception") => {
                let kind = header(message, ":exception-type").unwrap_or("unknownException");
                Err(stream_exception(account, kind, message.payload()))
            }
            // Smithy's unmodeled-error frames: `:error-code` and `:error-message` headers.
            Some("error") => Err(ProviderError::Upstream {
                message: format!(
                    "Bedrock stream error {}: {}",
                    header(message, ":error-code").unwrap_or("(no code)"),
                    header(message, ":error-message").unwrap_or(""),
                ),
            }),
            Some(other) => {
                tracing::debug!(
                    message_type = other,
                    "ignoring unknown event-stream message type"
                );
                Ok(None)
            }
            None => Err(ProviderError::Protocol {
                message: "event-stream message without :message-type".into(),
            }),
        }
    }

    fn map_event(&mut self, message: &Message) -> Result<Option<ChatEvent>, ProviderError> {
        let Some(event_type) = header(message, ":event-type") else {
            return Err(ProviderError::Protocol {
                message: "event-stream event without :event-type".into(),
            });
        };
        let payload = message.payload();
        match event_type {
            "messageStart" => Ok(Some(ChatEvent::MessageStart)),
            "contentBlockStart" => {
                let start: ContentBlockStartEvent = parse(event_type, payload)?;
                let Some(tool) = start.start.and_then(|s| s.tool_use) else {
                    return Ok(None);
                };
                let index =
                    u32::try_from(self.tool_blocks.len()).map_err(|_| ProviderError::Protocol {
                        message: "too many tool calls in one answer".into(),
                    })?;
                self.tool_blocks.insert(start.content_block_index, index);
                Ok(Some(ChatEvent::ToolCallStart {
                    index,
                    id: tool.tool_use_id,
                    name: tool.name,
                }))
            }
            "contentBlockDelta" => {
                let block: ContentBlockDeltaEvent = parse(event_type, payload)?;
                let delta = block.delta;
                if let Some(text) = delta.text {
                    return Ok(Some(ChatEvent::TextDelta(text)));
                }
                if let Some(tool) = delta.tool_use {
                    let Some(&index) = self.tool_blocks.get(&block.content_block_index) else {
                        return Err(ProviderError::Protocol {
                            message: format!(
                                "toolUse delta for content block {} that did not start a tool call",
                                block.content_block_index
                            ),
                        });
                    };
                    return Ok(Some(ChatEvent::ToolCallDelta {
                        index,
                        arguments: tool.input,
                    }));
                }
                // Signatures and redacted reasoning have no place in the domain's events.
                Ok(delta
                    .reasoning_content
                    .and_then(|r| r.text)
                    .map(ChatEvent::ReasoningDelta))
            }
            "messageStop" => {
                let stop: MessageStopEvent = parse(event_type, payload)?;
                self.stopped = true;
                Ok(Some(ChatEvent::Stop(StopReason::parse(&stop.stop_reason))))
            }
            "metadata" => {
                let metadata: MetadataEvent = parse(event_type, payload)?;
                Ok(Some(ChatEvent::Metadata {
                    usage: usage(metadata.usage.unwrap_or_default()),
                    guardrail_trace: metadata.trace.and_then(|t| t.guardrail),
                }))
            }
            // contentBlockStop carries nothing the domain needs; others are newer than us.
            _ => Ok(None),
        }
    }
}

fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

fn parse<'a, T: Deserialize<'a>>(event_type: &str, payload: &'a [u8]) -> Result<T, ProviderError> {
    // serde_json's messages name the field and position, never the payload's content.
    serde_json::from_slice(payload).map_err(|error| ProviderError::Protocol {
        message: format!("malformed {event_type} event from Bedrock: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::event_stream::{Header, HeaderValue};
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use hyper_util::rt::TokioIo;

    fn event(event_type: &str, payload: &str) -> Bytes {
        bedrock_sim::encode_frame(
            &[(":message-type", "event"), (":event-type", event_type)],
            payload.as_bytes(),
        )
        .unwrap()
    }

    /// Serves one streamed response over an in-memory HTTP/1.1 connection and returns the
    /// client's `Incoming` body, the sender that feeds it, and the client connection task.
    async fn incoming_body() -> (
        hyper::body::Incoming,
        tokio::sync::mpsc::Sender<Bytes>,
        tokio::task::JoinHandle<()>,
    ) {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let rx = std::sync::Mutex::new(Some(rx));
        let service = hyper::service::service_fn(move |_request| {
            let rx = rx.lock().unwrap().take().unwrap();
            let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
                let chunk = rx.recv().await?;
                Some((Ok::<_, std::convert::Infallible>(Frame::data(chunk)), rx))
            });
            async move {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(StreamBody::new(chunks)))
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server_io), service)
                .await;
        });
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(client_io))
                .await
                .unwrap();
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = hyper::Request::post("/model/m/converse-stream")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        (response.into_body(), tx, connection)
    }

    #[tokio::test]
    async fn hyper_body_is_decoded_frame_by_frame_and_released_on_drop() {
        let (body, tx, connection) = incoming_body().await;
        let mut events = chat_events("acct".into(), body, Duration::from_secs(60));

        tx.send(event("messageStart", r#"{"role":"assistant"}"#))
            .await
            .unwrap();
        assert_eq!(
            events.next().await.unwrap().unwrap(),
            ChatEvent::MessageStart
        );
        // The second event arrives only after the first was consumed: nothing waits for
        // the whole body.
        tx.send(event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
        ))
        .await
        .unwrap();
        assert_eq!(
            events.next().await.unwrap().unwrap(),
            ChatEvent::TextDelta("Hi".into())
        );

        drop(events);
        // Dropping the events dropped the body mid-response, so hyper closes the connection
        // and the server side stops reading from the channel.
        connection.await.unwrap();
        tx.closed().await;
    }

    #[test]
    fn exception_without_json_body_still_names_its_type() {
        let message = Message::new_from_parts(
            vec![
                Header::new(":message-type", HeaderValue::String("exception".into())),
                Header::new(
                    ":exception-type",
                    HeaderValue::String("internalServerException".into()),
                ),
            ],
            Bytes::from_static(b"not json"),
        );
        let mut mapper = EventMapper::default();
        assert_eq!(
            mapper.map("acct", &message),
            Err(ProviderError::Upstream {
                message: "Bedrock internalServerException: (no message)".into()
            })
        );
    }
}
