//! Bedrock Runtime: `POST /model/{modelId}/converse`, `/converse-stream` and `/count-tokens`.
//! Authenticates, records, validates the body and answers according to the model's
//! [`Script`]; `/invoke` (embedding models, see [`crate::embedding`]) after the same
//! authentication, recording and failures.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::request::Parts;
use http::{Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::body::{BodyCut, Chunk, SimBody};
use crate::failure::Fault;
use crate::frame::{corrupt_crc, event_frame, exception_frame, oversized_prelude};
use crate::model::Model;
use crate::server::Abort;
use crate::sigv4::{authenticate, presented_auth, AuthFailure};
use crate::state::{request_id, shutdown_signal, Shared, StoredRequest};
use crate::stream::{from_reply_with_latency, SCRIPTED_LATENCY_MS};
use crate::{guardrail, model_id, prompt, rules, CacheUsage, Operation, Reply, Script, StreamStep};

const ERROR_NAMESPACE: &str = ":http://internal.amazon.com/coral/com.amazon.bedrock/";
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";
const PADDING: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Handles one Converse / ConverseStream request whose body was read: an answer, or
/// [`Abort`] when a [`Fault`] drops the connection instead.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    operation: Operation,
    raw_label: &str,
    parts: &Parts,
    body: Bytes,
    started: Instant,
) -> Result<Response<SimBody>, Abort> {
    let Ok(model_id) = percent_encoding::percent_decode_str(raw_label).decode_utf8() else {
        return Ok(error_response(
            400,
            "ValidationException",
            "The provided model identifier is invalid.",
        ));
    };
    let model_id = model_id.into_owned();

    let auth = if shared.verify {
        authenticate(shared, parts, &body, "bedrock", true)
    } else {
        Ok(presented_auth(parts))
    };
    if shared.record {
        shared.record(StoredRequest {
            operation,
            model_id: model_id.clone(),
            raw_path: parts.uri.path().to_owned(),
            headers: parts.headers.clone(),
            body: body.clone(),
            auth: match &auth {
                Ok(auth) => auth.clone(),
                Err(_) => presented_auth(parts),
            },
        });
    }
    // Counted once recorded, so a test woken by the count finds the request recorded.
    shared.calls.count(&model_id);
    if let Err(failure) = auth {
        return Ok(auth_error(&failure));
    }

    let Some(fault) = shared.fault_for(&model_id) else {
        return Ok(answer_script(shared, operation, &model_id, &body, started).await);
    };
    match fault {
        Fault::Error {
            status,
            kind,
            message,
        } => Ok(error_response(status, &kind, &message)),
        Fault::Close => Err(Abort::Close),
        Fault::Reset => Err(Abort::Reset),
        Fault::Stall(release) => {
            let released = async {
                match release {
                    Some(gate) => gate.wait().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = released => {
                    Ok(answer_script(shared, operation, &model_id, &body, started).await)
                }
                () = shutdown_signal(shared.shutdown.clone()) => {
                    let (status, kind, message) = shutting_down_error();
                    Ok(error_response(status, kind, message))
                }
            }
        }
        Fault::CutAfterEvents(events) => {
            let response = answer_script(shared, operation, &model_id, &body, started).await;
            if !response.status().is_success() {
                return Ok(response);
            }
            Ok(response.map(|body| body.cut_after_frames(events)))
        }
        Fault::ExceptionEvent {
            exception_type,
            message,
        } => Ok(match operation {
            Operation::ConverseStream => stream_response(spawn_stream(
                shared,
                vec![StreamStep::Exception {
                    exception_type,
                    message,
                }],
            )),
            Operation::Converse | Operation::CountTokens | Operation::InvokeModel => {
                let (status, kind) = exception_status(&exception_type);
                error_response(status, &kind, &message)
            }
        }),
    }
}

/// Answers an authenticated call with the model's script.
async fn answer_script(
    shared: &Arc<Shared>,
    operation: Operation,
    model_id: &str,
    body: &Bytes,
    started: Instant,
) -> Response<SimBody> {
    if model_id::is_on_demand(model_id) && shared.profile_only.contains(model_id::base(model_id)) {
        return error_response(
            400,
            "ValidationException",
            &model_id::on_demand_refusal(model_id),
        );
    }

    if operation == Operation::InvokeModel {
        return crate::embedding::response(model_id, body);
    }
    let script = shared.script_for(model_id);
    if matches!(*script, Script::Fixed) && !shared.verify {
        return fixed(shared, operation);
    }
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            return error_response(
                400,
                "ValidationException",
                "Malformed input request, please reformat your input and try again.",
            )
        }
    };
    if let Err(message) = rules::check(&request, model_id) {
        return error_response(400, "ValidationException", &message);
    }
    let model = Model::new(&request, model_id, shared);
    let latency = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);

    match &*script {
        Script::Fixed => fixed(shared, operation),
        Script::Error {
            status,
            kind,
            message,
        } => error_response(*status, kind, message),
        Script::Raw {
            status,
            content_type,
            body,
        } => raw_response(*status, content_type, SimBody::full(body.clone())),
        Script::CutBody {
            status,
            content_type,
            body,
        } => raw_response(*status, content_type, SimBody::cut(body.clone())),
        Script::Stall => match operation {
            Operation::ConverseStream => {
                stream_response(spawn_stream(shared, vec![StreamStep::Hold]))
            }
            Operation::Converse | Operation::CountTokens | Operation::InvokeModel => {
                shutdown_signal(shared.shutdown.clone()).await;
                let (status, kind, message) = shutting_down_error();
                error_response(status, kind, message)
            }
        },
        Script::Stream(steps) => match operation {
            Operation::ConverseStream => stream_response(spawn_stream(shared, steps.clone())),
            Operation::Converse | Operation::CountTokens | Operation::InvokeModel => {
                match aggregate(shared, steps).await {
                    Aggregated::Reply(reply) => json_response(&reply.to_converse_json(latency())),
                    Aggregated::Error(status, kind, message) => {
                        error_response(status, &kind, &message)
                    }
                }
            }
        },
        Script::Reply(reply) => answer(shared, operation, &model.fixed(reply), latency()),
        Script::Echo | Script::Sequence(_) => answer(shared, operation, &model.echo(), latency()),
        Script::GuardrailMask => {
            let reply = match guardrail::config(&request) {
                Some(cfg) => model.guardrail_mask(&cfg),
                None => model.echo(),
            };
            answer(shared, operation, &reply, latency())
        }
        Script::GuardrailBlockInput { message } => {
            let reply = match guardrail::config(&request) {
                Some(cfg) => {
                    let trace = cfg.trace.then(|| guardrail::input_trace(&cfg.id));
                    model.guardrail_blocked(message, trace)
                }
                None => model.echo(),
            };
            answer(shared, operation, &reply, latency())
        }
        Script::GuardrailBlockWords { message, words } => {
            let reply = match guardrail::config(&request) {
                Some(cfg) => model.guardrail_block_words(&cfg, message, words),
                None => model.echo(),
            };
            answer(shared, operation, &reply, latency())
        }
        Script::ThinkingToolLoop { tool, input } => answer(
            shared,
            operation,
            &model.thinking_tool_loop(tool, input),
            latency(),
        ),
    }
}

