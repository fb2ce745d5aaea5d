//! The fuzz targets as property tests on stable, and the replay of every regression input.
//!
//! Each target gets its seeds (from `fixtures/`) mutated byte by byte, and, where random bytes
//! would rarely get past the first check, inputs generated with the format's structure
//! (OpenAI requests, event-stream frames with valid CRCs, provider event sequences).
//! `FUZZ_CASES` sets the number of cases per target (`cargo xtask fuzz` scales it with
//! `--time`); the default keeps each target to a few seconds in `cargo test`.

#![expect(
    clippy::unwrap_used,
    reason = "tests fail by panicking on unreadable fixtures"
)]

use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::{Arc, Once};

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use futures_util::StreamExt;
use gateway_test_support::shapes::bedrock_runtime;
use gateway_test_support::targets::{self, target, Target, TARGETS};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

/// Cases per target: `FUZZ_CASES`, else a count that stays within seconds in a debug build.
fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256)
}

thread_local! {
    /// Set while this thread runs a target: the panics proptest catches (and shrinks) are
    /// not printed one by one; the final report carries the smallest one's message.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

fn quiet_panics_while_running_targets() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default(info);
            }
        }));
    });
}

/// An input, shown as text in proptest's report of the smallest failing one.
struct Input(Vec<u8>);

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

/// Runs `target` over `inputs`; proptest shrinks a failure to a small input and reports it.
fn run(target: &Target, inputs: impl Strategy<Value = Vec<u8>>) {
    quiet_panics_while_running_targets();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    QUIET.with(|quiet| quiet.set(true));
    let result = runner.run(&inputs.prop_map(Input), |input| {
        (target.run)(&input.0);
        Ok(())
    });
    QUIET.with(|quiet| quiet.set(false));
    if let Err(error) = result {
        panic!(
            "{}: {error}\nKeep the input as a regression: see docs/hardening.md, \"Fuzzing\"",
            target.name
        );
    }
}

/// One of `target`'s seeds with a few byte edits: replace, insert, delete, truncate.
fn mutated_seeds(target: &Target) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Arc<Vec<Vec<u8>>> =
        Arc::new(target.seeds().into_iter().map(|(_, bytes)| bytes).collect());
    assert!(!seeds.is_empty(), "{} has no seeds", target.name);
    let edit = (0u8..4, any::<usize>(), any::<u8>());
    (0..seeds.len(), proptest::collection::vec(edit, 0..6)).prop_map(move |(index, edits)| {
        let mut bytes = seeds[index].clone();
        for (kind, at, byte) in edits {
            let at = at % (bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                2 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.truncate(at),
            }
        }
        bytes
    })
}

fn named(name: &str) -> &'static Target {
    target(name).unwrap()
}

// ---- openai_request ----

/// Text, sometimes blank, sometimes long, any characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" \n".to_owned()),
        "\\PC{1,40}",
        "[a-z]{1,5}".prop_map(|word| word.repeat(300)),
    ]
}

/// A name as a client may write one: mostly valid for tools, sometimes not.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9_-]{1,64}",
        1 => "[ -~]{0,70}",
        1 => Just("x".repeat(65)),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-2i64..300_000).prop_map(Value::from),
        (-1.0f64..3.0).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(json!(null)),
    ]
}

const DATA_URLS: [&str; 4] = [
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
    "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHR8eHR0fHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q==",
    "data:image/png;base64,====",
    "data:application/pdf;base64,JVBERi0xLjQK",
];

fn part() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => text().prop_map(|text| json!({"type": "text", "text": text})),
        1 => proptest::sample::select(&DATA_URLS[..])
            .prop_map(|url| json!({"type": "image_url", "image_url": {"url": url}})),
        1 => (proptest::sample::select(&DATA_URLS[..]), "[ -~]{0,12}").prop_map(|(url, filename)| {
            json!({"type": "file", "file": {"file_data": url, "filename": filename}})
        }),
        1 => text().prop_map(|text| {
            json!({"type": "text", "text": text, "cache_control": {"type": "ephemeral"}})
        }),
    ]
}

fn content() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::from),
        proptest::collection::vec(part(), 0..4).prop_map(Value::from),
        Just(json!(null)),
    ]
}

