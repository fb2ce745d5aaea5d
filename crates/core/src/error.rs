//! Errors of the domain and of providers.

use std::time::Duration;

use thiserror::Error;

use crate::governance::{LimitKind, LimitState};
use crate::guardrail::GuardrailPolicyError;
use crate::guardrail_check::GuardrailCheckError;
use crate::request_limits::RequestLimitError;
use crate::router::{ModelKind, RouteError};

/// What can go wrong at a provider, independent of its protocol. The HTTP adapter maps each
/// kind to an OpenAI status and error type in one place.
///
/// Messages never carry credentials, signatures or tokens.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The provider refused the request as invalid (e.g. Bedrock's `ValidationException`).
    #[error("{message}")]
    InvalidRequest { message: String },
    /// The route's model cannot do what one feature of the request asks (reasoning on a
    /// model without it, more cache points than the provider allows, ...). Found before any
    /// call; `feature` lets each API door name the field in its own terms.
    #[error("{message}")]
    Unsupported {
        feature: RequestFeature,
        message: String,
    },
    /// The provider cannot take the conversation in the order it was given (e.g. it must
    /// start with a user turn). Found before any call, so it is the client's to fix.
    /// `message_index` indexes [`ChatRequest::messages`](crate::ChatRequest::messages).
    #[error("messages[{message_index}].role: {message}")]
    TurnOrder {
        message_index: usize,
        message: String,
    },
    /// The provider refused the account's credentials or permissions. `message` is the
    /// provider's own explanation.
    #[error("the provider refused the credentials of account `{account}`: {message}")]
    Unauthorized { account: String, message: String },
    /// Credentials for the account could not be obtained (a token service denied or
    /// unreachable, ...). `message` says which source failed and how, in the provider's terms.
    #[error("could not obtain credentials for account `{account}`: {message}")]
    Credentials { account: String, message: String },
    /// The model or resource does not exist at the provider.
    #[error("{message}")]
    NotFound { message: String },
    /// Rate or quota limits; worth retrying later.
    #[error("{message}")]
    Throttled { message: String },
    /// The model or the connection took too long.
    #[error("{message}")]
    Timeout { message: String },
    /// The model failed while processing the request.
    #[error("{message}")]
    ModelError { message: String },
    /// The provider is unavailable or unreachable.
    #[error("{message}")]
    Unavailable { message: String },
    /// The provider failed internally.
    #[error("{message}")]
    Upstream { message: String },
    /// The provider answered something that is not its protocol (garbage, corrupt or cut
    /// event-stream frames).
    #[error("{message}")]
    Protocol { message: String },
}

impl ProviderError {
    /// Low-cardinality name, for metrics labels and error codes.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidRequest { .. } => "invalid_request",
            Self::Unsupported { .. } => "unsupported_feature",
            Self::TurnOrder { .. } => "invalid_turn_order",
            Self::Unauthorized { .. } => "upstream_unauthorized",
            Self::Credentials { .. } => "credentials_unavailable",
            Self::NotFound { .. } => "upstream_not_found",
            Self::Throttled { .. } => "throttled",
            Self::Timeout { .. } => "timeout",
            Self::ModelError { .. } => "model_error",
            Self::Unavailable { .. } => "upstream_unavailable",
            Self::Upstream { .. } => "upstream_error",
            Self::Protocol { .. } => "upstream_protocol_error",
        }
    }

    /// True when another target of a virtual model may answer instead: the target is
    /// throttled, down, slow or cannot get credentials, none of which says anything about
    /// the request. Errors about the request itself, the model's handling of it or what the
    /// account may do stay with the client: another target would refuse it the same way, or
    /// the operator has to act. Only meaningful before the first event reached the client;
    /// the service never fails over after that.
    pub fn fails_over(&self) -> bool {
        match self {
            Self::Throttled { .. }
            | Self::Unavailable { .. }
            | Self::Upstream { .. }
            | Self::Timeout { .. }
            | Self::Credentials { .. }
            | Self::Protocol { .. } => true,
            Self::InvalidRequest { .. }
            | Self::Unsupported { .. }
            | Self::TurnOrder { .. }
            | Self::Unauthorized { .. }
            | Self::NotFound { .. }
            | Self::ModelError { .. } => false,
        }
    }
}

