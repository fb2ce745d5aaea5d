//! Several replicas on one Redis, end to end, against a real `redis-server` started for each
//! test: two gateways in front of one simulator, either two servers of this process (each with
//! its own `RedisLimits` and connection; on one clock the test holds at the start of a minute,
//! so the headers are exact) or two `gateway serve` processes. One limit, one token count and
//! one budget are enforced once across both; when Redis stops or freezes, `on_backend_error`
//! answers within the timeout; when it is back on the same port, the limits are again, without
//! restarting either gateway.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;
// adapter-redis's harness, shared rather than copied: a `redis-server` per test on a free
// loopback port, persistence off, killed on drop.
#[path = "../../adapter-redis/tests/support/mod.rs"]
mod redis_server;

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, UNIX_EPOCH};

use bedrock_sim::{Reply, Script, SimHandle};
use common::{
    assert_openai_error, header, metric, sim, user, GatewayClient, TestGateway, BASE_CONFIG,
    CLAUDE, SECRET,
};
use gateway_core::clock::{ManualClock, SharedClock};
use redis::AsyncCommands;
use redis_server::{raw_connection, RedisServer};
use serde_json::{json, Value};
use tokio::time::Instant;

/// The start of a minute and of a day, on the gateways' clock and the simulator's: the counts
/// are in one window whatever the wall clock says, so the waits are exact.
const START: u64 = 1_699_920_000;

/// Every call to Redis gets this long.
const REDIS_TIMEOUT_MS: u64 = 100;
/// What a request may take while Redis is away: the timeout, the simulator's answer and a
/// busy machine's scheduling; well under a second, and far from a hang.
const ANSWER_BOUND: Duration = Duration::from_millis(600);
/// How long the gateways may take to use Redis again once it is back (reconnection backs off
/// to one second between attempts).
const RECOVERY_DEADLINE: Duration = Duration::from_secs(10);

/// The keys and their limits: `rpm-5` for requests, `tpm-1000` for tokens, `budget` for
/// spend; a price on `sim/claude-3`; the Redis backend at `${REDIS_URL}`.
fn config(on_backend_error: &str) -> String {
    BASE_CONFIG
        .replace(
            r#"  { name = "strict", key = "test-strict-key", finish_reason_style = "strict" },"#,
            r#"  { name = "strict", key = "test-strict-key", finish_reason_style = "strict" },
  { name = "rpm-5", key = "test-rpm-5-key", rpm = 5 },
  { name = "tpm-1000", key = "test-tpm-1000-key", tpm = 1000 },
  { name = "budget", key = "test-budget-key", budget_usd = 0.01, budget_period = "1d" },"#,
        )
        .replace(
            "[accounts.sim.models.claude-3]\nmodel_id = \"anthropic.claude-3-sonnet-20240229-v1:0\"",
            "[accounts.sim.models.claude-3]\nmodel_id = \"anthropic.claude-3-sonnet-20240229-v1:0\"\n\
             price = { input = 3.0, output = 15.0, cache_read = 0.3, cache_write = 3.75 }",
        )
        + &format!(
            "\n[limits]\nbackend = \"redis\"\nredis_url = \"${{REDIS_URL}}\"\n\
             redis_timeout_ms = {REDIS_TIMEOUT_MS}\non_backend_error = \"{on_backend_error}\"\n\
             \n[console]\nadmin_keys = [{{ name = \"ops\", key = \"{ADMIN_KEY}\" }}]\n"
        )
}

const ADMIN_KEY: &str = "test-console-admin-key";

/// The console's view of the limits backend: `limits` of its status.
async fn console_limits(gw: &GatewayClient) -> Value {
    let (status, body) = gw.get("/console/api/status", Some(ADMIN_KEY)).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["limits"].clone()
}

const RPM_KEY: &str = "test-rpm-5-key";
const TPM_KEY: &str = "test-tpm-1000-key";
const BUDGET_KEY: &str = "test-budget-key";

