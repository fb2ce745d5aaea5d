//! Request options outside the prompt: `serviceTier`, `performanceConfig`, `requestMetadata`,
//! `additionalModelResponseFieldPaths` and `outputConfig`, checked as botocore's model
//! constrains them, and the answer fields they produce.

use serde_json::{json, Map, Value};

/// botocore's `ServiceTierType`.
const SERVICE_TIERS: [&str; 4] = ["priority", "default", "flex", "reserved"];
/// botocore's `PerformanceConfigLatency`.
const LATENCIES: [&str; 2] = ["standard", "optimized"];
const MAX_METADATA_PAIRS: usize = 16;
const MAX_RESPONSE_FIELD_PATHS: usize = 10;
const METADATA_PATTERN: &str = "[a-zA-Z0-9\\s:_@$#=/+,-.]";

fn enum_error(value: &Value, at: &str, allowed: &[&str]) -> String {
    let shown = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned);
    format!(
        "1 validation error detected: Value '{shown}' at '{at}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
        allowed.join(", ")
    )
}

/// botocore's constraints on the request options.
pub(crate) fn check(request: &Value) -> Result<(), String> {
    if let Some(tier) = request.get("serviceTier") {
        let kind = tier.get("type").unwrap_or(&Value::Null);
        if !kind.as_str().is_some_and(|k| SERVICE_TIERS.contains(&k)) {
            return Err(enum_error(kind, "serviceTier.type", &SERVICE_TIERS));
        }
    }
    if let Some(latency) = request.pointer("/performanceConfig/latency") {
        if !latency.as_str().is_some_and(|l| LATENCIES.contains(&l)) {
            return Err(enum_error(latency, "performanceConfig.latency", &LATENCIES));
        }
    }
    if let Some(metadata) = request.get("requestMetadata") {
        check_metadata(metadata)?;
    }
    if let Some(paths) = request.get("additionalModelResponseFieldPaths") {
        check_paths(paths)?;
    }
    if let Some(format) = request.pointer("/outputConfig/textFormat") {
        check_text_format(format)?;
    }
    Ok(())
}

fn metadata_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c.is_whitespace() || ":_@$#=/+,-.".contains(c)
}

fn check_metadata(metadata: &Value) -> Result<(), String> {
    let Some(map) = metadata.as_object() else {
        return Err("1 validation error detected: Value at 'requestMetadata' failed to satisfy constraint: Member must be a map".to_owned());
    };
    if map.is_empty() || map.len() > MAX_METADATA_PAIRS {
        let bound = if map.is_empty() {
            "greater than or equal to 1"
        } else {
            "less than or equal to 16"
        };
        return Err(format!("1 validation error detected: Value at 'requestMetadata' failed to satisfy constraint: Member must have length {bound}"));
    }
    for (key, value) in map {
        let key_ok = (1..=256).contains(&key.chars().count()) && key.chars().all(metadata_char);
        if !key_ok {
            return Err(format!("1 validation error detected: Value at 'requestMetadata' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: {METADATA_PATTERN}{{1,256}}]"));
        }
        let value_ok = value
            .as_str()
            .is_some_and(|v| v.chars().count() <= 256 && v.chars().all(metadata_char));
        if !value_ok {
            return Err(format!("1 validation error detected: Value at 'requestMetadata' failed to satisfy constraint: Map value must satisfy constraint: [Member must satisfy regular expression pattern: {METADATA_PATTERN}{{0,256}}]"));
        }
    }
    Ok(())
}

