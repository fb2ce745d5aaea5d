//! `thinking_blocks` on assistant messages from history: the reasoning the gateway answered
//! with (`message.thinking_blocks`), given back so the provider can verify it. Signatures and
//! redacted data are kept verbatim; a thinking model's tool loop breaks without them.
//! Redacted data goes to Bedrock as bytes, so it must be the base64 the gateway answered with:
//! anything else is this 400 rather than Bedrock's ValidationException.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
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
                    // Decoded only to check it; redacted blocks are rare and small.
                    if STANDARD.decode(&data).is_err() {
                        return Err(invalid_value(
                            &at.key("data"),
                            "is not the base64 of a redacted thinking block",
                        ));
                    }
                    Ok(ReasoningBlock::Redacted { data })
                }
                other => Err(invalid_value(
                    &at.key("type"),
                    format!("unknown value {other:?}: expected thinking or redacted_thinking"),
                )),
            }
        })
        .collect()
}
