//! The hyper server: connections, routing and the request handlers.
//!
//! Routes:
//! - `POST /v1/chat/completions` (and `/chat/completions`): a load-shedding slot (see
//!   [`crate::shed`]), gateway key, body, chat. Every answer from a target, and every error
//!   after one was called, names it in `x-gateway-target` (`<account>/<model>`); the JSON
//!   `model` stays the name the client sent, a virtual model's included.
//! - `POST /v1/messages` (and `/messages`): the same chat path through Anthropic's Messages
//!   door (see [`crate::door`]); its errors are in Anthropic's shape.
//!   `POST /v1/messages/count_tokens` (and `/messages/count_tokens`): the same request's input
//!   tokens (Bedrock's CountTokens), not metered.
//! - `POST /v1/guardrails/check`: a load-shedding slot, gateway key, body, then a check
//!   against a configured guardrail (see [`crate::guardrail_check`]); errors as chat's.
//! - `POST /v1/embeddings` (and `/embeddings`): as chats, a slot, the key, the body, then
//!   the service's `embed` (see [`crate::openai::embeddings`]).
//! - `GET /v1/models` (and `/models`): gateway key, the configured then the virtual models.
//! - `GET /health`, `/healthz`: no key; liveness, 200 while the process serves.
//! - `GET /ready`, `/readyz`: no key; readiness, as the host last reported it (see
//!   [`crate::readiness`]).
//! - `GET /metrics`: no key (see [`crate::metrics`]).
//! - `GET /console...`: the web console and its admin API (see [`crate::console`]).
//!
//! Only chats and embeddings take a slot: health and readiness checks, metrics and the model list answer
//! however loaded the gateway is.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use gateway_core::clock::SharedClock;
use gateway_core::{
    Attempt, AttemptOutcome, Caller, ChatFailure, ChatRequest, ChatService, GatewayError,
    ProviderError, Route, Usage,
};
use http::header::{
    HeaderMap, HeaderName, HeaderValue, ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH,
    CONTENT_TYPE, RETRY_AFTER, TRANSFER_ENCODING,
};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use tracing::{Instrument, Span};

use crate::anthropic::request::{parse_messages_request, Purpose};
use crate::anthropic::response::count_tokens_json;
use crate::anthropic::{AnthropicContext, AnthropicMessages};
use crate::auth::KeyStore;
use crate::body::{read_limited, ReadError, ResponseBody};
use crate::connections::ConnectionSettings;
use crate::console::{self, Console, TrafficSampler};
use crate::door::ChatDoor;
use crate::error::{ApiError, NOT_READY};
use crate::governance::{
    insert_cost_header, insert_limit_headers, LimitBackendCollector, UsageMetrics,
};
use crate::guardrail_check::{guardrail_check_json, parse_guardrail_check};
use crate::metrics::{Endpoint, KeyLabels, Metrics, ModelLabel};
use crate::openai::embeddings::{embeddings_json, parse_embedding_request, ParsedEmbeddingRequest};
use crate::openai::models::model_list_json;
use crate::openai::{OpenAiChat, OpenAiContext};
use crate::readiness::Readiness;
use crate::request_id::{RequestId, REQUEST_ID};
use crate::request_log::{ErrorType, RequestLog};
use crate::responses::OpenAiResponses;
use crate::retry_metrics::RetryCollector;
use crate::settings::HttpSettings;
use crate::shed::{ConcurrencyLimit, InFlight};
use crate::sse::SseBody;
use crate::trace;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
/// Names the `<account>/<model>` that answered (or, on an error, was called last).
const GATEWAY_TARGET: HeaderName = HeaderName::from_static("x-gateway-target");
const HEALTH_BODY: &[u8] = br#"{"status":"ok"}"#;

/// Everything a request needs, built once at start and shared by all connections.
pub struct HttpApp {
    service: ChatService,
    keys: Arc<KeyStore>,
    max_body_bytes: usize,
    /// How long a chat's body may take to arrive.
    body_read_timeout: Duration,
    /// The process's: shared by every app made from this one, never changed by a reload.
    connections: ConnectionSettings,
    /// Spans carry prompts and answers ([`HttpSettings::capture_content`]).
    capture_content: bool,
    clock: SharedClock,
    /// Shared with the apps made by [`HttpApp::with_service`], so `/metrics` counts them all.
    metrics: Arc<Metrics>,
    /// Shared with the apps made by [`HttpApp::with_service`]: the limit is the process's.
    concurrency: ConcurrencyLimit,
    models: Arc<ModelIndex>,
    key_labels: Arc<KeyLabels>,
    /// Shared with every app made from this one: readiness is the process's.
    readiness: Readiness,
    /// Send each chat's request id to Bedrock as `requestMetadata`.
    request_id_to_bedrock: bool,
    /// This configuration's console (admin keys, account descriptions).
    console: Arc<Console>,
    /// When the process's first app was made: the console's uptime.
    started_at: SystemTime,
}

