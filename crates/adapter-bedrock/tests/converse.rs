//! `BedrockProvider` against bedrock-sim on loopback: signing accepted for model ids with `:`
//! and ARNs, each error class, unreachable and stalled upstreams, garbage answers, and the
//! start of a stream.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions fail the test on bad input, like the tests themselves"
)]

use std::time::Duration;

use bedrock_sim::{RecordedAuth, Reply, Script, SimHandle};
use futures_util::StreamExt;
use gateway_adapter_bedrock::{
    BedrockAccountConfig, BedrockProvider, RetryConfig, TimeoutOverrides, Timeouts,
};
use gateway_core::clock::{FixedClock, SharedClock};
use gateway_core::{
    ChatEvent, ChatProvider, ChatRequest, ContentPart, Message, ProviderError, ProviderRequest,
    Role, Route, StopReason,
};

mod support;
use support::{now, KEY_ID, SECRET};

const ACCOUNT: &str = "internal-bedrock";
const MODEL: &str = "anthropic.claude-3-sonnet-20240229-v1:0";
const PROFILE_ARN: &str = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0";

/// Never contact an instance-metadata endpoint, whatever a credential source does.
fn no_instance_metadata() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var("AWS_EC2_METADATA_DISABLED", "true"));
}

async fn sim(script: impl FnOnce(bedrock_sim::SimBuilder) -> bedrock_sim::SimBuilder) -> SimHandle {
    script(support::sim_builder()).start().await.unwrap()
}

fn account(endpoint: String, secret: &str) -> BedrockAccountConfig {
    BedrockAccountConfig {
        name: ACCOUNT.into(),
        region: "us-east-1".try_into().unwrap(),
        endpoint: Some(endpoint.try_into().unwrap()),
        auth: support::access_key(secret),
        // Retries have their own tests (retries.rs); here one call is one request.
        retry: RetryConfig::NO_RETRIES,
        timeouts: TimeoutOverrides::default(),
        model_timeouts: Default::default(),
    }
}

async fn provider_for(endpoint: String, secret: &str) -> BedrockProvider {
    no_instance_metadata();
    BedrockProvider::new(
        vec![account(endpoint, secret)],
        SharedClock::new(FixedClock(now())),
    )
    .await
    .unwrap()
    .with_timeouts(support::timeouts())
}

fn route(model_id: &str) -> Route {
    support::route(
        ACCOUNT,
        format!("{ACCOUNT}/claude-3"),
        model_id,
        "us-east-1",
    )
}

fn request(text: &str) -> ChatRequest {
    ChatRequest {
        model: format!("{ACCOUNT}/claude-3"),
        messages: vec![Message {
            role: Role::User,
            content: vec![ContentPart::Text(text.into())],
        }],
        ..ChatRequest::default()
    }
}

async fn complete_with(script: Script) -> Result<gateway_core::ChatResponse, ProviderError> {
    let sim = sim(|b| b.script(MODEL, script)).await;
    let provider = provider_for(sim.url(), SECRET).await;
    provider
        .complete(ProviderRequest::new(&route(MODEL), &request("hello"), None))
        .await
}

#[tokio::test]
async fn a_model_id_with_a_colon_is_signed_sent_and_answered() {
    let sim = sim(|b| b.script(MODEL, Script::Reply(Reply::text("Hi there!").usage(7, 2)))).await;
    let provider = provider_for(sim.url(), SECRET).await;
    let response = provider
        .complete(ProviderRequest::new(&route(MODEL), &request("hello"), None))
        .await
        .unwrap();
    assert_eq!(response.text.as_deref(), Some("Hi there!"));
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens),
        (7, 2)
    );

    let requests = sim.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(
        sent.raw_path,
        "/model/anthropic.claude-3-sonnet-20240229-v1%3A0/converse"
    );
    assert_eq!(sent.model_id, MODEL);
    assert_eq!(
        sent.auth,
        RecordedAuth::SigV4 {
            access_key_id: KEY_ID.into(),
            session_token: None
        }
    );
    assert_eq!(
        sent.body,
        serde_json::json!({"messages": [{"role": "user", "content": [{"text": "hello"}]}]})
    );
    assert_eq!(sent.headers["content-type"], "application/json");
}

