//! Incremental decoder for `application/vnd.amazon.eventstream` bodies (ConverseStream).
//!
//! Frame parsing and both CRC checks are `aws-smithy-eventstream`'s. In front of it sits a
//! prelude check, because the smithy decoder accepts any announced length: a peer that
//! announces a 4 GiB frame would make it buffer until memory runs out. Each prelude is
//! checked as soon as its 12 bytes are buffered (prelude CRC, then a length between 16 bytes
//! and 16 MiB, the AWS C runtime's cap), before any byte of its frame body is kept.
//!
//! A frame whose headers are all strings (every frame Bedrock sends) is read by
//! [`read_string_frame`] without copying: names, values and payload are slices of the frame,
//! where the smithy reader copies each into a new allocation (11 allocations a streamed delta
//! in the profile, docs/benchmarks.md). It takes a frame only when it can read it exactly as the
//! smithy reader would (lengths, message CRC, UTF-8) and hands every other frame, malformed
//! ones included, to the smithy decoder, so errors stay the smithy decoder's.
//!
//! [`FrameDecoder`] is the push-style core; [`MessageStream`] drives it from any stream of
//! byte chunks, yielding each message as soon as its last byte arrived.

use std::error::Error as StdError;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use aws_smithy_types::str_bytes::StrBytes;
use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;
use thiserror::Error;

/// Bytes of a prelude: total length, headers length, prelude CRC.
pub const PRELUDE_LEN: usize = 12;
/// The smallest possible frame: a prelude and the message CRC, no headers, no payload.
pub const MIN_FRAME_LEN: u32 = 16;
/// The largest frame accepted (16 MiB, as in the AWS C event-stream library).
pub const MAX_FRAME_LEN: u32 = 16 * 1024 * 1024;

/// A boxed transport error, whatever the body's error type was.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Why an event stream could not be decoded. Nothing of the payload is quoted, so these are
/// safe to log.
#[derive(Debug, Error)]
pub enum EventStreamError {
    #[error("event-stream prelude CRC mismatch (computed {computed:#010x}, frame carries {carried:#010x})")]
    PreludeCrc { computed: u32, carried: u32 },
    #[error("event-stream message CRC mismatch (computed {computed:#010x}, frame carries {carried:#010x})")]
    MessageCrc { computed: u32, carried: u32 },
    #[error(
        "event-stream frame announces {length} bytes, more than the {MAX_FRAME_LEN}-byte limit"
    )]
    FrameTooLarge { length: u32 },
    #[error(
        "event-stream frame announces {length} bytes, less than the {MIN_FRAME_LEN}-byte minimum"
    )]
    FrameTooShort { length: u32 },
    /// The frame's lengths and CRCs were right but its headers could not be parsed.
    #[error("malformed event-stream frame: {reason}")]
    Malformed { reason: String },
    /// The body ended with part of a frame buffered.
    #[error("upstream closed the stream mid-frame")]
    Truncated { buffered: usize },
    #[error("reading the event stream failed: {0}")]
    Transport(#[source] BoxError),
}

/// Push-style decoder: feed chunks with [`push`](Self::push), take messages with
/// [`decode`](Self::decode) until it returns `Ok(None)`, and call [`finish`](Self::finish)
/// when the input ends. After an error the input is unusable: frames have no resync marker.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: BytesMut,
    /// Length of the frame at the head of `buffer`, once its prelude passed the checks.
    frame_len: Option<usize>,
    smithy: MessageFrameDecoder,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed. A bad prelude is
    /// reported as soon as its 12 bytes are buffered.
    pub fn decode(&mut self) -> Result<Option<Message>, EventStreamError> {
        let frame_len = match self.frame_len {
            Some(len) => len,
            None => {
                let Some(prelude) = self.buffer.get(..PRELUDE_LEN) else {
                    return Ok(None);
                };
                let len = check_prelude(prelude)?;
                self.frame_len = Some(len);
                len
            }
        };
        if self.buffer.len() < frame_len {
            return Ok(None);
        }
        self.frame_len = None;
        let frame = self.buffer.split_to(frame_len).freeze();
        if let Some(message) = read_string_frame(&frame) {
            return Ok(Some(message));
        }
        // Handing the smithy decoder exactly one frame keeps its internal state trivially in
        // step with ours (it resets after every complete frame or error).
        match self.smithy.decode_frame(frame.clone()) {
            Ok(DecodedFrame::Complete(message)) => Ok(Some(message)),
            Ok(DecodedFrame::Incomplete) => Err(EventStreamError::Malformed {
                reason: "decoder wanted more bytes than the prelude announced".into(),
            }),
            Err(error) => Err(classify(&frame, &error)),
        }
    }

    /// Call when the input ended: an error if part of a frame is still buffered.
    pub fn finish(&self) -> Result<(), EventStreamError> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            Err(EventStreamError::Truncated {
                buffered: self.buffer.len(),
            })
        }
    }
}