fn tool_call() -> impl Strategy<Value = Value> {
    (name(), name(), prop_oneof![Just("{}".to_owned()), text()]).prop_map(|(id, name, args)| {
        json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
    })
}

fn message() -> impl Strategy<Value = Value> {
    let role = proptest::sample::select(&["system", "developer", "user", "assistant", "tool"][..]);
    (
        role,
        content(),
        proptest::collection::vec(tool_call(), 0..3),
        name(),
    )
        .prop_map(|(role, content, tool_calls, id)| {
            let mut message = json!({"role": role, "content": content});
            match role {
                "assistant" if !tool_calls.is_empty() => {
                    message["tool_calls"] = Value::from(tool_calls)
                }
                "tool" => message["tool_call_id"] = Value::from(id),
                _ => {}
            }
            message
        })
}

fn tool() -> impl Strategy<Value = Value> {
    (name(), prop::option::of(text())).prop_map(|(name, description)| {
        let mut function =
            json!({"name": name, "parameters": {"type": "object", "properties": {}}});
        if let Some(description) = description {
            function["description"] = Value::from(description);
        }
        json!({"type": "function", "function": function})
    })
}

/// An OpenAI request as clients write them: valid in most parts, off in some.
fn openai_request_json() -> impl Strategy<Value = Vec<u8>> {
    let stop = prop_oneof![
        text().prop_map(Value::from),
        proptest::collection::vec(text(), 0..6).prop_map(Value::from),
    ];
    let tool_choice = prop_oneof![
        Just(json!("auto")),
        Just(json!("none")),
        Just(json!("required")),
        name().prop_map(|name| json!({"type": "function", "function": {"name": name}})),
    ];
    let optional = (
        prop::option::of(number()),
        prop::option::of(number()),
        prop::option::of(number()),
        prop::option::of(stop),
        prop::option::of(proptest::collection::vec(tool(), 0..4)),
        prop::option::of(tool_choice),
        any::<bool>(),
        prop::option::of(proptest::sample::select(
            &["minimal", "low", "medium", "high"][..],
        )),
        prop::option::of(proptest::sample::select(vec![
            json!({"type": "text"}),
            json!({"type": "json_object"}),
            json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}),
        ])),
    );
    (
        prop_oneof![Just("acct/model".to_owned()), "\\PC{0,20}"],
        proptest::collection::vec(message(), 0..6),
        optional,
    )
        .prop_map(
            |(
                model,
                messages,
                (max_tokens, temperature, top_p, stop, tools, tool_choice, stream, effort, format),
            )| {
                let mut request = Map::new();
                request.insert("model".into(), Value::from(model));
                request.insert("messages".into(), Value::from(messages));
                let fields = [
                    ("max_completion_tokens", max_tokens),
                    ("temperature", temperature),
                    ("top_p", top_p),
                    ("stop", stop),
                    ("tools", tools.map(Value::from)),
                    ("tool_choice", tool_choice),
                    ("reasoning_effort", effort.map(Value::from)),
                    ("response_format", format),
                ];
                for (key, value) in fields {
                    if let Some(value) = value {
                        request.insert(key.into(), value);
                    }
                }
                request.insert("stream".into(), Value::from(stream));
                serde_json::to_vec(&request).unwrap()
            },
        )
}

#[test]
fn openai_request() {
    let target = named("openai_request");
    run(
        target,
        prop_oneof![mutated_seeds(target), openai_request_json()],
    );
}

#[test]
fn anthropic_request() {
    let target = named("anthropic_request");
    run(target, mutated_seeds(target));
}

#[test]
fn responses_request() {
    let target = named("responses_request");
    run(target, mutated_seeds(target));
}

/// Most accepted fixtures convert to a body the property checks: it is not vacuous.
#[test]
fn the_accepted_request_fixtures_convert_to_valid_bodies() {
    let dir = targets::fixtures_dir().join("openai/request");
    let mut accepted = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok(request) = gateway_adapter_http::fuzzing::parse_chat_request(&bytes) {
            targets::converts_to_valid_converse_bodies(&request);
            accepted += 1;
        }
    }
    assert!(accepted > 30, "only {accepted} request fixtures parse");
}

// ---- converse_response ----

#[test]
fn converse_response() {
    let target = named("converse_response");
    run(
        target,
        prop_oneof![mutated_seeds(target), converse_response_json()],
    );
}

