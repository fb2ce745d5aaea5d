//! The real `gateway serve` process and its signals: SIGTERM drains (new connections refused,
//! open streams finish, the rest cut after `shutdown_grace_ms`, exit 0), SIGHUP reloads the
//! file (or refuses it, naming the bad key, while the old configuration serves), and `/ready`
//! follows the accounts' credentials (STS played by the simulator).
//!
//! The tests learn what the process did from its JSON log lines, never by waiting a while.

#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::process::Command;

use bedrock_sim::{stream, Gate, Script, SimHandle, SimRole, StreamStep};
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use serde_json::json;

const NEW_KEY: &str = "test-new-gateway-key";
const ROLE: &str = "arn:aws:iam::111122223333:role/bedrock-invoke";
const DENIED_ROLE: &str = "arn:aws:iam::111122223333:role/not-for-you";

/// What the lifecycle tests ask of a gateway process.
impl GatewayProcess {
    async fn chat_status(&self, key: &str) -> u16 {
        let response = self.send(chat(&self.url(""), key, "sim/echo", false)).await;
        let status = response.status().as_u16();
        response.into_body().collect().await.unwrap();
        status
    }

    /// Opens a stream of `sim/claude-3` and reads its first two events (the role and the
    /// first text): Bedrock's answer now waits at the gate.
    async fn open_stream(&self) -> SseReader {
        let response = self
            .send(chat(&self.url(""), KEY, "sim/claude-3", true))
            .await;
        assert_eq!(response.status(), 200);
        let mut reader = SseReader::new(response);
        assert!(reader.next().await.is_some(), "the role chunk");
        assert!(reader.next().await.is_some(), "the first text chunk");
        reader
    }
}