fn check_paths(paths: &Value) -> Result<(), String> {
    let Some(paths) = paths.as_array() else {
        return Err("1 validation error detected: Value at 'additionalModelResponseFieldPaths' failed to satisfy constraint: Member must be a list".to_owned());
    };
    if paths.len() > MAX_RESPONSE_FIELD_PATHS {
        return Err("1 validation error detected: Value at 'additionalModelResponseFieldPaths' failed to satisfy constraint: Member must have length less than or equal to 10".to_owned());
    }
    for (i, path) in paths.iter().enumerate() {
        let at = format!("additionalModelResponseFieldPaths.{}.member", i + 1);
        let Some(path) = path.as_str() else {
            return Err(format!("1 validation error detected: Value at '{at}' failed to satisfy constraint: Member must be a string"));
        };
        if !(1..=256).contains(&path.chars().count()) {
            return Err(format!("1 validation error detected: Value '{path}' at '{at}' failed to satisfy constraint: Member must have length between 1 and 256"));
        }
        if !path.starts_with('/') {
            return Err(format!("The value '{path}' in additionalModelResponseFieldPaths is not a valid JSON Pointer. Use a JSON Pointer such as /stop_sequence and try again."));
        }
    }
    Ok(())
}

fn check_text_format(format: &Value) -> Result<(), String> {
    let kind = format.get("type").unwrap_or(&Value::Null);
    if kind.as_str() != Some("json_schema") {
        return Err(enum_error(
            kind,
            "outputConfig.textFormat.type",
            &["json_schema"],
        ));
    }
    if output_schema(format).is_none() {
        return Err("The JSON schema in outputConfig.textFormat.structure.jsonSchema.schema is not valid. Provide the schema as a string that holds a JSON object and try again.".to_owned());
    }
    Ok(())
}

/// The schema of a structured-output request (`outputConfig.textFormat.structure.jsonSchema.schema`,
/// a JSON string), if it holds a JSON object.
pub(crate) fn output_schema(format: &Value) -> Option<Value> {
    let text = format
        .pointer("/structure/jsonSchema/schema")
        .and_then(Value::as_str)?;
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_object)
}

/// What the simulated model's native response holds, for `additionalModelResponseFieldPaths`:
/// an Anthropic-style message envelope.
fn native_response(stop_reason: &str, usage: (u32, u32)) -> Value {
    json!({
        "type": "message",
        "role": "assistant",
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": { "input_tokens": usage.0, "output_tokens": usage.1 },
    })
}

/// `additionalModelResponseFields` for the requested paths: each path found in the native
/// response is copied, nested as the pointer says (`/stop_sequence` -> `{"stop_sequence":
/// null}`); paths not found are ignored, as Bedrock does. `None` when nothing was found.
pub(crate) fn response_fields(
    request: &Value,
    stop_reason: &str,
    usage: (u32, u32),
) -> Option<Value> {
    let paths = request
        .get("additionalModelResponseFieldPaths")
        .and_then(Value::as_array)?;
    let native = native_response(stop_reason, usage);
    let mut out = Map::new();
    for path in paths.iter().filter_map(Value::as_str) {
        let Some(found) = native.pointer(path) else {
            continue;
        };
        let keys: Vec<String> = path
            .split('/')
            .skip(1)
            .map(|k| k.replace("~1", "/").replace("~0", "~"))
            .collect();
        insert_at(&mut out, &keys, found.clone());
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

fn insert_at(map: &mut Map<String, Value>, keys: &[String], value: Value) {
    match keys {
        [] => {}
        [last] => {
            map.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = map
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(inner) = entry.as_object_mut() {
                insert_at(inner, rest, value);
            }
        }
    }
}

/// The requested `serviceTier.type`, echoed in the answer.
pub(crate) fn service_tier(request: &Value) -> Option<String> {
    request
        .pointer("/serviceTier/type")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The requested `performanceConfig.latency`, echoed in the answer.
pub(crate) fn latency(request: &Value) -> Option<String> {
    request
        .pointer("/performanceConfig/latency")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_fields_nest_found_paths_and_skip_missing_ones() {
        let request = json!({"additionalModelResponseFieldPaths": ["/stop_sequence", "/usage/output_tokens", "/nope"]});
        assert_eq!(
            response_fields(&request, "end_turn", (3, 4)),
            Some(json!({"stop_sequence": null, "usage": {"output_tokens": 4}}))
        );
        assert_eq!(
            response_fields(
                &json!({"additionalModelResponseFieldPaths": ["/x"]}),
                "end_turn",
                (0, 0)
            ),
            None
        );
        assert_eq!(response_fields(&json!({}), "end_turn", (0, 0)), None);
    }
}
