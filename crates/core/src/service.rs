//! The application service: route, apply guardrail policy, call the provider, and fail over
//! to the next target of a virtual model when one cannot answer.
//!
//! Every target is prepared before the first call (route, unsupported parameters, effective
//! guardrail), exactly as a direct request to it would be, so whether a request is refused
//! never depends on which target happens to be throttled, and an enforced guardrail is
//! applied on every call to its target. Failing over happens only before anything reached
//! the caller: a stream is handed over once its first event has arrived, never earlier.
//!
//! Governance: once prepared, and before the first call, the caller's key is admitted by the
//! [`LimitStore`] (once per request, however many targets it then tries). After an answer
//! the service settles it: the cost at the answering route's price, the tokens and the cost
//! recorded against the key, and the [`UsageObserver`] told. A stream settles when its
//! usage arrives; one that ends without it (the client hung up, the stream was cut) settles
//! an estimate: output tokens at one per [`CHARS_PER_TOKEN`] characters of the text,
//! reasoning and tool arguments streamed so far, input tokens 0 (only the provider counts
//! them, and it did not say).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use thiserror::Error;

use crate::chat::{ChatEvent, ChatRequest, ChatResponse, Usage};
use crate::circuit_breaker::CircuitBreakers;
use crate::clock::SharedClock;
use crate::embedding::{check_embedding_request, EmbeddingRequest, EmbeddingResponse};
use crate::error::{GatewayError, ProviderError};
use crate::finish_reason::{FinishReason, FinishReasonStyle};
use crate::governance::{
    Admission, Consumption, Cost, KeyLimits, LimitState, LimitStore, OnBackendError, Settlement,
    UsageObserver,
};
use crate::guardrail::{effective_guardrail, GuardrailConfig};
use crate::guardrail_check::{
    CheckableGuardrail, GuardrailAllowList, GuardrailCatalog, GuardrailCheckError,
    GuardrailCheckOutcome, GuardrailCheckRequest,
};
use crate::options::ServiceTier;
use crate::ports::{
    ChatEventStream, ChatProvider, EmbeddingProvider, GuardrailChecker, ModelRouter,
    ProviderRequest,
};
use crate::random::SplitMix64;
use crate::router::{ModelKind, Resolution, Route, VirtualModel};

/// Characters per token in the estimate of a stream that ended without usage: the usual
/// rule of thumb for English text.
pub const CHARS_PER_TOKEN: u64 = 4;

/// Who is calling, as far as the domain cares.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Caller {
    /// The gateway key's configured name (never the key itself).
    pub key_name: Option<String>,
    /// The key's finish-reason style, overriding the account's.
    pub finish_reason_style: Option<FinishReasonStyle>,
    /// The key's choice to drop parameters the gateway cannot honour, overriding the
    /// account's ([`Route::drop_unsupported_params`]).
    pub drop_unsupported_params: Option<bool>,
    /// What the key may consume; enforced when the service has a [`LimitStore`] and the
    /// key a name to count under.
    pub limits: KeyLimits,
    /// The guardrails the key may check text against ([`ChatService::check_guardrail`]);
    /// none by default.
    pub guardrails: GuardrailAllowList,
}

/// One target that did not answer a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub target: Arc<Route>,
    pub outcome: AttemptOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// Not called: its circuit breaker is open.
    Skipped,
    /// Called, and it failed with this error.
    Failed(ProviderError),
}

/// A complete answer with what the client needs to present it.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The model name the client asked for (a virtual model's own name, not its target's).
    pub model: String,
    /// The target that answered.
    pub route: Arc<Route>,
    pub response: ChatResponse,
    pub finish_reason: FinishReason,
    pub finish_reason_style: FinishReasonStyle,
    /// The targets skipped or failed before `route` answered, in order.
    pub attempts: Vec<Attempt>,
    /// Where the key stands after this request was admitted; `None` when it has no limits
    /// (or the limits backend failed and the request was served anyway).
    pub limit_state: Option<LimitState>,
    /// What the answer cost at the route's price; `None` when the model has none.
    pub cost: Option<Cost>,
}

/// A request's input tokens, as the target that counted them reported.
#[derive(Debug)]
pub struct TokenCount {
    /// The target that counted.
    pub route: Arc<Route>,
    pub input_tokens: u64,
    /// The targets skipped or failed before `route` counted, in order.
    pub attempts: Vec<Attempt>,
}

/// A guardrail check's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardrailCheck {
    /// The configured guardrail that was applied.
    pub guardrail: Arc<CheckableGuardrail>,
    pub outcome: GuardrailCheckOutcome,
    /// As [`Completion::limit_state`].
    pub limit_state: Option<LimitState>,
}

/// Embeddings with what the client needs to present them.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    /// The model name the client asked for.
    pub model: String,
    /// The target that answered.
    pub route: Arc<Route>,
    pub response: EmbeddingResponse,
    /// The targets skipped or failed before `route` answered, in order.
    pub attempts: Vec<Attempt>,
    /// As [`Completion::limit_state`].
    pub limit_state: Option<LimitState>,
    /// The input tokens at the route's input price; `None` when the model has none.
    pub cost: Option<Cost>,
}

/// A started stream; map each `Stop` with `finish_reason_style`.
pub struct CompletionStream {
    /// The model name the client asked for.
    pub model: String,
    /// The target whose stream this is.
    pub route: Arc<Route>,
    pub finish_reason_style: FinishReasonStyle,
    /// The targets skipped or failed before `route` started answering, in order.
    pub attempts: Vec<Attempt>,
    /// As [`Completion::limit_state`].
    pub limit_state: Option<LimitState>,
    /// The tier the client asked for, which the price may depend on.
    pub service_tier: Option<ServiceTier>,
    /// The answer; the service settles its usage as it passes (see the module docs).
    pub events: ChatEventStream,
}

impl CompletionStream {
    /// What `usage` (the stream's `Metadata`) costs at the route's price: the cost the
    /// service records for this stream.
    pub fn cost(&self, usage: &Usage) -> Option<Cost> {
        self.route.cost(usage, self.service_tier)
    }
}

impl std::fmt::Debug for CompletionStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompletionStream")
            .field("model", &self.model)
            .field("route", &self.route)
            .field("finish_reason_style", &self.finish_reason_style)
            .field("attempts", &self.attempts)
            .field("limit_state", &self.limit_state)
            .finish_non_exhaustive()
    }
}

/// Why a request (chat or embedding) got no answer, and every target that was skipped or tried on the way (the
/// last one tried is the one whose error `error` is, when the error came from a provider).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{error}")]
pub struct ChatFailure {
    pub error: GatewayError,
    pub attempts: Vec<Attempt>,
    /// Where the caller's key stands: after admission when the request was admitted, or
    /// as it was refused ([`GatewayError::RateLimited`]); `None` when it has no limits or
    /// the request failed before admission.
    pub limit_state: Option<LimitState>,
}

impl ChatFailure {
    /// The last target called, if any was.
    pub fn last_tried(&self) -> Option<&Arc<Route>> {
        self.attempts
            .iter()
            .rev()
            .find(|attempt| matches!(attempt.outcome, AttemptOutcome::Failed(_)))
            .map(|attempt| &attempt.target)
    }
}

impl From<GatewayError> for ChatFailure {
    fn from(error: GatewayError) -> Self {
        Self {
            error,
            attempts: Vec::new(),
            limit_state: None,
        }
    }
}

/// Answers chat requests through the ports.
#[derive(Clone)]
pub struct ChatService {
    router: Arc<dyn ModelRouter>,
    provider: Arc<dyn ChatProvider>,
    /// `None`: embedding requests are refused as unavailable.
    embeddings: Option<Arc<dyn EmbeddingProvider>>,
    breakers: Arc<CircuitBreakers>,
    /// Draws for weighted virtual models.
    random: Arc<SplitMix64>,
    /// `None`: no key is limited.
    limits: Option<Limits>,
    usage_observer: Option<Arc<dyn UsageObserver>>,
    /// `now` for the limits.
    clock: SharedClock,
    /// The guardrails offered for checks; empty unless the host configures some.
    guardrails: Arc<GuardrailCatalog>,
    /// `None`: checks fail ([`GuardrailCheckError::NoChecker`]).
    guardrail_checker: Option<Arc<dyn GuardrailChecker>>,
}

/// Where the counters live and what to do when they cannot be reached.
#[derive(Clone)]
struct Limits {
    store: Arc<dyn LimitStore>,
    on_backend_error: OnBackendError,
}

impl std::fmt::Debug for ChatService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatService").finish_non_exhaustive()
    }
}

impl ChatService {
    /// A service without circuit breakers, drawing weighted picks from a per-process seed.
    pub fn new(router: Arc<dyn ModelRouter>, provider: Arc<dyn ChatProvider>) -> Self {
        Self {
            router,
            provider,
            embeddings: None,
            breakers: Arc::new(CircuitBreakers::default()),
            random: Arc::new(SplitMix64::unpredictable()),
            limits: None,
            usage_observer: None,
            clock: SharedClock::system(),
            guardrails: Arc::default(),
            guardrail_checker: None,
        }
    }

    /// Holds every caller with [`KeyLimits`] to them, counted in `store`. Share one store
    /// between every service of a process (and, for several replicas, a shared backend).
    pub fn with_limits(
        mut self,
        store: Arc<dyn LimitStore>,
        on_backend_error: OnBackendError,
    ) -> Self {
        self.limits = Some(Limits {
            store,
            on_backend_error,
        });
        self
    }

    /// Tells `observer` what every answer consumed (replacing any observer set before).
    pub fn with_usage_observer(mut self, observer: Arc<dyn UsageObserver>) -> Self {
        self.usage_observer = Some(observer);
        self
    }

    /// The clock limit windows and budget periods are read from (the system's by default).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Skips targets whose breaker is open. Share one `CircuitBreakers` between every
    /// service of a process so they all see the same failures.
    pub fn with_circuit_breakers(mut self, breakers: Arc<CircuitBreakers>) -> Self {
        self.breakers = breakers;
        self
    }

