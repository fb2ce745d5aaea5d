//! ConverseStream events to domain [`ChatEvent`]s.
//!
//! Follows botocore's `ConverseStreamOutput` union: each event-stream message carries
//! `:message-type` (`event` or `exception`) and `:event-type` / `:exception-type`, with a JSON
//! payload (its types are in [`crate::wire`]; exception frames map through
//! [`crate::errors`]). Unknown event types and unknown JSON fields (real payloads carry a
//! random-length `p` padding field) are ignored, so newer Bedrock releases do not break the gateway.
//!
//! Reasoning deltas carry text, then the block's signature, or a whole redacted block; each
//! becomes its own event, in Bedrock's order. `messageStop` may carry the
//! `additionalModelResponseFields` the request asked for: they are sent just before `Stop`.
//! A request that forced a tool for structured output names it: that tool's block is the
//! answer, so its start is not sent, its argument deltas are text deltas, it takes no
//! tool-call index, and the `tool_use` stop it caused is `end_turn` (as in
//! [`crate::converse_response`]).
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
use gateway_core::{ChatEvent, ProviderError, StopReason};
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::time::{Instant, Sleep};

use crate::converse_response::{unwrapped_stop, usage};
use crate::errors::stream_exception;
use crate::event_stream::{EventStreamError, MessageStream};
use crate::retry::RetryReason;
use crate::wire::{
    ContentBlockDeltaEvent, ContentBlockStartEvent, MessageStopEvent, MetadataEvent,
};

/// The events of a ConverseStream response body.
pub(crate) type ResponseEvents =
    ConverseEvents<http_body_util::BodyDataStream<hyper::body::Incoming>>;

/// Decodes a ConverseStream response body into domain events.
///
/// The caller has already checked the HTTP status. `idle_timeout` bounds the wait for each
/// frame, the first one included; `unwrap_tool` names the forced tool whose arguments are the
/// answer's text. Unboxed, so the caller can ask [`ConverseEvents::retry_reason`] after a
/// failed first event.
pub(crate) fn chat_events(
    account: Arc<str>,
    body: hyper::body::Incoming,
    idle_timeout: Duration,
    unwrap_tool: Option<&'static str>,
) -> ResponseEvents {
    ConverseEvents::new(account, body.into_data_stream(), idle_timeout, unwrap_tool)
}

/// [`chat_events`] over any stream of body chunks, boxed; tests feed it arbitrary chunkings.
///
/// Must be polled inside a Tokio runtime (the idle timer is Tokio's).
#[cfg(any(test, feature = "test-util"))]
pub fn converse_stream_events<S, E>(
    account: Arc<str>,
    body: S,
    idle_timeout: Duration,
    unwrap_tool: Option<&'static str>,
) -> gateway_core::ChatEventStream
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    Box::pin(ConverseEvents::new(
        account,
        body,
        idle_timeout,
        unwrap_tool,
    ))
}

pub(crate) struct ConverseEvents<S> {
    account: Arc<str>,
    messages: MessageStream<S>,
    mapper: EventMapper,
    idle_timeout: Duration,
    /// Created on first poll, so constructing the stream needs no runtime; reset per frame
    /// rather than re-created, to keep one timer registration per stream.
    idle: Option<Pin<Box<Sleep>>>,
    done: bool,
    /// Why the error that ended the stream is worth another attempt, if it is.
    retry: Option<RetryReason>,
}

impl<S> ConverseEvents<S> {
    fn new(
        account: Arc<str>,
        body: S,
        idle_timeout: Duration,
        unwrap_tool: Option<&'static str>,
    ) -> Self {
        Self {
            account,
            messages: MessageStream::new(body),
            mapper: EventMapper::new(unwrap_tool),
            idle_timeout,
            idle: None,
            done: false,
            retry: None,
        }
    }

    /// After the stream failed: why another attempt may not fail alike (an exception frame
    /// the retry mode retries, silence, a broken connection), or `None`. Only the caller knows
    /// whether an attempt may still follow: none once an event reached the client.
    pub(crate) fn retry_reason(&self) -> Option<RetryReason> {
        self.retry
    }