/// Checks a 12-byte prelude and returns the frame's total length.
fn check_prelude(mut prelude: &[u8]) -> Result<usize, EventStreamError> {
    let computed = crc32fast::hash(&prelude[..8]);
    let length = prelude.get_u32();
    let _headers_len = prelude.get_u32();
    let carried = prelude.get_u32();
    if computed != carried {
        return Err(EventStreamError::PreludeCrc { computed, carried });
    }
    if length > MAX_FRAME_LEN {
        return Err(EventStreamError::FrameTooLarge { length });
    }
    if length < MIN_FRAME_LEN {
        return Err(EventStreamError::FrameTooShort { length });
    }
    // The headers length is checked against the frame length by the smithy decoder.
    usize::try_from(length).map_err(|_| EventStreamError::FrameTooLarge { length })
}

/// Event-stream header value type 7: a UTF-8 string with a 16-bit length.
const STRING_HEADER: u8 = 7;

/// A frame whose prelude passed [`check_prelude`], read without copying when its message CRC
/// is right and every header is a string that ends inside the headers section; `None` for
/// anything else (other header types, bad lengths, bad CRC, bad UTF-8), which the smithy
/// decoder then reads or refuses. What it returns equals what the smithy decoder returns for
/// the same bytes (tested over arbitrary messages).
fn read_string_frame(frame: &Bytes) -> Option<Message> {
    let total = frame.len();
    let (body, carried) = frame.split_at(total.checked_sub(4)?);
    if crc32fast::hash(body) != u32::from_be_bytes(carried.try_into().ok()?) {
        return None;
    }
    let headers_len =
        usize::try_from(u32::from_be_bytes(frame.get(4..8)?.try_into().ok()?)).ok()?;
    // As the smithy reader: 0 or at least 2 bytes of headers, inside the frame.
    if headers_len == 1 || headers_len > total.checked_sub(MIN_FRAME_LEN as usize)? {
        return None;
    }
    let headers_end = PRELUDE_LEN + headers_len;
    let mut headers = Vec::with_capacity(4);
    let mut at = PRELUDE_LEN;
    while at < headers_end {
        let name_len = usize::from(*frame.get(at)?);
        let name_start = at + 1;
        let type_at = name_start + name_len;
        if *frame.get(type_at)? != STRING_HEADER {
            return None;
        }
        let value_len = usize::from(u16::from_be_bytes(
            frame.get(type_at + 1..type_at + 3)?.try_into().ok()?,
        ));
        let value_start = type_at + 3;
        let end = value_start + value_len;
        if end > headers_end {
            return None;
        }
        let name = StrBytes::try_from(frame.slice(name_start..type_at)).ok()?;
        let value = StrBytes::try_from(frame.slice(value_start..end)).ok()?;
        headers.push(Header::new(name, HeaderValue::String(value)));
        at = end;
    }
    Some(Message::new_from_parts(
        headers,
        frame.slice(headers_end..total - 4),
    ))
}

/// The smithy error is opaque; the message CRC is recomputed only on this failure path, to
/// tell corruption from a well-framed but unparsable message.
fn classify(frame: &Bytes, error: &aws_smithy_eventstream::error::Error) -> EventStreamError {
    let (body, mut crc) = frame.split_at(frame.len() - 4);
    let computed = crc32fast::hash(body);
    let carried = crc.get_u32();
    if computed == carried {
        EventStreamError::Malformed {
            reason: error.to_string(),
        }
    } else {
        EventStreamError::MessageCrc { computed, carried }
    }
}

/// Decodes a stream of byte chunks into event-stream messages, one frame at a time.
///
/// Ends after the first error (there is no way to find the next frame boundary) and reports
/// a body that ends mid-frame as [`EventStreamError::Truncated`]. Dropping it drops `body`.
#[derive(Debug)]
pub struct MessageStream<S> {
    body: S,
    decoder: FrameDecoder,
    done: bool,
}

impl<S> MessageStream<S> {
    pub fn new(body: S) -> Self {
        Self {
            body,
            decoder: FrameDecoder::new(),
            done: false,
        }
    }

    fn fail(&mut self, error: EventStreamError) -> Poll<Option<Result<Message, EventStreamError>>> {
        self.done = true;
        Poll::Ready(Some(Err(error)))
    }
}

