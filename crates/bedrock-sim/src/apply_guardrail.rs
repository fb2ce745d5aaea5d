//! Bedrock Runtime's ApplyGuardrail: `POST /guardrail/{guardrailIdentifier}/version/
//! {guardrailVersion}/apply`. Authenticated (SigV4 verified) and counted like Converse, under
//! the guardrail identifier (not recorded: [`crate::Operation`] names model operations). The
//! guardrail reuses the Converse guardrail's behaviour, chosen by the script set for the
//! guardrail identifier:
//!
//! - [`Script::GuardrailBlockWords`]: any text holding one of `words` -> intervened, `outputs`
//!   `[message]`, a `wordPolicy.customWords` assessment;
//! - [`Script::GuardrailBlockInput`]: any `INPUT` -> intervened, `outputs` `[message]`, a
//!   blocked content filter;
//! - anything else: e-mail addresses and the names Elon, Musk, Jane and Doe are masked
//!   (`{EMAIL}`, `{NAME}`); if any was, intervened with one output per text block and a
//!   `sensitiveInformationPolicy.piiEntities` assessment, else `NONE` with no outputs.
//!
//! A failure set for the identifier answers instead: [`crate::Fault::Error`] as an error,
//! [`crate::Fault::Close`] / [`crate::Fault::Reset`] by dropping the connection; the others
//! (stalls, cut bodies, stream exceptions) concern model answers and are not played here.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::Response;
use serde_json::{json, Value};

use crate::bedrock::{auth_error, error_response, json_response};
use crate::body::SimBody;
use crate::failure::Fault;
use crate::guardrail::{blocked_words, mask};
use crate::server::Abort;
use crate::sigv4::{authenticate, presented_auth};
use crate::state::Shared;
use crate::Script;

pub(crate) fn handle(
    shared: &Arc<Shared>,
    raw_identifier: &str,
    raw_version: &str,
    parts: &Parts,
    body: &Bytes,
) -> Result<Response<SimBody>, Abort> {
    let decoded = |label: &str| {
        percent_encoding::percent_decode_str(label)
            .decode_utf8()
            .ok()
            .map(|text| text.into_owned())
    };
    let (Some(identifier), Some(version)) = (decoded(raw_identifier), decoded(raw_version)) else {
        return Ok(error_response(
            400,
            "ValidationException",
            "The provided guardrail identifier or version is invalid.",
        ));
    };
    let auth = if shared.verify {
        authenticate(shared, parts, body, "bedrock", true)
    } else {
        Ok(presented_auth(parts))
    };
    shared.calls.count(&identifier);
    if let Err(failure) = auth {
        return Ok(auth_error(&failure));
    }
    match shared.fault_for(&identifier) {
        Some(Fault::Error {
            status,
            kind,
            message,
        }) => return Ok(error_response(status, &kind, &message)),
        Some(Fault::Close) => return Err(Abort::Close),
        Some(Fault::Reset) => return Err(Abort::Reset),
        _ => {}
    }
    if version != "DRAFT" && version.parse::<u32>().is_err() {
        return Ok(error_response(
            400,
            "ValidationException",
            "The guardrail version must be a number or DRAFT.",
        ));
    }
    let Some((source, texts)) = read_request(body) else {
        return Ok(error_response(
            400,
            "ValidationException",
            "Malformed input request, please reformat your input and try again.",
        ));
    };
    let script = shared.script_for(&identifier);
    Ok(json_response(&answer(&script, &source, &texts)))
}

/// `source` and the text of every content block; `None` when the body is not a valid
/// ApplyGuardrail request (a block without text, an unknown source, no content).
fn read_request(body: &[u8]) -> Option<(String, Vec<String>)> {
    let request: Value = serde_json::from_slice(body).ok()?;
    let source = request.get("source")?.as_str()?;
    if !matches!(source, "INPUT" | "OUTPUT") {
        return None;
    }
    let content = request.get("content")?.as_array()?;
    if content.is_empty() {
        return None;
    }
    let texts = content
        .iter()
        .map(|block| Some(block.get("text")?.get("text")?.as_str()?.to_owned()))
        .collect::<Option<Vec<_>>>()?;
    Some((source.to_owned(), texts))
}