#[tokio::test]
async fn an_inference_profile_arn_is_signed_sent_and_answered() {
    let sim = sim(|b| b.script(PROFILE_ARN, Script::Reply(Reply::text("From the profile")))).await;
    let provider = provider_for(sim.url(), SECRET).await;
    let response = provider
        .complete(ProviderRequest::new(
            &route(PROFILE_ARN),
            &request("hi"),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(response.text.as_deref(), Some("From the profile"));
    assert_eq!(
        sim.requests()[0].raw_path,
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
}

#[tokio::test]
async fn consecutive_requests_share_one_provider_and_reach_the_model() {
    let sim = sim(|b| b.default_script(Script::Echo)).await;
    let provider = provider_for(sim.url(), SECRET).await;
    for text in ["one", "two", "three"] {
        let response = provider
            .complete(ProviderRequest::new(&route(MODEL), &request(text), None))
            .await
            .unwrap();
        assert_eq!(response.text, Some(format!("You said: {text}")));
    }
    assert_eq!(sim.requests().len(), 3);
}

#[tokio::test]
async fn a_wrong_secret_is_unauthorized_naming_the_account_and_not_the_secret() {
    let sim = sim(|b| b).await;
    let wrong = "wrongSECRETwrongSECRETwrongSECRET0000000";
    let provider = provider_for(sim.url(), wrong).await;
    let err = provider
        .complete(ProviderRequest::new(&route(MODEL), &request("hello"), None))
        .await
        .unwrap_err();
    let ProviderError::Unauthorized { account, message } = &err else {
        panic!("expected Unauthorized, got {err:?}");
    };
    assert_eq!(account, ACCOUNT);
    for shown in [err.to_string(), format!("{err:?}"), format!("{provider:?}")] {
        assert!(!shown.contains(wrong) && !shown.contains(SECRET), "{shown}");
    }
    assert!(!message.is_empty());
}

#[tokio::test]
async fn throttling_is_throttled() {
    let err = complete_with(Script::throttling()).await.unwrap_err();
    assert!(matches!(err, ProviderError::Throttled { .. }), "{err:?}");
}

#[tokio::test]
async fn validation_is_an_invalid_request_with_bedrocks_message() {
    let message = "A conversation must start with a user message. Try again with a conversation that starts with a user message.";
    let err = complete_with(Script::error(400, "ValidationException", message))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::InvalidRequest {
            message: message.into()
        }
    );
}

#[tokio::test]
async fn expired_static_credentials_are_not_retried() {
    let err = {
        let sim = sim(|b| {
            b.script(
                MODEL,
                Script::error(
                    403,
                    "ExpiredTokenException",
                    "The security token included in the request is expired",
                ),
            )
        })
        .await;
        let provider = provider_for(sim.url(), SECRET).await;
        let err = provider
            .complete(ProviderRequest::new(&route(MODEL), &request("hello"), None))
            .await
            .unwrap_err();
        // Static keys cannot be refreshed, so one attempt is all.
        assert_eq!(sim.requests().len(), 1);
        err
    };
    assert!(matches!(err, ProviderError::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_naming_the_host() {
    no_instance_metadata();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let provider = provider_for(format!("http://{addr}"), SECRET).await;
    let err = provider
        .complete(ProviderRequest::new(&route(MODEL), &request("hello"), None))
        .await
        .unwrap_err();
    let ProviderError::Unavailable { message } = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert!(message.contains(&addr.to_string()), "{message}");
    assert!(message.contains(ACCOUNT), "{message}");
    assert!(!message.contains(SECRET));
}

#[tokio::test]
async fn a_non_json_success_is_a_protocol_error() {
    let err = complete_with(Script::raw(200, "text/html", "<html>hello</html>"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Protocol { .. }), "{err:?}");
    let err = complete_with(Script::raw(
        200,
        "application/json",
        r#"{"output": {"message": "#,
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, ProviderError::Protocol { .. }), "{err:?}");
}

#[tokio::test]
async fn an_html_error_page_is_an_upstream_error() {
    let err = complete_with(Script::raw(
        502,
        "text/html",
        "<html><h1>502 Bad Gateway</h1></html>",
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, ProviderError::Upstream { .. }), "{err:?}");
}

#[tokio::test]
async fn a_body_cut_mid_way_is_an_upstream_error() {
    let err = complete_with(Script::CutBody {
        status: 200,
        content_type: "application/json".into(),
        body: bytes::Bytes::from_static(br#"{"output":{"message":{"role":"assistant","#),
    })
    .await
    .unwrap_err();
    assert!(matches!(err, ProviderError::Upstream { .. }), "{err:?}");
}

#[tokio::test]
async fn a_stalled_upstream_times_out_at_first_byte() {
    let sim = sim(|b| b.script(MODEL, Script::Stall)).await;
    let provider = provider_for(sim.url(), SECRET)
        .await
        .with_timeouts(Timeouts {
            connect: Duration::from_secs(2),
            first_byte: Duration::from_millis(200),
            idle_stream: Duration::from_secs(10),
            total: None,
        });
    let err = provider
        .complete(ProviderRequest::new(&route(MODEL), &request("hello"), None))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unknown_account_is_not_found() {
    let provider = provider_for("http://127.0.0.1:9".into(), SECRET).await;
    let mut other = route(MODEL);
    other.account = "nobody".into();
    let err = provider
        .complete(ProviderRequest::new(&other, &request("hello"), None))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn a_stream_error_before_any_event_comes_back_from_stream() {
    let sim = sim(|b| b.script(MODEL, Script::throttling())).await;
    let provider = provider_for(sim.url(), SECRET).await;
    let err = provider
        .stream(ProviderRequest::new(&route(MODEL), &request("hello"), None))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ProviderError::Throttled { .. }), "{err:?}");
}

#[tokio::test]
async fn a_stream_is_signed_sent_to_converse_stream_and_yields_events() {
    let sim = sim(|b| b.script(PROFILE_ARN, Script::Echo)).await;
    let provider = provider_for(sim.url(), SECRET).await;
    let events: Vec<_> = provider
        .stream(ProviderRequest::new(
            &route(PROFILE_ARN),
            &request("stream me"),
            None,
        ))
        .await
        .unwrap()
        .collect()
        .await;
    let text: String = events
        .iter()
        .filter_map(|event| match event {
            Ok(ChatEvent::TextDelta(delta)) => Some(delta.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "You said: stream me");
    assert!(events.iter().all(Result::is_ok), "{events:?}");
    assert!(
        events.contains(&Ok(ChatEvent::Stop(StopReason::EndTurn))),
        "{events:?}"
    );
    let sent = &sim.requests()[0];
    assert!(
        sent.raw_path.ends_with("/converse-stream"),
        "{}",
        sent.raw_path
    );
    assert_eq!(sent.headers["accept"], "application/vnd.amazon.eventstream");
}

#[tokio::test]
async fn an_assistant_first_turn_is_refused_before_any_call() {
    let sim = sim(|b| b).await;
    let provider = provider_for(sim.url(), SECRET).await;
    let mut assistant_first = request("hello");
    assistant_first.messages.insert(
        0,
        Message {
            role: Role::Assistant,
            content: vec![ContentPart::Text("Hi!".into())],
        },
    );
    let route = route(MODEL);
    let call = ProviderRequest::new(&route, &assistant_first, None);
    let complete = provider.complete(call).await.unwrap_err();
    let stream = provider.stream(call).await.err().unwrap();
    for err in [complete, stream] {
        assert!(
            matches!(
                err,
                ProviderError::TurnOrder {
                    message_index: 0,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    assert!(sim.requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn account_credentials_are_listed_by_name_and_probed_without_calling_bedrock() {
    let sim = sim(|sim| sim).await;
    let second = BedrockAccountConfig {
        name: "a-first".into(),
        ..account(sim.url(), SECRET)
    };
    let provider = BedrockProvider::new(
        vec![account(sim.url(), SECRET), second],
        SharedClock::new(FixedClock(now())),
    )
    .await
    .unwrap();
    let credentials = provider.account_credentials();
    let names: Vec<_> = credentials.iter().map(|c| c.account()).collect();
    assert_eq!(names, ["a-first", ACCOUNT]);
    for account in &credentials {
        account.probe().await.unwrap();
    }
    assert!(sim.requests().is_empty());
}
