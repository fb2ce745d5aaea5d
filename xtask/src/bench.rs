//! `cargo xtask bench` (being written).

use std::process::ExitCode;

pub fn run(_args: &[String]) -> ExitCode {
    eprintln!("bench: not written yet");
    ExitCode::FAILURE
}
