//! Request options beyond the conversation: reasoning (`reasoning_effort`, `thinking`),
//! `response_format`, `service_tier`, and the Bedrock-named extras `performanceConfig`,
//! `requestMetadata` (or OpenAI's `metadata`), `additionalModelRequestFields` and
//! `additionalModelResponseFieldPaths`. Each is type-checked here; what a model family can
//! do with it is the provider adapter's business.

use std::collections::HashSet;

use gateway_core::{
    JsonSchemaFormat, Latency, Reasoning, ReasoningEffort, ResponseFormat, ServiceTier,
};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::fields::{
    duplicate_key, invalid_type, invalid_value, optional, optional_string, required_object,
    required_string, At, RequestError,
};
use super::params::boolean;

/// `reasoning_effort` (a level) or `thinking` (a provider setting passed as given); not both,
/// since they would say the same thing twice, perhaps differently.
pub(super) fn reasoning(
    effort: Option<Value>,
    thinking: Option<Value>,
) -> Result<Option<Reasoning>, RequestError> {
    let effort = optional(effort, &At::Root("reasoning_effort"), |value, at| {
        let Value::String(level) = value else {
            return Err(invalid_type(at, "a string"));
        };
        ReasoningEffort::parse(&level).ok_or_else(|| {
            invalid_value(
                at,
                format!("unknown value {level:?}: expected minimal, low, medium or high"),
            )
        })
    })?;
    let thinking = optional(thinking, &At::Root("thinking"), |value, at| match value {
        Value::Object(_) => Ok(value),
        _ => Err(invalid_type(
            at,
            "an object such as {\"type\": \"enabled\", \"budget_tokens\": 2048}",
        )),
    })?;
    match (effort, thinking) {
        (Some(_), Some(_)) => Err(invalid_value(
            &At::Root("thinking"),
            "give either reasoning_effort or thinking, not both",
        )),
        (Some(effort), None) => Ok(Some(Reasoning::Effort(effort))),
        (None, Some(thinking)) => Ok(Some(Reasoning::Thinking(thinking))),
        (None, None) => Ok(None),
    }
}

/// `text` is the default (`None`); `json_object` and `json_schema` constrain the answer.
pub(super) fn response_format(
    value: Value,
    at: &At<'_>,
) -> Result<Option<ResponseFormat>, RequestError> {
    let Value::Object(mut format) = value else {
        return Err(invalid_type(at, "an object"));
    };
    let kind = required_string(&mut format, "type", at)?;
    match kind.as_str() {
        "text" => Ok(None),
        "json_object" => Ok(Some(ResponseFormat::JsonObject)),
        "json_schema" => {
            json_schema(&mut format, at).map(|schema| Some(ResponseFormat::JsonSchema(schema)))
        }
        other => Err(invalid_value(
            &at.key("type"),
            format!("unknown value {other:?}: expected text, json_object or json_schema"),
        )),
    }
}

/// `{"json_schema": {"name", "description"?, "schema", "strict"?}}`.
fn json_schema(
    format: &mut Map<String, Value>,
    at: &At<'_>,
) -> Result<JsonSchemaFormat, RequestError> {
    let schema_at = at.key("json_schema");
    let mut definition = required_object(format, "json_schema", at, "an object")?;
    let name = required_string(&mut definition, "name", &schema_at)?;
    if name.is_empty() {
        return Err(invalid_value(&schema_at.key("name"), "must not be empty"));
    }
    let description = optional_string(&mut definition, "description", &schema_at)?;
    let schema = Value::Object(required_object(
        &mut definition,
        "schema",
        &schema_at,
        "a JSON Schema object",
    )?);
    let strict = match definition.remove("strict") {
        None | Some(Value::Null) => None,
        Some(value) => Some(boolean(value, &schema_at.key("strict"))?),
    };
    Ok(JsonSchemaFormat {
        name,
        description,
        schema,
        strict,
    })
}