    /// Weighted picks from a fixed seed, so a test sees the same targets on every run.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.random = Arc::new(SplitMix64::seeded(seed));
        self
    }

    /// The same service (router, breakers, randomness) calling `provider`: a server with one
    /// runtime per core gives each its own upstream connections this way.
    pub fn with_provider(&self, provider: Arc<dyn ChatProvider>) -> Self {
        Self {
            provider,
            ..self.clone()
        }
    }

    /// Offers `catalog`'s guardrails for [`Self::check_guardrail`].
    pub fn with_guardrails(mut self, catalog: Arc<GuardrailCatalog>) -> Self {
        self.guardrails = catalog;
        self
    }

    /// Runs guardrail checks through `checker` (replacing any set before; a server with one
    /// runtime per core gives each its own, as with [`Self::with_provider`]).
    pub fn with_guardrail_checker(mut self, checker: Arc<dyn GuardrailChecker>) -> Self {
        self.guardrail_checker = Some(checker);
        self
    }

    /// Checks text against a configured guardrail: resolves the guardrail (by name, or a
    /// configured one by identifier and version), checks the caller's key may use it,
    /// admits the request against the key's `rpm` only (a check uses no model tokens and
    /// has no model price), then calls the checker on the guardrail's account. Nothing
    /// reaches the checker when any of that refuses.
    pub async fn check_guardrail(
        &self,
        caller: &Caller,
        request: GuardrailCheckRequest,
    ) -> Result<GuardrailCheck, ChatFailure> {
        let guardrail = Arc::clone(
            self.guardrails
                .resolve(&request.guardrail)
                .map_err(GatewayError::from)?,
        );
        if !caller.guardrails.allows(&guardrail.name) {
            return Err(GatewayError::from(GuardrailCheckError::NotAllowed {
                name: guardrail.name.clone(),
            })
            .into());
        }
        if request.content.is_empty() {
            return Err(GatewayError::from(GuardrailCheckError::EmptyContent).into());
        }
        let checker = self
            .guardrail_checker
            .as_ref()
            .ok_or(GatewayError::GuardrailCheck(GuardrailCheckError::NoChecker))?;
        let requests_only = Caller {
            limits: KeyLimits {
                rpm: caller.limits.rpm,
                ..KeyLimits::default()
            },
            ..caller.clone()
        };
        let limit_state = self.admit(&requests_only).await?;
        let outcome = checker
            .apply(
                &guardrail.account,
                &guardrail.guardrail,
                request.source,
                &request.content,
            )
            .await
            .map_err(|error| {
                ChatFailure::from(GatewayError::Provider(error)).with_limit_state(limit_state)
            })?;
        Ok(GuardrailCheck {
            guardrail,
            outcome,
            limit_state,
        })
    }

    /// Answers embedding requests through `provider` (replacing any set before), with the
    /// same routing, limits, breakers and failover as chat requests.
    pub fn with_embeddings(mut self, provider: Arc<dyn EmbeddingProvider>) -> Self {
        self.embeddings = Some(provider);
        self
    }

    pub fn models(&self) -> Vec<Arc<Route>> {
        self.router.models()
    }

    pub fn virtual_models(&self) -> Vec<Arc<VirtualModel>> {
        self.router.virtual_models()
    }

    pub fn circuit_breakers(&self) -> &CircuitBreakers {
        &self.breakers
    }

    /// Every target of the requested model, in the order to try them, each with what policy
    /// decided for it; nothing reaches a provider when one of them refuses the request, or
    /// when the request breaks a cap of [`request_limits`](crate::request_limits) (checked
    /// first, whatever door built it). The request itself is left as the client sent it.
    fn prepare(
        &self,
        caller: &Caller,
        request: &ChatRequest,
    ) -> Result<Vec<Prepared>, GatewayError> {
        crate::request_limits::check_request(request)?;
        let resolution = self.router.resolve(&request.model)?;
        resolution
            .target_order(|| self.random.next_u64())
            .map(|route| Prepared::new(caller, request, route))
            .collect()
    }

    pub async fn complete(
        &self,
        caller: &Caller,
        request: ChatRequest,
    ) -> Result<Completion, ChatFailure> {
        let targets = self.prepare(caller, &request)?;
        let limit_state = self.admit(caller).await?;
        self.complete_on(targets, caller, request, limit_state)
            .await
            .map_err(|failure| failure.with_limit_state(limit_state))
    }

    async fn complete_on(
        &self,
        targets: Vec<Prepared>,
        caller: &Caller,
        request: ChatRequest,
        limit_state: Option<LimitState>,
    ) -> Result<Completion, ChatFailure> {
        let context = (&*self.provider, &request);
        let (target, response, attempts) = self
            .first_to_answer(targets, &request.model, &context, call_complete)
            .await?;
        let cost = self
            .meter(caller, &target.route, request.service_tier)
            .settle(&response.usage, false);
        let finish_reason = response.stop_reason.finish_reason(target.style);
        Ok(Completion {
            model: request.model,
            route: target.route,
            response,
            finish_reason,
            finish_reason_style: target.style,
            attempts,
            limit_state,
            cost,
        })
    }

    /// Counts `request`'s input tokens on the target it routes to (failing over like an
    /// answer), after the same caps, routing and guardrail policy as an answer. Counting
    /// generates nothing, so it is neither admitted against nor metered to the caller's key.
    pub async fn count_tokens(
        &self,
        caller: &Caller,
        request: ChatRequest,
    ) -> Result<TokenCount, ChatFailure> {
        let targets = self.prepare(caller, &request)?;
        let context = (&*self.provider, &request);
        let (target, input_tokens, attempts) = self
            .first_to_answer(targets, &request.model, &context, call_count_tokens)
            .await?;
        Ok(TokenCount {
            route: target.route,
            input_tokens,
            attempts,
        })
    }

    /// Starts a stream. A target is kept once its first event has arrived (the event is
    /// then the stream's first item); an error before that fails over like a complete
    /// call's, and an error after it reaches the caller as a stream item.
    pub async fn stream(
        &self,
        caller: &Caller,
        request: ChatRequest,
    ) -> Result<CompletionStream, ChatFailure> {
        let targets = self.prepare(caller, &request)?;
        let limit_state = self.admit(caller).await?;
        self.stream_on(targets, caller, request, limit_state)
            .await
            .map_err(|failure| failure.with_limit_state(limit_state))
    }

    async fn stream_on(
        &self,
        targets: Vec<Prepared>,
        caller: &Caller,
        request: ChatRequest,
        limit_state: Option<LimitState>,
    ) -> Result<CompletionStream, ChatFailure> {
        let context = (&*self.provider, &request);
        let (target, events, attempts) = self
            .first_to_answer(targets, &request.model, &context, call_stream)
            .await?;
        let meter = self.meter(caller, &target.route, request.service_tier);
        Ok(CompletionStream {
            model: request.model,
            route: target.route,
            finish_reason_style: target.style,
            attempts,
            limit_state,
            service_tier: request.service_tier,
            events: Box::pin(Metered::new(events, meter)),
        })
    }

    /// The failover loop shared by complete, stream and embedding calls: tries the targets
    /// in order, skipping those whose breaker is open, until one answers; an error that does
    /// not fail over ends the request there. `call` makes one call to one target with what
    /// `context` holds (the provider and the request).
    async fn first_to_answer<P: Target, C, T>(
        &self,
        targets: Vec<P>,
        model: &str,
        context: &C,
        call: impl for<'a> Fn(&'a C, &'a P) -> ProviderCall<'a, T>,
    ) -> Result<(P, T, Vec<Attempt>), ChatFailure> {
        let mut attempts = Vec::new();
        for target in targets {
            let Some(permit) = self.breakers.admit(&target.route().public_name) else {
                attempts.push(Attempt::skipped(Arc::clone(target.route())));
                continue;
            };
            match call(context, &target).await {
                Ok(answer) => {
                    permit.succeeded();
                    return Ok((target, answer, attempts));
                }
                Err(error) => {
                    if !settle_failure(permit, &error) {
                        return Err(stop_at(Arc::clone(target.route()), error, attempts));
                    }
                    attempts.push(Attempt::failed(Arc::clone(target.route()), error));
                }
            }
        }
        Err(exhausted(model, attempts))
    }

    /// Embeds `request.inputs` with the requested embedding model (or the first of a
    /// virtual model's targets to answer), governed as a chat request is: admitted once,
    /// then its input tokens recorded against the key at the route's input price.
    pub async fn embed(
        &self,
        caller: &Caller,
        request: EmbeddingRequest,
    ) -> Result<Embedded, ChatFailure> {
        check_embedding_request(&request).map_err(GatewayError::from)?;
        let resolution = self
            .router
            .resolve(&request.model)
            .map_err(GatewayError::from)?;
        let targets = self.embedding_targets(&request.model, &resolution)?;
        let Some(provider) = self.embeddings.as_deref() else {
            return Err(GatewayError::from(ProviderError::Unavailable {
                message: "this gateway has no embedding provider".into(),
            })
            .into());
        };
        let limit_state = self.admit(caller).await?;
        let context = (provider, &request);
        let (route, response, attempts) = self
            .first_to_answer(targets, &request.model, &context, call_embed)
            .await
            .map_err(|failure| failure.with_limit_state(limit_state))?;
        let usage = Usage {
            input_tokens: response.input_tokens,
            total_tokens: response.input_tokens,
            ..Usage::default()
        };
        let cost = self.meter(caller, &route, None).settle(&usage, false);
        Ok(Embedded {
            model: request.model,
            route,
            response,
            attempts,
            limit_state,
            cost,
        })
    }

    /// The targets of an embedding request in the order to try them; every one must be an
    /// embedding model.
    fn embedding_targets(
        &self,
        model: &str,
        resolution: &Resolution,
    ) -> Result<Vec<Arc<Route>>, GatewayError> {
        resolution
            .target_order(|| self.random.next_u64())
            .map(|route| {
                check_kind(model, route, ModelKind::Embedding)?;
                Ok(Arc::clone(route))
            })
            .collect()
    }

    /// The limits to enforce on `caller`'s key, and the key; `None` when there is nothing to
    /// enforce (no store, no key, or no limits for it).
    fn enforced<'c>(&self, caller: &'c Caller) -> Option<(&Limits, &'c str)> {
        let (Some(limits), Some(key)) = (&self.limits, caller.key_name.as_deref()) else {
            return None;
        };
        (!caller.limits.is_empty()).then_some((limits, key))
    }

    /// Whether the caller's key may send this request now (counting it if so). `Ok(None)`:
    /// nothing to enforce, or the backend failed and the operator chose to serve anyway.
    async fn admit(&self, caller: &Caller) -> Result<Option<LimitState>, ChatFailure> {
        let Some((limits, key)) = self.enforced(caller) else {
            return Ok(None);
        };
        match limits
            .store
            .admit(key, &caller.limits, self.clock.now())
            .await
        {
            Ok(Admission::Admitted(state)) => Ok(Some(state)),
            Ok(Admission::Limited {
                kind,
                retry_after,
                state,
            }) => Err(ChatFailure::from(GatewayError::RateLimited {
                kind,
                retry_after,
                state,
            })
            .with_limit_state(Some(state))),
            // The store reports its own failures (log, metrics); here only the choice.
            Err(_) => match limits.on_backend_error {
                OnBackendError::Allow => Ok(None),
                OnBackendError::Deny => Err(GatewayError::LimitsUnavailable.into()),
            },
        }
    }

    /// What settles an answer of `route` to `caller`.
    fn meter(&self, caller: &Caller, route: &Arc<Route>, tier: Option<ServiceTier>) -> Meter {
        Meter {
            store: self
                .enforced(caller)
                .map(|(limits, _)| Arc::clone(&limits.store)),
            observer: self.usage_observer.clone(),
            clock: self.clock.clone(),
            key_name: caller.key_name.clone(),
            limits: caller.limits,
            route: Arc::clone(route),
            tier,
        }
    }
}

/// Everything needed to settle one answer: its cost, the record against its key, the
/// observer. Owned, because a stream settles long after the call that started it returned.
struct Meter {
    /// `None` when nothing is enforced for the caller.
    store: Option<Arc<dyn LimitStore>>,
    observer: Option<Arc<dyn UsageObserver>>,
    clock: SharedClock,
    key_name: Option<String>,
    limits: KeyLimits,
    route: Arc<Route>,
    tier: Option<ServiceTier>,
}

impl Meter {
    /// Settles an answer that consumed `usage`; returns its cost.
    fn settle(&self, usage: &Usage, estimated: bool) -> Option<Cost> {
        let cost = self.route.cost(usage, self.tier);
        if let (Some(store), Some(key)) = (&self.store, self.key_name.as_deref()) {
            let consumption = Consumption {
                tokens: usage.prompt_tokens().saturating_add(usage.output_tokens),
                cost_micros: cost.map_or(0, |cost| cost.total_micros()),
            };
            store.record(key, &self.limits, consumption, self.clock.now());
        }
        if let Some(observer) = &self.observer {
            observer.settled(&Settlement {
                key_name: self.key_name.as_deref(),
                route: &self.route,
                usage,
                cost,
                estimated,
            });
        }
        cost
    }
}

