//! Helpers building the usual ConverseStream event sequences as [`StreamStep`]s.
//!
//! Every sequence follows Bedrock's order: `messageStart`, per content block
//! (`contentBlockStart` for tool blocks,) `contentBlockDelta`s and `contentBlockStop`, then
//! `messageStop` and `metadata`. As in botocore's `ContentBlockStart` union, only tool blocks
//! have a `contentBlockStart`: text and reasoning blocks begin with their first delta.

use serde_json::{json, Value};

use crate::script::{Reply, StreamStep};

/// `latencyMs` reported in the `metadata` event of scripted streams.
pub const SCRIPTED_LATENCY_MS: u64 = 120;

/// A text answer: `messageStart`, one `contentBlockDelta` per chunk (block 0),
/// `contentBlockStop`, `messageStop{stopReason}`, `metadata{usage, metrics}`.
pub fn text(chunks: &[&str], stop_reason: &str, usage: (u32, u32)) -> Vec<StreamStep> {
    let mut steps = vec![message_start()];
    steps.extend(chunks.iter().map(|chunk| text_delta(0, chunk)));
    steps.push(block_stop(0));
    steps.push(message_stop(stop_reason, None));
    steps.push(metadata(
        &Reply::default().usage(usage.0, usage.1),
        SCRIPTED_LATENCY_MS,
    ));
    steps
}

/// A tool call, optionally preceded by a text block: `contentBlockStart{start:{toolUse}}`,
/// one `{toolUse:{input}}` delta per chunk of the input JSON, `contentBlockStop`, stop reason
/// `tool_use`, usage `(10, <number of chunks>)`.
pub fn tool_use(
    text_first: Option<&str>,
    tool_id: &str,
    name: &str,
    input_json_chunks: &[&str],
) -> Vec<StreamStep> {
    let mut steps = vec![message_start()];
    let mut index = 0;
    if let Some(text) = text_first {
        steps.push(text_delta(index, text));
        steps.push(block_stop(index));
        index += 1;
    }
    steps.push(StreamStep::event(
        "contentBlockStart",
        json!({
            "contentBlockIndex": index,
            "start": { "toolUse": { "toolUseId": tool_id, "name": name } },
        }),
    ));
    for chunk in input_json_chunks {
        steps.push(StreamStep::event(
            "contentBlockDelta",
            json!({ "contentBlockIndex": index, "delta": { "toolUse": { "input": chunk } } }),
        ));
    }
    steps.push(block_stop(index));
    steps.push(message_stop("tool_use", None));
    let output = u32::try_from(input_json_chunks.len()).unwrap_or(u32::MAX);
    steps.push(metadata(
        &Reply::default().usage(10, output),
        SCRIPTED_LATENCY_MS,
    ));
    steps
}

/// The stream equivalent of a Converse [`Reply`]: text blocks are split into one delta per
/// word (whitespace kept, so the deltas concatenate to the text), `toolUse` blocks become
/// start + one input delta + stop, `reasoningText` blocks one `reasoningContent.text` delta per
/// word then a `reasoningContent.signature` delta, `redactedContent` blocks one
/// `reasoningContent.redactedContent` delta; `additionalModelResponseFields` goes into
/// `messageStop`, and usage (with cache counts), `trace`, `serviceTier` and
/// `performanceConfig` into `metadata`.
pub fn from_reply(reply: &Reply) -> Vec<StreamStep> {
    from_reply_with_latency(reply, SCRIPTED_LATENCY_MS)
}

