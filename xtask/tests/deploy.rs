//! The deployment files checked against the code they deploy, so that a rename in the workspace
//! fails a test instead of the next image build or rollout: the Dockerfile builds a package,
//! binary, feature set and Rust version that exist; the ConfigMap's gateway.toml is a
//! configuration the gateway accepts, listening where the image and the Deployment expect it;
//! every `${VAR}` in it comes from the Secret through the Deployment; the Secret template's
//! placeholders are refused; the kustomization lists every manifest. The manifests' schemas
//! are `cargo xtask manifests`' job.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use gateway::config::GatewayConfig;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const KUBERNETES: &str = "deploy/kubernetes";

fn manifest(name: &str) -> String {
    read(&format!("{KUBERNETES}/{name}"))
}

/// The Dockerfile with its `\` continuations joined, one instruction a line.
fn dockerfile() -> String {
    read("Dockerfile").replace("\\\n", " ")
}

/// The default of `ARG <name>=<default>` in the Dockerfile.
fn dockerfile_arg(dockerfile: &str, name: &str) -> String {
    let prefix = format!("ARG {name}=");
    let line = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("the Dockerfile has no `{prefix}`"));
    line.trim().trim_matches('"').to_owned()
}

/// The workspace package `name` as `cargo metadata` describes it.
fn package(name: &str) -> serde_json::Value {
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|package| package["name"] == name)
        .unwrap_or_else(|| panic!("no workspace package `{name}`"))
        .clone()
}

#[test]
fn the_dockerfile_builds_the_gateway_binary_without_the_simulator() {
    let dockerfile = dockerfile();
    let build = dockerfile
        .lines()
        .find(|line| line.contains("cargo build"))
        .expect("the Dockerfile runs `cargo build`");
    let words: Vec<&str> = build.split_whitespace().collect();
    let package_name = words
        .windows(2)
        .find(|pair| pair[0] == "-p" || pair[0] == "--package")
        .map(|pair| pair[1])
        .expect("`cargo build` names its package");
    for flag in ["--release", "--locked", "--no-default-features"] {
        assert!(words.contains(&flag), "`cargo build` without {flag}");
    }
    let gateway = package(package_name);

    // The binary the runtime stage copies is one the package builds.
    let binaries: Vec<&str> = gateway["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|target| target["kind"].as_array().unwrap().contains(&"bin".into()))
        .map(|target| target["name"].as_str().unwrap())
        .collect();
    let built = dockerfile
        .split_whitespace()
        .find_map(|word| word.strip_prefix("target/release/"))
        .expect("the Dockerfile copies a binary out of target/release/");
    assert!(
        binaries.contains(&built),
        "{built} is not one of {binaries:?}"
    );
    assert!(
        dockerfile.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{built}\"]")),
        "the entry point is not the binary built"
    );

    // `--no-default-features` is what leaves the simulator out: it comes with a default
    // feature, the one the build-arg adds back.
    let features = &gateway["features"];
    let demo = "demo";
    assert!(
        features["default"]
            .as_array()
            .unwrap()
            .contains(&demo.into()),
        "`{demo}` is no longer a default feature of {package_name}: {features}"
    );
    assert!(
        features[demo]
            .as_array()
            .unwrap()
            .contains(&"dep:bedrock-sim".into()),
        "the `{demo}` feature no longer brings the simulator: {features}"
    );
    assert!(build.contains("--features \"${CARGO_FEATURES}\""));
    assert_eq!(dockerfile_arg(&dockerfile, "CARGO_FEATURES"), "");
    assert!(dockerfile.contains(&format!("--build-arg CARGO_FEATURES={demo}")));

    // The image's toolchain is the one the workspace declares and CI tests with.
    assert_eq!(
        dockerfile_arg(&dockerfile, "RUST_VERSION"),
        gateway["rust_version"].as_str().unwrap(),
        "the Dockerfile's RUST_VERSION differs from the workspace's rust-version"
    );
    assert!(dockerfile.contains("FROM rust:${RUST_VERSION}-"));
}

/// The file under `gateway.toml: |` in configmap.yaml, unindented.
fn configmap_toml() -> String {
    let yaml = manifest("configmap.yaml");
    let mut lines = yaml
        .lines()
        .skip_while(|line| line.trim() != "gateway.toml: |");
    assert!(lines.next().is_some(), "configmap.yaml has no gateway.toml");
    let indent = "    ";
    let mut toml = String::new();
    for line in lines.take_while(|line| line.is_empty() || line.starts_with(indent)) {
        toml.push_str(line.strip_prefix(indent).unwrap_or(line));
        toml.push('\n');
    }
    toml
}

/// Every `${NAME}` of `text`.
fn variables(text: &str) -> BTreeSet<String> {
    text.split("${")
        .skip(1)
        .map(|rest| rest.split('}').next().unwrap().to_owned())
        .collect()
}

