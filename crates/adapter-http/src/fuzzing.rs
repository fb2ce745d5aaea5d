//! Entry points for the fuzz targets (`fuzz/`) and the property tests of
//! `gateway-test-support`, which live outside this crate and cannot reach its `pub(crate)`
//! parsers and encoders. Hidden from the docs and not an interface: nothing here is stable.
//!
//! Also the one reader of the `fixtures/openai/stream/` format (a provider's events, then how
//! the client asked for them), shared by the SSE snapshot tests and the SSE fuzz target.

use std::sync::{Arc, OnceLock};

use futures_util::FutureExt;
use gateway_core::{
    ChatEvent, ChatEventStream, ChatRequest, FinishReasonStyle, Price, ProviderError, Route,
};
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::metrics::Metrics;
use crate::openai::chunk::ChunkEncoder;
use crate::sse::SseBody;

/// The chat request the OpenAI door makes of `body`, or the error message it answers with.
pub fn parse_chat_request(body: &[u8]) -> Result<ChatRequest, String> {
    crate::openai::request::parse_chat_request(body)
        .map(|parsed| parsed.chat)
        .map_err(|error| format!("{error:?}"))
}

/// The chat request the Anthropic Messages door makes of `body`, or its error message.
pub fn parse_messages_request(body: &[u8]) -> Result<ChatRequest, String> {
    use crate::anthropic::request::{parse_messages_request, Purpose};
    parse_messages_request(body, Purpose::Answer).map_err(|error| format!("{error:?}"))
}

/// The chat request the OpenAI Responses door makes of `body`, or its error message.
pub fn parse_responses_request(body: &[u8]) -> Result<ChatRequest, String> {
    crate::responses::request::parse_responses_request(body)
        .map(|parsed| parsed.chat)
        .map_err(|error| format!("{error:?}"))
}

/// A stream fixture: the events a provider streams, then what the client asked for, from a
/// model with `price` if it has one.
#[derive(Debug, Deserialize)]
pub struct StreamFixture {
    pub style: FinishReasonStyle,
    pub include_usage: bool,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub price: Option<Price>,
}

/// One item of the provider's stream: an event, or the error that ends it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Step {
    Event(ChatEvent),
    Error { error: String, message: String },
}

impl StreamFixture {
    /// The provider's stream; `None` when a step names an error kind the fixtures do not use.
    fn provider_items(self) -> Option<Vec<Result<ChatEvent, ProviderError>>> {
        self.steps
            .into_iter()
            .map(|step| match step {
                Step::Event(event) => Some(Ok(event)),
                Step::Error { error, message } => provider_error(&error, message).map(Err),
            })
            .collect()
    }
}

fn provider_error(kind: &str, message: String) -> Option<ProviderError> {
    Some(match kind {
        "throttled" => ProviderError::Throttled { message },
        "model_error" => ProviderError::ModelError { message },
        "protocol" => ProviderError::Protocol { message },
        _ => return None,
    })
}

/// The fixed id, `created` and model of every stream encoded here.
pub const STREAM_ID: &str = "chatcmpl-0123456789abcdefghijklmnopqr";
pub const STREAM_CREATED: u64 = 1_741_339_101;
pub const STREAM_MODEL: &str = "internal-bedrock/claude-3";

/// The SSE text the gateway writes for `fixture`, through the real response body; `None` when
/// the fixture cannot come from a provider (an unknown error kind, a price configuration would
/// refuse).
pub fn sse_text(fixture: StreamFixture, route: &Route) -> Option<Vec<u8>> {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    encode_stream(fixture, route, METRICS.get_or_init(Metrics::new))
}

/// [`sse_text`], counting the stream in `metrics`.
pub(crate) fn encode_stream(
    fixture: StreamFixture,
    route: &Route,
    metrics: &Metrics,
) -> Option<Vec<u8>> {
    if fixture.price.is_some_and(|price| price.validate().is_err()) {
        return None;
    }
    let route = Arc::new(Route {
        price: fixture.price,
        ..route.clone()
    });
    let (style, include_usage) = (fixture.style, fixture.include_usage);
    let events: ChatEventStream = Box::pin(futures_util::stream::iter(fixture.provider_items()?));
    let encoder = ChunkEncoder::new(
        STREAM_ID,
        STREAM_CREATED,
        STREAM_MODEL,
        style,
        include_usage,
    )
    .priced_by(route, None);
    let body = SseBody::new(
        events,
        Box::new(encoder),
        Arc::new("acct".into()),
        metrics.open_stream(),
        tracing::Span::none(),
    );
    // The events are all ready, so the body completes without a runtime.
    let collected = body.collect().now_or_never()?;
    Some(match collected {
        Ok(body) => body.to_bytes().to_vec(),
        Err(never) => match never {},
    })
}
