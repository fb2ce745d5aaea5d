//! The application service: route, apply guardrail policy, call the provider.

use std::sync::Arc;

use crate::chat::{ChatRequest, ChatResponse};
use crate::error::GatewayError;
use crate::finish_reason::{FinishReason, FinishReasonStyle};
use crate::guardrail::{effective_guardrail, GuardrailConfig};
use crate::ports::{ChatEventStream, ChatProvider, ModelRouter, ProviderRequest};
use crate::router::Route;

/// Who is calling, as far as the domain cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The gateway key's configured name (never the key itself).
    pub key_name: Option<String>,
    /// The key's finish-reason style, overriding the account's.
    pub finish_reason_style: Option<FinishReasonStyle>,
    /// The key's choice to drop parameters the gateway cannot honour, overriding the
    /// account's ([`Route::drop_unsupported_params`]).
    pub drop_unsupported_params: Option<bool>,
}

/// A complete answer with what the client needs to present it.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub route: Arc<Route>,
    pub response: ChatResponse,
    pub finish_reason: FinishReason,
    pub finish_reason_style: FinishReasonStyle,
}

/// A started stream; map each `Stop` with `finish_reason_style`.
pub struct CompletionStream {
    pub route: Arc<Route>,
    pub finish_reason_style: FinishReasonStyle,
    pub events: ChatEventStream,
}

impl std::fmt::Debug for CompletionStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompletionStream")
            .field("route", &self.route)
            .field("finish_reason_style", &self.finish_reason_style)
            .finish_non_exhaustive()
    }
}

/// Answers chat requests through the ports.
#[derive(Clone)]
pub struct ChatService {
    router: Arc<dyn ModelRouter>,
    provider: Arc<dyn ChatProvider>,
}

impl std::fmt::Debug for ChatService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatService").finish_non_exhaustive()
    }
}

impl ChatService {
    pub fn new(router: Arc<dyn ModelRouter>, provider: Arc<dyn ChatProvider>) -> Self {
        Self { router, provider }
    }

    pub fn models(&self) -> Vec<Arc<Route>> {
        self.router.models()
    }

    /// Resolves the route, the effective guardrail and the finish-reason style; nothing
    /// reaches the provider when this fails. The request itself is left as the client sent it.
    fn prepare(&self, caller: &Caller, request: &ChatRequest) -> Result<Prepared, GatewayError> {
        let route = self.router.resolve(&request.model)?;
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
        Ok(Prepared {
            route,
            guardrail,
            style,
        })
    }

    pub async fn complete(
        &self,
        caller: &Caller,
        request: ChatRequest,
    ) -> Result<Completion, GatewayError> {
        let prepared = self.prepare(caller, &request)?;
        let response = self
            .provider
            .complete(prepared.provider_request(&request))
            .await?;
        let finish_reason = response.stop_reason.finish_reason(prepared.style);
        Ok(Completion {
            route: prepared.route,
            response,
            finish_reason,
            finish_reason_style: prepared.style,
        })
    }

    pub async fn stream(
        &self,
        caller: &Caller,
        request: ChatRequest,
    ) -> Result<CompletionStream, GatewayError> {
        let prepared = self.prepare(caller, &request)?;
        let events = self
            .provider
            .stream(prepared.provider_request(&request))
            .await?;
        Ok(CompletionStream {
            route: prepared.route,
            finish_reason_style: prepared.style,
            events,
        })
    }
}

/// What the service decided for one request before calling the provider.
struct Prepared {
    route: Arc<Route>,
    /// The effective guardrail after policy.
    guardrail: Option<GuardrailConfig>,
    style: FinishReasonStyle,
}

impl Prepared {
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
    use crate::router::RouteError;

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
            err,
            GatewayError::Route(RouteError::UnknownModel("acct/model".into()))
        );
    }

    #[tokio::test]
    async fn enforced_guardrail_is_what_the_provider_receives() {
        let mut router = MockModelRouter::new();
        router.expect_resolve().returning(|_| {
            Ok(route(GuardrailPolicy {
                configured: Some(ConfiguredGuardrail {
                    guardrail: guardrail("enforced"),
                    mode: GuardrailMode::Enforced,
                }),
                allow_client_guardrails: true,
            }))
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
            Ok(route(GuardrailPolicy {
                configured: Some(ConfiguredGuardrail {
                    guardrail: enforced.clone(),
                    mode: GuardrailMode::Enforced,
                }),
                allow_client_guardrails: true,
            }))
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
            Ok(route(GuardrailPolicy {
                configured: Some(ConfiguredGuardrail {
                    guardrail: guardrail("enforced"),
                    mode: GuardrailMode::Enforced,
                }),
                allow_client_guardrails: true,
            }))
        });
        let mut provider = MockChatProvider::new();
        provider.expect_complete().never();
        provider.expect_stream().never();
        let service = service(router, provider);
        let mut req = request();
        req.requested_guardrail = Some(guardrail("client"));
        let err = service.stream(&Caller::default(), req).await.err().unwrap();
        assert!(matches!(
            err,
            GatewayError::Guardrail(GuardrailPolicyError::Enforced { .. })
        ));
    }

    #[tokio::test]
    async fn the_keys_finish_reason_style_overrides_the_accounts() {
        let mut router = MockModelRouter::new();
        router
            .expect_resolve()
            .returning(|_| Ok(route(GuardrailPolicy::open())));
        let mut provider = MockChatProvider::new();
        provider
            .expect_complete()
            .returning(|_| Ok(response(StopReason::GuardrailIntervened)));
        let caller = Caller {
            key_name: Some("strict-team".into()),
            finish_reason_style: Some(FinishReasonStyle::Strict),
            drop_unsupported_params: None,
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
            .returning(|_| Ok(route(GuardrailPolicy::open())));
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
            Ok(Arc::new(route))
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
            err,
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
}