fn answer(
    shared: &Arc<Shared>,
    operation: Operation,
    reply: &Reply,
    latency: u64,
) -> Response<SimBody> {
    match operation {
        Operation::Converse | Operation::CountTokens | Operation::InvokeModel => {
            json_response(&reply.to_converse_json(latency))
        }
        Operation::ConverseStream => stream_response(spawn_stream(
            shared,
            from_reply_with_latency(reply, latency),
        )),
    }
}

fn fixed(shared: &Shared, operation: Operation) -> Response<SimBody> {
    match operation {
        Operation::Converse | Operation::CountTokens | Operation::InvokeModel => with_type(
            Response::new(SimBody::full(shared.fixed.converse.clone())),
            HeaderValue::from_static("application/json"),
        ),
        Operation::ConverseStream => {
            stream_response(SimBody::frames(shared.fixed.stream.iter().cloned()))
        }
    }
}

/// The precomputed [`Script::Fixed`] answer.
pub(crate) fn fixed_reply() -> Reply {
    Reply::text("This is a fixed answer.").usage(8, 5)
}

enum Aggregated {
    Reply(Reply),
    Error(u16, String, String),
}

#[derive(Default)]
struct Block {
    text: Option<String>,
    tool: Option<(Value, Value, String)>,
    reasoning_text: Option<String>,
    reasoning_signature: Option<Value>,
    redacted: Option<Value>,
}

