//! OpenAI parameters Bedrock has no counterpart for.
//!
//! Some are accepted and ignored, because they ask for nothing Bedrock would do differently
//! (`user`, `store`, `parallel_tool_calls`, `prompt_cache_key`, `safety_identifier`, and the
//! defaults `n: 1`, `logprobs: false`, `modalities: ["text"]`). The others ask for something
//! the gateway cannot give (several choices, log probabilities, audio, a seed, ...): they are
//! type-checked, then named in [`ChatRequest::unsupported_parameters`] so the service can
//! refuse the request, or drop them when the operator allows it.
//!
//! [`ChatRequest::unsupported_parameters`]: gateway_core::ChatRequest::unsupported_parameters

use serde_json::Value;

use super::fields::{invalid_type, invalid_value, optional, unsupported, At, RequestError};
use super::params::{boolean, positive_u32};
use super::raw::RawRequest;

/// Whether a parameter's value asks for more than Bedrock gives; its type is checked either
/// way.
type AsksForMore = fn(Value, &At<'_>) -> Result<bool, RequestError>;

/// The parameters [`unsupported_parameters`] reports, in the order it checks them (the
/// service names the first).
const UNSUPPORTED: [(&str, AsksForMore); 10] = [
    ("n", |value, at| Ok(positive_u32(value, at)? > 1)),
    ("logprobs", boolean),
    ("top_logprobs", integer),
    ("logit_bias", object),
    ("audio", object),
    ("modalities", modalities_ask_for_audio),
    ("prediction", object),
    ("presence_penalty", number),
    ("frequency_penalty", number),
    ("seed", integer),
];

/// The name of an unsupported parameter as a `&'static str` from the fixed set, for a
/// metric label; `None` for any other name.
pub(crate) fn unsupported_parameter_name(name: &str) -> Option<&'static str> {
    UNSUPPORTED
        .iter()
        .map(|(known, _)| *known)
        .find(|known| *known == name)
}

/// Type-checks the fields that are accepted and ignored.
pub(super) fn check_ignored(raw: &mut RawRequest) -> Result<(), RequestError> {
    let string = |value: Value, at: &At<'_>| match value {
        Value::String(_) => Ok(()),
        _ => Err(invalid_type(at, "a string")),
    };
    optional(raw.user.take(), &At::Root("user"), string)?;
    optional(
        raw.prompt_cache_key.take(),
        &At::Root("prompt_cache_key"),
        string,
    )?;
    optional(
        raw.safety_identifier.take(),
        &At::Root("safety_identifier"),
        string,
    )?;
    optional(raw.store.take(), &At::Root("store"), boolean)?;
    optional(
        raw.parallel_tool_calls.take(),
        &At::Root("parallel_tool_calls"),
        boolean,
    )?;
    Ok(())
}

/// The names of the parameters that ask for what Bedrock cannot do, in [`UNSUPPORTED`]
/// order; a badly typed one is still a 400 of its own.
pub(super) fn unsupported_parameters(raw: &mut RawRequest) -> Result<Vec<String>, RequestError> {
    // In `UNSUPPORTED` order.
    let values = [
        raw.n.take(),
        raw.logprobs.take(),
        raw.top_logprobs.take(),
        raw.logit_bias.take(),
        raw.audio.take(),
        raw.modalities.take(),
        raw.prediction.take(),
        raw.presence_penalty.take(),
        raw.frequency_penalty.take(),
        raw.seed.take(),
    ];
    let mut asked = Vec::new();
    for ((name, asks_for_more), value) in UNSUPPORTED.into_iter().zip(values) {
        if optional(value, &At::Root(name), asks_for_more)? == Some(true) {
            asked.push(name.to_owned());
        }
    }
    Ok(asked)
}

/// Any integer asks for something (`seed`, `top_logprobs`).
fn integer(value: Value, at: &At<'_>) -> Result<bool, RequestError> {
    match value {
        Value::Number(number) if number.is_i64() || number.is_u64() => Ok(true),
        _ => Err(invalid_type(at, "an integer")),
    }
}

/// Any number asks for something (the penalties).
fn number(value: Value, at: &At<'_>) -> Result<bool, RequestError> {
    match value {
        Value::Number(_) => Ok(true),
        _ => Err(invalid_type(at, "a number")),
    }
}

/// Any object asks for something (`logit_bias`, `audio`, `prediction`).
fn object(value: Value, at: &At<'_>) -> Result<bool, RequestError> {
    match value {
        Value::Object(_) => Ok(true),
        _ => Err(invalid_type(at, "an object")),
    }
}

fn modalities_ask_for_audio(value: Value, at: &At<'_>) -> Result<bool, RequestError> {
    let Value::Array(items) = value else {
        return Err(invalid_type(at, "an array of strings"));
    };
    let mut audio = false;
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some("text") => {}
            Some("audio") => audio = true,
            Some(other) => {
                return Err(invalid_value(
                    &at.index(i),
                    format!("unknown value {other:?}: expected text or audio"),
                ))
            }
            None => return Err(invalid_type(&at.index(i), "a string")),
        }
    }
    Ok(audio)
}

/// `functions` and `function_call`, OpenAI's predecessors of `tools` and `tool_choice`.
pub(super) fn refuse_deprecated(raw: &RawRequest) -> Result<(), RequestError> {
    let deprecated = [
        (&raw.functions, "functions", "tools"),
        (&raw.function_call, "function_call", "tool_choice"),
    ];
    for (value, name, instead) in deprecated {
        if value.is_some() {
            return Err(unsupported(
                &At::Root(name),
                format!("the deprecated `{name}` parameter is not supported: use `{instead}`"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each parameter is read from its own field: a body setting only that field reports
    /// exactly its name.
    #[test]
    fn each_unsupported_parameter_is_reported_by_its_own_name() {
        let asking = [
            ("n", "2"),
            ("logprobs", "true"),
            ("top_logprobs", "0"),
            ("logit_bias", "{}"),
            ("audio", r#"{"voice": "alloy"}"#),
            ("modalities", r#"["text", "audio"]"#),
            ("prediction", r#"{"type": "content"}"#),
            ("presence_penalty", "0"),
            ("frequency_penalty", "0.5"),
            ("seed", "42"),
        ];
        assert_eq!(asking.len(), UNSUPPORTED.len());
        for (name, value) in asking {
            let mut raw: RawRequest =
                serde_json::from_str(&format!("{{\"{name}\": {value}}}")).unwrap();
            assert_eq!(unsupported_parameters(&mut raw).unwrap(), [name], "{name}");
            assert_eq!(unsupported_parameter_name(name), Some(name));
        }
        assert_eq!(unsupported_parameter_name("temperature"), None);
    }

    #[test]
    fn defaults_ask_for_nothing() {
        let mut raw: RawRequest =
            serde_json::from_str(r#"{"n": 1, "logprobs": false, "modalities": ["text"]}"#).unwrap();
        assert!(unsupported_parameters(&mut raw).unwrap().is_empty());
    }
}