/// Two gateways on `redis` in front of one simulator answering `script`, on one clock.
async fn replicas(
    redis: &RedisServer,
    script: Script,
    on_backend_error: &str,
) -> (TestGateway, TestGateway, SimHandle) {
    let sim = sim()
        .clock_at(UNIX_EPOCH + Duration::from_secs(START))
        .script(CLAUDE, script)
        .start()
        .await
        .unwrap();
    let clock = SharedClock::new(ManualClock::at_unix(START));
    let config = config(on_backend_error);
    assert!(
        config.contains("rpm = 5") && config.contains("price = {"),
        "{config}"
    );
    let url = redis.url();
    let vars = [("REDIS_URL", url.as_str())];
    let a = TestGateway::serve(sim.clone(), &config, &vars, clock.clone(), None).await;
    let b = TestGateway::serve(sim.clone(), &config, &vars, clock, None).await;
    (a, b, sim)
}

fn ask() -> Value {
    json!({"model": "sim/claude-3", "messages": user("Which replica am I on?")})
}

async fn metrics(gw: &GatewayClient) -> String {
    gw.get("/metrics", None).await.1
}

/// Waits until Redis holds `expected` at `key`: what a gateway records after an answer is
/// written in the background, so another gateway sees it a moment later.
async fn wait_for_count(redis: &RedisServer, key: &str, expected: u64) {
    let mut raw = raw_connection(redis).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let count: Option<u64> = raw.get(key).await.unwrap();
        if count == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key} is {count:?}, not {expected}, after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `request`, asserting it is answered within [`ANSWER_BOUND`].
async fn bounded<T>(request: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let answer = request.await;
    let took = started.elapsed();
    assert!(
        took < ANSWER_BOUND,
        "answered in {took:?} with a {REDIS_TIMEOUT_MS} ms Redis timeout"
    );
    answer
}

#[tokio::test]
async fn two_gateways_on_one_redis_enforce_one_rpm_limit_exactly() {
    let redis = RedisServer::start();
    let (a, b, sim) = replicas(&redis, Script::Echo, "allow").await;

    // Ten requests at once, five on each gateway: five answered, whichever they reached.
    let body = ask();
    let requests = (0..10).map(|i| {
        let gw = if i % 2 == 0 { &a } else { &b };
        gw.chat_parts(RPM_KEY, &body)
    });
    let answers = futures_util::future::join_all(requests).await;
    let statuses: Vec<u16> = answers
        .iter()
        .map(|(parts, _)| parts.status.as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&status| status == 200).count(),
        5,
        "{statuses:?}"
    );
    // Each answer saw the count both gateways share: every remaining value from 4 down to 0
    // once.
    let mut remaining: Vec<&str> = answers
        .iter()
        .filter(|(parts, _)| parts.status == 200)
        .map(|(parts, _)| header(parts, "x-ratelimit-remaining-requests").unwrap())
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, ["0", "1", "2", "3", "4"]);
    assert_eq!(sim.calls(CLAUDE), 5, "the refused never reached Bedrock");

    // The next request is refused by either gateway, with OpenAI's headers.
    for gw in [&a, &b] {
        let (parts, body) = gw.chat_parts(RPM_KEY, &ask()).await;
        assert_eq!(parts.status, 429, "{body}");
        assert_openai_error(&body, "rate_limit_exceeded");
        assert_eq!(header(&parts, "x-ratelimit-limit-requests"), Some("5"));
        assert_eq!(header(&parts, "x-ratelimit-remaining-requests"), Some("0"));
        // Five in this minute fade by one after a fifth of the next: 60 + 12 s, rounded up.
        assert_eq!(header(&parts, "retry-after"), Some("73"));
    }
    assert_eq!(sim.calls(CLAUDE), 5);
    let limited = r#"gateway_limited_requests_total{key="rpm-5",kind="requests"}"#;
    let on_a = metric(&metrics(&a).await, limited).unwrap_or(0.0);
    let on_b = metric(&metrics(&b).await, limited).unwrap_or(0.0);
    assert_eq!(on_a + on_b, 7.0, "5 of the burst and one more on each");
    assert_eq!(
        metric(&metrics(&a).await, "gateway_limits_backend_errors_total"),
        Some(0.0)
    );
}