pub(crate) fn from_reply_with_latency(reply: &Reply, latency_ms: u64) -> Vec<StreamStep> {
    let mut steps = vec![message_start()];
    for (index, block) in reply.content.iter().enumerate() {
        if let Some(text) = block.get("text").and_then(Value::as_str) {
            steps.extend(split_words(text).map(|chunk| text_delta(index, chunk)));
        } else if let Some(tool) = block.get("toolUse") {
            steps.push(StreamStep::event(
                "contentBlockStart",
                json!({
                    "contentBlockIndex": index,
                    "start": { "toolUse": {
                        "toolUseId": tool.get("toolUseId").cloned().unwrap_or(Value::Null),
                        "name": tool.get("name").cloned().unwrap_or(Value::Null),
                    } },
                }),
            ));
            let input = tool.get("input").cloned().unwrap_or_else(|| json!({}));
            steps.push(StreamStep::event(
                "contentBlockDelta",
                json!({
                    "contentBlockIndex": index,
                    "delta": { "toolUse": { "input": input.to_string() } },
                }),
            ));
        } else if let Some(reasoning) = block.get("reasoningContent") {
            if let Some(rt) = reasoning.get("reasoningText") {
                if let Some(text) = rt.get("text").and_then(Value::as_str) {
                    steps.extend(split_words(text).map(|chunk| {
                        delta(index, json!({ "reasoningContent": { "text": chunk } }))
                    }));
                }
                if let Some(signature) = rt.get("signature") {
                    steps.push(delta(
                        index,
                        json!({ "reasoningContent": { "signature": signature } }),
                    ));
                }
            } else if let Some(redacted) = reasoning.get("redactedContent") {
                steps.push(delta(
                    index,
                    json!({ "reasoningContent": { "redactedContent": redacted } }),
                ));
            }
        } else {
            // Other block kinds have no stream form in Bedrock; skip them.
            continue;
        }
        steps.push(block_stop(index));
    }
    steps.push(message_stop(
        &reply.stop_reason,
        reply.additional_model_response_fields.as_ref(),
    ));
    steps.push(metadata(reply, latency_ms));
    steps
}

/// Splits text into chunks of one word each, keeping the whitespace after each word.
pub(crate) fn split_words(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let leading = rest.len() - rest.trim_start().len();
        let word_end = rest[leading..]
            .find(char::is_whitespace)
            .map_or(rest.len(), |i| leading + i);
        let after = rest[word_end..].trim_start();
        let end = rest.len() - after.len();
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

fn message_start() -> StreamStep {
    StreamStep::event("messageStart", json!({ "role": "assistant" }))
}

fn text_delta(index: usize, text: &str) -> StreamStep {
    delta(index, json!({ "text": text }))
}

fn delta(index: usize, delta: Value) -> StreamStep {
    StreamStep::event(
        "contentBlockDelta",
        json!({ "contentBlockIndex": index, "delta": delta }),
    )
}

fn block_stop(index: usize) -> StreamStep {
    StreamStep::event("contentBlockStop", json!({ "contentBlockIndex": index }))
}

fn message_stop(stop_reason: &str, fields: Option<&Value>) -> StreamStep {
    let mut payload = json!({ "stopReason": stop_reason });
    if let (Some(map), Some(fields)) = (payload.as_object_mut(), fields) {
        map.insert("additionalModelResponseFields".to_owned(), fields.clone());
    }
    StreamStep::event("messageStop", payload)
}

/// The `metadata` event of `reply`: usage, metrics, and trace, service tier and performance
/// configuration when set.
fn metadata(reply: &Reply, latency_ms: u64) -> StreamStep {
    let mut payload = json!({
        "usage": reply.usage_json(),
        "metrics": { "latencyMs": latency_ms },
    });
    if let Some(map) = payload.as_object_mut() {
        if let Some(trace) = &reply.trace {
            map.insert("trace".to_owned(), trace.clone());
        }
        reply.insert_tier_and_latency(map);
    }
    StreamStep::event("metadata", payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_words_keeps_every_byte() {
        let text = "You said:  hello\nworld ";
        let chunks: Vec<&str> = split_words(text).collect();
        assert_eq!(chunks, ["You ", "said:  ", "hello\n", "world "]);
        assert_eq!(chunks.concat(), text);
        assert_eq!(split_words("  lead").collect::<Vec<_>>(), ["  lead"]);
    }

    #[test]
    fn text_sequence_order() {
        let names: Vec<String> = text(&["a", "b"], "end_turn", (1, 2))
            .into_iter()
            .map(|s| match s {
                StreamStep::Event { event_type, .. } => event_type,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            names,
            [
                "messageStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
    }
}
