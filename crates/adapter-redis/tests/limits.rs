//! `RedisLimits` against a real Redis: the script decides as core's window arithmetic does,
//! limits and budgets hold, counts expire, and two stores on one Redis share one limit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway_adapter_redis::RedisLimits;
use gateway_core::governance::rules::{self, Counts, WindowCounts};
use gateway_core::governance::window;
use gateway_core::{Admission, Consumption, KeyLimits, LimitKind, LimitState, LimitStore};
use redis::AsyncCommands;
use support::{raw_connection, RedisServer};

const MINUTE: Duration = Duration::from_secs(60);
/// Generous: these tests are about arithmetic, not latency (the outage tests bound it).
const TIMEOUT: Duration = Duration::from_secs(2);
/// A window index well after the epoch, as real clocks give.
const WINDOW: u64 = 29_000_000;

/// `fraction` of the way into window `index`.
fn at(index: u64, fraction: f64) -> SystemTime {
    UNIX_EPOCH + MINUTE * u32::try_from(index).unwrap() + MINUTE.mul_f64(fraction)
}

fn store(server: &RedisServer) -> RedisLimits {
    RedisLimits::new(&server.url(), TIMEOUT).unwrap()
}

fn rpm(limit: u32) -> KeyLimits {
    KeyLimits {
        rpm: Some(limit),
        ..KeyLimits::default()
    }
}

fn tpm(limit: u64) -> KeyLimits {
    KeyLimits {
        tpm: Some(limit),
        ..KeyLimits::default()
    }
}

fn state(admission: &Admission) -> LimitState {
    match admission {
        Admission::Admitted(state) | Admission::Limited { state, .. } => *state,
    }
}

/// Every (previous, current, elapsed, limit) case, for requests (cost 1) and tokens (cost 0):
/// the script admits exactly when `window::admits` does, counts the request only then, and
/// the answer carries `window::remaining` and `window::retry_after` of the same counts: it is
/// the in-process backend's `rules::decide`, field by field.
#[tokio::test]
async fn the_script_decides_as_core_window_functions_do() {
    let server = RedisServer::start();
    let limits = store(&server);
    let mut raw = raw_connection(&server).await;
    let counts = [0u64, 1, 3, 7, 9, 10, 11, 30, 59, 60, 61, 600];
    // Fractions whose doubles round in both directions, and the window's edges.
    let fractions = [
        0.0,
        0.05,
        0.1,
        0.25,
        1.0 / 3.0,
        0.5,
        2.0 / 3.0,
        0.7,
        0.9,
        0.999,
    ];
    let mut case = 0;
    let mut admitted_cases = 0;
    for limit in [10u64, 60] {
        for previous in counts {
            for current in counts {
                for fraction in fractions {
                    for cost in [1u64, 0] {
                        case += 1;
                        let key = format!("case-{case}");
                        let now = at(WINDOW, fraction);
                        let elapsed = window::position(now, MINUTE).elapsed;
                        let (limits_of_key, kind, current_key, previous_key) = if cost == 1 {
                            (
                                rpm(u32::try_from(limit).unwrap()),
                                LimitKind::Requests,
                                format!("gw:{{{key}}}:rpm:{WINDOW}"),
                                format!("gw:{{{key}}}:rpm:{}", WINDOW - 1),
                            )
                        } else {
                            (
                                tpm(limit),
                                LimitKind::Tokens,
                                format!("gw:{{{key}}}:tpm:{WINDOW}"),
                                format!("gw:{{{key}}}:tpm:{}", WINDOW - 1),
                            )
                        };
                        let _: () = raw
                            .mset(&[(&current_key, current), (&previous_key, previous)])
                            .await
                            .unwrap();
                        let answer = limits.admit(&key, &limits_of_key, now).await.unwrap();
                        let seen = WindowCounts { previous, current };
                        let counts = if cost == 1 {
                            Counts {
                                requests: seen,
                                ..Counts::default()
                            }
                        } else {
                            Counts {
                                tokens: seen,
                                ..Counts::default()
                            }
                        };
                        assert_eq!(
                            answer,
                            rules::decide(&counts, &limits_of_key, now),
                            "previous {previous}, current {current}, fraction {fraction}, \
                             limit {limit}, cost {cost}"
                        );
                        let what = format!(
                            "previous {previous}, current {current}, elapsed {elapsed}, \
                             limit {limit}, cost {cost}: {answer:?}"
                        );
                        let counted: u64 = raw.get(&current_key).await.unwrap();
                        let remaining =
                            |current| window::remaining(previous, current, elapsed, limit);
                        if window::admits(previous, current, elapsed, limit, cost) {
                            admitted_cases += 1;
                            assert!(matches!(answer, Admission::Admitted(_)), "{what}");
                            assert_eq!(counted, current + cost, "{what}");
                            let left = state(&answer).requests.or(state(&answer).tokens);
                            assert_eq!(
                                left.map(|r| r.remaining),
                                Some(remaining(current + cost)),
                                "{what}"
                            );
                        } else {
                            let expected = Admission::Limited {
                                kind,
                                retry_after: Some(window::retry_after(
                                    previous, current, elapsed, limit, cost, MINUTE,
                                )),
                                state: state(&answer),
                            };
                            assert_eq!(answer, expected, "{what}");
                            assert_eq!(
                                counted, current,
                                "a refused request is not counted: {what}"
                            );
                            let left = state(&answer).requests.or(state(&answer).tokens);
                            assert_eq!(
                                left.map(|r| r.remaining),
                                Some(remaining(current)),
                                "{what}"
                            );
                        }
                    }
                }
            }
        }
    }
    // Both answers occurred often: the cases test the boundary, not one side of it.
    assert!(
        admitted_cases > case / 4 && admitted_cases < case * 3 / 4,
        "{admitted_cases} of {case}"
    );
}

