//! The on-demand-throughput retry through bedrock-sim: a bare model id that Bedrock serves
//! only through an inference profile is retried once with the route's geographic profile,
//! which the route keeps; regions without profiles, ARNs and profile ids get Bedrock's error.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions fail the test on bad input, like the tests themselves"
)]

use std::sync::{Arc, Mutex};

use bedrock_sim::{Operation, Reply, Script, SimHandle};
use futures_util::StreamExt;
use gateway_adapter_bedrock::{
    BedrockAccountConfig, BedrockProvider, RetryConfig, TimeoutOverrides,
};
use gateway_core::clock::{FixedClock, SharedClock};
use gateway_core::{
    ChatEvent, ChatProvider, ChatRequest, ContentPart, Message, ProviderError, ProviderRequest,
    Role, Route,
};

mod support;
use support::{now, SECRET};

const ACCOUNT: &str = "acct";
const MODEL: &str = "anthropic.claude-3-5-sonnet-20241022-v2:0";
const US_PROFILE: &str = "us.anthropic.claude-3-5-sonnet-20241022-v2:0";
/// Bedrock's message, typographic apostrophe included.
const ON_DEMAND_REFUSAL: &str = "Invocation of model ID anthropic.claude-3-5-sonnet-20241022-v2:0 with on-demand throughput isn’t supported. Retry your request with the ID or ARN of an inference profile that contains this model.";

fn refusal() -> Script {
    Script::error(400, "ValidationException", ON_DEMAND_REFUSAL)
}

/// Scripts `model_id` to refuse on-demand calls and the US profile to answer.
async fn sim_refusing(model_id: &str) -> SimHandle {
    support::sim_builder()
        .script(model_id, refusal())
        .script(US_PROFILE, Script::Reply(Reply::text("via the profile")))
        .start()
        .await
        .unwrap()
}

async fn provider(sim: &SimHandle) -> BedrockProvider {
    BedrockProvider::new(
        vec![BedrockAccountConfig {
            name: ACCOUNT.into(),
            region: "us-east-1".try_into().unwrap(),
            endpoint: Some(sim.url().try_into().unwrap()),
            auth: support::access_key(SECRET),
            // One request per attempt, so the profile switch is all there is to count.
            retry: RetryConfig::NO_RETRIES,
            timeouts: TimeoutOverrides::default(),
            model_timeouts: Default::default(),
        }],
        SharedClock::new(FixedClock(now())),
    )
    .await
    .unwrap()
    .with_timeouts(support::timeouts())
}

fn route(model_id: &str, region: &str) -> Route {
    support::route(ACCOUNT, format!("{ACCOUNT}/claude"), model_id, region)
}

fn request() -> ChatRequest {
    ChatRequest {
        model: format!("{ACCOUNT}/claude"),
        messages: vec![Message {
            role: Role::User,
            content: vec![ContentPart::Text("hello".into())],
        }],
        ..ChatRequest::default()
    }
}

/// Log lines, as the fmt subscriber writes them.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures INFO and above on this thread (the tests run on a current-thread runtime)
    /// while the guard lives.
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The model ids the simulator was called with, in order, and by which operation.
fn calls(sim: &SimHandle) -> Vec<(Operation, String)> {
    sim.requests()
        .into_iter()
        .map(|request| (request.operation, request.model_id))
        .collect()
}

