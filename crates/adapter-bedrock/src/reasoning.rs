//! `reasoning_effort` and `thinking` as each model family spells them in
//! `additionalModelRequestFields`.
//!
//! | family (capability)            | field sent                                               | minimal | low  | medium | high  |
//! |--------------------------------|----------------------------------------------------------|---------|------|--------|-------|
//! | Claude with extended thinking  | `thinking: {"type": "enabled", "budget_tokens": B}`      | 1024    | 4096 | 8192   | 16384 |
//! | Amazon Nova 2                  | `reasoningConfig: {"type": "enabled", "maxReasoningEffort": E}` | low | low | medium | high |
//! | OpenAI gpt-oss                 | `reasoning_effort: E`                                    | low     | low  | medium | high  |
//! | DeepSeek R1                    | nothing: it always reasons                               |         |      |        |       |
//! | any other model                | refused (`ProviderError::Unsupported`, `Reasoning`)     |         |      |        |       |
//!
//! Claude's extended thinking has rules of its own, checked here so the client hears them
//! before any call: without `max_tokens` the request gets `maxTokens` = B + 4096 (room for
//! the answer after the thinking); a `max_tokens` at or below B, a `temperature` other than
//! 1, a `top_p` below 0.95, or a `tool_choice` that forces a tool are refused.
//!
//! A `thinking` object (`Reasoning::Thinking`) is sent as given, whatever the model; when it
//! names a `budget_tokens` and the client set no `max_tokens`, `maxTokens` is that budget +
//! 4096 as above. A key
//! the client also put in `additionalModelRequestFields` is the client's: nothing is
//! generated for it and none of the checks above apply.

use gateway_core::{
    ChatRequest, ProviderError, Reasoning, ReasoningEffort, RequestFeature, ToolChoice,
};
use serde_json::{json, Value};

use crate::model_family::{ModelCapabilities, ModelFamily, ReasoningControl};

/// Room for the answer after Claude's thinking budget when the client set no `max_tokens`.
const ANSWER_TOKENS_AFTER_THINKING: u32 = 4096;

/// One generated member of `additionalModelRequestFields`, and the `maxTokens` the request
/// needs when the client set none.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReasoningSetting {
    pub key: &'static str,
    pub value: Value,
    pub default_max_tokens: Option<u32>,
}

/// Claude's thinking budget per effort level.
fn thinking_budget(effort: ReasoningEffort) -> u32 {
    match effort {
        ReasoningEffort::Minimal => 1024,
        ReasoningEffort::Low => 4096,
        ReasoningEffort::Medium => 8192,
        // `ReasoningEffort` is non-exhaustive; a level added above `high` gets high's.
        _ => 16384,
    }
}

/// The `low | medium | high` scale of Nova 2 and gpt-oss, which have no `minimal`.
fn effort_level(effort: ReasoningEffort) -> &'static str {
    match effort {
        ReasoningEffort::Minimal | ReasoningEffort::Low => "low",
        ReasoningEffort::Medium => "medium",
        _ => "high",
    }
}

