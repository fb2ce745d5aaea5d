//! The fuzz targets: one function per parser or encoder, taking arbitrary bytes and panicking
//! when a property fails. cargo-fuzz runs them under libFuzzer (`fuzz/fuzz_targets/`, one
//! line each); `tests/fuzz_targets.rs` runs the same functions as proptest property tests on
//! stable, and replays every regression input under `fixtures/fuzz/<target>/`.
//!
//! Each target also names its seed corpus, made from `fixtures/` (see [`Target::seeds`]).

use std::cell::RefCell;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use gateway_adapter_bedrock::testing::{
    converse_body, converse_stream_events, parse_converse_response, FrameDecoder, Operation,
};
use gateway_adapter_http::fuzzing::{parse_chat_request, sse_text, StreamFixture};
use gateway_core::{ChatEvent, ChatRequest, ProviderError, ProviderRequest, Route};
use serde_json::Value;

use crate::shapes::{bedrock_runtime, Violation};

/// A fuzz target: its name (as in `fuzz/fuzz_targets/<name>.rs` and `fixtures/fuzz/<name>/`),
/// the function under test and where its seeds come from.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    /// Directories under `fixtures/` whose files (with `extension`) seed the corpus.
    seed_dirs: &'static [&'static str],
    extension: &'static str,
    /// Turns a fixture file into a seed input.
    seed_of: fn(Vec<u8>) -> Vec<u8>,
}

/// Every fuzz target.
pub const TARGETS: [Target; 6] = [
    Target {
        name: "openai_request",
        run: openai_request,
        seed_dirs: &[
            "openai/request",
            "openai/request_invalid",
            "openai/request_refused_by_bedrock",
        ],
        extension: "json",
        seed_of: as_is,
    },
    Target {
        name: "anthropic_request",
        run: anthropic_request,
        seed_dirs: &["anthropic/request", "anthropic/request_invalid"],
        extension: "json",
        seed_of: as_is,
    },
    Target {
        name: "responses_request",
        run: responses_request,
        seed_dirs: &["responses/request", "responses/request_invalid"],
        extension: "json",
        seed_of: as_is,
    },
    Target {
        name: "converse_response",
        run: converse_response,
        seed_dirs: &["bedrock/converse"],
        extension: "json",
        seed_of: without_fixture_options,
    },
    Target {
        name: "event_stream",
        run: event_stream,
        seed_dirs: &["bedrock/converse-stream"],
        extension: "bin",
        seed_of: as_is,
    },
    Target {
        name: "sse_encoder",
        run: sse_encoder,
        seed_dirs: &["openai/stream"],
        extension: "json",
        seed_of: as_is,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|target| target.name == name)
}

/// The workspace's `fixtures/` directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

impl Target {
    /// The seed inputs, in file-name order: the fixtures this target's code is tested with,
    /// then the regression inputs of `fixtures/fuzz/<name>/`.
    pub fn seeds(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut seeds: Vec<(PathBuf, Vec<u8>)> = self
            .seed_dirs
            .iter()
            .flat_map(|dir| files(&fixtures_dir().join(dir), Some(self.extension)))
            .map(|(path, bytes)| (path, (self.seed_of)(bytes)))
            .collect();
        seeds.extend(self.regressions());
        seeds
    }

    /// The inputs that once failed this target (`fixtures/fuzz/<name>/`, any file but
    /// `README.md`).
    pub fn regressions(&self) -> Vec<(PathBuf, Vec<u8>)> {
        files(&fixtures_dir().join("fuzz").join(self.name), None)
    }
}

/// The files of `dir` (none when it does not exist), sorted by name.
fn files(dir: &Path, extension: Option<&str>) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file())
        .filter(|path| match extension {
            Some(ext) => path.extension().is_some_and(|e| e == ext),
            None => path.file_name().is_some_and(|name| name != "README.md"),
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| std::fs::read(&path).ok().map(|bytes| (path, bytes)))
        .collect()
}

fn as_is(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

/// A Converse response fixture without its `_fixture` options (how the test reads it).
fn without_fixture_options(bytes: Vec<u8>) -> Vec<u8> {
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(mut object)) => {
            object.remove("_fixture");
            serde_json::to_vec(&object).unwrap_or(bytes)
        }
        _ => bytes,
    }
}

