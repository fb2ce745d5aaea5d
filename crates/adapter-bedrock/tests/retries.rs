//! Retries in AWS's standard mode and the time limits, through bedrock-sim: what is retried
//! and what never is, exactly how many requests reach Bedrock, the retry quota, re-signing,
//! streams retried only before their first event, and the total limit.
//!
//! Every test runs on Tokio's paused clock: when all tasks wait, Tokio jumps to the next
//! timer, so backoff waits and time limits cost no real time. The simulator answers on the
//! same runtime, so an answer that is on its way is never overtaken by a jump.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions fail the test on bad input, like the tests themselves"
)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bedrock_sim::{Operation, RecordedAuth, Script, SimHandle, StreamStep};
use bytes::Bytes;
use futures_util::StreamExt;
use gateway_adapter_bedrock::{
    BedrockAccountConfig, BedrockProvider, RetryConfig, TimeoutOverrides,
};
use gateway_core::clock::{Clock, SharedClock};
use gateway_core::{
    ChatEvent, ChatProvider, ChatRequest, ContentPart, Message, ProviderError, ProviderRequest,
    Role, Route,
};
use serde_json::json;
use tokio::time::Instant;

mod support;
use support::{now, KEY_ID, SECRET};

const ACCOUNT: &str = "acct";
const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const TOO_MANY_TOKENS: &str = "Too many tokens, please wait before trying again.";

/// A wall clock one second later at every reading, so every signature carries its own date:
/// an attempt that reused an earlier attempt's signature would show. The simulator accepts
/// dates within five minutes of its own.
struct Ticking(AtomicU64);

impl Clock for Ticking {
    fn now(&self) -> SystemTime {
        now() + Duration::from_secs(self.0.fetch_add(1, Ordering::SeqCst))
    }
}

async fn sim(script: Script) -> SimHandle {
    support::sim_builder()
        .script(MODEL, script)
        .start()
        .await
        .unwrap()
}

/// What the tests configure: the account's retry and limits, and one model's limits.
#[derive(Default)]
struct Settings {
    max_attempts: Option<u64>,
    account: TimeoutOverrides,
    /// For the model named `haiku` (route [`route`]).
    model: Option<TimeoutOverrides>,
}

fn limit(ms: u64) -> Option<gateway_adapter_bedrock::TimeLimit> {
    Some(ms.try_into().unwrap())
}

/// Limits that set the total and nothing else.
fn total_limit(ms: u64) -> TimeoutOverrides {
    TimeoutOverrides {
        total_ms: limit(ms),
        ..TimeoutOverrides::default()
    }
}

/// Limits that set the wait for the first byte and nothing else.
fn first_byte_limit(ms: u64) -> TimeoutOverrides {
    TimeoutOverrides {
        first_byte_ms: limit(ms),
        ..TimeoutOverrides::default()
    }
}

async fn provider(sim: &SimHandle, settings: Settings) -> BedrockProvider {
    let retry = match settings.max_attempts {
        Some(attempts) => RetryConfig {
            max_attempts: attempts.try_into().unwrap(),
        },
        None => RetryConfig::default(),
    };
    let account = BedrockAccountConfig {
        name: ACCOUNT.into(),
        region: "us-east-1".try_into().unwrap(),
        endpoint: Some(sim.url().try_into().unwrap()),
        auth: support::access_key(SECRET),
        retry,
        timeouts: settings.account,
        model_timeouts: settings
            .model
            .map(|limits| BTreeMap::from([("haiku".to_owned(), limits)]))
            .unwrap_or_default(),
    };
    BedrockProvider::new(vec![account], SharedClock::new(Ticking(AtomicU64::new(0))))
        .await
        .unwrap()
        .with_timeouts(support::timeouts())
        .with_retry_jitter_seed(42)
}

/// The route of model `name` in the account, calling `model_id`.
fn route_to(name: &str, model_id: &str) -> Route {
    support::route(ACCOUNT, format!("{ACCOUNT}/{name}"), model_id, "us-east-1")
}

fn route() -> Route {
    route_to("haiku", MODEL)
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![Message {
            role: Role::User,
            content: vec![ContentPart::Text("hello".into())],
        }],
        ..ChatRequest::default()
    }
}

async fn complete(provider: &BedrockProvider) -> Result<String, ProviderError> {
    complete_route(provider, &route()).await
}

async fn complete_route(
    provider: &BedrockProvider,
    route: &Route,
) -> Result<String, ProviderError> {
    let response = provider
        .complete(ProviderRequest::new(route, &request(), None))
        .await?;
    Ok(response.text.unwrap_or_default())
}