/// Runs a stream script for a Converse call and folds its events into one answer.
async fn aggregate(shared: &Shared, steps: &[StreamStep]) -> Aggregated {
    let mut blocks: BTreeMap<u64, Block> = BTreeMap::new();
    let mut reply = Reply::default();
    for step in steps {
        match step {
            StreamStep::Event {
                event_type,
                payload,
            } => {
                fold_event(&mut reply, &mut blocks, event_type, payload);
            }
            StreamStep::Exception {
                exception_type,
                message,
            } => {
                let (status, kind) = exception_status(exception_type);
                return Aggregated::Error(status, kind, message.clone());
            }
            StreamStep::Delay(d) => {
                tokio::select! {
                    () = tokio::time::sleep(*d) => {}
                    () = shutdown_signal(shared.shutdown.clone()) => return shutting_down(),
                }
            }
            StreamStep::WaitFor(gate) => {
                tokio::select! {
                    () = gate.wait() => {}
                    () = shutdown_signal(shared.shutdown.clone()) => return shutting_down(),
                }
            }
            StreamStep::Hold => {
                shutdown_signal(shared.shutdown.clone()).await;
                return shutting_down();
            }
            StreamStep::RawBytes(_)
            | StreamStep::CorruptNextCrc
            | StreamStep::OversizedPrelude
            | StreamStep::CutMidFrame => {}
        }
    }
    reply.content = blocks
        .into_values()
        .filter_map(|b| {
            if let Some((id, name, input)) = b.tool {
                let input = if input.trim().is_empty() {
                    json!({})
                } else {
                    serde_json::from_str(&input).unwrap_or(Value::String(input))
                };
                Some(json!({ "toolUse": { "toolUseId": id, "name": name, "input": input } }))
            } else if let Some(redacted) = b.redacted {
                Some(json!({ "reasoningContent": { "redactedContent": redacted } }))
            } else if b.reasoning_text.is_some() || b.reasoning_signature.is_some() {
                Some(json!({ "reasoningContent": { "reasoningText": {
                    "text": b.reasoning_text.unwrap_or_default(),
                    "signature": b.reasoning_signature.unwrap_or(Value::Null),
                } } }))
            } else {
                b.text.map(|t| json!({ "text": t }))
            }
        })
        .collect();
    Aggregated::Reply(reply)
}

fn fold_event(
    reply: &mut Reply,
    blocks: &mut BTreeMap<u64, Block>,
    event_type: &str,
    payload: &Value,
) {
    let index = payload
        .get("contentBlockIndex")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    match event_type {
        "contentBlockStart" => {
            if let Some(tool) = payload.pointer("/start/toolUse") {
                blocks.entry(index).or_default().tool = Some((
                    tool.get("toolUseId").cloned().unwrap_or(Value::Null),
                    tool.get("name").cloned().unwrap_or(Value::Null),
                    String::new(),
                ));
            }
        }
        "contentBlockDelta" => {
            let block = blocks.entry(index).or_default();
            let Some(delta) = payload.get("delta") else {
                return;
            };
            if let Some(text) = delta.get("text").and_then(Value::as_str) {
                block.text.get_or_insert_with(String::new).push_str(text);
            }
            if let Some(input) = delta.pointer("/toolUse/input").and_then(Value::as_str) {
                block
                    .tool
                    .get_or_insert_with(|| (Value::Null, Value::Null, String::new()))
                    .2
                    .push_str(input);
            }
            if let Some(text) = delta
                .pointer("/reasoningContent/text")
                .and_then(Value::as_str)
            {
                block
                    .reasoning_text
                    .get_or_insert_with(String::new)
                    .push_str(text);
            }
            if let Some(sig) = delta.pointer("/reasoningContent/signature") {
                block.reasoning_signature = Some(sig.clone());
            }
            if let Some(redacted) = delta.pointer("/reasoningContent/redactedContent") {
                block.redacted = Some(redacted.clone());
            }
        }
        "messageStop" => {
            if let Some(reason) = payload.get("stopReason").and_then(Value::as_str) {
                reason.clone_into(&mut reply.stop_reason);
            }
            reply.additional_model_response_fields =
                payload.get("additionalModelResponseFields").cloned();
        }
        "metadata" => {
            let tokens = |name: &str| {
                payload
                    .pointer(&format!("/usage/{name}"))
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0)
            };
            reply.usage = (tokens("inputTokens"), tokens("outputTokens"));
            let has_cache_counts = payload.pointer("/usage/cacheReadInputTokens").is_some()
                || payload.pointer("/usage/cacheWriteInputTokens").is_some();
            reply.cache_usage = has_cache_counts.then(|| CacheUsage {
                read_input_tokens: tokens("cacheReadInputTokens"),
                write_input_tokens: tokens("cacheWriteInputTokens"),
            });
            reply.trace = payload.get("trace").cloned();
            reply.service_tier = payload
                .pointer("/serviceTier/type")
                .and_then(Value::as_str)
                .map(str::to_owned);
            reply.performance_latency = payload
                .pointer("/performanceConfig/latency")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        _ => {}
    }
}

