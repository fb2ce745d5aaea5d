//! Bedrock stop reasons and the OpenAI finish reasons they become.
//!
//! The mapping is data: one exhaustive `match` per style, covered by a table test over every
//! `StopReason` in botocore's bedrock-runtime service model.
//!
//! The rule: where Bedrock's meaning matches one of OpenAI's standard values exactly, use it;
//! otherwise keep Bedrock's own name (`guardrail_intervened`, as the seed shows, and the two
//! `malformed_*` reasons), so a client can tell what happened. Operators whose clients accept
//! only the standard values choose [`FinishReasonStyle::Strict`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why Bedrock stopped generating (Converse `stopReason`).
///
/// Exhaustive on purpose: new Bedrock values arrive as `Unknown` at run time, and each style's
/// mapping must name every known value (a new one is a compile error in the table).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    StopSequence,
    GuardrailIntervened,
    ContentFiltered,
    MalformedModelOutput,
    MalformedToolUse,
    ModelContextWindowExceeded,
    /// A value this build does not know yet; never an error.
    Unknown(String),
}

impl StopReason {
    /// Every value in botocore's bedrock-runtime service model (API 2023-09-30).
    pub const KNOWN: [StopReason; 9] = [
        StopReason::EndTurn,
        StopReason::ToolUse,
        StopReason::MaxTokens,
        StopReason::StopSequence,
        StopReason::GuardrailIntervened,
        StopReason::ContentFiltered,
        StopReason::MalformedModelOutput,
        StopReason::MalformedToolUse,
        StopReason::ModelContextWindowExceeded,
    ];

    pub fn parse(value: &str) -> Self {
        match value {
            "end_turn" => Self::EndTurn,
            "tool_use" => Self::ToolUse,
            "max_tokens" => Self::MaxTokens,
            "stop_sequence" => Self::StopSequence,
            "guardrail_intervened" => Self::GuardrailIntervened,
            "content_filtered" => Self::ContentFiltered,
            "malformed_model_output" => Self::MalformedModelOutput,
            "malformed_tool_use" => Self::MalformedToolUse,
            "model_context_window_exceeded" => Self::ModelContextWindowExceeded,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// Bedrock's wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::EndTurn => "end_turn",
            Self::ToolUse => "tool_use",
            Self::MaxTokens => "max_tokens",
            Self::StopSequence => "stop_sequence",
            Self::GuardrailIntervened => "guardrail_intervened",
            Self::ContentFiltered => "content_filtered",
            Self::MalformedModelOutput => "malformed_model_output",
            Self::MalformedToolUse => "malformed_tool_use",
            Self::ModelContextWindowExceeded => "model_context_window_exceeded",
            Self::Unknown(other) => other,
        }
    }

    /// The OpenAI finish reason for this stop, in the given style.
    pub fn finish_reason(&self, style: FinishReasonStyle) -> FinishReason {
        match style {
            FinishReasonStyle::Bedrock => match self {
                Self::EndTurn | Self::StopSequence => FinishReason::Stop,
                Self::MaxTokens | Self::ModelContextWindowExceeded => FinishReason::Length,
                Self::ToolUse => FinishReason::ToolCalls,
                Self::GuardrailIntervened => FinishReason::GuardrailIntervened,
                Self::ContentFiltered => FinishReason::ContentFilter,
                Self::MalformedModelOutput => FinishReason::MalformedModelOutput,
                Self::MalformedToolUse => FinishReason::MalformedToolUse,
                // An unknown reason still ends the answer normally; the raw value stays
                // visible in the response's `bedrock_stop_reason`.
                Self::Unknown(_) => FinishReason::Stop,
            },
            FinishReasonStyle::Strict => match self {
                Self::EndTurn | Self::StopSequence => FinishReason::Stop,
                Self::MaxTokens | Self::ModelContextWindowExceeded => FinishReason::Length,
                Self::ToolUse => FinishReason::ToolCalls,
                Self::GuardrailIntervened | Self::ContentFiltered => FinishReason::ContentFilter,
                // The model's output could not be used; `stop` with the raw reason beside it
                // is the closest honest standard value.
                Self::MalformedModelOutput | Self::MalformedToolUse | Self::Unknown(_) => {
                    FinishReason::Stop
                }
            },
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for StopReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StopReason {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(Self::parse(&value))
    }
}

/// OpenAI `finish_reason` values the gateway sends.
///
/// Exhaustive on purpose: the strict style folds every value into OpenAI's standard ones and
/// the adapter writes each one; both must be compile errors when a value is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    GuardrailIntervened,
    MalformedModelOutput,
    MalformedToolUse,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
            Self::ContentFilter => "content_filter",
            Self::GuardrailIntervened => "guardrail_intervened",
            Self::MalformedModelOutput => "malformed_model_output",
            Self::MalformedToolUse => "malformed_tool_use",
        }
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which finish-reason vocabulary a client gets.
///
/// Exhaustive on purpose: one mapping table per style, matched exhaustively.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinishReasonStyle {
    /// The seed's values: `guardrail_intervened` and the `malformed_*` reasons pass through.
    #[default]
    Bedrock,
    /// Only OpenAI's standard values (`stop`, `length`, `tool_calls`, `content_filter`), for
    /// clients that reject anything else.
    Strict,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stop_reason_maps_in_both_styles() {
        let mut table = String::new();
        let unknown = StopReason::parse("some_future_reason");
        for reason in StopReason::KNOWN.iter().chain(std::iter::once(&unknown)) {
            table.push_str(&format!(
                "{:<30} bedrock={:<22} strict={}\n",
                reason.as_str(),
                reason.finish_reason(FinishReasonStyle::Bedrock).as_str(),
                reason.finish_reason(FinishReasonStyle::Strict).as_str(),
            ));
        }
        insta::assert_snapshot!(table);
    }

    #[test]
    fn wire_names_round_trip() {
        for reason in StopReason::KNOWN {
            assert_eq!(StopReason::parse(reason.as_str()), reason);
        }
        assert_eq!(
            StopReason::parse("brand_new").as_str(),
            "brand_new",
            "unknown values survive unchanged"
        );
    }

    #[test]
    fn strict_style_only_uses_standard_values() {
        let standard = ["stop", "length", "tool_calls", "content_filter"];
        for reason in StopReason::KNOWN {
            let mapped = reason.finish_reason(FinishReasonStyle::Strict);
            assert!(standard.contains(&mapped.as_str()), "{reason} -> {mapped}");
        }
    }
}
