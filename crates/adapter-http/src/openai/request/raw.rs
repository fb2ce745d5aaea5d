//! The request's top level, read key by key with a hand-written map visitor.
//!
//! Every field the gateway knows is listed once, in [`top_level!`]'s invocation below; its
//! value is kept as JSON (`null` reads as absent) for the parsers of the other modules. A key
//! not in the list is remembered (the first one) and its value skipped without being built,
//! so the request can be refused with `unknown_parameter`: a misspelt `guardrail_config`
//! must not quietly pass as "no guardrail". Nothing is buffered twice: unlike
//! `#[serde(flatten)]`, the visitor never collects the unknown rest into a map.
//!
//! A key given twice, at the top level or in any object below it, is remembered too (the
//! first one, with its path): the request is refused, so what the gateway reads (the model
//! it authorizes and routes, a tool's name) is never what another parser, keeping the other
//! value, would read. The values are built by [`StrictValue`], serde_json's own `Value`
//! building with that one check added, in the same single pass.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::fields::{duplicate_key, At, RequestError};

/// Declares a request's top level: `Struct { field: Type = "wire name", ... }`. It makes the
/// struct (each field `None` when absent or `null`, plus the first unknown key, the first
/// known key given twice and the path of the first key given twice inside a value) and its
/// `Deserialize`. Each chat door invokes it once with its own fields.
macro_rules! top_level {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($field:ident: $ty:ty = $wire:literal,)* }) => {
        $(#[$meta])*
        #[derive(Default)]
        $vis struct $name {
            $($vis $field: Option<$ty>,)*
            /// The first key the gateway does not know.
            $vis unknown: Option<String>,
            /// The first known key given twice.
            $vis duplicate: Option<&'static str>,
            /// The path of the first key given twice inside a value, e.g.
            /// `messages[0].content[1].type`.
            $vis nested_duplicate: Option<String>,
        }

        impl $crate::openai::request::raw::TopLevel for $name {
            const NAMES: &'static [&'static str] = &[$($wire),*];

            fn read<'de, A: serde::de::MapAccess<'de>>(
                &mut self,
                name: &str,
                map: &mut A,
            ) -> Result<(), A::Error> {
                use $crate::openai::request::raw::ReadField as _;
                match name {
                    $($wire => {
                        self.$field =
                            <$ty>::read(map, $wire, &mut self.nested_duplicate)?
                    })*
                    // `name` comes from `NAMES`, so this arm is never taken.
                    _ => {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(())
            }

            fn unknown(&mut self) -> &mut Option<String> {
                &mut self.unknown
            }

            fn duplicate(&mut self) -> &mut Option<&'static str> {
                &mut self.duplicate
            }

            fn nested_duplicate(&mut self) -> &mut Option<String> {
                &mut self.nested_duplicate
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::openai::request::raw::deserialize_top_level(deserializer)
            }
        }
    };
}

pub(crate) use top_level;

/// A request's top level as [`top_level!`] declares it.
pub(crate) trait TopLevel: Default {
    /// Every known wire name; a key's position is its bit in the visitor's `seen` mask.
    const NAMES: &'static [&'static str];

    /// Reads the value of the known field `name` into its slot.
    fn read<'de, A: MapAccess<'de>>(&mut self, name: &str, map: &mut A) -> Result<(), A::Error>;

    fn unknown(&mut self) -> &mut Option<String>;

    fn duplicate(&mut self) -> &mut Option<&'static str>;

    fn nested_duplicate(&mut self) -> &mut Option<String>;
}

/// A door's request body read as its top level `T`: not JSON, not an object, an unknown key
/// (`unknown_parameter`) or a key given twice at any depth (`duplicate_key`) is refused here,
/// once for every door that declares its fields with [`top_level!`].
pub(crate) fn read_top_level<T>(body: &[u8]) -> Result<T, RequestError>
where
    T: TopLevel + for<'de> Deserialize<'de>,
{
    let mut raw: T = serde_json::from_slice(body).map_err(|error| {
        RequestError::InvalidJson(if error.is_data() {
            // The only data error: the top level is not an object (fields are read as JSON).
            "the request body must be a JSON object".to_owned()
        } else {
            format!("the request body is not valid JSON: {error}")
        })
    })?;
    if let Some(param) = raw.unknown().take() {
        return Err(RequestError::UnknownParameter { param });
    }
    if let Some(param) = raw.duplicate().take() {
        return Err(duplicate_key(param.to_owned()));
    }
    if let Some(path) = raw.nested_duplicate().take() {
        return Err(duplicate_key(path));
    }
    Ok(raw)
}