impl<S, E> Stream for MessageStream<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BoxError>,
{
    type Item = Result<Message, EventStreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            // Decode before reading more, so a message (or a bad prelude) is reported as soon
            // as its bytes are in, never after waiting on the next chunk.
            match this.decoder.decode() {
                Ok(Some(message)) => return Poll::Ready(Some(Ok(message))),
                Ok(None) => {}
                Err(error) => return this.fail(error),
            }
            match ready!(this.body.poll_next_unpin(cx)) {
                Some(Ok(chunk)) => this.decoder.push(&chunk),
                Some(Err(error)) => return this.fail(EventStreamError::Transport(error.into())),
                None => {
                    this.done = true;
                    return match this.decoder.finish() {
                        Ok(()) => Poll::Ready(None),
                        Err(error) => Poll::Ready(Some(Err(error))),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::{read_message_from, write_message_to};

    fn frame(payload: &str) -> Vec<u8> {
        let message = Message::new_from_parts(
            vec![Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            )],
            Bytes::copy_from_slice(payload.as_bytes()),
        );
        let mut out = Vec::new();
        write_message_to(&message, &mut out).unwrap();
        out
    }

    fn prelude(length: u32, headers_len: u32) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&headers_len.to_be_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    #[test]
    fn decodes_frames_split_anywhere() {
        let mut bytes = frame("{\"a\":1}");
        bytes.extend(frame("{\"b\":2}"));
        for split in 0..=bytes.len() {
            let mut decoder = FrameDecoder::new();
            let mut payloads = Vec::new();
            for part in [&bytes[..split], &bytes[split..]] {
                decoder.push(part);
                while let Some(message) = decoder.decode().unwrap() {
                    payloads.push(message.payload().clone());
                }
            }
            decoder.finish().unwrap();
            assert_eq!(payloads, ["{\"a\":1}", "{\"b\":2}"], "split at {split}");
        }
    }

    #[test]
    fn oversized_prelude_is_refused_after_exactly_twelve_bytes() {
        let mut decoder = FrameDecoder::new();
        let bytes = prelude(MAX_FRAME_LEN + 1, 0);
        decoder.push(&bytes[..11]);
        assert!(decoder.decode().unwrap().is_none());
        decoder.push(&bytes[11..]);
        assert!(matches!(
            decoder.decode(),
            Err(EventStreamError::FrameTooLarge { length }) if length == MAX_FRAME_LEN + 1
        ));
    }

    #[test]
    fn largest_allowed_frame_waits_for_its_body() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&prelude(MAX_FRAME_LEN, 0));
        assert!(decoder.decode().unwrap().is_none());
        assert!(matches!(
            decoder.finish(),
            Err(EventStreamError::Truncated { buffered: 12 })
        ));
    }

