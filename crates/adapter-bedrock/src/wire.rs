//! Serde types for the Converse and ConverseStream JSON bodies, after botocore's
//! `bedrock-runtime` service model (API 2023-09-30).
//!
//! Request types borrow from the domain request, so building a body copies no strings:
//! they only serialize. The exceptions are values the adapter computes: a document name
//! made valid, a JSON Schema written as the string `outputConfig` wants, and
//! `additionalModelRequestFields` when reasoning settings are merged into the client's. Response types own their data and ignore unknown fields (Bedrock
//! adds members over time, and a new one must never break an answer). Content blocks are
//! unions on the wire; responses read them as structs of optional members so a block of a
//! kind this build does not know is skipped rather than refused.

use std::borrow::Cow;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------

/// The body of `POST /model/{modelId}/converse` (and `/converse-stream`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest<'a> {
    pub messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemContentBlock<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfiguration<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfiguration<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guardrail_config: Option<GuardrailConfiguration<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<Cow<'a, Value>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub additional_model_response_field_paths: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_metadata: Option<RequestMetadata<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performance_config: Option<PerformanceConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfig<'a>>,
}

/// The body of `POST /model/{modelId}/count-tokens` with a Converse input
/// (`{"input": {"converse": {...}}}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountTokensRequest<'a> {
    pub input: CountTokensInput<'a>,
}

/// `CountTokensInput`, a union: the Converse member.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountTokensInput<'a> {
    pub converse: ConverseTokensRequest<'a>,
}

/// `ConverseTokensRequest`: what of a Converse body CountTokens counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseTokensRequest<'a> {
    pub messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemContentBlock<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfiguration<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<Cow<'a, Value>>,
}

impl<'a> CountTokensRequest<'a> {
    /// The count of the prompt `request` would send: its messages, system prompt, tools and
    /// model-specific fields (the rest of a Converse body generates, and is not counted).
    pub fn converse(request: ConverseRequest<'a>) -> Self {
        Self {
            input: CountTokensInput {
                converse: ConverseTokensRequest {
                    messages: request.messages,
                    system: request.system,
                    tool_config: request.tool_config,
                    additional_model_request_fields: request.additional_model_request_fields,
                },
            },
        }
    }
}

/// The answer of CountTokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountTokensResponse {
    pub input_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationRole {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message<'a> {
    pub role: ConversationRole,
    pub content: Vec<ContentBlock<'a>>,
}