/// A feature of a request (a [`ChatRequest`](crate::ChatRequest) or an
/// [`EmbeddingRequest`](crate::EmbeddingRequest)) a provider may be unable to honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestFeature {
    /// [`ChatRequest::reasoning`](crate::ChatRequest::reasoning).
    Reasoning,
    /// [`ChatRequest::response_format`](crate::ChatRequest::response_format).
    ResponseFormat,
    /// Cache points anywhere in the request.
    CachePoint,
    /// Document content parts.
    Document,
    /// [`ChatRequest::service_tier`](crate::ChatRequest::service_tier).
    ServiceTier,
    /// [`ChatRequest::latency`](crate::ChatRequest::latency).
    Latency,
    /// [`ChatRequest::request_metadata`](crate::ChatRequest::request_metadata).
    RequestMetadata,
    /// [`ChatRequest::additional_model_response_field_paths`](crate::ChatRequest::additional_model_response_field_paths).
    AdditionalResponseFields,
    /// Counting a request's input tokens ([`ChatProvider::count_tokens`](crate::ChatProvider::count_tokens)).
    CountTokens,
    /// [`EmbeddingRequest::dimensions`](crate::EmbeddingRequest::dimensions).
    EmbeddingDimensions,
    /// [`EmbeddingRequest::normalize`](crate::EmbeddingRequest::normalize).
    EmbeddingNormalize,
    /// [`EmbeddingRequest::input_type`](crate::EmbeddingRequest::input_type).
    EmbeddingInputType,
}

/// Why the gateway could not answer a chat request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GatewayError {
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    Guardrail(#[from] GuardrailPolicyError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The request is over one of the caps or breaks a name rule of
    /// [`request_limits`](crate::request_limits); nothing reached a provider.
    #[error(transparent)]
    InvalidRequest(#[from] RequestLimitError),
    /// The client set a parameter the gateway cannot honour
    /// ([`ChatRequest::unsupported_parameters`](crate::ChatRequest::unsupported_parameters))
    /// and neither its key nor the account lets the gateway drop it.
    #[error("{param} is not supported by this gateway's models; ask the operator to set drop_unsupported_params = true to have it ignored")]
    UnsupportedParameter { param: String },
    /// The model answers another kind of request (a chat request to an embedding model, or
    /// the reverse); nothing reached a provider.
    #[error("the model `{model}` is {} model and cannot answer {} requests", .kind.with_article(), .requested.as_str())]
    WrongModelKind {
        /// The name the client asked for.
        model: String,
        /// What the model (or, for a virtual model, its targets) answers.
        kind: ModelKind,
        /// What the client asked for.
        requested: ModelKind,
    },
    /// The caller's gateway key is over one of its limits; nothing reached a provider.
    #[error("{}", rate_limited_message(*.kind, .state, *.retry_after))]
    RateLimited {
        kind: LimitKind,
        /// When trying again may succeed; `None` for a budget that never resets.
        retry_after: Option<Duration>,
        state: LimitState,
    },
    /// The limits backend could not decide in time and the operator chose to refuse
    /// requests then (`on_backend_error = "deny"`).
    #[error("the gateway cannot check this key's limits right now; retry shortly")]
    LimitsUnavailable,
    /// A guardrail check named a guardrail the gateway does not offer or the key may not
    /// use, or had nothing to check; nothing reached a provider.
    #[error(transparent)]
    GuardrailCheck(#[from] GuardrailCheckError),
}

/// What the client reads: which limit, its size, and when to come back.
fn rate_limited_message(
    kind: LimitKind,
    state: &LimitState,
    retry_after: Option<Duration>,
) -> String {
    let limit = match kind {
        LimitKind::Requests => state
            .requests
            .map(|r| format!("its limit of {} requests per minute", r.limit)),
        LimitKind::Tokens => state
            .tokens
            .map(|r| format!("its limit of {} tokens per minute", r.limit)),
        LimitKind::Budget => Some("its budget".to_owned()),
    }
    .unwrap_or_else(|| format!("its {} limit", kind.as_str()));
    let when = match (kind, retry_after) {
        (LimitKind::Budget, None) => "; the budget does not reset, ask the operator".to_owned(),
        (LimitKind::Budget, Some(wait)) => format!(
            " for this period; it resets in {} s",
            wait.as_secs_f64().ceil()
        ),
        (_, Some(wait)) => format!("; retry in {} s", wait.as_secs_f64().ceil()),
        (_, None) => String::new(),
    };
    format!("this gateway key has reached {limit}{when}")
}