/// A started stream that settles its answer: at `Metadata` with the provider's usage, or,
/// when it errs, ends or is dropped without one, with an estimate from what it streamed.
struct Metered {
    events: ChatEventStream,
    /// `None` once settled.
    meter: Option<Meter>,
    /// Characters of text, reasoning and tool arguments passed on so far.
    streamed_chars: u64,
}

impl Metered {
    fn new(events: ChatEventStream, meter: Meter) -> Self {
        Self {
            events,
            meter: Some(meter),
            streamed_chars: 0,
        }
    }

    fn count(&mut self, text: &str) {
        self.streamed_chars = self
            .streamed_chars
            .saturating_add(text.chars().count() as u64);
    }

    fn settle_estimate(&mut self) {
        if let Some(meter) = self.meter.take() {
            let output_tokens = self.streamed_chars.div_ceil(CHARS_PER_TOKEN);
            let usage = Usage {
                output_tokens,
                total_tokens: output_tokens,
                ..Usage::default()
            };
            meter.settle(&usage, true);
        }
    }
}

impl Stream for Metered {
    type Item = Result<ChatEvent, ProviderError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let item = match this.events.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        match &item {
            Some(Ok(ChatEvent::Metadata { usage, .. })) => {
                if let Some(meter) = this.meter.take() {
                    meter.settle(usage, false);
                }
            }
            Some(Ok(ChatEvent::TextDelta(text) | ChatEvent::ReasoningDelta(text))) => {
                this.count(text);
            }
            Some(Ok(ChatEvent::ToolCallDelta { arguments, .. })) => this.count(arguments),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => this.settle_estimate(),
        }
        Poll::Ready(item)
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        self.settle_estimate();
    }
}

impl ChatFailure {
    fn with_limit_state(mut self, limit_state: Option<LimitState>) -> Self {
        self.limit_state = limit_state;
        self
    }
}

/// One call to a provider, as `first_to_answer` makes it.
type ProviderCall<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// What `first_to_answer` needs of a target: its route.
trait Target {
    fn route(&self) -> &Arc<Route>;
}

impl Target for Prepared {
    fn route(&self) -> &Arc<Route> {
        &self.route
    }
}

impl Target for Arc<Route> {
    fn route(&self) -> &Arc<Route> {
        self
    }
}

/// A chat call's context: the provider and the client's request.
type ChatContext<'p> = (&'p dyn ChatProvider, &'p ChatRequest);

fn call_complete<'a>(
    (provider, request): &'a ChatContext<'_>,
    target: &'a Prepared,
) -> ProviderCall<'a, ChatResponse> {
    provider.complete(target.provider_request(request))
}

fn call_count_tokens<'a>(
    (provider, request): &'a ChatContext<'_>,
    target: &'a Prepared,
) -> ProviderCall<'a, u64> {
    provider.count_tokens(target.provider_request(request))
}

/// A stream has started once its first event arrives: an error before that fails over.
fn call_stream<'a>(
    (provider, request): &'a ChatContext<'_>,
    target: &'a Prepared,
) -> ProviderCall<'a, ChatEventStream> {
    let request = target.provider_request(request);
    Box::pin(async move { first_event(provider.stream(request).await?).await })
}

fn call_embed<'a>(
    (provider, request): &'a (&'_ dyn EmbeddingProvider, &'_ EmbeddingRequest),
    route: &'a Arc<Route>,
) -> ProviderCall<'a, EmbeddingResponse> {
    provider.embed(route, request)
}

/// A route answers only requests of its kind; `model` is the name the client asked for.
fn check_kind(model: &str, route: &Route, requested: ModelKind) -> Result<(), GatewayError> {
    if route.kind == requested {
        return Ok(());
    }
    Err(GatewayError::WrongModelKind {
        model: model.to_owned(),
        kind: route.kind,
        requested,
    })
}

/// Tells the breaker about a failed call; true when the next target may answer instead.
fn settle_failure(permit: crate::circuit_breaker::Permit<'_>, error: &ProviderError) -> bool {
    if error.fails_over() {
        permit.failed();
        true
    } else {
        // The request's fault (or the model's), not the target's: the breaker learns nothing.
        drop(permit);
        false
    }
}

/// The request ends with `error` from `target`, which does not fail over.
fn stop_at(target: Arc<Route>, error: ProviderError, mut attempts: Vec<Attempt>) -> ChatFailure {
    attempts.push(Attempt::failed(target, error.clone()));
    ChatFailure {
        error: error.into(),
        attempts,
        limit_state: None,
    }
}

/// Every target failed or was skipped: the last failure, or, when none was even tried,
/// that the model is unavailable for now.
fn exhausted(model: &str, attempts: Vec<Attempt>) -> ChatFailure {
    let last_error = attempts
        .iter()
        .rev()
        .find_map(|attempt| match &attempt.outcome {
            AttemptOutcome::Failed(error) => Some(error.clone()),
            AttemptOutcome::Skipped => None,
        });
    let error = last_error.unwrap_or_else(|| ProviderError::Unavailable {
        message: format!(
            "`{model}` is temporarily unavailable: after repeated failures the gateway skips \
             every target it routes to until a cooldown has passed"
        ),
    });
    ChatFailure {
        error: error.into(),
        attempts,
        limit_state: None,
    }
}

impl Attempt {
    fn skipped(target: Arc<Route>) -> Self {
        Self {
            target,
            outcome: AttemptOutcome::Skipped,
        }
    }

    fn failed(target: Arc<Route>, error: ProviderError) -> Self {
        Self {
            target,
            outcome: AttemptOutcome::Failed(error),
        }
    }
}

/// Waits for the stream's first item: an error there is the target's failure, anything else
/// is handed on in front of the rest.
async fn first_event(mut events: ChatEventStream) -> Result<ChatEventStream, ProviderError> {
    match poll_fn(|cx| events.as_mut().poll_next(cx)).await {
        Some(Err(error)) => Err(error),
        Some(Ok(first)) => Ok(Box::pin(Peeked {
            first: Some(first),
            rest: Some(events),
        })),
        None => Ok(Box::pin(Peeked {
            first: None,
            rest: None,
        })),
    }
}

/// A stream whose first event was already taken from `rest`.
struct Peeked {
    first: Option<ChatEvent>,
    /// `None` once the stream has ended.
    rest: Option<ChatEventStream>,
}

impl Stream for Peeked {
    type Item = Result<ChatEvent, ProviderError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        match this.rest.as_mut() {
            Some(rest) => rest.as_mut().poll_next(cx),
            None => Poll::Ready(None),
        }
    }
}

/// What the service decided for one target before calling it.
struct Prepared {
    route: Arc<Route>,
    /// The effective guardrail after policy.
    guardrail: Option<GuardrailConfig>,
    style: FinishReasonStyle,
}

impl Prepared {
    /// The route's policy applied to the request, exactly as for a direct request to it.
    fn new(
        caller: &Caller,
        request: &ChatRequest,
        route: &Arc<Route>,
    ) -> Result<Self, GatewayError> {
        check_kind(&request.model, route, ModelKind::Chat)?;
        let drop_unsupported = caller
            .drop_unsupported_params
            .unwrap_or(route.drop_unsupported_params);
        if let (Some(param), false) = (request.unsupported_parameters.first(), drop_unsupported) {
            return Err(GatewayError::UnsupportedParameter {
                param: param.clone(),
            });
        }
        let guardrail =
            effective_guardrail(&route.guardrail, request.requested_guardrail.as_ref())?;
        let style = caller
            .finish_reason_style
            .unwrap_or(route.finish_reason_style);
        Ok(Self {
            route: Arc::clone(route),
            guardrail,
            style,
        })
    }

