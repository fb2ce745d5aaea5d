//! `tools` and `tool_choice`: function declarations (each may carry a `cache_control`, a
//! cache point after it), and which tool the model must call.

use gateway_core::request_limits::{check_count, check_tool_name, MAX_TOOLS};
use gateway_core::{ChatRequest, ToolChoice, ToolSpec};
use serde_json::{Map, Value};

use super::cache_control::cache_control;
use super::fields::{
    invalid_type, invalid_value, optional_string, required_object, required_string, unsupported,
    At, RequestError,
};

pub(super) fn tools(value: Value, at: &At<'_>) -> Result<Vec<ToolSpec>, RequestError> {
    let Value::Array(items) = value else {
        return Err(invalid_type(at, "an array of tools"));
    };
    check_count(items.len(), MAX_TOOLS, "tools").map_err(|message| invalid_value(at, message))?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| tool(item, &at.index(i)))
        .collect()
}

fn tool(value: Value, at: &At<'_>) -> Result<ToolSpec, RequestError> {
    let Value::Object(mut tool) = value else {
        return Err(invalid_type(at, "a tool object"));
    };
    check_function_type(&mut tool, at)?;
    let function_at = at.key("function");
    let mut function = required_object(&mut tool, "function", at, "an object")?;
    let name = required_string(&mut function, "name", &function_at)?;
    check_tool_name(&name).map_err(|message| invalid_value(&function_at.key("name"), message))?;
    let description = optional_string(&mut function, "description", &function_at)?;
    let parameters = match function.remove("parameters") {
        // OpenAI allows omitting them; Bedrock requires a schema.
        None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
        Some(schema @ Value::Object(_)) => schema,
        Some(_) => {
            return Err(invalid_type(
                &function_at.key("parameters"),
                "a JSON Schema object",
            ))
        }
    };
    Ok(ToolSpec {
        name,
        description,
        parameters,
        cache_point: cache_control(&mut tool, at)?,
    })
}

/// `type` of a tool or tool call: only `function` exists in OpenAI's chat API.
pub(super) fn check_function_type(
    object: &mut Map<String, Value>,
    at: &At<'_>,
) -> Result<(), RequestError> {
    match object.remove("type") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(kind)) if kind == "function" => Ok(()),
        Some(Value::String(kind)) => Err(unsupported(
            &at.key("type"),
            format!("type {kind:?} is not supported: only function"),
        )),
        Some(_) => Err(invalid_type(&at.key("type"), "a string")),
    }
}

pub(super) fn tool_choice(value: Value, at: &At<'_>) -> Result<ToolChoice, RequestError> {
    match value {
        Value::String(choice) => match choice.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Any),
            other => Err(invalid_value(
                at,
                format!("unknown value {other:?}: expected auto, none, required or a function"),
            )),
        },
        Value::Object(mut choice) => {
            check_function_type(&mut choice, at)?;
            let function_at = at.key("function");
            let mut function = required_object(&mut choice, "function", at, "an object")?;
            let name = required_string(&mut function, "name", &function_at)?;
            check_tool_name(&name)
                .map_err(|message| invalid_value(&function_at.key("name"), message))?;
            Ok(ToolChoice::Tool(name))
        }
        _ => Err(invalid_type(
            at,
            "\"auto\", \"none\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":...}}",
        )),
    }
}

/// A choice that forces a tool needs that tool to exist; Bedrock would refuse it less clearly.
pub(super) fn check_tool_choice(request: &ChatRequest) -> Result<(), RequestError> {
    let at = At::Root("tool_choice");
    match &request.tool_choice {
        Some(ToolChoice::Any) if request.tools.is_empty() => Err(invalid_value(
            &at,
            "\"required\" needs at least one tool in `tools`",
        )),
        Some(ToolChoice::Tool(name)) if !request.tools.iter().any(|tool| &tool.name == name) => {
            Err(invalid_value(
                &at.key("function").key("name"),
                format!("no tool named {name:?} in `tools`"),
            ))
        }
        _ => Ok(()),
    }
}