fn answer(script: &Script, source: &str, texts: &[String]) -> Value {
    let borrowed: Vec<&str> = texts.iter().map(String::as_str).collect();
    let text_units = texts.len();
    match script {
        Script::GuardrailBlockWords { message, words } => {
            let found = blocked_words(&borrowed, words);
            if !found.is_empty() {
                let words: Vec<Value> = found
                    .iter()
                    .map(|word| json!({ "match": word, "action": "BLOCKED", "detected": true }))
                    .collect();
                return intervened(
                    vec![message.clone()],
                    json!([{ "wordPolicy": { "customWords": words } }]),
                    usage(text_units, "wordPolicyUnits"),
                );
            }
        }
        Script::GuardrailBlockInput { message } if source == "INPUT" => {
            return intervened(
                vec![message.clone()],
                json!([{ "contentPolicy": { "filters": [{
                    "type": "VIOLENCE",
                    "confidence": "HIGH",
                    "filterStrength": "HIGH",
                    "action": "BLOCKED",
                    "detected": true,
                }] } }]),
                usage(text_units, "contentPolicyUnits"),
            );
        }
        _ => {}
    }
    let mut outputs = Vec::with_capacity(texts.len());
    let mut entities = Vec::new();
    for text in texts {
        let (masked, found) = mask(text);
        outputs.push(masked);
        entities.extend(found.into_iter().map(|m| {
            json!({ "match": m.text, "type": m.kind, "action": "ANONYMIZED", "detected": true })
        }));
    }
    let usage = usage(text_units, "sensitiveInformationPolicyUnits");
    if entities.is_empty() {
        return json!({ "usage": usage, "action": "NONE", "outputs": [], "assessments": [{}] });
    }
    intervened(
        outputs,
        json!([{ "sensitiveInformationPolicy": { "piiEntities": entities } }]),
        usage,
    )
}

fn intervened(outputs: Vec<String>, assessments: Value, usage: Value) -> Value {
    let outputs: Vec<Value> = outputs
        .into_iter()
        .map(|text| json!({ "text": text }))
        .collect();
    json!({
        "usage": usage,
        "action": "GUARDRAIL_INTERVENED",
        "outputs": outputs,
        "assessments": assessments,
    })
}

/// Bedrock's usage object, every policy at 0 but `policy`, which counts one unit per text.
fn usage(text_units: usize, policy: &str) -> Value {
    let mut usage = json!({
        "topicPolicyUnits": 0,
        "contentPolicyUnits": 0,
        "wordPolicyUnits": 0,
        "sensitiveInformationPolicyUnits": 0,
        "sensitiveInformationPolicyFreeUnits": 0,
        "contextualGroundingPolicyUnits": 0,
    });
    usage[policy] = json!(text_units);
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn pii_is_masked_block_by_block() {
        let answer = answer(&Script::Echo, "OUTPUT", &texts(&["Hi Jane", "no pii"]));
        assert_eq!(answer["action"], "GUARDRAIL_INTERVENED");
        assert_eq!(
            answer["outputs"],
            json!([{"text": "Hi {NAME}"}, {"text": "no pii"}])
        );
    }

    #[test]
    fn clean_text_passes() {
        let answer = answer(&Script::Echo, "INPUT", &texts(&["nothing here"]));
        assert_eq!(answer["action"], "NONE");
        assert_eq!(answer["outputs"], json!([]));
    }

    #[test]
    fn blocked_words_answer_the_message() {
        let script = Script::GuardrailBlockWords {
            message: "blocked".into(),
            words: vec!["secret".into()],
        };
        let answer = answer(&script, "INPUT", &texts(&["the Secret plan"]));
        assert_eq!(answer["outputs"], json!([{"text": "blocked"}]));
        assert_eq!(
            answer["assessments"][0]["wordPolicy"]["customWords"][0]["match"],
            "secret"
        );
    }

    #[test]
    fn malformed_requests_are_refused() {
        assert!(read_request(br#"{"source":"INPUT","content":[]}"#).is_none());
        assert!(read_request(br#"{"source":"input","content":[{"text":{"text":"a"}}]}"#).is_none());
        assert!(read_request(br#"{"source":"INPUT","content":[{"image":{}}]}"#).is_none());
        assert_eq!(
            read_request(br#"{"source":"OUTPUT","content":[{"text":{"text":"a"}}]}"#),
            Some(("OUTPUT".into(), vec!["a".into()]))
        );
    }
}
