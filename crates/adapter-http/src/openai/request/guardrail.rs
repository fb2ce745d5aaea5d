//! `guardrailConfig`: the guardrail the client asks for, checked strictly since a misspelt
//! key would silently weaken it.

use gateway_core::{GuardrailConfig, GuardrailTrace, StreamProcessingMode};
use serde_json::{Map, Value};

use super::fields::{invalid_type, invalid_value, missing, required_string, At, RequestError};

pub(crate) fn guardrail_config(value: Value, at: &At<'_>) -> Result<GuardrailConfig, RequestError> {
    let Value::Object(mut config) = value else {
        return Err(invalid_type(at, "an object"));
    };
    let identifier = required_string(&mut config, "guardrailIdentifier", at)?;
    if identifier.is_empty() {
        return Err(invalid_value(
            &at.key("guardrailIdentifier"),
            "must not be empty",
        ));
    }
    let version_at = at.key("guardrailVersion");
    let version = match config.remove("guardrailVersion") {
        None | Some(Value::Null) => return Err(missing(&version_at)),
        Some(Value::String(version)) if version.is_empty() => {
            return Err(invalid_value(&version_at, "must not be empty"))
        }
        Some(Value::String(version)) => version,
        // The seed's clients send `"1"`, but a bare number is an easy slip to forgive.
        Some(Value::Number(number)) if number.is_u64() => number.to_string(),
        Some(_) => {
            return Err(invalid_type(
                &version_at,
                "a string such as \"1\" or \"DRAFT\"",
            ))
        }
    };
    let trace = optional_enum(
        &mut config,
        "trace",
        at,
        GuardrailTrace::parse,
        &GuardrailTrace::ALL,
    )?;
    let stream_processing_mode = optional_enum(
        &mut config,
        "streamProcessingMode",
        at,
        StreamProcessingMode::parse,
        &StreamProcessingMode::ALL,
    )?;
    // A misspelt key would silently weaken a guardrail, so unknown keys are refused here
    // although they are ignored elsewhere.
    if let Some(key) = config.keys().next() {
        return Err(invalid_value(
            &at.key_owned(key),
            "unknown field: expected guardrailIdentifier, guardrailVersion, trace or \
             streamProcessingMode",
        ));
    }
    Ok(GuardrailConfig {
        identifier,
        version,
        trace,
        stream_processing_mode,
    })
}

fn optional_enum<T>(
    object: &mut Map<String, Value>,
    key: &'static str,
    at: &At<'_>,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &[&str],
) -> Result<Option<T>, RequestError> {
    let at = at.key(key);
    match object.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => parse(&value).map(Some).ok_or_else(|| {
            invalid_value(
                &at,
                format!(
                    "unknown value {value:?}: expected one of {}",
                    allowed.join(", ")
                ),
            )
        }),
        Some(_) => Err(invalid_type(&at, "a string")),
    }
}
