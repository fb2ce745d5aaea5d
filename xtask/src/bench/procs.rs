//! The measured processes: spawning them, their CPU time and memory read from `/proc`, and the
//! open-file limit the bench raises before it spawns anything.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process (with its own children, for nginx's workers), stopped when dropped.
pub struct Process {
    pub name: &'static str,
    child: Child,
    /// How to stop it gracefully before killing it (nginx's master must stop its workers).
    stop: Option<Command>,
}

impl Process {
    pub fn new(name: &'static str, child: Child) -> Self {
        Self {
            name,
            child,
            stop: None,
        }
    }

    pub fn with_stop(mut self, stop: Command) -> Self {
        self.stop = Some(stop);
        self
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process and its direct children (nginx's master and workers).
    fn tree(&self) -> Vec<u32> {
        let pid = self.pid();
        let mut pids = vec![pid];
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(other) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                if parent_of(other) == Some(pid) {
                    pids.push(other);
                }
            }
        }
        pids
    }

    /// Time on a CPU so far (user + system) of every thread of the process and its children,
    /// in nanoseconds from `/proc/<pid>/task/<tid>/schedstat`, so short samples are exact.
    pub fn cpu_time(&self) -> Result<Duration, String> {
        let mut total = 0u64;
        for pid in self.tree() {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
                .map_err(|e| format!("{}: {e}", self.name))?;
            for task in tasks.flatten() {
                let stat =
                    std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
                total += stat
                    .split_whitespace()
                    .next()
                    .and_then(|ns| ns.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        Ok(Duration::from_nanos(total))
    }

    /// Resident set size of the process and its children, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.tree()
            .into_iter()
            .map(|pid| status_kib(pid, "VmRSS:"))
            .sum()
    }

    /// Open file descriptors of the process and its children.
    pub fn open_fds(&self) -> usize {
        self.tree()
            .into_iter()
            .filter_map(|pid| std::fs::read_dir(format!("/proc/{pid}/fd")).ok())
            .map(Iterator::count)
            .sum()
    }

    /// Polls until the process holds at most `fds` descriptors (connections it closes go
    /// asynchronously), for at most 20 seconds.
    pub async fn wait_open_fds_at_most(&self, fds: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.open_fds() > fds && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Peak resident set size of the process itself, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        status_kib(self.pid(), "VmHWM:")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(stop) = &mut self.stop {
            let _ = stop.stdout(Stdio::null()).stderr(Stdio::null()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the parenthesised command name: state, then the parent's pid.
    let (_, after) = stat.rsplit_once(')')?;
    after.split_whitespace().nth(1)?.parse().ok()
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn free_port() -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map_err(|e| e.to_string())
}

/// Starts `program args`, which prints its URL on the first stdout line.
pub fn spawn_printing_url(
    name: &'static str,
    program: &Path,
    args: &[&str],
) -> Result<(Process, String), String> {
    use std::io::BufRead;
    let mut child = Command::new(program)
        .args(args)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{name}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok((Process::new(name, child), line.trim().to_owned()))
}

/// Waits until something accepts TCP connections on `addr`.
pub async fn wait_listening(name: &str, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("{name} at {addr} did not start listening"))
}

/// The open-file limits (soft, hard) of this process.
pub fn nofile_limits() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_default();
    let mut numbers = line
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    let soft = numbers.next().unwrap_or(1024);
    (soft, numbers.next().unwrap_or(soft))
}

/// Raises this process's soft open-file limit to its hard limit, so that the children spawned
/// afterwards (which inherit it) can hold thousands of connections. `unsafe` is forbidden in
/// the workspace, so this calls util-linux's `prlimit` on our own pid instead of
/// `setrlimit(2)`. Returns the soft limit now in force.
pub fn raise_nofile_limit() -> u64 {
    let (soft, hard) = nofile_limits();
    if soft >= hard {
        return soft;
    }
    let raised = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={hard}:{hard}"))
        .status();
    if !matches!(raised, Ok(s) if s.success()) {
        eprintln!("bench: could not raise the open-file limit from {soft} to {hard} (prlimit)");
    }
    nofile_limits().0
}
