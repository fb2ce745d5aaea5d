//! Request bodies of a given size, as the same content in both dialects: a long prompt, or a
//! base64 PNG image part, in an OpenAI chat request (to the gateway) and in the equivalent
//! Converse request (direct and through the floors).

use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use sha2::Digest as _;

/// The same content for the two dialects.
#[derive(Clone)]
pub struct Payload {
    pub openai: Bytes,
    pub converse: Bytes,
}

/// What fills a body.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Content {
    Text,
    Image,
}

impl Content {
    pub fn label(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
        }
    }
}

/// A sentence of a long prompt; the `\n` is a JSON escape, as real prompts have.
const SENTENCE: &str =
    "The quick brown fox jumps over the lazy dog while the gateway counts every byte.\\n";

/// The OpenAI body for `model` with `content`, `size` bytes long (a few bytes short at most
/// for images, whose base64 comes in steps of 4), and its Converse twin.
pub fn payload(model: &str, content: Content, size: usize, stream: bool) -> Payload {
    let stream_field = if stream { r#""stream":true,"# } else { "" };
    let (openai_shell, converse_shell) = match content {
        Content::Text => (
            format!(
                r#"{{"model":"{model}",{stream_field}"messages":[{{"role":"user","content":"FILL"}}],"max_tokens":16}}"#
            ),
            r#"{"messages":[{"role":"user","content":[{"text":"FILL"}]}],"inferenceConfig":{"maxTokens":16}}"#
                .to_owned(),
        ),
        Content::Image => (
            format!(
                r#"{{"model":"{model}",{stream_field}"messages":[{{"role":"user","content":[{{"type":"text","text":"Describe the image."}},{{"type":"image_url","image_url":{{"url":"data:image/png;base64,FILL"}}}}]}}],"max_tokens":16}}"#
            ),
            r#"{"messages":[{"role":"user","content":[{"text":"Describe the image."},{"image":{"format":"png","source":{"bytes":"FILL"}}}]}],"inferenceConfig":{"maxTokens":16}}"#
                .to_owned(),
        ),
    };
    let room = size
        .saturating_sub(openai_shell.len() - "FILL".len())
        .max(8);
    let fill = match content {
        Content::Text => text(room),
        Content::Image => base64::engine::general_purpose::STANDARD.encode(png(room / 4 * 3)),
    };
    Payload {
        openai: openai_shell.replacen("FILL", &fill, 1).into(),
        converse: converse_shell.replacen("FILL", &fill, 1).into(),
    }
}

/// Prompt text exactly `len` bytes long.
fn text(len: usize) -> String {
    let mut text = SENTENCE.repeat(len / SENTENCE.len() + 1);
    text.truncate(len);
    // Never end inside the `\n` escape.
    while text.ends_with('\\') {
        text.pop();
        text.push('.');
    }
    text
}

/// `len` bytes that start like a PNG (signature and IHDR chunk header, which is what the
/// gateway's magic-byte check reads), then pseudo-random bytes, as compressed image data is.
fn png(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    while bytes.len() < len {
        // xorshift64*: enough for bytes base64 cannot compress to a pattern.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    bytes.truncate(len.max(16));
    bytes
}

/// The fastest of several SHA-256 runs over `size` bytes, in this process: the cost of reading
/// a body once, which the 1 MiB target allows on top of twice the floor.
pub fn sha256_time(size: usize) -> Duration {
    let data = vec![0x5Au8; size];
    (0..20)
        .map(|_| {
            let started = Instant::now();
            let digest = sha2::Sha256::digest(&data);
            std::hint::black_box(digest);
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}