/// What a call held open (stalled, waiting) answers when the simulator shuts down.
fn shutting_down_error() -> (u16, &'static str, &'static str) {
    (
        503,
        "ServiceUnavailableException",
        "bedrock-sim is shutting down",
    )
}

fn shutting_down() -> Aggregated {
    let (status, kind, message) = shutting_down_error();
    Aggregated::Error(status, kind.to_owned(), message.to_owned())
}

/// The HTTP status and error name Bedrock uses for a stream exception's type.
fn exception_status(exception_type: &str) -> (u16, String) {
    let mut kind = exception_type.to_owned();
    if let Some(first) = kind.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    let status = match kind.as_str() {
        "ValidationException" | "ServiceQuotaExceededException" => 400,
        "AccessDeniedException" => 403,
        "ResourceNotFoundException" => 404,
        "ModelTimeoutException" => 408,
        "ModelErrorException" | "ModelStreamErrorException" => 424,
        "ThrottlingException" | "ModelNotReadyException" => 429,
        "ServiceUnavailableException" => 503,
        _ => 500,
    };
    (status, kind)
}

/// Starts the producer task of a streaming body.
fn spawn_stream(shared: &Arc<Shared>, steps: Vec<StreamStep>) -> SimBody {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(run_steps(steps, tx, shared.shutdown.clone()));
    SimBody::channel(rx, Arc::clone(&shared.drops))
}

/// Runs `fut` unless the client leaves (the body is dropped) or the simulator shuts down.
async fn unless_gone<F: std::future::Future>(
    fut: F,
    tx: &mpsc::Sender<Chunk>,
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> Option<F::Output> {
    tokio::select! {
        out = fut => Some(out),
        () = tx.closed() => None,
        () = shutdown_signal(shutdown.clone()) => None,
    }
}

async fn run_steps(
    steps: Vec<StreamStep>,
    tx: mpsc::Sender<Chunk>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut corrupt_next = false;
    let mut cut_next = false;
    for step in steps {
        let frame = match step {
            StreamStep::Event {
                event_type,
                payload,
            } => event_frame(&event_type, &padded(payload)),
            StreamStep::Exception {
                exception_type,
                message,
            } => exception_frame(&exception_type, &message),
            StreamStep::RawBytes(bytes) => Ok(bytes),
            StreamStep::CorruptNextCrc => {
                corrupt_next = true;
                continue;
            }
            StreamStep::CutMidFrame => {
                cut_next = true;
                continue;
            }
            StreamStep::OversizedPrelude => {
                if unless_gone(tx.send(Ok(oversized_prelude())), &tx, &shutdown)
                    .await
                    .is_some()
                {
                    let _ = unless_gone(tx.send(Err(BodyCut)), &tx, &shutdown).await;
                }
                return;
            }
            StreamStep::Delay(duration) => {
                if unless_gone(tokio::time::sleep(duration), &tx, &shutdown)
                    .await
                    .is_none()
                {
                    return;
                }
                continue;
            }
            StreamStep::WaitFor(gate) => {
                if unless_gone(gate.wait(), &tx, &shutdown).await.is_none() {
                    return;
                }
                continue;
            }
            StreamStep::Hold => {
                let _ = unless_gone(std::future::pending::<()>(), &tx, &shutdown).await;
                return;
            }
        };
        let mut frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                tracing::warn!(error = %e, "bedrock-sim could not encode a scripted frame; cutting the stream");
                let _ = unless_gone(tx.send(Err(BodyCut)), &tx, &shutdown).await;
                return;
            }
        };
        if std::mem::take(&mut corrupt_next) {
            frame = corrupt_crc(&frame);
        }
        if cut_next {
            let half = frame.slice(..frame.len() / 2);
            if unless_gone(tx.send(Ok(half)), &tx, &shutdown)
                .await
                .is_some()
            {
                let _ = unless_gone(tx.send(Err(BodyCut)), &tx, &shutdown).await;
            }
            return;
        }
        match unless_gone(tx.send(Ok(frame)), &tx, &shutdown).await {
            Some(Ok(())) => {}
            _ => return,
        }
    }
}

