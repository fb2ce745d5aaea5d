//! The ports: what the domain needs from the outside, implemented by adapters.

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures_core::Stream;

use crate::chat::{ChatEvent, ChatRequest, ChatResponse};
use crate::embedding::{EmbeddingRequest, EmbeddingResponse};
use crate::error::{ProviderError, RequestFeature};
use crate::guardrail::GuardrailConfig;
use crate::guardrail_check::{GuardrailCheckOutcome, GuardrailSource};
use crate::router::{Resolution, Route, RouteError, VirtualModel};

/// A streamed answer: events in order, ending after `Metadata`, or an error at any point.
pub type ChatEventStream = Pin<Box<dyn Stream<Item = Result<ChatEvent, ProviderError>> + Send>>;

/// One call to a provider, prepared by [`ChatService`](crate::ChatService): where it goes,
/// what the client asked, and what policy decided.
///
/// The client's [`ChatRequest`] is passed through untouched; decisions made after routing
/// travel beside it as their own fields, so a provider never has to know whether a field of
/// the request was rewritten. Non-exhaustive because per-call context (request id,
/// deadline, ...) will be added here; build one with [`ProviderRequest::new`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ProviderRequest<'a> {
    pub route: &'a Route,
    /// The request as the client sent it.
    pub chat: &'a ChatRequest,
    /// The effective guardrail after policy: the provider applies exactly this one, whatever
    /// `chat.requested_guardrail` says.
    pub guardrail: Option<&'a GuardrailConfig>,
}

impl<'a> ProviderRequest<'a> {
    pub fn new(
        route: &'a Route,
        chat: &'a ChatRequest,
        guardrail: Option<&'a GuardrailConfig>,
    ) -> Self {
        Self {
            route,
            chat,
            guardrail,
        }
    }
}

/// A model provider (Bedrock, or a host's own).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ChatProvider: Send + Sync {
    async fn complete<'a>(
        &self,
        request: ProviderRequest<'a>,
    ) -> Result<ChatResponse, ProviderError>;

    /// Starts a streamed answer. An error before the first event comes back here, so the
    /// caller can still answer with a plain HTTP error.
    async fn stream<'a>(
        &self,
        request: ProviderRequest<'a>,
    ) -> Result<ChatEventStream, ProviderError>;

    /// The input tokens the request would take, counted by the model's tokenizer without
    /// generating (Bedrock's CountTokens). Providers that cannot count keep this default,
    /// which refuses.
    async fn count_tokens<'a>(&self, request: ProviderRequest<'a>) -> Result<u64, ProviderError> {
        Err(ProviderError::Unsupported {
            feature: RequestFeature::CountTokens,
            message: format!(
                "this provider cannot count the tokens of a request to `{}`",
                request.route.model_id
            ),
        })
    }
}

/// A provider of embeddings (Bedrock's embedding models, or a host's own). The service has
/// already checked that `route` is an embedding model and that the request is within the
/// caps of [`check_embedding_request`](crate::embedding::check_embedding_request).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait EmbeddingProvider: Send + Sync {
    /// One vector per input of `request`, in order. Errors fail over as a chat call's do
    /// ([`ProviderError::fails_over`]).
    async fn embed(
        &self,
        route: &Route,
        request: &EmbeddingRequest,
    ) -> Result<EmbeddingResponse, ProviderError>;
}

/// Resolves public model names and lists the models clients may use.
#[cfg_attr(test, mockall::automock)]
pub trait ModelRouter: Send + Sync {
    /// The one model a name routes to, or the virtual model whose targets it spreads over.
    fn resolve(&self, public_name: &str) -> Result<Resolution, RouteError>;

    /// Every configured `<account>/<model>`, in configuration order.
    fn models(&self) -> Vec<Arc<Route>>;

    /// Every virtual model, in configuration order.
    fn virtual_models(&self) -> Vec<Arc<VirtualModel>>;
}

/// Checks text against a guardrail without a model (Bedrock's ApplyGuardrail).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait GuardrailChecker: Send + Sync {
    /// Applies `guardrail` to `content` (one block per text) with `account`'s credentials.
    async fn apply(
        &self,
        account: &str,
        guardrail: &GuardrailConfig,
        source: GuardrailSource,
        content: &[String],
    ) -> Result<GuardrailCheckOutcome, ProviderError>;
}