/// `auto` leaves the choice to Bedrock (`None`); the others name a Bedrock `serviceTier`.
pub(crate) fn service_tier(value: Value, at: &At<'_>) -> Result<Option<ServiceTier>, RequestError> {
    let Value::String(tier) = value else {
        return Err(invalid_type(at, "a string"));
    };
    match tier.as_str() {
        "auto" => Ok(None),
        "default" => Ok(Some(ServiceTier::Default)),
        "flex" => Ok(Some(ServiceTier::Flex)),
        "priority" => Ok(Some(ServiceTier::Priority)),
        other => Err(invalid_value(
            at,
            format!("unknown value {other:?}: expected auto, default, flex or priority"),
        )),
    }
}

/// Bedrock's `performanceConfig`: `{"latency": "standard" | "optimized"}`. Its keys are
/// checked like `guardrailConfig`'s, since a misspelt one would silently do nothing.
pub(crate) fn performance_config(
    value: Value,
    at: &At<'_>,
) -> Result<Option<Latency>, RequestError> {
    let Value::Object(mut config) = value else {
        return Err(invalid_type(
            at,
            "an object such as {\"latency\": \"optimized\"}",
        ));
    };
    let latency_at = at.key("latency");
    let latency = optional_string(&mut config, "latency", at)?
        .map(|latency| {
            Latency::parse(&latency).ok_or_else(|| {
                invalid_value(
                    &latency_at,
                    format!("unknown value {latency:?}: expected standard or optimized"),
                )
            })
        })
        .transpose()?;
    if let Some(key) = config.keys().next() {
        return Err(invalid_value(
            &at.key_owned(key),
            "unknown field: expected latency",
        ));
    }
    Ok(latency)
}

/// `requestMetadata` (Bedrock's name) or `metadata` (OpenAI's): string pairs, in the
/// client's order. Bedrock's limits on them are the provider adapter's to check.
pub(crate) fn request_metadata(
    request_metadata: Option<Box<RawValue>>,
    metadata: Option<Box<RawValue>>,
) -> Result<Vec<(String, String)>, RequestError> {
    let (raw, at) = match (request_metadata, metadata) {
        (Some(_), Some(_)) => {
            return Err(invalid_value(
                &At::Root("metadata"),
                "give either metadata or requestMetadata, not both",
            ))
        }
        (Some(raw), None) => (raw, At::Root("requestMetadata")),
        (None, Some(raw)) => (raw, At::Root("metadata")),
        (None, None) => return Ok(Vec::new()),
    };
    let Ok(Pairs(pairs)) = serde_json::from_str(raw.get()) else {
        return Err(invalid_type(&at, "an object of strings"));
    };
    let mut keys = HashSet::with_capacity(pairs.len());
    if let Some((key, _)) = pairs.iter().find(|(key, _)| !keys.insert(key.as_str())) {
        return Err(duplicate_key(at.key_owned(key).to_string()));
    }
    drop(keys);
    pairs
        .into_iter()
        .map(|(key, value)| match value {
            Value::String(value) => Ok((key, value)),
            _ => Err(invalid_type(&at.key_owned(&key), "a string")),
        })
        .collect()
}

/// A JSON object's members in document order.
struct Pairs(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;

        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = Pairs;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }

        deserializer.deserialize_map(PairsVisitor)
    }
}

/// `additionalModelRequestFields`: an object passed to the model as given.
pub(crate) fn additional_model_request_fields(
    value: Value,
    at: &At<'_>,
) -> Result<Value, RequestError> {
    match value {
        Value::Object(_) => Ok(value),
        _ => Err(invalid_type(at, "an object")),
    }
}

/// `additionalModelResponseFieldPaths`: JSON pointers into the model's raw answer.
pub(crate) fn additional_model_response_field_paths(
    value: Value,
    at: &At<'_>,
) -> Result<Vec<String>, RequestError> {
    let Value::Array(paths) = value else {
        return Err(invalid_type(at, "an array of strings"));
    };
    paths
        .into_iter()
        .enumerate()
        .map(|(i, path)| match path {
            Value::String(path) => Ok(path),
            _ => Err(invalid_type(&at.index(i), "a string")),
        })
        .collect()
}