fn chat(url: &str, key: &str, model: &str, stream: bool) -> http::Request<Full<Bytes>> {
    let body = json!({"model": model, "messages": user("hi"), "stream": stream});
    http::Request::post(format!("{url}/v1/chat/completions"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// The simulator with `sim/claude-3` streaming "first", then waiting for the gate, then
/// " second" and the end; `sim/echo` answers at once.
async fn gated_sim(gate: &Gate) -> SimHandle {
    let mut steps = stream::text(&["first", " second"], "end_turn", (1, 2));
    steps.insert(2, StreamStep::WaitFor(gate.clone()));
    sim()
        .script(CLAUDE, Script::Stream(steps))
        .start()
        .await
        .unwrap()
}

/// A configuration of the simulator's account; `server` and `keys` are TOML lines.
fn config(sim: &SimHandle, server: &str, keys: &[&str]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| format!(r#"{{ name = "key-{i}", key = "{key}" }}"#))
        .collect();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
worker_threads = 2
{server}

[auth]
keys = [{keys}]

[accounts.sim]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "{url}"
auth = {{ type = "access-key", access_key_id = "{ACCESS_KEY_ID}", secret_access_key = "{SECRET}" }}
retry = {{ max_attempts = 1 }}
models.claude-3 = {{ model_id = "{CLAUDE}" }}
models.echo = {{ model_id = "anthropic.claude-3-haiku-20240307-v1:0" }}
"#,
        keys = keys.join(", "),
        url = sim.url(),
    )
}

#[tokio::test]
async fn sigterm_refuses_new_connections_lets_an_open_stream_finish_and_exits_0() {
    let gate = Gate::new();
    let sim = gated_sim(&gate).await;
    let mut gateway = GatewayProcess::start("drain", &config(&sim, "", &[KEY])).await;
    let mut stream = gateway.open_stream().await;

    gateway.signal("TERM");
    let draining = gateway
        .log("stopped accepting; letting requests in flight finish")
        .await;
    assert_eq!(draining["fields"]["streams"], 1, "{draining}");
    assert_eq!(draining["fields"]["grace_ms"], 30_000, "the default");
    assert!(
        tokio::net::TcpStream::connect(gateway.addr).await.is_err(),
        "a new connection is refused while the stream drains"
    );

    gate.open();
    let rest = stream.rest().await;
    assert_eq!(rest.last().map(String::as_str), Some("[DONE]"), "{rest:?}");
    // The stream's request line, written as it ends, is in the request's span (its id), not
    // in the chat's trace span, which the log leaves out.
    let line = gateway.log("request").await;
    assert_eq!(message_of(&line), "request", "{line}");
    assert!(
        line["span"]["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{line}"
    );
    let cut = gateway.logged("shutdown grace period over");
    assert_eq!(gateway.exit_code().await, Some(0));
    assert!(!cut, "nothing was cut");
}

#[tokio::test]
async fn a_stream_outliving_shutdown_grace_ms_is_cut_and_the_process_still_exits_0() {
    let gate = Gate::new();
    let sim = gated_sim(&gate).await;
    let mut gateway =
        GatewayProcess::start("cut", &config(&sim, "shutdown_grace_ms = 300", &[KEY])).await;
    let mut stream = gateway.open_stream().await;

    gateway.signal("TERM");
    let cut = gateway.log("shutdown grace period over").await;
    assert_eq!(cut["fields"]["streams"], 1, "{cut}");
    assert_eq!(cut["fields"]["grace_ms"], 300);
    let rest = stream.rest().await;
    assert!(
        !rest.iter().any(|event| event == "[DONE]"),
        "a cut stream never looks complete: {rest:?}"
    );
    assert_eq!(gateway.exit_code().await, Some(0));
    gate.open();
}

#[tokio::test]
async fn sighup_adds_a_key_keeps_the_old_ones_and_an_open_stream() {
    let gate = Gate::new();
    let sim = gated_sim(&gate).await;
    let mut gateway = GatewayProcess::start("add-key", &config(&sim, "", &[KEY])).await;
    let mut stream = gateway.open_stream().await;
    assert_eq!(gateway.chat_status(NEW_KEY).await, 401);

    // worker_threads and the connection limits only change at a restart: the reload says so
    // and goes on.
    let reloaded = gateway
        .reload(
            &config(
                &sim,
                "worker_threads = 1\nmax_connections = 99",
                &[KEY, NEW_KEY],
            )
            .replace("worker_threads = 2\n", ""),
            "configuration reloaded",
        )
        .await;
    assert_eq!(reloaded["fields"]["keys"], 2, "{reloaded}");
    assert!(
        gateway.logged("server.worker_threads changed: it applies at the next restart"),
        "{:#?}",
        gateway.seen
    );
    assert!(
        gateway.logged("server.max_connections changed: it applies at the next restart"),
        "{:#?}",
        gateway.seen
    );

    assert_eq!(gateway.chat_status(NEW_KEY).await, 200);
    assert_eq!(gateway.chat_status(KEY).await, 200);
    gate.open();
    let rest = stream.rest().await;
    assert_eq!(
        rest.last().map(String::as_str),
        Some("[DONE]"),
        "the stream opened before the reload ends whole: {rest:?}"
    );
    gateway.signal("TERM");
    assert_eq!(gateway.exit_code().await, Some(0));
}

#[tokio::test]
async fn sighup_with_a_broken_file_names_the_bad_key_and_the_old_configuration_serves() {
    let gate = Gate::new();
    let sim = gated_sim(&gate).await;
    let good = config(&sim, "", &[KEY]);
    let mut gateway = GatewayProcess::start("broken", &good).await;

    let refused = gateway
        .reload(
            &good.replace("region = \"us-east-1\"", "regoin = \"us-east-1\""),
            "configuration not reloaded, the running one stays",
        )
        .await;
    let message = message_of(&refused);
    assert!(
        message.contains("accounts.sim.regoin: unknown field `regoin`"),
        "{message}"
    );
    assert_eq!(refused["level"], "ERROR");
    assert_eq!(
        gateway.chat_status(KEY).await,
        200,
        "the old keys still work"
    );

    // A rule across settings, broken: refused the same way.
    let refused = gateway
        .reload(
            &format!(
                "{good}\n[virtual_models.ha]\nstrategy = \"failover\"\ntargets = [\"sim/nope\"]\n"
            ),
            "configuration not reloaded, the running one stays",
        )
        .await;
    assert!(
        message_of(&refused).contains("virtual_models.ha.targets"),
        "{refused}"
    );
    assert_eq!(gateway.chat_status(KEY).await, 200);

    // Hostile files: binary garbage, a runaway file, and a FIFO nobody writes to (opening it
    // would wait for a writer forever). Each is refused and the old configuration serves.
    let refused = gateway
        .reload(
            "\u{0}\u{1}\u{fffd}[[[\u{7f}",
            "configuration not reloaded, the running one stays",
        )
        .await;
    assert!(message_of(&refused).contains("not valid TOML"), "{refused}");
    let refused = gateway
        .reload(
            &"# padding\n".repeat(500_000),
            "configuration not reloaded, the running one stays",
        )
        .await;
    assert!(message_of(&refused).contains("larger than"), "{refused}");
    std::fs::remove_file(&gateway.config).unwrap();
    let made = Command::new("mkfifo")
        .arg(&gateway.config)
        .status()
        .unwrap();
    assert!(made.success());
    gateway.signal("HUP");
    let refused = gateway
        .log("configuration not reloaded, the running one stays")
        .await;
    assert!(
        message_of(&refused).contains("not a regular file"),
        "{refused}"
    );
    assert_eq!(gateway.chat_status(KEY).await, 200);
    std::fs::remove_file(&gateway.config).unwrap();
    assert!(!gateway.logged("configuration reloaded"));
    // A good file again is taken: the FIFO left no reload stuck.
    gateway.reload(&good, "configuration reloaded").await;
    gateway.signal("TERM");
    assert_eq!(gateway.exit_code().await, Some(0));
}

/// Two assume-role accounts; `second_role` is `good`'s or one STS refuses.
fn assume_role_config(sim: &SimHandle, second_role: &str) -> String {
    let account = |name: &str, role: &str| {
        format!(
            r#"
[accounts.{name}]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "{url}"
models.claude-3 = {{ model_id = "{CLAUDE}" }}
auth = {{ type = "assume-role", role_arn = "{role}", sts_endpoint = "{url}" }}
"#,
            url = sim.url()
        )
    };
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
worker_threads = 1

[auth]
keys = [{{ name = "tests", key = "{KEY}" }}]
{good}{second}"#,
        good = account("good", ROLE),
        second = account("second", second_role),
    )
}

#[tokio::test]
async fn ready_names_an_account_whose_sts_refuses_and_turns_ready_once_a_reload_fixes_it() {
    let sim = sim()
        .role(SimRole::new(ROLE))
        .role(SimRole::new(DENIED_ROLE).denied())
        .start()
        .await
        .unwrap();
    let mut gateway = GatewayProcess::start("ready", &assume_role_config(&sim, DENIED_ROLE)).await;
    let unusable = gateway
        .log("not ready: an account's credentials are unusable")
        .await;
    assert_eq!(unusable["fields"]["account"], "second", "{unusable}");

    for path in ["/ready", "/readyz"] {
        let (status, body) = gateway.get(path).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(body["status"], "not_ready");
        let accounts = body["accounts"].as_object().unwrap();
        assert_eq!(accounts.len(), 1, "only the refused account: {body}");
        let reason = accounts["second"].as_str().unwrap();
        assert!(reason.contains(DENIED_ROLE), "{reason}");
        assert!(!reason.contains(SECRET), "{reason}");
    }
    let (status, _) = gateway.get("/health").await;
    assert_eq!(status, 200, "a gateway that is not ready is still alive");

    gateway
        .reload(&assume_role_config(&sim, ROLE), "configuration reloaded")
        .await;
    gateway
        .log("ready: every account's credentials are usable")
        .await;
    let (status, body) = gateway.get("/ready").await;
    assert_eq!((status, body), (200, json!({"status": "ready"})));
    assert!(sim.requests().is_empty(), "readiness never calls Bedrock");
    gateway.signal("TERM");
    assert_eq!(gateway.exit_code().await, Some(0));
}
