//! [`BedrockProvider`]: the [`ChatProvider`] port over Converse and ConverseStream.
//!
//! Everything that does not depend on the request is prepared once per account in
//! [`BedrockProvider::new`]: the HTTP client and its pool, the credential source, the base
//! URL and the `Host` value the signature covers. Per request: build the body, sign, send,
//! and map the answer or the error.
//!
//! Credentials that Bedrock reports expired although the cache thought them fresh are
//! invalidated and the request is signed again with fresh ones, once. A bare model id that
//! Bedrock serves only through an inference profile is retried once with the route's
//! geographic profile, which the route then keeps ([`crate::inference_profile`]); for
//! ConverseStream too, since that refusal is the HTTP answer, before any event.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use gateway_core::clock::SharedClock;
use gateway_core::{ChatEventStream, ChatProvider, ChatResponse, ProviderError, ProviderRequest};
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use thiserror::Error;

use crate::client::{build_client, HttpClient};
use crate::config::{BedrockAccountConfig, Endpoint, Timeouts};
use crate::converse_request::{converse_body, Operation};
use crate::converse_response::parse_converse_response;
use crate::credentials::{AccountCredentials, CredentialsError, RequestAuth};
use crate::errors::BedrockErrorResponse;
use crate::inference_profile::{profile_geography, profile_id, RememberedProfiles};
use crate::signing::Signer;
use crate::structured_output::forced_tool;

/// The largest Converse response read into memory; a hostile or broken upstream must not
/// be able to exhaust it.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The largest error body read; Bedrock's are a few hundred bytes.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("application/vnd.amazon.eventstream");

/// A URI label: every byte outside the unreserved set is percent-encoded, so `:` becomes
/// `%3A` and an ARN's `/` becomes `%2F`.
const LABEL: &AsciiSet = &NON_ALPHANUMERIC
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

/// The Bedrock Runtime adapter. Cheap to clone: clones share clients and credentials.
#[derive(Clone)]
pub struct BedrockProvider {
    accounts: Arc<HashMap<String, Arc<Account>>>,
    signer: Signer,
    timeouts: Timeouts,
    /// Shared by every clone, so a route switches (and logs it) once per process.
    profiles: Arc<RememberedProfiles>,
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
    client: HttpClient,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The credentials' own Debug shows no secret; the client has nothing to show.
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
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
pub fn model_path(model_id: &str, operation: Operation) -> String {
    format!(
        "/model/{}/{}",
        utf8_percent_encode(model_id, LABEL),
        operation.path_suffix()
    )
}

/// The URL of `operation` on `model_id` at `endpoint`.
fn model_url(endpoint: &Target, model_id: &str, operation: Operation) -> String {
    format!("{}{}", endpoint.base, model_path(model_id, operation))
}

/// The unsigned request for `operation`: `POST url` with `content-type: application/json`
/// and the `accept` the operation answers with (unsigned, see [`crate::signing`]).
pub fn unsigned_request(
    url: &str,
    operation: Operation,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, http::Error> {
    let accept = match operation {
        Operation::Converse => JSON,
        Operation::ConverseStream => EVENT_STREAM,
    };
    Request::post(url)
        .header(CONTENT_TYPE, JSON)
        .header(ACCEPT, accept)
        .body(Full::new(body))
}

impl BedrockProvider {
    /// Builds one HTTP client and one credential source per account. No network call.
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
            let account = Account {
                name: Arc::from(config.name.as_str()),
                region: config.region.to_string(),
                endpoint,
                credentials,
                client: build_client(timeouts.connect),
            };
            prepared.insert(config.name, Arc::new(account));
        }
        Ok(Self {
            accounts: Arc::new(prepared),
            signer: Signer::new(clock),
            timeouts,
            profiles: Arc::default(),
        })
    }

