//! The adapter's internals that its integration tests drive directly (feature `test-util`,
//! which the crate's own dev-dependency turns on). Not for hosts: nothing here is a stable
//! interface.

pub use crate::apply_guardrail::{
    apply_guardrail_body, apply_guardrail_path, parse_apply_guardrail_response,
};
pub use crate::client::build_client;
pub use crate::converse_request::{converse_body, Operation};
pub use crate::converse_response::parse_converse_response;
pub use crate::errors::{is_expired_token, provider_error, BedrockErrorResponse};
pub use crate::event_stream::{EventStreamError, FrameDecoder, MessageStream, MAX_FRAME_LEN};
pub use crate::provider::{model_path, unsigned_request};
pub use crate::signing::{host_header_value, Signer, SIGNING_NAME};
pub use crate::stream_events::converse_stream_events;
