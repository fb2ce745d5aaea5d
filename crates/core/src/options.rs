//! Request options beyond the conversation: reasoning, the answer's format, the service
//! tier and latency. Each names what the client wants; how a model family spells it is the
//! provider adapter's business.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How much the model should reason before answering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reasoning {
    /// A level (OpenAI `reasoning_effort`); the provider adapter maps it to its model
    /// family's setting (a token budget, an effort level) and documents the mapping.
    Effort(ReasoningEffort),
    /// A provider-specific thinking setting given verbatim, e.g. Anthropic's
    /// `{"type": "enabled", "budget_tokens": 2048}`.
    Thinking(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReasoningEffort {
    Minimal,
    Low,
    Medium,
    High,
}

impl ReasoningEffort {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "minimal" => Some(Self::Minimal),
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minimal => "minimal",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// The shape the answer's text must have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResponseFormat {
    /// Any JSON object (OpenAI `json_object`).
    JsonObject,
    /// JSON valid against a schema (OpenAI `json_schema`).
    JsonSchema(JsonSchemaFormat),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaFormat {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema, an object.
    pub schema: Value,
    /// OpenAI's `strict`; providers that validate natively always are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// The provider's processing tier (Bedrock `serviceTier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServiceTier {
    Default,
    Flex,
    Priority,
}

impl ServiceTier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Flex => "flex",
            Self::Priority => "priority",
        }
    }
}

/// Bedrock `performanceConfig.latency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Latency {
    Standard,
    Optimized,
}

impl Latency {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "standard" => Some(Self::Standard),
            "optimized" => Some(Self::Optimized),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Optimized => "optimized",
        }
    }
}
