//! Development tasks: `cargo xtask ci` does exactly what CI does; `cargo xtask manifests`
//! validates the Kubernetes manifests and `cargo xtask supply-chain` checks the dependencies
//! (two of its steps); `cargo xtask advisory-snapshot --from <dir>` refreshes the committed
//! RustSec snapshot; `cargo xtask bench` measures the gateway against the simulator;
//! `cargo xtask fuzz` runs the fuzz targets for a bounded time (their short property-test run
//! is part of `ci`'s `cargo test`).
#![forbid(unsafe_code)]

mod bench;
mod bench_services;
mod fuzz;
mod manifests;
mod supply_chain;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

const USAGE: &str = "usage: cargo xtask <ci | manifests | supply-chain | advisory-snapshot --from <dir> | bench [--quick] [--only GROUP,...] | fuzz [--time SECS] [TARGET]>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("manifests") => exit_with("manifests", manifests::check()),
        Some("supply-chain") => exit_with("supply-chain", supply_chain::check()),
        Some("advisory-snapshot") if args.len() == 3 && args[1] == "--from" => exit_with(
            "advisory-snapshot",
            supply_chain::refresh_snapshot(Path::new(&args[2])),
        ),
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("bench-sim") => bench_services::sim(&args[1..]),
        Some("bench-floor") if args.len() == 2 => bench_services::floor(&args[1]),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn exit_with(step: &str, outcome: Result<(), String>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("==> {step} failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of `xtask/`).
pub(crate) fn workspace_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

const FORMAT: &[&str] = &["fmt", "--all", "--", "--check"];
const LINT: &[&str] = &[
    "clippy",
    "--workspace",
    "--all-targets",
    "--",
    "-D",
    "warnings",
];

/// A step of `ci` before the tests.
type Check = fn() -> Result<(), String>;

/// Format check, the Kubernetes manifests, lints as errors, every test. If this passes
/// locally, CI is green.
fn ci() -> ExitCode {
    // The quick checks first: a formatting slip or a bad manifest fails before clippy compiles
    // the workspace.
    let steps: [(&str, String, Check); 4] = [
        ("format", format!("cargo {}", FORMAT.join(" ")), || {
            run_cargo(FORMAT)
        }),
        (
            "manifests",
            "kubernetes-validate over deploy/kubernetes/".into(),
            manifests::check,
        ),
        (
            "supply-chain",
            "cargo-deny (advisories, licenses, bans, sources) with deny.toml".into(),
            supply_chain::check,
        ),
        ("lint", format!("cargo {}", LINT.join(" ")), || {
            run_cargo(LINT)
        }),
    ];
    for (name, what, run) in steps {
        eprintln!("==> {name}: {what}");
        if let Err(e) = run() {
            eprintln!("==> {name} failed: {e}");
            return ExitCode::FAILURE;
        }
    }
    eprintln!("==> test: cargo test --workspace --no-fail-fast");
    match run_tests() {
        Ok(totals) if totals.failed == 0 && totals.passed > 0 => {
            say(&format!(
                "tests: {} passed, {} failed, {} skipped",
                totals.passed, totals.failed, totals.ignored
            ));
            eprintln!("==> all checks passed");
            ExitCode::SUCCESS
        }
        Ok(totals) => {
            say(&format!(
                "tests: {} passed, {} failed, {} skipped",
                totals.passed, totals.failed, totals.ignored
            ));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("==> test failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cargo() -> Command {
    let mut command = Command::new(env!("CARGO"));
    // The default credential chain must never probe the instance-metadata address.
    command.env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

fn run_cargo(args: &[&str]) -> Result<(), String> {
    match cargo().args(args).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(s.to_string()),
        Err(e) => Err(format!("cannot run cargo: {e}")),
    }
}

#[derive(Debug, Default)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

/// Runs the tests, echoing their output, and adds up every `test result:` line so CI ends
/// on one summary line for the whole workspace.
fn run_tests() -> Result<Totals, String> {
    use std::io::{BufRead, BufReader};
    let mut child = cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut totals = Totals::default();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        say(&line);
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(label), Some(count)) = (words.next(), words.next()) else {
                    continue;
                };
                let count: u64 = count.parse().unwrap_or(0);
                match label {
                    "passed" => totals.passed += count,
                    "failed" => totals.failed += count,
                    "ignored" => totals.ignored += count,
                    _ => {}
                }
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() && totals.failed == 0 {
        return Err(format!("cargo test {status}"));
    }
    Ok(totals)
}

#[expect(
    clippy::print_stdout,
    reason = "test output goes to stdout as cargo printed it"
)]
fn say(line: &str) {
    println!("{line}");
}
