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

/// `cargo tree --prefix none --offline` with `args`: one crate (or feature) a line.
fn cargo_tree(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args(["tree", "--prefix", "none", "--offline"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `cargo tree` of `package`'s normal dependencies, one `name version` per line.
fn normal_dependencies(package: &str, extra_args: &[&str]) -> String {
    let mut args = vec!["--package", package, "--edges", "normal", "--format", "{p}"];
    args.extend_from_slice(extra_args);
    cargo_tree(&args)
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

/// `gateway-adapter-bedrock`'s modules are private: hosts use what `lib.rs` re-exports, and
/// its integration tests reach internals only through `testing`, behind feature `test-util`.
#[test]
fn bedrock_adapter_modules_are_private() {
    let lib = std::fs::read_to_string(workspace_root().join("crates/adapter-bedrock/src/lib.rs"))
        .unwrap();
    let lines: Vec<&str> = lib.lines().map(str::trim).collect();
    for (index, line) in lines.iter().enumerate() {
        if !line.starts_with("pub mod") {
            continue;
        }
        let gated = index
            .checked_sub(1)
            .and_then(|previous| lines.get(previous))
            .is_some_and(|previous| *previous == r#"#[cfg(feature = "test-util")]"#);
        assert!(
            *line == "pub mod testing;" && gated,
            "adapter-bedrock's lib.rs declares `{line}`: modules stay private (`mod`); re-export \
             what hosts need from lib.rs and what tests need from `testing`"
        );
    }
}

/// The gateway binary is built without adapter-bedrock's `test-util` (only the adapter's own
/// tests turn it on).
#[test]
fn the_gateway_is_built_without_test_util() {
    let tree = cargo_tree(&["--package", "gateway", "--edges", "normal,features"]);
    assert!(
        !tree
            .lines()
            .any(|line| line.starts_with(r#"gateway-adapter-bedrock feature "test-util""#)),
        "the gateway enables adapter-bedrock's `test-util`"
    );
}

/// Asserts `package`'s normal dependency tree holds no crate whose name starts with one of
/// `forbidden`.
fn assert_no_dependency(package: &str, forbidden: &[&str], why: &str) {
    let tree = normal_dependencies(package, &[]);
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if name == package {
            continue;
        }
        assert!(
            !forbidden.iter().any(|f| name.starts_with(f)),
            "{package} depends on `{name}`: {why}"
        );
    }
}

#[test]
fn the_http_adapter_knows_nothing_of_bedrock() {
    assert_no_dependency(
        "gateway-adapter-http",
        &["gateway-adapter-bedrock", "bedrock-sim", "aws-"],
        "the HTTP adapter talks to core's ports only",
    );
}

/// The Redis limits backend is an adapter of core's `LimitStore` port: it knows no other
/// adapter, HTTP or AWS (that core knows nothing of Redis is core's allow-list above).
#[test]
fn the_redis_adapter_depends_on_core_only() {
    assert_no_dependency(
        "gateway-adapter-redis",
        &["gateway-adapter-", "bedrock-sim", "aws-", "hyper", "http"],
        "the Redis adapter implements core's LimitStore and needs nothing of the other adapters",
    );
    let tree = normal_dependencies("gateway-adapter-redis", &[]);
    assert!(
        tree.lines().any(|line| line.starts_with("gateway-core ")),
        "the Redis adapter implements core's port, so it depends on gateway-core"
    );
}

#[test]
fn the_simulator_depends_on_no_gateway_crate() {
    assert_no_dependency(
        "bedrock-sim",
        &["gateway"],
        "the simulator plays Bedrock on its own, so adapter mistakes cannot hide in shared code",
    );
}

/// Status codes are chosen in `adapter-http/src/error.rs` only; other modules answer 200.
#[test]
fn statuses_are_mapped_in_one_module() {
    let src = workspace_root().join("crates/adapter-http/src");
    let mut offenders = Vec::new();
    visit(&src, &mut |path| {
        if path.ends_with("error.rs") {
            return;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for (number, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("StatusCode::") {
                rest = &rest[at + "StatusCode::".len()..];
                if !rest.starts_with("OK") {
                    offenders.push(format!("{}:{}", path.display(), number + 1));
                }
            }
        }
    });
    assert!(
        offenders.is_empty(),
        "status codes other than 200 chosen outside error.rs: {offenders:?}"
    );
}

/// The binary wires; ports and HTTP services are implemented in the library crates.
#[test]
fn the_binary_implements_no_port() {
    let src = workspace_root().join("crates/bin-gateway/src");
    let mut offenders = Vec::new();
    visit(&src, &mut |path| {
        let text = std::fs::read_to_string(path).unwrap();
        for needle in [
            "impl ChatProvider",
            "impl ModelRouter",
            "impl Service<",
            "service_fn(",
        ] {
            if text.contains(needle) {
                offenders.push(format!("{}: {needle}", path.display()));
            }
        }
    });
    assert!(offenders.is_empty(), "{offenders:?}");
}

/// CI runs the README's test command, and nothing shipped depends on xtask.
#[test]
fn ci_runs_the_readme_test_command_and_nothing_depends_on_xtask() {
    let root = workspace_root();
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|line| line.trim() == "cargo xtask ci"),
        ".ci/run must run `cargo xtask ci`"
    );
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains("```sh\ncargo xtask ci\n```"),
        "the README's test command must be `cargo xtask ci`"
    );
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        assert!(
            !text.contains("xtask"),
            "{} mentions xtask",
            manifest.display()
        );
    }
}
