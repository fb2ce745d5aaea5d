//! `cargo xtask fuzz [--time SECS] [TARGET]`: runs each fuzz target (or one) for a bounded
//! time. With a nightly toolchain and cargo-fuzz installed, under libFuzzer (`fuzz/`, seeded
//! from `fixtures/` through `gateway-test-support`); otherwise the same targets as proptest
//! property tests on stable, with a case count scaled by the time. docs/hardening.md
//! ("Fuzzing") has the workflow for what a run finds.

use std::path::Path;
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask fuzz [--time SECS] [TARGET]";

/// Seconds per target when `--time` is not given.
const DEFAULT_SECONDS: u64 = 60;

/// Property-test cases per second of `--time` on stable: the slowest target (the OpenAI
/// request, converted for nine models and checked against botocore's rules) does about 250
/// a second in a debug build.
const CASES_PER_SECOND: u64 = 200;

pub fn run(args: &[String]) -> ExitCode {
    let (seconds, only) = match parse(args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let root = crate::workspace_root();
    let mut targets = match targets(&root) {
        Ok(targets) => targets,
        Err(message) => {
            eprintln!("==> fuzz: {message}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(only) = only {
        if !targets.contains(&only) {
            eprintln!(
                "==> fuzz: no target `{only}`; targets: {}",
                targets.join(", ")
            );
            return ExitCode::from(2);
        }
        targets = vec![only];
    }
    let result = if libfuzzer_available() {
        libfuzzer(&root, &targets, seconds)
    } else {
        eprintln!(
            "==> fuzz: no nightly toolchain with cargo-fuzz; running the targets as property tests"
        );
        property_tests(&root, &targets, seconds)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("==> fuzz failed: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Result<(u64, Option<String>), String> {
    let mut seconds = DEFAULT_SECONDS;
    let mut target = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--time" => {
                let value = args.next().ok_or("--time needs a number of seconds")?;
                seconds = value
                    .parse()
                    .ok()
                    .filter(|seconds| *seconds > 0)
                    .ok_or_else(|| format!("--time {value}: not a positive number of seconds"))?;
            }
            name if !name.starts_with('-') && target.is_none() => target = Some(name.to_owned()),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    Ok((seconds, target))
}

/// The targets, as `fuzz/fuzz_targets/<name>.rs` names them (a test in
/// `gateway-test-support` keeps that list equal to its own).
fn targets(root: &Path) -> Result<Vec<String>, String> {
    let dir = root.join("fuzz/fuzz_targets");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .filter_map(|path| Some(path.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names)
}

/// `cargo +nightly fuzz` works. Through the rustup proxy (`cargo` on the PATH), not the
/// toolchain's own cargo that runs xtask, so `+nightly` can choose the toolchain.
fn libfuzzer_available() -> bool {
    Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|output| output.status.success())
}

fn libfuzzer(root: &Path, targets: &[String], seconds: u64) -> Result<(), String> {
    eprintln!("==> fuzz: writing the seed corpora from fixtures/ to fuzz/corpus/");
    run_status(crate::cargo().current_dir(root).args([
        "test",
        "-p",
        "gateway-test-support",
        "--test",
        "fuzz_targets",
        "--",
        "--ignored",
        "--exact",
        "write_seed_corpora",
    ]))?;
    let mut failed = Vec::new();
    for target in targets {
        eprintln!("==> fuzz: {target} under libFuzzer for {seconds} s");
        let max_total_time = format!("-max_total_time={seconds}");
        let status = run_status(Command::new("cargo").current_dir(root).args([
            "+nightly",
            "fuzz",
            "run",
            target,
            "--",
            &max_total_time,
            "-print_final_stats=1",
        ]));
        if let Err(message) = status {
            eprintln!(
                "==> fuzz: {target} failed ({message}); the input is under fuzz/artifacts/{target}/"
            );
            failed.push(target.as_str());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} found a failure; minimize it (`cargo +nightly fuzz tmin <target> <artifact>`) \
             and keep it in fixtures/fuzz/<target>/",
            failed.join(", ")
        ))
    }
}

fn property_tests(root: &Path, targets: &[String], seconds: u64) -> Result<(), String> {
    let cases = (seconds * CASES_PER_SECOND).to_string();
    for target in targets {
        eprintln!("==> fuzz: {target} as a property test, {cases} cases");
        run_status(
            crate::cargo()
                .current_dir(root)
                .env("FUZZ_CASES", &cases)
                .args([
                    "test",
                    "-p",
                    "gateway-test-support",
                    "--test",
                    "fuzz_targets",
                    "--",
                    "--exact",
                    target,
                ]),
        )?;
    }
    Ok(())
}

fn run_status(command: &mut Command) -> Result<(), String> {
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(status.to_string()),
        Err(error) => Err(format!("cannot run cargo: {error}")),
    }
}