#[tokio::test]
async fn the_request_after_the_limit_is_refused() {
    let server = RedisServer::start();
    let limits = store(&server);
    let now = at(WINDOW, 0.5);
    for sent in 1..=5u64 {
        let answer = limits.admit("team-a", &rpm(5), now).await.unwrap();
        let Admission::Admitted(state) = answer else {
            panic!("request {sent} of 5 refused: {answer:?}");
        };
        assert_eq!(
            state.requests.map(|r| (r.limit, r.remaining)),
            Some((5, 5 - sent))
        );
    }
    let answer = limits.admit("team-a", &rpm(5), now).await.unwrap();
    let Admission::Limited {
        kind: LimitKind::Requests,
        retry_after: Some(wait),
        state,
    } = answer
    else {
        panic!("the 6th request of 5 was not limited: {answer:?}");
    };
    assert_eq!(wait, window::retry_after(0, 5, 0.5, 5, 1, MINUTE));
    assert_eq!(state.requests.map(|r| r.remaining), Some(0));
    // Another key has its own count.
    assert!(matches!(
        limits.admit("team-b", &rpm(5), now).await.unwrap(),
        Admission::Admitted(_)
    ));
}

/// The previous minute's requests fade out over the next: no second burst at the boundary.
#[tokio::test]
async fn the_window_slides_over_the_minute_boundary() {
    let server = RedisServer::start();
    let limits = store(&server);
    for _ in 0..10 {
        let answer = limits
            .admit("team-a", &rpm(10), at(WINDOW, 0.99))
            .await
            .unwrap();
        assert!(matches!(answer, Admission::Admitted(_)), "{answer:?}");
    }
    let early = limits
        .admit("team-a", &rpm(10), at(WINDOW + 1, 0.05))
        .await
        .unwrap();
    assert!(
        matches!(
            early,
            Admission::Limited {
                kind: LimitKind::Requests,
                ..
            }
        ),
        "{early:?}"
    );
    // A little over a tenth of the way in, one request's worth has faded.
    let later = limits
        .admit("team-a", &rpm(10), at(WINDOW + 1, 0.11))
        .await
        .unwrap();
    assert!(matches!(later, Admission::Admitted(_)), "{later:?}");
    let again = limits
        .admit("team-a", &rpm(10), at(WINDOW + 1, 0.11))
        .await
        .unwrap();
    assert!(matches!(again, Admission::Limited { .. }), "{again:?}");
}

