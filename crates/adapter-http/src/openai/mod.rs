//! OpenAI's chat-completions wire format, converted to and from `gateway-core` types.
//!
//! Pure functions only: no I/O, no clock, no randomness (ids and timestamps come in as
//! arguments), so every conversion has snapshot tests over `fixtures/openai/`.

pub(crate) mod chunk;
mod door;
pub(crate) mod embeddings;
pub(crate) mod models;
pub(crate) mod request;
pub(crate) mod response;

pub(crate) use door::{OpenAiChat, OpenAiContext};

/// `"provider"` in every answer, as the seed shows.
pub(crate) const PROVIDER: &str = "aws";

#[cfg(test)]
pub(crate) mod test_support {
    //! Shared by the snapshot tests of this module.

    use std::sync::Arc;

    use gateway_core::guardrail::GuardrailPolicy;
    use gateway_core::{FinishReasonStyle, Route};

    pub(crate) const ID: &str = crate::fuzzing::STREAM_ID;
    pub(crate) const CREATED: u64 = crate::fuzzing::STREAM_CREATED;

    pub(crate) fn route() -> Arc<Route> {
        Arc::new(Route {
            public_name: crate::fuzzing::STREAM_MODEL.into(),
            account: "internal-bedrock".into(),
            model_id: "anthropic.claude-3-sonnet-20240229-v1:0".into(),
            region: "us-east-1".into(),
            guardrail: GuardrailPolicy::open(),
            finish_reason_style: FinishReasonStyle::Bedrock,
            drop_unsupported_params: false,
            family: None,
            price: None,
            kind: gateway_core::ModelKind::Chat,
        })
    }
}
