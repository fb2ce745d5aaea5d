//! [`BedrockProvider`]: the [`ChatProvider`] port over Converse and ConverseStream.
//!
//! Everything that does not depend on the request is prepared once per account in
//! [`BedrockProvider::new`]: the HTTP clients and their pools, the credential source, the base
//! URL and the `Host` value the signature covers, the timeouts of the account and of each of
//! its models, its retry quota. Per request: build the body, then per attempt sign, send, and
//! map the answer or the error.
//!
//! A failed attempt is retried in AWS's standard retry mode ([`crate::retry`]), re-signed,
//! within the account's `max_attempts`, its retry quota and the route's total time limit. A
//! stream is retried only until its first event: the provider reads that event before handing
//! the stream over, so a failure before it (an error answer, a timeout, an exception frame
//! first) can still be retried and nothing of a failed attempt ever reaches the client.
//!
//! Two corrections are not retries and cost no attempt: credentials that Bedrock reports
//! expired although the cache thought them fresh are invalidated and the request is signed
//! again with fresh ones, once; a bare model id that Bedrock serves only through an inference
//! profile is sent once more with the route's geographic profile, which the route then keeps
//! ([`crate::inference_profile`]); for ConverseStream too, since that refusal is the HTTP
//! answer, before any event.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use gateway_core::clock::SharedClock;
use gateway_core::{
    ChatEventStream, ChatProvider, ChatResponse, EmbeddingProvider, EmbeddingRequest,
    EmbeddingResponse, GuardrailCheckOutcome, GuardrailChecker, GuardrailConfig, GuardrailSource,
    ProviderError, ProviderRequest, Route,
};
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use thiserror::Error;
use tokio::time::Instant;
use tracing::Instrument;

use crate::apply_guardrail::{
    apply_guardrail_body, apply_guardrail_path, parse_apply_guardrail_response,
};
use crate::client::{build_client, HttpClient};
use crate::config::{BedrockAccountConfig, Endpoint, TimeoutOverrides, Timeouts};
use crate::converse_request::{converse_body_and_forced_tool, Operation};
use crate::converse_response::parse_converse_response;
use crate::credentials::{AccountCredentials, CredentialsError, RequestAuth};
use crate::embeddings::{
    invoke_bodies, parse_invoke_answer, texts_per_body, EmbeddingModel, InvokeAnswer,
};
use crate::errors::BedrockErrorResponse;
use crate::inference_profile::{profile_geography, profile_id, RememberedProfiles};
use crate::retry::{AccountRetries, Granted, Jitter, RetryReason, RetryStats};
use crate::signing::Signer;
use crate::wire::CountTokensResponse;

/// The largest Converse response read into memory; a hostile or broken upstream must not
/// be able to exhaust it.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The largest error body read; Bedrock's are a few hundred bytes.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// The largest CountTokens answer read; it holds one number.
const MAX_COUNT_TOKENS_BODY_BYTES: usize = 64 * 1024;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("application/vnd.amazon.eventstream");

/// A URI label: every byte outside the unreserved set is percent-encoded, so `:` becomes
/// `%3A` and an ARN's `/` becomes `%2F`.
pub(crate) const LABEL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why the provider could not be built from configuration.
#[derive(Debug, Error)]
pub enum BuildError {
    #[error("Bedrock account `{0}` is configured twice")]
    DuplicateAccount(String),
    #[error("account `{account}`: region `{region}` does not make a valid Bedrock URL")]
    InvalidRegion { account: String, region: String },
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

/// The Bedrock Runtime adapter. Cheap to clone: clones share clients, credentials and retry
/// quotas.
#[derive(Clone)]
pub struct BedrockProvider {
    accounts: Arc<HashMap<String, Arc<Account>>>,
    signer: Signer,
    /// The limits accounts and models inherit where they set none.
    timeouts: Timeouts,
    /// Shared by every clone, so a route switches (and logs it) once per process.
    profiles: Arc<RememberedProfiles>,
    jitter: Arc<Jitter>,
}

impl fmt::Debug for BedrockProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut accounts: Vec<_> = self.accounts.values().collect();
        accounts.sort_by(|a, b| a.name.cmp(&b.name));
        f.debug_struct("BedrockProvider")
            .field("accounts", &accounts)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

/// One account, prepared once.
#[derive(Clone)]
struct Account {
    name: Arc<str>,
    region: String,
    endpoint: Target,
    credentials: AccountCredentials,
    /// Shared by every clone of the provider: the quota is the account's.
    retries: Arc<AccountRetries>,
    /// As configured, to resolve again when the provider's defaults or clients change.
    overrides: TimeoutOverrides,
    model_overrides: Arc<BTreeMap<String, TimeoutOverrides>>,
    /// The account's limits and client, for models without limits of their own.
    settings: CallSettings,
    /// By model name, for models with limits of their own.
    model_settings: HashMap<Box<str>, CallSettings>,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The credentials' own Debug shows no secret; the client has nothing to show.
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials)
            .field("timeouts", &self.settings.timeouts)
            .finish_non_exhaustive()
    }
}

