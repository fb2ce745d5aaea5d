//! A minimal JSON value valid for a simple JSON Schema: what the simulated model answers for
//! structured output (`outputConfig.textFormat`) and forced tool calls.

use serde_json::{json, Map, Value};

/// How deep `$ref`s and nesting are followed before giving up with `null` (recursive schemas).
const MAX_DEPTH: usize = 32;

/// A minimal instance of `schema`:
///
/// - `const` -> that value; `enum` -> its first value; `default` -> that value;
/// - `anyOf` / `oneOf` -> an instance of the first alternative; `allOf` -> the instances of
///   every part merged (objects) or the first part's;
/// - `$ref` to `#/...` (e.g. `#/$defs/Item`) is followed;
/// - `type` (the first non-`null` one of a list): `object` -> its `required` properties, each
///   a minimal instance; `array` -> one item (or `minItems` items); `string` -> `"example"`;
///   `integer` / `number` -> `minimum` (or `exclusiveMinimum` + 1) or 0; `boolean` -> `true`;
///   `null` -> `null`;
/// - no `type`: an object if there are `properties`, else `{}`.
pub fn minimal_instance(schema: &Value) -> Value {
    instance(schema, schema, 0)
}

fn instance(schema: &Value, root: &Value, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    let next = depth + 1;
    let Some(map) = schema.as_object() else {
        // `true` (anything goes) or a malformed schema.
        return json!({});
    };
    if let Some(value) = map.get("const") {
        return value.clone();
    }
    if let Some(first) = map
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(value) = map.get("default") {
        return value.clone();
    }
    if let Some(target) = map
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| resolve(root, r))
    {
        return instance(target, root, next);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(first) = map
            .get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return instance(first, root, next);
        }
    }
    if let Some(parts) = map.get("allOf").and_then(Value::as_array) {
        return merge_all(parts.iter().map(|part| instance(part, root, next)));
    }
    match first_type(map) {
        Some("object") => object(map, root, next),
        Some("array") => {
            let item = map
                .get("items")
                .map_or_else(|| json!("example"), |items| instance(items, root, next));
            let count = map
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .clamp(1, 16);
            Value::Array(vec![item; usize::try_from(count).unwrap_or(1)])
        }
        Some("string") => json!("example"),
        Some(kind @ ("integer" | "number")) => number(map, kind == "integer"),
        Some("boolean") => json!(true),
        Some("null") => Value::Null,
        _ if map.contains_key("properties") => object(map, root, next),
        _ => json!({}),
    }
}

/// The first type of `type` other than `null` (or `null` if it is the only one).
fn first_type(map: &Map<String, Value>) -> Option<&str> {
    match map.get("type")? {
        Value::String(kind) => Some(kind),
        Value::Array(kinds) => {
            let kinds: Vec<&str> = kinds.iter().filter_map(Value::as_str).collect();
            kinds
                .iter()
                .find(|k| **k != "null")
                .or_else(|| kinds.first())
                .copied()
        }
        _ => None,
    }
}

fn object(map: &Map<String, Value>, root: &Value, depth: usize) -> Value {
    let properties = map.get("properties").and_then(Value::as_object);
    let mut out = Map::new();
    for name in map
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let value = properties
            .and_then(|p| p.get(name))
            .map_or_else(|| json!("example"), |s| instance(s, root, depth));
        out.insert(name.to_owned(), value);
    }
    Value::Object(out)
}

fn number(map: &Map<String, Value>, integer: bool) -> Value {
    let minimum = map.get("minimum").and_then(Value::as_f64).or_else(|| {
        map.get("exclusiveMinimum")
            .and_then(Value::as_f64)
            .map(|m| if integer { m.floor() + 1.0 } else { m + 1.0 })
    });
    match minimum {
        Some(m) if integer => json!(m.ceil() as i64),
        Some(m) => json!(m),
        None => json!(0),
    }
}

fn merge_all(parts: impl Iterator<Item = Value>) -> Value {
    let mut merged: Option<Value> = None;
    for part in parts {
        merged = Some(match (merged, part) {
            (Some(Value::Object(mut a)), Value::Object(b)) => {
                a.extend(b);
                Value::Object(a)
            }
            (Some(a), _) => a,
            (None, b) => b,
        });
    }
    merged.unwrap_or_else(|| json!({}))
}

/// Follows a local JSON pointer reference (`#/$defs/Item`).
fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_get_their_required_properties() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer", "minimum": 18},
                "score": {"type": "number"},
                "ok": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "color": {"type": "string", "enum": ["red", "blue"]},
                "nick": {"type": ["null", "string"]},
                "optional": {"type": "string"}
            },
            "required": ["name", "age", "score", "ok", "tags", "color", "nick"]
        });
        assert_eq!(
            minimal_instance(&schema),
            json!({"name": "example", "age": 18, "score": 0, "ok": true, "tags": ["example"], "color": "red", "nick": "example"})
        );
    }

    #[test]
    fn refs_unions_and_recursion() {
        let schema = json!({
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}, "required": ["next"]}},
            "type": "object",
            "properties": {
                "choice": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                "both": {"allOf": [{"type": "object", "properties": {"a": {"const": 1}}, "required": ["a"]},
                                    {"type": "object", "properties": {"b": {"const": 2}}, "required": ["b"]}]},
                "node": {"$ref": "#/$defs/Node"}
            },
            "required": ["choice", "both", "node"]
        });
        let value = minimal_instance(&schema);
        assert_eq!(value["choice"], 0);
        assert_eq!(value["both"], json!({"a": 1, "b": 2}));
        // Recursion ends in null instead of looping.
        let mut node = &value["node"];
        while node.is_object() {
            node = &node["next"];
        }
        assert!(node.is_null());
    }
}