    fn fail(
        &mut self,
        error: ProviderError,
        retry: Option<RetryReason>,
    ) -> Poll<Option<Result<ChatEvent, ProviderError>>> {
        tracing::debug!(account = %self.account, kind = error.kind(), %error, "ConverseStream failed");
        self.done = true;
        self.retry = retry;
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
        if let Some(event) = this.mapper.queued.take() {
            return Poll::Ready(Some(Ok(event)));
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
                        Err(error) => {
                            let retry = this.mapper.exception_retry.take();
                            return this.fail(error, retry);
                        }
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    // A connection that breaks or ends early may not do so again; a malformed
                    // frame would be malformed again.
                    let retry = matches!(
                        error,
                        EventStreamError::Transport(_) | EventStreamError::Truncated { .. }
                    )
                    .then_some(RetryReason::Connection);
                    return this.fail(protocol_error(error), retry);
                }
                Poll::Ready(None) => {
                    if this.mapper.stopped {
                        this.done = true;
                        return Poll::Ready(None);
                    }
                    return this.fail(
                        ProviderError::Protocol {
                            message: "stream ended before messageStop".into(),
                        },
                        None,
                    );
                }
                Poll::Pending => {
                    let idle = this
                        .idle
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle_timeout)));
                    if idle.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    return this.fail(
                        ProviderError::Timeout {
                            message: format!(
                                "Bedrock sent no stream event for {} ms",
                                idle_timeout.as_millis()
                            ),
                        },
                        Some(RetryReason::Timeout),
                    );
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
    /// The forced tool whose block is the answer's text, if the request forced one.
    unwrap_tool: Option<&'static str>,
    /// `contentBlockIndex` of each tool block -> what its deltas become.
    tool_blocks: HashMap<u64, ToolBlock>,
    /// Tool calls started so far; the next one's index.
    tool_calls: u32,
    /// A forced tool's block was turned into text.
    unwrapped: bool,
    /// An event to yield before reading the next frame (one frame made two events).
    queued: Option<ChatEvent>,
    stopped: bool,
    /// The retry the last exception frame is worth ([`crate::errors::EXCEPTIONS`]).
    exception_retry: Option<RetryReason>,
}

/// What a `toolUse` content block is to the client.
#[derive(Debug, Clone, Copy)]
enum ToolBlock {
    /// A tool call with this index.
    Call(u32),
    /// The forced tool: its arguments are the answer's text.
    Answer,
}

