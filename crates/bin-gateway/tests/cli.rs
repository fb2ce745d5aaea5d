//! The `gateway` command line: `check` validates and names the bad key; `check --probe`
//! obtains each account's credentials without calling Bedrock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::process::Command;

use bedrock_sim::SimRole;
use common::*;

fn gateway_cli() -> Command {
    common::process::gateway_command()
}

fn fixture(path: &str) -> String {
    format!(
        "{}/../../fixtures/config/{path}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn check_accepts_a_valid_file() {
    let output = gateway_cli()
        .args(["check", "--config", &fixture("valid/access_key.toml")])
        .env("GATEWAY_KEY_TEAM_A", "team-a-key-123")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("valid (1 accounts, 1 models, 1 gateway keys)"),
        "{stdout}"
    );
}

#[test]
fn check_names_the_bad_key_and_fails() {
    let output = gateway_cli()
        .args([
            "check",
            "--config",
            &fixture("invalid/typo_in_account_key.toml"),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("accounts.x.regoin: unknown field `regoin`"),
        "{stderr}"
    );
}

#[test]
fn check_names_a_missing_environment_variable() {
    let output = gateway_cli()
        .args(["check", "--config", &fixture("valid/access_key.toml")])
        .env_remove("GATEWAY_KEY_TEAM_A")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("GATEWAY_KEY_TEAM_A"), "{stderr}");
}

#[tokio::test]
async fn check_probe_reports_unusable_credentials_per_account() {
    let sim = sim()
        .role(SimRole::new("arn:aws:iam::111122223333:role/ok"))
        .role(SimRole::new("arn:aws:iam::111122223333:role/denied").denied())
        .start()
        .await
        .unwrap();
    let config = format!(
        r#"
[auth]
keys = [{{ name = "tests", key = "test-gateway-key" }}]
[accounts.good]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "{url}"
auth = {{ type = "assume-role", role_arn = "arn:aws:iam::111122223333:role/ok", sts_endpoint = "{url}" }}
models.m = {{ model_id = "m" }}
[accounts.bad]
type = "aws-bedrock"
region = "us-east-1"
endpoint = "{url}"
auth = {{ type = "assume-role", role_arn = "arn:aws:iam::111122223333:role/denied", sts_endpoint = "{url}" }}
models.m = {{ model_id = "m" }}
"#,
        url = sim.url()
    );
    let path = std::env::temp_dir().join(format!("gateway-cli-probe-{}.toml", std::process::id()));
    std::fs::write(&path, config).unwrap();
    let output = tokio::task::spawn_blocking(move || {
        gateway_cli()
            .args(["check", "--probe", "--config"])
            .arg(&path)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("account good: credentials OK (assume-role)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("account bad: credentials unusable"),
        "{stdout}"
    );
    assert!(stdout.contains("role/denied"), "{stdout}");
    assert!(sim.requests().is_empty(), "probing never calls Bedrock");
}
