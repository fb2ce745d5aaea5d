//! `POST /v1/guardrails/check`, the gateway's own API: the request JSON to a
//! [`GuardrailCheckRequest`] and the outcome back to JSON. Pure conversions; errors are
//! [`RequestError`]s, so they read like the chat door's (OpenAI's error shape, `param`
//! naming the field), with the same strictness (unknown fields and keys given twice refused).
//!
//! Request: `{"guardrail": "<configured name>" | {"identifier": ..., "version": ...},
//! "source": "INPUT" | "OUTPUT", "content": ["text", ...]}`; any other field is refused.
//! Answer: `{"action": "NONE" | "GUARDRAIL_INTERVENED", "outputs": ["text", ...],
//! "assessments": [...], "usage": {...}}`, the assessments and usage as Bedrock wrote them.

use gateway_core::{
    GuardrailAction, GuardrailCheckOutcome, GuardrailCheckRequest, GuardrailRef, GuardrailSource,
};
use serde_json::{json, Map, Value};

use crate::openai::request::{strict_object, FieldErrorCode, RequestError};

const FIELDS: [&str; 3] = ["guardrail", "source", "content"];

fn field_error(param: &str, code: FieldErrorCode, message: impl Into<String>) -> RequestError {
    RequestError::Field {
        param: param.to_owned(),
        code,
        message: message.into(),
    }
}

/// The check a request body asks for.
pub(crate) fn parse_guardrail_check(body: &[u8]) -> Result<GuardrailCheckRequest, RequestError> {
    // The chat request's strictness: unknown fields and keys given twice are refused.
    let mut object = strict_object(body, &FIELDS)?;
    let guardrail = guardrail_ref(required(&mut object, "guardrail")?)?;
    let source = match required(&mut object, "source")? {
        Value::String(source) => GuardrailSource::parse(&source).ok_or_else(|| {
            field_error(
                "source",
                FieldErrorCode::InvalidValue,
                format!("`{source}` is not one of INPUT, OUTPUT"),
            )
        })?,
        _ => {
            return Err(field_error(
                "source",
                FieldErrorCode::InvalidType,
                "must be the string INPUT or OUTPUT",
            ))
        }
    };
    let Value::Array(items) = required(&mut object, "content")? else {
        return Err(field_error(
            "content",
            FieldErrorCode::InvalidType,
            "must be an array of strings",
        ));
    };
    if items.is_empty() {
        return Err(field_error(
            "content",
            FieldErrorCode::InvalidValue,
            "must hold at least one text",
        ));
    }
    let content = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::String(text) => Ok(text),
            _ => Err(field_error(
                &format!("content[{index}]"),
                FieldErrorCode::InvalidType,
                "must be a string",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(GuardrailCheckRequest {
        guardrail,
        source,
        content,
    })
}

fn required(object: &mut Map<String, Value>, field: &str) -> Result<Value, RequestError> {
    object
        .remove(field)
        .ok_or_else(|| field_error(field, FieldErrorCode::Missing, "is required"))
}

/// A configured name, or `{identifier, version}` (a version number may be written as one).
fn guardrail_ref(value: Value) -> Result<GuardrailRef, RequestError> {
    let mut object = match value {
        Value::String(name) if !name.is_empty() => return Ok(GuardrailRef::Named(name)),
        Value::Object(object) => object,
        _ => {
            return Err(field_error(
                "guardrail",
                FieldErrorCode::InvalidType,
                "must be a configured guardrail's name or {\"identifier\", \"version\"}",
            ))
        }
    };
    if let Some(unknown) = object
        .keys()
        .find(|key| !matches!(key.as_str(), "identifier" | "version"))
    {
        return Err(RequestError::UnknownParameter {
            param: format!("guardrail.{unknown}"),
        });
    }
    let text = |value: Value, param: &str| match value {
        Value::String(text) if !text.is_empty() => Ok(text),
        Value::Number(number) if param == "guardrail.version" && number.is_u64() => {
            Ok(number.to_string())
        }
        _ => Err(field_error(
            param,
            FieldErrorCode::InvalidType,
            "must be a non-empty string",
        )),
    };
    let identifier = object.remove("identifier").ok_or_else(|| {
        field_error(
            "guardrail.identifier",
            FieldErrorCode::Missing,
            "is required",
        )
    })?;
    let version = object
        .remove("version")
        .ok_or_else(|| field_error("guardrail.version", FieldErrorCode::Missing, "is required"))?;
    Ok(GuardrailRef::Explicit {
        identifier: text(identifier, "guardrail.identifier")?,
        version: text(version, "guardrail.version")?,
    })
}

/// The answer's JSON.
pub(crate) fn guardrail_check_json(outcome: &GuardrailCheckOutcome) -> Vec<u8> {
    let action = match outcome.action {
        GuardrailAction::None => "NONE",
        GuardrailAction::Intervened => "GUARDRAIL_INTERVENED",
    };
    let body = json!({
        "action": action,
        "outputs": outcome.outputs,
        "assessments": outcome.assessments,
        "usage": outcome.usage,
    });
    body.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;

    /// `fixtures/guardrail_check/request/*.json`: a request body and the check it becomes, or
    /// the error the door answers.
    #[test]
    fn request_bodies_become_checks_or_errors() {
        insta::glob!(
            "../../../fixtures/guardrail_check/request",
            "*.json",
            |path| {
                let body = std::fs::read(path).unwrap();
                match parse_guardrail_check(&body) {
                    Ok(check) => insta::assert_debug_snapshot!(check),
                    Err(error) => {
                        let api = ApiError::from_request(error);
                        insta::assert_snapshot!(format!(
                            "{} {}",
                            api.status.as_u16(),
                            String::from_utf8_lossy(&api.to_json())
                        ));
                    }
                }
            }
        );
    }

    /// `fixtures/guardrail_check/outcome/*.json`: an outcome (`action` as Bedrock spells it)
    /// and the answer's JSON.
    #[test]
    fn outcomes_become_answers() {
        insta::glob!(
            "../../../fixtures/guardrail_check/outcome",
            "*.json",
            |path| {
                let fixture: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
                let outcome = GuardrailCheckOutcome {
                    action: match fixture["action"].as_str() {
                        Some("GUARDRAIL_INTERVENED") => GuardrailAction::Intervened,
                        _ => GuardrailAction::None,
                    },
                    outputs: serde_json::from_value(fixture["outputs"].clone()).unwrap(),
                    assessments: fixture["assessments"].clone(),
                    usage: fixture.get("usage").cloned(),
                };
                let answer: Value =
                    serde_json::from_slice(&guardrail_check_json(&outcome)).unwrap();
                insta::assert_json_snapshot!(answer);
            }
        );
    }
}