impl EventMapper {
    fn new(unwrap_tool: Option<&'static str>) -> Self {
        Self {
            unwrap_tool,
            ..Self::default()
        }
    }

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
                let (error, retry) = stream_exception(account, kind, message.payload());
                self.exception_retry = retry;
                Err(error)
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
                if Some(tool.name.as_str()) == self.unwrap_tool {
                    self.tool_blocks
                        .insert(start.content_block_index, ToolBlock::Answer);
                    self.unwrapped = true;
                    return Ok(None);
                }
                let index = self.tool_calls;
                self.tool_calls = index
                    .checked_add(1)
                    .ok_or_else(|| ProviderError::Protocol {
                        message: "too many tool calls in one answer".into(),
                    })?;
                self.tool_blocks
                    .insert(start.content_block_index, ToolBlock::Call(index));
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
                    let Some(&block_kind) = self.tool_blocks.get(&block.content_block_index) else {
                        return Err(ProviderError::Protocol {
                            message: format!(
                                "toolUse delta for content block {} that did not start a tool call",
                                block.content_block_index
                            ),
                        });
                    };
                    return Ok(match block_kind {
                        ToolBlock::Call(index) => Some(ChatEvent::ToolCallDelta {
                            index,
                            arguments: tool.input,
                        }),
                        // Bedrock opens a tool's arguments with an empty delta; as text it
                        // would be an empty chunk.
                        ToolBlock::Answer if tool.input.is_empty() => None,
                        ToolBlock::Answer => Some(ChatEvent::TextDelta(tool.input)),
                    });
                }
                // A union: exactly one member is set.
                Ok(delta.reasoning_content.and_then(|reasoning| {
                    reasoning
                        .text
                        .map(ChatEvent::ReasoningDelta)
                        .or_else(|| reasoning.signature.map(ChatEvent::ReasoningSignature))
                        .or_else(|| reasoning.redacted_content.map(ChatEvent::RedactedReasoning))
                }))
            }
            "messageStop" => {
                let stop: MessageStopEvent = parse(event_type, payload)?;
                self.stopped = true;
                let reason = unwrapped_stop(
                    StopReason::parse(&stop.stop_reason),
                    self.unwrapped,
                    self.tool_calls == 0,
                );
                let stop_event = ChatEvent::Stop(reason);
                Ok(Some(match stop.additional_model_response_fields {
                    Some(fields) => {
                        self.queued = Some(stop_event);
                        ChatEvent::AdditionalResponseFields(fields)
                    }
                    None => stop_event,
                }))
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
        let mut events = chat_events("acct".into(), body, Duration::from_secs(60), None);

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

    fn mapped(mapper: &mut EventMapper, event_type: &str, payload: &str) -> Option<ChatEvent> {
        let message = Message::new_from_parts(
            vec![
                Header::new(":message-type", HeaderValue::String("event".into())),
                Header::new(
                    ":event-type",
                    HeaderValue::String(event_type.to_owned().into()),
                ),
            ],
            Bytes::copy_from_slice(payload.as_bytes()),
        );
        mapper.map("acct", &message).unwrap()
    }

    #[test]
    fn the_forced_tool_takes_no_tool_call_index_and_other_tools_keep_theirs() {
        let mut mapper = EventMapper::new(Some("json_response"));
        let start = |index: u64, name: &str| {
            format!(
                r#"{{"contentBlockIndex":{index},"start":{{"toolUse":{{"toolUseId":"t{index}","name":"{name}"}}}}}}"#
            )
        };
        let delta = |index: u64, input: &str| {
            format!(
                r#"{{"contentBlockIndex":{index},"delta":{{"toolUse":{{"input":"{input}"}}}}}}"#
            )
        };
        assert_eq!(
            mapped(&mut mapper, "contentBlockStart", &start(0, "json_response")),
            None
        );
        assert_eq!(
            mapped(&mut mapper, "contentBlockDelta", &delta(0, "")),
            None
        );
        assert_eq!(
            mapped(&mut mapper, "contentBlockDelta", &delta(0, "{}")),
            Some(ChatEvent::TextDelta("{}".into()))
        );
        assert_eq!(
            mapped(&mut mapper, "contentBlockStart", &start(1, "get_weather")),
            Some(ChatEvent::ToolCallStart {
                index: 0,
                id: "t1".into(),
                name: "get_weather".into()
            })
        );
        assert_eq!(
            mapped(&mut mapper, "contentBlockDelta", &delta(1, "{}")),
            Some(ChatEvent::ToolCallDelta {
                index: 0,
                arguments: "{}".into()
            })
        );
        // A real tool call was made, so its stop reason stands.
        assert_eq!(
            mapped(&mut mapper, "messageStop", r#"{"stopReason":"tool_use"}"#),
            Some(ChatEvent::Stop(StopReason::ToolUse))
        );
    }

    #[test]
    fn without_a_forced_tool_a_tool_of_that_name_is_a_tool_call() {
        let mut mapper = EventMapper::new(None);
        assert_eq!(
            mapped(
                &mut mapper,
                "contentBlockStart",
                r#"{"contentBlockIndex":0,"start":{"toolUse":{"toolUseId":"t0","name":"json_response"}}}"#
            ),
            Some(ChatEvent::ToolCallStart {
                index: 0,
                id: "t0".into(),
                name: "json_response".into()
            })
        );
        assert_eq!(
            mapped(&mut mapper, "messageStop", r#"{"stopReason":"tool_use"}"#),
            Some(ChatEvent::Stop(StopReason::ToolUse))
        );
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
