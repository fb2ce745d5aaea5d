//! OpenAI Responses request JSON (`POST /v1/responses`) to [`ChatRequest`].
//!
//! The top level is read key by key as the chat-completions door reads its own (an unknown
//! key is a 400 `unknown_parameter`, a key given twice at any depth a 400 `duplicate_key`);
//! the field errors, data URLs, `metadata`, `service_tier` and `guardrailConfig` are that
//! door's parsers. What is the Responses API's own is here and in [`input`](super::input):
//! `input` items, `instructions`, flat function tools, `text.format`, `reasoning` and the
//! parameters of a stateful API the gateway refuses, since it stores nothing.

use gateway_core::request_limits::{check_count, check_model_name, check_tool_name, MAX_TOOLS};
use gateway_core::{
    ChatRequest, JsonSchemaFormat, Reasoning, ReasoningEffort, ResponseFormat, SystemPart,
    ToolChoice, ToolSpec,
};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::openai::request::fields::{
    invalid_type, invalid_value, missing, optional, optional_string, required_string, unsupported,
    At, RequestError,
};
use crate::openai::request::guardrail::guardrail_config;
use crate::openai::request::options::{
    additional_model_request_fields, additional_model_response_field_paths, request_metadata,
    service_tier,
};
use crate::openai::request::params::{boolean, number_in, positive_u32};
use crate::openai::request::raw::{read_top_level, top_level};

use super::input::{input, InputPositions};

top_level! {
    /// The top-level fields of a Responses request as sent.
    pub(super) struct RawResponsesRequest {
        model: Value = "model",
        input: Value = "input",
        instructions: Value = "instructions",
        tools: Value = "tools",
        tool_choice: Value = "tool_choice",
        reasoning: Value = "reasoning",
        text: Value = "text",
        max_output_tokens: Value = "max_output_tokens",
        temperature: Value = "temperature",
        top_p: Value = "top_p",
        stream: Value = "stream",
        service_tier: Value = "service_tier",
        // Raw, so the pairs keep the client's order (`Value` objects are sorted by key).
        metadata: Box<RawValue> = "metadata",
        // Bedrock's extras, as on chat completions.
        guardrail_config: Value = "guardrailConfig",
        additional_model_request_fields: Value = "additionalModelRequestFields",
        additional_model_response_field_paths: Value = "additionalModelResponseFieldPaths",
        // Accepted and ignored.
        store: Value = "store",
        parallel_tool_calls: Value = "parallel_tool_calls",
        include: Value = "include",
        user: Value = "user",
        safety_identifier: Value = "safety_identifier",
        prompt_cache_key: Value = "prompt_cache_key",
        stream_options: Value = "stream_options",
        truncation: Value = "truncation",
        // Stateful: refused.
        previous_response_id: Value = "previous_response_id",
        conversation: Value = "conversation",
        background: Value = "background",
        prompt: Value = "prompt",
        // Asking for what Bedrock cannot do: refused unless dropped by configuration.
        top_logprobs: Value = "top_logprobs",
        max_tool_calls: Value = "max_tool_calls",
    }
}

/// Parameters that ask for what Bedrock cannot give (named in
/// [`ChatRequest::unsupported_parameters`], so the service refuses them or drops them when
/// the operator allows), by the client's name; also the metric labels of dropped ones.
pub(crate) const UNSUPPORTED: [&str; 3] = ["top_logprobs", "max_tool_calls", "text.verbosity"];

/// A valid request and what is needed to report later errors in the client's terms.
#[derive(Debug)]
pub(crate) struct ParsedResponsesRequest {
    pub(crate) chat: ChatRequest,
    pub(crate) positions: InputPositions,
}

/// Parses and validates a Responses request body.
pub(crate) fn parse_responses_request(body: &[u8]) -> Result<ParsedResponsesRequest, RequestError> {
    convert(read_top_level(body)?)
}