impl fmt::Debug for HttpApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpApp")
            .field("keys", &self.keys)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("connections", &self.connections)
            .field("concurrency", &self.concurrency)
            .field("readiness", &self.readiness)
            .finish_non_exhaustive()
    }
}

/// The configured and virtual models: labels, accounts and target headers by public name,
/// and the `/v1/models` body.
///
/// An app's router never changes (a reload makes a new app), so this is computed once per
/// app rather than per request.
pub(crate) struct ModelIndex {
    by_name: HashMap<String, ModelInfo>,
    other: ModelInfo,
    list_json: Bytes,
}

#[derive(Clone)]
pub(crate) struct ModelInfo {
    pub(crate) label: ModelLabel,
    /// The account of a configured model; `-` for a virtual model, which has several.
    account: Arc<String>,
    /// The `x-gateway-target` value naming a configured model; `None` for a virtual model.
    target: Option<HeaderValue>,
}

impl ModelIndex {
    fn new(service: &ChatService) -> Self {
        let routes = service.models();
        let virtual_models = service.virtual_models();
        let mut by_name: HashMap<String, ModelInfo> = routes
            .iter()
            .map(|route| {
                let info = ModelInfo {
                    label: Arc::new(route.public_name.clone()),
                    account: Arc::new(route.account.clone()),
                    // A host's router may use names no header can carry; they go unnamed.
                    target: HeaderValue::from_str(&route.public_name).ok(),
                };
                (route.public_name.clone(), info)
            })
            .collect();
        let no_account = Arc::new("-".to_owned());
        for model in &virtual_models {
            let info = ModelInfo {
                label: Arc::new(model.name.clone()),
                account: Arc::clone(&no_account),
                target: None,
            };
            by_name.entry(model.name.clone()).or_insert(info);
        }
        let list_json = model_list_json(
            routes.iter().map(|route| &**route),
            virtual_models.iter().map(|model| &**model),
        );
        Self {
            by_name,
            other: ModelInfo {
                label: Arc::new("other".into()),
                account: no_account,
                target: None,
            },
            list_json: list_json.into(),
        }
    }

    /// Unknown names share one label, so clients cannot create metric series.
    pub(crate) fn get(&self, public_name: &str) -> &ModelInfo {
        self.by_name.get(public_name).unwrap_or(&self.other)
    }
}

impl HttpApp {
    /// The app answering through `service`, which it makes tell `/metrics` what every
    /// answer consumed (replacing any [`gateway_core::UsageObserver`] it had).
    pub fn new(service: ChatService, settings: HttpSettings, clock: SharedClock) -> Self {
        let models = Arc::new(ModelIndex::new(&service));
        let concurrency = ConcurrencyLimit::new(settings.max_concurrent_requests);
        let connections = ConnectionSettings::new(&settings);
        let mut metrics = Metrics::new();
        metrics.track_in_flight(concurrency.clone());
        metrics.track_connections(connections.limit.clone());
        if let Some(counters) = settings.retry_counters {
            metrics.register_collector(Box::new(RetryCollector(counters)));
        }
        let console = Arc::new(Console::new(
            settings.console,
            settings.limit_backend_errors.clone(),
            settings.trace_export_failures.clone(),
        ));
        if let Some(errors) = settings.limit_backend_errors {
            metrics.register_collector(Box::new(LimitBackendCollector(errors)));
        }
        if let Some(failures) = settings.trace_export_failures {
            metrics.register_collector(Box::new(trace::TraceExportCollector(failures)));
        }
        let key_labels = Arc::new(KeyLabels::new(
            settings.keys.iter().map(|key| key.name.as_str()),
        ));
        let mut app = Self {
            service,
            keys: Arc::new(KeyStore::new(settings.keys)),
            max_body_bytes: settings.max_body_bytes,
            body_read_timeout: settings.body_read_timeout,
            connections,
            capture_content: settings.capture_content,
            metrics: Arc::new(metrics),
            models,
            concurrency,
            key_labels,
            readiness: Readiness::new(),
            request_id_to_bedrock: settings.request_id_to_bedrock,
            console,
            started_at: clock.now(),
            clock,
        };
        app.service = app.observed(app.service.clone());
        app
    }