#[tokio::test]
async fn a_refused_bare_id_is_retried_with_the_profile_which_the_route_keeps() {
    let (logs, _guard) = Logs::capture();
    let sim = sim_refusing(MODEL).await;
    let provider = provider(&sim).await;
    let route = route(MODEL, "us-east-1");
    let request = request();

    let first = provider
        .complete(ProviderRequest::new(&route, &request, None))
        .await
        .unwrap();
    assert_eq!(first.text.as_deref(), Some("via the profile"));
    assert_eq!(
        calls(&sim),
        [
            (Operation::Converse, MODEL.to_owned()),
            (Operation::Converse, US_PROFILE.to_owned())
        ]
    );

    // Straight to the profile, also from a provider with its own clients (one per core).
    for provider in [provider.clone(), provider.with_own_clients()] {
        let again = provider
            .complete(ProviderRequest::new(&route, &request, None))
            .await
            .unwrap();
        assert_eq!(again.text.as_deref(), Some("via the profile"));
    }
    let later: Vec<_> = calls(&sim).into_iter().skip(2).collect();
    assert_eq!(
        later,
        [
            (Operation::Converse, US_PROFILE.to_owned()),
            (Operation::Converse, US_PROFILE.to_owned())
        ]
    );

    // Logged once, at info, naming the route and the profile.
    let switches: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|line| line.contains("inference profile"))
        .collect();
    assert_eq!(switches.len(), 1, "{switches:#?}");
    assert!(switches[0].contains("INFO"), "{}", switches[0]);
    assert!(
        switches[0].contains(&format!("route={ACCOUNT}/claude")),
        "{}",
        switches[0]
    );
    assert!(
        switches[0].contains(&format!("profile={US_PROFILE}")),
        "{}",
        switches[0]
    );
}

#[tokio::test]
async fn a_stream_is_retried_alike_before_any_event() {
    let sim = sim_refusing(MODEL).await;
    let provider = provider(&sim).await;
    let route = route(MODEL, "us-east-1");
    let request = request();

    for _ in 0..2 {
        let events: Vec<ChatEvent> = provider
            .stream(ProviderRequest::new(&route, &request, None))
            .await
            .unwrap()
            .map(Result::unwrap)
            .collect()
            .await;
        let text: String = events
            .iter()
            .filter_map(|event| match event {
                ChatEvent::TextDelta(text) => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "via the profile");
    }
    assert_eq!(
        calls(&sim),
        [
            (Operation::ConverseStream, MODEL.to_owned()),
            (Operation::ConverseStream, US_PROFILE.to_owned()),
            (Operation::ConverseStream, US_PROFILE.to_owned())
        ]
    );
}

/// Calls `model_id` in `region`, which Bedrock refuses on demand, and checks that the
/// refusal comes back after that one call: no profile is tried.
async fn assert_refusal_passed_on(model_id: &str, region: &str) {
    let sim = sim_refusing(model_id).await;
    let provider = provider(&sim).await;
    let error = provider
        .complete(ProviderRequest::new(
            &route(model_id, region),
            &request(),
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        ProviderError::InvalidRequest {
            message: ON_DEMAND_REFUSAL.into()
        },
        "{model_id}"
    );
    assert_eq!(
        calls(&sim),
        [(Operation::Converse, model_id.to_owned())],
        "{model_id}"
    );
}

#[tokio::test]
async fn a_region_without_profiles_gets_bedrocks_error() {
    assert_refusal_passed_on(MODEL, "sa-east-1").await;
}

#[tokio::test]
async fn arns_and_profile_ids_are_never_rewritten() {
    for model_id in [
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20241022-v2:0",
        "eu.anthropic.claude-3-5-sonnet-20241022-v2:0",
    ] {
        assert_refusal_passed_on(model_id, "us-east-1").await;
    }
}

#[tokio::test]
async fn a_failed_retry_returns_its_error_and_is_not_remembered() {
    let sim = sim_refusing(MODEL).await;
    sim.set_script(US_PROFILE, Script::throttling());
    let provider = provider(&sim).await;
    let route = route(MODEL, "us-east-1");
    let request = request();

    for _ in 0..2 {
        let error = provider
            .complete(ProviderRequest::new(&route, &request, None))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProviderError::Throttled { .. }),
            "{error:?}"
        );
    }
    // Each call tried the bare id first: nothing was remembered from a failed retry.
    let models: Vec<String> = calls(&sim).into_iter().map(|(_, model)| model).collect();
    assert_eq!(models, [MODEL, US_PROFILE, MODEL, US_PROFILE]);
}