/// The stream's events up to its end or its first error (which is last).
async fn stream(
    provider: &BedrockProvider,
) -> Result<Vec<Result<ChatEvent, ProviderError>>, ProviderError> {
    let events = provider
        .stream(ProviderRequest::new(&route(), &request(), None))
        .await?;
    Ok(events.collect().await)
}

fn streamed_text(events: &[Result<ChatEvent, ProviderError>]) -> String {
    events
        .iter()
        .filter_map(|event| match event {
            Ok(ChatEvent::TextDelta(text)) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// The retries counted so far, by reason (zeros left out).
fn retries(provider: &BedrockProvider) -> BTreeMap<&'static str, u64> {
    let mut counted = BTreeMap::new();
    provider
        .retry_stats()
        .for_each_retry_count(|account, reason, retries| {
            assert_eq!(account, ACCOUNT);
            if retries > 0 {
                counted.insert(reason, retries);
            }
        });
    counted
}

fn quota_exhausted(provider: &BedrockProvider) -> u64 {
    let mut exhausted = 0;
    provider
        .retry_stats()
        .for_each_quota_exhausted(|_, times| exhausted += times);
    exhausted
}

fn throttling() -> Script {
    Script::error(429, "ThrottlingException", TOO_MANY_TOKENS)
}

fn first_event_exception() -> Script {
    Script::Stream(vec![StreamStep::exception(
        "throttlingException",
        TOO_MANY_TOKENS,
    )])
}

#[tokio::test(start_paused = true)]
async fn throttling_and_unavailability_are_retried_with_one_request_per_attempt() {
    let sim = sim(Script::Sequence(vec![
        throttling(),
        Script::error(503, "ServiceUnavailableException", "try later"),
        Script::Echo,
    ]))
    .await;
    let provider = provider(&sim, Settings::default()).await;
    let started = Instant::now();
    assert_eq!(complete(&provider).await.unwrap(), "You said: hello");
    assert_eq!(sim.requests().len(), 3);
    assert_eq!(
        retries(&provider),
        BTreeMap::from([("throttling", 1), ("transient", 1)])
    );
    // Full jitter under a doubling ceiling: the first wait is under 1 s, the second under 2 s.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn each_attempt_is_signed_afresh() {
    let sim = sim(Script::Sequence(vec![
        throttling(),
        throttling(),
        Script::Echo,
    ]))
    .await;
    let provider = provider(&sim, Settings::default()).await;
    assert_eq!(complete(&provider).await.unwrap(), "You said: hello");
    let requests = sim.requests();
    assert_eq!(requests.len(), 3);
    let header = |request: &bedrock_sim::RecordedRequest, name: &str| {
        request
            .headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let dates: Vec<String> = requests.iter().map(|r| header(r, "x-amz-date")).collect();
    let signatures: Vec<String> = requests
        .iter()
        .map(|r| header(r, "authorization"))
        .collect();
    for i in 1..requests.len() {
        assert!(dates[i] > dates[i - 1], "{dates:?}");
        assert_ne!(signatures[i], signatures[i - 1]);
    }
    // The simulator verified every signature: it answered the third, and the first two were
    // refused for throttling, not for their signature.
    for request in &requests {
        assert!(
            matches!(&request.auth, RecordedAuth::SigV4 { access_key_id, .. } if access_key_id == KEY_ID)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn attempts_stop_at_max_attempts() {
    let sim = sim(throttling()).await;
    for (max_attempts, requests) in [(3, 3), (1, 1), (5, 5)] {
        let provider = provider(
            &sim,
            Settings {
                max_attempts: Some(max_attempts),
                ..Settings::default()
            },
        )
        .await;
        let before = sim.requests().len();
        let error = complete(&provider).await.unwrap_err();
        assert_eq!(
            error,
            ProviderError::Throttled {
                message: TOO_MANY_TOKENS.into()
            }
        );
        assert_eq!(
            sim.requests().len() - before,
            requests,
            "max_attempts {max_attempts}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn what_would_fail_again_is_never_retried() {
    let sim = sim(Script::Echo).await;
    let provider = provider(&sim, Settings::default()).await;
    for (script, kind) in [
        (
            Script::error(400, "ValidationException", "messages: too long"),
            "invalid_request",
        ),
        (
            Script::error(403, "AccessDeniedException", "not allowed"),
            "upstream_unauthorized",
        ),
        (
            Script::error(404, "ResourceNotFoundException", "no such model"),
            "upstream_not_found",
        ),
        (
            Script::error(424, "ModelErrorException", "the model failed"),
            "model_error",
        ),
        (
            Script::error(408, "ModelTimeoutException", "the model took too long"),
            "timeout",
        ),
        (
            Script::error(400, "ServiceQuotaExceededException", "daily quota"),
            "throttled",
        ),
        (
            Script::raw(200, "application/json", "{\"output\": tru"),
            "upstream_protocol_error",
        ),
    ] {
        sim.set_script(MODEL, script);
        let before = sim.requests().len();
        let error = complete(&provider).await.unwrap_err();
        assert_eq!(error.kind(), kind, "{error:?}");
        assert_eq!(sim.requests().len() - before, 1, "{error:?}");
    }
    assert_eq!(retries(&provider), BTreeMap::new());
}

#[tokio::test(start_paused = true)]
async fn an_empty_retry_quota_stops_retrying() {
    let sim = sim(throttling()).await;
    let provider = provider(&sim, Settings::default()).await;
    // 500 tokens; each call's two throttling retries take 5 each: 50 calls empty the quota.
    for _ in 0..50 {
        complete(&provider).await.unwrap_err();
    }
    assert_eq!(sim.requests().len(), 150);
    assert_eq!(quota_exhausted(&provider), 0);

    complete(&provider).await.unwrap_err();
    assert_eq!(sim.requests().len(), 151, "no retry without quota");
    assert_eq!(quota_exhausted(&provider), 1);
    assert_eq!(retries(&provider), BTreeMap::from([("throttling", 100)]));

    // The quota is the account's: a provider with its own clients (another core) shares it.
    complete(&provider.with_own_clients()).await.unwrap_err();
    assert_eq!(sim.requests().len(), 152);
    assert_eq!(quota_exhausted(&provider), 2);
}

#[tokio::test(start_paused = true)]
async fn a_stream_refused_before_its_first_event_is_retried() {
    let sim = sim(Script::Sequence(vec![
        throttling(),
        first_event_exception(),
        Script::Echo,
    ]))
    .await;
    let provider = provider(&sim, Settings::default()).await;
    let events = stream(&provider).await.unwrap();
    assert!(events.iter().all(Result::is_ok), "{events:?}");
    assert_eq!(streamed_text(&events), "You said: hello");
    assert_eq!(sim.requests().len(), 3);
    assert!(sim
        .requests()
        .iter()
        .all(|request| request.operation == Operation::ConverseStream));
    assert_eq!(retries(&provider), BTreeMap::from([("throttling", 2)]));
}

#[tokio::test(start_paused = true)]
async fn a_stream_whose_first_event_keeps_failing_yields_that_error() {
    let sim = sim(first_event_exception()).await;
    let provider = provider(
        &sim,
        Settings {
            max_attempts: Some(2),
            ..Settings::default()
        },
    )
    .await;
    // As any stream error: the stream's only item.
    let events = stream(&provider).await.unwrap();
    assert_eq!(
        events,
        [Err(ProviderError::Throttled {
            message: format!("Bedrock throttlingException: {TOO_MANY_TOKENS}")
        })]
    );
    assert_eq!(sim.requests().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_stream_is_never_retried_after_its_first_event() {
    let sim = sim(Script::Sequence(vec![
        Script::Stream(vec![
            StreamStep::event("messageStart", json!({"role": "assistant"})),
            StreamStep::event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "partial"}}),
            ),
            StreamStep::exception("throttlingException", TOO_MANY_TOKENS),
        ]),
        Script::Echo,
    ]))
    .await;
    let provider = provider(&sim, Settings::default()).await;
    let events = stream(&provider).await.unwrap();
    assert_eq!(
        events,
        [
            Ok(ChatEvent::MessageStart),
            Ok(ChatEvent::TextDelta("partial".into())),
            Err(ProviderError::Throttled {
                message: format!("Bedrock throttlingException: {TOO_MANY_TOKENS}")
            }),
        ]
    );
    assert_eq!(sim.requests().len(), 1);
    assert_eq!(retries(&provider), BTreeMap::new());
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_retried() {
    let sim = sim(Script::Sequence(vec![Script::Stall, Script::Echo])).await;
    let provider = provider(
        &sim,
        Settings {
            account: first_byte_limit(500),
            ..Settings::default()
        },
    )
    .await;
    assert_eq!(complete(&provider).await.unwrap(), "You said: hello");
    assert_eq!(sim.requests().len(), 2);
    assert_eq!(retries(&provider), BTreeMap::from([("timeout", 1)]));
}

#[tokio::test(start_paused = true)]
async fn a_connection_cut_mid_answer_is_retried() {
    let sim = sim(Script::Sequence(vec![
        Script::CutBody {
            status: 200,
            content_type: "application/json".into(),
            body: Bytes::from_static(b"{\"output\": {\"message\""),
        },
        Script::Echo,
    ]))
    .await;
    let provider = provider(&sim, Settings::default()).await;
    assert_eq!(complete(&provider).await.unwrap(), "You said: hello");
    assert_eq!(sim.requests().len(), 2);
    assert_eq!(retries(&provider), BTreeMap::from([("connection", 1)]));
}

#[tokio::test(start_paused = true)]
async fn the_total_limit_bounds_a_stalled_call() {
    let sim = sim(Script::Stall).await;
    let provider = provider(
        &sim,
        Settings {
            account: total_limit(2_000),
            ..Settings::default()
        },
    )
    .await;
    let started = Instant::now();
    let error = complete(&provider).await.unwrap_err();
    assert_eq!(
        error,
        ProviderError::Timeout {
            message: "Bedrock did not answer within the total limit of 2000 ms (account `acct`)"
                .into()
        }
    );
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn the_total_limit_bounds_retries_and_their_waits() {
    let sim = sim(throttling()).await;
    let provider = provider(
        &sim,
        Settings {
            max_attempts: Some(10),
            account: total_limit(1_500),
            ..Settings::default()
        },
    )
    .await;
    let started = Instant::now();
    // No retry starts a wait that would end past the limit: the answer is Bedrock's last
    // error, before the limit.
    let error = complete(&provider).await.unwrap_err();
    assert_eq!(error.kind(), "throttled");
    assert!(started.elapsed() < Duration::from_millis(1_500));
    let requests = sim.requests().len();
    assert!((1..10).contains(&requests), "{requests} requests");
}

#[tokio::test(start_paused = true)]
async fn a_stream_waits_for_its_first_event_within_the_total_limit() {
    // ConverseStream with this script sends its headers, then nothing.
    let sim = sim(Script::Stall).await;
    let provider = provider(
        &sim,
        Settings {
            account: total_limit(1_000),
            ..Settings::default()
        },
    )
    .await;
    let started = Instant::now();
    let error = stream(&provider).await.unwrap_err();
    assert_eq!(error.kind(), "timeout");
    assert!(
        error.to_string().contains("total limit of 1000 ms"),
        "{error}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_model_s_limits_override_its_account_s() {
    let sim = sim(Script::Stall).await;
    let provider = provider(
        &sim,
        Settings {
            max_attempts: Some(1),
            account: first_byte_limit(5_000),
            model: Some(first_byte_limit(300)),
        },
    )
    .await;
    for (route, ms) in [(route(), 300), (route_to("other", MODEL), 5_000)] {
        let started = Instant::now();
        let error = complete_route(&provider, &route).await.unwrap_err();
        assert!(
            error.to_string().contains(&format!("within {ms} ms")),
            "{}: {error}",
            route.public_name
        );
        assert_eq!(started.elapsed(), Duration::from_millis(ms));
    }
    // The provider's defaults apply to what neither sets.
    assert_eq!(provider.timeouts().first_byte, Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_profile_switch_costs_no_attempt() {
    const BARE: &str = "anthropic.claude-3-5-sonnet-20241022-v2:0";
    const PROFILE: &str = "us.anthropic.claude-3-5-sonnet-20241022-v2:0";
    let sim = sim(Script::Echo).await;
    sim.set_script(
        BARE,
        Script::error(
            400,
            "ValidationException",
            "Invocation of model ID anthropic.claude-3-5-sonnet-20241022-v2:0 with on-demand throughput isn’t supported. Retry your request with the ID or ARN of an inference profile that contains this model.",
        ),
    );
    sim.set_script(PROFILE, Script::Sequence(vec![throttling(), Script::Echo]));
    let provider = provider(
        &sim,
        Settings {
            max_attempts: Some(2),
            ..Settings::default()
        },
    )
    .await;
    let answer = complete_route(&provider, &route_to("sonnet", BARE))
        .await
        .unwrap();
    assert_eq!(answer, "You said: hello");
    let called: Vec<String> = sim.requests().into_iter().map(|r| r.model_id).collect();
    assert_eq!(called, [BARE, PROFILE, PROFILE]);
    assert_eq!(retries(&provider), BTreeMap::from([("throttling", 1)]));
}