top_level! {
    /// The top-level fields of a chat-completion request as sent.
    pub(super) struct RawRequest {
    model: Value = "model",
    messages: Value = "messages",
    max_tokens: Value = "max_tokens",
    max_completion_tokens: Value = "max_completion_tokens",
    temperature: Value = "temperature",
    top_p: Value = "top_p",
    stop: Value = "stop",
    tools: Value = "tools",
    tool_choice: Value = "tool_choice",
    stream: Value = "stream",
    stream_options: Value = "stream_options",
    reasoning_effort: Value = "reasoning_effort",
    thinking: Value = "thinking",
    response_format: Value = "response_format",
    service_tier: Value = "service_tier",
    guardrail_config: Value = "guardrailConfig",
    additional_model_request_fields: Value = "additionalModelRequestFields",
    additional_model_response_field_paths: Value = "additionalModelResponseFieldPaths",
    performance_config: Value = "performanceConfig",
    // Raw, so the pairs keep the client's order (`Value` objects are sorted by key).
    request_metadata: Box<RawValue> = "requestMetadata",
    metadata: Box<RawValue> = "metadata",
    // Accepted and ignored (see `openai_only`).
    user: Value = "user",
    store: Value = "store",
    parallel_tool_calls: Value = "parallel_tool_calls",
    prompt_cache_key: Value = "prompt_cache_key",
    safety_identifier: Value = "safety_identifier",
    // Unsupported unless harmless (see `openai_only`).
    n: Value = "n",
    logprobs: Value = "logprobs",
    top_logprobs: Value = "top_logprobs",
    logit_bias: Value = "logit_bias",
    audio: Value = "audio",
    modalities: Value = "modalities",
    prediction: Value = "prediction",
    presence_penalty: Value = "presence_penalty",
    frequency_penalty: Value = "frequency_penalty",
    seed: Value = "seed",
    // Deprecated, refused with a pointer to their replacement.
    functions: Value = "functions",
    function_call: Value = "function_call",
    }
}

/// How a top-level field's value is read: `null` is absent.
pub(crate) trait ReadField: Sized {
    fn read<'de, A: MapAccess<'de>>(
        map: &mut A,
        name: &'static str,
        duplicate: &mut Option<String>,
    ) -> Result<Option<Self>, A::Error>;
}

impl ReadField for Value {
    fn read<'de, A: MapAccess<'de>>(
        map: &mut A,
        name: &'static str,
        duplicate: &mut Option<String>,
    ) -> Result<Option<Self>, A::Error> {
        let value = map.next_value_seed(StrictValue {
            at: At::Root(name),
            duplicate,
        })?;
        Ok((!value.is_null()).then_some(value))
    }
}

/// Raw fields keep their text; their parsers check their keys themselves.
impl ReadField for Box<RawValue> {
    fn read<'de, A: MapAccess<'de>>(
        map: &mut A,
        _name: &'static str,
        _duplicate: &mut Option<String>,
    ) -> Result<Option<Self>, A::Error> {
        map.next_value()
    }
}