    #[test]
    fn frame_shorter_than_the_minimum_is_refused() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&prelude(15, 0));
        assert!(matches!(
            decoder.decode(),
            Err(EventStreamError::FrameTooShort { length: 15 })
        ));
    }

    #[test]
    fn corrupt_prelude_crc_is_refused_before_the_body() {
        let mut bytes = prelude(MAX_FRAME_LEN + 1, 0);
        bytes[11] ^= 0xff;
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        assert!(matches!(
            decoder.decode(),
            Err(EventStreamError::PreludeCrc { .. })
        ));
    }

    #[test]
    fn corrupt_message_crc_and_bad_headers_are_told_apart() {
        let mut corrupt = frame("{}");
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        let mut decoder = FrameDecoder::new();
        decoder.push(&corrupt);
        assert!(matches!(
            decoder.decode(),
            Err(EventStreamError::MessageCrc { .. })
        ));

        // Headers length 1 is impossible; lengths and CRCs are otherwise right.
        let mut malformed = prelude(17, 1);
        malformed.push(0);
        let crc = crc32fast::hash(&malformed);
        malformed.extend_from_slice(&crc.to_be_bytes());
        let mut decoder = FrameDecoder::new();
        decoder.push(&malformed);
        assert!(matches!(
            decoder.decode(),
            Err(EventStreamError::Malformed { .. })
        ));
    }

    /// Decodes `bytes` handed over in the pieces cut at `cuts`: every message in order,
    /// then the error that stopped it or the end-of-input check.
    fn decode_in_pieces(
        bytes: &[u8],
        cuts: &[usize],
    ) -> (Vec<Message>, Result<(), EventStreamError>) {
        let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(bytes.len());
        let mut decoder = FrameDecoder::new();
        let mut messages = Vec::new();
        let mut start = 0;
        for cut in cuts {
            decoder.push(&bytes[start..cut]);
            start = cut;
            loop {
                match decoder.decode() {
                    Ok(Some(message)) => messages.push(message),
                    Ok(None) => break,
                    Err(error) => return (messages, Err(error)),
                }
            }
        }
        (messages, decoder.finish())
    }

    fn arbitrary_message() -> impl proptest::strategy::Strategy<Value = Message> {
        use proptest::prelude::*;
        let header = ("[:a-z-]{1,20}", "\\PC{0,20}")
            .prop_map(|(name, value)| Header::new(name, HeaderValue::String(value.into())));
        (
            proptest::collection::vec(header, 0..4),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(headers, payload)| Message::new_from_parts(headers, Bytes::from(payload)))
    }

    /// Headers of every type the format has, strings most often (as Bedrock sends them).
    fn arbitrary_mixed_message() -> impl proptest::strategy::Strategy<Value = Message> {
        use proptest::prelude::*;
        let value = prop_oneof![
            4 => "\\PC{0,20}".prop_map(|v| HeaderValue::String(v.into())),
            1 => any::<bool>().prop_map(HeaderValue::Bool),
            1 => any::<i32>().prop_map(HeaderValue::Int32),
            1 => proptest::collection::vec(any::<u8>(), 0..8)
                .prop_map(|v| HeaderValue::ByteArray(Bytes::from(v))),
        ];
        let header = ("[:a-z-]{0,20}", value).prop_map(|(name, value)| Header::new(name, value));
        (
            proptest::collection::vec(header, 0..4),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(headers, payload)| Message::new_from_parts(headers, Bytes::from(payload)))
    }

    fn encoded(message: &Message) -> Bytes {
        let mut bytes = Vec::new();
        write_message_to(message, &mut bytes).unwrap();
        Bytes::from(bytes)
    }

    #[test]
    fn a_bedrock_frame_is_read_without_the_smithy_decoder() {
        let message = Message::new_from_parts(
            vec![
                Header::new(
                    ":event-type",
                    HeaderValue::String("contentBlockDelta".into()),
                ),
                Header::new(
                    ":content-type",
                    HeaderValue::String("application/json".into()),
                ),
                Header::new(":message-type", HeaderValue::String("event".into())),
            ],
            Bytes::from_static(br#"{"contentBlockIndex":0,"delta":{"text":"hi"}}"#),
        );
        assert_eq!(read_string_frame(&encoded(&message)), Some(message));
    }

    proptest::proptest! {
        /// The copy-free reader reads what the smithy reader reads, and every frame whose
        /// headers are all strings.
        #[test]
        fn the_string_frame_reader_agrees_with_the_smithy_reader(
            message in arbitrary_mixed_message(),
        ) {
            let frame = encoded(&message);
            let ours = read_string_frame(&frame);
            let all_strings = message
                .headers()
                .iter()
                .all(|h| matches!(h.value(), HeaderValue::String(_)));
            proptest::prop_assert_eq!(ours.is_some(), all_strings);
            if let Some(ours) = ours {
                proptest::prop_assert_eq!(&ours, &message);
                proptest::prop_assert_eq!(Some(ours), read_message_from(frame).ok());
            }
        }

        /// With any byte of a frame changed, the copy-free reader either declines (the smithy
        /// decoder then decides) or reads exactly what the smithy reader reads.
        #[test]
        fn a_corrupt_frame_is_never_read_differently(
            message in arbitrary_mixed_message(),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            xor in 1u8..,
        ) {
            let mut bytes = encoded(&message).to_vec();
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
            let frame = Bytes::from(bytes);
            if let Some(ours) = read_string_frame(&frame) {
                proptest::prop_assert_eq!(Some(ours), read_message_from(frame).ok());
            }
        }

        /// Any valid stream, cut anywhere into any number of pieces, decodes to the messages
        /// it was made of; the same bytes with the last frame cut short decode to the others,
        /// then `Truncated`.
        #[test]
        fn any_split_of_a_stream_decodes_identically(
            messages in proptest::collection::vec(arbitrary_message(), 0..5),
            cuts in proptest::collection::vec(proptest::prelude::any::<usize>(), 0..8),
            cut_short_by in 1usize..16,
        ) {
            let mut bytes = Vec::new();
            for message in &messages {
                write_message_to(message, &mut bytes).unwrap();
            }
            let (decoded, end) = decode_in_pieces(&bytes, &cuts);
            proptest::prop_assert_eq!(&decoded, &messages);
            proptest::prop_assert!(end.is_ok());

            if let Some(last) = messages.last() {
                let mut last_frame = Vec::new();
                write_message_to(last, &mut last_frame).unwrap();
                let cut_at = bytes.len() - cut_short_by.min(last_frame.len() - 1);
                let (decoded, end) = decode_in_pieces(&bytes[..cut_at], &cuts);
                proptest::prop_assert_eq!(&decoded[..], &messages[..messages.len() - 1]);
                let truncated = matches!(end, Err(EventStreamError::Truncated { .. }));
                proptest::prop_assert!(truncated, "{:?}", end);
            }
        }
    }
}
