//! Chat requests, responses and stream events, independent of any wire format.
//!
//! The HTTP adapter builds these from OpenAI JSON; the Bedrock adapter turns them into
//! Converse JSON and back.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::finish_reason::StopReason;
use crate::guardrail::GuardrailConfig;

/// One chat completion request, as the client asked for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The public model name the client sent, e.g. `internal-bedrock/claude-3`.
    pub model: String,
    /// System and developer instructions, in order.
    pub system: Vec<String>,
    /// The conversation as the client gave it, one entry per client message (tool results
    /// are user messages). Consecutive messages may share a role and the first may be the
    /// assistant's: shaping turns for a provider's rules (Converse merges same-role turns
    /// and refuses an assistant first turn) is that provider adapter's job.
    pub messages: Vec<Message>,
    pub inference: InferenceParams,
    pub tools: Vec<ToolSpec>,
    pub tool_choice: Option<ToolChoice>,
    /// The guardrail the client asked for (`guardrailConfig`), before policy. What the
    /// provider applies is [`ProviderRequest::guardrail`](crate::ProviderRequest::guardrail),
    /// the effective one; this field is never rewritten. (Serialized as `guardrail`, the name
    /// the request snapshots and domain fixtures have always used.)
    #[serde(rename = "guardrail")]
    pub requested_guardrail: Option<GuardrailConfig>,
    /// Provider-specific request fields passed through unchanged
    /// (Converse `additionalModelRequestFields`).
    pub additional_model_request_fields: Option<Value>,
    pub stream: bool,
    /// Streaming only: send a final chunk with usage (`stream_options.include_usage`).
    pub include_usage: bool,
}

/// Sampling and length settings (Converse `inferenceConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InferenceParams {
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub stop: Vec<String>,
}

impl InferenceParams {
    pub fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop.is_empty()
    }
}

/// Exhaustive on purpose: a conversation has exactly these two parties (system text is kept
/// apart), and adapters map each turn without a fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentPart>,
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContentPart {
    Text(String),
    Image(Image),
    /// A tool call the assistant made earlier in the conversation.
    ToolUse(ToolCall),
    /// The answer to a tool call, sent back by the client.
    ToolResult(ToolResult),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ImageFormat {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl ImageFormat {
    /// The format of a `data:` URL's media type, e.g. `image/png`.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type.to_ascii_lowercase().as_str() {
            "image/png" => Some(Self::Png),
            "image/jpeg" | "image/jpg" => Some(Self::Jpeg),
            "image/gif" => Some(Self::Gif),
            "image/webp" => Some(Self::Webp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::Gif => "gif",
            Self::Webp => "webp",
        }
    }
}

/// An inline image; the bytes stay base64 as the client sent them, since Converse JSON
/// wants base64 too and decoding would only copy them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub format: ImageFormat,
    pub base64_data: String,
}

/// A function call made by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as a JSON value (OpenAI sends and expects them as a JSON string).
    pub input: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    pub tool_use_id: String,
    pub content: String,
    pub is_error: bool,
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// The model must call some tool (OpenAI `required`).
    Any,
    /// The model must call this tool.
    Tool(String),
    /// The model must not call tools (OpenAI `none`): tools are left out of the request.
    None,
}

/// Token counts as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cache_read_input_tokens: Option<u64>,
    pub cache_write_input_tokens: Option<u64>,
}

/// A complete, non-streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Text blocks concatenated in order, if any.
    pub text: Option<String>,
    /// Reasoning text, if the model returned any.
    pub reasoning: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub stop_reason: StopReason,
    pub usage: Usage,
    /// Bedrock's `trace.guardrail`, kept as raw JSON.
    pub guardrail_trace: Option<Value>,
}

/// One step of a streamed answer, in the order the provider produced them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChatEvent {
    /// The assistant message begins.
    MessageStart,
    TextDelta(String),
    ReasoningDelta(String),
    /// A tool call begins; `index` counts tool calls in this answer, from 0.
    ToolCallStart {
        index: u32,
        id: String,
        name: String,
    },
    /// A piece of a tool call's JSON arguments.
    ToolCallDelta {
        index: u32,
        arguments: String,
    },
    /// Generation stopped.
    Stop(StopReason),
    /// Usage and trace, after the stop.
    Metadata {
        usage: Usage,
        guardrail_trace: Option<Value>,
    },
}