/// Builds a `serde_json::Value` as serde_json does, remembering the path of the first key
/// an object holds twice (the later value would silently replace the earlier).
struct StrictValue<'a, 'p> {
    at: At<'p>,
    duplicate: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity, so this is always a number.
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(StrictValue {
            at: self.at.index(items.len()),
            duplicate: &mut *self.duplicate,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = self.at.key_owned(&key);
            let value = map.next_value_seed(StrictValue {
                at,
                duplicate: &mut *self.duplicate,
            })?;
            if self.duplicate.is_none() && object.contains_key(&key) {
                *self.duplicate = Some(at.to_string());
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// A JSON object read with the chat request's strictness, for the gateway's other doors:
/// its top-level keys among `fields` (the first other key remembered, its value skipped), and
/// the path of the first key given twice at any depth.
struct StrictObject {
    object: Map<String, Value>,
    unknown: Option<String>,
    duplicate: Option<String>,
}

struct StrictObjectSeed {
    fields: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for StrictObjectSeed {
    type Value = StrictObject;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<StrictObject, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for StrictObjectSeed {
    type Value = StrictObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictObject, A::Error> {
        let mut read = StrictObject {
            object: Map::new(),
            unknown: None,
            duplicate: None,
        };
        while let Some(key) = map.next_key::<String>()? {
            let Some(&name) = self.fields.iter().find(|field| **field == key) else {
                map.next_value::<IgnoredAny>()?;
                read.unknown.get_or_insert(key);
                continue;
            };
            let value = map.next_value_seed(StrictValue {
                at: At::Root(name),
                duplicate: &mut read.duplicate,
            })?;
            if read.duplicate.is_none() && read.object.contains_key(name) {
                read.duplicate = Some(name.to_owned());
            }
            read.object.insert(key, value);
        }
        Ok(read)
    }
}

/// `body` as a JSON object whose top-level keys are among `fields`, refused as the chat
/// request is: not an object, an unknown key (`unknown_parameter`), a key given twice at any
/// depth (`duplicate_key`).
pub(crate) fn strict_object(
    body: &[u8],
    fields: &'static [&'static str],
) -> Result<Map<String, Value>, RequestError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let read = StrictObjectSeed { fields }
        .deserialize(&mut deserializer)
        .and_then(|read| deserializer.end().map(|()| read))
        .map_err(|error| {
            RequestError::InvalidJson(if error.is_data() {
                "the request body must be a JSON object".to_owned()
            } else {
                format!("the request body is not valid JSON: {error}")
            })
        })?;
    if let Some(param) = read.unknown {
        return Err(RequestError::UnknownParameter { param });
    }
    if let Some(path) = read.duplicate {
        return Err(duplicate_key(path));
    }
    Ok(read.object)
}

/// The `Deserialize` of every [`TopLevel`]: one pass over the object's keys.
pub(crate) fn deserialize_top_level<'de, T: TopLevel, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_map(TopLevelVisitor(PhantomData))
}

struct TopLevelVisitor<T>(PhantomData<T>);

impl<'de, T: TopLevel> Visitor<'de> for TopLevelVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        const { assert!(T::NAMES.len() <= u64::BITS as usize, "`seen` is a u64 mask") };
        let mut raw = T::default();
        let mut seen = 0u64;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let key = key.as_str();
            let Some(index) = T::NAMES.iter().position(|name| *name == key) else {
                if raw.unknown().is_none() {
                    *raw.unknown() = Some(key.to_owned());
                }
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let bit = 1u64 << index;
            if seen & bit != 0 {
                raw.duplicate().get_or_insert(T::NAMES[index]);
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            seen |= bit;
            raw.read(key, &mut map)?;
        }
        Ok(raw)
    }
}

/// A top level whose known keys are `names`, read as [`RawRequest`] is (`null` reads as
/// absent, the first unknown key is remembered and its value skipped, a key given twice at
/// any depth is remembered with its path), for the other chat doors: each lists its fields
/// and takes their values out by name.
pub(crate) struct NamedTopLevel {
    names: &'static [&'static str],
    values: Vec<Option<Value>>,
    /// The first key not in `names`.
    pub(crate) unknown: Option<String>,
    /// The first known key given twice.
    pub(crate) duplicate: Option<&'static str>,
    /// The path of the first key given twice inside a value.
    pub(crate) nested_duplicate: Option<String>,
}

impl NamedTopLevel {
    /// Reads `body`, whose top level must be an object of at most 64 known `names`.
    pub(crate) fn read(
        body: &[u8],
        names: &'static [&'static str],
    ) -> Result<Self, serde_json::Error> {
        assert!(names.len() <= u64::BITS as usize, "`seen` is a u64 mask");
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let top = NamedTopLevelSeed(names).deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(top)
    }

