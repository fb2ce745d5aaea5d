//! `x-request-id`: the client's, when it is safe to repeat, or a fresh one.
//!
//! The id is returned on every response, is the `request_id` field of the request's span (so
//! every log line of the request carries it) and, when the operator enables it, travels to
//! Bedrock as the `requestMetadata` pair `gateway_request_id`.

use gateway_core::ChatRequest;
use http::header::{HeaderMap, HeaderName, HeaderValue};

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The `requestMetadata` key the id is sent to Bedrock under.
pub(crate) const BEDROCK_METADATA_KEY: &str = "gateway_request_id";

/// Bedrock refuses more `requestMetadata` pairs than this.
const MAX_BEDROCK_METADATA_PAIRS: usize = 16;

const MAX_CHARS: usize = 128;

/// A request id: 1 to 128 characters of `[A-Za-z0-9._:-]`, safe in a header, a log line and
/// Bedrock's `requestMetadata`.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(HeaderValue);

impl RequestId {
    /// The client's `x-request-id` when valid; otherwise (missing, empty, too long, other
    /// characters) a fresh one, so nothing the client wrote is echoed unchecked.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get(REQUEST_ID)
            .filter(|value| is_valid(value.as_bytes()))
            .map_or_else(Self::generate, |value| Self(value.clone()))
    }

    /// 128 random bits as 32 hex digits.
    pub(crate) fn generate() -> Self {
        // 32 hex digits written by hand: `format!` cost more than the rest of the id.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut random = fastrand::u128(..);
        let mut text = [0u8; 32];
        for digit in text.iter_mut().rev() {
            *digit = HEX[(random & 0xf) as usize];
            random >>= 4;
        }
        // Hex digits are always a valid header value.
        Self(HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static("-")))
    }

    pub(crate) fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ever made from the ASCII checked by `is_valid` or hex digits.
        self.0.to_str().unwrap_or("-")
    }

    /// Adds the id to what Bedrock receives as `requestMetadata`, replacing a client's pair
    /// of the same key. A client that already sent Bedrock's maximum of pairs keeps them
    /// and the id is not sent.
    pub(crate) fn add_to_metadata(&self, request: &mut ChatRequest) {
        let pairs = &mut request.request_metadata;
        if let Some((_, value)) = pairs
            .iter_mut()
            .find(|(key, _)| key == BEDROCK_METADATA_KEY)
        {
            self.as_str().clone_into(value);
        } else if pairs.len() < MAX_BEDROCK_METADATA_PAIRS {
            pairs.push((BEDROCK_METADATA_KEY.to_owned(), self.as_str().to_owned()));
        }
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_valid(id: &[u8]) -> bool {
    (1..=MAX_CHARS).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(value: &str) -> RequestId {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_str(value).unwrap());
        RequestId::from_headers(&headers)
    }

    #[test]
    fn a_valid_id_is_kept_and_anything_else_replaced() {
        let longest = "a".repeat(MAX_CHARS);
        for valid in ["abc-123", "trace:4.2_x", longest.as_str()] {
            assert_eq!(from(valid).as_str(), valid);
        }
        let too_long = "a".repeat(MAX_CHARS + 1);
        for invalid in ["", "has space", "quote\"", "semi;colon", too_long.as_str()] {
            let replaced = from(invalid).as_str().to_owned();
            assert_ne!(replaced, invalid);
            assert_eq!(replaced.len(), 32, "{replaced}");
            assert!(replaced.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        let generated = RequestId::from_headers(&HeaderMap::new());
        assert_eq!(generated.as_str().len(), 32);
        assert_ne!(
            generated.as_str(),
            RequestId::from_headers(&HeaderMap::new()).as_str()
        );
    }

    fn with_metadata(pairs: Vec<(String, String)>) -> ChatRequest {
        ChatRequest {
            request_metadata: pairs,
            ..ChatRequest::default()
        }
    }

    #[test]
    fn the_id_joins_the_metadata_without_passing_bedrocks_limit() {
        let id = from("req-1");
        let mut request = with_metadata(vec![("team".into(), "a".into())]);
        id.add_to_metadata(&mut request);
        assert_eq!(
            request.request_metadata,
            [
                ("team".to_owned(), "a".to_owned()),
                (BEDROCK_METADATA_KEY.to_owned(), "req-1".to_owned())
            ]
        );
        // A client's own pair of that key is replaced, not doubled.
        let mut request = with_metadata(vec![(BEDROCK_METADATA_KEY.into(), "mine".into())]);
        id.add_to_metadata(&mut request);
        assert_eq!(
            request.request_metadata,
            [(BEDROCK_METADATA_KEY.to_owned(), "req-1".to_owned())]
        );
        let full: Vec<_> = (0..MAX_BEDROCK_METADATA_PAIRS)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        let mut request = with_metadata(full.clone());
        id.add_to_metadata(&mut request);
        assert_eq!(request.request_metadata, full);
    }
}
