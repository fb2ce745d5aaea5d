//! Caps on what one request may hold, and the name rules Bedrock enforces, kept once here so
//! every API door refuses the same requests.
//!
//! A door checks them while it reads the client's JSON (`check_*` below, with the field
//! path in its own terms, before it builds more than it must). [`check_request`] applies all
//! of them to a whole [`ChatRequest`]; the service runs it before routing, so a host or door
//! that skipped a check still cannot send an oversized or malformed request upstream (its
//! paths are then in the domain's terms, e.g. `messages[3].content[0]`).
//!
//! Where Bedrock publishes a limit (botocore's model, the Converse documentation) the cap is
//! Bedrock's, so a request refused here would have been refused upstream after a round
//! trip. Where it publishes none (messages, content blocks, tools), the cap is far above any
//! real conversation and bounds the work one request can cause.

use thiserror::Error;

use crate::chat::{ChatRequest, ContentPart, SystemPart, ToolChoice};
use crate::media::{self, MediaError};

/// Messages in one request (system and developer messages included).
pub const MAX_MESSAGES: usize = 4096;
/// Content blocks in one message, or in the system prompt (cache points not counted).
pub const MAX_CONTENT_BLOCKS: usize = 1024;
/// Tool definitions in one request.
pub const MAX_TOOLS: usize = 512;
/// Stop sequences (botocore: `InferenceConfigurationStopSequencesList` max 2500).
pub const MAX_STOP_SEQUENCES: usize = 2500;
/// Images in one request (Converse: up to 20).
pub const MAX_IMAGES: usize = 20;
/// Documents in one request (Converse: up to five).
pub const MAX_DOCUMENTS: usize = 5;
/// Tool names: botocore's `ToolName`, `[a-zA-Z0-9_-]{1,64}`.
pub const MAX_TOOL_NAME_BYTES: usize = 64;
/// Tool call ids: botocore's `ToolUseId`, `[a-zA-Z0-9_.:-]{1,64}`.
pub const MAX_TOOL_USE_ID_BYTES: usize = 64;
/// Public model names (`<account>/<model>` or a virtual model): a name longer than this
/// cannot be configured, so it is refused before it is looked up or echoed in an error.
pub const MAX_MODEL_NAME_BYTES: usize = 256;

/// A request over a cap or breaking a name rule: the field (a path such as
/// `messages[3].content[0]`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{path}: {message}")]
pub struct RequestLimitError {
    pub path: String,
    pub message: String,
}

impl RequestLimitError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// At most `max` items of `what`; the message a door shows for more.
pub fn check_count(count: usize, max: usize, what: &str) -> Result<(), String> {
    if count > max {
        return Err(format!("holds {count} {what}, more than the {max} allowed"));
    }
    Ok(())
}

/// Bedrock's tool name rule: 1 to 64 ASCII letters, digits, `_` or `-`.
pub fn check_tool_name(name: &str) -> Result<(), String> {
    check_identifier(name, MAX_TOOL_NAME_BYTES, "_-", "tool names")
}

/// Bedrock's tool call id rule (a tool call's `id`, a tool result's `tool_call_id`): 1 to 64
/// ASCII letters, digits, `_`, `.`, `:` or `-`.
pub fn check_tool_use_id(id: &str) -> Result<(), String> {
    check_identifier(id, MAX_TOOL_USE_ID_BYTES, "_.:-", "tool call ids")
}

