//! The web console in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) against `gateway demo` on loopback, driven over WebDriver. Signs in with
//! the admin key, reads the status and routes pages, sends the seed's guardrail request from
//! the playground, watches a stream render part by part, waits for the traffic charts, and
//! checks that the strict Content-Security-Policy was never violated and no script failed. Screenshots of each page
//! go to `target/console-screenshots/` (docs/console.md shows them).

#![cfg(feature = "demo")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

#[path = "console_browser/webdriver.rs"]
mod webdriver;

use std::path::PathBuf;
use std::time::Instant;

use bedrock_sim::{stream, Gate, Script, StreamStep};
use bytes::Bytes;
use gateway::demo::{start_demo, Demo, DEMO_ADMIN_KEY, DEMO_KEY};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use webdriver::{Browser, DEADLINE};

/// The Bedrock model behind `demo/claude-3` (the simulator's echo, until a test scripts it).
const CLAUDE_3: &str = "anthropic.claude-3-sonnet-20240229-v1:0";

/// The seed's guardrail request (docs/guardrails.md), sent to the demo's masking model.
const SEED_QUESTION: &str = "What are some ideas for email for Elon Musk?";
const SEED_GUARDRAIL: &str = "xyz-123-768";

/// Records every CSP violation the page reports from now on, in `window.cspViolations`.
const LISTEN_FOR_CSP_VIOLATIONS: &str = "
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
        window.cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
    });";

struct Console {
    demo: Demo,
    browser: Browser,
}

impl Console {
    async fn start() -> Self {
        let demo = start_demo("127.0.0.1:0".parse().unwrap())
            .await
            .expect("the demo starts");
        let browser = Browser::start().await;
        Self { demo, browser }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.demo.gateway.url())
    }

    /// Opens the console's login page and listens for CSP violations.
    async fn open(&self) {
        self.browser.goto(&self.url("/console/")).await;
        self.browser.field("Admin key").await;
        self.browser
            .execute(LISTEN_FOR_CSP_VIOLATIONS, vec![])
            .await;
    }

    async fn sign_in(&self, key: &str) {
        let field = self.browser.field("Admin key").await;
        self.browser.type_into(&field, key).await;
        let submit = self.browser.button("Sign in").await;
        self.browser.click(&submit).await;
    }

    async fn show(&self, page: &str) {
        self.browser
            .goto(&self.url(&format!("/console/#/{page}")))
            .await;
        self.browser
            .element(&format!("[data-testid=page-{page}]"))
            .await;
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let path = screenshot_dir().join(format!("{name}.png"));
        self.browser.screenshot(&path).await;
        path
    }

    /// Whether the element matching `css` is there and has `class`.
    async fn has_class(&self, css: &str, class: &str) -> bool {
        self.browser
            .execute(
                "return document.querySelector(arguments[0])?.classList.contains(arguments[1]) ?? false;",
                vec![json!(css), json!(class)],
            )
            .await
            == true
    }

    async fn text_content(&self, css: &str) -> String {
        self.browser
            .execute(
                "return document.querySelector(arguments[0])?.textContent ?? '';",
                vec![json!(css)],
            )
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// No CSP violation was reported to the page's listener or logged to the console, and no
    /// script failed.
    async fn assert_clean_console(&self) {
        let reported = self
            .browser
            .execute("return window.cspViolations;", vec![])
            .await;
        assert_eq!(reported, json!([]), "the page reported CSP violations");
        let logged: Vec<String> = self
            .browser
            .console_log()
            .await
            .into_iter()
            .filter(|message| {
                message.contains("Content Security Policy") || message.contains("Uncaught")
            })
            .collect();
        assert!(
            logged.is_empty(),
            "CSP violations or script errors logged: {logged:?}"
        );
    }

    /// GET an admin API path with the demo's admin key.
    async fn admin_api(&self, path: &str) -> Value {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let request = http::Request::get(self.url(path))
            .header("authorization", format!("Bearer {DEMO_ADMIN_KEY}"))
            .body(Full::default())
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&body).unwrap()
    }

    async fn shutdown(self) {
        drop(self.browser);
        self.demo.sim.shutdown();
        self.demo.gateway.shutdown().await.unwrap();
    }
}

