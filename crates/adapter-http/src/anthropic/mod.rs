//! Anthropic's Messages API (`POST /v1/messages`), converted to and from `gateway-core` types.
//!
//! Pure functions only, as in [`crate::openai`]: [`request`] (the body to a
//! [`ChatRequest`](gateway_core::ChatRequest)), [`response`] (an answer to a `message`),
//! [`stream`] (events to Anthropic's server-sent events) and [`error`] (Anthropic's error
//! shape), each with snapshot tests over `fixtures/anthropic/`.

mod door;
pub(crate) mod error;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream;

pub(crate) use door::{AnthropicContext, AnthropicMessages};

#[cfg(test)]
pub(crate) mod test_support {
    pub(crate) const MESSAGE_ID: &str = "msg_0123456789abcdefghijklmnopqrs";
}