/// A request content block: a union, so exactly one member is set (serde's external
/// tagging writes `{"text": ...}`, `{"image": {...}}`, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlock<'a> {
    Text(&'a str),
    Image(ImageBlock<'a>),
    Document(DocumentBlock<'a>),
    ToolUse(ToolUseBlock<'a>),
    ToolResult(ToolResultBlock<'a>),
    GuardContent(GuardrailConverseContentBlock<'a>),
    CachePoint(CachePointBlock),
    ReasoningContent(ReasoningContentBlock<'a>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageBlock<'a> {
    /// `png` | `jpeg` | `gif` | `webp`.
    pub format: &'a str,
    pub source: ImageSource<'a>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ImageSource<'a> {
    /// Base64, as JSON carries blobs.
    Bytes(&'a str),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentBlock<'a> {
    /// `pdf` | `csv` | `doc` | `docx` | `xls` | `xlsx` | `html` | `txt` | `md`.
    pub format: &'static str,
    /// Only alphanumerics, single spaces, hyphens, parentheses and square brackets; unique
    /// within the request (see `crate::documents`).
    pub name: Cow<'a, str>,
    pub source: DocumentSource<'a>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DocumentSource<'a> {
    /// Base64, as JSON carries blobs.
    Bytes(&'a str),
}

/// Content a guardrail evaluates selectively (`guardContent`); a union with `text` and
/// `image`, of which the adapter sends text.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum GuardrailConverseContentBlock<'a> {
    Text(GuardrailConverseTextBlock<'a>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardrailConverseTextBlock<'a> {
    pub text: &'a str,
}

/// `{"type": "default", "ttl"?: "5m" | "1h"}`: everything before it may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CachePointBlock {
    #[serde(rename = "type")]
    pub kind: CachePointType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CachePointType {
    Default,
}

/// Reasoning given back from an earlier assistant turn, verbatim.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ReasoningContentBlock<'a> {
    ReasoningText(ReasoningTextBlock<'a>),
    /// Base64, as the model produced it.
    RedactedContent(&'a str),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasoningTextBlock<'a> {
    pub text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlock<'a> {
    pub tool_use_id: &'a str,
    pub name: &'a str,
    pub input: &'a Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultBlock<'a> {
    pub tool_use_id: &'a str,
    pub content: Vec<ToolResultContentBlock<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ToolResultStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolResultContentBlock<'a> {
    Text(&'a str),
}

/// `success` | `error`; the adapter only ever sends `error` (a result without a status
/// is a success), so that is the only variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolResultStatus {
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SystemContentBlock<'a> {
    Text(&'a str),
    GuardContent(GuardrailConverseContentBlock<'a>),
    CachePoint(CachePointBlock),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfiguration<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub stop_sequences: &'a [String],
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfiguration<'a> {
    pub tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice<'a>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Tool<'a> {
    ToolSpec(ToolSpecification<'a>),
    /// Caches the tool definitions before it.
    CachePoint(CachePointBlock),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpecification<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    pub input_schema: ToolInputSchema<'a>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolInputSchema<'a> {
    Json(&'a Value),
}

/// `{auto: {}}` | `{any: {}}` | `{tool: {name}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolChoice<'a> {
    Auto(Empty),
    Any(Empty),
    Tool(SpecificToolChoice<'a>),
}

/// Serializes as `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpecificToolChoice<'a> {
    pub name: &'a str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailConfiguration<'a> {
    pub guardrail_identifier: &'a str,
    pub guardrail_version: &'a str,
    /// `enabled` | `disabled` | `enabled_full`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<&'static str>,
    /// ConverseStream only: `sync` | `async`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_processing_mode: Option<&'static str>,
}

/// `requestMetadata`: a map of string to string, written in the client's order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestMetadata<'a>(pub &'a [(String, String)]);

impl Serialize for RequestMetadata<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// `{"latency": "standard" | "optimized"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PerformanceConfiguration {
    pub latency: &'static str,
}

/// `{"type": "priority" | "default" | "flex" | "reserved"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ServiceTier {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputConfig<'a> {
    pub text_format: OutputFormat<'a>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputFormat<'a> {
    #[serde(rename = "type")]
    pub kind: OutputFormatType,
    pub structure: OutputFormatStructure<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormatType {
    JsonSchema,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OutputFormatStructure<'a> {
    JsonSchema(JsonSchemaDefinition<'a>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonSchemaDefinition<'a> {
    /// The schema as a JSON string, as botocore's model types it.
    pub schema: String,
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
}

// ---------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------

/// The body of a successful Converse answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    #[serde(default)]
    pub output: ConverseOutput,
    pub stop_reason: String,
    #[serde(default)]
    pub usage: TokenUsage,
    #[serde(default)]
    pub metrics: Option<ConverseMetrics>,
    #[serde(default)]
    pub trace: Option<ConverseTrace>,
    #[serde(default)]
    pub additional_model_response_fields: Option<Value>,
}

/// A union with one member, `message`, today.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseOutput {
    #[serde(default)]
    pub message: Option<ResponseMessage>,
}

/// The answer's `role` is not read: it is the assistant's, and botocore's enum for it also
/// holds `system`, which must not turn a valid answer into a protocol error.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResponseMessage {
    #[serde(default)]
    pub content: Vec<ResponseContentBlock>,
}

/// A response content block with the members this adapter uses; other members
/// (`citationsContent`, `image`, ...) leave every field `None`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseContentBlock {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub tool_use: Option<ResponseToolUse>,
    #[serde(default)]
    pub reasoning_content: Option<ReasoningContent>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseToolUse {
    pub tool_use_id: String,
    pub name: String,
    #[serde(default)]
    pub input: Value,
}

/// `{reasoningText: {text, signature}}` | `{redactedContent: <base64>}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningContent {
    #[serde(default)]
    pub reasoning_text: Option<ReasoningText>,
    #[serde(default)]
    pub redacted_content: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ReasoningText {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub signature: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_write_input_tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseMetrics {
    #[serde(default)]
    pub latency_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseTrace {
    /// Kept raw: the gateway passes it to clients as Bedrock wrote it.
    #[serde(default)]
    pub guardrail: Option<Value>,
    #[serde(default)]
    pub prompt_router: Option<Value>,
}

// ---------------------------------------------------------------------------------------
// ConverseStream events: the JSON payload of each event-stream message, by `:event-type`
// ---------------------------------------------------------------------------------------

/// `contentBlockStart`: a tool call's id and name (text blocks start without one).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStartEvent {
    pub content_block_index: u64,
    #[serde(default)]
    pub start: Option<ContentBlockStart>,
}

/// A union; only `toolUse` is used.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStart {
    #[serde(default)]
    pub tool_use: Option<ToolUseBlockStart>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlockStart {
    pub tool_use_id: String,
    pub name: String,
}

/// `contentBlockDelta`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDeltaEvent {
    pub content_block_index: u64,
    pub delta: ContentBlockDelta,
}

/// A union read as a struct of optional members, like [`ResponseContentBlock`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDelta {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub tool_use: Option<ToolUseBlockDelta>,
    #[serde(default)]
    pub reasoning_content: Option<ReasoningContentBlockDelta>,
}

/// A piece of a tool call's JSON arguments.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ToolUseBlockDelta {
    pub input: String,
}

/// `{text}` | `{signature}` | `{redactedContent}`: a piece of reasoning text, the signature
/// that closes the block, or a whole redacted block (base64).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningContentBlockDelta {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub signature: Option<String>,
    #[serde(default)]
    pub redacted_content: Option<String>,
}

/// `messageStop`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStopEvent {
    pub stop_reason: String,
    /// The fields `additionalModelResponseFieldPaths` asked for, as in a Converse answer.
    #[serde(default)]
    pub additional_model_response_fields: Option<Value>,
}

/// `metadata`: the same usage and trace as a Converse answer's.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MetadataEvent {
    #[serde(default)]
    pub usage: Option<TokenUsage>,
    #[serde(default)]
    pub trace: Option<ConverseTrace>,
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// An error body, of an HTTP error answer or a stream exception frame: `{"message": ...}`, sometimes `Message`, sometimes with `__type`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub message: Option<String>,
    /// Some services capitalize it; a separate field, so a body with both still parses.
    #[serde(default, rename = "Message")]
    pub message_capitalized: Option<String>,
    #[serde(default, rename = "__type")]
    pub error_type: Option<String>,
}

impl ErrorBody {
    pub fn message(&self) -> Option<&str> {
        self.message
            .as_deref()
            .or(self.message_capitalized.as_deref())
    }
}