/// How calls of one route go out: the limits that apply and a client whose connect timeout
/// is theirs.
#[derive(Clone)]
struct CallSettings {
    timeouts: Timeouts,
    client: HttpClient,
}

impl Account {
    /// The account with new clients, its limits resolved over `defaults` again.
    fn with_new_clients(&self, defaults: Timeouts) -> Self {
        let (settings, model_settings) =
            resolve_settings(&self.overrides, &self.model_overrides, defaults);
        Self {
            settings,
            model_settings,
            ..self.clone()
        }
    }

    /// The settings of `route`, one of this account's: its model's own, else the account's.
    /// The model's name is the route's public name after `<account>/` (core's naming).
    fn settings_for(&self, route: &Route) -> &CallSettings {
        if self.model_settings.is_empty() {
            return &self.settings;
        }
        route
            .public_name
            .strip_prefix(&*self.name)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|model| self.model_settings.get(model))
            .unwrap_or(&self.settings)
    }
}

/// The settings of an account and of each model with limits of its own, over `defaults`,
/// with new clients: one per distinct connect timeout (a pool each), shared by the routes
/// that have it.
fn resolve_settings(
    account: &TimeoutOverrides,
    models: &BTreeMap<String, TimeoutOverrides>,
    defaults: Timeouts,
) -> (CallSettings, HashMap<Box<str>, CallSettings>) {
    let mut clients: Vec<(Duration, HttpClient)> = Vec::new();
    let mut settings_for = |timeouts: Timeouts| {
        let client = match clients
            .iter()
            .find(|(connect, _)| *connect == timeouts.connect)
        {
            Some((_, client)) => client.clone(),
            None => {
                let client = build_client(timeouts.connect);
                clients.push((timeouts.connect, client.clone()));
                client
            }
        };
        CallSettings { timeouts, client }
    };
    let account_timeouts = account.apply_to(defaults);
    let settings = settings_for(account_timeouts);
    let model_settings = models
        .iter()
        .map(|(model, overrides)| {
            let timeouts = overrides.apply_to(account_timeouts);
            (Box::from(model.as_str()), settings_for(timeouts))
        })
        .collect();
    (settings, model_settings)
}

/// Where an account's requests go.
#[derive(Debug, Clone)]
struct Target {
    /// Scheme, authority and any path prefix, without a trailing `/`.
    base: String,
    /// The `Host` value the signature covers.
    host: String,
    /// True for a configured override, which serves every region.
    overridden: bool,
}

impl Target {
    fn regional(region: &str) -> Option<Self> {
        let host = format!("bedrock-runtime.{region}.amazonaws.com");
        let base = format!("https://{host}");
        // A region that does not make a valid authority is refused here, not per request.
        let uri: Uri = base.parse().ok()?;
        (uri.host() == Some(host.as_str())).then_some(Self {
            base,
            host,
            overridden: false,
        })
    }

    fn custom(endpoint: &Endpoint) -> Self {
        Self {
            base: endpoint.base().to_owned(),
            host: endpoint.host().to_owned(),
            overridden: true,
        }
    }
}

/// The path of `operation` on `model_id`: `/model/{percent-encoded id}/converse[-stream]`.
#[cfg(any(test, feature = "test-util"))]
pub fn model_path(model_id: &str, operation: Operation) -> String {
    let mut path = String::with_capacity(model_id.len() + 32);
    push_model_path(&mut path, model_id, operation);
    path
}

/// Appends the path of `operation` on `model_id` (`/model/{percent-encoded id}/{operation}`)
/// to `out`, with no intermediate string.
fn push_model_path(out: &mut String, model_id: &str, operation: Operation) {
    out.push_str("/model/");
    out.extend(utf8_percent_encode(model_id, LABEL));
    out.push('/');
    out.push_str(operation.path_suffix());
}

/// The target of the spans the trace exporter takes (the same as adapter-http's).
const GEN_AI_TARGET: &str = "gen_ai";

