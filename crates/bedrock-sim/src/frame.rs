//! Event-stream framing (`application/vnd.amazon.eventstream`): encoding frames with
//! aws-smithy-eventstream's writer, plus the deliberately broken frames used for failure
//! injection (flipped CRC, oversized prelude).

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use aws_smithy_types::str_bytes::StrBytes;
use bytes::{BufMut, Bytes, BytesMut};

use crate::SimError;

/// Total length announced by [`crate::StreamStep::OversizedPrelude`]: 20 MiB, above the 16 MiB limit of the
/// event-stream format.
pub const OVERSIZED_FRAME_LEN: u32 = 20 * 1024 * 1024;

/// Encodes one event-stream message with string-valued headers and the given payload.
///
/// This is the exact wire encoding (prelude, prelude CRC, headers, payload, message CRC); use
/// it to build fixtures or [`crate::StreamStep::RawBytes`] steps.
///
/// ```
/// let frame = bedrock_sim::encode_frame(
///     &[(":message-type", "event"), (":event-type", "messageStart"), (":content-type", "application/json")],
///     br#"{"role":"assistant"}"#,
/// ).unwrap();
/// assert_eq!(u32::from_be_bytes(frame[0..4].try_into().unwrap()) as usize, frame.len());
/// ```
///
/// # Errors
/// [`SimError::Frame`] if a header name is longer than 255 bytes or a value or the payload is
/// too long for the format.
pub fn encode_frame(headers: &[(&str, &str)], payload: &[u8]) -> Result<Bytes, SimError> {
    let headers = headers
        .iter()
        .map(|(name, value)| {
            Header::new(
                StrBytes::from((*name).to_owned()),
                HeaderValue::String(StrBytes::from((*value).to_owned())),
            )
        })
        .collect();
    let message = Message::new_from_parts(headers, Bytes::copy_from_slice(payload));
    let mut out = BytesMut::with_capacity(payload.len() + 128).writer();
    write_message_to(&message, out.get_mut()).map_err(|e| SimError::Frame(e.to_string()))?;
    Ok(out.into_inner().freeze())
}

/// Encodes an `event` frame exactly as Bedrock sends them (`:event-type`, `:content-type:
/// application/json`, `:message-type: event`). No padding is added here.
///
/// # Errors
/// See [`encode_frame`].
pub fn event_frame(event_type: &str, payload: &serde_json::Value) -> Result<Bytes, SimError> {
    encode_frame(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// Encodes an `exception` frame (`:exception-type`, `:message-type: exception`) whose payload
/// is `{"message": ...}`.
///
/// # Errors
/// See [`encode_frame`].
pub fn exception_frame(exception_type: &str, message: &str) -> Result<Bytes, SimError> {
    encode_frame(
        &[
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        serde_json::json!({ "message": message })
            .to_string()
            .as_bytes(),
    )
}

/// A 12-byte prelude with a valid prelude CRC announcing an [`OVERSIZED_FRAME_LEN`] frame.
pub(crate) fn oversized_prelude() -> Bytes {
    let mut prelude = BytesMut::with_capacity(12);
    prelude.put_u32(OVERSIZED_FRAME_LEN);
    prelude.put_u32(0);
    let crc = crc32(&prelude);
    prelude.put_u32(crc);
    prelude.freeze()
}

/// Returns `frame` with its trailing message CRC inverted (frames shorter than 4 bytes get
/// their bytes inverted).
pub(crate) fn corrupt_crc(frame: &[u8]) -> Bytes {
    let mut out = BytesMut::from(frame);
    let len = out.len();
    for byte in out.iter_mut().skip(len.saturating_sub(4)) {
        *byte = !*byte;
    }
    out.freeze()
}

/// CRC-32 (IEEE), bitwise; only used for the one hand-built prelude.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::read_message_from;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn event_frames_decode() {
        let frame = event_frame("messageStart", &serde_json::json!({"role": "assistant"})).unwrap();
        let message = read_message_from(frame).unwrap();
        assert_eq!(&message.payload()[..], br#"{"role":"assistant"}"#);
    }

    #[test]
    fn corrupted_frames_fail_the_crc_check() {
        let frame = exception_frame("throttlingException", "slow down").unwrap();
        let err = read_message_from(corrupt_crc(&frame)).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn oversized_prelude_has_a_valid_prelude_crc() {
        let prelude = oversized_prelude();
        assert_eq!(prelude.len(), 12);
        assert_eq!(&prelude[0..4], &OVERSIZED_FRAME_LEN.to_be_bytes());
        assert_eq!(crc32(&prelude[0..8]).to_be_bytes(), prelude[8..12]);
    }
}