/// Adds Bedrock's random-length `"p"` padding field to an object payload.
fn padded(mut payload: Value) -> Value {
    if let Some(map) = payload.as_object_mut() {
        let len = fastrand::usize(1..=PADDING.len());
        map.insert("p".to_owned(), Value::String(PADDING[..len].to_owned()));
    }
    payload
}

pub(crate) fn with_type(
    mut response: Response<SimBody>,
    content_type: HeaderValue,
) -> Response<SimBody> {
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, content_type);
    if let Ok(id) = HeaderValue::from_str(&request_id()) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

pub(crate) fn json_response(value: &Value) -> Response<SimBody> {
    with_type(
        Response::new(SimBody::full(value.to_string())),
        HeaderValue::from_static("application/json"),
    )
}

fn stream_response(body: SimBody) -> Response<SimBody> {
    with_type(Response::new(body), HeaderValue::from_static(EVENT_STREAM))
}

fn raw_response(status: u16, content_type: &str, body: SimBody) -> Response<SimBody> {
    let mut response = with_type(
        Response::new(body),
        HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
}

/// A Bedrock error: status, `x-amzn-ErrorType` and `{"message": ...}`.
pub(crate) fn error_response(status: u16, kind: &str, message: &str) -> Response<SimBody> {
    let mut response = json_response(&json!({ "message": message }));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = HeaderValue::from_str(&format!("{kind}{ERROR_NAMESPACE}")) {
        response.headers_mut().insert("x-amzn-errortype", value);
    }
    response
}

pub(crate) fn auth_error(failure: &AuthFailure) -> Response<SimBody> {
    match failure {
        AuthFailure::Missing => error_response(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ),
        AuthFailure::Incomplete(message) => {
            error_response(403, "IncompleteSignatureException", message)
        }
        AuthFailure::UnknownKey => error_response(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        AuthFailure::Expired => error_response(
            403,
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ),
        AuthFailure::BadSignature(message) => {
            error_response(403, "InvalidSignatureException", message)
        }
        AuthFailure::BadBearer => error_response(
            403,
            "AccessDeniedException",
            "Authentication failed: Please make sure your API Key is valid.",
        ),
    }
}

/// `POST /model/{modelId}/count-tokens` with a Converse input: authenticated and recorded
/// like the other operations, then `{"inputTokens": N}`, N counted as an answer's input is
/// ([`prompt::count`] of `input.converse`, which has a Converse body's shape). Scripts and
/// faults do not apply: counting never reaches the model.
pub(crate) fn count_tokens(
    shared: &Arc<Shared>,
    raw_label: &str,
    parts: &Parts,
    body: Bytes,
) -> Response<SimBody> {
    let Ok(model_id) = percent_encoding::percent_decode_str(raw_label).decode_utf8() else {
        return error_response(
            400,
            "ValidationException",
            "The provided model identifier is invalid.",
        );
    };
    let model_id = model_id.into_owned();
    let auth = if shared.verify {
        authenticate(shared, parts, &body, "bedrock", true)
    } else {
        Ok(presented_auth(parts))
    };
    if shared.record {
        shared.record(StoredRequest {
            operation: Operation::CountTokens,
            model_id: model_id.clone(),
            raw_path: parts.uri.path().to_owned(),
            headers: parts.headers.clone(),
            body: body.clone(),
            auth: match &auth {
                Ok(auth) => auth.clone(),
                Err(_) => presented_auth(parts),
            },
        });
    }
    shared.calls.count(&model_id);
    if let Err(failure) = auth {
        return auth_error(&failure);
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(converse) = request.pointer("/input/converse").filter(|c| c.is_object()) else {
        return error_response(
            400,
            "ValidationException",
            "input: expected a converse or invokeModel member",
        );
    };
    if !converse.get("messages").is_some_and(Value::is_array) {
        return error_response(
            400,
            "ValidationException",
            "input.converse.messages: a list of messages is required",
        );
    }
    json_response(&json!({ "inputTokens": prompt::count(converse, &model_id) }))
}

/// `404 UnknownOperationException` for anything that is not a simulated operation.
pub(crate) fn unknown_operation() -> Response<SimBody> {
    error_response(404, "UnknownOperationException", "Unknown operation")
}

/// Latency reported by the precomputed answers.
pub(crate) const FIXED_LATENCY_MS: u64 = SCRIPTED_LATENCY_MS;