/// The models a parsed request is converted for: one per family the request conversion
/// treats differently, and a model id that names no family.
fn routes() -> &'static [Route] {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        [
            "model",
            "us.anthropic.claude-sonnet-4-20250514-v1:0",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-3-haiku-20240307-v1:0",
            "amazon.nova-pro-v1:0",
            "us.amazon.nova-2-lite-v1:0",
            "us.meta.llama3-1-70b-instruct-v1:0",
            "openai.gpt-oss-120b-1:0",
            "us.deepseek.r1-v1:0",
        ]
        .into_iter()
        .map(|model_id| Route {
            public_name: "acct/model".into(),
            account: "acct".into(),
            model_id: model_id.into(),
            region: "us-east-1".into(),
            guardrail: Default::default(),
            finish_reason_style: Default::default(),
            drop_unsupported_params: false,
            price: None,
            family: None,
            kind: Default::default(),
        })
        .collect()
    })
}

/// Shape rules today's conversion is known to break, as (shape, part of the rule's text);
/// a violation they match does not fail the property. Each is reported in docs/hardening.md
/// ("Fuzzing") and goes when it is fixed.
const KNOWN_GAPS: &[(&str, &str)] = &[
    // A client's (or the configuration's) guardrail id and version are forwarded as given;
    // Bedrock's patterns (`[a-z0-9]+` or a guardrail ARN; `[1-9][0-9]{0,7}` or `DRAFT`) are
    // not checked locally, so Bedrock answers a ValidationException (and the test fixtures
    // use `gr-abc123`, which it would refuse).
    ("GuardrailIdentifier", "does not match the pattern"),
    ("GuardrailVersion", "does not match the pattern"),
];

/// Whether `violation` is one of the [`KNOWN_GAPS`].
pub fn is_known_gap(violation: &Violation) -> bool {
    KNOWN_GAPS
        .iter()
        .any(|(shape, rule)| violation.shape == *shape && violation.rule.contains(rule))
}

/// The OpenAI request parser must not panic, and every request it accepts must convert, for
/// every family of model, into a refusal before any call or a Converse body botocore's rules
/// accept.
pub fn openai_request(data: &[u8]) {
    if let Ok(request) = parse_chat_request(data) {
        converts_to_valid_converse_bodies(&request);
    }
}

/// The Anthropic Messages parser, held to the same property as [`openai_request`].
pub fn anthropic_request(data: &[u8]) {
    if let Ok(request) = gateway_adapter_http::fuzzing::parse_messages_request(data) {
        converts_to_valid_converse_bodies(&request);
    }
}

/// The OpenAI Responses parser, held to the same property as [`openai_request`].
pub fn responses_request(data: &[u8]) {
    if let Ok(request) = gateway_adapter_http::fuzzing::parse_responses_request(data) {
        converts_to_valid_converse_bodies(&request);
    }
}

/// The conversion half of [`openai_request`], for a request parsed already.
pub fn converts_to_valid_converse_bodies(request: &ChatRequest) {
    let (operation, operation_name) = if request.stream {
        (Operation::ConverseStream, "ConverseStream")
    } else {
        (Operation::Converse, "Converse")
    };
    for route in routes() {
        let call = ProviderRequest::new(route, request, request.requested_guardrail.as_ref());
        // A refusal before any call is a fine answer (the client gets a 400).
        let Ok(body) = converse_body(call, operation) else {
            continue;
        };
        let body: Value = match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(error) => panic!("{}: the Converse body is not JSON: {error}", route.model_id),
        };
        let violations: Vec<String> = bedrock_runtime()
            .check_input(operation_name, &body)
            .into_iter()
            .filter(|violation| !is_known_gap(violation))
            .map(|violation| violation.to_string())
            .collect();
        assert!(
            violations.is_empty(),
            "{} body for {} breaks botocore's rules:\n  {}\nbody: {body}",
            operation_name,
            route.model_id,
            violations.join("\n  ")
        );
    }
}

/// The Converse response parser must not panic, with or without a forced tool to unwrap, and
/// what it accepts must serialize.
pub fn converse_response(data: &[u8]) {
    for unwrap_tool in [None, Some("json_response")] {
        if let Ok(response) = parse_converse_response(data, unwrap_tool) {
            if let Err(error) = serde_json::to_vec(&response) {
                panic!("a parsed response does not serialize: {error}");
            }
        }
    }
}

/// The event-stream decoder must not panic, and any chunking of the same bytes must decode
/// to the same frames and the same domain events (or the same error, at the same place).
pub fn event_stream(data: &[u8]) {
    let whole = frames(data, data.len());
    // Chunk sizes of 1 and 7 cross every boundary; one drawn from the input varies them.
    let drawn = usize::from(data.first().copied().unwrap_or(0)) % 64 + 2;
    for chunk_size in [1, 7, drawn] {
        assert_eq!(
            frames(data, chunk_size),
            whole,
            "frames differ in {chunk_size}-byte chunks"
        );
    }
    // The async path once more in drawn chunks: byte-sized ones there cost most of a run
    // and cross no boundary the frame decoder above has not crossed already.
    assert_eq!(
        chat_events(data, drawn),
        chat_events(data, data.len()),
        "events differ in {drawn}-byte chunks"
    );
}

