//! ConverseStream limits: oversized frames are refused at the prelude, silence becomes a
//! timeout, and a stream ends after its first error.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions fail the test on bad input, like the tests themselves"
)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use gateway_adapter_bedrock::testing::{
    converse_stream_events, EventStreamError, MessageStream, MAX_FRAME_LEN,
};
use gateway_core::{ChatEvent, ProviderError};
use tokio::sync::mpsc;
use tokio::time::Instant;

fn event_frame(event_type: &str, payload: &str) -> Bytes {
    bedrock_sim::encode_frame(
        &[(":message-type", "event"), (":event-type", event_type)],
        payload.as_bytes(),
    )
    .unwrap()
}

fn prelude(total_length: u32) -> Bytes {
    let mut out = Vec::new();
    out.extend_from_slice(&total_length.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out.into()
}

/// Yields `chunks`, then never ends: the upstream keeps the connection open and says nothing.
fn then_silence(
    chunks: Vec<Bytes>,
) -> impl futures_core::Stream<Item = Result<Bytes, Infallible>> + Unpin + Send + 'static {
    futures_util::stream::iter(chunks.into_iter().map(Ok)).chain(futures_util::stream::pending())
}

#[test]
fn oversized_prelude_is_refused_after_its_twelve_bytes_without_waiting_for_more() {
    let first_twelve = prelude(MAX_FRAME_LEN + 1);
    assert_eq!(first_twelve.len(), 12);
    let mut messages = MessageStream::new(then_silence(vec![first_twelve]));
    // The body never sends more, so an answer without waiting proves the decoder judged the
    // frame on its prelude alone.
    let first = messages
        .next()
        .now_or_never()
        .expect("decided without more data");
    assert!(matches!(
        first,
        Some(Err(EventStreamError::FrameTooLarge { length })) if length == MAX_FRAME_LEN + 1
    ));
    assert!(messages.next().now_or_never().unwrap().is_none());
}

#[tokio::test]
async fn oversized_prelude_becomes_a_protocol_error() {
    let mut events = converse_stream_events(
        Arc::from("acct"),
        then_silence(vec![prelude(u32::MAX)]),
        Duration::from_secs(60),
        None,
    );
    let first = events
        .next()
        .now_or_never()
        .expect("decided without more data");
    assert!(matches!(first, Some(Err(ProviderError::Protocol { .. }))));
    assert!(events.next().await.is_none());
}

/// A body fed by the test: each chunk arrives exactly when the test sends it, and the body
/// stays open (silent) while the sender is alive.
fn channel_body(
    mut rx: mpsc::UnboundedReceiver<Bytes>,
) -> impl futures_core::Stream<Item = Result<Bytes, Infallible>> + Unpin + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|chunk| chunk.map(Ok)))
}

// Paused clock: when every task is waiting, Tokio jumps to the next timer, so the 30 s timeout
// costs no real time. The body never yields again, so the only way this test ends is the idle
// timer firing.
#[tokio::test(start_paused = true)]
async fn no_frame_within_the_idle_timeout_is_a_timeout() {
    let mut events = converse_stream_events(
        Arc::from("acct"),
        then_silence(vec![event_frame("messageStart", r#"{"role":"assistant"}"#)]),
        Duration::from_secs(30),
        None,
    );
    let start = Instant::now();
    assert_eq!(
        events.next().await.unwrap().unwrap(),
        ChatEvent::MessageStart
    );
    assert_eq!(
        events.next().await.unwrap(),
        Err(ProviderError::Timeout {
            message: "Bedrock sent no stream event for 30000 ms".into()
        })
    );
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert!(events.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn each_frame_restarts_the_idle_timer() {
    const IDLE: Duration = Duration::from_millis(100);
    const GAP: Duration = Duration::from_millis(60);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut events = converse_stream_events(Arc::from("acct"), channel_body(rx), IDLE, None);
    let start = Instant::now();
    // The first poll finds no data and arms the timer.
    assert!(events.next().now_or_never().is_none());

    let text_delta = |text: &str| {
        event_frame(
            "contentBlockDelta",
            &format!(r#"{{"contentBlockIndex":0,"delta":{{"text":"{text}"}}}}"#),
        )
    };
    let frames = [
        (
            event_frame("messageStart", r#"{"role":"assistant"}"#),
            ChatEvent::MessageStart,
        ),
        (text_delta("a"), ChatEvent::TextDelta("a".into())),
        (text_delta("b"), ChatEvent::TextDelta("b".into())),
        (text_delta("c"), ChatEvent::TextDelta("c".into())),
        (text_delta("d"), ChatEvent::TextDelta("d".into())),
    ];
    for (frame, expected) in frames {
        // Each gap is shorter than the timeout; together they are three times as long.
        tokio::time::advance(GAP).await;
        assert!(
            events.next().now_or_never().is_none(),
            "no data yet, and not timed out"
        );
        tx.send(frame).unwrap();
        let event = events.next().now_or_never().expect("the frame is ready");
        assert_eq!(event, Some(Ok(expected)));
    }
    assert_eq!(start.elapsed(), GAP * 5);
    assert!(start.elapsed() > IDLE * 2);

    // Silence from the last frame on: the timeout is measured from that frame.
    tokio::time::advance(IDLE - Duration::from_millis(1)).await;
    assert!(events.next().now_or_never().is_none());
    assert_eq!(
        events.next().await.unwrap(),
        Err(ProviderError::Timeout {
            message: "Bedrock sent no stream event for 100 ms".into()
        })
    );
    assert_eq!(start.elapsed(), GAP * 5 + IDLE);
    assert!(events.next().await.is_none());
    drop(tx);
}

#[tokio::test]
async fn transport_error_is_a_protocol_error_and_ends_the_stream() {
    let body = futures_util::stream::iter(vec![
        Ok(event_frame("messageStart", "{}")),
        Err(std::io::Error::other("connection reset")),
        Ok(event_frame("messageStop", r#"{"stopReason":"end_turn"}"#)),
    ]);
    let events: Vec<_> =
        converse_stream_events(Arc::from("acct"), body, Duration::from_secs(60), None)
            .collect()
            .await;
    assert_eq!(
        events,
        vec![
            Ok(ChatEvent::MessageStart),
            Err(ProviderError::Protocol {
                message: "reading the Bedrock event stream failed".into()
            }),
        ]
    );
}
