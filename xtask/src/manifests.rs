//! `cargo xtask manifests` (a step of `cargo xtask ci`): every Kubernetes manifest in
//! `deploy/kubernetes/` validated against the Kubernetes API's schemas by the
//! `kubernetes-validate` Python package, which `.ci/run` installs at a pinned version.

use std::path::Path;

use crate::workspace_root;
use std::process::Command;

/// Where the manifests are, from the workspace root.
const MANIFESTS_DIR: &str = "deploy/kubernetes";

/// kustomize's own file: not a Kubernetes resource, so the validator has no schema for it
/// (`xtask/tests/deploy.rs` checks that it lists every manifest).
const KUSTOMIZATION: &str = "kustomization.yaml";

/// The oldest Kubernetes the manifests support (the preStop hook's `sleep` action, needed on
/// an image without a shell, is on by default from 1.30) and the newest the pinned validator
/// knows: an API removed in between fails one of them.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

/// Validates every manifest strictly (an unknown field is an error). The validator only warns
/// about a kind or API version it has no schema for (a typo, or an API removed in that
/// version), so any line that does not say a resource passed fails the check too, as does a
/// file in which no resource passed.
pub fn check() -> Result<(), String> {
    let dir = workspace_root().join(MANIFESTS_DIR);
    let manifests = manifest_files(&dir)?;
    let mut command = Command::new("python3");
    command
        .current_dir(&dir)
        .args(["-m", "kubernetes_validate", "--strict"]);
    for version in KUBERNETES_VERSIONS {
        command.args(["--kubernetes-version", version]);
    }
    let output = command
        .args(&manifests)
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprint!("{stdout}{stderr}");
    if stderr.contains("No module named kubernetes_validate") {
        return Err(
            "the validator is not installed: `python3 -m pip install kubernetes-validate` \
             (.ci/run installs the pinned version)"
                .into(),
        );
    }
    if !output.status.success() {
        return Err(format!("kubernetes-validate {}", output.status));
    }
    let unexpected: Vec<&str> = stdout
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with("INFO "))
        .collect();
    if !unexpected.is_empty() {
        return Err(format!(
            "the validator did not pass every resource: {unexpected:?}"
        ));
    }
    for manifest in &manifests {
        let passed = stdout
            .lines()
            .filter(|line| line.starts_with(&format!("INFO {manifest} passed ")))
            .count();
        if passed < KUBERNETES_VERSIONS.len() {
            return Err(format!("{MANIFESTS_DIR}/{manifest}: no resource validated"));
        }
    }
    Ok(())
}

/// The `.yaml` files of `dir` but the kustomization, sorted.
fn manifest_files(dir: &Path) -> Result<Vec<String>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let name = entry
            .map_err(|e| e.to_string())?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".yaml") && name != KUSTOMIZATION {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err(format!("no manifests in {}", dir.display()));
    }
    names.sort();
    Ok(names)
}
