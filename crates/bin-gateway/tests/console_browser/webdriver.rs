//! A headless Chromium driven through Debian's `chromedriver` with the W3C WebDriver protocol:
//! JSON over HTTP on loopback, the few commands the console tests need. Written on the
//! workspace's hyper client rather than a WebDriver crate: fantoccini would add about thirty
//! crates (a second `http`, `thiserror` 1, ICU 1.x) for these ten requests.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// How long any awaited condition may take on a loaded CI machine; a passing run waits
/// milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The key W3C WebDriver names element references with.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

const INSTALL_HINT: &str = "the console's browser tests need Debian's Chromium and its driver: \
     apt-get install chromium chromium-driver (.ci/run installs them when missing)";

/// Chromium's flags for a closed network: without the background-networking ones it keeps
/// trying to reach Google's services, which this machine refuses.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1100",
];

/// An element reference of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Element {
    fn as_json(&self) -> Value {
        json!({ ELEMENT_KEY: self.0 })
    }
}

/// One browser session; the browser and its driver end when it is dropped.
pub struct Browser {
    driver: Child,
    driver_url: String,
    session: String,
    profile: PathBuf,
    client: Client<HttpConnector, Full<Bytes>>,
}

fn find_program(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("`{name}` not found on PATH: {INSTALL_HINT}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

impl Browser {
    /// Starts `chromedriver` on a free loopback port and a fresh headless Chromium session
    /// with its own empty profile.
    pub async fn start() -> Self {
        let chromium = find_program("chromium");
        let chromedriver = find_program("chromedriver");
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver ({e}): {INSTALL_HINT}"));
        let profile =
            std::env::temp_dir().join(format!("console-browser-{}-{port}", std::process::id()));
        let mut browser = Self {
            driver,
            driver_url: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            profile,
            client: Client::builder(TokioExecutor::new()).build_http(),
        };
        browser.wait_for_driver().await;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", browser.profile.display()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let created = browser
            .request("POST", "/session", Some(capabilities))
            .await;
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"))
            .to_owned();
        browser
    }

    async fn wait_for_driver(&self) {
        let started = Instant::now();
        loop {
            let request = http::Request::get(format!("{}/status", self.driver_url))
                .body(Full::default())
                .expect("a status request");
            if let Ok(response) = self.client.request(request).await {
                let body = response.into_body().collect().await.map(|b| b.to_bytes());
                if let Ok(body) = body {
                    let status: Value = serde_json::from_slice(&body).unwrap_or_default();
                    if status["value"]["ready"] == true {
                        return;
                    }
                }
            }
            assert!(
                started.elapsed() < DEADLINE,
                "chromedriver did not become ready: {INSTALL_HINT}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One WebDriver command; its `value`, or a panic naming the command and the driver's error.
    async fn request(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.try_request(method, path, body).await {
            Ok(value) => value,
            Err(error) => panic!("WebDriver {method} {path}: {error}"),
        }
    }

    async fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.driver_url))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .expect("a WebDriver request");
        let response = tokio::time::timeout(DEADLINE, self.client.request(request))
            .await
            .expect("chromedriver answers in time")
            .expect("chromedriver answers");
        let ok = response.status().is_success();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("chromedriver's body")
            .to_bytes();
        let mut answer: Value = serde_json::from_slice(&body).expect("chromedriver answers JSON");
        let value = answer["value"].take();
        if ok {
            Ok(value)
        } else {
            Err(value)
        }
    }

    fn session_path(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub async fn goto(&self, url: &str) {
        self.request(
            "POST",
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns what it returns.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        let body = json!({"script": script, "args": args});
        self.request("POST", &self.session_path("/execute/sync"), Some(body))
            .await
    }

    /// The first element matching the CSS selector, if any.
    pub async fn find(&self, css: &str) -> Option<Element> {
        let body = json!({"using": "css selector", "value": css});
        match self
            .try_request("POST", &self.session_path("/element"), Some(body))
            .await
        {
            Ok(value) => Some(Element(
                value[ELEMENT_KEY]
                    .as_str()
                    .expect("an element reference")
                    .to_owned(),
            )),
            Err(error) if error["error"] == "no such element" => None,
            Err(error) => panic!("finding {css}: {error}"),
        }
    }

    /// The form control a `<label>` with exactly this text names (as a screen reader finds it).
    pub async fn labelled(&self, label: &str) -> Option<Element> {
        let found = self
            .execute(
                "const label = [...document.querySelectorAll('label')]
                   .find((l) => l.textContent.trim() === arguments[0]);
                 return label?.control ?? null;",
                vec![json!(label)],
            )
            .await;
        found[ELEMENT_KEY].as_str().map(|id| Element(id.to_owned()))
    }

    /// Waits for a `<button>` whose text is exactly `text` (as a person finds it).
    pub async fn button(&self, text: &str) -> Element {
        self.wait_for(&format!("a button {text:?}"), || async {
            let found = self
                .execute(
                    "return [...document.querySelectorAll('button')]
                       .find((b) => b.textContent.trim() === arguments[0]) ?? null;",
                    vec![json!(text)],
                )
                .await;
            found[ELEMENT_KEY].as_str().map(|id| Element(id.to_owned()))
        })
        .await
    }

    /// Polls `condition` until it answers `Some`, failing with `what` after [`DEADLINE`].
    pub async fn wait_for<T, F, Fut>(&self, what: &str, mut condition: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(found) = condition().await {
                return found;
            }
            assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for an element matching `css` to exist.
    pub async fn element(&self, css: &str) -> Element {
        self.wait_for(&format!("an element {css}"), || self.find(css))
            .await
    }

    /// Waits for the control labelled `label` to exist.
    pub async fn field(&self, label: &str) -> Element {
        self.wait_for(&format!("a field labelled {label:?}"), || {
            self.labelled(label)
        })
        .await
    }

    /// The rendered text of the first element matching `css`, or `None` while there is none.
    pub async fn text_of(&self, css: &str) -> Option<String> {
        let element = self.find(css).await?;
        let path = self.session_path(&format!("/element/{}/text", element.0));
        match self.try_request("GET", &path, None).await {
            Ok(text) => text.as_str().map(str::to_owned),
            // Re-rendered between the two commands: as if not there yet.
            Err(error) if error["error"] == "stale element reference" => None,
            Err(error) => panic!("text of {css}: {error}"),
        }
    }

    /// Waits until the text of `css` satisfies `accept`, and returns it.
    pub async fn wait_for_text(&self, css: &str, accept: impl Fn(&str) -> bool) -> String {
        self.wait_for(&format!("the text of {css}"), || async {
            self.text_of(css).await.filter(|text| accept(text))
        })
        .await
    }

    pub async fn click(&self, element: &Element) {
        let path = self.session_path(&format!("/element/{}/click", element.0));
        self.request("POST", &path, Some(json!({}))).await;
    }

    /// Types `text` into the element (key events, so the page sees real input).
    pub async fn type_into(&self, element: &Element, text: &str) {
        let path = self.session_path(&format!("/element/{}/value", element.0));
        self.request("POST", &path, Some(json!({ "text": text })))
            .await;
    }

    /// Picks the `<option>` with this value of a `<select>`, as a click would.
    pub async fn select(&self, select: &Element, value: &str) {
        let picked = self
            .execute(
                "const [select, value] = arguments;
                 const option = [...select.options].find((o) => o.value === value);
                 if (!option) return false;
                 select.value = value;
                 select.dispatchEvent(new Event('change', { bubbles: true }));
                 return true;",
                vec![select.as_json(), json!(value)],
            )
            .await;
        assert_eq!(picked, true, "no option {value:?} in the select");
    }

    /// Whether a checkbox is checked.
    pub async fn checked(&self, element: &Element) -> bool {
        self.execute("return arguments[0].checked;", vec![element.as_json()])
            .await
            == true
    }

    /// Writes a PNG of the viewport to `path` (creating its folder).
    pub async fn screenshot(&self, path: &Path) {
        let encoded = self
            .request("GET", &self.session_path("/screenshot"), None)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("a base64 screenshot"))
            .expect("a base64 screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot folder");
        }
        std::fs::write(path, png).expect("the screenshot is written");
    }

    /// The browser console's messages since the last call (CSP violations are logged there).
    pub async fn console_log(&self) -> Vec<String> {
        let entries = self
            .request(
                "POST",
                &self.session_path("/se/log"),
                Some(json!({"type": "browser"})),
            )
            .await;
        entries
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    /// Ends the session (the driver then closes Chromium) with a plain blocking request, since
    /// drop cannot await, then the driver; also when a test panicked half-way.
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let host = self.driver_url.trim_start_matches("http://");
            if let Ok(mut stream) = TcpStream::connect(host) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let request = format!(
                    "DELETE /session/{} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
                    self.session
                );
                if stream.write_all(request.as_bytes()).is_ok() {
                    // Wait for the answer: the driver has closed the browser by then.
                    let _ = std::io::Read::read(&mut stream, &mut [0; 512]);
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