/// What the frame decoder makes of `data` fed in `chunk_size`-byte pieces: the messages, then
/// the error that stopped it (or the end-of-input check's), as text.
fn frames(
    data: &[u8],
    chunk_size: usize,
) -> (Vec<aws_smithy_types::event_stream::Message>, String) {
    let mut decoder = FrameDecoder::new();
    let mut messages = Vec::new();
    for chunk in data.chunks(chunk_size.max(1)) {
        decoder.push(chunk);
        loop {
            match decoder.decode() {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(error) => return (messages, error.to_string()),
            }
        }
    }
    let end = match decoder.finish() {
        Ok(()) => String::new(),
        Err(error) => error.to_string(),
    };
    (messages, end)
}

/// The domain events the provider makes of `data` as a ConverseStream body in
/// `chunk_size`-byte pieces, with and without a forced tool to unwrap.
fn chat_events(data: &[u8], chunk_size: usize) -> Vec<Result<ChatEvent, ProviderError>> {
    thread_local! {
        // One runtime per thread: building one per input would dominate the run.
        static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
    }
    let mut all = Vec::new();
    for unwrap_tool in [None, Some("json_response")] {
        let chunks: Vec<Result<Bytes, Infallible>> = data
            .chunks(chunk_size.max(1))
            .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
            .collect();
        let events = converse_stream_events(
            Arc::from("acct"),
            futures_util::stream::iter(chunks),
            Duration::from_secs(60),
            unwrap_tool,
        );
        let decoded = RUNTIME.with(|cell| {
            let mut cell = cell.borrow_mut();
            let runtime = cell.get_or_insert_with(|| {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => panic!("no Tokio runtime: {error}"),
                }
            });
            runtime.block_on(events.collect::<Vec<_>>())
        });
        all.extend(decoded);
    }
    all
}

/// The SSE encoder, fed any provider stream in `fixtures/openai/stream/`'s format, must write
/// well-formed server-sent events: `data: <one line>` and a blank line each, every payload a
/// JSON object but a final `[DONE]`, chunks naming the stream's id and model, and a stream
/// that failed ending on an error object, without `[DONE]`.
pub fn sse_encoder(data: &[u8]) {
    static ROUTE: OnceLock<Route> = OnceLock::new();
    let Ok(fixture) = serde_json::from_slice::<StreamFixture>(data) else {
        return;
    };
    let failed = fixture
        .steps
        .iter()
        .any(|step| matches!(step, gateway_adapter_http::fuzzing::Step::Error { .. }));
    let route = ROUTE.get_or_init(|| routes()[0].clone());
    let Some(text) = sse_text(fixture, route) else {
        return;
    };
    let text = match String::from_utf8(text) {
        Ok(text) => text,
        Err(error) => panic!("the SSE body is not UTF-8: {error}"),
    };
    let Some(body) = text.strip_suffix("\n\n") else {
        panic!("the SSE body does not end with a blank line: {text:?}");
    };
    let events: Vec<&str> = body.split("\n\n").collect();
    for (index, event) in events.iter().enumerate() {
        let last = index + 1 == events.len();
        let Some(payload) = event.strip_prefix("data: ") else {
            panic!("event {index} is not a `data:` line: {event:?}");
        };
        assert!(
            !payload.contains('\n'),
            "event {index} spans lines: {event:?}"
        );
        if payload == "[DONE]" {
            assert!(last, "[DONE] before the end: {text:?}");
            assert!(!failed, "a failed stream ends with [DONE]: {text:?}");
            continue;
        }
        let json: Value = match serde_json::from_str(payload) {
            Ok(Value::Object(json)) => Value::Object(json),
            _ => panic!("event {index} is not a JSON object: {payload:?}"),
        };
        if json.get("error").is_some() {
            assert!(
                last && failed,
                "an error event that is not the end of a failed stream: {text:?}"
            );
            continue;
        }
        assert_eq!(json["object"], "chat.completion.chunk", "{payload}");
        assert_eq!(
            json["id"],
            gateway_adapter_http::fuzzing::STREAM_ID,
            "{payload}"
        );
        assert_eq!(
            json["model"],
            gateway_adapter_http::fuzzing::STREAM_MODEL,
            "{payload}"
        );
        assert!(
            !last,
            "the stream ends on a chunk, without [DONE] or an error: {text:?}"
        );
    }
}
