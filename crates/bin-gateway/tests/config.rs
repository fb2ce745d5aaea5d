//! The configuration file: every valid fixture parses, every invalid one names its key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use common::fixture_env;
use std::path::Path;

use gateway::config::{GatewayConfig, API_KEY_ENV};
use secrecy::ExposeSecret;

fn fixture(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn valid_configurations_parse() {
    insta::glob!("../../../fixtures/config/valid", "*.toml", |path| {
        let config = GatewayConfig::parse(&fixture(path), &fixture_env)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        insta::assert_debug_snapshot!(config);
    });
}

#[test]
fn invalid_configurations_name_the_bad_key() {
    insta::glob!("../../../fixtures/config/invalid", "*.toml", |path| {
        let error = GatewayConfig::parse(&fixture(path), &fixture_env).unwrap_err();
        insta::assert_snapshot!(error.to_string());
    });
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let text = fixture(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/config/valid/every_option.toml"
    )));
    let config = GatewayConfig::parse(&text, &fixture_env).unwrap();
    let shown = format!("{config:?}");
    for secret in [
        "value-of-AWS_SECRET_ACCESS_KEY",
        "value-of-AWS_SESSION_TOKEN",
        "value-of-GATEWAY_KEY_TEAM_A",
        "sk-strict-client-key",
        "value-of-BEDROCK_API_KEY",
        "value-of-EXTERNAL_ID",
        "value-of-REDIS_PASSWORD",
        "value-of-CONSOLE_ADMIN_KEY",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked into {shown}");
    }
}

#[test]
fn variables_expand_inside_longer_strings() {
    let text = r#"
[auth]
keys = [{ name = "a", key = "prefix-${KEY}-suffix" }]
[accounts.x]
type = "aws-bedrock"
region = "us-east-1"
auth = { type = "default-chain" }
models.m = { model_id = "m" }
"#;
    let config = GatewayConfig::parse(text, &|_| Some("middle".into())).unwrap();
    assert_eq!(config.keys[0].key.expose_secret(), "prefix-middle-suffix");
}

#[test]
fn an_api_key_account_without_key_takes_the_environment_variable() {
    let text = r#"
[auth]
keys = [{ name = "a", key = "gateway-key-1" }]
[accounts.x]
type = "aws-bedrock"
region = "us-east-1"
auth = { type = "api-key", key = "" }
models.m = { model_id = "m" }
"#;
    let from_env = |name: &str| (name == API_KEY_ENV).then(|| "bedrock-key-from-env".to_owned());
    let config = GatewayConfig::parse(text, &from_env).unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("bedrock-key-from-env"), "{shown}");
    let gateway_adapter_bedrock::AuthConfig::ApiKey { key } = &config.accounts[0].auth else {
        panic!("{shown}");
    };
    assert_eq!(key.expose_secret(), "bedrock-key-from-env");
    // The configured key wins over the environment.
    let configured = text.replace(r#"key = """#, r#"key = "bedrock-key-configured""#);
    let config = GatewayConfig::parse(&configured, &from_env).unwrap();
    let gateway_adapter_bedrock::AuthConfig::ApiKey { key } = &config.accounts[0].auth else {
        panic!("not an api key");
    };
    assert_eq!(key.expose_secret(), "bedrock-key-configured");
    // An empty variable counts as missing.
    let error = GatewayConfig::parse(text, &|_| Some(String::new())).unwrap_err();
    insta::assert_snapshot!(error.to_string(), @"accounts.x.auth.key: set `key` or the AWS_BEARER_TOKEN_BEDROCK environment variable");
}

#[test]
fn every_secret_type_stays_out_of_debug_output() {
    let text = r#"
[auth]
keys = [{ name = "a", key = "gateway-key-secret-1" }]
[accounts.keys]
type = "aws-bedrock"
region = "us-east-1"
auth = { type = "access-key", access_key_id = "AKID", secret_access_key = "secret-access-key-1", session_token = "session-token-1" }
models.m = { model_id = "m" }
[accounts.role]
type = "aws-bedrock"
region = "us-east-1"
auth = { type = "assume-role", role_arn = "arn:aws:iam::123456789012:role/r", external_id = "external-id-1" }
models.m = { model_id = "m" }
[accounts.api]
type = "aws-bedrock"
region = "us-east-1"
auth = { type = "api-key", key = "bedrock-api-key-1" }
models.m = { model_id = "m" }
"#;
    let config = GatewayConfig::parse(text, &|_| None).unwrap();
    let shown = format!("{config:?} {:?} {:?}", config.keys, config.accounts);
    for secret in [
        "gateway-key-secret-1",
        "secret-access-key-1",
        "session-token-1",
        "external-id-1",
        "bedrock-api-key-1",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked into {shown}");
    }
}