fn convert(mut raw: RawResponsesRequest) -> Result<ParsedResponsesRequest, RequestError> {
    refuse_state(&mut raw)?;
    check_ignored(&mut raw)?;
    let mut request = ChatRequest::default();

    let model = At::Root("model");
    request.model = match raw.model.take() {
        None => return Err(missing(&model)),
        Some(Value::String(name)) => {
            check_model_name(&name).map_err(|message| invalid_value(&model, message))?;
            name
        }
        Some(_) => return Err(invalid_type(&model, "a string")),
    };

    if let Some(instructions) = raw.instructions.take() {
        match instructions {
            Value::String(text) => request.system.push(SystemPart::Text(text)),
            _ => return Err(invalid_type(&At::Root("instructions"), "a string")),
        }
    }
    let input = match raw.input.take() {
        None => return Err(missing(&At::Root("input"))),
        Some(value) => input(value)?,
    };
    request.system.extend(input.system);
    request.messages = input.messages;

    request.inference.max_tokens = optional(
        raw.max_output_tokens.take(),
        &At::Root("max_output_tokens"),
        positive_u32,
    )?;
    request.inference.temperature =
        optional(raw.temperature.take(), &At::Root("temperature"), |v, at| {
            number_in(v, at, 0.0, 2.0)
        })?;
    request.inference.top_p = optional(raw.top_p.take(), &At::Root("top_p"), |v, at| {
        number_in(v, at, 0.0, 1.0)
    })?;

    request.tools = optional(raw.tools.take(), &At::Root("tools"), tools)?.unwrap_or_default();
    request.tool_choice = optional(
        raw.tool_choice.take(),
        &At::Root("tool_choice"),
        tool_choice,
    )?;
    check_tool_choice(&request)?;

    request.stream = optional(raw.stream.take(), &At::Root("stream"), boolean)?.unwrap_or(false);
    request.reasoning =
        optional(raw.reasoning.take(), &At::Root("reasoning"), reasoning)?.flatten();
    let mut verbosity = false;
    request.response_format = optional(raw.text.take(), &At::Root("text"), |value, at| {
        text(value, at, &mut verbosity)
    })?
    .flatten();
    request.service_tier = optional(
        raw.service_tier.take(),
        &At::Root("service_tier"),
        service_tier,
    )?
    .flatten();
    request.request_metadata = request_metadata(None, raw.metadata.take())?;
    request.requested_guardrail = optional(
        raw.guardrail_config.take(),
        &At::Root("guardrailConfig"),
        guardrail_config,
    )?;
    request.additional_model_request_fields = optional(
        raw.additional_model_request_fields.take(),
        &At::Root("additionalModelRequestFields"),
        additional_model_request_fields,
    )?;
    request.additional_model_response_field_paths = optional(
        raw.additional_model_response_field_paths.take(),
        &At::Root("additionalModelResponseFieldPaths"),
        additional_model_response_field_paths,
    )?
    .unwrap_or_default();
    request.unsupported_parameters = unsupported_parameters(&mut raw, verbosity)?;
    Ok(ParsedResponsesRequest {
        chat: request,
        positions: input.positions,
    })
}

/// The gateway stores nothing: a request that needs a stored response, conversation or
/// prompt, or asks to store or run in the background, is refused saying so.
fn refuse_state(raw: &mut RawResponsesRequest) -> Result<(), RequestError> {
    const STATELESS: &str = "the gateway is stateless and stores no responses";
    if raw.previous_response_id.is_some() {
        return Err(unsupported(
            &At::Root("previous_response_id"),
            format!(
                "is not supported: {STATELESS}; send the whole conversation in `input` \
                 (earlier output items included)"
            ),
        ));
    }
    if raw.conversation.is_some() {
        return Err(unsupported(
            &At::Root("conversation"),
            format!("is not supported: {STATELESS}; send the whole conversation in `input`"),
        ));
    }
    if raw.prompt.is_some() {
        return Err(unsupported(
            &At::Root("prompt"),
            format!("stored prompts are not supported: {STATELESS}; send `instructions`"),
        ));
    }
    if optional(raw.store.take(), &At::Root("store"), boolean)? == Some(true) {
        return Err(unsupported(
            &At::Root("store"),
            format!("`store: true` is not supported: {STATELESS}; send `store: false` or omit it"),
        ));
    }
    if optional(raw.background.take(), &At::Root("background"), boolean)? == Some(true) {
        return Err(unsupported(
            &At::Root("background"),
            format!("background responses are not supported: {STATELESS}"),
        ));
    }
    Ok(())
}

/// Type-checks the fields that are accepted and ignored: they ask for nothing Bedrock would
/// do differently (`include: ["reasoning.encrypted_content"]` is how reasoning is always
/// answered here).
fn check_ignored(raw: &mut RawResponsesRequest) -> Result<(), RequestError> {
    let string = |value: Value, at: &At<'_>| match value {
        Value::String(_) => Ok(()),
        _ => Err(invalid_type(at, "a string")),
    };
    let object = |value: Value, at: &At<'_>| match value {
        Value::Object(_) => Ok(()),
        _ => Err(invalid_type(at, "an object")),
    };
    optional(raw.user.take(), &At::Root("user"), string)?;
    optional(
        raw.safety_identifier.take(),
        &At::Root("safety_identifier"),
        string,
    )?;
    optional(
        raw.prompt_cache_key.take(),
        &At::Root("prompt_cache_key"),
        string,
    )?;
    optional(
        raw.parallel_tool_calls.take(),
        &At::Root("parallel_tool_calls"),
        boolean,
    )?;
    optional(
        raw.stream_options.take(),
        &At::Root("stream_options"),
        object,
    )?;
    optional(raw.include.take(), &At::Root("include"), |value, at| {
        let Value::Array(items) = value else {
            return Err(invalid_type(at, "an array of strings"));
        };
        for (i, item) in items.into_iter().enumerate() {
            string(item, &at.index(i))?;
        }
        Ok(())
    })?;
    optional(
        raw.truncation.take(),
        &At::Root("truncation"),
        |value, at| match value.as_str() {
            Some("disabled") => Ok(()),
            Some("auto") => Err(unsupported(
                at,
                "\"auto\" is not supported: the gateway does not truncate conversations",
            )),
            Some(other) => Err(invalid_value(
                at,
                format!("unknown value {other:?}: expected disabled"),
            )),
            None => Err(invalid_type(at, "a string")),
        },
    )?;
    Ok(())
}

