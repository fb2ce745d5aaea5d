//! ApplyGuardrail (`POST /guardrail/{guardrailIdentifier}/version/{guardrailVersion}/apply`,
//! botocore's `bedrock-runtime` model): the path, the body for a check's texts, and the
//! answer as a [`GuardrailCheckOutcome`]. Pure conversions; [`crate::provider`] sends them.

use gateway_core::{GuardrailAction, GuardrailCheckOutcome, GuardrailSource, ProviderError};
use percent_encoding::utf8_percent_encode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::provider::LABEL;

/// The path of ApplyGuardrail on one guardrail version, each label percent-encoded (an ARN
/// identifier's `:` and `/` included).
pub fn apply_guardrail_path(identifier: &str, version: &str) -> String {
    format!(
        "/guardrail/{}/version/{}/apply",
        utf8_percent_encode(identifier, LABEL),
        utf8_percent_encode(version, LABEL)
    )
}

/// `ApplyGuardrailRequest`'s body members (identifier and version travel in the path).
#[derive(Serialize)]
struct ApplyGuardrailBody<'a> {
    source: &'static str,
    content: Vec<ContentBlock<'a>>,
}

/// `GuardrailContentBlock`: text only (the door checks text).
#[derive(Serialize)]
struct ContentBlock<'a> {
    text: TextBlock<'a>,
}

#[derive(Serialize)]
struct TextBlock<'a> {
    text: &'a str,
}

/// The JSON body checking `content` (one block per text) as `source`.
pub fn apply_guardrail_body(source: GuardrailSource, content: &[String]) -> Vec<u8> {
    let body = ApplyGuardrailBody {
        source: source.as_str(),
        content: content
            .iter()
            .map(|text| ContentBlock {
                text: TextBlock { text },
            })
            .collect(),
    };
    // Strings and fixed names only: serializing cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `ApplyGuardrailResponse`: what the outcome needs; the assessments and usage are passed
/// through as Bedrock wrote them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplyGuardrailResponse {
    action: String,
    #[serde(default)]
    outputs: Vec<OutputContent>,
    #[serde(default)]
    assessments: Value,
    usage: Option<Value>,
}

/// `GuardrailOutputContent`.
#[derive(Deserialize)]
struct OutputContent {
    text: Option<String>,
}

/// The outcome of an ApplyGuardrail answer; an answer that is not one, or with an action
/// this adapter does not know, is a protocol error (never read as "nothing to do").
pub fn parse_apply_guardrail_response(body: &[u8]) -> Result<GuardrailCheckOutcome, ProviderError> {
    let response: ApplyGuardrailResponse =
        serde_json::from_slice(body).map_err(|error| ProviderError::Protocol {
            message: format!("Bedrock's ApplyGuardrail answer is not valid: {error}"),
        })?;
    let action = match response.action.as_str() {
        "NONE" => GuardrailAction::None,
        "GUARDRAIL_INTERVENED" => GuardrailAction::Intervened,
        other => {
            return Err(ProviderError::Protocol {
                message: format!("Bedrock's ApplyGuardrail answered an unknown action `{other}`"),
            })
        }
    };
    Ok(GuardrailCheckOutcome {
        action,
        outputs: response
            .outputs
            .into_iter()
            .filter_map(|output| output.text)
            .collect(),
        assessments: response.assessments,
        usage: response.usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_versions_are_encoded_as_labels() {
        assert_eq!(
            apply_guardrail_path("gr-1", "DRAFT"),
            "/guardrail/gr-1/version/DRAFT/apply"
        );
        assert_eq!(
            apply_guardrail_path("arn:aws:bedrock:us-east-1:123456789012:guardrail/abc", "2"),
            "/guardrail/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aguardrail%2Fabc/version/2/apply"
        );
    }
}