/// 1 to `max` ASCII letters, digits or one of `punctuation`.
fn check_identifier(value: &str, max: usize, punctuation: &str, what: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if value.len() > max {
        return Err(format!(
            "is {} bytes long: {what} have at most {max} characters",
            value.len()
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || punctuation.contains(c)))
    {
        let allowed: Vec<String> = punctuation.chars().map(|p| format!("`{p}`")).collect();
        return Err(format!(
            "contains {c:?}: {what} may only hold letters, digits and {}",
            allowed.join(", ")
        ));
    }
    Ok(())
}

/// A public model name: not empty, at most [`MAX_MODEL_NAME_BYTES`], no control
/// characters. Whether it names a model is the router's answer; this only keeps absurd
/// names (megabytes, NUL) out of lookups, logs and error messages.
pub fn check_model_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.len() > MAX_MODEL_NAME_BYTES {
        return Err(format!(
            "is {} bytes long: model names have at most {MAX_MODEL_NAME_BYTES}",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(())
}

/// Counts a request's images and documents against [`MAX_IMAGES`] and [`MAX_DOCUMENTS`] as
/// a door meets them, and checks each by its bytes ([`media`]).
#[derive(Debug, Default)]
pub struct MediaBudget {
    images: usize,
    documents: usize,
}

impl MediaBudget {
    pub fn image(&mut self, image: &crate::chat::Image) -> Result<(), String> {
        self.images += 1;
        check_count(self.images, MAX_IMAGES, "images in the request")?;
        media::check_image(image.format, &image.base64_data).map_err(|e| e.to_string())
    }

    pub fn document(&mut self, document: &crate::document::Document) -> Result<(), String> {
        self.documents += 1;
        check_count(self.documents, MAX_DOCUMENTS, "documents in the request")?;
        media::check_document(document.format, &document.base64_data)
            .map_err(|e: MediaError| e.to_string())
    }
}

/// Names the failure of a check at `path`, made only when the check fails: the happy path
/// formats no path.
fn at<P: FnOnce() -> String>(path: P) -> impl FnOnce(String) -> RequestLimitError {
    move |message| RequestLimitError::new(path(), message)
}

/// Every cap and rule of this module over a whole request, paths in the domain's terms.
pub fn check_request(request: &ChatRequest) -> Result<(), RequestLimitError> {
    check_model_name(&request.model).map_err(at(|| "model".into()))?;
    let system_blocks = request
        .system
        .iter()
        .filter(|part| !matches!(part, SystemPart::CachePoint(_)))
        .count();
    check_count(system_blocks, MAX_CONTENT_BLOCKS, "content blocks")
        .map_err(at(|| "system".into()))?;
    check_count(request.messages.len(), MAX_MESSAGES, "messages")
        .map_err(at(|| "messages".into()))?;
    let mut media = MediaBudget::default();
    for (i, message) in request.messages.iter().enumerate() {
        let blocks = message
            .content
            .iter()
            .filter(|part| !matches!(part, ContentPart::CachePoint(_)))
            .count();
        check_count(blocks, MAX_CONTENT_BLOCKS, "content blocks")
            .map_err(at(|| format!("messages[{i}].content")))?;
        for (j, part) in message.content.iter().enumerate() {
            let path = || format!("messages[{i}].content[{j}]");
            match part {
                ContentPart::Image(image) => media.image(image).map_err(at(path))?,
                ContentPart::Document(document) => media.document(document).map_err(at(path))?,
                ContentPart::ToolUse(call) => {
                    check_tool_use_id(&call.id).map_err(at(|| format!("{}.id", path())))?;
                    check_tool_name(&call.name).map_err(at(|| format!("{}.name", path())))?
                }
                ContentPart::ToolResult(result) => check_tool_use_id(&result.tool_use_id)
                    .map_err(at(|| format!("{}.tool_use_id", path())))?,
                _ => {}
            }
        }
    }
    check_count(request.tools.len(), MAX_TOOLS, "tools").map_err(at(|| "tools".into()))?;
    for (i, tool) in request.tools.iter().enumerate() {
        check_tool_name(&tool.name).map_err(at(|| format!("tools[{i}].name")))?;
    }
    if let Some(ToolChoice::Tool(name)) = &request.tool_choice {
        check_tool_name(name).map_err(at(|| "tool_choice.name".into()))?;
    }
    check_count(
        request.inference.stop.len(),
        MAX_STOP_SEQUENCES,
        "stop sequences",
    )
    .map_err(at(|| "inference.stop".into()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Image, ImageFormat, Message, Role, ToolCall, ToolSpec};

    fn request() -> ChatRequest {
        ChatRequest {
            model: "acct/model".into(),
            messages: vec![Message {
                role: Role::User,
                content: vec![ContentPart::Text("hi".into())],
            }],
            ..ChatRequest::default()
        }
    }

    fn refusal(request: &ChatRequest) -> String {
        check_request(request).unwrap_err().to_string()
    }

    #[test]
    fn tool_names_follow_bedrocks_rule() {
        for name in ["a", "get_weather", "A-1_b", &"x".repeat(64)] {
            assert_eq!(check_tool_name(name), Ok(()), "{name}");
        }
        for name in ["", "has space", "a/b", "nul\0", "é", "a.b", &"x".repeat(65)] {
            assert!(check_tool_name(name).is_err(), "{name:?}");
        }
        for id in ["call_1", "toolu_01A.b:c-d", &"x".repeat(64)] {
            assert_eq!(check_tool_use_id(id), Ok(()), "{id}");
        }
        for id in ["", "call 1", "call/1", &"x".repeat(65)] {
            assert!(check_tool_use_id(id).is_err(), "{id:?}");
        }
    }

    #[test]
    fn model_names_are_bounded_and_printable() {
        assert_eq!(check_model_name("acct/model"), Ok(()));
        assert!(check_model_name("").is_err());
        assert!(check_model_name("a\0b").is_err());
        assert!(check_model_name(&"m".repeat(MAX_MODEL_NAME_BYTES + 1)).is_err());
    }

    #[test]
    fn a_request_within_every_cap_passes() {
        assert_eq!(check_request(&request()), Ok(()));
    }

    #[test]
    fn each_cap_is_refused_naming_the_domain_path() {
        let mut many_messages = request();
        many_messages.messages = vec![many_messages.messages[0].clone(); MAX_MESSAGES + 1];
        assert_eq!(
            refusal(&many_messages),
            "messages: holds 4097 messages, more than the 4096 allowed"
        );

        let mut bad_tool = request();
        bad_tool.tools = vec![ToolSpec {
            name: "read file".into(),
            description: None,
            parameters: serde_json::json!({}),
            cache_point: None,
        }];
        assert!(refusal(&bad_tool).starts_with("tools[0].name: contains ' '"));

        let mut bad_call = request();
        bad_call.messages[0]
            .content
            .push(ContentPart::ToolUse(ToolCall {
                id: "1".into(),
                name: "../x".into(),
                input: serde_json::json!({}),
            }));
        assert!(refusal(&bad_call).starts_with("messages[0].content[1].name:"));

        let mut images = request();
        let png = Image {
            format: ImageFormat::Png,
            base64_data: "iVBORw0KGgoAAAANSUhEUg==".into(),
        };
        images.messages[0].content = vec![ContentPart::Image(png); MAX_IMAGES + 1];
        assert_eq!(
            refusal(&images),
            "messages[0].content[20]: holds 21 images in the request, more than the 20 allowed"
        );

        let mut lying = request();
        lying.messages[0].content = vec![ContentPart::Image(Image {
            format: ImageFormat::Png,
            base64_data: "/9j/4AAQSkZJRgABAQ==".into(),
        })];
        assert_eq!(
            refusal(&lying),
            "messages[0].content[0]: the image's bytes are jpeg, not the png its media type says"
        );

        let mut stops = request();
        stops.inference.stop = vec!["x".into(); MAX_STOP_SEQUENCES + 1];
        assert!(refusal(&stops).starts_with("inference.stop:"));
    }
}
