//! The results table, and where it is written: docs/benchmarks.md below its marker.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// One line of the table. Empty cells were not measured (or do not apply).
#[derive(Default)]
pub struct Row {
    pub measure: String,
    pub direct: String,
    pub nginx: String,
    pub hyper: String,
    pub gateway: String,
    pub target: String,
    /// `Some(met)` when the row has a target.
    pub met: Option<bool>,
}

impl Row {
    pub fn new(measure: impl Into<String>) -> Self {
        Self {
            measure: measure.into(),
            ..Self::default()
        }
    }

    pub fn target(mut self, target: impl Into<String>, met: bool) -> Self {
        self.target = target.into();
        self.met = Some(met);
        self
    }
}

pub fn table(rows: &[Row]) -> String {
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| measure | direct | nginx floor | hyper floor | gateway | target | verdict |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|---|");
    for row in rows {
        let verdict = match row.met {
            Some(true) => "met",
            Some(false) => "missed",
            None => "",
        };
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {verdict} |",
            row.measure, row.direct, row.nginx, row.hyper, row.gateway, row.target
        );
    }
    table
}

/// `a / b`, or NaN when `b` is zero.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

pub fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cores} cores, {cpu}")
}

pub fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

const REPORT_MARKER: &str = "<!-- bench:latest -->";

/// Replaces everything below the marker of docs/benchmarks.md with this run.
pub fn write(root: &Path, header: &str, table: &str) -> Result<(), String> {
    let path = root.join("docs/benchmarks.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    let intro = existing
        .split(REPORT_MARKER)
        .next()
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| "# Benchmarks\n\nWritten by `cargo xtask bench`.\n\n".into());
    let report = format!("{intro}{REPORT_MARKER}\n## Latest run\n\n```\n{header}```\n\n{table}");
    std::fs::write(path, report).map_err(|e| e.to_string())
}