/// The names of the parameters that ask for what Bedrock cannot do, in [`UNSUPPORTED`]
/// order; a badly typed one is still a 400 of its own.
fn unsupported_parameters(
    raw: &mut RawResponsesRequest,
    verbosity: bool,
) -> Result<Vec<String>, RequestError> {
    let integer = |value: Value, at: &At<'_>| match value {
        Value::Number(number) if number.is_u64() => Ok(()),
        _ => Err(invalid_type(at, "a non-negative integer")),
    };
    let asked = [
        optional(raw.top_logprobs.take(), &At::Root("top_logprobs"), integer)?.is_some(),
        optional(
            raw.max_tool_calls.take(),
            &At::Root("max_tool_calls"),
            integer,
        )?
        .is_some(),
        verbosity,
    ];
    Ok(UNSUPPORTED
        .iter()
        .zip(asked)
        .filter(|(_, asked)| *asked)
        .map(|(name, _)| (*name).to_owned())
        .collect())
}

/// Responses tools are flat: `{"type": "function", "name", "description"?, "parameters"?,
/// "strict"?}`. OpenAI's hosted tools (web search, file search, computer use, MCP, ...) run
/// on OpenAI's side and have no Bedrock counterpart.
fn tools(value: Value, at: &At<'_>) -> Result<Vec<ToolSpec>, RequestError> {
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
    let kind = required_string(&mut tool, "type", at)?;
    if kind != "function" {
        return Err(unsupported(
            &at.key("type"),
            format!("tool type {kind:?} is not supported: only function tools"),
        ));
    }
    let name = required_string(&mut tool, "name", at)?;
    check_tool_name(&name).map_err(|message| invalid_value(&at.key("name"), message))?;
    let description = optional_string(&mut tool, "description", at)?;
    let parameters = match tool.remove("parameters") {
        // Bedrock requires a schema.
        None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
        Some(schema @ Value::Object(_)) => schema,
        Some(_) => return Err(invalid_type(&at.key("parameters"), "a JSON Schema object")),
    };
    // `strict` asks for arguments valid against the schema, which Bedrock's tool use aims
    // for anyway; accepted and type-checked.
    optional(
        tool.remove("strict").filter(|v| !v.is_null()),
        &at.key("strict"),
        boolean,
    )?;
    Ok(ToolSpec {
        name,
        description,
        parameters,
        cache_point: None,
    })
}

/// `"auto"`, `"none"`, `"required"` or `{"type": "function", "name"}`.
fn tool_choice(value: Value, at: &At<'_>) -> Result<ToolChoice, RequestError> {
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
            let kind = required_string(&mut choice, "type", at)?;
            if kind != "function" {
                return Err(unsupported(
                    &at.key("type"),
                    format!("tool_choice type {kind:?} is not supported: only function"),
                ));
            }
            let name = required_string(&mut choice, "name", at)?;
            check_tool_name(&name).map_err(|message| invalid_value(&at.key("name"), message))?;
            Ok(ToolChoice::Tool(name))
        }
        _ => Err(invalid_type(
            at,
            "\"auto\", \"none\", \"required\" or {\"type\":\"function\",\"name\":...}",
        )),
    }
}

/// A choice that forces a tool needs that tool to exist; Bedrock would refuse it less clearly.
fn check_tool_choice(request: &ChatRequest) -> Result<(), RequestError> {
    let at = At::Root("tool_choice");
    match &request.tool_choice {
        Some(ToolChoice::Any) if request.tools.is_empty() => Err(invalid_value(
            &at,
            "\"required\" needs at least one tool in `tools`",
        )),
        Some(ToolChoice::Tool(name)) if !request.tools.iter().any(|tool| &tool.name == name) => {
            Err(invalid_value(
                &at.key("name"),
                format!("no tool named {name:?} in `tools`"),
            ))
        }
        _ => Ok(()),
    }
}

