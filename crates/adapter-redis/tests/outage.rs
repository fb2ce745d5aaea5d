//! Redis away: every call answers `LimitBackendError` within the timeout, never hangs, is
//! counted; and the same `RedisLimits` works again once Redis is back, without a restart.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod support;

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway_adapter_redis::{RedisLimits, RedisLimitsError};
use gateway_core::{Admission, Consumption, KeyLimits, LimitBackendError, LimitStore};
use support::RedisServer;
use tokio::time::Instant;

const TIMEOUT: Duration = Duration::from_millis(150);
/// What a failing call may take beyond the timeout on a busy machine: scheduling, not waiting.
const SLACK: Duration = Duration::from_millis(350);
/// How long the store may take to use Redis again once it is back (reconnection backs off to
/// one second between attempts).
const RECOVERY_DEADLINE: Duration = Duration::from_secs(10);

const LIMITS: KeyLimits = KeyLimits {
    rpm: Some(1_000),
    tpm: Some(100_000),
    budget_usd: Some(10.0),
    budget_period: None,
};

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_740_000_000)
}

const USED: Consumption = Consumption {
    tokens: 10,
    cost_micros: 10,
};

/// Runs `call`, asserting it answers within the bound, and returns its answer.
async fn bounded<T>(call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let answer = call.await;
    let took = started.elapsed();
    assert!(
        took <= TIMEOUT + SLACK,
        "a call took {took:?} with a {TIMEOUT:?} timeout"
    );
    answer
}

/// Admits and records fail, each within the bound, and are counted.
async fn assert_unavailable(limits: &RedisLimits) {
    let errors_before = limits.backend_errors().count();
    for _ in 0..3 {
        let answer = bounded(limits.admit("team-a", &LIMITS, now())).await;
        assert!(
            matches!(answer, Err(LimitBackendError { .. })),
            "{answer:?}"
        );
        let recorded = bounded(limits.record_now("team-a", &LIMITS, USED, now())).await;
        assert!(recorded.is_err(), "{recorded:?}");
    }
    assert_eq!(limits.backend_errors().count(), errors_before + 6);
}

/// Polls until an admit succeeds, within the recovery deadline.
async fn wait_for_recovery(limits: &RedisLimits) {
    let deadline = Instant::now() + RECOVERY_DEADLINE;
    loop {
        match bounded(limits.admit("team-a", &LIMITS, now())).await {
            Ok(Admission::Admitted(_)) => return,
            Ok(other) => panic!("{other:?}"),
            Err(error) => assert!(
                Instant::now() < deadline,
                "still failing {RECOVERY_DEADLINE:?} after Redis came back: {error}"
            ),
        }
    }
}

#[tokio::test]
async fn redis_killed_mid_run_fails_fast_then_recovers_on_restart() {
    let server = RedisServer::start();
    let port = server.port();
    let limits = RedisLimits::new(&server.url(), TIMEOUT).unwrap();
    assert!(limits.admit("team-a", &LIMITS, now()).await.is_ok());
    limits
        .record_now("team-a", &LIMITS, USED, now())
        .await
        .unwrap();

    server.stop();
    assert_unavailable(&limits).await;

    // Same port, same store: it reconnects (and loads the script into the new, empty Redis).
    let restarted = RedisServer::start_on(port);
    wait_for_recovery(&limits).await;
    limits
        .record_now("team-a", &LIMITS, USED, now())
        .await
        .unwrap();
    let answer = limits.admit("team-a", &LIMITS, now()).await.unwrap();
    let Admission::Admitted(state) = answer else {
        panic!("{answer:?}");
    };
    // The restarted Redis kept nothing: only what was counted since.
    assert_eq!(state.budget_remaining_micros, Some(10_000_000 - 10));
    drop(restarted);
}

/// A Redis that accepts and never answers (frozen, overloaded, a stalled path) is the case
/// only the timeout catches.
#[tokio::test]
async fn a_frozen_redis_times_out_then_recovers() {
    let server = RedisServer::start();
    let limits = RedisLimits::new(&server.url(), TIMEOUT).unwrap();
    assert!(limits.admit("team-a", &LIMITS, now()).await.is_ok());

    server.pause();
    let started = Instant::now();
    let answer = bounded(limits.admit("team-a", &LIMITS, now())).await;
    assert!(
        started.elapsed() >= TIMEOUT,
        "failed before the timeout, so not by it: {answer:?}"
    );
    let Err(error) = answer else {
        panic!("a frozen Redis answered: {answer:?}");
    };
    assert!(error.message.contains("longer than 150 ms"), "{error}");
    assert_unavailable(&limits).await;

    server.resume();
    wait_for_recovery(&limits).await;
}

/// A replica may start while Redis is down: the store connects once Redis is up.
#[tokio::test]
async fn a_store_built_while_redis_is_down_connects_when_it_comes_up() {
    let port = support::free_port();
    let limits = RedisLimits::new(&support::url_on(port), TIMEOUT).unwrap();
    assert_unavailable(&limits).await;

    let server = RedisServer::start_on(port);
    wait_for_recovery(&limits).await;
    drop(server);
}

#[tokio::test]
async fn a_url_the_client_cannot_use_is_refused_at_construction_and_by_the_check() {
    // `rediss://` too: TLS is not built in.
    for url in [
        "http://127.0.0.1:6379",
        "not a url",
        "rediss://127.0.0.1:6380",
    ] {
        let built = RedisLimits::new(url, TIMEOUT);
        assert!(
            matches!(built, Err(RedisLimitsError::InvalidUrl(_))),
            "{url}: {built:?}"
        );
        let checked = RedisLimits::check_url(url);
        assert!(
            matches!(checked, Err(RedisLimitsError::InvalidUrl(_))),
            "{url}: {checked:?}"
        );
    }
    for url in [
        "redis://127.0.0.1:6379",
        "redis://:secret@127.0.0.1:6379/2",
        "unix:///run/redis.sock",
    ] {
        assert!(RedisLimits::check_url(url).is_ok(), "{url}");
    }
}

#[tokio::test]
async fn a_zero_timeout_is_refused() {
    let built = RedisLimits::new("redis://127.0.0.1:6379", Duration::ZERO);
    assert!(
        matches!(built, Err(RedisLimitsError::ZeroTimeout)),
        "{built:?}"
    );
}

#[test]
fn the_store_needs_a_runtime_to_drive_its_connection() {
    let built = RedisLimits::new("redis://127.0.0.1:6379", TIMEOUT);
    assert!(
        matches!(built, Err(RedisLimitsError::NoRuntime)),
        "{built:?}"
    );
}
