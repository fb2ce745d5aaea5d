//! The configuration file: every valid fixture parses, every invalid one names its key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

use std::path::Path;

use gateway::config::GatewayConfig;

fn fake_env(name: &str) -> Option<String> {
    match name {
        "NOT_SET_ANYWHERE" => None,
        other => Some(format!("value-of-{other}")),
    }
}

fn fixture(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn valid_configurations_parse() {
    insta::glob!("../../../fixtures/config/valid", "*.toml", |path| {
        let config = GatewayConfig::parse(&fixture(path), &fake_env)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        insta::assert_debug_snapshot!(config);
    });
}

#[test]
fn invalid_configurations_name_the_bad_key() {
    insta::glob!("../../../fixtures/config/invalid", "*.toml", |path| {
        let error = GatewayConfig::parse(&fixture(path), &fake_env).unwrap_err();
        insta::assert_snapshot!(error.to_string());
    });
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let text = fixture(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/config/valid/every_option.toml"
    )));
    let config = GatewayConfig::parse(&text, &fake_env).unwrap();
    let shown = format!("{config:?}");
    for secret in [
        "value-of-AWS_SECRET_ACCESS_KEY",
        "value-of-AWS_SESSION_TOKEN",
        "value-of-GATEWAY_KEY_TEAM_A",
        "sk-strict-client-key",
        "value-of-BEDROCK_API_KEY",
        "value-of-EXTERNAL_ID",
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
    assert_eq!(config.keys[0].key, "prefix-middle-suffix");
}