/// The CLIENT span of one call to Bedrock (every attempt of it), under the request's span,
/// named as the OpenTelemetry GenAI conventions name a model call.
fn call_span(model_id: &str, operation: Operation) -> tracing::Span {
    let name = operation.gen_ai_operation();
    tracing::info_span!(
        target: GEN_AI_TARGET,
        "call",
        otel.name = format!("{name} {model_id}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        gen_ai.operation.name = name,
        gen_ai.provider.name = "aws.bedrock",
        gen_ai.system = "aws.bedrock",
        gen_ai.request.model = model_id,
        server.address = tracing::field::Empty,
        server.port = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// `host` is the `Host` header: a name, with a port when it is not the scheme's.
fn record_server(span: &tracing::Span, host: &str) {
    match host.rsplit_once(':') {
        Some((address, port)) => match port.parse::<u16>() {
            Ok(port) => {
                span.record("server.address", address);
                // As i64: the `tracing` bridge records unsigned fields as text.
                span.record("server.port", i64::from(port));
            }
            Err(_) => {
                span.record("server.address", host);
            }
        },
        None => {
            span.record("server.address", host);
        }
    }
}

/// The URL of `operation` on `model_id` at `endpoint`.
fn model_url(endpoint: &Target, model_id: &str, operation: Operation) -> String {
    let mut url = String::with_capacity(endpoint.base.len() + model_id.len() + 32);
    url.push_str(&endpoint.base);
    push_model_path(&mut url, model_id, operation);
    url
}

/// The unsigned request for `operation`, as [`post_json`] makes it: `POST url` with
/// `content-type: application/json` and the `accept` the operation answers with (for the
/// tests, which sign it themselves).
#[cfg(feature = "test-util")]
pub fn unsigned_request(
    url: &str,
    operation: Operation,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, http::Error> {
    post_json(url, accept(operation), body)
}

/// What `operation` answers with.
fn accept(operation: Operation) -> HeaderValue {
    match operation {
        Operation::Converse | Operation::CountTokens | Operation::InvokeModel => JSON,
        Operation::ConverseStream => EVENT_STREAM,
    }
}

/// `POST url` with a JSON body, accepting `accept` (unsigned, see [`crate::signing`]).
fn post_json(
    url: &str,
    accept: HeaderValue,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, http::Error> {
    Request::post(url)
        .header(CONTENT_TYPE, JSON)
        .header(ACCEPT, accept)
        .body(Full::new(body))
}

impl BedrockProvider {
    /// Builds one HTTP client and one credential source per account (and a client more per
    /// other connect timeout its models set). No network call.
    pub async fn new(
        accounts: Vec<BedrockAccountConfig>,
        clock: SharedClock,
    ) -> Result<Self, BuildError> {
        let timeouts = Timeouts::default();
        let mut prepared = HashMap::with_capacity(accounts.len());
        for config in accounts {
            if prepared.contains_key(&config.name) {
                return Err(BuildError::DuplicateAccount(config.name));
            }
            let endpoint = match &config.endpoint {
                Some(endpoint) => Target::custom(endpoint),
                None => Target::regional(config.region.as_str()).ok_or_else(|| {
                    BuildError::InvalidRegion {
                        account: config.name.clone(),
                        region: config.region.to_string(),
                    }
                })?,
            };
            let credentials =
                AccountCredentials::from_config(&config.name, &config.auth, config.region.as_str())
                    .await?;
            let (settings, model_settings) =
                resolve_settings(&config.timeouts, &config.model_timeouts, timeouts);
            let account = Account {
                name: Arc::from(config.name.as_str()),
                region: config.region.to_string(),
                endpoint,
                credentials,
                retries: Arc::new(AccountRetries::new(config.retry.max_attempts.get())),
                overrides: config.timeouts,
                model_overrides: Arc::new(config.model_timeouts),
                settings,
                model_settings,
            };
            prepared.insert(config.name, Arc::new(account));
        }
        Ok(Self {
            accounts: Arc::new(prepared),
            signer: Signer::new(clock),
            timeouts,
            profiles: Arc::default(),
            jitter: Arc::new(Jitter::random()),
        })
    }

    /// Replaces the defaults that accounts and models inherit (the limits they set stay
    /// theirs). Clients are rebuilt, so call this at start-up, before requests are made.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self.accounts = Arc::new(self.accounts_with_new_clients());
        self
    }

    /// Draws the retries' backoff jitter from a generator seeded with `seed`, so the waits
    /// are the same on every run (tests).
    pub fn with_retry_jitter_seed(mut self, seed: u64) -> Self {
        self.jitter = Arc::new(Jitter::seeded(seed));
        self
    }

    /// A provider with the same accounts, credentials and retry quotas but new HTTP clients
    /// (so new connection pools) and its own signing-key cache. A server that runs one
    /// single-threaded runtime per core gives each its own: a pooled connection's I/O is
    /// driven by the runtime that opened it, so a shared pool would wake other cores for
    /// every response. The credential caches stay shared, so each account still fetches once
    /// for the whole process.
    pub fn with_own_clients(&self) -> Self {
        Self {
            accounts: Arc::new(self.accounts_with_new_clients()),
            signer: self.signer.with_own_key_cache(),
            timeouts: self.timeouts,
            profiles: Arc::clone(&self.profiles),
            jitter: Arc::clone(&self.jitter),
        }
    }

    fn accounts_with_new_clients(&self) -> HashMap<String, Arc<Account>> {
        self.accounts
            .iter()
            .map(|(name, account)| {
                (
                    name.clone(),
                    Arc::new(account.with_new_clients(self.timeouts)),
                )
            })
            .collect()
    }

    /// The defaults accounts and models inherit.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Every account's credentials, sorted by account name: the caches its requests use, so
    /// asking them (see [`AccountCredentials::probe`]) checks, and warms, what the next
    /// request gets, without calling Bedrock.
    pub fn account_credentials(&self) -> Vec<AccountCredentials> {
        let mut credentials: Vec<_> = self
            .accounts
            .values()
            .map(|account| account.credentials.clone())
            .collect();
        credentials.sort_by(|a, b| a.account().cmp(b.account()));
        credentials
    }

    /// The retry counts of every account, live: read them when metrics are scraped.
    pub fn retry_stats(&self) -> RetryStats {
        RetryStats::new(
            self.accounts
                .values()
                .map(|account| (Arc::clone(&account.name), Arc::clone(&account.retries)))
                .collect(),
        )
    }

    fn account(&self, name: &str) -> Result<&Arc<Account>, ProviderError> {
        self.accounts
            .get(name)
            .ok_or_else(|| ProviderError::NotFound {
                message: format!("no Bedrock account named `{name}` is configured"),
            })
    }

    /// Calls `operation` until an attempt answers or no retry is left, within the route's
    /// total limit. `read` takes a successful response to the answer: the whole body, or a
    /// stream's first event.
    async fn call<T, R, Fut>(
        &self,
        route: &Route,
        operation: Operation,
        body: impl FnOnce() -> Result<Body, ProviderError>,
        read: R,
    ) -> Result<T, ProviderError>
    where
        R: FnMut(Arc<str>, Response<Incoming>, Timeouts, Option<&'static str>) -> Fut,
        Fut: Future<Output = Result<T, Failure<T>>>,
    {
        let account = self.account(&route.account)?;
        let settings = account.settings_for(route);
        let total = settings.timeouts.total;
        // A limit too far away to be a point in time is no limit.
        let deadline = total.and_then(|total| Instant::now().checked_add(total));
        let span = call_span(&route.model_id, operation);
        let attempts = self
            .attempts(account, settings, route, operation, body, deadline, read)
            .instrument(span.clone());
        let outcome = match (total, deadline) {
            (Some(total), Some(deadline)) => {
                match tokio::time::timeout_at(deadline, attempts).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(ProviderError::Timeout {
                        message: format!(
                            "Bedrock did not answer within the total limit of {} ms (account `{}`)",
                            total.as_millis(),
                            account.name
                        ),
                    }),
                }
            }
            _ => attempts.await,
        };
        if let Err(error) = &outcome {
            span.record("error.type", error.kind());
            span.record("otel.status_code", "ERROR");
        }
        outcome
    }

    /// [`Self::call`]'s attempts, the corrections between them included.
    #[allow(clippy::too_many_arguments)]
    async fn attempts<T, R, Fut>(
        &self,
        account: &Account,
        settings: &CallSettings,
        route: &Route,
        operation: Operation,
        body: impl FnOnce() -> Result<Body, ProviderError>,
        deadline: Option<Instant>,
        mut read: R,
    ) -> Result<T, ProviderError>
    where
        R: FnMut(Arc<str>, Response<Incoming>, Timeouts, Option<&'static str>) -> Fut,
        Fut: Future<Output = Result<T, Failure<T>>>,
    {
        let (body, unwrap_tool) = body()?;
        let body = Bytes::from(body);
        let regional;
        let endpoint = if account.endpoint.overridden || route.region == account.region {
            &account.endpoint
        } else {
            regional = Target::regional(&route.region).ok_or_else(|| ProviderError::NotFound {
                message: format!(
                    "region `{}` does not make a valid Bedrock URL",
                    route.region
                ),
            })?;
            &regional
        };
        record_server(&tracing::Span::current(), &endpoint.host);
        // Only a bare model id in a region with profiles can switch; others skip the map.
        let geography = profile_geography(&route.model_id, &route.region);
        let remembered = geography.and_then(|_| self.profiles.get(&route.public_name));
        let mut url = model_url(
            endpoint,
            remembered.as_deref().unwrap_or(&route.model_id),
            operation,
        );
        // The profile this request switched to, remembered once it answers.
        let mut switched: Option<Arc<str>> = None;

        let mut auth = account.credentials.get().await?;
        let mut refreshed = false;
        let mut attempt = 1;
        let mut last_retry: Option<Granted> = None;
        loop {
            let exchange = Exchange {
                account,
                settings,
                endpoint,
                region: &route.region,
                url: &url,
                accept: accept(operation),
            };
            let failure = match self.send_once(&exchange, &auth, body.clone()).await {
                Err(failure) => failure,
                Ok(response) if response.status().is_success() => {
                    if let Some(profile) = switched.take() {
                        if self.profiles.remember(&route.public_name, &profile) {
                            tracing::info!(
                                route = %route.public_name,
                                %profile,
                                "Bedrock serves this model only through an inference profile; \
                                 the route uses it from now on"
                            );
                        }
                    }
                    match read(
                        Arc::clone(&account.name),
                        response,
                        settings.timeouts,
                        unwrap_tool,
                    )
                    .await
                    {
                        Ok(answer) => {
                            account.retries.answered(last_retry);
                            return Ok(answer);
                        }
                        Err(failure) => failure,
                    }
                }
                Ok(response) => {
                    let (parts, incoming) = response.into_parts();
                    // An unreadable error body still leaves the status to go by.
                    let error_body = read_body(
                        incoming,
                        &parts.headers,
                        MAX_ERROR_BODY_BYTES,
                        settings.timeouts.idle_stream,
                    )
                    .await
                    .unwrap_or_default();
                    let error =
                        BedrockErrorResponse::parse(parts.status, &parts.headers, &error_body);
                    if !refreshed
                        && error.is_expired_token()
                        && account.credentials.invalidate(&auth)
                    {
                        tracing::debug!(
                            account = %account.name,
                            "Bedrock reported expired credentials; refreshing and retrying once"
                        );
                        refreshed = true;
                        auth = account.credentials.get().await?;
                        continue;
                    }
                    if let Some(geography) =
                        geography.filter(|_| remembered.is_none() && switched.is_none())
                    {
                        if error.is_on_demand_unsupported() {
                            let profile = profile_id(geography, &route.model_id);
                            tracing::debug!(
                                route = %route.public_name,
                                %profile,
                                "on-demand throughput refused; retrying once with the inference profile"
                            );
                            url = model_url(endpoint, &profile, operation);
                            switched = Some(profile);
                            continue;
                        }
                    }
                    let retry = error.retry_reason();
                    Failure::new(error.into_provider_error(&account.name), retry)
                }
            };
            let granted = failure.retry.and_then(|reason| {
                account
                    .retries
                    .grant(attempt, reason, &self.jitter, deadline)
                    .map(|granted| (reason, granted))
            });
            let Some((reason, granted)) = granted else {
                return failure.give_up();
            };
            tracing::debug!(
                account = %account.name,
                route = %route.public_name,
                attempt,
                reason = reason.as_str(),
                delay_ms = granted.delay.as_millis() as u64,
                error = %failure.error,
                "Bedrock call failed; retrying"
            );
            // A span event on the Bedrock call's span.
            tracing::info!(
                target: GEN_AI_TARGET,
                attempt = i64::from(attempt),
                reason = reason.as_str(),
                delay_ms = i64::try_from(granted.delay.as_millis()).unwrap_or(i64::MAX),
                "retry"
            );
            tokio::time::sleep(granted.delay).await;
            attempt += 1;
            last_retry = Some(granted);
            // The wait may have outlived the credentials; the cache knows.
            auth = account.credentials.get().await?;
        }
    }

    /// One signed request, freshly signed: its date is the clock's now.
    async fn send_once<T>(
        &self,
        exchange: &Exchange<'_>,
        auth: &RequestAuth,
        body: Bytes,
    ) -> Result<Response<Incoming>, Failure<T>> {
        let Exchange {
            account,
            settings,
            endpoint,
            region,
            url,
            ref accept,
        } = *exchange;
        let mut request = post_json(url, accept.clone(), body.clone()).map_err(|_| {
            Failure::new(
                ProviderError::InvalidRequest {
                    message: "the model id does not make a valid Bedrock URL".into(),
                },
                None,
            )
        })?;
        self.signer
            .authorize(auth, region, &endpoint.host, &mut request, &body)
            .map_err(|error| {
                Failure::new(
                    ProviderError::Credentials {
                        account: account.name.to_string(),
                        message: error.to_string(),
                    },
                    None,
                )
            })?;
        let first_byte = settings.timeouts.first_byte;
        match tokio::time::timeout(first_byte, settings.client.request(request)).await {
            Err(_) => Err(Failure::new(
                ProviderError::Timeout {
                    message: format!(
                        "Bedrock at {} did not answer within {} ms (account `{}`)",
                        endpoint.host,
                        first_byte.as_millis(),
                        account.name
                    ),
                },
                Some(RetryReason::Timeout),
            )),
            Ok(Err(error)) => Err(request_error(&account.name, &endpoint.host, &error)),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// A request body, and the tool whose call the response side unwraps (Converse only).
type Body = (Vec<u8>, Option<&'static str>);

/// Where one attempt goes, fixed for all of a call's attempts but the URL.
#[derive(Clone)]
struct Exchange<'a> {
    account: &'a Account,
    settings: &'a CallSettings,
    endpoint: &'a Target,
    region: &'a str,
    url: &'a str,
    accept: HeaderValue,
}

/// An attempt that gave no answer.
struct Failure<T> {
    error: ProviderError,
    /// Why another attempt may not fail alike; `None`: it would.
    retry: Option<RetryReason>,
    /// What the caller gets in place of `error` when no attempt follows: a stream whose
    /// first event failed is handed over yielding that error, as a later one would be.
    instead: Option<T>,
}

impl<T> Failure<T> {
    fn new(error: ProviderError, retry: Option<RetryReason>) -> Self {
        Self {
            error,
            retry,
            instead: None,
        }
    }

    fn give_up(self) -> Result<T, ProviderError> {
        self.instead.ok_or(self.error)
    }
}

#[async_trait]
impl ChatProvider for BedrockProvider {
    async fn complete<'a>(
        &self,
        request: ProviderRequest<'a>,
    ) -> Result<ChatResponse, ProviderError> {
        self.call(
            request.route,
            Operation::Converse,
            || converse_body_and_forced_tool(request, Operation::Converse),
            |_account, response, timeouts, unwrap_tool| async move {
                let (parts, incoming) = response.into_parts();
                let body = read_body(
                    incoming,
                    &parts.headers,
                    MAX_RESPONSE_BYTES,
                    timeouts.idle_stream,
                )
                .await
                .map_err(BodyError::into_failure)?;
                parse_converse_response(&body, unwrap_tool)
                    .map_err(|error| Failure::new(error, None))
            },
        )
        .await
    }

    async fn stream<'a>(
        &self,
        request: ProviderRequest<'a>,
    ) -> Result<ChatEventStream, ProviderError> {
        self.call(
            request.route,
            Operation::ConverseStream,
            || converse_body_and_forced_tool(request, Operation::ConverseStream),
            |account, response, timeouts, unwrap_tool| async move {
                let mut events = crate::stream_events::chat_events(
                    account,
                    response.into_body(),
                    timeouts.idle_stream,
                    unwrap_tool,
                );
                // The call's span (this runs inside it) lasts until the stream ends, so its
                // duration is the whole answer's and a mid-stream failure is named on it.
                let span = tracing::Span::current();
                match events.next().await {
                    Some(Ok(first)) => {
                        let first = futures_util::stream::iter([Ok(first)]);
                        Ok(Box::pin(InSpan {
                            events: Box::pin(first.chain(events)),
                            span,
                        }) as ChatEventStream)
                    }
                    Some(Err(error)) => {
                        let retry = events.retry_reason();
                        let instead: ChatEventStream =
                            Box::pin(futures_util::stream::iter([Err(error.clone())]));
                        Err(Failure {
                            error,
                            retry,
                            instead: Some(instead),
                        })
                    }
                    None => Ok(Box::pin(events) as ChatEventStream),
                }
            },
        )
        .await
    }

    async fn count_tokens<'a>(&self, request: ProviderRequest<'a>) -> Result<u64, ProviderError> {
        self.call(
            request.route,
            Operation::CountTokens,
            || converse_body_and_forced_tool(request, Operation::CountTokens),
            |_account, response, timeouts, _unwrap_tool| async move {
                let (parts, incoming) = response.into_parts();
                let body = read_body(
                    incoming,
                    &parts.headers,
                    MAX_COUNT_TOKENS_BODY_BYTES,
                    timeouts.idle_stream,
                )
                .await
                .map_err(BodyError::into_failure)?;
                serde_json::from_slice::<CountTokensResponse>(&body)
                    .map(|answer| answer.input_tokens)
                    .map_err(|error| {
                        Failure::new(
                            ProviderError::Protocol {
                                message: format!(
                                    "Bedrock's CountTokens answer is not valid: {error}"
                                ),
                            },
                            None,
                        )
                    })
            },
        )
        .await
    }
}

/// ApplyGuardrail on the account's endpoint, within the account's limits. Retried like a
/// Converse call: AWS's standard mode within `max_attempts`, the retry quota and the total
/// limit, and once more, not counted, when Bedrock reports credentials expired that the
/// cache thought fresh. (No inference profiles: guardrails are not models.)
#[async_trait]
impl GuardrailChecker for BedrockProvider {
    async fn apply(
        &self,
        account: &str,
        guardrail: &GuardrailConfig,
        source: GuardrailSource,
        content: &[String],
    ) -> Result<GuardrailCheckOutcome, ProviderError> {
        let account = self.account(account)?;
        let settings = &account.settings;
        let url = format!(
            "{}{}",
            account.endpoint.base,
            apply_guardrail_path(&guardrail.identifier, &guardrail.version)
        );
        let exchange = Exchange {
            account,
            settings,
            endpoint: &account.endpoint,
            region: &account.region,
            url: &url,
            accept: JSON,
        };
        let body = Bytes::from(apply_guardrail_body(source, content));
        let total = settings.timeouts.total;
        let deadline = total.and_then(|total| Instant::now().checked_add(total));
        let span = tracing::info_span!(
            target: GEN_AI_TARGET,
            "apply_guardrail",
            otel.name = format!("apply_guardrail {}", guardrail.identifier),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            gen_ai.provider.name = "aws.bedrock",
            error.type = tracing::field::Empty,
        );
        record_server(&span, &account.endpoint.host);
        let attempts = self
            .guardrail_attempts(&exchange, body, deadline)
            .instrument(span.clone());
        let outcome = match (total, deadline) {
            (Some(total), Some(deadline)) => tokio::time::timeout_at(deadline, attempts)
                .await
                .unwrap_or_else(|_| {
                    Err(ProviderError::Timeout {
                        message: format!(
                            "Bedrock did not apply the guardrail within the total limit of {} ms (account `{}`)",
                            total.as_millis(),
                            account.name
                        ),
                    })
                }),
            _ => attempts.await,
        };
        if let Err(error) = &outcome {
            span.record("error.type", error.kind());
            span.record("otel.status_code", "ERROR");
        }
        outcome
    }
}

impl BedrockProvider {
    /// [`GuardrailChecker::apply`]'s attempts.
    async fn guardrail_attempts(
        &self,
        exchange: &Exchange<'_>,
        body: Bytes,
        deadline: Option<Instant>,
    ) -> Result<GuardrailCheckOutcome, ProviderError> {
        let account = exchange.account;
        let idle = exchange.settings.timeouts.idle_stream;
        let mut auth = account.credentials.get().await?;
        let mut refreshed = false;
        let mut attempt = 1;
        let mut last_retry: Option<Granted> = None;
        loop {
            let failure: Failure<GuardrailCheckOutcome> =
                match self.send_once(exchange, &auth, body.clone()).await {
                    Err(failure) => failure,
                    Ok(response) if response.status().is_success() => {
                        let (parts, incoming) = response.into_parts();
                        match read_body(incoming, &parts.headers, MAX_RESPONSE_BYTES, idle).await {
                            Ok(body) => {
                                account.retries.answered(last_retry);
                                return parse_apply_guardrail_response(&body);
                            }
                            Err(error) => error.into_failure(),
                        }
                    }
                    Ok(response) => {
                        let (parts, incoming) = response.into_parts();
                        let error_body =
                            read_body(incoming, &parts.headers, MAX_ERROR_BODY_BYTES, idle)
                                .await
                                .unwrap_or_default();
                        let error =
                            BedrockErrorResponse::parse(parts.status, &parts.headers, &error_body);
                        if !refreshed
                            && error.is_expired_token()
                            && account.credentials.invalidate(&auth)
                        {
                            refreshed = true;
                            auth = account.credentials.get().await?;
                            continue;
                        }
                        let retry = error.retry_reason();
                        Failure::new(error.into_provider_error(&account.name), retry)
                    }
                };
            let Some(granted) = failure.retry.and_then(|reason| {
                account
                    .retries
                    .grant(attempt, reason, &self.jitter, deadline)
            }) else {
                return failure.give_up();
            };
            tracing::debug!(
                account = %account.name,
                attempt,
                delay_ms = granted.delay.as_millis() as u64,
                error = %failure.error,
                "ApplyGuardrail failed; retrying"
            );
            tokio::time::sleep(granted.delay).await;
            attempt += 1;
            last_retry = Some(granted);
            auth = account.credentials.get().await?;
        }
    }
}

/// A batch Titan embeds one text per call: at most this many of a request's calls are in
/// flight at once (in input order), so one large batch cannot take an account's whole
/// connection pool or throttling budget.
const CONCURRENT_EMBEDDING_CALLS: usize = 4;

/// The input tokens InvokeModel counted, on every answer.
const INPUT_TOKEN_COUNT: &str = "x-amzn-bedrock-input-token-count";

#[async_trait]
impl EmbeddingProvider for BedrockProvider {
    /// One InvokeModel call per body of [`invoke_bodies`] (each with its own retries), a
    /// few at a time; the first failure ends the request and cancels the rest.
    async fn embed(
        &self,
        route: &Route,
        request: &EmbeddingRequest,
    ) -> Result<EmbeddingResponse, ProviderError> {
        let model = EmbeddingModel::of(route)?;
        let bodies = invoke_bodies(model, request)?;
        let calls = bodies
            .into_iter()
            .zip(texts_per_body(model, request.inputs.len()))
            .map(|(body, texts)| self.invoke_embedding(route, model, body, texts));
        let mut answers = futures_util::stream::iter(calls).buffered(CONCURRENT_EMBEDDING_CALLS);
        let mut response = EmbeddingResponse {
            vectors: Vec::with_capacity(request.inputs.len()),
            input_tokens: 0,
        };
        while let Some(answer) = answers.next().await {
            let answer = answer?;
            response.vectors.extend(answer.vectors);
            response.input_tokens = response.input_tokens.saturating_add(answer.input_tokens);
        }
        Ok(response)
    }
}

impl BedrockProvider {
    /// One InvokeModel call with `body`, which holds `texts` texts.
    async fn invoke_embedding(
        &self,
        route: &Route,
        model: EmbeddingModel,
        body: Vec<u8>,
        texts: usize,
    ) -> Result<InvokeAnswer, ProviderError> {
        self.call(
            route,
            Operation::InvokeModel,
            move || Ok((body, None)),
            move |_account, response, timeouts, _| async move {
                let (parts, incoming) = response.into_parts();
                let header_tokens = parts
                    .headers
                    .get(INPUT_TOKEN_COUNT)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.trim().parse::<u64>().ok());
                let body = read_body(
                    incoming,
                    &parts.headers,
                    MAX_RESPONSE_BYTES,
                    timeouts.idle_stream,
                )
                .await
                .map_err(BodyError::into_failure)?;
                parse_invoke_answer(model, &body, texts, header_tokens)
                    .map_err(|error| Failure::new(error, None))
            },
        )
        .await
    }
}

/// A stream that keeps the Bedrock call's span open until it ends (or is dropped), naming
/// the first error it carries on the span.
struct InSpan {
    events: ChatEventStream,
    span: tracing::Span,
}

impl futures_core::Stream for InSpan {
    type Item = <ChatEventStream as futures_core::Stream>::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = self.events.as_mut().poll_next(cx);
        if let std::task::Poll::Ready(Some(Err(error))) = &polled {
            self.span.record("error.type", error.kind());
            self.span.record("otel.status_code", "ERROR");
        }
        polled
    }
}

/// A failure of the HTTP exchange itself (no Bedrock answer to map). Retried unless the far
/// side answered something that is not HTTP, which it would do again.
fn request_error<T>(
    account: &str,
    host: &str,
    error: &hyper_util::client::legacy::Error,
) -> Failure<T> {
    let cause = error_chain(error);
    if error.is_connect() {
        let error = ProviderError::Unavailable {
            message: format!(
                "could not connect to Bedrock at {host} for account `{account}`: {cause}"
            ),
        };
        return Failure::new(error, Some(RetryReason::Connection));
    }
    let parse_failure = std::iter::successors(
        std::error::Error::source(error),
        |e: &&(dyn std::error::Error + 'static)| e.source(),
    )
    .filter_map(|e| e.downcast_ref::<hyper::Error>())
    .any(hyper::Error::is_parse);
    if parse_failure {
        let error = ProviderError::Protocol {
            message: format!("Bedrock at {host} answered something that is not HTTP: {cause}"),
        };
        return Failure::new(error, None);
    }
    let error = ProviderError::Upstream {
        message: format!("the request to Bedrock at {host} failed: {cause}"),
    };
    Failure::new(error, Some(RetryReason::Connection))
}

/// The error's sources, innermost last; HTTP and I/O errors carry no credentials.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[derive(Debug)]
enum BodyError {
    TooLarge { limit: usize },
    Idle { after: Duration },
    Broken(String),
}

impl BodyError {
    /// A body cut off or gone silent may come whole on another attempt; one too large would
    /// not.
    fn into_failure<T>(self) -> Failure<T> {
        let retry = match self {
            Self::TooLarge { .. } => None,
            Self::Idle { .. } => Some(RetryReason::Timeout),
            Self::Broken(_) => Some(RetryReason::Connection),
        };
        Failure::new(self.into_provider_error(), retry)
    }

    fn into_provider_error(self) -> ProviderError {
        match self {
            Self::TooLarge { limit } => ProviderError::Upstream {
                message: format!(
                    "Bedrock's response is larger than {} MiB",
                    limit / (1024 * 1024)
                ),
            },
            Self::Idle { after } => ProviderError::Timeout {
                message: format!(
                    "Bedrock stopped sending its response for {} ms",
                    after.as_millis()
                ),
            },
            Self::Broken(cause) => ProviderError::Upstream {
                message: format!("reading Bedrock's response failed: {cause}"),
            },
        }
    }
}

/// Reads a whole body, at most `limit` bytes, failing when no data arrives for `idle`.
async fn read_body(
    mut body: Incoming,
    headers: &http::HeaderMap,
    limit: usize,
    idle: Duration,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    // Most answers arrive as one frame: keep it without copying.
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    let mut total = 0usize;
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(BodyError::Idle { after: idle }),
            Ok(None) => break,
            Ok(Some(Err(error))) => return Err(BodyError::Broken(error_chain(&error))),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        total += data.len();
        if total > limit {
            return Err(BodyError::TooLarge { limit });
        }
        match first.take() {
            None if rest.is_empty() => first = Some(data),
            None => rest.extend_from_slice(&data),
            Some(previous) => {
                rest.reserve(declared.unwrap_or(total).min(limit).max(total));
                rest.extend_from_slice(&previous);
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_encoded_as_one_uri_label() {
        assert_eq!(
            model_path(
                "anthropic.claude-3-sonnet-20240229-v1:0",
                Operation::Converse
            ),
            "/model/anthropic.claude-3-sonnet-20240229-v1%3A0/converse"
        );
        assert_eq!(
            model_path(
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
                Operation::ConverseStream
            ),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
        );
        assert_eq!(
            model_path("a b+c~d_e", Operation::Converse),
            "/model/a%20b%2Bc~d_e/converse"
        );
    }

    #[test]
    fn regional_targets_refuse_regions_that_break_the_url() {
        assert!(Target::regional("us-east-1").is_some());
        assert!(Target::regional("us-east-1/evil").is_none());
        assert!(Target::regional("x@evil.com:80").is_none());
    }
}