/// A value of botocore shape `name`, within its rules; `depth` bounds nesting (past it,
/// structures get their required members only and lists their minimum).
fn value_of(name: &str, depth: u32) -> BoxedStrategy<Value> {
    let model = bedrock_runtime();
    let shape = model.shape(name).unwrap();
    let bound = |key: &str| shape.get(key).and_then(Value::as_f64);
    match shape["type"].as_str().unwrap() {
        "structure" if shape.get("document") == Some(&Value::Bool(true)) => {
            prop_oneof![Just(json!({})), Just(json!({"a": [1, "b", null]}))].boxed()
        }
        "structure" => {
            let members: Vec<(String, String, bool)> = shape["members"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, member)| member.get("location").is_none())
                .filter(|(_, member)| {
                    // Event-stream members belong to ConverseStream's output.
                    let target = model.shape(member["shape"].as_str().unwrap()).unwrap();
                    target.get("eventstream").is_none()
                })
                .map(|(member, spec)| {
                    let required = shape
                        .get("required")
                        .and_then(Value::as_array)
                        .is_some_and(|required| required.iter().any(|r| r == member.as_str()));
                    (
                        member.clone(),
                        spec["shape"].as_str().unwrap().to_owned(),
                        required,
                    )
                })
                .collect();
            if shape.get("union") == Some(&Value::Bool(true)) {
                let choices: Vec<BoxedStrategy<Value>> = members
                    .into_iter()
                    .map(|(member, target, _)| {
                        value_of(&target, depth + 1)
                            .prop_map(move |value| json!({ member.clone(): value }))
                            .boxed()
                    })
                    .collect();
                return proptest::strategy::Union::new(choices).boxed();
            }
            let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = members
                .into_iter()
                .filter(|(_, _, required)| *required || depth < 4)
                .map(|(member, target, required)| {
                    let value =
                        value_of(&target, depth + 1).prop_map(move |value| (member.clone(), value));
                    if required {
                        value.prop_map(Some).boxed()
                    } else {
                        proptest::option::of(value).boxed()
                    }
                })
                .collect();
            fields
                .prop_map(|fields| Value::Object(fields.into_iter().flatten().collect()))
                .boxed()
        }
        "list" => {
            let member = shape["member"]["shape"].as_str().unwrap().to_owned();
            let min = bound("min").unwrap_or(0.0) as usize;
            let max = if depth < 4 { min + 3 } else { min };
            let max = bound("max").map_or(max, |limit| max.min(limit as usize));
            proptest::collection::vec(value_of(&member, depth + 1), min..=max)
                .prop_map(Value::from)
                .boxed()
        }
        "map" => {
            let value = shape["value"]["shape"].as_str().unwrap().to_owned();
            proptest::collection::btree_map("[a-z]{1,8}", value_of(&value, depth + 1), 0..3)
                .prop_map(|entries| Value::Object(entries.into_iter().collect()))
                .boxed()
        }
        "string" => match shape.get("enum").and_then(Value::as_array) {
            Some(values) => proptest::sample::select(values.clone()).boxed(),
            None => {
                let min = bound("min").unwrap_or(0.0) as usize;
                let max = bound("max").map_or(min + 20, |max| (max as usize).min(min + 20));
                proptest::string::string_regex(&format!("[a-zA-Z0-9_-]{{{min},{max}}}"))
                    .unwrap()
                    .prop_map(Value::from)
                    .boxed()
            }
        },
        "integer" | "long" => {
            let min = bound("min").unwrap_or(0.0) as i64;
            let max = bound("max").map_or(min + 100_000, |max| max as i64);
            (min..=max).prop_map(Value::from).boxed()
        }
        "float" | "double" => {
            let min = bound("min").unwrap_or(0.0);
            let max = bound("max").unwrap_or(min + 1000.0);
            (min..=max).prop_map(Value::from).boxed()
        }
        "boolean" => any::<bool>().prop_map(Value::from).boxed(),
        "blob" => proptest::collection::vec(any::<u8>(), 1..12)
            .prop_map(|bytes| {
                use base64::Engine as _;
                Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
            })
            .boxed(),
        "timestamp" => (0u32..2_000_000_000).prop_map(Value::from).boxed(),
        other => panic!("{name}: no generator for shape type {other}"),
    }
}

