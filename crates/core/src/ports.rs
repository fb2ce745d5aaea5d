//! The ports: what the domain needs from the outside, implemented by adapters.

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures_core::Stream;

use crate::chat::{ChatEvent, ChatRequest, ChatResponse};
use crate::error::ProviderError;
use crate::router::{Route, RouteError};

/// A streamed answer: events in order, ending after `Metadata`, or an error at any point.
pub type ChatEventStream = Pin<Box<dyn Stream<Item = Result<ChatEvent, ProviderError>> + Send>>;

/// A model provider (Bedrock, or a host's own).
///
/// `request.guardrail` is the effective guardrail after policy: the provider applies exactly
/// that one.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ChatProvider: Send + Sync {
    async fn complete(
        &self,
        route: &Route,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError>;

    /// Starts a streamed answer. An error before the first event comes back here, so the
    /// caller can still answer with a plain HTTP error.
    async fn stream(
        &self,
        route: &Route,
        request: &ChatRequest,
    ) -> Result<ChatEventStream, ProviderError>;
}

/// Resolves public model names and lists the models clients may use.
#[cfg_attr(test, mockall::automock)]
pub trait ModelRouter: Send + Sync {
    fn resolve(&self, public_name: &str) -> Result<Arc<Route>, RouteError>;

    /// Every routable model, in configuration order.
    fn models(&self) -> Vec<Arc<Route>>;
}
