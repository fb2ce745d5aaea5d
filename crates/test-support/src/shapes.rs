//! botocore's shape rules, as a checker of JSON bodies.
//!
//! Reads the committed `bedrock-runtime` service model (`fixtures/botocore/`) and checks a
//! value against a shape the way the service validates input: required members, no unknown
//! members, JSON types, enums, `min`/`max` (string length in Unicode scalar values, list and
//! map sizes, blob bytes after base64, number ranges), `pattern` (matched against the whole
//! string, as AWS's validators do), unions with exactly one member set. Members bound to the
//! URI or a header must not appear in the body. A `document` takes any JSON.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use base64::Engine;
use regex::Regex;
use serde_json::{Map, Value};

/// The committed service model of Bedrock Runtime.
const BEDROCK_RUNTIME: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/botocore/bedrock-runtime.service-2.json"
));

/// One broken rule: where in the body, and which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// A JSON path such as `messages[0].content[1].image.format`.
    pub path: String,
    /// The shape the value was checked against.
    pub shape: String,
    pub rule: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.path, self.shape, self.rule)
    }
}

/// A service model's shapes, with their patterns compiled once.
#[derive(Debug)]
pub struct ServiceModel {
    operations: Map<String, Value>,
    shapes: Map<String, Value>,
    /// By shape name; a pattern the `regex` crate cannot compile is left unchecked.
    patterns: HashMap<String, Regex>,
}

/// Bedrock Runtime's model, parsed on first use.
pub fn bedrock_runtime() -> &'static ServiceModel {
    static MODEL: OnceLock<ServiceModel> = OnceLock::new();
    MODEL.get_or_init(|| ServiceModel::parse(BEDROCK_RUNTIME))
}

impl ServiceModel {
    /// Panics on a file that is not a botocore service model: the committed one is.
    fn parse(text: &str) -> Self {
        let model: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        let section = |name: &str| match model.get(name) {
            Some(Value::Object(map)) => map.clone(),
            _ => panic!("the service model has no `{name}`"),
        };
        let shapes = section("shapes");
        let patterns = shapes
            .iter()
            .filter_map(|(name, shape)| {
                let pattern = shape.get("pattern")?.as_str()?;
                let regex = Regex::new(&format!("^(?:{pattern})$")).ok()?;
                Some((name.clone(), regex))
            })
            .collect();
        Self {
            operations: section("operations"),
            shapes,
            patterns,
        }
    }

    /// The violations of `body` as the JSON body of `operation`'s input (its URI and header
    /// members are not in the body, so they are not required there either).
    pub fn check_input(&self, operation: &str, body: &Value) -> Vec<Violation> {
        let input = self
            .operations
            .get(operation)
            .and_then(|op| op.pointer("/input/shape"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no operation `{operation}` with an input"));
        let mut check = Check {
            model: self,
            violations: Vec::new(),
        };
        check.value(&mut String::new(), input, body, true);
        check.violations
    }

    /// The definition of shape `name` (its JSON in the service model).
    pub fn shape(&self, name: &str) -> Option<&Value> {
        self.shapes.get(name)
    }

    /// The violations of `value` against `shape`.
    pub fn check(&self, shape: &str, value: &Value) -> Vec<Violation> {
        let mut check = Check {
            model: self,
            violations: Vec::new(),
        };
        check.value(&mut String::new(), shape, value, false);
        check.violations
    }
}

struct Check<'a> {
    model: &'a ServiceModel,
    violations: Vec<Violation>,
}

impl Check<'_> {
    fn fail(&mut self, path: &str, shape: &str, rule: impl Into<String>) {
        self.violations.push(Violation {
            path: if path.is_empty() {
                "$".into()
            } else {
                path.into()
            },
            shape: shape.into(),
            rule: rule.into(),
        });
    }