/// Converse responses as botocore's model allows them, serialized.
fn converse_response_json() -> impl Strategy<Value = Vec<u8>> {
    value_of("ConverseResponse", 0).prop_map(|value| serde_json::to_vec(&value).unwrap())
}

/// Every response botocore's model allows is one the adapter reads: Bedrock cannot answer
/// the gateway a valid response it then calls a protocol error.
#[test]
fn every_response_botocore_allows_parses() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&value_of("ConverseResponse", 0), |response| {
        let body = serde_json::to_vec(&response).unwrap();
        let parsed = gateway_adapter_bedrock::testing::parse_converse_response(&body, None);
        prop_assert!(parsed.is_ok(), "{parsed:?}");
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

// ---- event_stream ----

/// A ConverseStream event frame, with a valid CRC, of a kind Bedrock sends.
fn event_frame() -> impl Strategy<Value = Message> {
    let event_type = proptest::sample::select(
        &[
            "messageStart",
            "contentBlockStart",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata",
            "somethingNew",
        ][..],
    );
    let payload = prop_oneof![
        Just(json!({"role": "assistant"})),
        (0u32..3, text()).prop_map(|(i, t)| json!({"contentBlockIndex": i, "delta": {"text": t}})),
        (0u32..3, text()).prop_map(|(i, t)| {
            json!({"contentBlockIndex": i, "delta": {"toolUse": {"input": t}}})
        }),
        (0u32..3, name()).prop_map(|(i, n)| {
            json!({"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": n, "name": n}}})
        }),
        (0u32..3, text()).prop_map(|(i, t)| {
            json!({"contentBlockIndex": i, "delta": {"reasoningContent": {"text": t}}})
        }),
        (0u32..3).prop_map(|i| json!({"contentBlockIndex": i})),
        proptest::sample::select(&["end_turn", "tool_use", "max_tokens", "new_reason"][..])
            .prop_map(|reason| json!({"stopReason": reason})),
        (0u32..100, 0u32..100).prop_map(|(input, output)| json!({
            "usage": {"inputTokens": input, "outputTokens": output, "totalTokens": input + output},
            "metrics": {"latencyMs": 1}
        })),
        Just(json!({})),
    ];
    let message_type = prop_oneof![
        6 => Just(("event", ":event-type")),
        1 => Just(("exception", ":exception-type")),
    ];
    (message_type, event_type, payload).prop_map(|((kind, type_header), event, payload)| {
        Message::new_from_parts(
            vec![
                Header::new(":message-type", HeaderValue::String(kind.into())),
                Header::new(type_header, HeaderValue::String(event.into())),
                Header::new(
                    ":content-type",
                    HeaderValue::String("application/json".into()),
                ),
            ],
            bytes::Bytes::from(serde_json::to_vec(&payload).unwrap()),
        )
    })
}

fn event_stream_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(event_frame(), 0..8).prop_map(|frames| {
        let mut bytes = Vec::new();
        for frame in &frames {
            aws_smithy_eventstream::frame::write_message_to(frame, &mut bytes).unwrap();
        }
        bytes
    })
}

#[test]
fn event_stream() {
    let target = named("event_stream");
    run(
        target,
        prop_oneof![mutated_seeds(target), event_stream_bytes()],
    );
}

// ---- sse_encoder ----

fn step() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("message_start")),
        text().prop_map(|t| json!({"text_delta": t})),
        text().prop_map(|t| json!({"reasoning_delta": t})),
        text().prop_map(|t| json!({"reasoning_signature": t})),
        text().prop_map(|t| json!({"redacted_reasoning": t})),
        (0u32..3, name(), name()).prop_map(|(index, id, name)| {
            json!({"tool_call_start": {"index": index, "id": id, "name": name}})
        }),
        (0u32..3, text()).prop_map(|(index, arguments)| {
            json!({"tool_call_delta": {"index": index, "arguments": arguments}})
        }),
        proptest::sample::select(&["end_turn", "tool_use", "guardrail_intervened", "odd"][..])
            .prop_map(|reason| json!({"stop": reason})),
        (0u64..1000, 0u64..1000, any::<bool>()).prop_map(|(input, output, traced)| json!({
            "metadata": {
                "usage": {"input_tokens": input, "output_tokens": output, "total_tokens": input + output},
                "guardrail_trace": if traced { json!({"action": "x"}) } else { Value::Null }
            }
        })),
        Just(json!({"additional_response_fields": {"a": [1, "\n"]}})),
        (proptest::sample::select(&["throttled", "model_error", "protocol"][..]), text())
            .prop_map(|(error, message)| json!({"error": error, "message": message})),
    ]
}

