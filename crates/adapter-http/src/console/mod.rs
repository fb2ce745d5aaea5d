//! The web console at `/console` (docs/console.md): a single-page app built into the binary
//! (`assets`) and the admin JSON API it reads (`api`: status, routes, traffic), behind the
//! `[console]` admin keys. Without admin keys, the default, every `/console` URL is a 404
//! saying how to enable it.
//!
//! Static assets hold no data and need no key; the API needs an admin key on every call, in
//! `Authorization` (no cookies, so nothing ambient for a cross-site request to ride on). An
//! admin key is not a gateway key: it calls no model, and no gateway key opens the API.
//! Every `/console` response, errors included, carries a strict Content-Security-Policy and
//! the other headers of [`secure`].

mod api;
mod assets;
pub(crate) mod traffic;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use gateway_core::clock::SharedClock;
use gateway_core::{ChatService, CredentialStatus};
use http::header::{HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL};
use http::request::Parts;
use http::{Response, StatusCode};

use crate::auth::{AdminKeys, KeyStore};
use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::governance::LimitBackendErrors;
use crate::metrics::{KeyLabels, Metrics};
use crate::readiness::Readiness;
use crate::server::{body_response, error_response};
use crate::settings::AdminKey;
use crate::trace::TraceExportFailures;

pub use traffic::TrafficSampler;

/// The console's configuration, and what the host describes of its accounts (built once per
/// configuration; plain data and one status port, no provider types).
#[derive(Debug, Clone, Default)]
pub struct ConsoleSettings {
    /// Empty: the console is disabled.
    pub admin_keys: Vec<AdminKey>,
    /// The status page's accounts, in the order to show them.
    pub accounts: Vec<AccountDescription>,
    /// The guardrails offered at `POST /v1/guardrails/check`.
    pub guardrails: Vec<GuardrailDescription>,
    /// Where the keys' limits are counted.
    pub limits_backend: LimitsBackendKind,
    /// The configured model ids that name an inference profile rather than a model (the
    /// host's provider knows which).
    pub inference_profiles: BTreeSet<String>,
}

/// One upstream account as the status page shows it: never a secret.
#[derive(Debug, Clone)]
pub struct AccountDescription {
    pub name: String,
    /// How it authenticates, as configured: `access-key`, `assume-role`, `default-chain`,
    /// `api-key`.
    pub auth: &'static str,
    pub region: String,
    /// The endpoint override without any user information; `None`: AWS's own.
    pub endpoint: Option<String>,
    /// Asked at each status call.
    pub credentials: Arc<dyn CredentialStatusSource>,
}

/// A guardrail offered for checks: its name and the account it runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardrailDescription {
    pub name: String,
    pub account: String,
}

/// Where the keys' limits are counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LimitsBackendKind {
    #[default]
    Memory,
    Redis,
}

/// Where an account's credentials stand now; the host asks its credential cache.
pub trait CredentialStatusSource: fmt::Debug + Send + Sync + 'static {
    fn status(&self) -> CredentialStatus;
}

/// One configuration's console: its admin keys and descriptions, and the process-wide
/// sources the status page reads.
#[derive(Debug)]
pub(crate) struct Console {
    admin_keys: AdminKeys,
    settings: ConsoleSettings,
    limit_backend_errors: Option<Arc<dyn LimitBackendErrors>>,
    trace_export_failures: Option<Arc<dyn TraceExportFailures>>,
}

impl Console {
    pub(crate) fn new(
        settings: ConsoleSettings,
        limit_backend_errors: Option<Arc<dyn LimitBackendErrors>>,
        trace_export_failures: Option<Arc<dyn TraceExportFailures>>,
    ) -> Self {
        Self {
            admin_keys: AdminKeys::new(settings.admin_keys.clone()),
            settings,
            limit_backend_errors,
            trace_export_failures,
        }
    }
}

/// What the console reads of the app answering the request.
pub(crate) struct Context<'a> {
    pub(crate) console: &'a Console,
    pub(crate) service: &'a ChatService,
    pub(crate) keys: &'a KeyStore,
    pub(crate) key_labels: &'a KeyLabels,
    pub(crate) metrics: &'a Metrics,
    pub(crate) readiness: &'a Readiness,
    pub(crate) clock: &'a SharedClock,
    /// When the process started serving.
    pub(crate) started_at: SystemTime,
}

/// Whether `path` is the console's.
pub(crate) fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// `GET` or `HEAD` of a console URL (the server refuses other methods).
pub(crate) fn respond(context: &Context<'_>, parts: &Parts) -> Response<ResponseBody> {
    if context.console.admin_keys.is_empty() {
        return error_response(&ApiError::console_disabled());
    }
    let path = parts.uri.path();
    if path == "/console" || path == "/console/" {
        return content(HTML, Bytes::from_static(assets::INDEX));
    }
    if let Some(name) = path.strip_prefix("/console/assets/") {
        return match assets::find(name) {
            Some(asset) => {
                let mut response = content(
                    HeaderValue::from_static(asset.content_type),
                    Bytes::from_static(asset.body),
                );
                // Fixed names without hashes: revalidate, so a new build is seen at once.
                response
                    .headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                response
            }
            None => error_response(&ApiError::unknown_url(&parts.method, path)),
        };
    }
    if let Some(endpoint) = path.strip_prefix("/console/api/") {
        if context
            .console
            .admin_keys
            .authenticate(&parts.headers)
            .is_none()
        {
            return error_response(&ApiError::invalid_admin_key());
        }
        let body = match endpoint {
            "status" => api::status(context),
            "routes" => api::routes(context),
            "traffic" => match api::minutes(parts.uri.query()) {
                Ok(minutes) => api::traffic(context, minutes),
                Err(error) => return error_response(&error),
            },
            _ => return error_response(&ApiError::unknown_url(&parts.method, path)),
        };
        let mut response = content(HeaderValue::from_static("application/json"), body.into());
        response.headers_mut().insert(CACHE_CONTROL, NO_STORE);
        return response;
    }
    error_response(&ApiError::unknown_url(&parts.method, path))
}

fn content(content_type: HeaderValue, body: Bytes) -> Response<ResponseBody> {
    body_response(StatusCode::OK, content_type, body)
}

/// Only the console's own files, no inline script or style, no framing, no form posts.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; font-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The headers of every `/console` response, errors included: the CSP, no MIME sniffing,
/// no referrer, no framing, and `no-store` unless the response chose its caching.
pub(crate) fn secure(headers: &mut HeaderMap) {
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, NO_STORE);
    }
}