/// A valid value for each variable the ConfigMap uses, as an operator would set it.
fn valid_value(name: &str) -> String {
    if name.ends_with("_ARN") {
        "arn:aws:iam::111122223333:role/bedrock-invoke".into()
    } else {
        format!("test-value-of-{name}")
    }
}

fn parse(toml: &str, lookup: &dyn Fn(&str) -> Option<String>) -> GatewayConfig {
    GatewayConfig::parse(toml, lookup)
        .unwrap_or_else(|e| panic!("configmap.yaml's gateway.toml: {e}"))
}

#[test]
fn the_configmap_is_a_configuration_the_gateway_accepts() {
    let toml = configmap_toml();
    let config = parse(&toml, &|name| Some(valid_value(name)));
    assert_eq!(config.accounts.len(), 2);
    assert_eq!(config.virtual_models.len(), 1);

    // It listens on every interface of the pod, on the port the image exposes and the
    // Deployment names, and is read from where the image and the Deployment say.
    assert!(config.listen.ip().is_unspecified(), "{}", config.listen);
    let port = config.listen.port();
    assert!(dockerfile()
        .lines()
        .any(|line| line == format!("EXPOSE {port}")));
    let deployment = manifest("deployment.yaml");
    assert!(deployment.contains(&format!("containerPort: {port}")));
    let config_path = "/etc/gateway/gateway.toml";
    let serve = format!("\"serve\", \"--config\", \"{config_path}\"");
    assert!(dockerfile().contains(&format!("CMD [{serve}")));
    assert!(deployment.contains(&format!("args: [{serve}")));
    assert!(deployment.contains("mountPath: /etc/gateway\n"));
    assert!(deployment.contains("path: gateway.toml\n"));

    // The limits' Redis is the Service redis.yaml defines.
    let redis_url = toml
        .lines()
        .find_map(|line| line.strip_prefix("redis_url = \"redis://"))
        .expect("a redis_url")
        .trim_end_matches('"');
    let (host, redis_port) = redis_url.split_once(':').unwrap();
    let redis = manifest("redis.yaml");
    assert!(redis.contains(&format!("kind: Service\nmetadata:\n  name: {host}\n")));
    assert!(redis.contains(&format!("port: {redis_port}\n")));
}

/// The Secret's keys by the Deployment's environment variables that read them
/// (`- name: VAR` then `secretKeyRef: ... key: KEY`).
fn secret_environment(deployment: &str) -> BTreeMap<String, String> {
    let mut variables = BTreeMap::new();
    let mut name = None;
    for line in deployment.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("- name: ") {
            name = Some(rest.to_owned());
        } else if let Some(key) = line.strip_prefix("key: ") {
            variables.insert(name.clone().expect("a key under a name"), key.to_owned());
        }
    }
    variables
}

/// The Secret template's `stringData`: variable name, placeholder.
fn secret_placeholders() -> BTreeMap<String, String> {
    let yaml = manifest("secret.yaml");
    yaml.lines()
        .skip_while(|line| *line != "stringData:")
        .skip(1)
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| {
            let (name, value) = line.trim().split_once(": ").unwrap();
            (name.to_owned(), value.trim_matches('"').to_owned())
        })
        .collect()
}

#[test]
fn every_variable_of_the_configmap_comes_from_the_secret() {
    let used = variables(&configmap_toml());
    let from_secret = secret_environment(&manifest("deployment.yaml"));
    for (variable, key) in &from_secret {
        assert_eq!(variable, key, "the variable {variable} reads the key {key}");
    }
    let environment: BTreeSet<String> = from_secret.into_keys().collect();
    assert_eq!(
        used, environment,
        "gateway.toml's variables vs the Deployment's"
    );
    let secret: BTreeSet<String> = secret_placeholders().into_keys().collect();
    assert_eq!(
        used, secret,
        "gateway.toml's variables vs the Secret's keys"
    );
}

/// Applying the template as it is must not serve with a value known from this repository:
/// each placeholder alone makes the gateway refuse its configuration.
#[test]
fn each_placeholder_of_the_secret_template_is_refused() {
    let toml = configmap_toml();
    for (variable, placeholder) in secret_placeholders() {
        let lookup = |name: &str| {
            Some(if name == variable {
                placeholder.clone()
            } else {
                valid_value(name)
            })
        };
        assert!(
            GatewayConfig::parse(&toml, &lookup).is_err(),
            "the placeholder of {variable} is a valid value"
        );
    }
}

#[test]
fn the_kustomization_lists_every_manifest() {
    let kustomization = manifest("kustomization.yaml");
    let listed: BTreeSet<String> = kustomization
        .lines()
        .skip_while(|line| *line != "resources:")
        .skip(1)
        .map_while(|line| line.strip_prefix("  - "))
        .map(str::to_owned)
        .collect();
    let files: BTreeSet<String> = std::fs::read_dir(workspace_root().join(KUBERNETES))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    assert_eq!(listed, files);
}