    fn provider_request<'a>(&'a self, chat: &'a ChatRequest) -> ProviderRequest<'a> {
        ProviderRequest::new(&self.route, chat, self.guardrail.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatResponse, Usage};
    use crate::error::ProviderError;
    use crate::finish_reason::StopReason;
    use crate::guardrail::{
        ConfiguredGuardrail, GuardrailConfig, GuardrailMode, GuardrailPolicy, GuardrailPolicyError,
        GuardrailTrace, StreamProcessingMode,
    };
    use crate::ports::{MockChatProvider, MockModelRouter};
    use crate::router::{Resolution, RouteError};

    fn route(policy: GuardrailPolicy) -> Arc<Route> {
        Arc::new(Route {
            public_name: "acct/model".into(),
            account: "acct".into(),
            model_id: "anthropic.claude-3-sonnet-20240229-v1:0".into(),
            region: "us-east-1".into(),
            guardrail: policy,
            finish_reason_style: FinishReasonStyle::Bedrock,
            family: None,
            drop_unsupported_params: false,
            price: None,
            kind: ModelKind::Chat,
        })
    }

    fn response(stop_reason: StopReason) -> ChatResponse {
        ChatResponse {
            usage: Usage::default(),
            ..ChatResponse::text("hello", stop_reason)
        }
    }

    fn request() -> ChatRequest {
        ChatRequest {
            model: "acct/model".into(),
            ..ChatRequest::default()
        }
    }

    fn guardrail(id: &str) -> GuardrailConfig {
        GuardrailConfig {
            identifier: id.into(),
            version: "1".into(),
            trace: None,
            stream_processing_mode: None,
        }
    }

    fn service(router: MockModelRouter, provider: MockChatProvider) -> ChatService {
        ChatService::new(Arc::new(router), Arc::new(provider))
    }

    #[tokio::test]
    async fn unknown_model_never_reaches_the_provider() {
        let mut router = MockModelRouter::new();
        router
            .expect_resolve()
            .returning(|name| Err(RouteError::UnknownModel(name.into())));
        let mut provider = MockChatProvider::new();
        provider.expect_complete().never();
        let err = service(router, provider)
            .complete(&Caller::default(), request())
            .await
            .unwrap_err();
        assert_eq!(
            err.error,
            GatewayError::Route(RouteError::UnknownModel("acct/model".into()))
        );
    }

    #[tokio::test]
    async fn counting_tokens_routes_like_an_answer() {
        let mut router = MockModelRouter::new();
        router
            .expect_resolve()
            .returning(|_| Ok(Resolution::Model(route(GuardrailPolicy::open()))));
        let mut provider = MockChatProvider::new();
        provider
            .expect_count_tokens()
            .times(1)
            .returning(|call| Ok(call.route.model_id.len() as u64));
        let count = service(router, provider)
            .count_tokens(&Caller::default(), request())
            .await
            .unwrap();
        assert_eq!(
            count.input_tokens,
            "anthropic.claude-3-sonnet-20240229-v1:0".len() as u64
        );
        assert_eq!(count.route.public_name, "acct/model");

        let mut router = MockModelRouter::new();
        router
            .expect_resolve()
            .returning(|name| Err(RouteError::UnknownModel(name.into())));
        let mut provider = MockChatProvider::new();
        provider.expect_count_tokens().never();
        let err = service(router, provider)
            .count_tokens(&Caller::default(), request())
            .await
            .unwrap_err();
        assert!(matches!(err.error, GatewayError::Route(_)), "{err:?}");
    }

    #[tokio::test]
    async fn enforced_guardrail_is_what_the_provider_receives() {
        let mut router = MockModelRouter::new();
        router.expect_resolve().returning(|_| {
            Ok(Resolution::Model(route(GuardrailPolicy {
                configured: Some(ConfiguredGuardrail {
                    guardrail: guardrail("enforced"),
                    mode: GuardrailMode::Enforced,
                }),
                allow_client_guardrails: true,
            })))
        });
        let mut provider = MockChatProvider::new();
        provider
            .expect_complete()
            .withf(|request| request.guardrail == Some(&guardrail("enforced")))
            .times(1)
            .returning(|_| Ok(response(StopReason::GuardrailIntervened)));
        let completion = service(router, provider)
            .complete(&Caller::default(), request())
            .await
            .unwrap();
        assert_eq!(completion.finish_reason, FinishReason::GuardrailIntervened);
    }

    #[tokio::test]
    async fn the_provider_gets_the_effective_guardrail_beside_the_untouched_client_request() {
        // The client names the enforced guardrail but asks for a full trace and async
        // streaming; configuration pins the trace off. Policy merges the two, so what the
        // provider must apply differs from what the client sent.
        let enforced = GuardrailConfig {
            trace: Some(GuardrailTrace::Disabled),
            ..guardrail("enforced")
        };
        let requested = GuardrailConfig {
            trace: Some(GuardrailTrace::EnabledFull),
            stream_processing_mode: Some(StreamProcessingMode::Async),
            ..guardrail("enforced")
        };
        let effective = GuardrailConfig {
            trace: Some(GuardrailTrace::Disabled),
            stream_processing_mode: Some(StreamProcessingMode::Async),
            ..guardrail("enforced")
        };
        let mut router = MockModelRouter::new();
        router.expect_resolve().returning(move |_| {
            Ok(Resolution::Model(route(GuardrailPolicy {
                configured: Some(ConfiguredGuardrail {
                    guardrail: enforced.clone(),
                    mode: GuardrailMode::Enforced,
                }),
                allow_client_guardrails: true,
            })))
        });
        let sent = ChatRequest {
            requested_guardrail: Some(requested),
            stream: true,
            ..request()
        };
        let expected_chat = sent.clone();
        let mut provider = MockChatProvider::new();
        provider
            .expect_stream()
            .withf(move |call| *call.chat == expected_chat && call.guardrail == Some(&effective))
            .times(1)
            .returning(|_| Ok(Box::pin(futures_util::stream::empty())));
        service(router, provider)
            .stream(&Caller::default(), sent)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_conflicting_client_guardrail_is_rejected_before_the_provider() {
        let mut router = MockModelRouter::new();
        router.expect_resolve().returning(|_| {
            Ok(Resolution::Model(route(GuardrailPolicy {
                configured: Some(ConfiguredGuardrail {
                    guardrail: guardrail("enforced"),
                    mode: GuardrailMode::Enforced,
                }),
                allow_client_guardrails: true,
            })))
        });
        let mut provider = MockChatProvider::new();
        provider.expect_complete().never();
        provider.expect_stream().never();
        let service = service(router, provider);
        let mut req = request();
        req.requested_guardrail = Some(guardrail("client"));
        let err = service.stream(&Caller::default(), req).await.err().unwrap();
        assert!(matches!(
            err.error,
            GatewayError::Guardrail(GuardrailPolicyError::Enforced { .. })
        ));
    }

    #[tokio::test]
    async fn the_keys_finish_reason_style_overrides_the_accounts() {
        let mut router = MockModelRouter::new();
        router
            .expect_resolve()
            .returning(|_| Ok(Resolution::Model(route(GuardrailPolicy::open()))));
        let mut provider = MockChatProvider::new();
        provider
            .expect_complete()
            .returning(|_| Ok(response(StopReason::GuardrailIntervened)));
        let caller = Caller {
            key_name: Some("strict-team".into()),
            finish_reason_style: Some(FinishReasonStyle::Strict),
            ..Caller::default()
        };
        let completion = service(router, provider)
            .complete(&caller, request())
            .await
            .unwrap();
        assert_eq!(completion.finish_reason, FinishReason::ContentFilter);
        assert_eq!(
            completion.response.stop_reason,
            StopReason::GuardrailIntervened
        );
    }

    #[tokio::test]
    async fn provider_errors_pass_through_unchanged() {
        let mut router = MockModelRouter::new();
        router
            .expect_resolve()
            .returning(|_| Ok(Resolution::Model(route(GuardrailPolicy::open()))));
        let mut provider = MockChatProvider::new();
        provider.expect_complete().returning(|_| {
            Err(ProviderError::Throttled {
                message: "Too many requests".into(),
            })
        });
        let err = service(router, provider)
            .complete(&Caller::default(), request())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "Too many requests");
    }

    fn with_seed() -> ChatRequest {
        ChatRequest {
            unsupported_parameters: vec!["seed".into(), "logprobs".into()],
            ..request()
        }
    }

    fn router_with(drop_unsupported_params: bool) -> MockModelRouter {
        let mut router = MockModelRouter::new();
        router.expect_resolve().returning(move |_| {
            let mut route = (*route(GuardrailPolicy::open())).clone();
            route.drop_unsupported_params = drop_unsupported_params;
            Ok(Resolution::Model(Arc::new(route)))
        });
        router
    }

    #[tokio::test]
    async fn an_unsupported_parameter_is_refused_naming_the_first_one() {
        let mut provider = MockChatProvider::new();
        provider.expect_complete().never();
        let err = service(router_with(false), provider)
            .complete(&Caller::default(), with_seed())
            .await
            .unwrap_err();
        assert_eq!(
            err.error,
            GatewayError::UnsupportedParameter {
                param: "seed".into()
            }
        );
    }

    #[tokio::test]
    async fn the_account_or_the_key_may_drop_unsupported_parameters() {
        for (account, key, dropped) in [
            (true, None, true),
            (false, Some(true), true),
            (true, Some(false), false),
        ] {
            let mut provider = MockChatProvider::new();
            provider
                .expect_complete()
                .times(usize::from(dropped))
                .returning(|_| Ok(response(StopReason::EndTurn)));
            let caller = Caller {
                drop_unsupported_params: key,
                ..Caller::default()
            };
            let result = service(router_with(account), provider)
                .complete(&caller, with_seed())
                .await;
            assert_eq!(result.is_ok(), dropped, "account {account}, key {key:?}");
        }
    }

    // Virtual models, failover and circuit breaking. The router is the real catalog; the
    // provider is a mock whose answer depends on the target it is called for.

    use std::num::NonZeroU32;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use futures_util::StreamExt;

    use crate::chat::ChatEvent;
    use crate::circuit_breaker::{CircuitBreakerSettings, CircuitState};
    use crate::clock::{ManualClock, SharedClock};
    use crate::router::{ModelCatalog, ModelEntry, Strategy, VirtualModelEntry};

    fn entry(name: &str, policy: GuardrailPolicy, drop_unsupported_params: bool) -> ModelEntry {
        let (account, model) = name.split_once('/').unwrap();
        ModelEntry {
            account: account.into(),
            model: model.into(),
            model_id: format!("{model}-id"),
            region: "us-east-1".into(),
            guardrail: policy,
            finish_reason_style: FinishReasonStyle::Bedrock,
            family: None,
            drop_unsupported_params,
            price: None,
            kind: ModelKind::Chat,
        }
    }

    fn open(name: &str) -> ModelEntry {
        entry(name, GuardrailPolicy::open(), false)
    }

    fn enforced(name: &str, id: &str) -> ModelEntry {
        entry(
            name,
            GuardrailPolicy {
                configured: Some(ConfiguredGuardrail {
                    guardrail: guardrail(id),
                    mode: GuardrailMode::Enforced,
                }),
                allow_client_guardrails: true,
            },
            false,
        )
    }

    /// A catalog of `models` with one virtual model `ha` over `targets`.
    fn catalog(
        models: Vec<ModelEntry>,
        strategy: Strategy,
        targets: &[&str],
        weights: Option<Vec<u32>>,
    ) -> Arc<ModelCatalog> {
        let catalog = ModelCatalog::new(models)
            .unwrap()
            .with_virtual_models([VirtualModelEntry {
                name: "ha".into(),
                strategy,
                targets: targets.iter().map(|&t| t.into()).collect(),
                weights,
            }])
            .unwrap();
        Arc::new(catalog)
    }

    fn failover(targets: &[&str]) -> Arc<ModelCatalog> {
        catalog(
            targets.iter().map(|&t| open(t)).collect(),
            Strategy::Failover,
            targets,
            None,
        )
    }

    fn ask(model: &str) -> ChatRequest {
        ChatRequest {
            model: model.into(),
            ..ChatRequest::default()
        }
    }

    fn to(target: &'static str) -> impl Fn(&ProviderRequest<'_>) -> bool {
        move |call| call.route.public_name == target
    }

    fn throttled() -> ProviderError {
        ProviderError::Throttled {
            message: "Too many tokens, please wait before trying again.".into(),
        }
    }

    /// `(target, "skipped" | error kind)` per attempt.
    fn outcomes(attempts: &[Attempt]) -> Vec<(String, &'static str)> {
        attempts
            .iter()
            .map(|attempt| {
                let outcome = match &attempt.outcome {
                    AttemptOutcome::Skipped => "skipped",
                    AttemptOutcome::Failed(error) => error.kind(),
                };
                (attempt.target.public_name.clone(), outcome)
            })
            .collect()
    }

    fn on(router: Arc<ModelCatalog>, provider: MockChatProvider) -> ChatService {
        ChatService::new(router, Arc::new(provider))
    }

    #[tokio::test]
    async fn a_failover_model_tries_its_targets_in_order_until_one_answers() {
        let mut provider = MockChatProvider::new();
        let mut order = mockall::Sequence::new();
        provider
            .expect_complete()
            .withf(to("a/m"))
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Err(throttled()));
        provider
            .expect_complete()
            .withf(to("b/m"))
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| {
                Err(ProviderError::Unavailable {
                    message: "ServiceUnavailable".into(),
                })
            });
        provider
            .expect_complete()
            .withf(to("c/m"))
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(response(StopReason::EndTurn)));
        let completion = on(failover(&["a/m", "b/m", "c/m"]), provider)
            .complete(&Caller::default(), ask("ha"))
            .await
            .unwrap();
        assert_eq!(completion.model, "ha", "the name the client asked for");
        assert_eq!(completion.route.public_name, "c/m");
        assert_eq!(
            outcomes(&completion.attempts),
            [
                ("a/m".into(), "throttled"),
                ("b/m".into(), "upstream_unavailable")
            ]
        );
    }

    /// Every kind of provider error, and whether it passes the request to the next target.
    fn every_provider_error() -> Vec<ProviderError> {
        let message = || "m".to_owned();
        vec![
            ProviderError::InvalidRequest { message: message() },
            ProviderError::Unsupported {
                feature: crate::error::RequestFeature::Reasoning,
                message: message(),
            },
            ProviderError::TurnOrder {
                message_index: 0,
                message: message(),
            },
            ProviderError::Unauthorized {
                account: "a".into(),
                message: message(),
            },
            ProviderError::Credentials {
                account: "a".into(),
                message: message(),
            },
            ProviderError::NotFound { message: message() },
            ProviderError::Throttled { message: message() },
            ProviderError::Timeout { message: message() },
            ProviderError::ModelError { message: message() },
            ProviderError::Unavailable { message: message() },
            ProviderError::Upstream { message: message() },
            ProviderError::Protocol { message: message() },
        ]
    }

    #[test]
    fn which_errors_fail_over() {
        let table: Vec<String> = every_provider_error()
            .iter()
            .map(|error| format!("{:<26} {}", error.kind(), error.fails_over()))
            .collect();
        insta::assert_snapshot!(table.join("\n"), @r"
        invalid_request            false
        unsupported_feature        false
        invalid_turn_order         false
        upstream_unauthorized      false
        credentials_unavailable    true
        upstream_not_found         false
        throttled                  true
        timeout                    true
        model_error                false
        upstream_unavailable       true
        upstream_error             true
        upstream_protocol_error    true
        ");
    }

    #[tokio::test]
    async fn only_errors_that_fail_over_reach_the_next_target() {
        for error in every_provider_error() {
            let mut provider = MockChatProvider::new();
            let returned = error.clone();
            provider
                .expect_complete()
                .withf(to("a/m"))
                .times(1)
                .returning(move |_| Err(returned.clone()));
            provider
                .expect_complete()
                .withf(to("b/m"))
                .times(usize::from(error.fails_over()))
                .returning(|_| Ok(response(StopReason::EndTurn)));
            let result = on(failover(&["a/m", "b/m"]), provider)
                .complete(&Caller::default(), ask("ha"))
                .await;
            match result {
                Ok(completion) => {
                    assert!(error.fails_over(), "{error:?}");
                    assert_eq!(completion.route.public_name, "b/m");
                }
                Err(failure) => {
                    assert!(!error.fails_over(), "{error:?}");
                    assert_eq!(failure.error, GatewayError::Provider(error.clone()));
                    assert_eq!(
                        failure.last_tried().map(|r| r.public_name.as_str()),
                        Some("a/m")
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn a_validation_error_is_the_answer_and_never_tried_elsewhere() {
        let mut provider = MockChatProvider::new();
        provider
            .expect_complete()
            .withf(to("a/m"))
            .times(1)
            .returning(|_| {
                Err(ProviderError::InvalidRequest {
                    message: "messages: too long".into(),
                })
            });
        provider.expect_complete().withf(to("b/m")).never();
        let failure = on(failover(&["a/m", "b/m"]), provider)
            .complete(&Caller::default(), ask("ha"))
            .await
            .unwrap_err();
        assert_eq!(failure.error.to_string(), "messages: too long");
        assert_eq!(
            outcomes(&failure.attempts),
            [("a/m".into(), "invalid_request")]
        );
    }

    #[tokio::test]
    async fn when_every_target_fails_the_last_error_is_the_answer() {
        let mut provider = MockChatProvider::new();
        provider
            .expect_complete()
            .withf(to("a/m"))
            .returning(|_| Err(throttled()));
        provider.expect_complete().withf(to("b/m")).returning(|_| {
            Err(ProviderError::Timeout {
                message: "no first byte".into(),
            })
        });
        let failure = on(failover(&["a/m", "b/m"]), provider)
            .complete(&Caller::default(), ask("ha"))
            .await
            .unwrap_err();
        assert_eq!(failure.error.to_string(), "no first byte");
        assert_eq!(
            failure.last_tried().map(|r| r.public_name.as_str()),
            Some("b/m")
        );
        assert_eq!(failure.attempts.len(), 2);
    }

    /// Which target answers each of `requests` requests to a weighted `ha` over a/m (3) and
    /// b/m (1), with `seed`; the first call to `failing` (if any) is throttled.
    async fn weighted_answers(
        seed: u64,
        requests: usize,
        failing: Option<&'static str>,
    ) -> Vec<(String, usize)> {
        let mut provider = MockChatProvider::new();
        provider.expect_complete().returning(move |call| {
            if Some(call.route.public_name.as_str()) == failing {
                Err(throttled())
            } else {
                Ok(response(StopReason::EndTurn))
            }
        });
        let router = catalog(
            vec![open("a/m"), open("b/m")],
            Strategy::Weighted,
            &["a/m", "b/m"],
            Some(vec![3, 1]),
        );
        let service = on(router, provider).with_seed(seed);
        let mut answers = Vec::with_capacity(requests);
        for _ in 0..requests {
            let completion = service
                .complete(&Caller::default(), ask("ha"))
                .await
                .unwrap();
            answers.push((
                completion.route.public_name.clone(),
                completion.attempts.len(),
            ));
        }
        answers
    }

    #[tokio::test]
    async fn weighted_picks_follow_the_weights_over_a_fixed_seed() {
        const REQUESTS: usize = 4000;
        let answers = weighted_answers(42, REQUESTS, None).await;
        let to_a = answers.iter().filter(|(target, _)| target == "a/m").count();
        let share = to_a as f64 / REQUESTS as f64;
        assert!((share - 0.75).abs() < 0.02, "a/m answered {share}");
        assert!(answers.iter().all(|(_, attempts)| *attempts == 0));
        assert_eq!(
            answers,
            weighted_answers(42, REQUESTS, None).await,
            "a seed repeats its picks"
        );
        assert_ne!(answers, weighted_answers(43, REQUESTS, None).await);
    }

    #[tokio::test]
    async fn the_targets_not_picked_are_the_fallbacks() {
        const REQUESTS: usize = 4000;
        let answers = weighted_answers(42, REQUESTS, Some("b/m")).await;
        assert!(answers.iter().all(|(target, _)| target == "a/m"));
        let failed_over = answers
            .iter()
            .filter(|(_, attempts)| *attempts == 1)
            .count();
        let share = failed_over as f64 / REQUESTS as f64;
        assert!((share - 0.25).abs() < 0.02, "b/m was picked for {share}");
    }

    #[tokio::test]
    async fn each_target_gets_its_own_guardrail_failing_over_to_or_away_from_an_enforced_one() {
        for (first, second) in [("open/m", "guarded/m"), ("guarded/m", "open/m")] {
            let router = catalog(
                vec![open("open/m"), enforced("guarded/m", "pii")],
                Strategy::Failover,
                &[first, second],
                None,
            );
            let expected = |target: &str| (target == "guarded/m").then(|| guardrail("pii"));
            let mut provider = MockChatProvider::new();
            let (first_guardrail, second_guardrail) = (expected(first), expected(second));
            provider
                .expect_complete()
                .withf(move |call| {
                    call.route.public_name == first && call.guardrail == first_guardrail.as_ref()
                })
                .times(1)
                .returning(|_| Err(throttled()));
            provider
                .expect_complete()
                .withf(move |call| {
                    call.route.public_name == second && call.guardrail == second_guardrail.as_ref()
                })
                .times(1)
                .returning(|_| Ok(response(StopReason::EndTurn)));
            let completion = on(router, provider)
                .complete(&Caller::default(), ask("ha"))
                .await
                .unwrap();
            assert_eq!(completion.route.public_name, second);
        }
    }

    #[tokio::test]
    async fn a_request_one_target_refuses_by_policy_is_refused_before_any_call() {
        // The client's own guardrail conflicts with the fallback's enforced one: refused
        // even though the first target would take it, so the answer never depends on
        // which target happens to be throttled.
        let router = catalog(
            vec![open("open/m"), enforced("guarded/m", "pii")],
            Strategy::Failover,
            &["open/m", "guarded/m"],
            None,
        );
        let mut provider = MockChatProvider::new();
        provider.expect_complete().never();
        provider.expect_stream().never();
        let service = on(router, provider);
        let request = ChatRequest {
            requested_guardrail: Some(guardrail("client")),
            ..ask("ha")
        };
        let failure = service
            .complete(&Caller::default(), request.clone())
            .await
            .unwrap_err();
        assert!(matches!(
            failure.error,
            GatewayError::Guardrail(GuardrailPolicyError::Enforced { .. })
        ));
        assert!(failure.attempts.is_empty());
        let failure = service
            .stream(&Caller::default(), request)
            .await
            .unwrap_err();
        assert!(matches!(failure.error, GatewayError::Guardrail(_)));

        // Likewise an unsupported parameter one target's account would drop but the
        // other's refuses.
        let router = catalog(
            vec![
                entry("lenient/m", GuardrailPolicy::open(), true),
                open("strict/m"),
            ],
            Strategy::Failover,
            &["lenient/m", "strict/m"],
            None,
        );
        let mut provider = MockChatProvider::new();
        provider.expect_complete().never();
        let request = ChatRequest {
            unsupported_parameters: vec!["seed".into()],
            ..ask("ha")
        };
        let failure = on(router, provider)
            .complete(&Caller::default(), request)
            .await
            .unwrap_err();
        assert_eq!(
            failure.error,
            GatewayError::UnsupportedParameter {
                param: "seed".into()
            }
        );
    }

    const COOLDOWN: Duration = Duration::from_secs(30);

    /// `ha` over a/m (with a breaker opening after two failures) and b/m, on a clock that
    /// moves when the test says. a/m fails while `a_down` is set; the counter counts its calls.
    fn with_breaker(
        router: Arc<ModelCatalog>,
        a_down: Arc<AtomicBool>,
        a_calls: Arc<AtomicUsize>,
    ) -> (ChatService, ManualClock) {
        let clock = ManualClock::at_unix(1_700_000_000);
        let settings = CircuitBreakerSettings {
            failures: NonZeroU32::new(2).unwrap(),
            cooldown: COOLDOWN,
        };
        let breakers =
            CircuitBreakers::new(SharedClock::new(clock.clone()), [("a/m".into(), settings)]);
        let mut provider = MockChatProvider::new();
        provider.expect_complete().returning(move |call| {
            if call.route.public_name == "a/m" {
                a_calls.fetch_add(1, Ordering::SeqCst);
                if a_down.load(Ordering::SeqCst) {
                    return Err(throttled());
                }
            }
            Ok(response(StopReason::EndTurn))
        });
        let service = on(router, provider).with_circuit_breakers(Arc::new(breakers));
        (service, clock)
    }

    #[tokio::test]
    async fn an_open_breaker_skips_its_target_until_a_probe_after_the_cooldown_succeeds() {
        let a_down = Arc::new(AtomicBool::new(true));
        let a_calls = Arc::new(AtomicUsize::new(0));
        let (service, clock) =
            with_breaker(failover(&["a/m", "b/m"]), a_down.clone(), a_calls.clone());
        let answer = || async {
            let completion = service
                .complete(&Caller::default(), ask("ha"))
                .await
                .unwrap();
            (
                completion.route.public_name.clone(),
                outcomes(&completion.attempts),
            )
        };
        let breaker = || service.circuit_breakers().state("a/m");
        let failed = vec![("a/m".to_owned(), "throttled")];
        let skipped = vec![("a/m".to_owned(), "skipped")];

        assert_eq!(answer().await, ("b/m".into(), failed.clone()));
        assert_eq!(breaker(), Some(CircuitState::Closed));
        assert_eq!(answer().await, ("b/m".into(), failed.clone()));
        assert_eq!(breaker(), Some(CircuitState::Open));
        assert_eq!(a_calls.load(Ordering::SeqCst), 2);

        assert_eq!(answer().await, ("b/m".into(), skipped.clone()));
        clock.advance(COOLDOWN - Duration::from_millis(1));
        assert_eq!(answer().await, ("b/m".into(), skipped));
        assert_eq!(a_calls.load(Ordering::SeqCst), 2, "skipped while open");

        // The probe fails: open for another cooldown.
        clock.advance(Duration::from_millis(1));
        assert_eq!(breaker(), Some(CircuitState::HalfOpen));
        assert_eq!(answer().await, ("b/m".into(), failed));
        assert_eq!(breaker(), Some(CircuitState::Open));
        assert_eq!(a_calls.load(Ordering::SeqCst), 3);

        // The next probe succeeds: closed, and a/m answers again.
        a_down.store(false, Ordering::SeqCst);
        clock.advance(COOLDOWN);
        assert_eq!(answer().await, ("a/m".into(), vec![]));
        assert_eq!(breaker(), Some(CircuitState::Closed));
        assert_eq!(answer().await, ("a/m".into(), vec![]));
    }

    #[tokio::test]
    async fn a_model_whose_every_target_is_skipped_is_unavailable_without_a_call() {
        let router = Arc::new(ModelCatalog::new([open("a/m")]).unwrap());
        let a_calls = Arc::new(AtomicUsize::new(0));
        let (service, _) = with_breaker(router, Arc::new(AtomicBool::new(true)), a_calls.clone());
        for _ in 0..2 {
            let failure = service
                .complete(&Caller::default(), ask("a/m"))
                .await
                .unwrap_err();
            assert_eq!(failure.error, GatewayError::Provider(throttled()));
        }
        let failure = service
            .complete(&Caller::default(), ask("a/m"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                failure.error,
                GatewayError::Provider(ProviderError::Unavailable { .. })
            ),
            "{failure:?}"
        );
        assert_eq!(failure.last_tried(), None);
        assert_eq!(outcomes(&failure.attempts), [("a/m".into(), "skipped")]);
        assert_eq!(a_calls.load(Ordering::SeqCst), 2);
    }

    fn answer_events() -> Vec<Result<ChatEvent, ProviderError>> {
        vec![
            Ok(ChatEvent::MessageStart),
            Ok(ChatEvent::TextDelta("hello".into())),
            Ok(ChatEvent::Stop(StopReason::EndTurn)),
        ]
    }

    fn events(items: Vec<Result<ChatEvent, ProviderError>>) -> ChatEventStream {
        Box::pin(futures_util::stream::iter(items))
    }

    #[tokio::test]
    async fn a_stream_fails_over_until_its_first_event_arrives() {
        let mut provider = MockChatProvider::new();
        let mut order = mockall::Sequence::new();
        // Refused before any event...
        provider
            .expect_stream()
            .withf(to("a/m"))
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Err(throttled()));
        // ...or with an error as the first event (an exception frame).
        provider
            .expect_stream()
            .withf(to("b/m"))
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(events(vec![Err(throttled()), Ok(ChatEvent::MessageStart)])));
        provider
            .expect_stream()
            .withf(to("c/m"))
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(events(answer_events())));
        let stream = on(failover(&["a/m", "b/m", "c/m"]), provider)
            .stream(&Caller::default(), ask("ha"))
            .await
            .unwrap();
        assert_eq!(stream.model, "ha");
        assert_eq!(stream.route.public_name, "c/m");
        assert_eq!(
            outcomes(&stream.attempts),
            [("a/m".into(), "throttled"), ("b/m".into(), "throttled")]
        );
        let received: Vec<_> = stream.events.collect().await;
        assert_eq!(received, answer_events(), "the first event is handed on");
    }

    #[tokio::test]
    async fn a_stream_never_fails_over_once_an_event_reached_the_caller() {
        let mut provider = MockChatProvider::new();
        provider
            .expect_stream()
            .withf(to("a/m"))
            .times(1)
            .returning(|_| Ok(events(vec![Ok(ChatEvent::MessageStart), Err(throttled())])));
        provider.expect_stream().withf(to("b/m")).never();
        let stream = on(failover(&["a/m", "b/m"]), provider)
            .stream(&Caller::default(), ask("ha"))
            .await
            .unwrap();
        assert_eq!(stream.route.public_name, "a/m");
        let received: Vec<_> = stream.events.collect().await;
        assert_eq!(
            received,
            [Ok(ChatEvent::MessageStart), Err(throttled())],
            "the error ends the stream; no second answer is spliced in"
        );
    }

    #[tokio::test]
    async fn a_first_event_error_that_does_not_fail_over_is_a_plain_error() {
        let mut provider = MockChatProvider::new();
        provider
            .expect_stream()
            .withf(to("a/m"))
            .times(1)
            .returning(|_| {
                Ok(events(vec![Err(ProviderError::ModelError {
                    message: "model broke".into(),
                })]))
            });
        provider.expect_stream().withf(to("b/m")).never();
        let failure = on(failover(&["a/m", "b/m"]), provider)
            .stream(&Caller::default(), ask("ha"))
            .await
            .unwrap_err();
        assert_eq!(failure.error.to_string(), "model broke");
        assert_eq!(
            failure.last_tried().map(|r| r.public_name.as_str()),
            Some("a/m")
        );
    }

    // Governance: limits admitted once per request on a clock the test moves, usage
    // settled after answers and streams.

    use crate::clock::Clock;
    use crate::governance::{
        Cost, InMemoryLimits, LimitBackendError, LimitKind, MockLimitStore, Price, Remaining,
    };
    use std::sync::Mutex;

    const KEY: &str = "team-a";

    fn limited(limits: KeyLimits) -> Caller {
        Caller {
            key_name: Some(KEY.into()),
            limits,
            ..Caller::default()
        }
    }

    /// Input 1 USD, output 2 USD per million tokens.
    fn priced(name: &str) -> ModelEntry {
        ModelEntry {
            price: Some(Price {
                input: 1.0,
                output: 2.0,
                ..Price::default()
            }),
            ..open(name)
        }
    }

    /// 200 input and 300 output tokens: 800 micro-USD at `priced`'s price.
    fn used() -> Usage {
        Usage {
            input_tokens: 200,
            output_tokens: 300,
            total_tokens: 500,
            ..Usage::default()
        }
    }

    fn answer_using_tokens() -> ChatResponse {
        ChatResponse {
            usage: used(),
            ..response(StopReason::EndTurn)
        }
    }

    /// One settlement as the observer was told it: key, route, usage, cost, estimated.
    type Told = (Option<String>, String, Usage, Option<Cost>, bool);

    #[derive(Default)]
    struct Observed(Mutex<Vec<Told>>);

    impl UsageObserver for Observed {
        fn settled(&self, settlement: &Settlement<'_>) {
            self.0.lock().unwrap().push((
                settlement.key_name.map(str::to_owned),
                settlement.route.public_name.clone(),
                *settlement.usage,
                settlement.cost,
                settlement.estimated,
            ));
        }
    }

    impl Observed {
        fn taken(&self) -> Vec<Told> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    /// A service over `router` whose limits live in memory, on a clock at the start of a
    /// minute (and a day); the provider answers with `used()` tokens and counts its calls.
    fn governed(
        router: Arc<ModelCatalog>,
        calls: Arc<AtomicUsize>,
    ) -> (ChatService, ManualClock, Arc<Observed>) {
        let mut provider = MockChatProvider::new();
        let stream_calls = calls.clone();
        provider.expect_complete().returning(move |call| {
            calls.fetch_add(1, Ordering::SeqCst);
            if call.route.public_name == "a/m" {
                Err(throttled())
            } else {
                Ok(answer_using_tokens())
            }
        });
        provider.expect_stream().returning(move |_| {
            stream_calls.fetch_add(1, Ordering::SeqCst);
            Ok(events(vec![
                Ok(ChatEvent::MessageStart),
                Ok(ChatEvent::TextDelta("hello".into())),
                Ok(ChatEvent::Stop(StopReason::EndTurn)),
                Ok(ChatEvent::Metadata {
                    usage: used(),
                    guardrail_trace: None,
                }),
            ]))
        });
        let clock = ManualClock::at_unix(1_699_920_000);
        let observed = Arc::new(Observed::default());
        let service = on(router, provider)
            .with_limits(Arc::new(InMemoryLimits::new()), OnBackendError::Allow)
            .with_clock(SharedClock::new(clock.clone()))
            .with_usage_observer(observed.clone());
        (service, clock, observed)
    }

    fn refused_by(result: Result<Completion, ChatFailure>) -> Option<LimitKind> {
        match result {
            Ok(_) => None,
            Err(ChatFailure {
                error: GatewayError::RateLimited { kind, .. },
                ..
            }) => Some(kind),
            Err(other) => panic!("not a limit: {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_request_after_the_rpm_th_is_limited_before_any_call() {
        let calls = Arc::new(AtomicUsize::new(0));
        let router = Arc::new(ModelCatalog::new([open("b/m")]).unwrap());
        let (service, clock, _) = governed(router, calls.clone());
        let caller = limited(KeyLimits {
            rpm: Some(3),
            ..KeyLimits::default()
        });
        for remaining in [2, 1, 0] {
            let completion = service.complete(&caller, ask("b/m")).await.unwrap();
            assert_eq!(
                completion.limit_state.and_then(|state| state.requests),
                Some(Remaining {
                    limit: 3,
                    remaining
                })
            );
        }
        let failure = service.complete(&caller, ask("b/m")).await.unwrap_err();
        let GatewayError::RateLimited {
            kind: LimitKind::Requests,
            retry_after: Some(wait),
            state,
        } = failure.error
        else {
            panic!("{failure:?}");
        };
        assert_eq!(failure.limit_state, Some(state));
        assert!(failure.attempts.is_empty());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "the refused one was not sent"
        );
        // Streams are admitted the same way.
        assert!(service.stream(&caller, ask("b/m")).await.is_err());
        clock.advance(wait);
        service.complete(&caller, ask("b/m")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_request_is_admitted_once_however_many_targets_it_tries() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (service, _, _) = governed(failover(&["a/m", "b/m"]), calls.clone());
        let caller = limited(KeyLimits {
            rpm: Some(2),
            ..KeyLimits::default()
        });
        for _ in 0..2 {
            let completion = service.complete(&caller, ask("ha")).await.unwrap();
            assert_eq!(completion.attempts.len(), 1, "a/m failed over to b/m");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(
            refused_by(service.complete(&caller, ask("ha")).await),
            Some(LimitKind::Requests)
        );

        // The store is asked once per request, never per target.
        let mut store = MockLimitStore::new();
        store
            .expect_admit()
            .times(1)
            .returning(|_, _, _| Ok(Admission::Admitted(LimitState::default())));
        store.expect_record().times(1).return_const(());
        let mut provider = MockChatProvider::new();
        provider
            .expect_complete()
            .withf(to("a/m"))
            .returning(|_| Err(throttled()));
        provider
            .expect_complete()
            .withf(to("b/m"))
            .returning(|_| Ok(answer_using_tokens()));
        on(failover(&["a/m", "b/m"]), provider)
            .with_limits(Arc::new(store), OnBackendError::Deny)
            .complete(&caller, ask("ha"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn tokens_recorded_after_answers_limit_the_key_per_minute() {
        let calls = Arc::new(AtomicUsize::new(0));
        let router = Arc::new(ModelCatalog::new([open("b/m")]).unwrap());
        let (service, clock, _) = governed(router, calls);
        let caller = limited(KeyLimits {
            tpm: Some(1000),
            ..KeyLimits::default()
        });
        // 500 tokens an answer: 0 and 500 are under 1000, 1000 is not.
        for tokens_left in [1000, 500] {
            let completion = service.complete(&caller, ask("b/m")).await.unwrap();
            assert_eq!(
                completion.limit_state.and_then(|state| state.tokens),
                Some(Remaining {
                    limit: 1000,
                    remaining: tokens_left
                })
            );
        }
        assert_eq!(
            refused_by(service.complete(&caller, ask("b/m")).await),
            Some(LimitKind::Tokens)
        );
        // Streams record their usage too: in the next window half of the 1000 has faded.
        clock.advance(Duration::from_secs(90));
        let stream = service.stream(&caller, ask("b/m")).await.unwrap();
        assert_eq!(
            stream.limit_state.and_then(|state| state.tokens),
            Some(Remaining {
                limit: 1000,
                remaining: 500
            })
        );
        let _: Vec<_> = stream.events.collect().await;
        assert_eq!(
            refused_by(service.complete(&caller, ask("b/m")).await),
            Some(LimitKind::Tokens)
        );
    }

    #[tokio::test]
    async fn a_spent_budget_is_refused_until_its_period_starts_again() {
        let calls = Arc::new(AtomicUsize::new(0));
        let router = Arc::new(ModelCatalog::new([priced("b/m")]).unwrap());
        let (service, clock, observed) = governed(router, calls);
        let day = Duration::from_secs(86_400);
        let caller = limited(KeyLimits {
            budget_usd: Some(0.001),
            budget_period: Some(day),
            ..KeyLimits::default()
        });
        // 800 micro-USD an answer against 1000: the second is admitted, the third is not.
        let completion = service.complete(&caller, ask("b/m")).await.unwrap();
        assert_eq!(
            completion.cost,
            Some(Cost {
                input_micros: 200,
                output_micros: 600,
                ..Cost::default()
            })
        );
        assert_eq!(
            completion
                .limit_state
                .and_then(|s| s.budget_remaining_micros),
            Some(1000)
        );
        let completion = service.complete(&caller, ask("b/m")).await.unwrap();
        assert_eq!(
            completion
                .limit_state
                .and_then(|s| s.budget_remaining_micros),
            Some(200)
        );
        clock.advance(Duration::from_secs(3600));
        let failure = service.complete(&caller, ask("b/m")).await.unwrap_err();
        let GatewayError::RateLimited {
            kind: LimitKind::Budget,
            retry_after,
            state,
        } = failure.error
        else {
            panic!("{failure:?}");
        };
        assert_eq!(retry_after, Some(day - Duration::from_secs(3600)));
        assert_eq!(state.budget_remaining_micros, Some(0));
        // Every answer was told to the observer, with its cost.
        let costs: Vec<_> = observed
            .taken()
            .into_iter()
            .map(|(key, route, usage, cost, estimated)| {
                (key, route, usage, cost.map(|c| c.total_micros()), estimated)
            })
            .collect();
        let one = (
            Some(KEY.to_owned()),
            "b/m".to_owned(),
            used(),
            Some(800),
            false,
        );
        assert_eq!(costs, [one.clone(), one]);
        clock.advance(day - Duration::from_secs(3600));
        service.complete(&caller, ask("b/m")).await.unwrap();
    }

    #[tokio::test]
    async fn a_failing_limits_backend_serves_or_refuses_as_configured() {
        for choice in [OnBackendError::Allow, OnBackendError::Deny] {
            let mut store = MockLimitStore::new();
            store.expect_admit().returning(|_, _, _| {
                Err(LimitBackendError {
                    message: "connection refused".into(),
                })
            });
            store.expect_record().return_const(());
            let mut provider = MockChatProvider::new();
            provider
                .expect_complete()
                .times(usize::from(choice == OnBackendError::Allow))
                .returning(|_| Ok(answer_using_tokens()));
            let router = Arc::new(ModelCatalog::new([open("b/m")]).unwrap());
            let caller = limited(KeyLimits {
                rpm: Some(1),
                ..KeyLimits::default()
            });
            let result = on(router, provider)
                .with_limits(Arc::new(store), choice)
                .complete(&caller, ask("b/m"))
                .await;
            match choice {
                OnBackendError::Allow => {
                    let completion = result.unwrap();
                    assert_eq!(completion.limit_state, None, "unknown");
                }
                OnBackendError::Deny => {
                    let failure = result.unwrap_err();
                    assert_eq!(failure.error, GatewayError::LimitsUnavailable);
                    assert!(failure.attempts.is_empty());
                }
            }
        }
    }

    #[tokio::test]
    async fn keys_without_limits_or_names_never_reach_the_store_but_are_observed() {
        let mut store = MockLimitStore::new();
        store.expect_admit().never();
        store.expect_record().never();
        let mut provider = MockChatProvider::new();
        provider
            .expect_complete()
            .times(2)
            .returning(|_| Ok(answer_using_tokens()));
        let observed = Arc::new(Observed::default());
        let router = Arc::new(ModelCatalog::new([priced("b/m")]).unwrap());
        let service = on(router, provider)
            .with_limits(Arc::new(store), OnBackendError::Deny)
            .with_usage_observer(observed.clone());
        let unnamed = Caller {
            limits: KeyLimits {
                rpm: Some(1),
                ..KeyLimits::default()
            },
            ..Caller::default()
        };
        for caller in [limited(KeyLimits::default()), unnamed] {
            let completion = service.complete(&caller, ask("b/m")).await.unwrap();
            assert_eq!(completion.limit_state, None);
            assert_eq!(completion.cost.map(|c| c.total_micros()), Some(800));
        }
        assert_eq!(observed.taken().len(), 2);
    }

    /// A stream that sends `text` and two characters of tool arguments, then nothing, ever.
    fn endless(text: &'static str) -> ChatEventStream {
        let items = vec![
            Ok(ChatEvent::MessageStart),
            Ok(ChatEvent::TextDelta(text.into())),
            Ok(ChatEvent::ToolCallDelta {
                index: 0,
                arguments: "{}".into(),
            }),
        ];
        Box::pin(futures_util::stream::iter(items).chain(futures_util::stream::pending()))
    }

    #[tokio::test]
    async fn a_stream_settles_its_reported_usage_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let router = Arc::new(ModelCatalog::new([priced("b/m")]).unwrap());
        let (service, _, observed) = governed(router, calls);
        let caller = limited(KeyLimits {
            tpm: Some(10_000),
            ..KeyLimits::default()
        });
        let stream = service.stream(&caller, ask("b/m")).await.unwrap();
        assert_eq!(stream.cost(&used()).map(|c| c.total_micros()), Some(800));
        let received: Vec<_> = stream.events.collect().await;
        assert_eq!(received.len(), 4, "every event is passed on");
        assert_eq!(
            observed.taken(),
            [(
                Some(KEY.to_owned()),
                "b/m".to_owned(),
                used(),
                stream_cost(800),
                false
            )]
        );
        let completion = service.complete(&caller, ask("b/m")).await.unwrap();
        assert_eq!(
            completion
                .limit_state
                .and_then(|s| s.tokens)
                .map(|t| t.remaining),
            Some(9_500),
            "the stream's 500 tokens were recorded, once"
        );
    }

    fn stream_cost(micros: u64) -> Option<Cost> {
        Some(Cost {
            input_micros: micros / 4,
            output_micros: micros / 4 * 3,
            ..Cost::default()
        })
    }

    #[tokio::test]
    async fn a_stream_dropped_or_cut_before_its_usage_settles_an_estimate() {
        let observed = Arc::new(Observed::default());
        let store = Arc::new(InMemoryLimits::new());
        let clock = ManualClock::at_unix(1_699_920_000);
        let mut provider = MockChatProvider::new();
        let mut order = mockall::Sequence::new();
        // 13 characters of text and 2 of tool arguments: 15 / 4 rounds up to 4 tokens.
        provider
            .expect_stream()
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(endless("Hello, world!")));
        provider
            .expect_stream()
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| {
                Ok(events(vec![
                    Ok(ChatEvent::MessageStart),
                    Ok(ChatEvent::ReasoningDelta("12345678".into())),
                    Err(ProviderError::Protocol {
                        message: "cut frame".into(),
                    }),
                ]))
            });
        let router = Arc::new(ModelCatalog::new([priced("b/m")]).unwrap());
        let service = on(router, provider)
            .with_limits(store.clone(), OnBackendError::Deny)
            .with_clock(SharedClock::new(clock.clone()))
            .with_usage_observer(observed.clone());
        let caller = limited(KeyLimits {
            tpm: Some(100),
            ..KeyLimits::default()
        });
        let estimate = |output_tokens| Usage {
            output_tokens,
            total_tokens: output_tokens,
            ..Usage::default()
        };

        // The client reads three events and hangs up.
        let mut stream = service.stream(&caller, ask("b/m")).await.unwrap();
        for _ in 0..3 {
            stream.events.next().await.unwrap().unwrap();
        }
        assert!(observed.taken().is_empty(), "nothing settles while it runs");
        drop(stream);
        let cost_of_4 = Some(Cost {
            output_micros: 8,
            ..Cost::default()
        });
        assert_eq!(
            observed.taken(),
            [(
                Some(KEY.to_owned()),
                "b/m".to_owned(),
                estimate(4),
                cost_of_4,
                true
            )]
        );

        // A stream cut by an error settles what it streamed before it.
        let stream = service.stream(&caller, ask("b/m")).await.unwrap();
        let received: Vec<_> = stream.events.collect().await;
        assert!(received.last().unwrap().is_err());
        let settled = observed.taken();
        assert_eq!(settled.len(), 1);
        assert_eq!((settled[0].2, settled[0].4), (estimate(2), true));

        // Both were recorded against the key: 4 + 2 of 100 tokens.
        let admission = store.admit(KEY, &caller.limits, clock.now()).await.unwrap();
        let Admission::Admitted(state) = admission else {
            panic!("{admission:?}");
        };
        assert_eq!(state.tokens.map(|t| t.remaining), Some(94));
    }

    // Guardrail checks: resolve, allow, admit (rpm only), then the checker.

    use crate::guardrail_check::{
        GuardrailAction, GuardrailCheckError, GuardrailRef, GuardrailSource,
    };
    use crate::ports::MockGuardrailChecker;

    fn checkable(name: &str, account: &str, identifier: &str) -> CheckableGuardrail {
        CheckableGuardrail {
            name: name.into(),
            account: account.into(),
            guardrail: guardrail(identifier),
        }
    }

    fn intervened() -> GuardrailCheckOutcome {
        GuardrailCheckOutcome {
            action: GuardrailAction::Intervened,
            outputs: vec!["Mail {EMAIL}".into()],
            assessments: serde_json::json!([{"sensitiveInformationPolicy": {}}]),
            usage: None,
        }
    }

    /// A service offering `pii` (account `prod`) and `words` (account `dev`) through `checker`.
    fn checking(checker: MockGuardrailChecker) -> ChatService {
        let catalog = GuardrailCatalog::new([
            checkable("pii", "prod", "gr-pii"),
            checkable("words", "dev", "gr-words"),
        ])
        .unwrap();
        on(
            Arc::new(ModelCatalog::new([open("b/m")]).unwrap()),
            MockChatProvider::new(),
        )
        .with_guardrails(Arc::new(catalog))
        .with_guardrail_checker(Arc::new(checker))
    }

    fn allowed(names: &[&str]) -> Caller {
        Caller {
            key_name: Some(KEY.into()),
            guardrails: GuardrailAllowList::new(names.iter().map(|name| (*name).to_owned())),
            ..Caller::default()
        }
    }

    fn check(guardrail: GuardrailRef) -> GuardrailCheckRequest {
        GuardrailCheckRequest {
            guardrail,
            source: GuardrailSource::Output,
            content: vec!["Mail jane@example.com".into()],
        }
    }

    fn named(name: &str) -> GuardrailRef {
        GuardrailRef::Named(name.into())
    }

    fn check_error(failure: ChatFailure) -> GuardrailCheckError {
        match failure.error {
            GatewayError::GuardrailCheck(error) => error,
            other => panic!("not a check error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_allowed_check_runs_the_configured_guardrail_on_its_account() {
        let mut checker = MockGuardrailChecker::new();
        checker
            .expect_apply()
            .withf(|account, guardrail, source, content| {
                account == "prod"
                    && guardrail.identifier == "gr-pii"
                    && *source == GuardrailSource::Output
                    && content == ["Mail jane@example.com".to_owned()]
            })
            .times(1)
            .returning(|_, _, _, _| Ok(intervened()));
        let done = checking(checker)
            .check_guardrail(&allowed(&["pii"]), check(named("pii")))
            .await
            .unwrap();
        assert_eq!(done.guardrail.name, "pii");
        assert_eq!(done.outcome, intervened());
    }

    #[tokio::test]
    async fn an_explicit_reference_runs_the_configured_guardrail_it_matches() {
        let mut checker = MockGuardrailChecker::new();
        checker
            .expect_apply()
            .withf(|account, guardrail, _, _| {
                account == "dev" && guardrail.identifier == "gr-words"
            })
            .times(1)
            .returning(|_, _, _, _| Ok(intervened()));
        let explicit = GuardrailRef::Explicit {
            identifier: "gr-words".into(),
            version: "1".into(),
        };
        let done = checking(checker)
            .check_guardrail(&allowed(&["words"]), check(explicit))
            .await
            .unwrap();
        assert_eq!(done.guardrail.name, "words");
    }

    #[tokio::test]
    async fn refused_checks_never_reach_the_checker() {
        let mut checker = MockGuardrailChecker::new();
        checker.expect_apply().never();
        let service = checking(checker);
        let refused = |caller: Caller, request| {
            let service = service.clone();
            async move { check_error(service.check_guardrail(&caller, request).await.unwrap_err()) }
        };
        assert_eq!(
            refused(allowed(&["pii"]), check(named("nope"))).await,
            GuardrailCheckError::UnknownGuardrail {
                name: "nope".into()
            }
        );
        assert_eq!(
            refused(
                allowed(&["pii"]),
                check(GuardrailRef::Explicit {
                    identifier: "gr-pii".into(),
                    version: "7".into()
                })
            )
            .await,
            GuardrailCheckError::NotConfigured {
                identifier: "gr-pii".into(),
                version: "7".into()
            }
        );
        // Allowed another guardrail, or none (the default).
        assert_eq!(
            refused(allowed(&["words"]), check(named("pii"))).await,
            GuardrailCheckError::NotAllowed { name: "pii".into() }
        );
        assert_eq!(
            refused(Caller::default(), check(named("pii"))).await,
            GuardrailCheckError::NotAllowed { name: "pii".into() }
        );
        let empty = GuardrailCheckRequest {
            content: vec![],
            ..check(named("pii"))
        };
        assert_eq!(
            refused(allowed(&["pii"]), empty).await,
            GuardrailCheckError::EmptyContent
        );
    }

    #[tokio::test]
    async fn checks_count_against_the_keys_rpm_only() {
        let mut checker = MockGuardrailChecker::new();
        checker
            .expect_apply()
            .times(2)
            .returning(|_, _, _, _| Ok(intervened()));
        let clock = ManualClock::at_unix(1_699_920_000);
        let service = checking(checker)
            .with_limits(Arc::new(InMemoryLimits::new()), OnBackendError::Allow)
            .with_clock(SharedClock::new(clock.clone()));
        // A spent budget does not stop checks (they have no model price); rpm does.
        let caller = Caller {
            limits: KeyLimits {
                rpm: Some(2),
                budget_usd: Some(0.0),
                ..KeyLimits::default()
            },
            ..allowed(&["pii"])
        };
        for remaining in [1, 0] {
            let done = service
                .check_guardrail(&caller, check(named("pii")))
                .await
                .unwrap();
            assert_eq!(
                done.limit_state
                    .and_then(|state| state.requests)
                    .map(|r| r.remaining),
                Some(remaining)
            );
        }
        let refused = service
            .check_guardrail(&caller, check(named("pii")))
            .await
            .unwrap_err();
        assert!(matches!(
            refused.error,
            GatewayError::RateLimited {
                kind: LimitKind::Requests,
                ..
            }
        ));
        assert!(refused.limit_state.is_some());
    }

    #[tokio::test]
    async fn a_checker_error_reaches_the_caller_as_a_provider_error() {
        let mut checker = MockGuardrailChecker::new();
        checker
            .expect_apply()
            .returning(|_, _, _, _| Err(throttled()));
        let failure = checking(checker)
            .check_guardrail(&allowed(&["pii"]), check(named("pii")))
            .await
            .unwrap_err();
        assert_eq!(failure.error, GatewayError::Provider(throttled()));
    }

    // Embeddings: the same routing, kind checks, limits, breakers and failover.

    use crate::embedding::{EmbeddingRequest, EmbeddingResponse};
    use crate::ports::MockEmbeddingProvider;

    fn embedder(name: &str) -> ModelEntry {
        ModelEntry {
            kind: ModelKind::Embedding,
            ..priced(name)
        }
    }

    fn embed_request(model: &str) -> EmbeddingRequest {
        EmbeddingRequest {
            model: model.into(),
            inputs: vec!["one".into(), "two".into()],
            ..EmbeddingRequest::default()
        }
    }

    fn vectors(input_tokens: u64) -> EmbeddingResponse {
        EmbeddingResponse {
            vectors: vec![vec![0.5, 0.5], vec![1.0, 0.0]],
            input_tokens,
        }
    }

    /// A chat provider that must never be called.
    fn no_chat() -> MockChatProvider {
        MockChatProvider::new()
    }

    fn embedding_service(
        router: Arc<ModelCatalog>,
        embeddings: MockEmbeddingProvider,
    ) -> ChatService {
        on(router, no_chat()).with_embeddings(Arc::new(embeddings))
    }

    #[tokio::test]
    async fn embeddings_of_a_virtual_model_fail_over_like_chat() {
        let router = catalog(
            vec![embedder("a/e"), embedder("b/e")],
            Strategy::Failover,
            &["a/e", "b/e"],
            None,
        );
        let mut provider = MockEmbeddingProvider::new();
        let mut order = mockall::Sequence::new();
        provider
            .expect_embed()
            .withf(|route, request| route.public_name == "a/e" && request.model == "ha")
            .times(1)
            .in_sequence(&mut order)
            .returning(|_, _| Err(throttled()));
        provider
            .expect_embed()
            .withf(|route, _| route.public_name == "b/e")
            .times(1)
            .in_sequence(&mut order)
            .returning(|_, _| Ok(vectors(7)));
        let embedded = embedding_service(router, provider)
            .embed(&Caller::default(), embed_request("ha"))
            .await
            .unwrap();
        assert_eq!(embedded.model, "ha");
        assert_eq!(embedded.route.public_name, "b/e");
        assert_eq!(embedded.response, vectors(7));
        assert_eq!(outcomes(&embedded.attempts), [("a/e".into(), "throttled")]);
        // 7 input tokens at 1 USD per million.
        assert_eq!(embedded.cost.map(|cost| cost.total_micros()), Some(7));
    }

    #[tokio::test]
    async fn a_validation_error_from_the_embedder_is_the_answer() {
        let router = catalog(
            vec![embedder("a/e"), embedder("b/e")],
            Strategy::Failover,
            &["a/e", "b/e"],
            None,
        );
        let mut provider = MockEmbeddingProvider::new();
        provider.expect_embed().times(1).returning(|_, _| {
            Err(ProviderError::InvalidRequest {
                message: "too long".into(),
            })
        });
        let failure = embedding_service(router, provider)
            .embed(&Caller::default(), embed_request("ha"))
            .await
            .unwrap_err();
        assert_eq!(failure.error.to_string(), "too long");
        assert_eq!(
            outcomes(&failure.attempts),
            [("a/e".into(), "invalid_request")]
        );
    }

    #[tokio::test]
    async fn chat_on_an_embedding_model_and_the_reverse_are_refused_before_any_call() {
        let router = Arc::new(ModelCatalog::new([open("a/chat"), embedder("a/e")]).unwrap());
        // Neither mock expects a call: any call fails the test.
        let service = embedding_service(router, MockEmbeddingProvider::new());
        let chat = service
            .complete(&Caller::default(), ask("a/e"))
            .await
            .unwrap_err();
        assert_eq!(
            chat.error,
            GatewayError::WrongModelKind {
                model: "a/e".into(),
                kind: ModelKind::Embedding,
                requested: ModelKind::Chat,
            }
        );
        assert_eq!(
            chat.error.to_string(),
            "the model `a/e` is an embedding model and cannot answer chat requests"
        );
        let stream = service.stream(&Caller::default(), ask("a/e")).await;
        assert!(matches!(
            stream.map(|_| ()).unwrap_err().error,
            GatewayError::WrongModelKind { .. }
        ));
        let embed = service
            .embed(&Caller::default(), embed_request("a/chat"))
            .await
            .unwrap_err();
        assert_eq!(
            embed.error.to_string(),
            "the model `a/chat` is a chat model and cannot answer embedding requests"
        );
    }

    #[tokio::test]
    async fn embedding_requests_break_no_cap_and_need_an_embedding_provider() {
        let router = Arc::new(ModelCatalog::new([embedder("a/e")]).unwrap());
        let empty = EmbeddingRequest {
            inputs: vec![],
            ..embed_request("a/e")
        };
        let service = embedding_service(router.clone(), MockEmbeddingProvider::new());
        let failure = service.embed(&Caller::default(), empty).await.unwrap_err();
        assert!(matches!(failure.error, GatewayError::InvalidRequest(_)));
        let without = on(router, no_chat());
        let failure = without
            .embed(&Caller::default(), embed_request("a/e"))
            .await
            .unwrap_err();
        assert_eq!(
            failure.error.to_string(),
            "this gateway has no embedding provider"
        );
    }

    #[tokio::test]
    async fn embedding_tokens_count_toward_the_keys_tpm_and_are_told_to_the_observer() {
        let router = Arc::new(ModelCatalog::new([embedder("a/e")]).unwrap());
        let mut provider = MockEmbeddingProvider::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        provider.expect_embed().returning(move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(vectors(600))
        });
        let clock = ManualClock::at_unix(1_699_920_000);
        let observed = Arc::new(Observed::default());
        let service = embedding_service(router, provider)
            .with_limits(Arc::new(InMemoryLimits::new()), OnBackendError::Allow)
            .with_clock(SharedClock::new(clock.clone()))
            .with_usage_observer(observed.clone());
        let caller = limited(KeyLimits {
            tpm: Some(1000),
            ..KeyLimits::default()
        });
        service.embed(&caller, embed_request("a/e")).await.unwrap();
        service.embed(&caller, embed_request("a/e")).await.unwrap();
        let third = service.embed(&caller, embed_request("a/e")).await;
        assert!(matches!(
            third.unwrap_err().error,
            GatewayError::RateLimited {
                kind: LimitKind::Tokens,
                ..
            }
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 2, "refused before the call");
        let told = observed.taken();
        assert_eq!(told.len(), 2);
        let (key, route, usage, cost, estimated) = &told[0];
        assert_eq!(key.as_deref(), Some(KEY));
        assert_eq!(route, "a/e");
        assert_eq!((usage.input_tokens, usage.output_tokens), (600, 0));
        assert_eq!(cost.map(|cost| cost.input_micros), Some(600));
        assert!(!estimated);
    }

    #[tokio::test]
    async fn an_open_breaker_skips_an_embedding_target() {
        let router = catalog(
            vec![embedder("a/e"), embedder("b/e")],
            Strategy::Failover,
            &["a/e", "b/e"],
            None,
        );
        let mut provider = MockEmbeddingProvider::new();
        provider
            .expect_embed()
            .withf(|route, _| route.public_name == "a/e")
            .times(1)
            .returning(|_, _| Err(throttled()));
        provider
            .expect_embed()
            .withf(|route, _| route.public_name == "b/e")
            .times(2)
            .returning(|_, _| Ok(vectors(1)));
        let settings = CircuitBreakerSettings {
            failures: NonZeroU32::MIN,
            cooldown: COOLDOWN,
        };
        let clock = ManualClock::at_unix(1_700_000_000);
        let breakers = Arc::new(CircuitBreakers::new(
            SharedClock::new(clock),
            [("a/e".into(), settings)],
        ));
        let service = embedding_service(router, provider).with_circuit_breakers(breakers);
        service
            .embed(&Caller::default(), embed_request("ha"))
            .await
            .unwrap();
        let second = service
            .embed(&Caller::default(), embed_request("ha"))
            .await
            .unwrap();
        assert_eq!(outcomes(&second.attempts), [("a/e".into(), "skipped")]);
    }
}