#[tokio::test]
async fn recorded_tokens_are_enforced() {
    let server = RedisServer::start();
    let limits = store(&server);
    let key_limits = KeyLimits {
        rpm: Some(100),
        tpm: Some(1_000),
        ..KeyLimits::default()
    };
    let now = at(WINDOW, 0.25);
    assert!(matches!(
        limits.admit("team-a", &key_limits, now).await.unwrap(),
        Admission::Admitted(_)
    ));
    let used = Consumption {
        tokens: 600,
        cost_micros: 0,
    };
    limits
        .record_now("team-a", &key_limits, used, now)
        .await
        .unwrap();
    let answer = limits.admit("team-a", &key_limits, now).await.unwrap();
    assert_eq!(state(&answer).tokens.map(|r| r.remaining), Some(400));
    assert!(matches!(answer, Admission::Admitted(_)), "{answer:?}");
    limits
        .record_now("team-a", &key_limits, used, now)
        .await
        .unwrap();
    let answer = limits.admit("team-a", &key_limits, now).await.unwrap();
    let Admission::Limited {
        kind: LimitKind::Tokens,
        retry_after: Some(wait),
        state,
    } = answer
    else {
        panic!("1200 tokens of 1000 per minute were not limited: {answer:?}");
    };
    assert_eq!(wait, window::retry_after(0, 1_200, 0.25, 1_000, 0, MINUTE));
    assert_eq!(state.tokens.map(|r| r.remaining), Some(0));
    // Two requests admitted; the refused third was not counted.
    assert_eq!(state.requests.map(|r| r.remaining), Some(98));
}

/// Budgets, whole or not in micro-USD, around the spend that exhausts them: the script refuses
/// exactly when core's rule does, with the same answer.
#[tokio::test]
async fn the_script_refuses_budgets_as_core_does() {
    let server = RedisServer::start();
    let limits = store(&server);
    let mut raw = raw_connection(&server).await;
    let now = at(WINDOW, 0.5);
    let mut case = 0;
    // Budgets rounded up and down to whole micro-USD.
    for budget_usd in [
        0.0,
        0.000_001_4,
        0.000_001_5,
        0.25,
        1.0,
        7.123_456_4,
        7.123_456_7,
    ] {
        let key_limits = KeyLimits {
            budget_usd: Some(budget_usd),
            ..KeyLimits::default()
        };
        let budget = key_limits.budget_micros().unwrap();
        for spent_micros in [0, 1, budget.saturating_sub(1), budget, budget + 1] {
            case += 1;
            let key = format!("budget-{case}");
            let _: () = raw
                .set(format!("gw:{{{key}}}:budget:forever"), spent_micros)
                .await
                .unwrap();
            let counts = Counts {
                spent_micros,
                ..Counts::default()
            };
            assert_eq!(
                limits.admit(&key, &key_limits, now).await.unwrap(),
                rules::decide(&counts, &key_limits, now),
                "budget {budget_usd} USD, spent {spent_micros} micro-USD"
            );
        }
    }
}

#[tokio::test]
async fn recorded_spend_is_enforced_until_the_budget_period_resets() {
    let server = RedisServer::start();
    let limits = store(&server);
    let hour = Duration::from_secs(3_600);
    let key_limits = KeyLimits {
        budget_usd: Some(1.0),
        budget_period: Some(hour),
        ..KeyLimits::default()
    };
    // A quarter into an hour.
    let start = UNIX_EPOCH + hour * 480_000 + hour / 4;
    let spend = |cost_micros| Consumption {
        tokens: 0,
        cost_micros,
    };
    limits
        .record_now("team-a", &key_limits, spend(999_999), start)
        .await
        .unwrap();
    let answer = limits.admit("team-a", &key_limits, start).await.unwrap();
    assert_eq!(
        answer,
        Admission::Admitted(LimitState {
            budget_remaining_micros: Some(1),
            ..LimitState::default()
        })
    );
    limits
        .record_now("team-a", &key_limits, spend(1), start)
        .await
        .unwrap();
    let answer = limits.admit("team-a", &key_limits, start).await.unwrap();
    let Admission::Limited {
        kind: LimitKind::Budget,
        retry_after: Some(wait),
        state,
    } = answer
    else {
        panic!("a spent budget was not enforced: {answer:?}");
    };
    assert!((wait.as_secs_f64() - 2_700.0).abs() < 1e-3, "{wait:?}");
    assert_eq!(state.budget_remaining_micros, Some(0));
    // The spend lives as long as its period.
    let mut raw = raw_connection(&server).await;
    let ttl: i64 = raw.ttl("gw:{team-a}:budget:3600:480000").await.unwrap();
    assert!((1..=3_600).contains(&ttl), "{ttl}");
    // The next period starts from zero.
    let next = start + wait;
    let answer = limits.admit("team-a", &key_limits, next).await.unwrap();
    assert_eq!(
        answer,
        Admission::Admitted(LimitState {
            budget_remaining_micros: Some(1_000_000),
            ..LimitState::default()
        })
    );
}

