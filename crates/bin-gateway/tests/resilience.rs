//! Resilience end to end: two simulated Bedrock accounts in two regions (one simulator each,
//! with its own access key, failures and call counters) behind the virtual model `claude-ha`,
//! through the real server. Retries inside each target, failover between them, circuit
//! breakers, weighted spread, guardrails per target, and the metrics of all of it.
//!
//! The gateway's clock (circuit-breaker cooldowns) is a [`ManualClock`] the tests move;
//! tests about retry waits or timeouts run on Tokio's paused clock, so no test sleeps.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::collections::HashMap;
use std::sync::Once;
use std::time::Duration;

use bedrock_sim::{
    stream, BedrockSim, Failure, Fault, Gate, Script, SimBuilder, SimHandle, SimRole, StreamStep,
};
use common::*;
use gateway_core::clock::{ManualClock, SharedClock};
use hyper::body::Incoming;
use serde_json::{json, Value};

/// The base identity in the environment, which assume-role accounts start from.
const BASE_KEY: &str = "AKIDTESTGATEWAYBASE1";
const EAST_KEY: &str = "AKIDTESTGATEWAYEAST1";
const WEST_KEY: &str = "AKIDTESTGATEWAYWEST1";
const EAST: &str = "east/claude-3";
const WEST: &str = "west/claude-3";

/// Each account's own settings (`retry`, `circuit_breaker`, `timeouts`, `auth`) go in
/// `#EAST#` / `#WEST#`; `#MORE#` adds tables (models, virtual models, `[server]`).
const TEMPLATE: &str = r#"
[auth]
keys = [{ name = "tests", key = "test-gateway-key" }]

[accounts.east]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "${EAST_URL}"
#EAST#

[accounts.east.models.claude-3]
model_id = "anthropic.claude-3-sonnet-20240229-v1:0"

[accounts.west]
type = "aws-bedrock"
region = "us-west-2"
endpoint = "${WEST_URL}"
auth = { type = "access-key", access_key_id = "AKIDTESTGATEWAYWEST1", secret_access_key = "${SIM_SECRET}" }
#WEST#

[accounts.west.models.claude-3]
model_id = "anthropic.claude-3-sonnet-20240229-v1:0"

[virtual_models."claude-ha"]
strategy = "failover"
targets = ["east/claude-3", "west/claude-3"]

#MORE#
"#;

const EAST_AUTH: &str = r#"auth = { type = "access-key", access_key_id = "AKIDTESTGATEWAYEAST1", secret_access_key = "${SIM_SECRET}" }"#;

/// Retries off: for tests whose subject is not retrying.
const ONE_ATTEMPT: &str = "retry = { max_attempts = 1 }";

fn config(east: &str, west: &str, more: &str) -> String {
    TEMPLATE
        .replace("#EAST#", &format!("{EAST_AUTH}\n{east}"))
        .replace("#WEST#", west)
        .replace("#MORE#", more)
}

/// One simulated account: Echo for every model, answering only its own access key.
fn account(access_key: &str) -> SimBuilder {
    environment();
    BedrockSim::builder().access_key(access_key, SECRET)
}

/// The default credential chain reads the process environment: the base identity the
/// assume-role account of one test starts from, and no instance metadata. Set once, before
/// any simulator starts, for every test of this binary.
fn environment() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_ACCESS_KEY_ID", BASE_KEY);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET);
        std::env::remove_var("AWS_SESSION_TOKEN");
        std::env::remove_var("AWS_PROFILE");
        std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/aws-config-for-tests");
        std::env::set_var(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials-for-tests",
        );
    });
}

struct Regions {
    east: SimHandle,
    west: SimHandle,
    /// The gateway's clock.
    clock: ManualClock,
    gw: TestGateway,
}

impl Regions {
    async fn start(east: SimBuilder, west: SimBuilder, config: &str) -> Self {
        Self::start_seeded(east, west, config, None).await
    }

