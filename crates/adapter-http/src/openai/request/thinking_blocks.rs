//! `thinking_blocks` on assistant messages from history: the reasoning the gateway answered
//! with (`message.thinking_blocks`), given back so the provider can verify it. Signatures and
//! redacted data are kept verbatim; a thinking model's tool loop breaks without them.
//! Redacted data goes to Bedrock as bytes, so it must be the base64 the gateway answered with:
//! anything else is this 400 rather than Bedrock's ValidationException.

use gateway_core::media::Base64;
use gateway_core::request_limits::{check_count, MAX_CONTENT_BLOCKS};
use gateway_core::ReasoningBlock;
use serde_json::Value;

use super::fields::{
    invalid_type, invalid_value, optional_string, required_string, At, RequestError,
};

/// `[{"type": "thinking", "thinking", "signature"?}, {"type": "redacted_thinking", "data"}]`.
pub(super) fn thinking_blocks(
    value: Value,
    at: &At<'_>,
) -> Result<Vec<ReasoningBlock>, RequestError> {
    let Value::Array(blocks) = value else {
        return Err(invalid_type(at, "an array of thinking blocks"));
    };
    check_count(blocks.len(), MAX_CONTENT_BLOCKS, "thinking blocks")
        .map_err(|message| invalid_value(at, message))?;
    blocks
        .into_iter()
        .enumerate()
        .map(|(k, block)| {
            let at = at.index(k);
            let Value::Object(mut block) = block else {
                return Err(invalid_type(&at, "a thinking block object"));
            };
            let kind = required_string(&mut block, "type", &at)?;
            match kind.as_str() {
                "thinking" => Ok(ReasoningBlock::Thinking {
                    text: required_string(&mut block, "thinking", &at)?,
                    signature: optional_string(&mut block, "signature", &at)?,
                }),
                "redacted_thinking" => {
                    let data = required_string(&mut block, "data", &at)?;
                    redacted(data, &at.key("data"))
                }
                other => Err(invalid_value(
                    &at.key("type"),
                    format!("unknown value {other:?}: expected thinking or redacted_thinking"),
                )),
            }
        })
        .collect()
}

/// A redacted reasoning block given back by any door: its data goes to Bedrock as bytes, so
/// it must be the base64 the gateway answered with (checked, not decoded: the same strict rule
/// as inline media); anything else is a 400 at `at` rather than Bedrock's ValidationException.
pub(crate) fn redacted(data: String, at: &At<'_>) -> Result<ReasoningBlock, RequestError> {
    if Base64::parse(&data).is_err() {
        return Err(invalid_value(
            at,
            "is not the base64 of a redacted thinking block",
        ));
    }
    Ok(ReasoningBlock::Redacted { data })
}
