//! The response body type: a full body, a list of precomputed frames, a body cut off with an
//! error, or a channel fed frame by frame by a producer task. A channel body that is dropped
//! before it finished (the client went away) records the instant in the [`DropLog`].

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{mpsc, Notify};

/// The error a simulated body ends with when the script cuts it (hyper then closes the
/// connection without finishing the message).
#[derive(Debug, thiserror::Error)]
#[error("bedrock-sim cut the response body")]
pub struct BodyCut;

/// One chunk sent by a stream producer.
pub(crate) type Chunk = Result<Bytes, BodyCut>;

/// Instants at which unfinished streaming bodies were dropped, consumed by
/// [`crate::SimHandle::wait_stream_dropped`].
#[derive(Debug, Default)]
pub(crate) struct DropLog {
    drops: Mutex<VecDeque<Instant>>,
    notify: Notify,
}

impl DropLog {
    fn record(&self, at: Instant) {
        self.drops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(at);
        self.notify.notify_one();
    }

    pub(crate) async fn next(&self) -> Instant {
        loop {
            if let Some(at) = self
                .drops
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()
            {
                return at;
            }
            self.notify.notified().await;
        }
    }
}

/// The body of every simulator response.
#[derive(Debug)]
pub struct SimBody {
    kind: Kind,
    /// Bytes hyper may still hold unsent: the response head at first, then data returned
    /// since the body last reported `Pending`.
    unflushed: bool,
    /// An error held back for one poll so hyper flushes the head and data before it.
    stashed: Option<BodyCut>,
    /// Frames still to send before the body is cut ([`crate::Fault::CutAfterEvents`]).
    frames_before_cut: Option<usize>,
}

#[derive(Debug)]
enum Kind {
    Full(Option<Bytes>),
    Frames(VecDeque<Bytes>),
    Cut(Option<Bytes>, bool),
    Channel {
        rx: mpsc::Receiver<Chunk>,
        done: bool,
        drops: Arc<DropLog>,
    },
}

impl SimBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            unflushed: true,
            stashed: None,
            frames_before_cut: None,
            kind: Kind::Full(Some(bytes.into())),
        }
    }

    pub(crate) fn empty() -> Self {
        Self {
            unflushed: true,
            stashed: None,
            frames_before_cut: None,
            kind: Kind::Full(None),
        }
    }

    pub(crate) fn frames(frames: impl IntoIterator<Item = Bytes>) -> Self {
        Self {
            unflushed: true,
            stashed: None,
            frames_before_cut: None,
            kind: Kind::Frames(frames.into_iter().collect()),
        }
    }

    /// Sends `bytes`, then fails.
    pub(crate) fn cut(bytes: Bytes) -> Self {
        Self {
            unflushed: true,
            stashed: None,
            frames_before_cut: None,
            kind: Kind::Cut(Some(bytes), false),
        }
    }

    pub(crate) fn channel(rx: mpsc::Receiver<Chunk>, drops: Arc<DropLog>) -> Self {
        Self {
            unflushed: true,
            stashed: None,
            frames_before_cut: None,
            kind: Kind::Channel {
                rx,
                done: false,
                drops,
            },
        }
    }
}

impl SimBody {
    /// This body cut after `frames` frames: a stream body sends at most that many frames (each
    /// chunk of a stream is one frame), then fails, also if it had fewer; a full body (a
    /// Converse answer) sends its first half, then fails.
    pub(crate) fn cut_after_frames(mut self, frames: usize) -> Self {
        if let Kind::Full(bytes) = &mut self.kind {
            let half = bytes.take().map(|b| b.slice(..b.len() / 2));
            self.kind = Kind::Cut(half, false);
        } else {
            self.frames_before_cut = Some(frames);
        }
        self
    }

    /// Switches to the cut: the error is sent now. A channel's producer sees its receiver gone
    /// and stops; that is not a client leaving, so it is not logged as a drop.
    fn cut_now(&mut self) -> BodyCut {
        self.frames_before_cut = None;
        self.kind = Kind::Cut(None, true);
        BodyCut
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = BodyCut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyCut>>> {
        let this = self.get_mut();
        if let Some(cut) = this.stashed.take() {
            return Poll::Ready(Some(Err(cut)));
        }
        let item = if this.frames_before_cut == Some(0) {
            Some(Err(this.cut_now()))
        } else {
            match &mut this.kind {
                Kind::Full(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
                Kind::Frames(frames) => frames.pop_front().map(Ok),
                Kind::Cut(bytes, failed) => match bytes.take() {
                    Some(b) => Some(Ok(b)),
                    None if !*failed => {
                        *failed = true;
                        Some(Err(BodyCut))
                    }
                    None => None,
                },
                Kind::Channel { rx, done, .. } => match rx.poll_recv(cx) {
                    Poll::Ready(item) => {
                        if !matches!(item, Some(Ok(_))) {
                            *done = true;
                        }
                        item
                    }
                    Poll::Pending => {
                        // hyper flushes what it buffered whenever the body is pending.
                        this.unflushed = false;
                        return Poll::Pending;
                    }
                },
            }
        };
        let item = match item {
            // Fewer frames than the cut allows: cut instead of ending.
            None if this.frames_before_cut.is_some() => Some(Err(this.cut_now())),
            Some(Ok(bytes)) => {
                if let Some(left) = &mut this.frames_before_cut {
                    *left = left.saturating_sub(1);
                }
                Some(Ok(bytes))
            }
            other => other,
        };
        match item {
            Some(Ok(bytes)) => {
                this.unflushed = true;
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Some(Err(cut)) if this.unflushed => {
                // Make hyper flush the bytes sent so far before the error aborts the
                // connection: report "pending" once and fail on the next poll.
                this.unflushed = false;
                this.stashed = Some(cut);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(Err(cut)) => Poll::Ready(Some(Err(cut))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.stashed.is_some() || self.frames_before_cut.is_some() {
            return false;
        }
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Frames(frames) => frames.is_empty(),
            Kind::Cut(..) => false,
            Kind::Channel { done, .. } => *done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl Drop for SimBody {
    fn drop(&mut self) {
        if let Kind::Channel {
            done: false, drops, ..
        } = &self.kind
        {
            drops.record(Instant::now());
        }
    }
}