    async fn start_seeded(
        east: SimBuilder,
        west: SimBuilder,
        config: &str,
        weighted_seed: Option<u64>,
    ) -> Self {
        let east = east.start().await.unwrap();
        let west = west.start().await.unwrap();
        // Starts at the real time: the simulators check SigV4 dates against theirs.
        let clock = ManualClock::at_unix(SharedClock::system().unix_seconds());
        let gw = TestGateway::serve(
            east.clone(),
            config,
            &[("EAST_URL", &east.url()), ("WEST_URL", &west.url())],
            SharedClock::new(clock.clone()),
            weighted_seed,
        )
        .await;
        Self {
            east,
            west,
            clock,
            gw,
        }
    }

    /// Bedrock calls so far: (east, west).
    fn calls(&self) -> (usize, usize) {
        (self.east.calls(CLAUDE), self.west.calls(CLAUDE))
    }

    async fn ask(&self, model: &str, stream: bool) -> http::Response<Incoming> {
        let body = json!({"model": model, "messages": user("Hello there"), "stream": stream});
        self.gw.send(self.gw.chat_request(Some(KEY), &body)).await
    }

    /// A non-streamed request for `claude-ha`: the answering target and the JSON.
    async fn chat(&self) -> (http::StatusCode, Option<String>, Value) {
        let response = self.ask("claude-ha", false).await;
        let target = target_of(&response);
        let (status, body) = json_of(response).await;
        (status, target, body)
    }

    /// A streamed request for `claude-ha`: status, target and every SSE event.
    async fn stream(&self) -> (http::StatusCode, Option<String>, Vec<String>) {
        let response = self.ask("claude-ha", true).await;
        let status = response.status();
        let target = target_of(&response);
        (status, target, SseReader::new(response).rest().await)
    }

    async fn metrics(&self) -> String {
        let (status, text) = self.gw.get("/metrics", None).await;
        assert_eq!(status, 200);
        text
    }
}

fn target_of(response: &http::Response<Incoming>) -> Option<String> {
    response
        .headers()
        .get("x-gateway-target")
        .map(|value| value.to_str().unwrap().to_owned())
}