/// What `request.reasoning` adds to the request for `model` (`model_id` names it in
/// errors); `None` when nothing is to be sent.
pub(crate) fn reasoning_setting(
    request: &ChatRequest,
    model: &ModelCapabilities,
    model_id: &str,
) -> Result<Option<ReasoningSetting>, ProviderError> {
    let effort = match &request.reasoning {
        None => return Ok(None),
        Some(Reasoning::Thinking(value)) => {
            return Ok(
                (!client_sets(request, "thinking")).then(|| ReasoningSetting {
                    key: "thinking",
                    value: value.clone(),
                    // A budget without `max_tokens` would meet Bedrock's default limit,
                    // which may be below it; give the answer the same room as for efforts.
                    default_max_tokens: value
                        .get("budget_tokens")
                        .and_then(Value::as_u64)
                        .and_then(|budget| u32::try_from(budget).ok())
                        .map(|budget| budget.saturating_add(ANSWER_TOKENS_AFTER_THINKING)),
                }),
            );
        }
        Some(Reasoning::Effort(effort)) => *effort,
        Some(_) => {
            return Err(refused(format!(
                "this kind of reasoning setting cannot be sent to the model `{model_id}`"
            )))
        }
    };
    let control = model.reasoning.ok_or_else(|| {
        let effort = effort.as_str();
        refused(if model.family == ModelFamily::Other {
            format!(
                "the model `{model_id}` is not one this gateway knows to reason, so reasoning \
                 effort `{effort}` cannot be honoured; if it is an application inference \
                 profile of a model that reasons, the operator can name its family (e.g. \
                 `family = \"anthropic.claude\"`)"
            )
        } else {
            format!(
                "the model `{model_id}` does not reason, so reasoning effort `{effort}` cannot \
                 be honoured; leave it out or choose a reasoning model"
            )
        })
    })?;
    let key = match control {
        ReasoningControl::AnthropicThinking => "thinking",
        ReasoningControl::NovaReasoningConfig => "reasoningConfig",
        ReasoningControl::ReasoningEffortField => "reasoning_effort",
        ReasoningControl::Always => return Ok(None),
    };
    if client_sets(request, key) {
        return Ok(None);
    }
    Ok(Some(match control {
        ReasoningControl::AnthropicThinking => {
            let budget = thinking_budget(effort);
            check_anthropic_thinking(request, budget, model_id)?;
            ReasoningSetting {
                key,
                value: json!({"type": "enabled", "budget_tokens": budget}),
                default_max_tokens: Some(budget + ANSWER_TOKENS_AFTER_THINKING),
            }
        }
        ReasoningControl::NovaReasoningConfig => ReasoningSetting {
            key,
            value: json!({"type": "enabled", "maxReasoningEffort": effort_level(effort)}),
            default_max_tokens: None,
        },
        ReasoningControl::ReasoningEffortField | ReasoningControl::Always => ReasoningSetting {
            key,
            value: Value::String(effort_level(effort).to_owned()),
            default_max_tokens: None,
        },
    }))
}

/// Whether Claude's extended thinking is on for this request, by the client's own
/// `additionalModelRequestFields.thinking` or else by `request.reasoning`: thinking refuses
/// a forced tool, which structured output may need.
pub(crate) fn anthropic_thinking_on(request: &ChatRequest, model: &ModelCapabilities) -> bool {
    if model.reasoning != Some(ReasoningControl::AnthropicThinking) {
        return false;
    }
    let enabled = |value: &Value| value.get("type").and_then(Value::as_str) != Some("disabled");
    if let Some(thinking) = client_field(request, "thinking") {
        return enabled(thinking);
    }
    match &request.reasoning {
        Some(Reasoning::Effort(_)) => true,
        Some(Reasoning::Thinking(value)) => enabled(value),
        _ => false,
    }
}

fn client_field<'a>(request: &'a ChatRequest, key: &str) -> Option<&'a Value> {
    request.additional_model_request_fields.as_ref()?.get(key)
}

fn client_sets(request: &ChatRequest, key: &str) -> bool {
    client_field(request, key).is_some()
}

fn check_anthropic_thinking(
    request: &ChatRequest,
    budget: u32,
    model_id: &str,
) -> Result<(), ProviderError> {
    let inference = &request.inference;
    if let Some(max_tokens) = inference.max_tokens.filter(|&max| max <= budget) {
        return Err(refused(format!(
            "the model `{model_id}` thinks with a budget of {budget} tokens at this reasoning \
             effort, which max_tokens ({max_tokens}) must exceed; raise max_tokens or lower the \
             effort"
        )));
    }
    if let Some(temperature) = inference.temperature.filter(|&t| t != 1.0) {
        return Err(refused(format!(
            "the model `{model_id}` takes no temperature ({temperature} given) while it thinks; \
             leave temperature out or set it to 1"
        )));
    }
    if let Some(top_p) = inference.top_p.filter(|&p| p < 0.95) {
        return Err(refused(format!(
            "the model `{model_id}` takes top_p of 0.95 or more only ({top_p} given) while it \
             thinks"
        )));
    }
    if !request.tools.is_empty()
        && matches!(
            request.tool_choice,
            Some(ToolChoice::Any | ToolChoice::Tool(_))
        )
    {
        return Err(refused(format!(
            "the model `{model_id}` cannot be forced to call a tool while it thinks; use \
             tool_choice `auto` or leave reasoning out"
        )));
    }
    Ok(())
}

fn refused(message: String) -> ProviderError {
    ProviderError::Unsupported {
        feature: RequestFeature::Reasoning,
        message,
    }
}