    /// An app for a new configuration (`service`, `settings`) that carries on this one's
    /// process-wide state: the metrics, with the collectors registered at start
    /// (`settings.retry_counters` is not read: the host keeps the collector's source current),
    /// the count of chats in flight (under the new limit), readiness and the connection
    /// settings and count (`max_header_bytes`, `max_headers`, `header_read_timeout`,
    /// `max_connections` and `max_streams_per_connection` are not read; `body_read_timeout`
    /// is). Requests in flight keep the app they started with.
    pub fn reconfigured(&self, service: ChatService, settings: HttpSettings) -> Self {
        let mut app = Self {
            models: Arc::new(ModelIndex::new(&service)),
            key_labels: Arc::new(KeyLabels::new(
                settings.keys.iter().map(|key| key.name.as_str()),
            )),
            service,
            keys: Arc::new(KeyStore::new(settings.keys)),
            max_body_bytes: settings.max_body_bytes,
            body_read_timeout: settings.body_read_timeout,
            connections: self.connections.clone(),
            capture_content: settings.capture_content,
            clock: self.clock.clone(),
            metrics: Arc::clone(&self.metrics),
            concurrency: self.concurrency.with_max(settings.max_concurrent_requests),
            readiness: self.readiness.clone(),
            request_id_to_bedrock: settings.request_id_to_bedrock,
            console: Arc::new(Console::new(
                settings.console,
                settings.limit_backend_errors,
                settings.trace_export_failures,
            )),
            started_at: self.started_at,
        };
        app.service = app.observed(app.service.clone());
        app
    }

    /// What `/ready` answers; the host reports to it.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Chat requests in flight in the whole process, open streams included.
    pub fn in_flight_requests(&self) -> usize {
        self.concurrency.in_flight()
    }

    /// Streams being sent in the whole process.
    pub fn open_streams(&self) -> usize {
        self.metrics.open_streams()
    }

    pub(crate) fn connection_settings(&self) -> &ConnectionSettings {
        &self.connections
    }

    /// An app that sends chats through `service` but shares keys, settings and metrics with
    /// this one. A server with one runtime per core gives each runtime a service with its
    /// own upstream connections, while `/metrics` still counts every request of the process.
    /// `service` must route the same models as this app's.
    pub fn with_service(&self, service: ChatService) -> Self {
        Self {
            service: self.observed(service),
            keys: Arc::clone(&self.keys),
            max_body_bytes: self.max_body_bytes,
            body_read_timeout: self.body_read_timeout,
            connections: self.connections.clone(),
            capture_content: self.capture_content,
            clock: self.clock.clone(),
            metrics: Arc::clone(&self.metrics),
            models: Arc::clone(&self.models),
            concurrency: self.concurrency.clone(),
            key_labels: Arc::clone(&self.key_labels),
            readiness: self.readiness.clone(),
            request_id_to_bedrock: self.request_id_to_bedrock,
            console: Arc::clone(&self.console),
            started_at: self.started_at,
        }
    }

    /// The console's traffic sampler: the host runs [`TrafficSampler::run`] for as long as
    /// the server runs, so the traffic page has history from the start. Every app made from
    /// this one shares its history.
    pub fn traffic_sampler(&self) -> TrafficSampler {
        TrafficSampler {
            traffic: Arc::clone(self.metrics.traffic()),
            clock: self.clock.clone(),
        }
    }

    /// `service`, telling this app's metrics what its answers consume.
    fn observed(&self, service: ChatService) -> ChatService {
        service.with_usage_observer(Arc::new(UsageMetrics {
            metrics: Arc::clone(&self.metrics),
            models: Arc::clone(&self.models),
            keys: Arc::clone(&self.key_labels),
        }))
    }

    /// Answers `request` inside a span carrying its request id, which every response
    /// returns in `x-request-id`.
    pub(crate) async fn handle(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        let request_id = RequestId::from_headers(request.headers());
        let span = tracing::info_span!("request", request_id = %request_id);
        let mut response = self.respond(request, &request_id).instrument(span).await;
        response
            .headers_mut()
            .insert(REQUEST_ID, request_id.header_value().clone());
        response
    }

