//! Scalar parameters: token limits, sampling, stop sequences and stream options.

use gateway_core::request_limits::{check_count, MAX_STOP_SEQUENCES};
use serde_json::Value;

use super::fields::{invalid_type, invalid_value, At, RequestError};

pub(crate) fn positive_u32(value: Value, at: &At<'_>) -> Result<u32, RequestError> {
    match &value {
        Value::Number(number) => number
            .as_u64()
            .filter(|&n| n > 0)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| invalid_value(at, "must be a positive integer")),
        _ => Err(invalid_type(at, "a positive integer")),
    }
}

pub(super) fn number_in(
    value: Value,
    at: &At<'_>,
    min: f64,
    max: f64,
) -> Result<f32, RequestError> {
    let Some(number) = value.as_f64() else {
        return Err(invalid_type(at, "a number"));
    };
    if !(min..=max).contains(&number) {
        return Err(invalid_value(
            at,
            format!("must be between {min} and {max}"),
        ));
    }
    // Within the checked range f32 only loses digits no sampler distinguishes.
    Ok(number as f32)
}

pub(crate) fn boolean(value: Value, at: &At<'_>) -> Result<bool, RequestError> {
    value.as_bool().ok_or_else(|| invalid_type(at, "a boolean"))
}

pub(super) fn stop_sequences(value: Value, at: &At<'_>) -> Result<Vec<String>, RequestError> {
    let non_empty = |text: String, at: &At<'_>| {
        if text.is_empty() {
            Err(invalid_value(at, "stop sequences must not be empty"))
        } else {
            Ok(text)
        }
    };
    match value {
        Value::String(text) => Ok(vec![non_empty(text, at)?]),
        Value::Array(items) => {
            check_count(items.len(), MAX_STOP_SEQUENCES, "stop sequences")
                .map_err(|message| invalid_value(at, message))?;
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let at = at.index(i);
                    match item {
                        Value::String(text) => non_empty(text, &at),
                        _ => Err(invalid_type(&at, "a string")),
                    }
                })
                .collect()
        }
        _ => Err(invalid_type(at, "a string or an array of strings")),
    }
}

pub(super) fn stream_options(value: Value, at: &At<'_>) -> Result<bool, RequestError> {
    let Value::Object(mut options) = value else {
        return Err(invalid_type(at, "an object"));
    };
    match options.remove("include_usage") {
        None | Some(Value::Null) => Ok(false),
        Some(value) => boolean(value, &at.key("include_usage")),
    }
}
