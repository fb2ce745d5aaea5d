//! Bodies: reading request bodies under a limit, and the one response body type.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::sse::SseBody;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    TooLarge,
    /// The whole body did not arrive within the time allowed.
    TimedOut,
    /// The client broke off or sent a malformed body.
    Unreadable,
}

/// Reads a whole request body within `time`, refusing it as soon as it passes `limit` bytes.
///
/// `declared` is the `Content-Length`, already checked against the limit; it sizes the buffer
/// once. A body arriving in one frame is returned without copying.
pub(crate) async fn read_limited<B>(
    body: B,
    declared: Option<u64>,
    limit: usize,
    time: Duration,
) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes> + Unpin,
{
    // One deadline for the whole body, not per frame: a client trickling a byte at a time
    // must not hold its slot for longer than this.
    tokio::time::timeout(time, read_all(body, declared, limit))
        .await
        .unwrap_or(Err(ReadError::TimedOut))
}

async fn read_all<B>(mut body: B, declared: Option<u64>, limit: usize) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut first: Option<Bytes> = None;
    let mut joined: Option<Vec<u8>> = None;
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| ReadError::Unreadable)?.into_data() else {
            continue; // trailers
        };
        total = total.saturating_add(data.len());
        if total > limit {
            return Err(ReadError::TooLarge);
        }
        match (&mut joined, first.take()) {
            (Some(buffer), _) => buffer.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (None, Some(previous)) => {
                let capacity = declared
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(total)
                    .max(total)
                    .min(limit);
                let mut buffer = Vec::with_capacity(capacity);
                buffer.extend_from_slice(&previous);
                buffer.extend_from_slice(&data);
                joined = Some(buffer);
            }
        }
    }
    Ok(match joined {
        Some(buffer) => buffer.into(),
        None => first.unwrap_or_default(),
    })
}

/// Every response the server sends: a complete body or a stream of server-sent events.
#[derive(Debug)]
pub(crate) enum ResponseBody {
    Full(Option<Bytes>),
    Sse(SseBody),
}

impl ResponseBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Some(bytes.into()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Sse(stream) => Pin::new(stream).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Sse(stream) => stream.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Sse(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{stream, StreamExt};
    use http_body_util::{Full, StreamBody};

    /// Long enough never to matter unless a test waits on purpose.
    const TIME: Duration = Duration::from_secs(60);

    fn chunked(
        parts: &[&'static [u8]],
    ) -> StreamBody<impl futures_core::Stream<Item = Result<Frame<Bytes>, Infallible>> + Unpin>
    {
        let frames: Vec<_> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p))))
            .collect();
        StreamBody::new(stream::iter(frames))
    }

    #[tokio::test]
    async fn one_frame_is_returned_as_is() {
        let body = Full::new(Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(
            read_limited(body, Some(7), 7, TIME).await.unwrap(),
            &b"{\"a\":1}"[..]
        );
    }

    #[tokio::test]
    async fn frames_are_joined_in_order() {
        let body = chunked(&[b"ab", b"cd", b"e"]);
        assert_eq!(
            read_limited(body, None, 5, TIME).await.unwrap(),
            &b"abcde"[..]
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_while_reading() {
        let body = chunked(&[b"abc", b"def"]);
        assert_eq!(
            read_limited(body, None, 5, TIME).await,
            Err(ReadError::TooLarge)
        );
    }

    #[tokio::test]
    async fn a_body_that_does_not_end_in_time_is_refused() {
        let frames = stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"ab")))]);
        let endless = StreamBody::new(frames.chain(stream::pending()));
        assert_eq!(
            read_limited(endless, None, 5, Duration::from_millis(1)).await,
            Err(ReadError::TimedOut)
        );
    }

    #[tokio::test]
    async fn an_empty_body_is_empty() {
        let body = chunked(&[]);
        assert_eq!(
            read_limited(body, None, 5, TIME).await.unwrap(),
            Bytes::new()
        );
    }
}
