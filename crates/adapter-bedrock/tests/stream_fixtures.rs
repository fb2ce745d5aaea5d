//! ConverseStream captures decoded into domain events.
//!
//! Each `fixtures/bedrock/converse-stream/*.bin` is generated from its `.jsonl` twin (one line
//! per frame, see that folder's README). One snapshot per capture records the events and the
//! error, if any; every capture must decode identically whatever the chunking. A `decode`
//! line in the twin sets how the capture is read (the forced tool to unwrap).

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions fail the test on bad input, like the tests themselves"
)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use futures_util::StreamExt;
use gateway_adapter_bedrock::testing::converse_stream_events;
use gateway_core::{ChatEvent, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/bedrock/converse-stream")
}

/// One line of a `.jsonl` twin.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameSpec {
    /// Written in name order, so the encoding does not depend on JSON map order.
    headers: Option<BTreeMap<String, String>>,
    /// Written byte for byte as it appears in the line.
    payload: Option<Box<RawValue>>,
    /// `message_crc`: flip the last bit of the frame's message CRC.
    corrupt: Option<String>,
    /// Keep only this many bytes of the frame (and nothing after it).
    truncate_to: Option<usize>,
    /// A bare 12-byte prelude with a correct CRC and these lengths.
    raw_prelude: Option<RawPrelude>,
    /// Not a frame: how the capture is decoded.
    decode: Option<DecodeOptions>,
    /// Free text for the reader.
    #[expect(dead_code, reason = "documentation for whoever reads the fixture")]
    comment: Option<String>,
}

/// How a capture is decoded.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecodeOptions {
    /// The forced tool whose arguments are the answer's text.
    unwrap_tool: Option<String>,
}

#[derive(Deserialize)]
struct RawPrelude {
    total_length: u32,
    headers_length: u32,
}

fn encode_jsonl(jsonl: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let spec: FrameSpec = serde_json::from_str(line).unwrap();
        if spec.decode.is_some() {
            continue;
        }
        if let Some(prelude) = spec.raw_prelude {
            let start = out.len();
            out.extend_from_slice(&prelude.total_length.to_be_bytes());
            out.extend_from_slice(&prelude.headers_length.to_be_bytes());
            let crc = crc32fast::hash(&out[start..]);
            out.extend_from_slice(&crc.to_be_bytes());
            continue;
        }
        let headers = spec
            .headers
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| Header::new(name, HeaderValue::String(value.into())))
            .collect();
        let payload = spec
            .payload
            .map(|p| Bytes::copy_from_slice(p.get().as_bytes()))
            .unwrap_or_default();
        let mut frame = Vec::new();
        write_message_to(&Message::new_from_parts(headers, payload), &mut frame).unwrap();
        match spec.corrupt.as_deref() {
            None => {}
            Some("message_crc") => *frame.last_mut().unwrap() ^= 1,
            Some(other) => panic!("unknown corruption {other}"),
        }
        if let Some(len) = spec.truncate_to {
            assert!(len < frame.len(), "truncate_to must cut the frame");
            frame.truncate(len);
        }
        out.extend_from_slice(&frame);
    }
    out
}

/// The `decode` line of a capture's twin, if any.
fn decode_options(bin: &Path) -> DecodeOptions {
    let jsonl = std::fs::read_to_string(bin.with_extension("jsonl")).unwrap();
    jsonl
        .lines()
        .filter(|l| !l.trim().is_empty())
        .find_map(|line| serde_json::from_str::<FrameSpec>(line).unwrap().decode)
        .unwrap_or_default()
}

fn jsonl_twins() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    paths
}

#[test]
#[ignore = "rewrites the .bin fixtures from their .jsonl twins"]
fn regenerate_bin_fixtures() {
    for jsonl in jsonl_twins() {
        let bytes = encode_jsonl(&std::fs::read_to_string(&jsonl).unwrap());
        std::fs::write(jsonl.with_extension("bin"), bytes).unwrap();
    }
}

#[test]
fn bin_fixtures_match_their_jsonl_twins() {
    for jsonl in jsonl_twins() {
        let expected = encode_jsonl(&std::fs::read_to_string(&jsonl).unwrap());
        let bin = std::fs::read(jsonl.with_extension("bin")).unwrap();
        assert!(
            bin == expected,
            "{} is stale: run `cargo test -p gateway-adapter-bedrock --test stream_fixtures \
             -- --ignored regenerate_bin_fixtures`",
            jsonl.display()
        );
    }
}

/// What the stream yielded, in a form that reads well in a snapshot.
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Event(ChatEvent),
    Error { kind: &'static str, message: String },
}

fn decode(
    bytes: &[u8],
    chunk_size: usize,
    unwrap_tool: Option<&'static str>,
) -> Vec<Result<ChatEvent, ProviderError>> {
    let chunks: Vec<Result<Bytes, Infallible>> = bytes
        .chunks(chunk_size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(
        converse_stream_events(
            Arc::from("test-account"),
            futures_util::stream::iter(chunks),
            Duration::from_secs(60),
            unwrap_tool,
        )
        .collect(),
    )
}

#[test]
fn fixtures_decode_to_events_whatever_the_chunking() {
    insta::glob!(
        "../../../fixtures/bedrock/converse-stream",
        "*.bin",
        |path| {
            let bytes = std::fs::read(path).unwrap();
            // The decoder takes a `&'static str`, as the provider's forced-tool name is one.
            let unwrap_tool: Option<&'static str> = decode_options(path)
                .unwrap_tool
                .map(|name| &*Box::leak(name.into_boxed_str()));
            let whole = decode(&bytes, bytes.len().max(1), unwrap_tool);
            for chunk_size in [1, 7] {
                assert_eq!(
                    decode(&bytes, chunk_size, unwrap_tool),
                    whole,
                    "{} in {chunk_size}-byte chunks",
                    path.display()
                );
            }
            let outcome: Vec<Outcome> = whole
                .into_iter()
                .map(|item| match item {
                    Ok(event) => Outcome::Event(event),
                    Err(error) => Outcome::Error {
                        kind: error.kind(),
                        message: error.to_string(),
                    },
                })
                .collect();
            insta::assert_yaml_snapshot!(outcome);
        }
    );
}
