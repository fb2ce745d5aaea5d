//! Development tasks: `cargo xtask ci` does exactly what CI does; `cargo xtask bench`
//! measures the gateway against the simulator.
#![forbid(unsafe_code)]

mod bench;
mod bench_services;

use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <ci | bench [--quick]>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench::run(&args[1..]),
        Some("bench-sim") => bench_services::sim(),
        Some("bench-floor") if args.len() == 2 => bench_services::floor(&args[1]),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Format check, lints as errors, every test. If this passes locally, CI is green.
fn ci() -> ExitCode {
    let steps: [(&str, &[&str]); 3] = [
        ("format", &["fmt", "--all", "--", "--check"]),
        (
            "lint",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        ("test", &["test", "--workspace", "--no-fail-fast"]),
    ];
    for (name, args) in steps {
        eprintln!("==> {name}: cargo {}", args.join(" "));
        let status = Command::new(env!("CARGO"))
            .args(args)
            // The default credential chain must never probe the instance-metadata address.
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!("==> {name} failed ({s})");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("==> {name}: cannot run cargo: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    eprintln!("==> all checks passed");
    ExitCode::SUCCESS
}
