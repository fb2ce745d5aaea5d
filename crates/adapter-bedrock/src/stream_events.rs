//! ConverseStream events to domain [`ChatEvent`]s (being written).

use std::sync::Arc;
use std::time::Duration;

use gateway_core::{ChatEventStream, ProviderError};

/// Decodes a ConverseStream response body into domain events.
pub(crate) fn chat_events(
    _account: Arc<str>,
    _body: hyper::body::Incoming,
    _idle_timeout: Duration,
) -> ChatEventStream {
    Box::pin(futures_util::stream::once(async {
        Err(ProviderError::Upstream {
            message: "streaming is not wired yet".into(),
        })
    }))
}