#[tokio::test]
async fn tokens_counted_on_one_gateway_limit_the_key_on_the_other() {
    let redis = RedisServer::start();
    // 1000 input and 400 output tokens an answer: one answer takes the key over its 1000.
    let reply = Reply::text("Wordy.").usage(1000, 400);
    let (a, b, _) = replicas(&redis, Script::Reply(reply), "allow").await;
    let (parts, body) = a.chat_parts(TPM_KEY, &ask()).await;
    assert_eq!(parts.status, 200, "{body}");
    assert_eq!(header(&parts, "x-ratelimit-remaining-tokens"), Some("1000"));
    wait_for_count(&redis, &format!("gw:{{tpm-1000}}:tpm:{}", START / 60), 1400).await;

    let (parts, body) = b.chat_parts(TPM_KEY, &ask()).await;
    assert_eq!(parts.status, 429, "{body}");
    assert_openai_error(&body, "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "tokens");
    assert_eq!(header(&parts, "x-ratelimit-limit-tokens"), Some("1000"));
    assert_eq!(header(&parts, "x-ratelimit-remaining-tokens"), Some("0"));
}

#[tokio::test]
async fn a_budget_spent_on_one_gateway_is_refused_on_the_other() {
    let redis = RedisServer::start();
    // 0.003 + 0.006 = 0.009 USD an answer, of a 0.01 USD daily budget.
    let reply = Reply::text("Expensive.").usage(1000, 400);
    let (a, b, sim) = replicas(&redis, Script::Reply(reply), "allow").await;
    let spend = format!("gw:{{budget}}:budget:86400:{}", START / 86_400);
    let (parts, _) = a.chat_parts(BUDGET_KEY, &ask()).await;
    assert_eq!(parts.status, 200);
    assert_eq!(header(&parts, "x-gateway-cost-usd"), Some("0.009000"));
    wait_for_count(&redis, &spend, 9_000).await;
    // 0.001 USD left, seen from the other gateway: admitted, and the answer overspends it.
    let (parts, _) = b.chat_parts(BUDGET_KEY, &ask()).await;
    assert_eq!(parts.status, 200);
    wait_for_count(&redis, &spend, 18_000).await;

    for gw in [&a, &b] {
        let (parts, body) = gw.chat_parts(BUDGET_KEY, &ask()).await;
        assert_eq!(parts.status, 429, "{body}");
        assert_openai_error(&body, "insufficient_quota");
        assert_eq!(
            header(&parts, "retry-after"),
            Some("86400"),
            "at midnight UTC"
        );
    }
    assert_eq!(sim.calls(CLAUDE), 2);
}

/// USD per million tokens of `sim/claude-3`: input, output, cache read, cache write.
const PRICES: [f64; 4] = [3.0, 15.0, 0.3, 3.75];

#[tokio::test]
async fn each_gateway_s_cost_metric_is_its_tokens_times_the_price_and_together_the_spend_in_redis()
{
    let redis = RedisServer::start();
    // Every kind of token: uncached input, output, read from and written to the cache.
    let reply = Reply::text("Cached.").usage(120, 30).cache_usage(2000, 512);
    let (a, b, _) = replicas(&redis, Script::Reply(reply), "allow").await;
    // Tokens of each kind as the answers reported them, per gateway.
    let mut reported = [[0.0; 4]; 2];
    for (index, gw) in [(0, &a), (1, &b), (0, &a)] {
        let (parts, answer) = gw.chat_parts(BUDGET_KEY, &ask()).await;
        assert_eq!(parts.status, 200, "{answer}");
        let usage = |field: &str| usage_field(&answer, field);
        let read = usage("cache_read_input_tokens");
        let written = usage("cache_creation_input_tokens");
        let kinds = [
            usage("prompt_tokens") - read - written,
            usage("completion_tokens"),
            read,
            written,
        ];
        for (total, tokens) in reported[index].iter_mut().zip(kinds) {
            *total += tokens;
        }
    }
    let mut spent_usd = 0.0;
    for (gw, reported) in [(&a, reported[0]), (&b, reported[1])] {
        let metrics = metrics(gw).await;
        let tokens = |kind: &str| {
            metric(
                &metrics,
                &format!(
                    r#"gateway_tokens_total{{key="budget",model="sim/claude-3",kind="{kind}"}}"#
                ),
            )
            .unwrap_or(0.0)
        };
        let counted = ["input", "output", "cache_read", "cache_write"].map(tokens);
        assert_eq!(counted, reported, "{metrics}");
        assert!(counted.iter().all(|&tokens| tokens > 0.0), "{counted:?}");
        let priced: f64 = counted.iter().zip(PRICES).map(|(t, p)| t * p).sum::<f64>() / 1e6;
        let cost = metric(
            &metrics,
            r#"gateway_cost_usd_total{key="budget",model="sim/claude-3"}"#,
        )
        .unwrap();
        assert!((cost - priced).abs() < 1e-9, "{cost} != {priced}");
        spent_usd += cost;
    }
    // What the replicas report, together, is what Redis holds against the key's budget.
    let spend = format!("gw:{{budget}}:budget:86400:{}", START / 86_400);
    wait_for_count(&redis, &spend, (spent_usd * 1e6).round() as u64).await;
}

fn usage_field(answer: &Value, field: &str) -> f64 {
    answer["usage"][field]
        .as_f64()
        .unwrap_or_else(|| panic!("usage.{field} in {answer}"))
}

/// Kills Redis mid-run and restarts it on the same port; with `on_backend_error`, `during`
/// checks a request answered meanwhile. Returns the restarted server.
async fn stop_and_restart(
    redis: RedisServer,
    a: &GatewayClient,
    b: &GatewayClient,
    during: impl AsyncFn(&GatewayClient),
) -> RedisServer {
    let port = redis.port();
    redis.stop();
    let errors_before = metric(&metrics(a).await, "gateway_limits_backend_errors_total").unwrap();
    // More requests than the limit allows, on both: none waits for Redis longer than the
    // timeout.
    for _ in 0..4 {
        for gw in [a, b] {
            bounded(during(gw)).await;
        }
    }
    let errors = metric(&metrics(a).await, "gateway_limits_backend_errors_total").unwrap();
    assert!(errors >= errors_before + 4.0, "{errors_before} -> {errors}");
    RedisServer::start_on(port)
}

/// Polls `gw` until its key's requests are counted in Redis again (the admission answers with
/// the limit's headers), within the deadline. Redis came back empty: that request is the
/// first of the minute, or nearly (a call that timed out may have been counted all the same).
async fn wait_until_enforced(gw: &GatewayClient) {
    let deadline = Instant::now() + RECOVERY_DEADLINE;
    loop {
        let (parts, body) = gw.chat_parts(RPM_KEY, &ask()).await;
        if let (200, Some(remaining)) = (
            parts.status.as_u16(),
            header(&parts, "x-ratelimit-remaining-requests"),
        ) {
            // 4 unless an earlier call of this loop reached Redis but timed out.
            let remaining: u32 = remaining.parse().unwrap();
            assert!(remaining <= 4, "{remaining}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "limits not enforced {RECOVERY_DEADLINE:?} after Redis came back: {} {body}",
            parts.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After recovery, one request counted by [`wait_until_enforced`]: at most four more admitted
/// by Redis, then refused on both gateways.
///
/// On a loaded machine a Redis call can outlast the 100 ms timeout; `allow` then serves that
/// request without limit headers (and Redis may still have counted it), so such answers are
/// told apart from Redis's own admissions instead of assuming every call arrived in time.
async fn assert_enforced_again(a: &GatewayClient, b: &GatewayClient) {
    wait_until_enforced(a).await;
    let mut admitted_by_redis = 0;
    let mut refused_on = None;
    for (i, gw) in [b, a].into_iter().cycle().take(12).enumerate() {
        let (parts, body) = gw.chat_parts(RPM_KEY, &ask()).await;
        match parts.status.as_u16() {
            200 if header(&parts, "x-ratelimit-remaining-requests").is_some() => {
                admitted_by_redis += 1;
            }
            // The call to Redis timed out: served, as `allow` says, without a limit state.
            200 => {}
            429 => {
                assert_openai_error(&body, "rate_limit_exceeded");
                refused_on = Some(i % 2);
                break;
            }
            status => panic!("{status}: {body}"),
        }
    }
    let refused_on = refused_on.expect("the key's limit is enforced again");
    assert!(
        admitted_by_redis <= 4,
        "{admitted_by_redis} admitted after the first"
    );
    // The other gateway refuses too (retrying only answers served without Redis).
    let other = if refused_on == 0 { a } else { b };
    let deadline = Instant::now() + RECOVERY_DEADLINE;
    loop {
        let (parts, body) = other.chat_parts(RPM_KEY, &ask()).await;
        if parts.status == 429 {
            assert_openai_error(&body, "rate_limit_exceeded");
            return;
        }
        assert!(
            parts.status == 200 && header(&parts, "x-ratelimit-remaining-requests").is_none(),
            "the other gateway admitted past the limit: {} {body}",
            parts.status
        );
        assert!(Instant::now() < deadline, "never refused: {body}");
    }
}

#[tokio::test]
async fn with_redis_stopped_allow_serves_within_the_timeout_and_counts_the_errors() {
    let redis = RedisServer::start();
    let (a, b, sim) = replicas(&redis, Script::Echo, "allow").await;
    let (parts, _) = a.chat_parts(RPM_KEY, &ask()).await;
    assert_eq!(parts.status, 200);
    assert_eq!(header(&parts, "x-ratelimit-remaining-requests"), Some("4"));

    let redis = stop_and_restart(redis, &a, &b, async |gw: &GatewayClient| {
        let (parts, body) = gw.chat_parts(RPM_KEY, &ask()).await;
        assert_eq!(parts.status, 200, "served unlimited: {body}");
        assert_eq!(
            header(&parts, "x-ratelimit-remaining-requests"),
            None,
            "no limit state is known"
        );
        let limits = console_limits(gw).await;
        assert_eq!(limits["backend"], "redis", "{limits}");
        assert_eq!(limits["state"], "error", "{limits}");
    })
    .await;
    assert_eq!(
        sim.calls(CLAUDE),
        9,
        "one before and eight during the outage"
    );
    for gw in [&a, &b] {
        let errors = metric(&metrics(gw).await, "gateway_limits_backend_errors_total").unwrap();
        assert!(errors >= 4.0, "{errors}");
    }

    assert_enforced_again(&a, &b).await;
    let limits = console_limits(&a).await;
    assert_eq!(limits["state"], "ok", "{limits}");
    assert_eq!(limits["last_error"], Value::Null, "{limits}");
    drop(redis);
}

#[tokio::test]
async fn with_redis_stopped_deny_refuses_with_503_within_the_timeout() {
    let redis = RedisServer::start();
    let (a, b, sim) = replicas(&redis, Script::Echo, "deny").await;
    let (parts, _) = a.chat_parts(RPM_KEY, &ask()).await;
    assert_eq!(parts.status, 200);

    let redis = stop_and_restart(redis, &a, &b, async |gw: &GatewayClient| {
        let (parts, body) = gw.chat_parts(RPM_KEY, &ask()).await;
        assert_eq!(parts.status, 503, "{body}");
        assert_openai_error(&body, "limits_unavailable");
        assert_eq!(header(&parts, "retry-after"), Some("1"));
        // A key without limits never asks Redis: it is served all along.
        let (status, _) = gw.chat(&ask()).await;
        assert_eq!(status, 200);
    })
    .await;
    assert_eq!(
        sim.calls(CLAUDE),
        1 + 8,
        "of the limited key, only the request before the outage reached Bedrock"
    );

    assert_enforced_again(&a, &b).await;
    drop(redis);
}

#[tokio::test]
async fn a_frozen_redis_costs_a_request_the_timeout_and_no_more() {
    let redis = RedisServer::start();
    let (a, b, _) = replicas(&redis, Script::Echo, "allow").await;
    let (parts, _) = a.chat_parts(RPM_KEY, &ask()).await;
    assert_eq!(parts.status, 200);

    // Connections stay open and nothing answers, as with an overloaded Redis or a stalled
    // network path: each check waits out the timeout, then the request is served.
    redis.pause();
    for gw in [&a, &b, &a, &b] {
        let started = Instant::now();
        let (parts, body) = bounded(gw.chat_parts(RPM_KEY, &ask())).await;
        assert_eq!(parts.status, 200, "{body}");
        assert_eq!(header(&parts, "x-ratelimit-remaining-requests"), None);
        assert!(
            started.elapsed() >= Duration::from_millis(REDIS_TIMEOUT_MS),
            "the check waited for the timeout: {:?}",
            started.elapsed()
        );
    }
    for gw in [&a, &b] {
        let errors = metric(&metrics(gw).await, "gateway_limits_backend_errors_total").unwrap();
        assert!(errors >= 2.0, "{errors}");
    }

    // Once it runs again, the checks answer again. (Redis may still run the checks that
    // timed out and count them: an outage errs on the side of the limit.)
    redis.resume();
    let deadline = Instant::now() + RECOVERY_DEADLINE;
    loop {
        let (parts, body) = b.chat_parts(RPM_KEY, &ask()).await;
        if header(&parts, "x-ratelimit-limit-requests") == Some("5") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no limit state {RECOVERY_DEADLINE:?} after Redis resumed: {} {body}",
            parts.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `gateway serve` in a process of its own, as replicas run (its own sharded runtimes, its own
/// Redis connection); killed on drop.
struct GatewayProcess {
    child: Child,
    config: PathBuf,
    client: GatewayClient,
}

impl std::ops::Deref for GatewayProcess {
    type Target = GatewayClient;

    fn deref(&self) -> &GatewayClient {
        &self.client
    }
}

impl GatewayProcess {
    /// Serves `config` (on `listen = "127.0.0.1:0"`), reading `${NAME}`s from `vars`; returns
    /// once it logged the address it listens on.
    async fn start(config: &str, vars: &[(&str, &str)]) -> Self {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "gateway-redis-limits-{}-{}.toml",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, config).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
        command
            .args(["--log-format", "json", "serve", "--config"])
            .arg(&path)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (listening, addr) = mpsc::channel();
        // Reads the log to its end, so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if let Some(addr) = event["fields"]["addr"].as_str() {
                    let _ = listening.send(addr.to_owned());
                }
            }
        });
        let addr = tokio::task::spawn_blocking(move || addr.recv_timeout(Duration::from_secs(30)))
            .await
            .unwrap()
            .expect("`gateway serve` logs where it listens within 30 s");
        Self {
            child,
            config: path,
            client: GatewayClient::new(format!("http://{addr}")),
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

#[tokio::test]
async fn two_gateway_processes_on_one_redis_share_one_limit_and_outlive_a_redis_restart() {
    let redis = RedisServer::start();
    // On the wall clock, as deployed: the test takes seconds, so whatever minute boundary it
    // crosses, the sliding window still holds the key to five.
    let sim = sim().script(CLAUDE, Script::Echo).start().await.unwrap();
    let config = config("allow") + "\n[server]\nlisten = \"127.0.0.1:0\"\nworker_threads = 2\n";
    let (sim_url, redis_url) = (sim.url(), redis.url());
    let vars = [
        ("SIM_URL", sim_url.as_str()),
        ("SIM_SECRET", SECRET),
        ("REDIS_URL", redis_url.as_str()),
    ];
    let a = GatewayProcess::start(&config, &vars).await;
    let b = GatewayProcess::start(&config, &vars).await;

    let body = ask();
    let requests = (0..10).map(|i| {
        let gw = if i % 2 == 0 { &a } else { &b };
        gw.chat_parts(RPM_KEY, &body)
    });
    let answered = futures_util::future::join_all(requests)
        .await
        .iter()
        .filter(|(parts, _)| parts.status == 200)
        .count();
    assert_eq!(answered, 5);
    for gw in [&a, &b] {
        let (parts, body) = gw.chat_parts(RPM_KEY, &ask()).await;
        assert_eq!(parts.status, 429, "{body}");
        assert_openai_error(&body, "rate_limit_exceeded");
    }
    assert_eq!(sim.calls(CLAUDE), 5);

    let redis = stop_and_restart(redis, &a, &b, async |gw: &GatewayClient| {
        let (parts, body) = gw.chat_parts(RPM_KEY, &ask()).await;
        assert_eq!(parts.status, 200, "served unlimited: {body}");
    })
    .await;
    assert_enforced_again(&a, &b).await;
    drop(redis);
}
