//! Chat requests, responses and stream events, independent of any wire format.
//!
//! The HTTP adapter builds these from OpenAI JSON; the Bedrock adapter turns them into
//! Converse JSON and back.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::document::Document;
use crate::finish_reason::StopReason;
use crate::guardrail::GuardrailConfig;
use crate::options::{Latency, Reasoning, ResponseFormat, ServiceTier};

/// One chat completion request, as the client asked for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The public model name the client sent, e.g. `internal-bedrock/claude-3`.
    pub model: String,
    /// System and developer instructions, in order, with any cache points between them.
    pub system: Vec<SystemPart>,
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
    /// How much the model should think before answering, if at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
    /// The shape the answer's text must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// The provider's processing tier; `None` is the provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier>,
    /// Latency-optimized inference (Converse `performanceConfig.latency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// Key-value pairs the provider records with the invocation (Converse
    /// `requestMetadata`), in the client's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_metadata: Vec<(String, String)>,
    /// Provider-specific request fields passed through unchanged
    /// (Converse `additionalModelRequestFields`). An object.
    pub additional_model_request_fields: Option<Value>,
    /// JSON pointers of model-specific response fields to return (Converse
    /// `additionalModelResponseFieldPaths`); they come back in
    /// [`ChatResponse::additional_model_response_fields`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_model_response_field_paths: Vec<String>,
    /// Parameters the client set that the gateway cannot honour (OpenAI `n` > 1,
    /// `logprobs`, `seed`, ...), by the client's name for them. The service refuses the
    /// request naming the first one unless the caller or account drops them
    /// ([`Caller::drop_unsupported_params`](crate::Caller::drop_unsupported_params)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsupported_parameters: Vec<String>,
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

/// One piece of the system prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SystemPart {
    Text(String),
    /// Text a guardrail evaluates even when the rest of the prompt is not evaluated
    /// (Bedrock's selective evaluation, `guardContent`).
    GuardedText(String),
    /// Everything before this point may be cached by the provider.
    CachePoint(CachePoint),
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContentPart {
    Text(String),
    Image(Image),
    /// An inline document (PDF, spreadsheet, text, ...).
    Document(Document),
    /// Text the guardrail evaluates: when a message holds guarded text, a guardrail
    /// evaluates only the guarded parts (Bedrock's `guardContent`).
    GuardedText(String),
    /// The model's reasoning from an earlier assistant turn, given back verbatim so the
    /// provider can verify it (signatures and redacted data must be intact).
    Reasoning(ReasoningBlock),
    /// Everything before this point (tools, system, earlier messages and parts) may be
    /// cached by the provider.
    CachePoint(CachePoint),
    /// A tool call the assistant made earlier in the conversation.
    ToolUse(ToolCall),
    /// The answer to a tool call, sent back by the client.
    ToolResult(ToolResult),
}

/// A prompt-cache boundary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachePoint {
    /// How long the cached prefix lives; `None` is the provider's default (5 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<CacheTtl>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CacheTtl {
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "1h")]
    OneHour,
}

impl CacheTtl {
    /// `5m` | `1h`, as both OpenAI-style clients and Bedrock write it.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "5m" => Some(Self::FiveMinutes),
            "1h" => Some(Self::OneHour),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FiveMinutes => "5m",
            Self::OneHour => "1h",
        }
    }
}

/// One block of a model's reasoning, in the order the model produced them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReasoningBlock {
    /// Readable reasoning and the provider's signature over it.
    Thinking {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// Reasoning the provider encrypted (base64), to be given back as it came.
    Redacted { data: String },
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
    /// A cache point right after this tool's definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_point: Option<CachePoint>,
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
///
/// `input_tokens` counts only the input tokens that were neither read from nor written to
/// the prompt cache (Bedrock's `inputTokens`); the cache counts are apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cache_read_input_tokens: Option<u64>,
    pub cache_write_input_tokens: Option<u64>,
}

impl Usage {
    /// Every token of the prompt: uncached, read from the cache and written to it
    /// (what OpenAI calls `prompt_tokens`).
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_read_input_tokens.unwrap_or(0))
            .saturating_add(self.cache_write_input_tokens.unwrap_or(0))
    }
}

/// A complete, non-streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Text blocks concatenated in order, if any.
    pub text: Option<String>,
    /// The model's reasoning blocks, in order (empty when it did not reason).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasoning: Vec<ReasoningBlock>,
    pub tool_calls: Vec<ToolCall>,
    pub stop_reason: StopReason,
    pub usage: Usage,
    /// Bedrock's `trace.guardrail`, kept as raw JSON.
    pub guardrail_trace: Option<Value>,
    /// The model-specific fields the request asked for by path, as the provider sent them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_response_fields: Option<Value>,
}

impl ChatResponse {
    /// An answer with only `text` and `stop_reason`; the rest empty.
    pub fn text(text: impl Into<String>, stop_reason: StopReason) -> Self {
        Self {
            text: Some(text.into()),
            reasoning: Vec::new(),
            tool_calls: Vec::new(),
            stop_reason,
            usage: Usage::default(),
            guardrail_trace: None,
            additional_model_response_fields: None,
        }
    }

    /// The readable reasoning text, blocks concatenated in order; `None` when there is none.
    pub fn reasoning_text(&self) -> Option<String> {
        let mut text: Option<String> = None;
        for block in &self.reasoning {
            if let ReasoningBlock::Thinking { text: piece, .. } = block {
                text.get_or_insert_with(String::new).push_str(piece);
            }
        }
        text
    }
}

/// One step of a streamed answer, in the order the provider produced them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChatEvent {
    /// The assistant message begins.
    MessageStart,
    TextDelta(String),
    /// A piece of the current reasoning block's text.
    ReasoningDelta(String),
    /// The signature that closes the current reasoning block; comes after its text and
    /// before any text or tool call.
    ReasoningSignature(String),
    /// A whole redacted reasoning block (base64).
    RedactedReasoning(String),
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
    /// The model-specific response fields the request asked for; before `Stop`.
    AdditionalResponseFields(Value),
    /// Generation stopped.
    Stop(StopReason),
    /// Usage and trace, after the stop.
    Metadata {
        usage: Usage,
        guardrail_trace: Option<Value>,
    },
}
