//! Field-level errors and the helpers every part of the parser uses: where a value sits in
//! the request ([`At`]), how to read an optional value or a required string, and one
//! constructor per OpenAI error `code`.

use std::fmt;

use serde_json::{Map, Value};
use thiserror::Error;

/// Why a request body is not an acceptable chat-completion request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum RequestError {
    #[error("{0}")]
    InvalidJson(String),
    /// A top-level field the gateway does not know (worded as OpenAI words it).
    #[error("Unrecognized request argument supplied: {param}")]
    UnknownParameter { param: String },
    #[error("{param}: {message}")]
    Field {
        /// Path of the offending field, e.g. `messages[2].content`.
        param: String,
        code: FieldErrorCode,
        message: String,
    },
}

/// OpenAI's `code` values for field errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldErrorCode {
    Missing,
    InvalidType,
    InvalidValue,
    Unsupported,
    UnknownParameter,
    DuplicateKey,
}

impl FieldErrorCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing_required_parameter",
            Self::InvalidType => "invalid_type",
            Self::InvalidValue => "invalid_value",
            Self::Unsupported => "unsupported_value",
            Self::UnknownParameter => "unknown_parameter",
            Self::DuplicateKey => "duplicate_key",
        }
    }
}

/// Applies `parse` to a present, non-null value.
pub(crate) fn optional<T>(
    value: Option<Value>,
    at: &At<'_>,
    parse: impl FnOnce(Value, &At<'_>) -> Result<T, RequestError>,
) -> Result<Option<T>, RequestError> {
    value.map(|value| parse(value, at)).transpose()
}

pub(super) fn required_string(
    object: &mut Map<String, Value>,
    key: &'static str,
    at: &At<'_>,
) -> Result<String, RequestError> {
    match object.remove(key) {
        None | Some(Value::Null) => Err(missing(&at.key(key))),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(invalid_type(&at.key(key), "a string")),
    }
}

/// An optional string under `key`: absent and `null` are `None`.
pub(super) fn optional_string(
    object: &mut Map<String, Value>,
    key: &'static str,
    at: &At<'_>,
) -> Result<Option<String>, RequestError> {
    match object.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid_type(&at.key(key), "a string")),
    }
}

/// A present, non-null object under `key`; `expected` describes it in the type error.
pub(super) fn required_object(
    object: &mut Map<String, Value>,
    key: &'static str,
    at: &At<'_>,
    expected: &str,
) -> Result<Map<String, Value>, RequestError> {
    match object.remove(key) {
        None | Some(Value::Null) => Err(missing(&at.key(key))),
        Some(Value::Object(inner)) => Ok(inner),
        Some(_) => Err(invalid_type(&at.key(key), expected)),
    }
}

/// Where a value sits in the request, built on the stack and formatted only for errors.
#[derive(Clone, Copy)]
pub(crate) enum At<'a> {
    Root(&'static str),
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl<'a> At<'a> {
    pub(crate) fn key(&'a self, key: &'static str) -> At<'a> {
        At::Key(self, key)
    }

    pub(super) fn key_owned(&'a self, key: &'a str) -> At<'a> {
        At::Key(self, key)
    }

    pub(crate) fn index(&'a self, index: usize) -> At<'a> {
        At::Index(self, index)
    }
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Root(name) => f.write_str(name),
            At::Key(parent, key) => write!(f, "{parent}.{key}"),
            At::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

fn field_error(at: &At<'_>, code: FieldErrorCode, message: impl Into<String>) -> RequestError {
    RequestError::Field {
        param: at.to_string(),
        code,
        message: message.into(),
    }
}

pub(crate) fn missing(at: &At<'_>) -> RequestError {
    field_error(at, FieldErrorCode::Missing, "missing required field")
}

pub(crate) fn invalid_type(at: &At<'_>, expected: &str) -> RequestError {
    field_error(
        at,
        FieldErrorCode::InvalidType,
        format!("expected {expected}"),
    )
}

pub(crate) fn invalid_value(at: &At<'_>, message: impl Into<String>) -> RequestError {
    field_error(at, FieldErrorCode::InvalidValue, message)
}

/// A key given twice in one object; `path` is where the second one sits.
pub(crate) fn duplicate_key(path: String) -> RequestError {
    RequestError::Field {
        param: path,
        code: FieldErrorCode::DuplicateKey,
        message: "is given more than once: each key may appear once per object".to_owned(),
    }
}

pub(crate) fn unsupported(at: &At<'_>, message: impl Into<String>) -> RequestError {
    field_error(at, FieldErrorCode::Unsupported, message)
}