    /// `root`: the operation's input structure, whose location-bound members live outside
    /// the body.
    fn value(&mut self, path: &mut String, name: &str, value: &Value, root: bool) {
        let Some(shape) = self.model.shapes.get(name) else {
            return self.fail(path, name, "the model has no such shape");
        };
        let kind = shape.get("type").and_then(Value::as_str).unwrap_or("");
        match (kind, value) {
            (_, Value::Null) => self.fail(path, name, "null is not a value"),
            ("structure", _) if shape.get("document") == Some(&Value::Bool(true)) => {}
            ("structure", Value::Object(members)) => {
                self.structure(path, name, shape, members, root)
            }
            ("list", Value::Array(items)) => {
                self.size(path, name, shape, items.len(), "items");
                let member = member_shape(shape, "member");
                for (index, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{index}]"));
                    self.value(path, member, item, false);
                    path.truncate(len);
                }
            }
            ("map", Value::Object(entries)) => {
                self.size(path, name, shape, entries.len(), "entries");
                let (key, item) = (member_shape(shape, "key"), member_shape(shape, "value"));
                for (k, v) in entries {
                    let len = path.len();
                    path.push_str(&format!("[{k:?}]"));
                    self.value(path, key, &Value::String(k.clone()), false);
                    self.value(path, item, v, false);
                    path.truncate(len);
                }
            }
            ("string", Value::String(text)) => self.string(path, name, shape, text),
            ("integer" | "long", Value::Number(number)) => match number.as_i64() {
                Some(n) if kind == "integer" && i32::try_from(n).is_err() => {
                    self.fail(path, name, format!("{n} does not fit a 32-bit integer"))
                }
                Some(n) => self.range(path, name, shape, n as f64),
                None => self.fail(path, name, format!("{number} is not an integer")),
            },
            ("float" | "double", Value::Number(number)) => {
                self.range(path, name, shape, number.as_f64().unwrap_or(f64::NAN))
            }
            ("boolean", Value::Bool(_)) => {}
            ("blob", Value::String(encoded)) => {
                match base64::engine::general_purpose::STANDARD.decode(encoded) {
                    Ok(bytes) => self.size(path, name, shape, bytes.len(), "bytes"),
                    Err(error) => self.fail(path, name, format!("not base64: {error}")),
                }
            }
            ("timestamp", Value::Number(_) | Value::String(_)) => {}
            _ => self.fail(
                path,
                name,
                format!("a {kind} cannot be {}", json_type(value)),
            ),
        }
    }

    fn structure(
        &mut self,
        path: &mut String,
        name: &str,
        shape: &Value,
        members: &Map<String, Value>,
        root: bool,
    ) {
        let declared = shape.get("members").and_then(Value::as_object);
        let declared_member = |member: &str| declared.and_then(|d| d.get(member));
        let in_body = |member: &Value| root && member.get("location").is_some();
        for (member, value) in members {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(member);
            match declared_member(member) {
                None => self.fail(path, name, "unknown member"),
                Some(spec) if in_body(spec) => {
                    self.fail(path, name, "belongs in the URI or a header, not the body")
                }
                Some(spec) => {
                    let member_shape = spec.get("shape").and_then(Value::as_str).unwrap_or("");
                    self.value(path, member_shape, value, false);
                }
            }
            path.truncate(len);
        }
        for required in shape
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let outside_body = declared_member(required).is_some_and(in_body);
            if !outside_body && !members.contains_key(required) {
                self.fail(
                    path,
                    name,
                    format!("required member `{required}` is missing"),
                );
            }
        }
        if shape.get("union") == Some(&Value::Bool(true)) && members.len() != 1 {
            self.fail(
                path,
                name,
                format!("a union sets exactly one member, not {}", members.len()),
            );
        }
    }

    fn string(&mut self, path: &str, name: &str, shape: &Value, text: &str) {
        if let Some(values) = shape.get("enum").and_then(Value::as_array) {
            if !values.iter().any(|v| v.as_str() == Some(text)) {
                self.fail(
                    path,
                    name,
                    format!("{text:?} is not one of the enum's values"),
                );
            }
        }
        self.size(path, name, shape, text.chars().count(), "characters");
        if let Some(pattern) = self.model.patterns.get(name) {
            if !pattern.is_match(text) {
                let shown: String = text.chars().take(80).collect();
                self.fail(path, name, format!("{shown:?} does not match the pattern"));
            }
        }
    }

    /// `min`/`max` of a string, list, map or blob.
    fn size(&mut self, path: &str, name: &str, shape: &Value, size: usize, unit: &str) {
        let bound = |key: &str| shape.get(key).and_then(Value::as_u64);
        let size = size as u64;
        if let Some(min) = bound("min").filter(|min| size < *min) {
            self.fail(
                path,
                name,
                format!("{size} {unit}, fewer than the minimum {min}"),
            );
        }
        if let Some(max) = bound("max").filter(|max| size > *max) {
            self.fail(
                path,
                name,
                format!("{size} {unit}, more than the maximum {max}"),
            );
        }
    }

    fn range(&mut self, path: &str, name: &str, shape: &Value, number: f64) {
        let bound = |key: &str| shape.get(key).and_then(Value::as_f64);
        if !number.is_finite() {
            self.fail(path, name, "not a finite number");
        }
        if let Some(min) = bound("min").filter(|min| number < *min) {
            self.fail(path, name, format!("{number} is below the minimum {min}"));
        }
        if let Some(max) = bound("max").filter(|max| number > *max) {
            self.fail(path, name, format!("{number} is above the maximum {max}"));
        }
    }
}

fn member_shape<'a>(shape: &'a Value, which: &str) -> &'a str {
    shape
        .get(which)
        .and_then(|member| member.get("shape"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