    async fn respond(
        &self,
        request: Request<Incoming>,
        request_id: &RequestId,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let (parts, body) = request.into_parts();
        let endpoint = match parts.uri.path() {
            "/v1/chat/completions" | "/chat/completions" => Endpoint::ChatCompletions,
            "/v1/responses" | "/responses" => Endpoint::Responses,
            "/v1/messages" | "/messages" => Endpoint::Messages,
            "/v1/messages/count_tokens" | "/messages/count_tokens" => Endpoint::CountTokens,
            "/v1/guardrails/check" => Endpoint::GuardrailCheck,
            "/v1/embeddings" | "/embeddings" => Endpoint::Embeddings,
            "/v1/models" | "/models" => Endpoint::Models,
            "/health" | "/healthz" => Endpoint::Health,
            "/ready" | "/readyz" => Endpoint::Ready,
            "/metrics" => Endpoint::Metrics,
            path if console::is_console_path(path) => Endpoint::Console,
            _ => Endpoint::Other,
        };
        let allowed = match endpoint {
            endpoint if endpoint.takes_posts() => parts.method == Method::POST,
            Endpoint::Other => true,
            _ => parts.method == Method::GET || parts.method == Method::HEAD,
        };
        let mut log = RequestLog::start(
            started,
            endpoint,
            Arc::clone(&self.metrics),
            &self.models.other.label,
        );
        let mut model = &self.models.other;
        let mut response = if let Some(refusal) = self.refuse_head(&parts) {
            refusal
        } else if !allowed {
            let mut response = error_response(&ApiError::method_not_allowed(
                &parts.method,
                parts.uri.path(),
            ));
            let allow = if endpoint.takes_posts() {
                "POST"
            } else {
                "GET, HEAD"
            };
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            response
        } else {
            match endpoint {
                Endpoint::ChatCompletions => {
                    let (response, info) = self
                        .traced_chat(&OpenAiChat, &parts, body, request_id, &mut log)
                        .await;
                    model = info;
                    response
                }
                Endpoint::Responses => {
                    let (response, info) = self
                        .traced_chat(&OpenAiResponses, &parts, body, request_id, &mut log)
                        .await;
                    model = info;
                    response
                }
                Endpoint::Messages => {
                    let (response, info) = self
                        .traced_chat(&AnthropicMessages, &parts, body, request_id, &mut log)
                        .await;
                    model = info;
                    response
                }
                Endpoint::CountTokens => {
                    let (response, info) = self.count_tokens(&parts, body, &mut log).await;
                    model = info;
                    response
                }
                Endpoint::GuardrailCheck => self.guardrail_check(&parts, body, &mut log).await,
                Endpoint::Embeddings => {
                    let span = trace::embeddings_span(&parts.headers);
                    let (response, info) = self
                        .embeddings(&parts, body, &mut log, &span)
                        .instrument(span.clone())
                        .await;
                    if response.status().is_client_error() || response.status().is_server_error() {
                        trace::record_error(&span, response.status().as_str());
                    }
                    model = info;
                    response
                }
                Endpoint::Models => match self.keys.authenticate(&parts.headers) {
                    Some(caller) => {
                        log.key(self.key_labels.get(caller.key_name.as_deref()));
                        json_response(StatusCode::OK, self.models.list_json.clone())
                    }
                    None => error_response(&ApiError::unauthorized()),
                },
                Endpoint::Health => json_response(StatusCode::OK, Bytes::from_static(HEALTH_BODY)),
                Endpoint::Ready => {
                    let report = self.readiness.current();
                    let status = if report.ready {
                        StatusCode::OK
                    } else {
                        NOT_READY
                    };
                    json_response(status, report.body.clone())
                }
                Endpoint::Metrics => {
                    for (target, state) in self.service.circuit_breakers().states() {
                        self.metrics
                            .circuit_state(&self.models.get(target).label, state);
                    }
                    let mut response = Response::new(ResponseBody::full(self.metrics.encode()));
                    response.headers_mut().insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                    );
                    response
                }
                Endpoint::Console => console::respond(
                    &console::Context {
                        console: &self.console,
                        service: &self.service,
                        keys: &self.keys,
                        key_labels: &self.key_labels,
                        metrics: &self.metrics,
                        readiness: &self.readiness,
                        clock: &self.clock,
                        started_at: self.started_at,
                    },
                    &parts,
                ),
                Endpoint::Other => {
                    error_response(&ApiError::unknown_url(&parts.method, parts.uri.path()))
                }
            }
        };
        if endpoint == Endpoint::Console {
            console::secure(response.headers_mut());
        }
        let elapsed = started.elapsed();
        self.metrics
            .record_request(endpoint, &model.label, response.status(), elapsed);
        log.status(
            response.status(),
            response.extensions().get::<ErrorType>().copied(),
        );
        match response.body_mut() {
            // The stream writes the line when it ends.
            ResponseBody::Sse(stream) => stream.log_when_done(log),
            ResponseBody::Full(_) => log.finish(),
        }
        response
    }

    /// The answer to a request head the gateway refuses whatever its route, before anything
    /// else is looked at: more header lines than `max_headers` (431; hyper counts HTTP/1
    /// heads itself, HTTP/2 ones are counted here), or framing two servers could read
    /// differently (400, and the connection closes: whatever follows on it cannot be trusted
    /// to start a request).
    fn refuse_head(&self, parts: &Parts) -> Option<Response<ResponseBody>> {
        let limit = self.connections.max_headers;
        if parts.headers.len() > limit {
            return Some(error_response(&ApiError::too_many_headers(limit)));
        }
        if ambiguous_framing(&parts.headers) {
            let refusal = error_response(&ApiError::ambiguous_framing());
            return Some(closing(refusal, parts.version));
        }
        None
    }

    /// [`HttpApp::chat`] inside the chat's trace span, which records an error status.
    async fn traced_chat<D: ChatDoor>(
        &self,
        door: &D,
        parts: &Parts,
        body: Incoming,
        request_id: &RequestId,
        log: &mut RequestLog,
    ) -> (Response<ResponseBody>, &ModelInfo) {
        // The request's own span (with its id) stays what logs show; the chat's trace span,
        // kept out of the logs, is current inside the chat.
        let request_span = Span::current();
        let span = trace::chat_span(&parts.headers);
        let (response, info) = self
            .chat(door, parts, body, request_id, log, (&span, &request_span))
            .instrument(span.clone())
            .await;
        if response.status().is_client_error() || response.status().is_server_error() {
            trace::record_error(&span, response.status().as_str());
        }
        (response, info)
    }

    /// A chat through `door` (`POST /v1/chat/completions` and the other chat APIs): the one
    /// path every door shares. Also returns the model for metrics and logs.
    async fn chat<D: ChatDoor>(
        &self,
        door: &D,
        parts: &Parts,
        body: Incoming,
        request_id: &RequestId,
        log: &mut RequestLog,
        (span, request_span): (&Span, &Span),
    ) -> (Response<ResponseBody>, &ModelInfo) {
        let other = &self.models.other;
        let (slot, caller, bytes) = match self.admit_body(door, parts, body, log).await {
            Ok(admitted) => admitted,
            Err(refusal) => return (refusal, other),
        };
        let parsed = door.parse(&bytes);
        if let Ok((request, _)) = &parsed {
            let content = self.capture_content.then_some(bytes.as_ref());
            trace::record_request(span, request, content);
        }
        // The request owns what it needs; large inline images should not be held twice.
        drop(bytes);
        let (mut request, context) = match parsed {
            Ok(parsed) => parsed,
            Err(error) => return (door_error(door, &error), other),
        };
        if self.request_id_to_bedrock {
            request_id.add_to_metadata(&mut request);
        }
        let model = self.models.get(&request.model);
        log.model(&request.model, &model.label);
        // Usually empty, so kept without allocating; the service either refuses the request
        // for them or drops them.
        let unsupported = request.unsupported_parameters.clone();
        let result = if request.stream {
            self.stream(
                door,
                &caller,
                (request, context),
                slot,
                log,
                (span, request_span),
            )
            .await
        } else {
            let result = self
                .complete(door, &caller, (request, context), log, span)
                .await;
            // The answer is in memory: the request no longer weighs on the gateway.
            drop(slot);
            result
        };
        let response = match result {
            Ok(response) => {
                self.count_dropped(door, &unsupported);
                response
            }
            Err((failure, context)) => self.failure(door, &caller, &failure, &context, log),
        };
        (response, model)
    }

    /// `POST /v1/embeddings`; also returns the model for metrics and logs.
    async fn embeddings(
        &self,
        parts: &Parts,
        body: Incoming,
        log: &mut RequestLog,
        span: &Span,
    ) -> (Response<ResponseBody>, &ModelInfo) {
        let other = &self.models.other;
        let (slot, caller, bytes) = match self.admit_body(&OpenAiChat, parts, body, log).await {
            Ok(admitted) => admitted,
            Err(refusal) => return (refusal, other),
        };
        let parsed = parse_embedding_request(&bytes);
        drop(bytes);
        let ParsedEmbeddingRequest { request, encoding } = match parsed {
            Ok(parsed) => parsed,
            Err(error) => return (error_response(&ApiError::from_request(error)), other),
        };
        trace::record_embeddings_request(span, &request);
        let model = self.models.get(&request.model);
        log.model(&request.model, &model.label);
        let result = self.service.embed(&caller, request).await;
        // The answer is in memory: the request no longer weighs on the gateway.
        drop(slot);
        let embedded = match result {
            Ok(embedded) => embedded,
            Err(failure) => {
                let context = OpenAiContext::without_messages();
                return (
                    self.failure(&OpenAiChat, &caller, &failure, &context, log),
                    model,
                );
            }
        };
        trace::record_embeddings_response(
            span,
            &embedded.route.model_id,
            embedded.response.input_tokens,
        );
        self.count_attempts(&embedded.attempts, true);
        log.target(&self.models.get(&embedded.route.public_name).label);
        log.usage(Usage {
            input_tokens: embedded.response.input_tokens,
            total_tokens: embedded.response.input_tokens,
            ..Usage::default()
        });
        let body = embeddings_json(&embedded, encoding);
        let mut response = json_response(StatusCode::OK, body.into());
        self.name_target(&mut response, &embedded.route);
        let headers = response.headers_mut();
        if let Some(state) = &embedded.limit_state {
            insert_limit_headers(headers, state);
        }
        if let Some(cost) = &embedded.cost {
            insert_cost_header(headers, cost);
        }
        (response, model)
    }

    /// `POST /v1/guardrails/check`: like a chat, a slot, then the key, then the body; the
    /// service resolves the guardrail, checks the key may use it and admits it on `rpm`.
    /// Errors are OpenAI-shaped, as chat's.
    async fn guardrail_check(
        &self,
        parts: &Parts,
        body: Incoming,
        log: &mut RequestLog,
    ) -> Response<ResponseBody> {
        let door = &OpenAiChat;
        let (_slot, caller, bytes) = match self.admit_body(door, parts, body, log).await {
            Ok(admitted) => admitted,
            Err(refusal) => return refusal,
        };
        let request = match parse_guardrail_check(&bytes) {
            Ok(request) => request,
            Err(error) => return error_response(&ApiError::from_request(error)),
        };
        drop(bytes);
        match self.service.check_guardrail(&caller, request).await {
            Ok(check) => {
                let mut response =
                    json_response(StatusCode::OK, guardrail_check_json(&check.outcome).into());
                if let Some(state) = &check.limit_state {
                    insert_limit_headers(response.headers_mut(), state);
                }
                response
            }
            Err(failure) => {
                let context = OpenAiContext::without_messages();
                self.failure(door, &caller, &failure, &context, log)
            }
        }
    }

    /// What every door's request goes through before its body is parsed: a load-shedding
    /// slot, the gateway key (before the body is read: a caller without a key costs no more
    /// than the headers) and the body within its limits. A refusal is the answer, in `door`'s
    /// shape.
    async fn admit_body<D: ChatDoor>(
        &self,
        door: &D,
        parts: &Parts,
        body: Incoming,
        log: &mut RequestLog,
    ) -> Result<(InFlight, Caller, Bytes), Response<ResponseBody>> {
        // First of all: a shed request costs no more than its headers, whoever sends it.
        let Some(slot) = self.concurrency.try_acquire() else {
            self.metrics.shed_request();
            return Err(door_error(door, &ApiError::overloaded()));
        };
        let Some(caller) = self.keys.authenticate(&parts.headers) else {
            return Err(door_error(door, &ApiError::unauthorized()));
        };
        log.key(self.key_labels.get(caller.key_name.as_deref()));
        let declared = content_length(parts).map_err(|error| door_error(door, &error))?;
        if declared.is_some_and(|n| n > self.max_body_bytes as u64) {
            return Err(door_error(
                door,
                &ApiError::body_too_large(self.max_body_bytes),
            ));
        }
        let read = read_limited(body, declared, self.max_body_bytes, self.body_read_timeout);
        match read.await {
            Ok(bytes) => Ok((slot, caller, bytes)),
            Err(ReadError::TimedOut) => {
                let error = ApiError::body_timeout(self.body_read_timeout);
                Err(closing(door_error(door, &error), parts.version))
            }
            Err(ReadError::TooLarge) => Err(door_error(
                door,
                &ApiError::body_too_large(self.max_body_bytes),
            )),
            // A body hyper could not decode (a chunk size overflowing, say) leaves nothing
            // on the connection that can be trusted to start the next request.
            Err(ReadError::Unreadable) => {
                let error = door_error(door, &ApiError::body_unreadable());
                Err(closing(error, parts.version))
            }
        }
    }

    /// `POST /v1/messages/count_tokens`: a Messages request's input tokens, counted by the
    /// route's provider through the service (caps, routing, guardrail policy, failover);
    /// counting generates nothing, so the key's limits neither admit nor meter it.
    async fn count_tokens(
        &self,
        parts: &Parts,
        body: Incoming,
        log: &mut RequestLog,
    ) -> (Response<ResponseBody>, &ModelInfo) {
        let door = &AnthropicMessages;
        let other = &self.models.other;
        let (slot, caller, bytes) = match self.admit_body(door, parts, body, log).await {
            Ok(admitted) => admitted,
            Err(refusal) => return (refusal, other),
        };
        let request = match parse_messages_request(&bytes, Purpose::CountTokens) {
            Ok(request) => request,
            Err(error) => return (door_error(door, &ApiError::from_request(error)), other),
        };
        drop(bytes);
        let model = self.models.get(&request.model);
        log.model(&request.model, &model.label);
        let counted = self.service.count_tokens(&caller, request).await;
        drop(slot);
        let response = match counted {
            Ok(count) => {
                self.count_attempts(&count.attempts, true);
                log.target(&self.models.get(&count.route.public_name).label);
                let body = count_tokens_json(count.input_tokens);
                let mut response = json_response(StatusCode::OK, body.into());
                self.name_target(&mut response, &count.route);
                response
            }
            Err(failure) => self.failure(door, &caller, &failure, &AnthropicContext, log),
        };
        (response, model)
    }

    /// A complete answer; a failure comes back with the request's context, to be written
    /// in the door's terms.
    async fn complete<D: ChatDoor>(
        &self,
        door: &D,
        caller: &Caller,
        (request, context): (ChatRequest, D::Context),
        log: &mut RequestLog,
        span: &Span,
    ) -> Result<Response<ResponseBody>, (ChatFailure, D::Context)> {
        let completion = match self.service.complete(caller, request).await {
            Ok(completion) => completion,
            Err(failure) => return Err((failure, context)),
        };
        let answer = &completion.response;
        trace::record_response(
            span,
            &completion.route.model_id,
            answer.stop_reason.as_str(),
            answer.usage.prompt_tokens(),
            answer.usage.output_tokens,
        );
        if self.capture_content {
            trace::record_output(span, answer.text.as_deref());
        }
        self.count_attempts(&completion.attempts, true);
        log.target(&self.models.get(&completion.route.public_name).label);
        log.answered(completion.response.usage, &completion.response.stop_reason);
        let body = door.completion_body(&completion, &context, self.clock.unix_seconds());
        let mut response = json_response(StatusCode::OK, body.into());
        self.name_target(&mut response, &completion.route);
        let headers = response.headers_mut();
        if let Some(state) = &completion.limit_state {
            insert_limit_headers(headers, state);
        }
        if let Some(cost) = &completion.cost {
            insert_cost_header(headers, cost);
        }
        Ok(response)
    }

    /// A streamed answer; a failure before its first event comes back with the request's
    /// context, to be written in the door's terms.
    async fn stream<D: ChatDoor>(
        &self,
        door: &D,
        caller: &Caller,
        (request, context): (ChatRequest, D::Context),
        slot: InFlight,
        log: &mut RequestLog,
        (span, request_span): (&Span, &Span),
    ) -> Result<Response<ResponseBody>, (ChatFailure, D::Context)> {
        let stream = match self.service.stream(caller, request).await {
            Ok(stream) => stream,
            Err(failure) => return Err((failure, context)),
        };
        self.count_attempts(&stream.attempts, true);
        let encoder = door.stream_encoder(&stream, context, self.clock.unix_seconds());
        let target = self.models.get(&stream.route.public_name);
        log.target(&target.label);
        let body = SseBody::new(
            stream.events,
            encoder,
            Arc::clone(&target.account),
            self.metrics.open_stream(),
            request_span.clone(),
        )
        .holding(slot)
        // The request's span ends when the stream does.
        .traced_by(span.clone(), &stream.route.model_id);
        let mut response = Response::new(ResponseBody::Sse(body));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // nginx would otherwise buffer the whole stream.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        if let Some(state) = &stream.limit_state {
            insert_limit_headers(headers, state);
        }
        self.name_target(&mut response, &stream.route);
        Ok(response)
    }

    /// `x-gateway-target`: the configured model that answered or was called last.
    fn name_target(&self, response: &mut Response<ResponseBody>, route: &Route) {
        if let Some(target) = &self.models.get(&route.public_name).target {
            response
                .headers_mut()
                .insert(GATEWAY_TARGET, target.clone());
        }
    }

    /// Counts what happened to the targets that did not answer. `answered`: a later target
    /// did; otherwise the last target called failed with the error the client gets, which
    /// is counted as that, not as a failover (targets skipped after it passed nothing on).
    fn count_attempts(&self, attempts: &[Attempt], answered: bool) {
        let passed_on = if answered {
            attempts.len()
        } else {
            attempts
                .iter()
                .rposition(|attempt| matches!(attempt.outcome, AttemptOutcome::Failed(_)))
                .unwrap_or(0)
        };
        for (index, attempt) in attempts.iter().enumerate() {
            let target = self.models.get(&attempt.target.public_name);
            match &attempt.outcome {
                AttemptOutcome::Skipped => self.metrics.circuit_skip(&target.label),
                AttemptOutcome::Failed(error) if index < passed_on => {
                    self.metrics.failover(&target.label, error);
                    tracing::warn!(
                        kind = error.kind(),
                        from = %target.label,
                        "upstream error; trying the next target"
                    );
                    // A span event on the request's span: where the failover happened.
                    tracing::info!(
                        target: trace::GEN_AI_TARGET,
                        kind = error.kind(),
                        from = %target.label,
                        "failover"
                    );
                }
                _ => {}
            }
        }
    }

    /// The answer to a request the service could not serve, naming the target called last
    /// and, for a limited key, where it stands.
    fn failure<D: ChatDoor>(
        &self,
        door: &D,
        caller: &Caller,
        failure: &ChatFailure,
        context: &D::Context,
        log: &mut RequestLog,
    ) -> Response<ResponseBody> {
        self.count_attempts(&failure.attempts, false);
        if let GatewayError::RateLimited { kind, .. } = &failure.error {
            let key = self.key_labels.get(caller.key_name.as_deref());
            self.metrics.limited(key, *kind);
            tracing::debug!(key = %key, kind = kind.as_str(), "request refused by a key's limit");
        }
        let last_tried = failure.last_tried();
        let account = last_tried.map_or("-", |route| route.account.as_str());
        let mut response = self.gateway_error(door, &failure.error, context, account);
        if let Some(route) = last_tried {
            log.target(&self.models.get(&route.public_name).label);
            self.name_target(&mut response, route);
        }
        if let Some(state) = &failure.limit_state {
            insert_limit_headers(response.headers_mut(), state);
        }
        response
    }

    /// The service served a request with these unsupported parameters: it dropped them.
    fn count_dropped<D: ChatDoor>(&self, door: &D, parameters: &[String]) {
        for parameter in parameters {
            if let Some(name) = door.dropped_parameter_label(parameter) {
                self.metrics.dropped_parameter(name);
            }
        }
    }

    fn gateway_error<D: ChatDoor>(
        &self,
        door: &D,
        error: &GatewayError,
        context: &D::Context,
        account: &str,
    ) -> Response<ResponseBody> {
        match error {
            // Refused by the adapter before any call: the client's error, not the upstream's.
            GatewayError::Provider(
                ProviderError::TurnOrder { .. } | ProviderError::Unsupported { .. },
            ) => {}
            GatewayError::Provider(provider) => {
                self.metrics.upstream_error(provider);
                tracing::warn!(kind = provider.kind(), account, "upstream error");
            }
            _ => {}
        }
        door_error(door, &door.gateway_error(error, context))
    }
}