fn stream_fixture_json() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::sample::select(&["bedrock", "strict"][..]),
        any::<bool>(),
        proptest::collection::vec(step(), 0..10),
        any::<bool>(),
    )
        .prop_map(|(style, include_usage, steps, priced)| {
            let mut fixture =
                json!({"style": style, "include_usage": include_usage, "steps": steps});
            if priced {
                fixture["price"] = json!({"input": 3.0, "output": 15.0});
            }
            serde_json::to_vec(&fixture).unwrap()
        })
}

#[test]
fn sse_encoder() {
    let target = named("sse_encoder");
    run(
        target,
        prop_oneof![mutated_seeds(target), stream_fixture_json()],
    );
}

// ---- every target ----

/// Each target passes its seeds, and every input kept in `fixtures/fuzz/<target>/`.
#[test]
fn seeds_and_regression_inputs_pass() {
    for target in &TARGETS {
        for (path, input) in target.seeds() {
            let outcome = std::panic::catch_unwind(|| (target.run)(&input));
            assert!(outcome.is_ok(), "{}: {} fails", target.name, path.display());
        }
    }
}

/// `fuzz/fuzz_targets/` has exactly one file per target, so cargo-fuzz runs them all.
#[test]
fn cargo_fuzz_has_every_target() {
    let dir = targets::fixtures_dir().join("../fuzz/fuzz_targets");
    let files: BTreeSet<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| Some(path.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    let names: BTreeSet<String> = TARGETS.iter().map(|t| t.name.to_owned()).collect();
    assert_eq!(files, names);
}

/// Writes each target's seeds to `fuzz/corpus/<target>/seed-<dir>-<file>`, where cargo-fuzz
/// starts from (and keeps what it finds beside them).
#[test]
#[ignore = "writes cargo-fuzz's seed corpora; `cargo xtask fuzz` runs it"]
fn write_seed_corpora() {
    for target in &TARGETS {
        let corpus = targets::fixtures_dir()
            .join("../fuzz/corpus")
            .join(target.name);
        std::fs::create_dir_all(&corpus).unwrap();
        for (path, input) in target.seeds() {
            let dir = path
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy();
            let file = path.file_name().unwrap().to_string_lossy();
            std::fs::write(corpus.join(format!("seed-{dir}-{file}")), input).unwrap();
        }
    }
}

/// Every ConverseStream event botocore's model allows is one the adapter reads: whatever the
/// order of the events, none is a malformed-event protocol error.
#[test]
fn every_stream_event_botocore_allows_decodes() {
    let events = [
        "messageStart",
        "contentBlockStart",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ];
    let model = bedrock_runtime();
    let event = proptest::strategy::Union::new(events.map(|event| {
        let shape = model.shape("ConverseStreamOutput").unwrap()["members"][event]["shape"]
            .as_str()
            .unwrap();
        value_of(shape, 1)
            .prop_map(move |payload| (event, payload))
            .boxed()
    }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(event, 1..6), |events| {
        let mut body = Vec::new();
        for (event, payload) in &events {
            let message = Message::new_from_parts(
                vec![
                    Header::new(":message-type", HeaderValue::String("event".into())),
                    Header::new(":event-type", HeaderValue::String((*event).into())),
                ],
                bytes::Bytes::from(serde_json::to_vec(payload).unwrap()),
            );
            aws_smithy_eventstream::frame::write_message_to(&message, &mut body).unwrap();
        }
        let chunks = [Ok::<_, std::convert::Infallible>(bytes::Bytes::from(body))];
        let decoded: Vec<_> = runtime.block_on(
            gateway_adapter_bedrock::testing::converse_stream_events(
                Arc::from("acct"),
                futures_util::stream::iter(chunks),
                std::time::Duration::from_secs(60),
                None,
            )
            .collect(),
        );
        for item in decoded {
            if let Err(error) = item {
                prop_assert!(!error.to_string().starts_with("malformed "), "{error}");
            }
        }
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}