#[tokio::test]
async fn a_budget_without_a_period_never_resets() {
    let server = RedisServer::start();
    let limits = store(&server);
    let key_limits = KeyLimits {
        budget_usd: Some(0.5),
        ..KeyLimits::default()
    };
    let now = at(WINDOW, 0.0);
    let spent = Consumption {
        tokens: 10,
        cost_micros: 500_000,
    };
    limits
        .record_now("team-a", &key_limits, spent, now)
        .await
        .unwrap();
    let years_later = now + Duration::from_secs(86_400 * 365 * 3);
    assert!(matches!(
        limits
            .admit("team-a", &key_limits, years_later)
            .await
            .unwrap(),
        Admission::Limited {
            kind: LimitKind::Budget,
            retry_after: None,
            ..
        }
    ));
    let mut raw = raw_connection(&server).await;
    let ttl: i64 = raw.ttl("gw:{team-a}:budget:forever").await.unwrap();
    assert_eq!(ttl, -1, "a budget that never resets is kept");
    // Tokens are counted only for keys with a tokens limit.
    let tokens: Option<u64> = raw
        .get(format!("gw:{{team-a}}:tpm:{WINDOW}"))
        .await
        .unwrap();
    assert_eq!(tokens, None);
}

#[tokio::test]
async fn rate_counts_expire_after_two_windows() {
    let server = RedisServer::start();
    let limits = store(&server);
    let key_limits = KeyLimits {
        rpm: Some(10),
        tpm: Some(1_000),
        ..KeyLimits::default()
    };
    let now = at(WINDOW, 0.5);
    limits.admit("team-a", &key_limits, now).await.unwrap();
    let used = Consumption {
        tokens: 5,
        cost_micros: 0,
    };
    limits
        .record_now("team-a", &key_limits, used, now)
        .await
        .unwrap();
    let mut raw = raw_connection(&server).await;
    for counter in ["rpm", "tpm"] {
        let ttl: i64 = raw
            .ttl(format!("gw:{{team-a}}:{counter}:{WINDOW}"))
            .await
            .unwrap();
        assert!((61..=120).contains(&ttl), "{counter}: {ttl}");
    }
}

/// `record` is fire and forget: what it spawns lands without anyone awaiting it.
#[tokio::test]
async fn record_through_the_port_lands_in_the_background() {
    let server = RedisServer::start();
    let limits = store(&server);
    let key_limits = tpm(100);
    let now = at(WINDOW, 0.5);
    let used = Consumption {
        tokens: 100,
        cost_micros: 0,
    };
    limits.record("team-a", &key_limits, used, now);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let answer = limits.admit("team-a", &key_limits, now).await.unwrap();
        if matches!(
            answer,
            Admission::Limited {
                kind: LimitKind::Tokens,
                ..
            }
        ) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the spawned record never landed"
        );
        tokio::task::yield_now().await;
    }
}

/// Two gateways (two stores, two connections) on one Redis: 2 x 50 concurrent requests
/// against 60 per minute admit exactly 60.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_redis_share_one_limit_exactly() {
    let server = RedisServer::start();
    let gateways = [store(&server), store(&server)];
    let now = at(WINDOW, 0.5);
    let mut requests = tokio::task::JoinSet::new();
    for gateway in &gateways {
        for _ in 0..50 {
            let gateway = gateway.clone();
            requests.spawn(async move { gateway.admit("team-a", &rpm(60), now).await });
        }
    }
    let mut admitted = 0;
    let mut limited = 0;
    while let Some(answer) = requests.join_next().await {
        match answer.unwrap().unwrap() {
            Admission::Admitted(_) => admitted += 1,
            Admission::Limited { kind, .. } => {
                assert_eq!(kind, LimitKind::Requests);
                limited += 1;
            }
        }
    }
    assert_eq!((admitted, limited), (60, 40));
    let mut raw = raw_connection(&server).await;
    let counted: u64 = raw
        .get(format!("gw:{{team-a}}:rpm:{WINDOW}"))
        .await
        .unwrap();
    assert_eq!(counted, 60);
}

#[tokio::test]
async fn a_key_without_limits_never_reaches_redis() {
    // No server at all: nothing to ask.
    let limits = RedisLimits::new(&support::url_on(support::free_port()), TIMEOUT).unwrap();
    let answer = limits
        .admit("team-a", &KeyLimits::default(), at(WINDOW, 0.0))
        .await;
    assert_eq!(answer, Ok(Admission::Admitted(LimitState::default())));
    assert_eq!(limits.backend_errors().count(), 0);
}