/// The text of a streamed answer's deltas.
fn streamed_text(events: &[String]) -> String {
    events
        .iter()
        .filter_map(|event| serde_json::from_str::<Value>(event).ok())
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// A whole answer: the text Echo gives back and `[DONE]` last.
fn assert_complete_stream(events: &[String]) {
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    assert_eq!(streamed_text(events), "You said: Hello there", "{events:?}");
    assert!(
        events[0].contains(r#""model":"claude-ha""#),
        "the client's name for it: {events:?}"
    );
}

fn failovers(from: &str, reason: &str) -> String {
    format!(r#"gateway_failovers_total{{from="{from}",reason="{reason}"}}"#)
}

fn circuit_state(target: &str) -> String {
    format!(r#"gateway_circuit_state{{target="{target}"}}"#)
}

fn circuit_skips(target: &str) -> String {
    format!(r#"gateway_circuit_skips_total{{target="{target}"}}"#)
}

fn retries(account: &str, reason: &str) -> String {
    format!(r#"gateway_upstream_retries_total{{account="{account}",reason="{reason}"}}"#)
}

#[tokio::test]
async fn a_throttled_region_fails_over_to_the_other_streamed_or_not() {
    let regions = Regions::start(
        account(EAST_KEY).failure(CLAUDE, Failure::always(Fault::throttling())),
        account(WEST_KEY),
        &config(ONE_ATTEMPT, ONE_ATTEMPT, ""),
    )
    .await;

    let (status, target, body) = regions.chat().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(target.as_deref(), Some(WEST));
    assert_eq!(body["model"], "claude-ha", "the client's name for it");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: Hello there"
    );
    assert_eq!(regions.calls(), (1, 1));

    let (status, target, events) = regions.stream().await;
    assert_eq!(status, 200, "{events:?}");
    assert_eq!(target.as_deref(), Some(WEST));
    assert_complete_stream(&events);
    assert_eq!(regions.calls(), (2, 2));

    // Both throttled: the client gets the last target's error, naming it.
    regions
        .west
        .set_failure(CLAUDE, Failure::always(Fault::throttling()));
    let response = regions.ask("claude-ha", false).await;
    assert_eq!(response.headers()["retry-after"], "1");
    let target = target_of(&response);
    let (status, body) = json_of(response).await;
    assert_eq!((status.as_u16(), target.as_deref()), (429, Some(WEST)));
    assert_openai_error(&body, "rate_limit_exceeded");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Too many tokens"),
        "{body}"
    );
    assert_eq!(regions.calls(), (3, 3));

    let metrics = regions.metrics().await;
    assert_eq!(metric(&metrics, &failovers(EAST, "throttled")), Some(3.0));
    assert_eq!(
        metric(&metrics, &failovers(WEST, "throttled")),
        None,
        "the error the client got is not a failover: {metrics}"
    );

    let (_, models) = regions.gw.get("/v1/models", Some(KEY)).await;
    let models: Value = serde_json::from_str(&models).unwrap();
    let listed: Vec<(&str, &str)> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap(), m["owned_by"].as_str().unwrap()))
        .collect();
    assert_eq!(listed[..2], [(EAST, "east"), (WEST, "west")]);
    assert_eq!(listed[2].0, "claude-ha");
    assert_eq!(listed.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_throttled_call_is_retried_in_its_region_before_failing_over() {
    let regions = Regions::start(
        account(EAST_KEY).failure(CLAUDE, Failure::first_calls(2, Fault::throttling())),
        account(WEST_KEY),
        &config("retry = { max_attempts = 3 }", ONE_ATTEMPT, ""),
    )
    .await;

    // Two throttled attempts, the third answers: one answer, from the east.
    let (status, target, body) = regions.chat().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(target.as_deref(), Some(EAST));
    assert_eq!(regions.calls(), (3, 0));

    // Throttled on every attempt: all three in the east, then the west answers.
    regions
        .east
        .set_failure(CLAUDE, Failure::always(Fault::throttling()));
    let (status, target, events) = regions.stream().await;
    assert_eq!(status, 200, "{events:?}");
    assert_eq!(target.as_deref(), Some(WEST));
    assert_complete_stream(&events);
    assert_eq!(regions.calls(), (6, 1));

    let metrics = regions.metrics().await;
    assert_eq!(metric(&metrics, &retries("east", "throttling")), Some(4.0));
    assert_eq!(metric(&metrics, &retries("west", "throttling")), Some(0.0));
    assert_eq!(metric(&metrics, &failovers(EAST, "throttled")), Some(1.0));
}

#[tokio::test(start_paused = true)]
async fn errors_about_the_request_are_neither_retried_nor_failed_over() {
    let cases = [
        (
            Fault::validation("messages.0.content: too long"),
            400,
            "upstream_validation_error",
        ),
        (Fault::access_denied(), 502, "upstream_unauthorized"),
        (Fault::not_found(), 404, "upstream_not_found"),
        (Fault::model_error(), 502, "model_error"),
    ];
    for (fault, expected_status, code) in cases {
        let regions = Regions::start(
            account(EAST_KEY).failure(CLAUDE, Failure::always(fault.clone())),
            account(WEST_KEY),
            &config("retry = { max_attempts = 3 }", "", ""),
        )
        .await;
        for stream in [false, true] {
            let response = regions.ask("claude-ha", stream).await;
            let target = target_of(&response);
            let (status, body) = json_of(response).await;
            assert_eq!(status.as_u16(), expected_status, "{fault:?}: {body}");
            assert_openai_error(&body, code);
            assert_eq!(target.as_deref(), Some(EAST), "{fault:?}");
        }
        assert_eq!(regions.calls(), (2, 0), "{fault:?}: one call per request");
        let metrics = regions.metrics().await;
        assert!(
            !metrics.contains("gateway_failovers_total{"),
            "{fault:?}: {metrics}"
        );
        assert!(
            !metrics
                .lines()
                .any(|line| line.starts_with("gateway_upstream_retries_total{")
                    && !line.ends_with(" 0")),
            "{fault:?}: {metrics}"
        );
    }
}

#[tokio::test]
async fn broken_connections_and_server_errors_fail_over() {
    // Each fault, and the failover reason it is counted as: non-streamed, streamed.
    let cases = [
        (Fault::Reset, ["upstream_error"; 2]),
        (Fault::Close, ["upstream_error"; 2]),
        (Fault::service_unavailable(), ["upstream_unavailable"; 2]),
        (Fault::internal_server_error(), ["upstream_error"; 2]),
        // Converse: half a JSON body, then the connection is cut; ConverseStream: cut before
        // its first event.
        (
            Fault::cut_after_events(0),
            ["upstream_error", "upstream_protocol_error"],
        ),
    ];
    for (fault, reasons) in cases {
        let regions = Regions::start(
            account(EAST_KEY).failure(CLAUDE, Failure::always(fault.clone())),
            account(WEST_KEY),
            &config(ONE_ATTEMPT, ONE_ATTEMPT, ""),
        )
        .await;
        let (status, target, body) = regions.chat().await;
        assert_eq!(status, 200, "{fault:?}: {body}");
        assert_eq!(target.as_deref(), Some(WEST), "{fault:?}");
        let (status, target, events) = regions.stream().await;
        assert_eq!(status, 200, "{fault:?}: {events:?}");
        assert_eq!(target.as_deref(), Some(WEST), "{fault:?}");
        assert_complete_stream(&events);
        assert_eq!(regions.calls(), (2, 2), "{fault:?}");
        let metrics = regions.metrics().await;
        for reason in reasons {
            let expected = reasons.iter().filter(|r| **r == reason).count() as f64;
            assert_eq!(
                metric(&metrics, &failovers(EAST, reason)),
                Some(expected),
                "{fault:?}: {metrics}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_region_that_does_not_answer_in_time_fails_over() {
    let regions = Regions::start(
        account(EAST_KEY).failure(CLAUDE, Failure::always(Fault::stall())),
        account(WEST_KEY),
        &config(
            "retry = { max_attempts = 1 }\ntimeouts = { first_byte_ms = 2000 }",
            ONE_ATTEMPT,
            "",
        ),
    )
    .await;
    let (status, target, body) = regions.chat().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(target.as_deref(), Some(WEST));
    let (status, target, events) = regions.stream().await;
    assert_eq!((status.as_u16(), target.as_deref()), (200, Some(WEST)));
    assert_complete_stream(&events);
    assert_eq!(regions.calls(), (2, 2));
    let metrics = regions.metrics().await;
    assert_eq!(metric(&metrics, &failovers(EAST, "timeout")), Some(2.0));
}

#[tokio::test]
async fn a_region_whose_credentials_cannot_be_obtained_fails_over() {
    // The east account assumes a role its STS does not grant (the simulator knows no role).
    let config = config(ONE_ATTEMPT, ONE_ATTEMPT, "").replace(
        EAST_AUTH,
        r#"auth = { type = "assume-role", role_arn = "arn:aws:iam::111122223333:role/bedrock-invoke", sts_endpoint = "${EAST_URL}" }"#,
    );
    let east = account(EAST_KEY).access_key(BASE_KEY, SECRET);
    let regions = Regions::start(east, account(WEST_KEY), &config).await;
    let (status, target, body) = regions.chat().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(target.as_deref(), Some(WEST));
    assert_eq!(regions.east.sts_calls(), 1, "the role was asked for");
    assert_eq!(regions.calls(), (0, 1), "nothing unsigned reached the east");
    let metrics = regions.metrics().await;
    assert_eq!(
        metric(&metrics, &failovers(EAST, "credentials_unavailable")),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_stream_cut_after_its_first_events_ends_in_an_error_never_in_a_second_answer() {
    let east = account(EAST_KEY)
        .script(
            CLAUDE,
            Script::Stream(stream::text(
                &["First", " half", " and", " the rest"],
                "end_turn",
                (2, 4),
            )),
        )
        // messageStart and two deltas, then the connection is cut.
        .failure(CLAUDE, Failure::always(Fault::cut_after_events(3)));
    let regions = Regions::start(
        east,
        account(WEST_KEY),
        // Retries allowed: a stream is still never tried again once an event went out.
        &config("retry = { max_attempts = 3 }", "", ""),
    )
    .await;
    let (status, target, events) = regions.stream().await;
    assert_eq!((status.as_u16(), target.as_deref()), (200, Some(EAST)));
    assert_eq!(streamed_text(&events), "First half", "{events:?}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(last["error"]["message"].is_string(), "{events:?}");
    assert!(
        !events.iter().any(|event| event == "[DONE]"),
        "a cut answer never looks complete: {events:?}"
    );
    assert_eq!(regions.calls(), (1, 0), "never a second answer spliced on");
    let metrics = regions.metrics().await;
    assert!(!metrics.contains("gateway_failovers_total{"), "{metrics}");
}

#[tokio::test]
async fn an_exception_as_the_first_stream_event_fails_over() {
    let regions = Regions::start(
        account(EAST_KEY).failure(CLAUDE, Failure::always(Fault::throttling_event())),
        account(WEST_KEY),
        &config(ONE_ATTEMPT, ONE_ATTEMPT, ""),
    )
    .await;
    let (status, target, events) = regions.stream().await;
    assert_eq!((status.as_u16(), target.as_deref()), (200, Some(WEST)));
    assert_complete_stream(&events);
    assert_eq!(regions.calls(), (1, 1));
    let metrics = regions.metrics().await;
    assert_eq!(metric(&metrics, &failovers(EAST, "throttled")), Some(1.0));
}

#[tokio::test]
async fn the_breaker_opens_after_its_failures_and_one_probe_closes_it() {
    let regions = Regions::start(
        account(EAST_KEY).failure(CLAUDE, Failure::always(Fault::throttling())),
        account(WEST_KEY),
        &config(
            "retry = { max_attempts = 1 }\ncircuit_breaker = { failures = 2, cooldown_ms = 30000 }",
            ONE_ATTEMPT,
            "",
        ),
    )
    .await;
    let state = |metrics: &str| metric(metrics, &circuit_state(EAST));
    assert_eq!(state(&regions.metrics().await), Some(0.0), "closed");
    assert_eq!(
        metric(&regions.metrics().await, &circuit_state(WEST)),
        None,
        "the west account has no breaker"
    );

    // Two consecutive failures open it.
    for calls in [(1, 1), (2, 2)] {
        let (status, target, _) = regions.chat().await;
        assert_eq!((status.as_u16(), target.as_deref()), (200, Some(WEST)));
        assert_eq!(regions.calls(), calls);
    }
    assert_eq!(state(&regions.metrics().await), Some(1.0), "open");

    // Open: the east is not even called.
    let (_, target, _) = regions.chat().await;
    assert_eq!(target.as_deref(), Some(WEST));
    assert_eq!(regions.calls(), (2, 3));

    // After the cooldown one probe goes; it fails, so another cooldown starts.
    regions.clock.advance(Duration::from_millis(29_999));
    assert_eq!(state(&regions.metrics().await), Some(1.0), "still open");
    regions.clock.advance(Duration::from_millis(1));
    assert_eq!(state(&regions.metrics().await), Some(2.0), "half-open");
    let (_, target, _) = regions.chat().await;
    assert_eq!(target.as_deref(), Some(WEST));
    assert_eq!(regions.calls(), (3, 4), "the probe");
    assert_eq!(state(&regions.metrics().await), Some(1.0), "open again");

    // The east recovers, but its next answer takes a while: while that probe is in flight,
    // other requests still skip the east.
    regions.clock.advance(Duration::from_secs(30));
    let gate = Gate::new();
    regions
        .east
        .set_failure(CLAUDE, Failure::first_calls(1, Fault::stall_until(&gate)));
    let (probe, meanwhile) = tokio::join!(regions.chat(), async {
        regions.east.wait_calls(CLAUDE, 4).await;
        let meanwhile = regions.chat().await;
        gate.open();
        meanwhile
    });
    assert_eq!((probe.0.as_u16(), probe.1.as_deref()), (200, Some(EAST)));
    assert_eq!(
        (meanwhile.0.as_u16(), meanwhile.1.as_deref()),
        (200, Some(WEST))
    );
    assert_eq!(
        regions.calls(),
        (4, 5),
        "one probe, nothing else to the east"
    );

    // Closed: the east answers first again.
    let metrics = regions.metrics().await;
    assert_eq!(state(&metrics), Some(0.0), "closed");
    assert_eq!(metric(&metrics, &circuit_skips(EAST)), Some(2.0));
    assert_eq!(metric(&metrics, &failovers(EAST, "throttled")), Some(3.0));
    let (_, target, _) = regions.chat().await;
    assert_eq!(target.as_deref(), Some(EAST));
    assert_eq!(regions.calls(), (5, 5));
}

#[tokio::test]
async fn every_target_skipped_is_503_at_once() {
    let breaker =
        "retry = { max_attempts = 1 }\ncircuit_breaker = { failures = 1, cooldown_ms = 60000 }";
    let regions = Regions::start(
        account(EAST_KEY).failure(CLAUDE, Failure::always(Fault::service_unavailable())),
        account(WEST_KEY).failure(CLAUDE, Failure::always(Fault::throttling())),
        &config(breaker, breaker, ""),
    )
    .await;
    let (status, target, body) = regions.chat().await;
    assert_eq!((status.as_u16(), target.as_deref()), (429, Some(WEST)));
    assert_openai_error(&body, "rate_limit_exceeded");

    let response = regions.ask("claude-ha", false).await;
    assert_eq!(response.headers()["retry-after"], "1");
    let target = target_of(&response);
    let (status, body) = json_of(response).await;
    assert_eq!(
        (status.as_u16(), target.as_deref()),
        (503, None),
        "no target was called: {body}"
    );
    assert_openai_error(&body, "upstream_unavailable");
    assert_eq!(regions.calls(), (1, 1));
}

#[tokio::test]
async fn weighted_picks_follow_the_weights_over_a_fixed_seed_and_fail_over_to_the_rest() {
    const REQUESTS: usize = 200;
    let weighted = r#"
[virtual_models."claude-spread"]
strategy = "weighted"
targets = ["east/claude-3", "west/claude-3"]
weights = [3, 1]
"#;
    let config = config(ONE_ATTEMPT, ONE_ATTEMPT, weighted);
    let start = || Regions::start_seeded(account(EAST_KEY), account(WEST_KEY), &config, Some(7));

    let regions = start().await;
    let mut picks = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let response = regions.ask("claude-spread", false).await;
        assert_eq!(response.status(), 200);
        picks.push(target_of(&response).unwrap());
    }
    let mut per_target: HashMap<&str, usize> = HashMap::new();
    for pick in &picks {
        *per_target.entry(pick.as_str()).or_default() += 1;
    }
    let (east, west) = regions.calls();
    assert_eq!((per_target[EAST], per_target[WEST]), (east, west));
    // Three in four to the east: 150 of 200, within 10 % of all requests.
    assert!(
        east.abs_diff(REQUESTS * 3 / 4) <= REQUESTS / 10,
        "{east}/{west}"
    );
    assert!(west > 0);

    // The same seed picks the same targets, in the same order.
    let again = start().await;
    for expected in &picks[..20] {
        let response = again.ask("claude-spread", false).await;
        assert_eq!(target_of(&response).as_ref(), Some(expected));
    }

    // A throttled pick fails over to the other target.
    regions
        .east
        .set_failure(CLAUDE, Failure::always(Fault::throttling()));
    for _ in 0..20 {
        let response = regions.ask("claude-spread", false).await;
        assert_eq!(response.status(), 200);
        assert_eq!(target_of(&response).as_deref(), Some(WEST));
    }
    let (east_after, west_after) = regions.calls();
    assert!(east_after > east, "the east was still picked first");
    assert_eq!(west_after, west + 20);
    let metrics = regions.metrics().await;
    assert_eq!(
        metric(&metrics, &failovers(EAST, "throttled")),
        Some((east_after - east) as f64)
    );
}

#[tokio::test]
async fn an_enforced_guardrail_applies_on_the_target_failed_over_to() {
    let guarded = r#"
[accounts.west.models.guarded]
model_id = "anthropic.claude-3-sonnet-20240229-v1:0"
guardrail = { identifier = "gr-west", version = "3", mode = "enforced" }

[virtual_models."claude-guarded"]
strategy = "failover"
targets = ["east/claude-3", "west/guarded"]
"#;
    let regions = Regions::start(
        account(EAST_KEY).failure(CLAUDE, Failure::always(Fault::throttling())),
        account(WEST_KEY),
        &config(ONE_ATTEMPT, ONE_ATTEMPT, guarded),
    )
    .await;
    let enforced = json!({"guardrailIdentifier": "gr-west", "guardrailVersion": "3"});
    for stream in [false, true] {
        let response = regions.ask("claude-guarded", stream).await;
        assert_eq!(response.status(), 200);
        assert_eq!(target_of(&response).as_deref(), Some("west/guarded"));
        let east = regions.east.requests();
        let west = regions.west.requests();
        assert!(
            east.last().unwrap().body.get("guardrailConfig").is_none(),
            "the east has no guardrail"
        );
        let sent = &west.last().unwrap().body["guardrailConfig"];
        assert_eq!(sent["guardrailIdentifier"], enforced["guardrailIdentifier"]);
        assert_eq!(sent["guardrailVersion"], enforced["guardrailVersion"]);
    }
    assert_eq!(regions.calls(), (2, 2));

    // A client guardrail the west's enforced one conflicts with is refused before any call,
    // whichever target would have answered.
    let body = json!({"model": "claude-guarded", "messages": user("hi"),
        "guardrailConfig": {"guardrailIdentifier": "mine", "guardrailVersion": "1"}});
    let (status, body) = regions.gw.chat(&body).await;
    assert_eq!(status, 400, "{body}");
    assert_openai_error(&body, "guardrail_enforced");
    assert_eq!(regions.calls(), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn one_scenario_counts_retries_failovers_breaker_state_and_shed_requests() {
    let regions = Regions::start(
        account(EAST_KEY).failure(CLAUDE, Failure::first_calls(1, Fault::throttling())),
        account(WEST_KEY),
        &config(
            "retry = { max_attempts = 2 }\ncircuit_breaker = { failures = 1, cooldown_ms = 60000 }",
            ONE_ATTEMPT,
            "[server]\nmax_concurrent_requests = 1",
        ),
    )
    .await;

    // Retried once in the east, answered there.
    let (_, target, _) = regions.chat().await;
    assert_eq!(target.as_deref(), Some(EAST));
    // Throttled on both attempts: failed over, and the east's breaker opens.
    regions
        .east
        .set_failure(CLAUDE, Failure::always(Fault::throttling()));
    let (_, target, _) = regions.chat().await;
    assert_eq!(target.as_deref(), Some(WEST));
    // Skipped while open.
    let (_, target, _) = regions.chat().await;
    assert_eq!(target.as_deref(), Some(WEST));
    assert_eq!(regions.calls(), (4, 2));

    // One request in flight is the limit: the next is shed.
    let gate = Gate::new();
    regions
        .west
        .set_failure(CLAUDE, Failure::first_calls(1, Fault::stall_until(&gate)));
    let (held, shed) = tokio::join!(regions.chat(), async {
        regions.west.wait_calls(CLAUDE, 3).await;
        let shed = regions.chat().await;
        gate.open();
        shed
    });
    assert_eq!(held.0, 200, "{}", held.2);
    assert_eq!(shed.0, 503, "{}", shed.2);
    assert_openai_error(&shed.2, "overloaded");

    let metrics = regions.metrics().await;
    for (series, value) in [
        (retries("east", "throttling"), 2.0),
        (failovers(EAST, "throttled"), 1.0),
        (circuit_state(EAST), 1.0),
        (circuit_skips(EAST), 2.0),
        ("gateway_shed_requests_total".to_owned(), 1.0),
        ("gateway_in_flight_requests".to_owned(), 0.0),
    ] {
        assert_eq!(
            metric(&metrics, &series),
            Some(value),
            "{series} in {metrics}"
        );
    }
}

#[tokio::test]
async fn the_last_failure_before_skipped_targets_is_the_client_s_error_not_a_failover() {
    let regions = Regions::start(
        account(EAST_KEY).failure(CLAUDE, Failure::always(Fault::throttling())),
        account(WEST_KEY).failure(
            CLAUDE,
            Failure::first_calls(1, Fault::service_unavailable()),
        ),
        &config(
            ONE_ATTEMPT,
            "retry = { max_attempts = 1 }\ncircuit_breaker = { failures = 1, cooldown_ms = 60000 }",
            "",
        ),
    )
    .await;
    // The west fails once and its breaker opens; the client gets its 503.
    let (status, target, body) = regions.chat().await;
    assert_eq!(
        (status.as_u16(), target.as_deref()),
        (503, Some(WEST)),
        "{body}"
    );
    // Now the east fails and the west is skipped: the client gets the east's 429, which
    // passed nothing on.
    let (status, target, body) = regions.chat().await;
    assert_eq!(
        (status.as_u16(), target.as_deref()),
        (429, Some(EAST)),
        "{body}"
    );
    assert_eq!(regions.calls(), (2, 1));
    let metrics = regions.metrics().await;
    assert_eq!(
        metric(&metrics, &failovers(EAST, "throttled")),
        Some(1.0),
        "only the first request failed over from the east: {metrics}"
    );
    assert_eq!(metric(&metrics, &circuit_skips(WEST)), Some(1.0));
    assert_eq!(
        metric(
            &metrics,
            r#"gateway_upstream_errors_total{kind="throttled"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_silent_before_its_first_event_is_retried_then_fails_over() {
    // Headers, then nothing: the idle limit ends each attempt before any event.
    let east = account(EAST_KEY).script(CLAUDE, Script::Stream(vec![StreamStep::Hold]));
    let regions = Regions::start(
        east,
        account(WEST_KEY),
        &config(
            "retry = { max_attempts = 2 }\ntimeouts = { stream_idle_ms = 1000 }",
            ONE_ATTEMPT,
            "",
        ),
    )
    .await;
    let (status, target, events) = regions.stream().await;
    assert_eq!((status.as_u16(), target.as_deref()), (200, Some(WEST)));
    assert_complete_stream(&events);
    assert_eq!(regions.calls(), (2, 1));
    let metrics = regions.metrics().await;
    assert_eq!(metric(&metrics, &retries("east", "timeout")), Some(1.0));
    assert_eq!(metric(&metrics, &failovers(EAST, "timeout")), Some(1.0));
}

/// The two-region configuration of docs/resilience.md, pointed at the simulators: each
/// account's Bedrock and STS endpoints are its region's simulator.
fn documented_config() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/resilience.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let section = doc
        .split("## A configuration for two regions")
        .nth(1)
        .expect("the section is there");
    let toml = section
        .split("```toml\n")
        .nth(1)
        .and_then(|block| block.split("```").next())
        .expect("the section has a TOML block");
    let mut config = String::new();
    let mut url = "";
    for line in toml.lines() {
        if line.starts_with("[accounts.bedrock-east") {
            url = "${EAST_URL}";
        } else if line.starts_with("[accounts.bedrock-west") {
            url = "${WEST_URL}";
        }
        match line.strip_suffix(" }") {
            Some(auth) if line.starts_with("auth = ") => {
                config.push_str(&format!("{auth}, sts_endpoint = \"{url}\" }}\n"));
            }
            _ => {
                config.push_str(line);
                config.push('\n');
            }
        }
        if line.starts_with("region = ") {
            config.push_str(&format!("endpoint = \"{url}\"\n"));
        }
    }
    config
}

#[tokio::test(start_paused = true)]
async fn the_documented_two_region_configuration_fails_over_to_the_west() {
    const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
    let config = documented_config();
    assert_eq!(config.matches("sts_endpoint").count(), 2, "{config}");
    let endpoints = config
        .lines()
        .filter(|line| line.starts_with("endpoint = "));
    assert_eq!(endpoints.count(), 2, "{config}");
    let role = || SimRole::new("arn:aws:iam::111122223333:role/bedrock-invoke");
    let east = account(EAST_KEY)
        .access_key(BASE_KEY, SECRET)
        .role(role())
        .failure(MODEL, Failure::always(Fault::throttling()));
    let west = account(WEST_KEY).access_key(BASE_KEY, SECRET).role(role());
    let regions = Regions::start(east, west, &config.replace("${GATEWAY_KEY_TEAM_A}", KEY)).await;

    let response = regions.ask("claude-ha", false).await;
    let target = target_of(&response);
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(target.as_deref(), Some("bedrock-west/claude"));
    // Two attempts in the east (its max_attempts), then one in the west.
    assert_eq!(
        (regions.east.calls(MODEL), regions.west.calls(MODEL)),
        (2, 1)
    );
    assert_eq!((regions.east.sts_calls(), regions.west.sts_calls()), (1, 1));

    let response = regions.ask("claude-spread", true).await;
    assert_eq!(response.status(), 200);
    assert_eq!(target_of(&response).as_deref(), Some("bedrock-west/claude"));
    let (_, models) = regions.gw.get("/v1/models", Some(KEY)).await;
    assert!(models.contains(r#""id":"claude-ha""#), "{models}");
}