/// Framing hyper lets through that another server on the path could read otherwise. hyper
/// itself refuses conflicting or non-numeric `Content-Length`s and a `Transfer-Encoding`
/// whose last coding is not `chunked`, and with both headers it drops `Content-Length` and
/// closes the connection after the answer (tests/limits.rs shows each). What is left is
/// refused here: a `Content-Length` that is not plain digits (hyper accepts the list
/// `5, 5`), and any `Transfer-Encoding` but one `chunked` (hyper accepts `gzip, chunked`
/// and `chunked, chunked`, and leaves the other codings undecoded).
fn ambiguous_framing(headers: &HeaderMap) -> bool {
    let (Ok(length), Ok(encoding)) = (
        at_most_one(headers, &CONTENT_LENGTH),
        at_most_one(headers, &TRANSFER_ENCODING),
    ) else {
        return true;
    };
    match (length, encoding) {
        (Some(_), Some(_)) => true,
        (Some(length), None) => {
            length.is_empty() || !length.as_bytes().iter().all(u8::is_ascii_digit)
        }
        (None, Some(encoding)) => !encoding.as_bytes().eq_ignore_ascii_case(b"chunked"),
        (None, None) => false,
    }
}

/// The value of `name`, if any; `Err` when the head carries it twice or more.
fn at_most_one<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a HeaderValue>, ()> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (one, None) => Ok(one),
        _ => Err(()),
    }
}