    /// Replaces the timeouts. Clients are rebuilt when the connect timeout changes, so call
    /// this at start-up, before requests are made.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        if timeouts.connect != self.timeouts.connect {
            let rebuilt = self
                .accounts
                .iter()
                .map(|(name, account)| {
                    let account = Account {
                        client: build_client(timeouts.connect),
                        ..Account::clone(account)
                    };
                    (name.clone(), Arc::new(account))
                })
                .collect();
            self.accounts = Arc::new(rebuilt);
        }
        self.timeouts = timeouts;
        self
    }

    /// A provider with the same accounts and credentials but new HTTP clients (so new
    /// connection pools) and its own signing-key cache. A server that runs one single-threaded runtime per core gives
    /// each its own: a pooled connection's I/O is driven by the runtime that opened it, so a
    /// shared pool would wake other cores for every response. The credential caches stay
    /// shared, so each account still fetches once for the whole process.
    pub fn with_own_clients(&self) -> Self {
        let accounts = self
            .accounts
            .iter()
            .map(|(name, account)| {
                let account = Account {
                    client: build_client(self.timeouts.connect),
                    ..Account::clone(account)
                };
                (name.clone(), Arc::new(account))
            })
            .collect();
        Self {
            accounts: Arc::new(accounts),
            signer: self.signer.with_own_key_cache(),
            timeouts: self.timeouts,
            profiles: Arc::clone(&self.profiles),
        }
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    fn account(&self, name: &str) -> Result<&Arc<Account>, ProviderError> {
        self.accounts
            .get(name)
            .ok_or_else(|| ProviderError::NotFound {
                message: format!("no Bedrock account named `{name}` is configured"),
            })
    }

    /// Sends `operation` and returns the successful response, or the mapped error.
    async fn send(
        &self,
        request: ProviderRequest<'_>,
        operation: Operation,
    ) -> Result<(Arc<Account>, Response<Incoming>), ProviderError> {
        let route = request.route;
        let account = Arc::clone(self.account(&route.account)?);
        let body = converse_body(request, operation).map(Bytes::from)?;
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
        loop {
            let response = self
                .send_once(
                    &account,
                    endpoint,
                    &route.region,
                    &url,
                    operation,
                    &auth,
                    body.clone(),
                )
                .await?;
            if response.status().is_success() {
                if let Some(profile) = switched {
                    if self.profiles.remember(&route.public_name, &profile) {
                        tracing::info!(
                            route = %route.public_name,
                            %profile,
                            "Bedrock serves this model only through an inference profile; \
                             the route uses it from now on"
                        );
                    }
                }
                return Ok((account, response));
            }
            let (parts, incoming) = response.into_parts();
            // An unreadable error body still leaves the status to go by.
            let error_body = read_body(
                incoming,
                &parts.headers,
                MAX_ERROR_BODY_BYTES,
                self.timeouts.idle_stream,
            )
            .await
            .unwrap_or_default();
            let error = BedrockErrorResponse::parse(parts.status, &parts.headers, &error_body);
            if !refreshed && error.is_expired_token() && account.credentials.invalidate(&auth) {
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
            return Err(error.into_provider_error(&account.name));
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one private call site; a struct would only rename the arguments"
    )]
    async fn send_once(
        &self,
        account: &Account,
        endpoint: &Target,
        region: &str,
        url: &str,
        operation: Operation,
        auth: &RequestAuth,
        body: Bytes,
    ) -> Result<Response<Incoming>, ProviderError> {
        let mut request = unsigned_request(url, operation, body.clone()).map_err(|_| {
            ProviderError::InvalidRequest {
                message: "the model id does not make a valid Bedrock URL".into(),
            }
        })?;
        self.signer
            .authorize(auth, region, &endpoint.host, &mut request, &body)
            .map_err(|error| ProviderError::Credentials {
                account: account.name.to_string(),
                message: error.to_string(),
            })?;
        match tokio::time::timeout(self.timeouts.first_byte, account.client.request(request)).await
        {
            Err(_) => Err(ProviderError::Timeout {
                message: format!(
                    "Bedrock at {} did not answer within {} ms (account `{}`)",
                    endpoint.host,
                    self.timeouts.first_byte.as_millis(),
                    account.name
                ),
            }),
            Ok(Err(error)) => Err(request_error(&account.name, &endpoint.host, &error)),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

#[async_trait]
impl ChatProvider for BedrockProvider {
    async fn complete<'a>(
        &self,
        request: ProviderRequest<'a>,
    ) -> Result<ChatResponse, ProviderError> {
        let unwrap_tool = forced_tool(request);
        let (_account, response) = self.send(request, Operation::Converse).await?;
        let (parts, incoming) = response.into_parts();
        let body = read_body(
            incoming,
            &parts.headers,
            MAX_RESPONSE_BYTES,
            self.timeouts.idle_stream,
        )
        .await
        .map_err(BodyError::into_provider_error)?;
        parse_converse_response(&body, unwrap_tool)
    }

    async fn stream<'a>(
        &self,
        request: ProviderRequest<'a>,
    ) -> Result<ChatEventStream, ProviderError> {
        let unwrap_tool = forced_tool(request);
        let (account, response) = self.send(request, Operation::ConverseStream).await?;
        Ok(crate::stream_events::chat_events(
            Arc::clone(&account.name),
            response.into_body(),
            self.timeouts.idle_stream,
            unwrap_tool,
        ))
    }
}

/// A failure of the HTTP exchange itself (no Bedrock answer to map).
fn request_error(
    account: &str,
    host: &str,
    error: &hyper_util::client::legacy::Error,
) -> ProviderError {
    let cause = error_chain(error);
    if error.is_connect() {
        return ProviderError::Unavailable {
            message: format!(
                "could not connect to Bedrock at {host} for account `{account}`: {cause}"
            ),
        };
    }
    let parse_failure = std::iter::successors(
        std::error::Error::source(error),
        |e: &&(dyn std::error::Error + 'static)| e.source(),
    )
    .filter_map(|e| e.downcast_ref::<hyper::Error>())
    .any(hyper::Error::is_parse);
    if parse_failure {
        return ProviderError::Protocol {
            message: format!("Bedrock at {host} answered something that is not HTTP: {cause}"),
        };
    }
    ProviderError::Upstream {
        message: format!("the request to Bedrock at {host} failed: {cause}"),
    }
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
