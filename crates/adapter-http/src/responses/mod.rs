//! OpenAI's Responses API (`POST /v1/responses`), stateless, converted to and from
//! `gateway-core` types.
//!
//! Pure functions only: no I/O, no clock, no randomness (ids and timestamps come in as
//! arguments), so every conversion has snapshot tests over `fixtures/responses/`.

mod door;
mod input;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream;

pub(crate) use door::OpenAiResponses;
