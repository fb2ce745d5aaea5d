//! `GatewayProcess`: the real `gateway serve` binary on a config file of its own, its JSON log
//! lines read as they come, signals sent with `kill`, its memory.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{json_of, ACCESS_KEY_ID, SECRET};

/// The `gateway` binary with an environment of its own: the test's access key as the
/// default chain's, no AWS files, no profile, no session token, no instance metadata.
pub fn gateway_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
    command
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config-for-tests")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials-for-tests",
        )
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE");
    command
}

/// Long enough for a loaded CI machine; the tests never wait it out unless something is wrong.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// `gateway serve` on a file of its own, with its log lines as JSON values.
pub struct GatewayProcess {
    /// Taken by [`GatewayProcess::exit_code`]; killed on drop otherwise.
    pub child: Option<Child>,
    pub config: PathBuf,
    pub logs: mpsc::UnboundedReceiver<Value>,
    /// Every line read so far, for failure messages.
    pub seen: Vec<Value>,
    pub addr: SocketAddr,
}

impl GatewayProcess {
    pub async fn start(name: &str, config: &str) -> Self {
        Self::start_with_env(name, config, &[]).await
    }

    /// [`Self::start`] with more environment variables for the process.
    pub async fn start_with_env(name: &str, config: &str, env: &[(&str, &str)]) -> Self {
        let path =
            std::env::temp_dir().join(format!("gateway-test-{name}-{}.toml", std::process::id()));
        std::fs::write(&path, config).unwrap();
        let mut child = gateway_command()
            .args(["--log-format", "json", "serve", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, logs) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let mut process = Self {
            child: Some(child),
            config: path,
            logs,
            seen: Vec::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let listening = process.log("gateway listening").await;
        process.addr = listening["fields"]["addr"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        process
    }

    /// The next log line whose message starts with `message`, after those already read.
    pub async fn log(&mut self, message: &str) -> Value {
        loop {
            let line = tokio::time::timeout(DEADLINE, self.logs.recv())
                .await
                .unwrap_or_else(|_| panic!("no `{message}` in the log: {:#?}", self.seen))
                .unwrap_or_else(|| panic!("the log ended before `{message}`: {:#?}", self.seen));
            self.seen.push(line.clone());
            if message_of(&line).starts_with(message) {
                return line;
            }
        }
    }

    /// Whether a line read so far has a message starting with `message`.
    pub fn logged(&self, message: &str) -> bool {
        self.seen
            .iter()
            .any(|line| message_of(line).starts_with(message))
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id();
        let status = Command::new("kill")
            .args(["-s", signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -s {signal}");
    }

    pub fn rewrite(&self, config: &str) {
        std::fs::write(&self.config, config).unwrap();
    }

    /// SIGHUP after writing `config`, then the log line that says what became of it.
    pub async fn reload(&mut self, config: &str, outcome: &str) -> Value {
        self.rewrite(config);
        self.signal("HUP");
        self.log(outcome).await
    }

    /// Every line the process wrote after those already read, until its log ends (it exited).
    pub async fn rest_of_log(&mut self) -> &[Value] {
        while let Ok(Some(line)) = tokio::time::timeout(DEADLINE, self.logs.recv()).await {
            self.seen.push(line);
        }
        &self.seen
    }

    pub async fn exit_code(mut self) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        let status =
            tokio::time::timeout(DEADLINE, tokio::task::spawn_blocking(move || child.wait()))
                .await
                .unwrap_or_else(|_| panic!("the process exits: {:#?}", self.seen))
                .unwrap()
                .unwrap();
        status.code()
    }

    /// The process's resident memory now, from `/proc/<pid>/status` (Linux).
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.child.as_ref().unwrap().id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kib * 1024
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path` without a key: the status and the JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let request = http::Request::get(self.url(path))
            .body(Full::default())
            .unwrap();
        let (status, body) = json_of(self.send(request).await).await;
        (status.as_u16(), body)
    }

    /// `GET path` without a key: the status and the body as text.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let request = http::Request::get(self.url(path))
            .body(Full::default())
            .unwrap();
        let response = self.send(request).await;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    pub async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> http::Response<hyper::body::Incoming> {
        let client = Client::builder(TokioExecutor::new()).build_http();
        tokio::time::timeout(DEADLINE, client.request(request))
            .await
            .expect("the gateway answers in time")
            .unwrap()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        // A test that failed half-way must not leave a gateway running.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.config);
    }
}

/// A JSON log line's message (or the whole line when it is not JSON).
pub fn message_of(line: &Value) -> &str {
    line["fields"]["message"]
        .as_str()
        .or_else(|| line.as_str())
        .unwrap_or_default()
}