    /// The value of the known field `name`, taken out; `None` when absent or `null`.
    pub(crate) fn take(&mut self, name: &str) -> Option<Value> {
        let index = self.names.iter().position(|known| *known == name)?;
        self.values.get_mut(index)?.take()
    }
}

struct NamedTopLevelSeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for NamedTopLevelSeed {
    type Value = NamedTopLevel;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<NamedTopLevel, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for NamedTopLevelSeed {
    type Value = NamedTopLevel;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NamedTopLevel, A::Error> {
        let names = self.0;
        let mut top = NamedTopLevel {
            names,
            values: vec![None; names.len()],
            unknown: None,
            duplicate: None,
            nested_duplicate: None,
        };
        let mut seen = 0u64;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let key = key.as_str();
            let Some(index) = names.iter().position(|name| *name == key) else {
                if top.unknown.is_none() {
                    top.unknown = Some(key.to_owned());
                }
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let bit = 1u64 << index;
            if seen & bit != 0 {
                top.duplicate.get_or_insert(names[index]);
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            seen |= bit;
            top.values[index] =
                <Value as ReadField>::read(&mut map, names[index], &mut top.nested_duplicate)?;
        }
        Ok(top)
    }
}

/// A key, borrowed from the body unless it holds escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(key) => key,
            Key::Owned(key) => key,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(key))
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(key.to_owned()))
            }

            fn visit_string<E: de::Error>(self, key: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(key))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> RawRequest {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn unknown_keys_are_remembered_and_their_values_skipped() {
        let raw = read(r#"{"guardrail_config": {"a": [1, 2]}, "model": "m", "zzz": 1}"#);
        assert_eq!(raw.unknown.as_deref(), Some("guardrail_config"));
        assert_eq!(raw.model, Some(Value::String("m".into())));
    }

    #[test]
    fn escaped_keys_are_read_like_plain_ones() {
        let raw = read(r#"{"mod\u0065l": "m"}"#);
        assert!(raw.unknown.is_none());
        assert_eq!(raw.model, Some(Value::String("m".into())));
    }

    #[test]
    fn a_key_given_twice_is_remembered() {
        let raw = read(r#"{"model": "a", "seed": 1, "model": "b"}"#);
        assert_eq!(raw.duplicate, Some("model"));
        assert_eq!(raw.model, Some(Value::String("a".into())));
    }

    #[test]
    fn a_key_given_twice_at_any_depth_is_remembered_with_its_path() {
        let raw = read(
            r#"{"messages": [{"role": "user", "content": [{"type": "text", "text": "a",
                "type": "image_url"}]}], "tools": {"a": {"b": 1, "b": 2}}}"#,
        );
        assert_eq!(
            raw.nested_duplicate.as_deref(),
            Some("messages[0].content[0].type")
        );
        let raw = read(r#"{"tools": [{"function": {"name": "a", "n\u0061me": "b"}}]}"#);
        assert_eq!(
            raw.nested_duplicate.as_deref(),
            Some("tools[0].function.name")
        );
        let raw = read(r#"{"tools": [{"a": 1}, {"a": 2}], "stop": ["x", "x"]}"#);
        assert!(
            raw.nested_duplicate.is_none(),
            "siblings and equal items are fine"
        );
    }

    #[test]
    fn strict_values_are_the_values_serde_json_builds() {
        let text = r#"{"a": [1, -2, 3.5, 1e400, true, null, "s\n", {"b": {}}], "c": 18446744073709551615}"#;
        let text = text.replace("1e400, ", "");
        let raw = read(&format!(r#"{{"thinking": {text}}}"#));
        let expected: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(raw.thinking, Some(expected));
    }

    #[test]
    fn null_reads_as_absent_and_raw_fields_keep_their_text() {
        let raw = read(r#"{"metadata": {"b": "1", "a": "2"}, "requestMetadata": null}"#);
        assert_eq!(raw.metadata.unwrap().get(), r#"{"b": "1", "a": "2"}"#);
        assert!(raw.request_metadata.is_none());
    }
}
