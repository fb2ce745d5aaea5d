//! Structured output (`response_format`) on Converse.
//!
//! STUB on branch i9-resp: helper A1 writes this module (the forced tool, `outputConfig`);
//! the lead keeps A1's version at merge. Only what the answer side needs is here.

use gateway_core::ProviderRequest;

/// The tool a request is forced to call when the model family has no native structured
/// output; its input is the answer.
pub(crate) const FORCED_TOOL_NAME: &str = "json_response";

/// The name of the forced tool when `call` uses one, so the answer side unwraps it.
// TODO(i9-req): A1's version decides from `response_format` and the model family.
pub(crate) fn forced_tool(call: ProviderRequest<'_>) -> Option<&'static str> {
    let _ = (call, FORCED_TOOL_NAME);
    None
}
