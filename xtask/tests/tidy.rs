//! Architecture invariants, checked as ordinary tests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `cargo tree` of `package`'s normal dependencies, one `name version` per line.
fn normal_dependencies(package: &str, extra_args: &[&str]) -> String {
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args(["tree", "--package", package, "--edges", "normal"])
        .args(extra_args)
        .args(["--prefix", "none", "--format", "{p}", "--offline"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `gateway-core` does no I/O and knows nothing of HTTP, AWS or a runtime: its normal
/// dependency tree may hold only these crates (and what they pull in, listed too).
#[test]
fn core_depends_only_on_allowed_crates() {
    let tree = normal_dependencies("gateway-core", &[]);
    let allowed = [
        "gateway-core",
        "serde",
        "serde_core",
        "serde_derive",
        "serde_json",
        "thiserror",
        "thiserror-impl",
        "async-trait",
        "futures-core",
        // proc-macro and serde_json support crates
        "proc-macro2",
        "quote",
        "syn",
        "unicode-ident",
        "itoa",
        "memchr",
        "ryu",
        "zmij",
    ];
    let forbidden = [
        "tokio", "hyper", "reqwest", "axum", "http", "aws-", "mio", "socket2",
    ];
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        assert!(
            !forbidden.iter().any(|f| name.starts_with(f)),
            "gateway-core must not depend on `{name}`"
        );
        assert!(
            allowed.contains(&name),
            "gateway-core gained a dependency `{name}`: core stays free of I/O crates; \
             if this one is pure, add it to the allow-list here with a reason"
        );
    }
}

/// Every Rust source file starts with a `//!` comment saying what it is for.
#[test]
fn every_source_file_says_what_it_is_for() {
    let mut missing = Vec::new();
    for dir in ["crates", "xtask"] {
        visit(&workspace_root().join(dir), &mut |path| {
            let text = std::fs::read_to_string(path).unwrap();
            if !text.trim_start().starts_with("//!") {
                missing.push(path.display().to_string());
            }
        });
    }
    assert!(
        missing.is_empty(),
        "files without a `//!` header: {missing:?}"
    );
}

fn visit(dir: &Path, on_file: &mut dyn FnMut(&Path)) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if name != "target" && name != "snapshots" {
                visit(&path, on_file);
            }
        } else if name.ends_with(".rs") {
            on_file(&path);
        }
    }
}

/// The simulator reaches the production binary only through the `demo` feature: a gateway
/// built with `--no-default-features` has no `bedrock-sim` in its dependency tree.
#[test]
fn gateway_without_default_features_has_no_simulator() {
    let tree = |features: &[&str]| normal_dependencies("gateway", features);
    let has_sim = |tree: &str| tree.lines().any(|line| line.starts_with("bedrock-sim "));
    assert!(
        !has_sim(&tree(&["--no-default-features"])),
        "bedrock-sim is a normal dependency of the gateway without the `demo` feature"
    );
    // The check itself works: the default build (with `demo`) does list it.
    assert!(has_sim(&tree(&[])));
}
