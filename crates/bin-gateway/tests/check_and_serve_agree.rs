//! `gateway check` and `gateway serve` refuse exactly the same configurations with the same
//! message: for every file in `fixtures/config/`, the `check` command's outcome equals what
//! serve's start-up (load, then build the catalog, the provider and every credential source,
//! then listen) makes of it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use common::fixture_env;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::Command;

use gateway::config::{GatewayConfig, API_KEY_ENV};
use gateway::wiring::start_sharded;
use gateway_core::clock::SharedClock;

/// `${NAME}`s in `text`.
fn variables(text: &str) -> Vec<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/config");
    let mut files = Vec::new();
    for dir in ["valid", "invalid"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// What `gateway check` says: `Ok` or the error message after `error: <path>: `.
fn check(path: &Path, text: &str) -> Result<(), String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
    command
        .args(["check", "--config"])
        .arg(path)
        .env_remove(API_KEY_ENV)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config-for-tests")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials-for-tests",
        );
    for name in variables(text) {
        match fixture_env(&name) {
            Some(value) => command.env(&name, value),
            None => command.env_remove(&name),
        };
    }
    let output = command.output().unwrap();
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let message = stderr.strip_prefix("error: ").unwrap_or(&stderr);
    let message = message.strip_suffix('\n').unwrap_or(message);
    let prefix = format!("{}: ", path.display());
    Err(message.strip_prefix(&prefix).unwrap_or(message).to_owned())
}

/// What `gateway serve` makes of the file: everything it does, on a free loopback port with
/// one thread, then stops.
async fn serve(text: &str) -> Result<(), String> {
    let mut config = GatewayConfig::parse(text, &fixture_env).map_err(|e| e.to_string())?;
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.worker_threads = NonZeroUsize::new(1);
    let gateway = start_sharded(&config, SharedClock::system())
        .await
        .map_err(|e| e.to_string())?;
    gateway.shutdown().await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn check_and_serve_agree_on_every_fixture() {
    let files = fixtures();
    assert!(files.len() > 10, "{files:?}");
    let mut disagreements = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let checked = check(&path, &text);
        let served = serve(&text).await;
        let expected_valid = path.parent().unwrap().ends_with("valid");
        if checked != served || checked.is_ok() != expected_valid {
            disagreements.push(format!(
                "{}: check {checked:?}, serve {served:?}",
                path.display()
            ));
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}