/// `target/console-screenshots/`, beside the test binaries' scratch folder.
fn screenshot_dir() -> PathBuf {
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    scratch
        .parent()
        .map_or_else(|| scratch.clone(), PathBuf::from)
        .join("console-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_admin_key_is_refused_and_the_login_stays() {
    let console = Console::start().await;

    // A gateway key is not an admin key either.
    for wrong in ["not-the-admin-key", DEMO_KEY] {
        console.open().await;
        console.sign_in(wrong).await;
        let error = console
            .browser
            .wait_for_text("[data-testid=login-error]", |t| !t.is_empty())
            .await;
        assert_eq!(error, "wrong admin key");
        assert!(
            console.browser.find("nav").await.is_none(),
            "still on the login"
        );
        let stored = console
            .browser
            .execute(
                "return sessionStorage.getItem('gateway-console.admin-key');",
                vec![],
            )
            .await;
        assert_eq!(stored, Value::Null, "a refused key is not kept");
    }
    console.screenshot("login-refused").await;
    console.assert_clean_console().await;
    console.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_console_page_works_in_a_real_browser() {
    let console = Console::start().await;
    console.open().await;
    console.screenshot("login").await;
    console.sign_in(DEMO_ADMIN_KEY).await;

    // Status: the demo's three accounts, their auth, region and credential state.
    console.browser.element("[data-testid=page-status]").await;
    for (account, region) in [
        ("demo", "us-east-1"),
        ("demo-east", "us-east-1"),
        ("demo-west", "us-west-2"),
    ] {
        let row = console
            .browser
            .wait_for_text(&format!("[data-testid=account-{account}]"), |_| true)
            .await;
        assert!(row.starts_with(account), "{row}");
        assert!(row.contains("access-key"), "{row}");
        assert!(row.contains(region), "{row}");
        assert!(row.contains("valid"), "{row}");
    }
    let version = console
        .browser
        .wait_for_text("[data-testid=version]", |t| !t.is_empty())
        .await;
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    console.screenshot("status").await;

    // Routes: models with their Bedrock ids and guardrails, virtual models, keys by name.
    console.show("routes").await;
    let guarded = console
        .browser
        .wait_for_text("[data-testid=\"model-demo/guarded\"]", |_| true)
        .await;
    assert!(guarded.contains("demo.guardrail-mask"), "{guarded}");
    assert!(guarded.contains("demo-pii"), "{guarded}");
    let virtual_models = console
        .browser
        .wait_for_text("[data-testid=virtual-models]", |_| true)
        .await;
    assert!(virtual_models.contains("claude-ha"), "{virtual_models}");
    let keys = console
        .browser
        .wait_for_text("[data-testid=keys]", |_| true)
        .await;
    assert!(keys.contains("demo-strict"), "{keys}");
    assert!(!keys.contains(DEMO_KEY), "a key itself is never shown");
    console.screenshot("routes").await;

    playground_masks_the_seed_request(&console).await;
    playground_renders_a_stream_as_it_arrives(&console).await;
    traffic_charts_show_the_requests(&console).await;

    console.assert_clean_console().await;
    csp_is_enforced_and_watched(&console).await;
    console.shutdown().await;
}

/// The seed's request (docs/guardrails.md) with its `guardrailConfig`, not streamed: the demo's
/// guardrail masks the names, the answer says `guardrail_intervened`, highlighted.
async fn playground_masks_the_seed_request(console: &Console) {
    let browser = &console.browser;
    console.show("playground").await;
    let key = browser.field("Gateway key").await;
    browser.type_into(&key, DEMO_KEY).await;
    let model = browser.field("Model").await;
    browser.select(&model, "demo/guarded").await;
    let message = browser.field("Message 1").await;
    browser.type_into(&message, SEED_QUESTION).await;
    let stream = browser.field("Stream").await;
    if browser.checked(&stream).await {
        browser.click(&stream).await;
    }
    let attach = browser.field("Attach a guardrail (guardrailConfig)").await;
    browser.click(&attach).await;
    let identifier = browser.field("Guardrail identifier").await;
    browser.type_into(&identifier, SEED_GUARDRAIL).await;
    let trace = browser.field("Guardrail trace").await;
    assert!(browser.checked(&trace).await, "the trace is on by default");

    browser
        .click(&browser.element("[data-testid=send]").await)
        .await;
    let finish = browser
        .wait_for_text("[data-testid=finish-reason]", |t| !t.is_empty())
        .await;
    assert_eq!(finish, "guardrail_intervened");
    assert!(
        console.has_class(".finish", "intervened").await,
        "highlighted"
    );
    let answer = browser
        .wait_for_text("[data-testid=answer]", |_| true)
        .await;
    assert!(answer.contains("{NAME}"), "masked: {answer}");
    assert!(!answer.contains("Musk"), "masked: {answer}");
    let trace = console
        .text_content("[data-testid=guardrail-trace] pre")
        .await;
    assert!(trace.contains(SEED_GUARDRAIL), "the trace: {trace}");
    assert!(trace.contains("piiEntities"), "the trace: {trace}");
    let tokens = browser
        .wait_for_text("[data-testid=total-tokens]", |t| t != "–")
        .await;
    assert!(tokens.parse::<u32>().unwrap() > 0, "{tokens}");

    // The same request as code: the key from the environment, guardrailConfig in extra_body.
    browser
        .click(&browser.button("Python (openai SDK)").await)
        .await;
    let python = browser
        .wait_for_text("[data-testid=snippet]", |t| t.contains("OpenAI("))
        .await;
    assert!(python.contains("os.environ[\"GATEWAY_KEY\"]"), "{python}");
    assert!(
        python.contains("extra_body={\"guardrailConfig\""),
        "{python}"
    );
    assert!(python.contains(SEED_GUARDRAIL), "{python}");
    assert!(!python.contains(DEMO_KEY), "never the typed key: {python}");
    browser
        .execute(
            "document.querySelector('[data-testid=guardrail-trace]').open = true;",
            vec![],
        )
        .await;
    console.screenshot("playground").await;
    browser.click(&browser.button("curl").await).await;
    let curl = browser
        .wait_for_text("[data-testid=snippet]", |t| t.starts_with("curl"))
        .await;
    assert!(curl.contains("Bearer $GATEWAY_KEY"), "{curl}");
    assert!(curl.contains("\"guardrailConfig\""), "{curl}");
}

/// A stream held by the simulator after its first delta: the page shows that delta (and is
/// still streaming) before the rest exists, then the whole answer once the stream goes on.
async fn playground_renders_a_stream_as_it_arrives(console: &Console) {
    let browser = &console.browser;
    let gate = Gate::new();
    let mut steps = stream::text(&["Streaming", " arrives", " in parts."], "end_turn", (3, 3));
    // After messageStart and the first delta.
    steps.insert(2, StreamStep::WaitFor(gate.clone()));
    console.demo.sim.set_script(CLAUDE_3, Script::Stream(steps));

    browser
        .select(&browser.field("Model").await, "demo/claude-3")
        .await;
    let attach = browser.field("Attach a guardrail (guardrailConfig)").await;
    browser.click(&attach).await;
    let stream = browser.field("Stream").await;
    browser.click(&stream).await;
    assert!(browser.checked(&stream).await);
    browser
        .click(&browser.element("[data-testid=send]").await)
        .await;

    let started = Instant::now();
    let partial = browser
        .wait_for_text("[data-testid=answer]", |t| t == "Streaming")
        .await;
    assert_eq!(partial, "Streaming");
    assert!(
        browser.find("[data-testid=finish-reason]").await.is_none(),
        "no finish reason while the stream is held"
    );
    let running = browser
        .execute(
            "return document.querySelector('[data-testid=result]').dataset.running;",
            vec![],
        )
        .await;
    assert_eq!(running, "true", "still streaming");
    console.screenshot("playground-streaming").await;

    gate.open();
    let finish = browser
        .wait_for_text("[data-testid=finish-reason]", |t| !t.is_empty())
        .await;
    assert_eq!(finish, "stop");
    let answer = browser
        .wait_for_text("[data-testid=answer]", |_| true)
        .await;
    assert_eq!(answer, "Streaming arrives in parts.");
    assert!(started.elapsed() < DEADLINE);

    // The answer can become the assistant's turn of a longer conversation.
    browser
        .click(&browser.button("Continue the conversation").await)
        .await;
    browser.field("Message 3").await;
    let turns = browser
        .execute(
            "return [2, 3].map((n) => document.getElementById(`turn-${n}`).value);",
            vec![],
        )
        .await;
    assert_eq!(turns, json!(["Streaming arrives in parts.", ""]));
    console.demo.sim.set_script(CLAUDE_3, Script::Echo);
}

/// After the playground's requests, the sampler's next interval shows them (taken now rather
/// than in up to 5 s): the traffic page draws its charts with a line for the model.
async fn traffic_charts_show_the_requests(console: &Console) {
    let browser = &console.browser;
    console.demo.gateway.traffic_sampler().sample_now();
    browser
        .wait_for("the traffic sampler to count demo/guarded", || async {
            let traffic = console.admin_api("/console/api/traffic?minutes=1").await;
            let sampled = traffic["models"].as_array()?.iter().any(|m| {
                m["model"] == "demo/guarded"
                    && m["requests_per_second"]
                        .as_array()
                        .is_some_and(|rates| rates.iter().any(|r| r.as_f64() > Some(0.0)))
            });
            sampled.then_some(())
        })
        .await;
    console.show("traffic").await;
    for chart in ["requests", "errors", "interventions", "p50", "p95", "p99"] {
        browser
            .element(&format!("[data-testid=chart-{chart}] canvas"))
            .await;
    }
    browser
        .wait_for_text("[data-testid=chart-interventions]", |t| {
            t.contains("demo/guarded")
        })
        .await;
    console.screenshot("traffic").await;
}

/// Both watches work and the policy holds: an inline style added now is refused, reported to
/// the page's listener and logged to the console.
async fn csp_is_enforced_and_watched(console: &Console) {
    console
        .browser
        .execute(
            "const style = document.createElement('style');
             style.textContent = 'body { background: red; }';
             document.head.append(style);",
            vec![],
        )
        .await;
    let reported = console
        .browser
        .wait_for("the CSP violation of an inline style", || async {
            let reported = console
                .browser
                .execute("return window.cspViolations;", vec![])
                .await;
            reported
                .as_array()
                .filter(|v| !v.is_empty())
                .map(|v| v.to_owned())
        })
        .await;
    assert!(
        reported[0].as_str().unwrap().starts_with("style-src"),
        "{reported:?}"
    );
    let logged = console.browser.console_log().await;
    assert!(
        logged
            .iter()
            .any(|message| message.contains("Content Security Policy")),
        "the console log shows CSP violations too: {logged:?}"
    );
}