/// `{"effort"?, "summary"?}`: the effort is the core's reasoning level (`none` is no
/// reasoning); `summary` (and the deprecated `generate_summary`) are accepted, since the
/// reasoning Bedrock returns is what is shown.
fn reasoning(value: Value, at: &At<'_>) -> Result<Option<Reasoning>, RequestError> {
    let Value::Object(mut reasoning) = value else {
        return Err(invalid_type(at, "an object"));
    };
    for key in ["summary", "generate_summary"] {
        optional_string(&mut reasoning, key, at)?;
    }
    let effort = optional_string(&mut reasoning, "effort", at)?;
    if let Some(key) = reasoning.keys().next() {
        return Err(unknown_key(at, key));
    }
    let Some(level) = effort else {
        return Ok(None);
    };
    if level == "none" {
        return Ok(None);
    }
    match ReasoningEffort::parse(&level) {
        Some(effort) => Ok(Some(Reasoning::Effort(effort))),
        None => Err(invalid_value(
            &at.key("effort"),
            format!("unknown value {level:?}: expected none, minimal, low, medium or high"),
        )),
    }
}

/// `{"format"?: {"type": "text" | "json_object" | "json_schema", ...}, "verbosity"?}`.
/// `verbosity` has no Bedrock counterpart: it sets `verbosity` for the unsupported list.
fn text(
    value: Value,
    at: &At<'_>,
    verbosity: &mut bool,
) -> Result<Option<ResponseFormat>, RequestError> {
    let Value::Object(mut text) = value else {
        return Err(invalid_type(at, "an object"));
    };
    *verbosity = optional_string(&mut text, "verbosity", at)?.is_some();
    let format = match text.remove("format") {
        None | Some(Value::Null) => None,
        Some(value) => text_format(value, &at.key("format"))?,
    };
    if let Some(key) = text.keys().next() {
        return Err(unknown_key(at, key));
    }
    Ok(format)
}

/// Responses' format is flat: `{"type": "json_schema", "name", "schema", "description"?,
/// "strict"?}`.
fn text_format(value: Value, at: &At<'_>) -> Result<Option<ResponseFormat>, RequestError> {
    let Value::Object(mut format) = value else {
        return Err(invalid_type(at, "an object"));
    };
    let kind = required_string(&mut format, "type", at)?;
    match kind.as_str() {
        "text" => Ok(None),
        "json_object" => Ok(Some(ResponseFormat::JsonObject)),
        "json_schema" => {
            let name = required_string(&mut format, "name", at)?;
            if name.is_empty() {
                return Err(invalid_value(&at.key("name"), "must not be empty"));
            }
            let description = optional_string(&mut format, "description", at)?;
            let schema = match format.remove("schema") {
                None | Some(Value::Null) => return Err(missing(&at.key("schema"))),
                Some(schema @ Value::Object(_)) => schema,
                Some(_) => return Err(invalid_type(&at.key("schema"), "a JSON Schema object")),
            };
            let strict = optional(
                format.remove("strict").filter(|v| !v.is_null()),
                &at.key("strict"),
                boolean,
            )?;
            Ok(Some(ResponseFormat::JsonSchema(JsonSchemaFormat {
                name,
                description,
                schema,
                strict,
            })))
        }
        other => Err(invalid_value(
            &at.key("type"),
            format!("unknown value {other:?}: expected text, json_object or json_schema"),
        )),
    }
}

/// A key the gateway does not know inside an option object: refused like an unknown
/// top-level key, since a misspelling must not pass as "not asked for".
pub(super) fn unknown_key(at: &At<'_>, key: &str) -> RequestError {
    RequestError::Field {
        param: at.key_owned(key).to_string(),
        code: crate::openai::request::FieldErrorCode::UnknownParameter,
        message: "is not a known field".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;

    #[test]
    fn valid_requests_become_chat_requests() {
        insta::glob!("../../../../fixtures/responses/request", "*.json", |path| {
            let body = std::fs::read(path).unwrap();
            let request = parse_responses_request(&body)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
                .chat;
            insta::assert_json_snapshot!(request);
        });
    }

    #[test]
    fn invalid_requests_get_a_400_naming_the_field() {
        insta::glob!(
            "../../../../fixtures/responses/request_invalid",
            "*.json",
            |path| {
                let body = std::fs::read(path).unwrap();
                let error = parse_responses_request(&body).expect_err("the fixture is invalid");
                let api = ApiError::from_request(error);
                let json: Value = serde_json::from_slice(&api.to_json()).unwrap();
                insta::assert_json_snapshot!(serde_json::json!({
                    "status": api.status.as_u16(),
                    "body": json,
                }));
            }
        );
    }
}