/// `response`, asking an HTTP/1 client to close the connection after it (which hyper then
/// does). HTTP/2 has no such header, and needs none: its frames cannot be misread.
fn closing(mut response: Response<ResponseBody>, version: Version) -> Response<ResponseBody> {
    if version < Version::HTTP_2 {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The declared body length, plain digits already (see [`ambiguous_framing`]).
fn content_length(parts: &Parts) -> Result<Option<u64>, ApiError> {
    parts
        .headers
        .get(CONTENT_LENGTH)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(ApiError::body_unreadable)
        })
        .transpose()
}

fn json_response(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    body_response(status, JSON, body)
}

/// A whole body of `content_type`.
pub(crate) fn body_response(
    status: StatusCode,
    content_type: HeaderValue,
    body: Bytes,
) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

/// `error` in OpenAI's shape, for the endpoints outside the chat doors.
pub(crate) fn error_response(error: &ApiError) -> Response<ResponseBody> {
    shaped_error(error, error.to_json())
}

/// `error` in `door`'s shape.
fn door_error<D: ChatDoor>(door: &D, error: &ApiError) -> Response<ResponseBody> {
    shaped_error(error, door.error_body(error))
}

fn shaped_error(error: &ApiError, body: Vec<u8>) -> Response<ResponseBody> {
    let mut response = json_response(error.status, body.into());
    // For the request's log line and metrics.
    response.extensions_mut().insert(ErrorType(error.code));
    if let Some(seconds) = error.retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
